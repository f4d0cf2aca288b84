//! The request pipeline. [`respond`] answers the fixed paths (`/healthz`, `/metrics`)
//! and hands webhooks to [`webhook`], which runs four phases, each ending the request
//! with an answer when it refuses it:
//!
//! 1. [`check_head`]: path, method, framing, declared length, encodings;
//! 2. [`read_body`]: the body, under the size limit and the request deadline;
//! 3. [`verify`]: signature, digest and `Date` (unless verification is off), and
//!    that the body decodes;
//! 4. [`accept`]: the replay check, the journal commit, and the handlers (inline
//!    without a journal, queued after the commit with one).

use std::convert::Infallible;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use dronehook_protocol::{Action, BodyDigest, Envelope, Event, Outline, RequestParts};
use http::header::{
    ALLOW, CONNECTION, CONTENT_ENCODING, CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER,
    TRANSFER_ENCODING, WWW_AUTHENTICATE,
};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use tokio::time::Instant;

use crate::config::Config;
use crate::dispatch::{Dispatcher, run_inline};
use crate::handler::{Delivery, Observation, RequestRecord, Router};
use crate::journal::{Inserted, Journal, NewEntry, encode_headers};
use crate::metrics::Metrics;
use crate::replay::{Claim, ReplayCache};
use crate::store::SharedStore;

/// What every connection's service shares.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) router: Arc<Router>,
    pub(crate) journal: Option<Journal>,
    pub(crate) replay: Option<ReplayCache>,
    pub(crate) metrics: Metrics,
    pub(crate) dispatcher: Option<Dispatcher>,
    /// The shared store (PostgreSQL), when the configuration names one.
    pub(crate) store: Option<SharedStore>,
}

/// What the per-request log line and the observer hear about.
struct Outcome {
    status: StatusCode,
    code: &'static str,
    body: Bytes,
    headers: Vec<(http::HeaderName, HeaderValue)>,
    outline: Option<Outline>,
    delivery_id: Option<i64>,
    /// What a refused request's head said, for observers (boxed: refusals only, so
    /// the accepted path carries one empty pointer).
    refused: Option<Box<RefusedHead>>,
}

/// The few things a refused request's head tells a person (the inspector's refusals
/// page): read only when a request is refused, never its body or signature.
#[derive(Default)]
struct RefusedHead {
    key_id: Option<String>,
    event_header: Option<String>,
    date_skew: Option<i64>,
}

impl RefusedHead {
    /// Reads the `keyId`, `X-Drone-Event` and the `Date`'s distance from `now`.
    fn read(headers: &HeaderMap, now: SystemTime) -> RefusedHead {
        let text = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::trim)
                .filter(|v| !v.is_empty())
        };
        // A refusal may be for a hostile head: what is kept is cut short.
        let short = |v: &str| v.chars().take(128).collect::<String>();
        let key_id = text("signature")
            .and_then(|v| dronehook_protocol::SignatureParams::parse(v).ok())
            .or_else(|| {
                text("authorization")
                    .and_then(|v| dronehook_protocol::SignatureParams::parse_authorization(v).ok())
            })
            .map(|p| short(&p.key_id));
        let date_skew = text("date")
            .and_then(|v| httpdate::parse_http_date(v).ok())
            .map(|date| match date.duration_since(now) {
                Ok(ahead) => ahead.as_secs() as i64,
                Err(behind) => -(behind.duration().as_secs() as i64),
            });
        RefusedHead {
            key_id,
            event_header: text("x-drone-event").map(short),
            date_skew,
        }
    }
}

impl Outcome {
    fn error(status: StatusCode, code: &'static str) -> Self {
        let mut body = Vec::with_capacity(code.len() + 1);
        body.extend_from_slice(code.as_bytes());
        body.push(b'\n');
        Outcome {
            status,
            code,
            body: body.into(),
            headers: vec![(
                CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            )],
            outline: None,
            delivery_id: None,
            refused: None,
        }
    }

