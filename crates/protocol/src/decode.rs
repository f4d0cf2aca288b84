//! Decoding and encoding the envelope: lenient where Drone versions differ, strict
//! where a lenient reading would let two parties see different events.

use std::fmt;

use crate::enums::{Action, Event};
use crate::model::{Envelope, EnvelopeCheck, Object};

/// Why a body could not be read as a Drone event.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The body is not a single well-formed JSON object of the expected shape:
    /// a syntax error, invalid UTF-8, a lone surrogate, trailing bytes, nesting too
    /// deep, a duplicate key, a number out of range or a value of the wrong type.
    Invalid {
        /// What is wrong.
        message: String,
        /// The 1-based line where it was found (0 when the input ended early).
        line: usize,
        /// The 1-based column where it was found.
        column: usize,
    },
    /// Neither the body nor the `X-Drone-Event` header names the event.
    EventMissing,
    /// The body's `event` differs from the `X-Drone-Event` header. The header is not
    /// signed and the body is, so a disagreement means someone changed one of them.
    EventMismatch {
        /// The `X-Drone-Event` header.
        header: String,
        /// The body's `event`.
        body: String,
    },
}

impl DecodeError {
    /// A stable short code for logs, responses and scripts.
    pub fn code(&self) -> &'static str {
        match self {
            DecodeError::Invalid { .. } => "payload.invalid",
            DecodeError::EventMissing => "payload.event_missing",
            DecodeError::EventMismatch { .. } => "payload.event_mismatch",
        }
    }

    fn from_json(err: &serde_json::Error) -> Self {
        // serde_json's message ends with " at line L column C"; the position is kept
        // in fields of its own, so the message is trimmed to say it once.
        let full = err.to_string();
        let message = match full.rfind(" at line ") {
            Some(i) if err.line() > 0 => full[..i].to_owned(),
            _ => full,
        };
        DecodeError::Invalid {
            message,
            line: err.line(),
            column: err.column(),
        }
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DecodeError::Invalid {
                message,
                line,
                column,
            } => {
                write!(
                    f,
                    "the body is not a valid payload: {message} at line {line} column {column}"
                )
            }
            DecodeError::EventMissing => {
                f.write_str("the payload has no `event` and no X-Drone-Event header names one")
            }
            DecodeError::EventMismatch { header, body } => write!(
                f,
                "the X-Drone-Event header says {header:?} but the signed body says {body:?}"
            ),
        }
    }
}

impl std::error::Error for DecodeError {}

/// What a payload is about: its event and action, and the repository and build it
/// concerns. Enough to route, log and journal a webhook without the whole model.
///
/// [`Envelope::check`] reads it without decoding the payload; [`Outline::of`] reads
/// it off a decoded [`Envelope`]. The two agree on every input.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Outline {
    /// The event: the body's, or the `X-Drone-Event` header's when the body has none.
    pub event: Event,
    /// The action.
    pub action: Action,
    /// The repository's `namespace/name`, when the payload has a repository with one.
    pub repo_slug: Option<String>,
    /// The build number, when the payload has a build.
    pub build_number: Option<i64>,
}

impl Outline {
    /// The outline of a decoded envelope.
    pub fn of(envelope: &Envelope) -> Outline {
        Outline {
            event: envelope.event.clone(),
            action: envelope.action.clone(),
            repo_slug: envelope.repo_slug().map(str::to_owned),
            build_number: envelope.build_number(),
        }
    }

    /// Whether both the event and the action are ones this crate names.
    pub fn is_known(&self) -> bool {
        self.event.is_known() && self.action.is_known()
    }

    /// The name filters match against: `event:action`, or `event` when the action is
    /// empty (Drone's rule).
    pub fn filter_name(&self) -> String {
        crate::filter::filter_name(self.event.as_str(), self.action.as_str())
    }
}

impl Envelope {
    /// Checks that a body decodes, without decoding it: see [`Envelope::check_with_header`].
    pub fn check(body: &[u8]) -> Result<Outline, DecodeError> {
        Envelope::check_with_header(body, None)
    }

