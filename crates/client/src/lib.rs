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
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use dronehook_client::Client;
//! use dronehook_protocol::{Action, Envelope, Event, EventFilter};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let client = Client::builder()
//!     .secret("correct-horse-battery-staple")
//!     .endpoint("https://hooks.example.com/drone")
//!     .endpoint("http://10.0.0.7:3000/")
//!     .events(EventFilter::parse("build:*,repo:enabled")?)
//!     .timeout(Duration::from_secs(10))
//!     .attempts(5)
//!     .build()?;
//!
//! let mut envelope = Envelope::default();
//! envelope.event = Event::Build;
//! envelope.action = Action::Updated;
//! let report = client.send(&envelope).await;
//! for delivery in &report.deliveries {
//!     match &delivery.error {
//!         None => println!("{}: {:?} after {} attempt(s)", delivery.endpoint, delivery.status, delivery.attempts),
//!         Some(e) => println!("{}: failed ({}): {e}", delivery.endpoint, e.class()),
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! A runnable version of the same, against a receiver on 127.0.0.1:
//!
//! ```
//! use dronehook_client::{Client, Payload};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // A receiver that answers every request with 204, as Drone's reference does.
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
//! let url = format!("http://{}/", listener.local_addr()?);
//! tokio::spawn(async move {
//!     use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!     let (mut conn, _) = listener.accept().await.unwrap();
//!     let mut buf = vec![0; 64 * 1024];
//!     let mut seen = Vec::new();
//!     // Read the headers and the body (its length is in Content-Length).
//!     loop {
//!         let n = conn.read(&mut buf).await.unwrap();
//!         seen.extend_from_slice(&buf[..n]);
//!         let text = String::from_utf8_lossy(&seen).to_ascii_lowercase();
//!         if let Some(end) = text.find("\r\n\r\n") {
//!             let len: usize = text.split("content-length: ").nth(1).unwrap()
//!                 .split("\r\n").next().unwrap().parse().unwrap();
//!             if seen.len() >= end + 4 + len { break; }
//!         }
//!     }
//!     conn.write_all(b"HTTP/1.1 204 No Content\r\n\r\n").await.unwrap();
//! });
//!
//! let client = Client::builder().secret("s3cr3t").endpoint(&url).attempts(1).build()?;
//! let body = br#"{"event":"user","action":"created","user":{"login":"octocat"}}"#;
//! let report = client.send_payload(&Payload::raw(&body[..], "user", "created")).await;
//! assert!(report.is_success());
//! assert_eq!(report.deliveries[0].status.map(|s| s.as_u16()), Some(204));
//! # Ok(()) }
//! ```

mod error;
mod payload;
mod report;
mod retry;
mod tls;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use dronehook_protocol::{Envelope, EventFilter, Secret, SignInput, Signer};
use http::header::{CONTENT_TYPE, HOST, USER_AGENT};
use http::{HeaderName, HeaderValue, Request, StatusCode, Uri};
use http_body_util::{BodyExt as _, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls_pki_types::CertificateDer;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

pub use error::Error;
use error::Kind;
pub use payload::Payload;
pub use report::{BulkReport, Delivery, EndpointSummary, Progress, Report, Summary};
pub use tls::Roots;

/// Drone's timeout for one request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(60);
/// The default number of attempts per endpoint (1 is Drone's behaviour).
pub const DEFAULT_ATTEMPTS: u32 = 5;
/// The default first backoff; it doubles with each retry.
pub const DEFAULT_BACKOFF_BASE: Duration = Duration::from_millis(500);
/// The default longest backoff.
pub const DEFAULT_BACKOFF_MAX: Duration = Duration::from_secs(30);
/// The default longest wait a `Retry-After` can ask for; longer asks are cut to it.
pub const DEFAULT_MAX_RETRY_AFTER: Duration = Duration::from_secs(60);
/// The default `User-Agent`.
pub const DEFAULT_USER_AGENT: &str = concat!("dronehook/", env!("CARGO_PKG_VERSION"));

/// Events queued per `send_all` worker, the one it is sending included.
const BULK_AHEAD: usize = 2;
/// How much of a failing response's body is kept for the error message.
const BODY_EXCERPT: usize = 512;
/// How much of a response's body is read before the connection is given up on.
/// Reading the body lets the connection go back to the pool; a receiver that
/// answers a webhook with more than this is not worth a kept-alive connection.
const BODY_DRAIN_LIMIT: usize = 64 * 1024;

type Connector = HttpsConnector<HttpConnector>;

/// Builds a [`Client`]; start with [`Client::builder`].
#[derive(Clone)]
pub struct ClientBuilder {
    secret: Option<Secret>,
    endpoints: Vec<String>,
    events: EventFilter,
    timeout: Duration,
    attempts: u32,
    backoff_base: Duration,
    backoff_max: Duration,
    max_retry_after: Duration,
    skip_verify: bool,
    roots: Roots,
    extra_roots: Vec<CertificateDer<'static>>,
    user_agent: String,
    pool_max_idle_per_host: usize,
    pool_idle_timeout: Duration,
    error: Option<Error>,
}

impl fmt::Debug for ClientBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientBuilder")
            .field("secret", &self.secret)
            .field(
                "endpoints",
                &self.endpoints.iter().map(|u| redact(u)).collect::<Vec<_>>(),
            )
            .field("events", &self.events)
            .field("timeout", &self.timeout)
            .field("attempts", &self.attempts)
            .field("skip_verify", &self.skip_verify)
            .field("roots", &self.roots)
            .finish_non_exhaustive()
    }
}