    fn empty(status: StatusCode, code: &'static str, outline: Outline) -> Self {
        Outcome {
            status,
            code,
            body: Bytes::new(),
            headers: Vec::new(),
            outline: Some(outline),
            delivery_id: None,
            refused: None,
        }
    }

    fn refused_head(mut self, headers: &HeaderMap) -> Self {
        self.refused = Some(Box::new(RefusedHead::read(headers, SystemTime::now())));
        self
    }

    fn header(self, name: http::HeaderName, value: &'static str) -> Self {
        self.header_value(name, HeaderValue::from_static(value))
    }

    fn header_value(mut self, name: http::HeaderName, value: HeaderValue) -> Self {
        self.headers.push((name, value));
        self
    }
}

/// A refusal by one of the first three phases: an error answer with at most one
/// header, small enough to return by value.
struct Refusal {
    status: StatusCode,
    code: &'static str,
    header: Option<(http::HeaderName, &'static str)>,
}

impl Refusal {
    fn new(status: StatusCode, code: &'static str) -> Self {
        Refusal {
            status,
            code,
            header: None,
        }
    }

    fn header(mut self, name: http::HeaderName, value: &'static str) -> Self {
        self.header = Some((name, value));
        self
    }
}

impl From<Refusal> for Outcome {
    fn from(refusal: Refusal) -> Outcome {
        let out = Outcome::error(refusal.status, refusal.code);
        match refusal.header {
            Some((name, value)) => out.header(name, value),
            None => out,
        }
    }
}

/// Answers one request of a connection. `smuggled` is the connection's note that a
/// head carried both `Transfer-Encoding` and `Content-Length` (see sniff.rs), read
/// when the request was handed over; `peer` is the connection's peer address.
///
/// An `async fn` rather than a service: the connection's service (server.rs) calls it
/// inside the future it boxes, so this future's kilobytes of state are built in the box
/// at the first poll instead of being built outside it and moved in.
pub(crate) async fn respond(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    smuggled: bool,
    peer: std::net::SocketAddr,
) -> Result<Response<Full<Bytes>>, Infallible> {
    // tokio's clock (the standard one outside paused tests): the whole-request deadline
    // below is set from this one reading instead of reading the clock again.
    let started = Instant::now();
    let path = req.uri().path();
    if req.method() == Method::GET || req.method() == Method::HEAD {
        if path == "/healthz" {
            return Ok(health(&shared));
        }
        if path == "/metrics" {
            let mut resp = Response::new(Full::new(Bytes::from(shared.metrics.encode())));
            resp.headers_mut().insert(
                CONTENT_TYPE,
                HeaderValue::from_static(
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                ),
            );
            return Ok(resp);
        }
    }
    let outcome = webhook(&shared, req, started, smuggled).await;
    let latency = started.elapsed();
    shared.metrics.request(outcome.code, latency);
    // The outline's values move into the record: nothing is copied per request.
    let (event, action, repo, build) = match outcome.outline {
        Some(o) => (Some(o.event), Some(o.action), o.repo_slug, o.build_number),
        None => (None, None, None, None),
    };
    let refused = outcome.refused.map(|r| *r).unwrap_or_default();
    let record = RequestRecord {
        status: outcome.status.as_u16(),
        code: outcome.code,
        event,
        action,
        repo,
        build,
        delivery_id: outcome.delivery_id,
        latency,
        peer: Some(peer),
        key_id: refused.key_id,
        event_header: refused.event_header,
        date_skew: refused.date_skew,
    };
    tracing::info!(
        target: "dronehook_server::request",
        status = record.status,
        code = record.code,
        event = record.event.as_ref().map_or("", Event::as_str),
        action = record.action.as_ref().map_or("", Action::as_str),
        repo = record.repo.as_deref().unwrap_or(""),
        build = record.build,
        id = record.delivery_id,
        latency_us = latency.as_micros() as u64,
        "request"
    );
    shared.router.emit(&Observation::Request(record));

    let mut resp = Response::new(Full::new(outcome.body));
    *resp.status_mut() = outcome.status;
    for (name, value) in outcome.headers {
        resp.headers_mut().insert(name, value);
    }
    Ok(resp)
}

fn health(shared: &Shared) -> Response<Full<Bytes>> {
    let ok = shared.journal.as_ref().is_none_or(Journal::is_available);
    let store_down = shared
        .store
        .as_ref()
        .and_then(SharedStore::unavailable_reason);
    let (status, body) = if let Some(reason) = store_down {
        // The reason names the database's failure (never a password: the URL is not
        // part of it), on the same line as the code.
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Bytes::from(format!("store.unavailable: {reason}\n")),
        )
    } else if ok {
        (StatusCode::OK, Bytes::from_static(b"ok\n"))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Bytes::from_static(b"journal.unavailable\n"),
        )
    };
    let mut resp = Response::new(Full::new(body));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// Whether a header value is absent or, trimmed, equal to one of `allowed` (ASCII
