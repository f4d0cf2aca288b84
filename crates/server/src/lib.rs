//! The dronehook receiver: a hyper server that verifies, journals and dispatches Drone
//! CI webhook events, and never loses one it acknowledged.
//!
//! A request is verified with [`dronehook_protocol::Policy`] (signature, body digest,
//! date), checked against replays, committed to the optional SQLite [`Journal`], then
//! answered and handed to the [`Handler`]s a [`Router`] picks by `event:action`.
//!
//! | outcome | status | body |
//! | --- | --- | --- |
//! | delivered | 204 | |
//! | replay of an accepted body | 204 + `Dronehook-Duplicate: true` | |
//! | unknown event or action | 202 | |
//! | malformed signature, date, digest or payload; a duplicate key; two `X-Drone-Event` | 400 | the error code, e.g. `payload.invalid`, `payload.duplicate_key`, `payload.event_repeated` |
//! | not authentic | 401 + `WWW-Authenticate` | the error code, e.g. `digest.mismatch` |
//! | other path / method | 404 / 405 + `Allow: POST` | `not_found` / `method_not_allowed` |
//! | body over the limit | 413 | `body.too_large` |
//! | body not complete within the request timeout | 408 | `request.timeout` |
//! | malformed head or framing; `chunked` twice | 400 | `transport.malformed` |
//! | a `Transfer-Encoding` other than one `chunked` | 501 | `transfer_encoding.unsupported` |
//! | head over [`MAX_HEADERS`] lines or [`MAX_HEAD_BYTES`]; target over 64 KiB | 431; 414 | `headers.too_large`; `uri.too_long` |
//! | compressed body / not JSON | 415 | `encoding.unsupported` / `content_type.unsupported` |
//! | journal commit failed | 503 | `journal.unavailable` |
//! | PostgreSQL store commit failed | 503 + `Retry-After` | `store.unavailable` |
//! | replay check full (no journal) | 503 + `Retry-After` | `replay.full` |
//! | handler failed (no journal) | 500 | the handler's message |
//!
//! `GET /healthz` and `GET /metrics` (Prometheus text) are served on the same listener.
//!
//! # Example
//!
//! A receiver on a free port of 127.0.0.1 with one route, and a build event signed as
//! Drone signs it, sent over a plain TCP connection:
//!
//! ```
//! use std::io::{Read, Write};
//! use std::time::SystemTime;
//! use dronehook_server::protocol::{Policy, SignInput, Signer, samples};
//! use dronehook_server::{Config, Delivery, Router, Server};
//!
//! # #[tokio::main(flavor = "multi_thread", worker_threads = 2)]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::builder(Policy::new("s3cr3t"))
//!     .addr("127.0.0.1:0".parse()?) // in production, also .journal("journal.db")
//!     .build();
//! let router = Router::new().route("build:*", |d: Delivery| async move {
//!     println!("build #{:?} of {:?}", d.envelope.build_number(), d.envelope.repo_slug());
//!     Ok::<_, std::io::Error>(())
//! })?;
//! let server = Server::bind(config, router).await?;
//! let addr = server.local_addr();
//!
//! // What Drone sends when a build finishes, signed now.
//! let sample = samples::get("build_finished").expect("a built-in sample");
//! let signed = Signer::new("s3cr3t").sign(&SignInput::new(&sample.body, SystemTime::now()))?;
//! let mut request = format!("POST / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
//! for (name, value) in signed.headers(sample.header_event) {
//!     request += &format!("{name}: {value}\r\n");
//! }
//! request += &format!("Content-Length: {}\r\n\r\n", sample.body.len());
//! let answer = tokio::task::spawn_blocking(move || -> std::io::Result<String> {
//!     let mut conn = std::net::TcpStream::connect(addr)?;
//!     conn.write_all(request.as_bytes())?;
//!     conn.write_all(&sample.body)?;
//!     let mut answer = String::new();
//!     conn.read_to_string(&mut answer)?;
//!     Ok(answer)
//! })
//! .await??;
//! assert!(answer.starts_with("HTTP/1.1 204"), "{answer}");
//!
//! // A program serves until SIGINT or SIGTERM: `server.run_until_signal().await?`.
//! server.shutdown().await?;
//! # Ok(()) }
//! ```

mod closing;
mod config;
mod dispatch;
mod error;
mod framing;
mod handler;
mod journal;
mod metrics;
mod replay;
mod server;
mod service;
mod shutdown;
mod sniff;
mod store;
mod tls;

pub use closing::{LINGER_BYTES, LINGER_TIME};
pub use config::{
    Config, ConfigBuilder, DEFAULT_ADDR, DEFAULT_HEADER_TIMEOUT, DEFAULT_IDLE_TIMEOUT,
    DEFAULT_LEASE, DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_BODY, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_ROWS, DEFAULT_PATH, DEFAULT_REPLAY_RATE, DEFAULT_REQUEST_TIMEOUT, DEFAULT_RETAIN,
    DEFAULT_RETRY_BASE, DEFAULT_RETRY_MAX, DEFAULT_SHUTDOWN_GRACE, DEFAULT_WORKERS, TlsFiles,
};
pub use error::{Error, Result};
pub use framing::{MAX_HEAD_BYTES, MAX_HEADERS};
pub use handler::{
    Delivery, FALLBACK_NAME, Handler, HandlerError, HandlerFuture, HandlerRecord, Observation,
    RequestRecord, Router,
};
pub use journal::{BadRunStatus, HandlerRun, Journal, JournalEntry, MAX_RUN_OUTPUT, RunStatus};
pub use server::Server;
pub use shutdown::ShutdownHandle;
pub use store::{
    BadStoreUrl, EventQuery, EventSummary, Pruned, Store, StoreStats, StoreUrl, StoredEvent,
};

/// Re-exported so users name the same protocol types.
pub use dronehook_protocol as protocol;