    /// Checks that a body decodes exactly as [`Envelope::decode_with_header`] would
    /// decode it, and returns its [`Outline`], without building the envelope.
    ///
    /// The same inputs are accepted and rejected, with the same errors: this reads the
    /// body with the models' own rules (types, duplicate keys, `null`, aliases, unknown
    /// fields as JSON values), keeping nothing but the outline: about four times faster
    /// than decoding a Drone build payload. A receiver calls it on the request path and
    /// decodes only when a handler needs the payload.
    ///
    /// ```
    /// use dronehook_protocol::{Envelope, Event};
    ///
    /// let body = br#"{"event":"build","action":"updated","repo":{"slug":"octocat/hello-world"},"build":{"number":42}}"#;
    /// let outline = Envelope::check(body)?;
    /// assert_eq!(outline.event, Event::Build);
    /// assert_eq!(outline.repo_slug.as_deref(), Some("octocat/hello-world"));
    /// assert_eq!(outline.build_number, Some(42));
    /// assert!(Envelope::check(br#"{"event":"build","build":{"number":"42"}}"#).is_err());
    /// # Ok::<(), dronehook_protocol::DecodeError>(())
    /// ```
    pub fn check_with_header(
        body: &[u8],
        header_event: Option<&str>,
    ) -> Result<Outline, DecodeError> {
        // The header rules, shared by both passes below.
        let settle = |event: &str,
                      action: &str,
                      slug: &str,
                      build_number: Option<i64>|
         -> Result<Outline, DecodeError> {
            let header = header_event.map(str::trim).filter(|h| !h.is_empty());
            let event = match (event.is_empty(), header) {
                (true, None) => return Err(DecodeError::EventMissing),
                (true, Some(h)) => Event::parse(h),
                (false, Some(h)) if h != event => {
                    return Err(DecodeError::EventMismatch {
                        header: h.to_owned(),
                        body: event.to_owned(),
                    });
                }
                (false, _) => Event::parse(event),
            };
            Ok(Outline {
                event,
                action: Action::parse(action),
                repo_slug: (!slug.is_empty()).then(|| slug.to_owned()),
                build_number,
            })
        };
        // Anything the checking passes do not settle (an error, or an escaped string in
        // a field the outline keeps) is decoded in full: errors are rare and their
        // messages and positions come from the decoder.
        let slow = || Envelope::decode_with_header(body, header_event).map(|e| Outline::of(&e));
        let Ok(text) = simdutf8::basic::from_utf8(body) else {
            return slow();
        };
        // The schema-directed scan settles ordinary payloads without serde; it declines
        // anything unusual, which the serde-based pass below then reads.
        if let Some(fast) = crate::check::fast::scan(text) {
            return settle(fast.event, fast.action, fast.repo_slug, fast.build_number);
        }
        let Ok(checked) = serde_json::from_str::<EnvelopeCheck<'_>>(text) else {
            return slow();
        };
        let (Some(event), Some(action)) = (checked.event.get(), checked.action.get()) else {
            return slow();
        };
        let slug = match &checked.repo {
            Some(repo) => match repo.slug.get() {
                Some(slug) => slug,
                None => return slow(),
            },
            None => "",
        };
        settle(
            event,
            action,
            slug,
            checked.build.as_ref().map(|b| b.number),
        )
    }

    /// Decodes a body that names its own event, as every real Drone body does.
    pub fn decode(body: &[u8]) -> Result<Envelope, DecodeError> {
        Envelope::decode_with_header(body, None)
    }

    /// Decodes a body, taking the event from the `X-Drone-Event` header when the body
    /// has none (as in Drone's documentation examples).
    ///
    /// A body whose `event` disagrees with the header is an error: the header is not
    /// covered by Drone's signature and the body is.
    pub fn decode_with_header(
        body: &[u8],
        header_event: Option<&str>,
    ) -> Result<Envelope, DecodeError> {
        Envelope::decode_inner(body, header_event, true)
    }

    /// [`Envelope::decode_with_header`] without its fast path: serde alone. Not part of
    /// the API; the tests and the fuzz target compare the two on every input.
    #[doc(hidden)]
    pub fn decode_with_header_serde(
        body: &[u8],
        header_event: Option<&str>,
    ) -> Result<Envelope, DecodeError> {
        Envelope::decode_inner(body, header_event, false)
    }

    fn decode_inner(
        body: &[u8],
        header_event: Option<&str>,
        fast: bool,
    ) -> Result<Envelope, DecodeError> {
        // Validating the whole body once and parsing it as `&str` is cheaper than
        // letting serde_json validate every string separately (17% of decoding in a
        // profile). Invalid UTF-8 goes through `from_slice` only to get its error,
        // with the position, exactly as before. The SIMD validator is about four times
        // std's on a Drone body; it says only whether the bytes are valid, which is all
        // this needs.
        let parsed = match simdutf8::basic::from_utf8(body) {
            // The schema-directed scanner builds ordinary payloads in about half of
            // serde's time; it declines anything unusual, errors included, which serde
            // then reads.
            Ok(text) => match fast.then(|| crate::check::fast::decode(text)).flatten() {
                Some(envelope) => Ok(envelope),
                None => serde_json::from_str(text),
            },
            Err(_) => serde_json::from_slice(body),
        };
        let mut envelope: Envelope = parsed.map_err(|e| DecodeError::from_json(&e))?;
        let header = header_event.map(str::trim).filter(|h| !h.is_empty());
        match (envelope.event.as_str().is_empty(), header) {
            (true, None) => return Err(DecodeError::EventMissing),
            (true, Some(h)) => envelope.event = Event::parse(h),
            (false, Some(h)) if h != envelope.event.as_str() => {
                return Err(DecodeError::EventMismatch {
                    header: h.to_owned(),
                    body: envelope.event.as_str().to_owned(),
                });
            }
            (false, _) => {}
        }
        Ok(envelope)
    }

    /// The exact bytes Drone would send for this envelope: Go `encoding/json` output,
    /// compact, with no trailing newline.
    pub fn encode(&self) -> Vec<u8> {
        // Room for a build payload with a few stages (Drone's are 2 to 4 KB) without
        // growing and copying twice on the way.
        let mut out = Vec::with_capacity(4096);
        self.encode_into(&mut out);
        out
    }

    /// Appends the encoding to a buffer, so a sender can reuse one allocation.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        self.write_object(out);
    }

    /// Whether both the event and the action are ones this crate names.
    pub fn is_known(&self) -> bool {
        self.event.is_known() && self.action.is_known()
    }

    /// The repository's `namespace/name`, when the payload has a repository.
    pub fn repo_slug(&self) -> Option<&str> {
        self.repo
            .as_deref()
            .map(|r| r.slug.as_str())
            .filter(|s| !s.is_empty())
    }

    /// The build number, when the payload has a build.
    pub fn build_number(&self) -> Option<i64> {
        self.build.as_deref().map(|b| b.number)
    }

    /// The name filters match against: `event:action`, or `event` when the action is
    /// empty (Drone's rule).
    pub fn filter_name(&self) -> String {
        crate::filter::filter_name(self.event.as_str(), self.action.as_str())
    }
}