/// case-insensitively), ignoring `;` parameters when `params` is set. `allowed` is a
/// bare value: lowercase, trimmed, without parameters.
fn header_is(headers: &HeaderMap, name: &http::HeaderName, allowed: &str, params: bool) -> bool {
    let allowed = allowed.as_bytes();
    headers.get_all(name).iter().all(|v| {
        let v = v.as_bytes();
        // What clients send is almost always exactly the bare value: that settles it
        // without splitting, trimming and comparing byte by byte.
        if v == allowed {
            return true;
        }
        let v = if params {
            v.split(|b| *b == b';').next().unwrap_or(v)
        } else {
            v
        };
        v.trim_ascii().eq_ignore_ascii_case(allowed)
    })
}

/// Runs a webhook request through its four phases (see the module's documentation).
async fn webhook(
    shared: &Shared,
    req: Request<Incoming>,
    started: Instant,
    smuggled: bool,
) -> Outcome {
    if let Err(refused) = check_head(&shared.config, &req, smuggled) {
        return Outcome::from(refused).refused_head(req.headers());
    }
    let (parts, body) = req.into_parts();
    let body = match read_body(&shared.config, body, started).await {
        Ok(body) => body,
        Err(refused) => return Outcome::from(refused).refused_head(&parts.headers),
    };
    let received_at = SystemTime::now();
    let checked = match verify(&shared.config, &parts, &body, received_at) {
        Ok(checked) => checked,
        Err(refused) => return Outcome::from(refused).refused_head(&parts.headers),
    };
    accept(shared, parts, body, received_at, checked).await
}

/// Phase 1: what the head alone decides, before any of the body is read.
fn check_head(config: &Config, req: &Request<Incoming>, smuggled: bool) -> Result<(), Refusal> {
    if req.uri().path() != config.path {
        return Err(Refusal::new(StatusCode::NOT_FOUND, "not_found"));
    }
    if req.method() != Method::POST {
        return Err(
            Refusal::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed")
                .header(ALLOW, "POST"),
        );
    }
    let headers = req.headers();
    if smuggled || (headers.contains_key(TRANSFER_ENCODING) && headers.contains_key(CONTENT_LENGTH))
    {
        // Two framings for one body is the stuff of request smuggling: refuse it and
        // close, since where this request ends is uncertain. hyper drops the
        // Content-Length in this case, so the connection's sniffer tells (see sniff.rs).
        return Err(Refusal::new(StatusCode::BAD_REQUEST, "transport.malformed")
            .header(CONNECTION, "close"));
    }
    if let Some((status, code)) = crate::framing::transfer_coding_refusal(headers) {
        return Err(Refusal::new(status, code).header(CONNECTION, "close"));
    }
    let declared = headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    if declared.is_some_and(|n| n > config.max_body as u64) {
        // Refused before reading: the body is left unread, so the connection closes.
        return Err(
            Refusal::new(StatusCode::PAYLOAD_TOO_LARGE, "body.too_large")
                .header(CONNECTION, "close"),
        );
    }
    if !header_is(headers, &CONTENT_ENCODING, "identity", false) {
        return Err(
            Refusal::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "encoding.unsupported")
                .header(CONNECTION, "close"),
        );
    }
    if !header_is(headers, &CONTENT_TYPE, "application/json", true) {
        return Err(Refusal::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "content_type.unsupported",
        )
        .header(CONNECTION, "close"));
    }
    Ok(())
}