impl Default for ClientBuilder {
    fn default() -> Self {
        ClientBuilder {
            secret: None,
            endpoints: Vec::new(),
            events: EventFilter::all(),
            timeout: DEFAULT_TIMEOUT,
            attempts: DEFAULT_ATTEMPTS,
            backoff_base: DEFAULT_BACKOFF_BASE,
            backoff_max: DEFAULT_BACKOFF_MAX,
            max_retry_after: DEFAULT_MAX_RETRY_AFTER,
            skip_verify: false,
            roots: Roots::Webpki,
            extra_roots: Vec::new(),
            user_agent: DEFAULT_USER_AGENT.to_owned(),
            pool_max_idle_per_host: usize::MAX,
            pool_idle_timeout: Duration::from_secs(90),
            error: None,
        }
    }
}

impl ClientBuilder {
    /// The shared secret (`DRONE_WEBHOOK_SECRET`), used as raw bytes. Required.
    pub fn secret(mut self, secret: impl Into<Secret>) -> Self {
        self.secret = Some(secret.into());
        self
    }

    /// Adds an endpoint URL (`http` or `https`).
    pub fn endpoint(mut self, url: impl AsRef<str>) -> Self {
        self.endpoints.push(url.as_ref().trim().to_owned());
        self
    }

    /// Adds several endpoint URLs.
    pub fn endpoints<I, S>(mut self, urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.endpoints
            .extend(urls.into_iter().map(|u| u.as_ref().trim().to_owned()));
        self
    }

    /// Adds the endpoints of a `DRONE_WEBHOOK_ENDPOINT` value: comma-separated, blank
    /// entries ignored.
    pub fn endpoint_list(self, list: &str) -> Self {
        self.endpoints(list.split(',').map(str::trim).filter(|s| !s.is_empty()))
    }

    /// Which events are sent (`DRONE_WEBHOOK_EVENTS`); the default sends everything.
    pub fn events(mut self, filter: EventFilter) -> Self {
        self.events = filter;
        self
    }

    /// The time limit of one attempt: connecting, sending, and reading the response.
    /// Default 60 s, Drone's.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// Attempts per endpoint and event, at least 1. Default 5; 1 is Drone's behaviour.
    pub fn attempts(mut self, attempts: u32) -> Self {
        self.attempts = attempts;
        self
    }

    /// The backoff: the first retry waits about `base`, each next one twice as long,
    /// never more than `max` (a random point in the upper half of that, for jitter).
    /// Default 500 ms and 30 s.
    pub fn backoff(mut self, base: Duration, max: Duration) -> Self {
        self.backoff_base = base;
        self.backoff_max = max;
        self
    }

    /// The longest wait a receiver's `Retry-After` is obeyed for; a longer ask waits
    /// this long. Default 60 s.
    pub fn max_retry_after(mut self, max: Duration) -> Self {
        self.max_retry_after = max;
        self
    }

