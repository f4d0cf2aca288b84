//! Drone CI's global webhooks, sans-IO.
//!
//! This crate holds what every part of dronehook agrees on, and does no I/O and
//! reads no clock (times are parameters):
//!
//! - the payload models ([`Envelope`], [`User`], [`Repo`], [`Build`], [`Stage`],
//!   [`Step`], [`System`]) with decoding that is lenient where Drone versions differ
//!   and strict where safety needs it (duplicate keys, trailing bytes, numbers out of
//!   range are errors), and encoding byte-identical to Drone's Go `encoding/json`;
//! - HTTP signatures as Drone sends them ([`Signer`]) and a verifier ([`Policy`]) that
//!   also checks what Drone's reference receiver does not: that the `Digest` matches
//!   the body, that the `Date` is recent, that the signature covers both;
//! - event filters with `DRONE_WEBHOOK_EVENTS` semantics ([`EventFilter`]).
//!
//! The models' strings are [`Text`]s: they dereference to `str`, and the short ones,
//! most of a payload's, need no allocation of their own.
//!
//! # Example
//!
//! Sign a payload as Drone does, then verify it as a receiver would:
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use dronehook_protocol::{Action, Envelope, Event, Policy, RequestParts, SignInput, Signer, User};
//! use http::HeaderMap;
//!
//! let mut envelope = Envelope::default();
//! envelope.event = Event::User;
//! envelope.action = Action::Created;
//! let mut user = User::default();
//! user.login = "octocat".into();
//! envelope.user = Some(Box::new(user));
//! let body = envelope.encode();
//!
//! let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
//! let signed = Signer::new("s3cr3t").sign(&SignInput::new(&body, now))?;
//!
//! let mut headers = HeaderMap::new();
//! for (name, value) in signed.headers("user") {
//!     headers.insert(name, value.parse()?);
//! }
//! let request = RequestParts::new("POST", "/", &headers, &body);
//! let (verified, decoded) = Policy::new("s3cr3t").verify_and_decode(&request, now)?;
//! assert_eq!(decoded, envelope);
//! assert_eq!(verified.secret_index, 0);
//!
//! // A different body under the same headers is refused: Drone's reference accepts it.
//! let forged = RequestParts::new("POST", "/", &headers, b"{\"event\":\"user\"}");
//! let err = Policy::new("s3cr3t").verify(&forged, now).unwrap_err();
//! assert_eq!(err.code(), "digest.mismatch");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod decode;
mod enums;
pub mod filter;
mod gojson;
mod json;
mod model;
#[cfg(feature = "samples")]
pub mod samples;
mod signature;
mod text;

pub use decode::{DecodeError, Outline, event_header};
pub use enums::{Action, Event, Status};
pub use filter::{BadPattern, EventFilter};
pub use model::{Build, Envelope, Extra, Perm, Repo, Stage, Step, System, User};
pub use signature::{
    ALGORITHM, BodyDigest, DEFAULT_MAX_SKEW, DRONE_HEADERS, DRONE_KEY_ID, Error, MAX_HEADER_LEN,
    ParseError, Policy, RequestParts, Secret, SignError, SignInput, SignatureParams, Signed,
    Signer, Verified, VerifyError, http_date,
};
pub use text::Text;

/// The response header a dronehook receiver adds, with the value `true`, to a 2xx
/// answer for a body it had already accepted (a replay): the sender's copy was a
/// duplicate, and its handlers did not run again.
pub const DUPLICATE_HEADER: &str = "dronehook-duplicate";

/// Not part of the API: seams for the tests and the fuzz targets, which compare the
/// decoder's fast path with serde alone on every input they make.
#[doc(hidden)]
pub mod __private {
    use crate::{DecodeError, Envelope};

    /// [`Envelope::decode_with_header`] without its fast path: serde alone.
    pub fn decode_with_header_serde(
        body: &[u8],
        header_event: Option<&str>,
    ) -> Result<Envelope, DecodeError> {
        Envelope::decode_inner(body, header_event, false)
    }
}

/// Re-exported so callers build [`RequestParts`] with the same `http` version.
pub use http;