/// Phase 2: reads the body, at most the configured limit, by the request's deadline
/// (`request_timeout` after `started`).
async fn read_body(config: &Config, body: Incoming, started: Instant) -> Result<Bytes, Refusal> {
    let mut collect = std::pin::pin!(Limited::new(body, config.max_body).collect());
    // A webhook's body has usually arrived with its head: it is read once before a
    // timer is made, which tokio's timeout would do first as well, so that a body read
    // at once costs no timer (a handle on the runtime, taken and given back).
    let first = std::future::poll_fn(|cx| Poll::Ready(collect.as_mut().poll(cx))).await;
    let collected = match first {
        Poll::Ready(result) => Ok(result),
        // The whole request is due `request_timeout` after it started: the deadline is
        // an instant from the clock reading taken at the start, so neither the time
        // left nor the timer's expiry needs another one. A timeout too long to add
        // falls back to tokio's own handling of it (its far future).
        Poll::Pending => match started.checked_add(config.request_timeout) {
            Some(deadline) => tokio::time::timeout_at(deadline, collect).await,
            None => tokio::time::timeout(config.request_timeout, collect).await,
        },
    };
    match collected {
        Ok(Ok(collected)) => Ok(collected.to_bytes()),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => Err(Refusal::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body.too_large",
        )
        .header(CONNECTION, "close")),
        Ok(Err(_)) => Err(Refusal::new(StatusCode::BAD_REQUEST, "transport.malformed")
            .header(CONNECTION, "close")),
        Err(_) => Err(Refusal::new(StatusCode::REQUEST_TIMEOUT, "request.timeout")
            .header(CONNECTION, "close")),
    }
}

/// What verification established about a request that passed it.
struct Checked {
    /// SHA-256 of the body: the replay and journal key.
    digest: BodyDigest,
    /// The secret that verified it (0 with verification off).
    secret_index: usize,
    /// The body's event, action, repository and build.
    outline: Outline,
}

/// The protocol's view of a request.
fn request_parts<'a>(parts: &'a http::request::Parts, body: &'a [u8]) -> RequestParts<'a> {
    let target = parts
        .uri
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str);
    RequestParts::new(parts.method.as_str(), target, &parts.headers, body)
}

/// Phase 3: verifies the signature, digest and date (unless the configuration turned
/// verification off) and checks that the body decodes, without building the payload's
/// model: only a handler needs that, and [`accept`] decodes it when one does.
fn verify(
    config: &Config,
    parts: &http::request::Parts,
    body: &[u8],
    received_at: SystemTime,
) -> Result<Checked, Refusal> {
    let request = request_parts(parts, body);
    if !config.verify {
        return match request
            .header_event()
            .and_then(|event| Envelope::check_with_header(body, event))
        {
            Ok(outline) => Ok(Checked {
                digest: BodyDigest::of(body),
                secret_index: 0,
                outline,
            }),
            Err(e) => Err(Refusal::new(StatusCode::BAD_REQUEST, e.code())),
        };
    }
    match config.policy.verify_and_check(&request, received_at) {
        Ok((verified, outline)) => Ok(Checked {
            digest: verified.body_digest,
            secret_index: verified.secret_index,
            outline,
        }),
        Err(e) if e.is_malformed() => Err(Refusal::new(StatusCode::BAD_REQUEST, e.code())),
        Err(e) => Err(Refusal::new(StatusCode::UNAUTHORIZED, e.code())
            .header(WWW_AUTHENTICATE, "Signature headers=\"date digest\"")),
    }
}