    /// Accepts any server certificate (Drone's `DRONE_WEBHOOK_SKIP_VERIFY`, which
    /// Drone parses but never applies). For test setups only.
    pub fn skip_verify(mut self, skip: bool) -> Self {
        self.skip_verify = skip;
        self
    }

    /// Which roots are trusted for `https` (default: [`Roots::Webpki`]).
    pub fn roots(mut self, roots: Roots) -> Self {
        self.roots = roots;
        self
    }

    /// Also trusts the certificates in this PEM text (a private CA, a self-signed
    /// receiver). A text that holds no certificate makes [`build`](Self::build) fail.
    pub fn add_root_certificate(mut self, pem: impl AsRef<[u8]>) -> Self {
        match tls::parse_pem(pem.as_ref()) {
            Ok(certs) => self.extra_roots.extend(certs),
            Err(e) => {
                self.error.get_or_insert(e);
            }
        }
        self
    }

    /// Also trusts this DER certificate.
    pub fn add_root_certificate_der(mut self, der: impl Into<Vec<u8>>) -> Self {
        self.extra_roots.push(CertificateDer::from(der.into()));
        self
    }

    /// The `User-Agent` header (default `dronehook/<version>`; Drone sends
    /// `Go-http-client/1.1`).
    pub fn user_agent(mut self, agent: impl Into<String>) -> Self {
        self.user_agent = agent.into();
        self
    }

    /// How many idle kept-alive connections are kept per endpoint host (default: no limit).
    pub fn pool_max_idle_per_host(mut self, max: usize) -> Self {
        self.pool_max_idle_per_host = max;
        self
    }

    /// How long an idle kept-alive connection is kept (default 90 s).
    pub fn pool_idle_timeout(mut self, idle: Duration) -> Self {
        self.pool_idle_timeout = idle;
        self
    }

    /// Builds the client. Fails when the secret or every endpoint is missing, an
    /// endpoint is not an absolute `http`/`https` URL, `attempts` is 0, the timeout
    /// is zero, or a root certificate is unusable.
    pub fn build(self) -> Result<Client, Error> {
        if let Some(e) = self.error {
            return Err(e);
        }
        let secret = self
            .secret
            .ok_or_else(|| Error::builder("no secret given"))?;
        if self.endpoints.is_empty() {
            return Err(Error::builder("no endpoint given"));
        }
        if self.attempts == 0 {
            return Err(Error::builder("attempts must be at least 1"));
        }
        if self.timeout.is_zero() {
            return Err(Error::builder("the timeout must be longer than zero"));
        }
        let endpoints = self
            .endpoints
            .iter()
            .map(|url| Endpoint::parse(url))
            .collect::<Result<Vec<_>, _>>()?;
        let user_agent = HeaderValue::from_str(&self.user_agent)
            .map_err(|_| Error::builder("the user agent is not a valid header value"))?;

        let tls = tls::config(self.roots, &self.extra_roots, self.skip_verify)?;
        let mut http = HttpConnector::new();
        http.enforce_http(false);
        // Webhook requests are small and latency-bound: Nagle's delay only hurts.
        http.set_nodelay(true);
        let connector = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .wrap_connector(http);
        let http = HyperClient::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(self.pool_idle_timeout)
            .pool_max_idle_per_host(self.pool_max_idle_per_host)
            .build(connector);

        Ok(Client {
            inner: Arc::new(Inner {
                signer: Signer::new(secret),
                endpoints,
                events: self.events,
                timeout: self.timeout,
                attempts: self.attempts,
                backoff_base: self.backoff_base,
                backoff_max: self.backoff_max,
                max_retry_after: self.max_retry_after,
                user_agent,
                http,
            }),
        })
    }
}

/// One configured endpoint.
struct Endpoint {
    /// The URL as shown in reports, with any password replaced by `***`.
    url: String,
    /// The URL requests go to, without user information.
    uri: Uri,
    /// The `Host` header: the host and any explicit port, as Go sends it.
    host: HeaderValue,
    /// `Authorization: Basic` from user information in the URL, as Go's client adds it.
    authorization: Option<HeaderValue>,
}

