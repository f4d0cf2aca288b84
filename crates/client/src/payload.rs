//! What gets sent: an encoded body with the event and action it is filtered and
//! labelled by.

use bytes::Bytes;
use dronehook_protocol::{BodyDigest, DecodeError, Envelope};

/// One event ready to send: the exact body bytes, the `X-Drone-Event` value and the
/// action the event filter looks at.
///
/// Cheap to clone (the body is shared). Build one from an [`Envelope`] (encoded
/// byte-identically to Drone) or from raw bytes that are sent untouched.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payload {
    body: Bytes,
    event: String,
    action: String,
    /// Computed once here rather than for every report.
    digest: BodyDigest,
}

impl Payload {
    /// Encodes an envelope as Drone does ([`Envelope::encode`]).
    pub fn from_envelope(envelope: &Envelope) -> Self {
        let body = Bytes::from(envelope.encode());
        Payload {
            digest: BodyDigest::of(&body),
            body,
            event: envelope.event.as_str().to_owned(),
            action: envelope.action.as_str().to_owned(),
        }
    }

    /// Raw bytes, sent byte for byte, with this `X-Drone-Event` and action (the
    /// action is used only by the event filter; pass `""` for none).
    pub fn raw(
        body: impl Into<Bytes>,
        event: impl Into<String>,
        action: impl Into<String>,
    ) -> Self {
        let body = body.into();
        Payload {
            digest: BodyDigest::of(&body),
            body,
            event: event.into(),
            action: action.into(),
        }
    }

    /// A captured body, sent byte for byte with this `X-Drone-Event`. The action the
    /// event filter looks at is read from the body when it decodes as a Drone payload,
    /// and is empty otherwise; bytes that are not a payload at all are sent too.
    pub fn captured(body: impl Into<Bytes>, event: impl Into<String>) -> Self {
        let body = body.into();
        let event = event.into();
        let action = Envelope::decode_with_header(&body, Some(&event))
            .map(|e| e.action.as_str().to_owned())
            .unwrap_or_default();
        Payload::raw(body, event, action)
    }

    /// Raw bytes, sent byte for byte, with the event and action read from the body
    /// itself. `header_event` stands in for a body without `event`, as a receiver
    /// takes it from `X-Drone-Event`. The body must decode as a Drone payload.
    pub fn raw_detect(
        body: impl Into<Bytes>,
        header_event: Option<&str>,
    ) -> Result<Self, DecodeError> {
        let body = body.into();
        let envelope = Envelope::decode_with_header(&body, header_event)?;
        Ok(Payload {
            digest: BodyDigest::of(&body),
            event: envelope.event.as_str().to_owned(),
            action: envelope.action.as_str().to_owned(),
            body,
        })
    }

    /// The exact body bytes.
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// The `X-Drone-Event` value.
    pub fn event(&self) -> &str {
        &self.event
    }

    /// The action (may be empty).
    pub fn action(&self) -> &str {
        &self.action
    }

    /// The body's SHA-256: the key a dronehook receiver dedupes on.
    pub fn digest(&self) -> BodyDigest {
        self.digest
    }
}

impl From<&Payload> for Payload {
    fn from(payload: &Payload) -> Self {
        payload.clone()
    }
}

impl From<&Envelope> for Payload {
    fn from(envelope: &Envelope) -> Self {
        Payload::from_envelope(envelope)
    }
}

impl From<Envelope> for Payload {
    fn from(envelope: Envelope) -> Self {
        Payload::from_envelope(&envelope)
    }
}
