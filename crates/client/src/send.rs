//! [`Client`] and its delivery loop: every endpoint at once and on its own, with
//! retries; [`Client::send`] for one payload, [`Client::send_all`] for many.

use std::fmt;
use std::future::{Future, IntoFuture};
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use dronehook_protocol::{EventFilter, SignInput, Signer};
use http::header::{CONTENT_TYPE, HOST, USER_AGENT};
use http::{HeaderName, HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use crate::endpoint::Endpoint;
use crate::error::Kind;
use crate::{BulkReport, ClientBuilder, EndpointReport, Error, Payload, Progress, Report, retry};

/// Events queued per `send_all` worker, the one it is sending included.
const BULK_AHEAD: usize = 2;
/// How much of a failing response's body is kept for the error message.
const BODY_EXCERPT: usize = 512;
/// How much of a response's body is read before the connection is given up on.
/// Reading the body lets the connection go back to the pool; a receiver that
/// answers a webhook with more than this is not worth a kept-alive connection.
const BODY_DRAIN_LIMIT: usize = 64 * 1024;

type Connector = HttpsConnector<HttpConnector>;

pub(crate) struct Inner {
    pub(crate) signer: Signer,
    pub(crate) endpoints: Vec<Endpoint>,
    pub(crate) events: EventFilter,
    pub(crate) timeout: Duration,
    pub(crate) attempts: u32,
    pub(crate) backoff_base: Duration,
    pub(crate) backoff_max: Duration,
    pub(crate) max_retry_after: Duration,
    pub(crate) user_agent: HeaderValue,
    pub(crate) http: HyperClient<Connector, Full<Bytes>>,
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
    pub(crate) fn new(inner: Arc<Inner>) -> Self {
        Client { inner }
    }

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

    /// Sends one payload to every endpoint (when the event filter lets it through);
    /// the [`Report`] comes when every endpoint has succeeded or used up its attempts.
    ///
    /// `payload` is a [`Payload`], or an [`Envelope`](dronehook_protocol::Envelope)
    /// (`&envelope` or by value), encoded as Drone encodes it. Await the returned
    /// [`Sending`] for the report; [`Sending::on_endpoint`] also hands over each
    /// endpoint's outcome as soon as it is known.
    pub fn send(&self, payload: impl Into<Payload>) -> Sending<'_> {
        Sending {
            client: self,
            payload: payload.into(),
            on_endpoint: None,
        }
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
        mut on_endpoint: impl FnMut(&EndpointReport),
    ) -> Report {
        let mut report = Report {
            event: payload.event().to_owned(),
            action: payload.action().to_owned(),
            digest: payload.digest(),
            sent: false,
            endpoints: Vec::new(),
        };
        if !self.inner.events.matches(payload.event(), payload.action()) {
            return report;
        }
        report.sent = true;
        let count = self.inner.endpoints.len();
        let limit = |i: usize| limits.map(|l| l[i].clone());
        if count == 1 {
            // One endpoint needs no task of its own.
            let done = deliver(self.inner.clone(), 0, payload.clone(), limit(0)).await;
            on_endpoint(&done);
            report.endpoints.push(done);
            return report;
        }
        let mut slots: Vec<Option<EndpointReport>> = (0..count).map(|_| None).collect();
        let mut running = JoinSet::new();
        for i in 0..count {
            running.spawn(deliver(self.inner.clone(), i, payload.clone(), limit(i)));
        }
        while let Some(joined) = running.join_next().await {
            let done = joined.unwrap_or_else(|e| panicked(e));
            on_endpoint(&done);
            let i = done.endpoint_index;
            slots[i] = Some(done);
        }
        report.endpoints = slots.into_iter().flatten().collect();
        report
    }
}

/// One send, ready to go: await it for the [`Report`]. Made by [`Client::send`].
#[must_use = "nothing is sent until the send is awaited"]
pub struct Sending<'a> {
    client: &'a Client,
    payload: Payload,
    on_endpoint: Option<OnEndpoint<'a>>,
}

/// The callback of [`Sending::on_endpoint`].
type OnEndpoint<'a> = Box<dyn FnMut(&EndpointReport) + Send + 'a>;

impl<'a> Sending<'a> {
    /// Calls `f` as soon as each endpoint is done (succeeded or out of attempts), so
    /// a caller sees a fast endpoint's outcome while a slow one is still being tried.
    pub fn on_endpoint(mut self, f: impl FnMut(&EndpointReport) + Send + 'a) -> Self {
        self.on_endpoint = Some(Box::new(f));
        self
    }
}

impl fmt::Debug for Sending<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sending")
            .field("payload", &self.payload)
            .field("on_endpoint", &self.on_endpoint.is_some())
            .finish_non_exhaustive()
    }
}

impl<'a> IntoFuture for Sending<'a> {
    type Output = Report;
    type IntoFuture = Pin<Box<dyn Future<Output = Report> + Send + 'a>>;

    fn into_future(self) -> Self::IntoFuture {
        let Sending {
            client,
            payload,
            mut on_endpoint,
        } = self;
        Box::pin(async move {
            client
                .send_limited(&payload, None, |done| {
                    if let Some(f) = on_endpoint.as_mut() {
                        f(done);
                    }
                })
                .await
        })
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
) -> EndpointReport {
    // The semaphore is never closed, so acquiring can only succeed.
    let _permit = match &limit {
        Some(sem) => sem.acquire().await.ok(),
        None => None,
    };
    let endpoint = &inner.endpoints[index];
    let started = Instant::now();
    let mut attempts = 0;
    let mut last_status = None;
    let mut duplicate = false;
    let error = loop {
        attempts += 1;
        let outcome = attempt(&inner, endpoint, &payload).await;
        let (error, wait) = match outcome {
            Ok(response) if response.status.is_success() => {
                last_status = Some(response.status);
                duplicate = response.duplicate;
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
    EndpointReport {
        endpoint: endpoint.url.clone(),
        endpoint_index: index,
        status: last_status,
        attempts,
        elapsed: started.elapsed(),
        error,
        duplicate,
    }
}

/// What one attempt got back.
struct Response {
    status: StatusCode,
    retry_after: Option<Duration>,
    excerpt: String,
    /// The receiver said it had this body already (`Dronehook-Duplicate: true`).
    duplicate: bool,
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
    let duplicate = response
        .headers()
        .get(dronehook_protocol::DUPLICATE_HEADER)
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"true"));
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
        duplicate,
    })
}

/// Sorts a hyper client error into the client's classes.
fn classify(e: hyper_util::client::legacy::Error) -> Error {
    let kind = match rustls_error(&e) {
        Some(tls) => Kind::Tls {
            ca_as_server: is_ca_as_server(tls),
        },
        None if e.is_connect() => Kind::Connect,
        None => Kind::Io,
    };
    Error::with_source(kind, e)
}

/// The rustls error somewhere in the cause chain, if any. `io::Error` hides its
/// payload from `source()`, so it is unwrapped by hand.
fn rustls_error<'a>(e: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    let mut cause = Some(e);
    while let Some(c) = cause {
        if let Some(tls) = c.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(tls) = c
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)
            .and_then(|inner| rustls_error(inner))
        {
            return Some(tls);
        }
        cause = c.source();
    }
    None
}

/// Whether the server's certificate was refused for being a CA certificate. rustls
/// carries this webpki error as an opaque `CertificateError::Other`.
fn is_ca_as_server(e: &rustls::Error) -> bool {
    match e {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) => matches!(
            other.0.downcast_ref::<webpki::Error>(),
            Some(webpki::Error::CaUsedAsEndEntity)
        ),
        _ => false,
    }
}
