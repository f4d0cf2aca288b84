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
//! | replay of an accepted body | 204 | |
//! | unknown event or action | 202 | |
//! | malformed signature, date, digest or payload | 400 | the error code, e.g. `payload.invalid` |
//! | not authentic | 401 + `WWW-Authenticate` | the error code, e.g. `digest.mismatch` |
//! | other path / method | 404 / 405 + `Allow: POST` | `not_found` / `method_not_allowed` |
//! | body over the limit | 413 | `body.too_large` |
//! | compressed body / not JSON | 415 | `encoding.unsupported` / `content_type.unsupported` |
//! | journal commit failed | 503 | `journal.unavailable` |
//! | PostgreSQL store commit failed | 503 + `Retry-After` | `store.unavailable` |
//! | handler failed (no journal) | 500 | the handler's message |
//!
//! `GET /healthz` and `GET /metrics` (Prometheus text) are served on the same listener.
//!
//! # Example
//!
//! ```no_run
//! use dronehook_protocol::Policy;
//! use dronehook_server::{Config, Delivery, Router, Server};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let config = Config::builder(Policy::new("s3cr3t"))
//!     .addr("127.0.0.1:3000".parse()?)
//!     .journal("journal.db")
//!     .build();
//! let router = Router::new().route("build:*", |d: Delivery| async move {
//!     println!("build #{:?} of {:?}", d.envelope.build_number(), d.envelope.repo_slug());
//!     Ok::<_, std::io::Error>(())
//! })?;
//! let server = Server::bind(config, router).await?;
//! println!("listening on {}", server.local_addr());
//! server.run_until_signal().await?;
//! # Ok(()) }
//! ```

mod config;
mod dispatch;
mod error;
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

pub use config::{
    Config, ConfigBuilder, DEFAULT_ADDR, DEFAULT_HEADER_TIMEOUT, DEFAULT_IDLE_TIMEOUT,
    DEFAULT_LEASE, DEFAULT_MAX_ATTEMPTS, DEFAULT_MAX_BODY, DEFAULT_MAX_CONNECTIONS,
    DEFAULT_MAX_ROWS, DEFAULT_PATH, DEFAULT_REPLAY_RATE, DEFAULT_REQUEST_TIMEOUT, DEFAULT_RETAIN,
    DEFAULT_RETRY_BASE, DEFAULT_RETRY_MAX, DEFAULT_SHUTDOWN_GRACE, DEFAULT_WORKERS, TlsFiles,
};
pub use error::{Error, Result};
pub use handler::{
    Delivery, FALLBACK_NAME, Handler, HandlerError, HandlerFuture, HandlerRecord, Observation,
    RequestRecord, Router,
};
pub use journal::{HandlerRun, Journal, JournalEntry, RunStatus};
pub use server::Server;
pub use shutdown::ShutdownHandle;
pub use store::{BadStoreUrl, StoreUrl};

/// Re-exported so users name the same protocol types.
pub use dronehook_protocol as protocol;