impl Endpoint {
    fn parse(url: &str) -> Result<Endpoint, Error> {
        // Messages quote the URL only after its password is hidden.
        let shown = redact(url);
        let uri: Uri = url
            .parse()
            .map_err(|e| Error::builder(format!("endpoint {shown:?} is not a URL: {e}")))?;
        match uri.scheme_str() {
            Some("http" | "https") => {}
            _ => {
                return Err(Error::builder(format!(
                    "endpoint {shown:?} must start with http:// or https://"
                )));
            }
        }
        let (Some(authority), Some(host)) = (uri.authority(), uri.host()) else {
            return Err(Error::builder(format!("endpoint {shown:?} has no host")));
        };
        if host.is_empty() {
            return Err(Error::builder(format!("endpoint {shown:?} has no host")));
        }
        let host_port = match uri.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        let authorization = authority
            .as_str()
            .rsplit_once('@')
            .map(|(userinfo, _)| basic_auth(userinfo))
            .transpose()
            .map_err(|()| Error::builder(format!("endpoint {shown:?} has unusable credentials")))?;
        let mut parts = uri.into_parts();
        parts.authority = Some(
            host_port
                .parse()
                .map_err(|_| Error::builder(format!("endpoint {shown:?} has no host")))?,
        );
        let uri = Uri::from_parts(parts)
            .map_err(|e| Error::builder(format!("endpoint {shown:?} is not a URL: {e}")))?;
        let host = HeaderValue::from_str(&host_port)
            .map_err(|_| Error::builder(format!("endpoint {shown:?} has no host")))?;
        Ok(Endpoint {
            url: shown,
            uri,
            host,
            authorization,
        })
    }
}

/// Hides the password of `scheme://user:password@host/...` behind `***`.
fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            let hidden = if userinfo.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{hidden}@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

/// `Basic base64(user:password)` from percent-encoded user information.
fn basic_auth(userinfo: &str) -> Result<HeaderValue, ()> {
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let credentials = format!("{}:{}", percent_decode(user)?, percent_decode(password)?);
    let mut value =
        HeaderValue::from_str(&format!("Basic {}", base64_encode(credentials.as_bytes())))
            .map_err(|_| ())?;
    value.set_sensitive(true);
    Ok(value)
}

fn percent_decode(s: &str) -> Result<String, ()> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or(())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| ())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ())
}

fn base64_encode(input: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(input)
}

struct Inner {
    signer: Signer,
    endpoints: Vec<Endpoint>,
    events: EventFilter,
    timeout: Duration,
    attempts: u32,
    backoff_base: Duration,
    backoff_max: Duration,
    max_retry_after: Duration,
    user_agent: HeaderValue,
    http: HyperClient<Connector, Full<Bytes>>,
}

