//! A catalog of hostile requests for Drone CI webhook receivers, and the means to
//! send it to one and score its answers.
//!
//! Each [`Case`] is a request a receiver must refuse (or, for a few, accept), with the
//! outcome expected from `dronehook serve` (a status and an error code,
//! [`ServerOutcome`]) and from `dronehook verify` ([`VerifyOutcome`]), and what
//! Drone's reference receiver does with it. The catalog is the single source of
//! these cases: `dronehook audit` sends it to any receiver, the conformance matrix
//! (`cargo xtask conformance`) runs it against `dronehook serve` and
//! `dronehook verify`, and the files in `fixtures/hostile/` are written from it
//! ([`Case::template_text`]).
//!
//! - [`all`] and [`get`]: the cases, grouped by what they attack ([`Group`]);
//! - [`Case::render`]: a case as the exact bytes of a request, signed with the
//!   receiver's secret at a given time ([`RenderContext`]), so the `Date` is fresh and
//!   any receiver can be tested with its own secret; like the protocol crate, the
//!   rendering reads no clock;
//! - [`raw`]: raw HTTP/1.1 messages, a request parser (for captured requests), a
//!   sans-IO response reader and a blocking exchange over TCP;
//! - [`run_case`]: every copy of a case sent through an [`Exchange`] and judged.
//!
//! # Example
//!
//! Render a case, read it back as a receiver would, and check it with the protocol
//! crate's verifier:
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use dronehook_audit::{RenderContext, VerifyOutcome, raw};
//! use dronehook_protocol::{Policy, RequestParts};
//!
//! let case = dronehook_audit::get("digest_body_replaced").unwrap();
//! assert_eq!(case.server.to_string(), "401 digest.mismatch");
//! assert_eq!(case.verify, VerifyOutcome::Code("digest.mismatch"));
//!
//! let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
//! let bytes = case.render(&RenderContext::new("s3cr3t", now).host("hooks.example"));
//! assert!(bytes.starts_with(b"POST / HTTP/1.1\r\nHost: hooks.example\r\n"));
//!
//! let request = raw::Request::parse(&bytes)?;
//! let parts = RequestParts::new(&request.method, &request.target, &request.headers, &request.body);
//! let err = Policy::new("s3cr3t").verify(&parts, now).unwrap_err();
//! assert_eq!(err.code(), "digest.mismatch");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Sending the catalog to a receiver over plain TCP is
//! `run_case(case, &ctx, &Tcp { addr, timeout })` for each case; `dronehook audit`
//! does the same over its own (TLS-capable) connections.

mod cases;
mod catalog;
pub mod raw;
mod render;
mod run;

pub use catalog::{
    Carrier, Case, Connection, Damage, DateSpec, DigestSpec, Framing, Group, Key, NONCE_MARKER,
    Pipelined, Replay, ServerOutcome, Sign, Template, Value, VerifyOutcome, all, get,
    response_code,
};
pub use render::{RenderContext, asctime_date, rfc850_date};
pub use run::{Answer, Exchange, Run, Tcp, run_case};
