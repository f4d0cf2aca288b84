//! The dronehook sender: signs, filters and delivers Drone webhook events.
//!
//! A [`Client`] sends each event to every configured endpoint, concurrently and
//! independently, with requests identical to Drone's (the body encoded by
//! [`dronehook_protocol`], headers `X-Drone-Event`, `Content-Type`, `Digest`, `Date`,
//! `Signature`, key id `hmac-key`). Where Drone stops at the first failing endpoint
//! and never retries, the client keeps going: a refusing or slow endpoint does not
//! stop or delay another, and failures worth repeating (connection errors, timeouts,
//! 408, 429, 5xx) are retried with exponential backoff and jitter, honouring
//! `Retry-After`, with a fresh `Date` and signature on every attempt.
//!
//! - [`Client::builder`] takes the settings (secret, endpoints, event filter, timeout,
//!   attempts, TLS roots) and [`ClientBuilder::build`] checks them.
//! - [`Client::send`] sends one [`Payload`] (or an `Envelope`) and gives a [`Report`]
//!   with an [`EndpointReport`] per endpoint; [`Client::send_all`] sends many, with a
//!   bounded number in flight per endpoint, and gives a [`BulkReport`].
//! - A [`Payload`] is an envelope encoded as Drone encodes it, or bytes sent untouched
//!   ([`Payload::raw`], [`Payload::captured`]).
//!
//! # Example
//!
//! A receiver on 127.0.0.1 that answers every request with 204, as Drone's reference
//! receiver does, and one event sent to it:
//!
//! ```
//! use std::time::Duration;
//! use dronehook_client::{Client, Payload};
//! use dronehook_protocol::EventFilter;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! # let url = format!("http://{}/", listener.local_addr()?);
//! # tokio::spawn(async move {
//! #     use tokio::io::{AsyncReadExt, AsyncWriteExt};
//! #     let (mut conn, _) = listener.accept().await.unwrap();
//! #     let (mut buf, mut seen) = (vec![0; 64 * 1024], Vec::new());
//! #     // Read the headers and the body (its length is in Content-Length).
//! #     loop {
//! #         let n = conn.read(&mut buf).await.unwrap();
//! #         seen.extend_from_slice(&buf[..n]);
//! #         let text = String::from_utf8_lossy(&seen).to_ascii_lowercase();
//! #         if let Some(end) = text.find("\r\n\r\n") {
//! #             let len: usize = text.split("content-length: ").nth(1).unwrap()
//! #                 .split("\r\n").next().unwrap().parse().unwrap();
//! #             if seen.len() >= end + 4 + len { break; }
//! #         }
//! #     }
//! #     conn.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").await.unwrap();
//! # });
//! // `url` is the receiver's address, e.g. http://127.0.0.1:3000/.
//! let client = Client::builder()
//!     .secret("correct-horse-battery-staple")
//!     .endpoint(&url)
//!     .events(EventFilter::parse("user:*,build:*")?)
//!     .timeout(Duration::from_secs(10))
//!     .attempts(3)
//!     .build()?;
//!
//! let body = br#"{"event":"user","action":"created","user":{"login":"octocat"}}"#;
//! let report = client.send(Payload::raw(&body[..], "user", "created")).await;
//! for endpoint in &report.endpoints {
//!     match &endpoint.error {
//!         None => println!("{}: {:?} after {} attempt(s)", endpoint.endpoint, endpoint.status, endpoint.attempts),
//!         Some(e) => println!("{}: failed ({}): {e}", endpoint.endpoint, e.class()),
//!     }
//! }
//! assert!(report.is_success());
//! assert_eq!(report.endpoints[0].status.map(|s| s.as_u16()), Some(204));
//! # Ok(()) }
//! ```
//!
//! An `Envelope` is sent the same way, encoded byte for byte as Drone encodes it, and
//! [`Sending::on_endpoint`] reports each endpoint as soon as it is done:
//!
//! ```no_run
//! # use dronehook_client::Client;
//! use dronehook_protocol::{Action, Envelope, Event};
//!
//! # async fn run(client: Client) {
//! let mut envelope = Envelope::default();
//! envelope.event = Event::Build;
//! envelope.action = Action::Updated;
//! let report = client
//!     .send(&envelope)
//!     .on_endpoint(|done| println!("{} is done: {}", done.endpoint, done.class()))
//!     .await;
//! # let _ = report; }
//! ```

mod builder;
mod endpoint;
mod error;
mod payload;
mod report;
mod retry;
mod send;
mod tls;

pub use builder::{
    ClientBuilder, DEFAULT_ATTEMPTS, DEFAULT_BACKOFF_BASE, DEFAULT_BACKOFF_MAX,
    DEFAULT_MAX_RETRY_AFTER, DEFAULT_TIMEOUT, DEFAULT_USER_AGENT,
};
pub use error::Error;
pub use payload::Payload;
pub use report::{BulkReport, EndpointReport, EndpointSummary, Progress, Report, Summary};
pub use send::{Client, Sending};
pub use tls::Roots;