/// Sends Drone webhooks to a set of endpoints. Cheap to clone: clones share the
/// settings and the kept-alive connection pool.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The secret stays out, and so does the pool's state.
        f.debug_struct("Client")
            .field("endpoints", &self.endpoints().collect::<Vec<_>>())
            .field("events", &self.inner.events)
            .field("timeout", &self.inner.timeout)
            .field("attempts", &self.inner.attempts)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Starts a builder.
    pub fn builder() -> ClientBuilder {
        ClientBuilder::default()
    }

    /// The endpoint URLs, in order.
    pub fn endpoints(&self) -> impl ExactSizeIterator<Item = &str> {
        self.inner.endpoints.iter().map(|e| e.url.as_str())
    }

    /// The event filter.
    pub fn events(&self) -> &EventFilter {
        &self.inner.events
    }

    /// Encodes an envelope as Drone does and sends it to every endpoint (when the
    /// event filter lets it through). Returns when every endpoint has succeeded or
    /// used up its attempts.
    pub async fn send(&self, envelope: &Envelope) -> Report {
        self.send_payload(&Payload::from_envelope(envelope)).await
    }

    /// Sends bytes untouched (a captured body, byte for byte), signed afresh, with
    /// this `X-Drone-Event`. The action the event filter looks at is read from the
    /// body when it decodes as a Drone payload, and is empty otherwise.
    pub async fn send_raw(&self, body: impl Into<Bytes>, event: &str) -> Report {
        let body = body.into();
        let action = Payload::raw_detect(body.clone(), Some(event))
            .map(|p| p.action().to_owned())
            .unwrap_or_default();
        let payload = Payload::raw(body, event, action);
        self.send_payload(&payload).await
    }

    /// Sends a payload to every endpoint (when the event filter lets it through).
    pub async fn send_payload(&self, payload: &Payload) -> Report {
        self.send_with(payload, |_| {}).await
    }

    /// Like [`send_payload`](Self::send_payload), and calls `on_delivery` as soon as
    /// each endpoint is done, so a caller sees a fast endpoint's outcome while a slow
    /// one is still being tried.
    pub async fn send_with(&self, payload: &Payload, on_delivery: impl FnMut(&Delivery)) -> Report {
        self.send_limited(payload, None, on_delivery).await
    }

    /// Sends many payloads, with at most `concurrency` deliveries in flight per
    /// endpoint (0 counts as 1), calling `progress` after each event completes.
    ///
    /// Endpoints stay independent here too: each has its own in-flight limit, so a
    /// slow endpoint does not hold the others back until it lags about
    /// `16 × concurrency` events behind (at most `32 × concurrency` events are held in
    /// memory at once). With one endpoint, `concurrency` events are in flight at once.
    ///
    /// The reports come back in input order.
    pub async fn send_all<I>(
        &self,
        payloads: I,
        concurrency: usize,
        mut progress: impl FnMut(Progress<'_>),
    ) -> BulkReport
    where
        I: IntoIterator<Item = Payload>,
    {
        let concurrency = concurrency.max(1);
        // With one endpoint the window itself is the in-flight limit. With several,
        // each endpoint has its own limit and the window is wider, so that a fast
        // endpoint can run ahead of a slow one.
        let (window, limits) = if self.inner.endpoints.len() == 1 {
            (concurrency, None)
        } else {
            let limits: Arc<[Arc<Semaphore>]> = self
                .inner
                .endpoints
                .iter()
                .map(|_| Arc::new(Semaphore::new(concurrency)))
                .collect();
            (concurrency.saturating_mul(16).max(64), Some(limits))
        };
        let payloads = payloads.into_iter();
        let total = match payloads.size_hint() {
            (lower, Some(upper)) if lower == upper => Some(lower),
            _ => None,
        };
        let mut reports: Vec<Option<Report>> = Vec::with_capacity(total.unwrap_or(0));
        let mut completed = 0;
        let mut finish = |index: usize, report: Report, reports: &mut Vec<Option<Report>>| {
            completed += 1;
            progress(Progress {
                index,
                completed,
                total,
                report: &report,
            });
            reports[index] = Some(report);
        };

        // `window` long-lived workers, each with a queue of its own: cheaper than a
        // task per event, and the input iterator stays on this task (it need not be
        // Send). A worker's queue holds one event besides the one it is sending, so
        // it never waits for this task to hand it the next.
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<(usize, usize, Report)>();
        let mut queues = Vec::with_capacity(window);
        let mut workers = JoinSet::new();
        for worker in 0..window {
            let (job_tx, mut job_rx) = mpsc::channel::<(usize, Payload)>(BULK_AHEAD);
            queues.push(job_tx);
            let (client, limits, done_tx) = (self.clone(), limits.clone(), done_tx.clone());
            workers.spawn(async move {
                while let Some((index, payload)) = job_rx.recv().await {
                    let report = client.send_limited(&payload, limits.as_ref(), |_| {}).await;
                    if done_tx.send((worker, index, report)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(done_tx);

        let mut payloads = payloads.enumerate().peekable();
        let mut assigned = vec![0usize; window];
        let mut pending = 0usize;
        // Hands the next event to a worker with room for it; false when it has none
        // or the input is used up.
        let mut assign = |worker: usize,
                          assigned: &mut Vec<usize>,
                          pending: &mut usize,
                          reports: &mut Vec<Option<Report>>|
         -> bool {
            if assigned[worker] >= BULK_AHEAD || queues[worker].capacity() == 0 {
                return false;
            }
            let Some((index, payload)) = payloads.next() else {
                return false;
            };
            reports.push(None);
            // The capacity was checked above and only this task sends, so this holds.
            if queues[worker].try_send((index, payload)).is_err() {
                return false;
            }
            assigned[worker] += 1;
            *pending += 1;
            true
        };
        // Spread the first events over all workers before giving any a second one.
        for _ in 0..BULK_AHEAD {
            for worker in 0..window {
                assign(worker, &mut assigned, &mut pending, &mut reports);
            }
        }
        while pending > 0 {
            tokio::select! {
                biased;
                Some((worker, index, report)) = done_rx.recv() => {
                    let mut done = vec![(worker, index, report)];
                    // Collect whatever else is ready, so this task wakes once per batch.
                    while let Ok(more) = done_rx.try_recv() {
                        done.push(more);
                    }
                    for (worker, index, report) in done {
                        assigned[worker] -= 1;
                        pending -= 1;
                        finish(index, report, &mut reports);
                        while assign(worker, &mut assigned, &mut pending, &mut reports) {}
                    }
                }
                Some(joined) = workers.join_next() => {
                    // Workers end only when their queue closes, or by panicking, in
                    // which case the panic is carried on to the caller.
                    if let Err(e) = joined {
                        panicked(e);
                    }
                }
                // Reached only if every worker is gone with events pending, which the
                // branch above turns into the worker's panic first.
                else => break,
            }
        }
        BulkReport {
            reports: reports.into_iter().flatten().collect(),
        }
    }

    async fn send_limited(
        &self,
        payload: &Payload,
        limits: Option<&Arc<[Arc<Semaphore>]>>,
        mut on_delivery: impl FnMut(&Delivery),
    ) -> Report {
        let mut report = Report {
            event: payload.event().to_owned(),
            action: payload.action().to_owned(),
            digest: payload.digest(),
            sent: false,
            deliveries: Vec::new(),
        };
        if !self.inner.events.matches(payload.event(), payload.action()) {
            return report;
        }
        report.sent = true;
        let count = self.inner.endpoints.len();
        let limit = |i: usize| limits.map(|l| l[i].clone());
        if count == 1 {
            // One endpoint needs no task of its own.
            let delivery = deliver(self.inner.clone(), 0, payload.clone(), limit(0)).await;
            on_delivery(&delivery);
            report.deliveries.push(delivery);
            return report;
        }
        let mut slots: Vec<Option<Delivery>> = (0..count).map(|_| None).collect();
        let mut running = JoinSet::new();
        for i in 0..count {
            running.spawn(deliver(self.inner.clone(), i, payload.clone(), limit(i)));
        }
        while let Some(joined) = running.join_next().await {
            let delivery = joined.unwrap_or_else(|e| panicked(e));
            on_delivery(&delivery);
            let i = delivery.endpoint_index;
            slots[i] = Some(delivery);
        }
        report.deliveries = slots.into_iter().flatten().collect();
        report
    }
}

/// A delivery task can only end abnormally by panicking (tasks are never aborted
/// while joined here); the panic is carried on to the caller unchanged.
fn panicked(e: tokio::task::JoinError) -> ! {
    std::panic::resume_unwind(e.into_panic())
}

/// Delivers one payload to one endpoint, with retries.
async fn deliver(
    inner: Arc<Inner>,
    index: usize,
    payload: Payload,
    limit: Option<Arc<Semaphore>>,
) -> Delivery {
    // The semaphore is never closed, so acquiring can only succeed.
    let _permit = match &limit {
        Some(sem) => sem.acquire().await.ok(),
        None => None,
    };
    let endpoint = &inner.endpoints[index];
    let started = Instant::now();
    let mut attempts = 0;
    let mut last_status = None;
    let error = loop {
        attempts += 1;
        let outcome = attempt(&inner, endpoint, &payload).await;
        let (error, wait) = match outcome {
            Ok(response) if response.status.is_success() => {
                last_status = Some(response.status);
                break None;
            }
            Ok(response) => {
                last_status = Some(response.status);
                let wait = response.retry_after.map(|d| d.min(inner.max_retry_after));
                let error = Error::new(Kind::Status {
                    status: response.status,
                    body: response.excerpt,
                });
                (error, wait)
            }
            Err(error) => (error, None),
        };
        if attempts >= inner.attempts || !error.is_retryable() {
            break Some(error);
        }
        let wait =
            wait.unwrap_or_else(|| retry::backoff(attempts, inner.backoff_base, inner.backoff_max));
        tokio::time::sleep(wait).await;
    };
    Delivery {
        endpoint: endpoint.url.clone(),
        endpoint_index: index,
        status: last_status,
        attempts,
        elapsed: started.elapsed(),
        error,
    }
}

/// What one attempt got back.
struct Response {
    status: StatusCode,
    retry_after: Option<Duration>,
    excerpt: String,
}

/// One attempt: sign with a fresh `Date`, send, read the answer, all within the timeout.
async fn attempt(inner: &Inner, endpoint: &Endpoint, payload: &Payload) -> Result<Response, Error> {
    let request = request(inner, endpoint, payload)?;
    match tokio::time::timeout(inner.timeout, exchange(inner, request)).await {
        Ok(result) => result,
        Err(_) => Err(Error::new(Kind::Timeout(inner.timeout))),
    }
}

fn request(
    inner: &Inner,
    endpoint: &Endpoint,
    payload: &Payload,
) -> Result<Request<Full<Bytes>>, Error> {
    // The clock is read here, for each attempt: the protocol crate never reads it.
    let signed = inner
        .signer
        .sign(&SignInput::new(payload.body(), SystemTime::now()))
        .map_err(|e| Error::with_source(Kind::Sign, e))?;
    let mut builder = Request::post(endpoint.uri.clone());
    let headers = builder
        .headers_mut()
        .ok_or_else(|| Error::builder("bad request"))?;
    // Go writes Host first; setting it here keeps that order on the wire.
    headers.insert(HOST, endpoint.host.clone());
    headers.insert(USER_AGENT, inner.user_agent.clone());
    if let Some(authorization) = &endpoint.authorization {
        headers.insert(http::header::AUTHORIZATION, authorization.clone());
    }
    let value = |s: &str| HeaderValue::from_str(s).map_err(|e| Error::with_source(Kind::Sign, e));
    // Drone's headers, in the order Drone sets them.
    headers.insert(
        HeaderName::from_static("x-drone-event"),
        value(payload.event())?,
    );
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    headers.insert(HeaderName::from_static("digest"), value(&signed.digest)?);
    headers.insert(http::header::DATE, value(&signed.date)?);
    headers.insert(
        HeaderName::from_static("signature"),
        value(&signed.signature)?,
    );
    builder
        .body(Full::new(payload.body().clone()))
        .map_err(|e| Error::with_source(Kind::Sign, e))
}

async fn exchange(inner: &Inner, request: Request<Full<Bytes>>) -> Result<Response, Error> {
    let response = inner.http.request(request).await.map_err(classify)?;
    let status = response.status();
    let retry_after = retry::retry_after(response.headers(), SystemTime::now());
    let mut body = response.into_body();
    let mut excerpt = Vec::new();
    let mut read = 0;
    while read < BODY_DRAIN_LIMIT {
        match body.frame().await {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    read += data.len();
                    if !status.is_success() && excerpt.len() < BODY_EXCERPT {
                        let room = BODY_EXCERPT - excerpt.len();
                        excerpt.extend_from_slice(&data[..data.len().min(room)]);
                    }
                }
            }
            // The status has arrived, which is what the delivery is judged by; a body
            // cut short only costs the connection its place in the pool.
            Some(Err(_)) | None => break,
        }
    }
    let excerpt = String::from_utf8_lossy(&excerpt).trim().to_owned();
    Ok(Response {
        status,
        retry_after,
        excerpt,
    })
}

/// Sorts a hyper client error into the client's classes.
fn classify(e: hyper_util::client::legacy::Error) -> Error {
    let kind = if is_tls(&e) {
        Kind::Tls
    } else if e.is_connect() {
        Kind::Connect
    } else {
        Kind::Io
    };
    Error::with_source(kind, e)
}

/// Whether a rustls error is somewhere in the cause chain. `io::Error` hides its
/// payload from `source()`, so it is unwrapped by hand.
fn is_tls(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if c.is::<rustls::Error>() {
            return true;
        }
        if let Some(inner) = c
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            && is_tls(inner)
        {
            return true;
        }
        cause = c.source();
    }
    false
}