/// Phase 4: the replay check, then the journal commit and the handlers' queue (with a
/// journal) or the handlers themselves (without one), then the answer.
async fn accept(
    shared: &Shared,
    parts: http::request::Parts,
    body: Bytes,
    received_at: SystemTime,
    checked: Checked,
) -> Outcome {
    let Checked {
        digest,
        secret_index,
        outline,
    } = checked;
    let known = outline.is_known();
    let (success, success_code) = if known {
        (StatusCode::NO_CONTENT, "ok")
    } else {
        (StatusCode::ACCEPTED, "unknown_event")
    };
    // A replay is answered 2xx (the sender must not retry it) and says so, so a
    // sender can tell a duplicate from a delivery.
    let replay = |outline: Outline| {
        Outcome::empty(StatusCode::NO_CONTENT, "replay", outline).header_value(
            http::HeaderName::from_static(dronehook_protocol::DUPLICATE_HEADER),
            HeaderValue::from_static("true"),
        )
    };

    let guard = match &shared.replay {
        Some(cache) => match cache.claim(digest).await {
            Claim::Replay => return replay(outline),
            Claim::Fresh(guard) => Some(guard),
            // The journal's unique key on the digest holds every accepted body and
            // settles copies that race, so it catches the replays the full map
            // cannot; without a journal, nothing would, and the request is refused.
            Claim::Full(_) if shared.journal.is_some() => {
                shared.metrics.replay_full();
                None
            }
            Claim::Full(wait) => {
                shared.metrics.replay_full();
                return Outcome {
                    outline: Some(outline),
                    ..Outcome::error(StatusCode::SERVICE_UNAVAILABLE, "replay.full")
                        .header_value(RETRY_AFTER, retry_after(wait))
                };
            }
        },
        None => None,
    };

    let routes = shared.router.select(&outline);
    // The journal's copy of the headers is taken first, so that the handlers' delivery
    // can take the headers themselves.
    let journal_headers = (shared.journal.is_some() || shared.store.is_some())
        .then(|| encode_headers(&parts.headers));
    // The handlers' copy of the payload. Decoding cannot fail after the check passed
    // (the check accepts exactly what decoding accepts); were it to, the request is
    // refused as the check would have refused it.
    let delivery = if routes.is_empty() {
        None
    } else {
        let request = request_parts(&parts, &body);
        match request
            .header_event()
            .and_then(|event| Envelope::decode_with_header(&body, event))
        {
            Ok(envelope) => Some(Delivery {
                id: None,
                envelope: Arc::new(envelope),
                body: body.clone(),
                headers: Arc::new(parts.headers),
                received_at,
                digest,
                secret_index,
                attempt: 1,
                output: crate::handler::OutputSlot::default(),
            }),
            Err(e) => return Outcome::error(StatusCode::BAD_REQUEST, e.code()),
        }
    };

    // With a journal, the runs go to the dispatcher's queue if it has room for all of
    // them now; otherwise they are stored due and its poller brings them in.
    let reserved = match (&shared.dispatcher, &delivery) {
        (Some(dispatcher), Some(_)) if shared.journal.is_some() => dispatcher.reserve(routes.len()),
        _ => None,
    };
    // The build's status for the store's lists: the outline read it with the rest.
    let build_status = journal_headers
        .as_ref()
        .and_then(|_| (outline.event == Event::Build).then(|| outline.build_status.clone()))
        .flatten();
    // The record either store keeps, built once; `journal_headers` exists exactly when
    // there is a store.
    let entry = journal_headers.map(|headers| NewEntry {
        received_at,
        digest,
        dedupe: shared.config.replay_protection,
        event: outline.event.as_str().to_owned(),
        action: outline.action.as_str().to_owned(),
        known,
        repo: outline.repo_slug.clone(),
        build: outline.build_number,
        build_status,
        secret_index: shared
            .config
            .verify
            .then(|| u32::try_from(secret_index).unwrap_or(u32::MAX)),
        headers,
        packed: crate::journal::pack_body(&body),
        body,
        handlers: routes.iter().map(|r| r.name.clone()).collect(),
        queued: reserved.is_some(),
    });

    if let Some(entry) = entry {
        if let Some(store) = &shared.store {
            // The answer waits for the commit: a 2xx only for what the database holds. The
            // handlers are claimed from the database by whichever receiver has a free
            // worker (this one is woken at once).
            return match store.insert(entry).await {
                Err(message) => {
                    tracing::error!(error = %message, "store commit failed; answering 503");
                    Outcome {
                        outline: Some(outline),
                        ..Outcome::error(StatusCode::SERVICE_UNAVAILABLE, "store.unavailable")
                            .header(RETRY_AFTER, "1")
                    }
                }
                Ok((inserted, took)) => {
                    shared.metrics.commit(took);
                    let (id, mut out) = match inserted {
                        Inserted::Duplicate(id) => (id, replay(outline)),
                        Inserted::New(id) => (id, Outcome::empty(success, success_code, outline)),
                    };
                    out.delivery_id = Some(id);
                    out
                }
            };
        }

        if let Some(journal) = &shared.journal {
            let committed = match (&shared.dispatcher, delivery) {
                // The commit and the queueing of its runs happen in a task of their own:
                // runs are committed held (queued) and only the enqueue makes them run,
                // so a request dropped in between (the client hung up) must not stop it.
                (Some(dispatcher), Some(mut delivery)) => {
                    let journal = journal.clone();
                    let dispatcher = dispatcher.clone();
                    let routes: Vec<crate::handler::Route> = routes.into_iter().cloned().collect();
                    tokio::spawn(async move {
                        let inserted = journal.insert(entry).await;
                        if let Ok((Inserted::New(id), _)) = &inserted {
                            delivery.id = Some(*id);
                            match reserved {
                                Some(reserved) => {
                                    Dispatcher::enqueue(reserved, routes, &delivery);
                                }
                                None => dispatcher.nudge(),
                            }
                        }
                        inserted
                    })
                    .await
                    .unwrap_or_else(|_| Err("the journal commit stopped unexpectedly".to_owned()))
                }
                // No runs: nothing follows the commit, and the writer commits what it
                // was given whether or not the request is still waiting. No task to
                // spawn on every journaled request.
                _ => journal.insert(entry).await,
            };
            match committed {
                Err(message) => {
                    tracing::error!(error = %message, "journal commit failed; answering 503");
                    // As with PostgreSQL: the journal heals by itself (a reopened
                    // connection at the next batch), so the client is told to come back.
                    return Outcome {
                        outline: Some(outline),
                        ..Outcome::error(StatusCode::SERVICE_UNAVAILABLE, "journal.unavailable")
                            .header(RETRY_AFTER, "1")
                    };
                }
                Ok((Inserted::Duplicate(id), took)) => {
                    shared.metrics.commit(took);
                    if let Some(guard) = guard {
                        guard.accept();
                    }
                    let mut out = replay(outline);
                    out.delivery_id = Some(id);
                    return out;
                }
                Ok((Inserted::New(id), took)) => {
                    shared.metrics.commit(took);
                    if let Some(guard) = guard {
                        guard.accept();
                    }
                    let mut out = Outcome::empty(success, success_code, outline);
                    out.delivery_id = Some(id);
                    return out;
                }
            }
        }
    }

    // No journal: the handlers finish before the answer, as in Drone's reference.
    if let Some(delivery) = delivery {
        let routes: Vec<_> = routes.into_iter().cloned().collect();
        if let Err(message) = run_inline(&shared.router, &shared.metrics, routes, &delivery).await {
            let mut out = Outcome::error(StatusCode::INTERNAL_SERVER_ERROR, "handler.failed");
            let mut body = message.into_bytes();
            body.push(b'\n');
            out.body = body.into();
            out.outline = Some(outline);
            return out;
        }
    }
    if let Some(guard) = guard {
        guard.accept();
    }
    Outcome::empty(success, success_code, outline)
}

/// `Retry-After` for a full replay map: the wait in whole seconds, rounded up, at
/// least 1.
fn retry_after(wait: Duration) -> HeaderValue {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    HeaderValue::from(secs.max(1))
}
