//! Dispatch: the [`Handler`] trait, the [`Delivery`] it receives, and the [`Router`]
//! that picks handlers by `event:action` with `DRONE_WEBHOOK_EVENTS` globs.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use dronehook_protocol::{Action, BadPattern, BodyDigest, Envelope, Event, EventFilter, Outline};
use http::HeaderMap;

/// One verified event, as a handler receives it. Cloning is cheap (shared buffers).
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Delivery {
    /// The journal's id for this delivery, or `None` without a journal.
    pub id: Option<i64>,
    /// The decoded payload.
    pub envelope: Arc<Envelope>,
    /// The exact body bytes that were verified.
    pub body: Bytes,
    /// The request headers as received.
    pub headers: Arc<HeaderMap>,
    /// When the server received the request.
    pub received_at: SystemTime,
    /// SHA-256 of the body: the dedupe key.
    pub digest: BodyDigest,
    /// Which of the configured secrets verified the request (key rotation).
    pub secret_index: usize,
    /// Which attempt this is for the handler receiving it, from 1.
    pub attempt: u32,
    /// What the handler keeps with this attempt's run ([`Delivery::set_output`]).
    pub(crate) output: OutputSlot,
}

/// Where [`Delivery::set_output`] leaves a handler's output: one per attempt (the
/// dispatcher gives each attempt a fresh one), shared by that attempt's clones.
#[derive(Clone, Default)]
pub(crate) struct OutputSlot(Arc<std::sync::Mutex<Option<Vec<u8>>>>);

impl OutputSlot {
    /// What was set, if anything.
    pub(crate) fn take(&self) -> Option<Vec<u8>> {
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    }
}

impl fmt::Debug for OutputSlot {
    // The output may hold anything a command printed: only its length is shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let guard = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match &*guard {
            Some(output) => write!(f, "{} bytes", output.len()),
            None => f.write_str("none"),
        }
    }
}

impl Delivery {
    /// Builds a delivery by hand (for tests of handlers, or to replay a journal entry).
    pub fn new(
        envelope: Envelope,
        body: Bytes,
        headers: HeaderMap,
        received_at: SystemTime,
    ) -> Self {
        let digest = BodyDigest::of(&body);
        Delivery {
            id: None,
            envelope: Arc::new(envelope),
            body,
            headers: Arc::new(headers),
            received_at,
            digest,
            secret_index: 0,
            attempt: 1,
            output: OutputSlot::default(),
        }
    }

    /// Keeps `output` (its last [`crate::MAX_RUN_OUTPUT`] bytes) with this attempt's
    /// run record, where `dronehook events show` and the inspector read it. Call it
    /// before returning, `Ok` or `Err`; a later call replaces an earlier one. Without
    /// a store (handlers run inline) it is dropped.
    pub fn set_output(&self, output: impl Into<Vec<u8>>) {
        let output = crate::journal::tail_output(output.into());
        *self
            .output
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(output);
    }

    /// The same delivery with an output slot of its own (one per attempt).
    pub(crate) fn for_attempt(&self) -> Delivery {
        let mut d = self.clone();
        d.output = OutputSlot::default();
        d
    }

    /// `event:action` (or `event` when the action is empty), as filters see it.
    pub fn filter_name(&self) -> String {
        self.envelope.filter_name()
    }
}

/// A handler's failure: a message for the journal, the logs and (without a journal)
/// the 500 response body. Build one from anything that displays.
#[derive(Clone, PartialEq, Eq)]
pub struct HandlerError {
    message: String,
}

impl HandlerError {
    /// A failure with this message.
    pub fn new(message: impl fmt::Display) -> Self {
        HandlerError {
            message: message.to_string(),
        }
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for HandlerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HandlerError({:?})", self.message)
    }
}

impl std::error::Error for HandlerError {}

/// The future a [`Handler`] returns.
pub type HandlerFuture = Pin<Box<dyn Future<Output = Result<(), HandlerError>> + Send + 'static>>;

/// Something that acts on delivered events.
///
/// Implemented for every `Fn(Delivery) -> impl Future<Output = Result<(), E>>` where
/// `E` displays (`String`, `std::io::Error`, `anyhow::Error`, [`HandlerError`], ...),
/// so an async closure or an `async fn` is a handler:
///
/// ```
/// use dronehook_server::{Delivery, Router};
///
/// async fn log_build(delivery: Delivery) -> Result<(), std::io::Error> {
///     println!("build {:?}", delivery.envelope.build_number());
///     Ok(())
/// }
///
/// let router = Router::new()
///     .route("build:*", log_build)?
///     .route("repo:enabled", |d: Delivery| async move {
///         if d.envelope.repo_slug().is_none() { Err("no repository".to_owned()) } else { Ok(()) }
///     })?;
/// # Ok::<(), dronehook_protocol::BadPattern>(())
/// ```
///
/// With a journal a handler may run more than once for the same delivery (a retry
/// after an error, or a resume after a crash): [`Delivery::id`] and
/// [`Delivery::attempt`] let it make its effects idempotent.
pub trait Handler: Send + Sync + 'static {
    /// Handles one delivery.
    fn call(&self, delivery: Delivery) -> HandlerFuture;
}

impl<F, Fut, E> Handler for F
where
    F: Fn(Delivery) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), E>> + Send + 'static,
    E: fmt::Display + 'static,
{
    fn call(&self, delivery: Delivery) -> HandlerFuture {
        let fut = self(delivery);
        Box::pin(async move { fut.await.map_err(HandlerError::new) })
    }
}

impl Handler for Arc<dyn Handler> {
    fn call(&self, delivery: Delivery) -> HandlerFuture {
        (**self).call(delivery)
    }
}

/// One handler with the events it takes.
#[derive(Clone)]
pub(crate) struct Route {
    pub(crate) name: String,
    pub(crate) filter: EventFilter,
    pub(crate) handler: Arc<dyn Handler>,
}

/// How a request ended, for the per-request log line and the `observe` hook.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RequestRecord {
    /// The HTTP status answered.
    pub status: u16,
    /// The outcome code: `ok`, `replay`, `unknown_event`, or an error code such as
    /// `digest.mismatch`, `body.too_large`, `journal.unavailable`,
    /// `store.unavailable`, `handler.failed`.
    pub code: &'static str,
    /// The event, when the body was verified and checked.
    pub event: Option<Event>,
    /// The action, when the body was verified and checked.
    pub action: Option<Action>,
    /// The repository slug, when the payload has one.
    pub repo: Option<String>,
    /// The build number, when the payload has one.
    pub build: Option<i64>,
    /// The journal id, when the request was journaled.
    pub delivery_id: Option<i64>,
    /// Time from the request's headers to the answer; zero when it was not measured (a
    /// head hyper refused, read whole on a kept-alive connection without a clock
    /// reading).
    pub latency: Duration,
    /// The peer's address, when the connection's accept loop passed it on.
    pub peer: Option<SocketAddr>,
    /// The `keyId` of the request's signature, for a refused request that had a
    /// readable one (never the signature or a secret).
    pub key_id: Option<String>,
    /// The `X-Drone-Event` header, for a refused request that had one.
    pub event_header: Option<String>,
    /// For a refused request with a readable `Date`: how far it was from this server's
    /// clock, in seconds (positive: the `Date` is ahead of the server).
    pub date_skew: Option<i64>,
}

/// How one handler run ended.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HandlerRecord {
    /// The route's name (its pattern unless named with [`Router::route_named`]).
    pub handler: String,
    /// The journal id, or `None` without a journal.
    pub delivery_id: Option<i64>,
    /// `event:action` of the delivery.
    pub event: String,
    /// Which attempt this was, from 1.
    pub attempt: u32,
    /// `Ok` or the handler's error.
    pub result: Result<(), HandlerError>,
    /// How long the run took.
    pub duration: Duration,
    /// Whether another attempt is scheduled (an error with attempts left).
    pub will_retry: bool,
}

/// Something that happened, reported to the [`Router::observe`] hook.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Observation {
    /// A request was answered.
    Request(RequestRecord),
    /// A handler run finished. With a store, its outcome is in the store by then, so
    /// an observer that reads the run there (the inspector's live pages) reads it.
    Handler(HandlerRecord),
}

type Observer = Arc<dyn Fn(&Observation) + Send + Sync>;

/// Picks the handlers for an event.
///
/// Every route whose filter matches `event:action` runs; when none matches, the
/// fallback runs (if there is one). Events this crate does not know (a newer Drone's
/// event or action) are answered `202 Accepted` and journaled, but reach handlers only
/// after [`Router::unknown_events`]`(true)`.
#[derive(Clone, Default)]
pub struct Router {
    pub(crate) routes: Vec<Route>,
    pub(crate) fallback: Option<Route>,
    pub(crate) unknown_events: bool,
    pub(crate) observer: Option<Observer>,
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Router")
            .field(
                "routes",
                &self.routes.iter().map(|r| &r.name).collect::<Vec<_>>(),
            )
            .field("fallback", &self.fallback.is_some())
            .field("unknown_events", &self.unknown_events)
            .finish_non_exhaustive()
    }
}

/// The name the fallback route is journaled under.
pub const FALLBACK_NAME: &str = "fallback";

impl Router {
    /// A router with no handlers: events are verified, journaled and acknowledged.
    pub fn new() -> Self {
        Router::default()
    }

    /// Adds a handler for the events matching `patterns`, a comma-separated
    /// `DRONE_WEBHOOK_EVENTS` list such as `build:*` or `repo:enabled,repo:disabled`
    /// (empty: every event). The route is named after the patterns.
    pub fn route(self, patterns: &str, handler: impl Handler) -> Result<Self, BadPattern> {
        let filter = EventFilter::parse(patterns)?;
        let name = if filter.is_all() {
            "*".to_owned()
        } else {
            filter.to_string()
        };
        Ok(self.route_filter(name, filter, handler))
    }

    /// Adds a handler under a name of its own (the journal records runs by name, so a
    /// restarted server resumes runs by it: keep names stable across restarts).
    pub fn route_named(
        self,
        name: impl Into<String>,
        patterns: &str,
        handler: impl Handler,
    ) -> Result<Self, BadPattern> {
        let filter = EventFilter::parse(patterns)?;
        Ok(self.route_filter(name, filter, handler))
    }

    /// Adds a handler for an already parsed filter. A name already taken gets `#2`,
    /// `#3`, ... appended.
    pub fn route_filter(
        mut self,
        name: impl Into<String>,
        filter: EventFilter,
        handler: impl Handler,
    ) -> Self {
        let name = self.unique_name(name.into());
        self.routes.push(Route {
            name,
            filter,
            handler: Arc::new(handler),
        });
        self
    }

    /// Sets the handler for events no route matches.
    pub fn fallback(mut self, handler: impl Handler) -> Self {
        self.fallback = Some(Route {
            name: FALLBACK_NAME.to_owned(),
            filter: EventFilter::all(),
            handler: Arc::new(handler),
        });
        self
    }

    /// Lets events with an unknown event or action reach the routes and the fallback
    /// (default off: they are acknowledged with 202 and journaled only).
    pub fn unknown_events(mut self, on: bool) -> Self {
        self.unknown_events = on;
        self
    }

    /// Calls `observer` for every answered request and every finished handler run
    /// (for a command line's log lines). It runs on the server's tasks: keep it quick.
    pub fn observe(mut self, observer: impl Fn(&Observation) + Send + Sync + 'static) -> Self {
        self.observer = Some(Arc::new(observer));
        self
    }

    /// The route names, in order, then `fallback` when there is one.
    pub fn names(&self) -> Vec<&str> {
        self.routes
            .iter()
            .chain(&self.fallback)
            .map(|r| r.name.as_str())
            .collect()
    }

    /// The routes an envelope goes to, by this router's rules.
    pub(crate) fn select(&self, outline: &Outline) -> Vec<&Route> {
        if !outline.is_known() && !self.unknown_events {
            return Vec::new();
        }
        let event = outline.event.as_str();
        let action = outline.action.as_str();
        let matched: Vec<&Route> = self
            .routes
            .iter()
            .filter(|r| r.filter.matches(event, action))
            .collect();
        if matched.is_empty() {
            self.fallback.iter().collect()
        } else {
            matched
        }
    }

    /// A route by its name (to resume a journaled run).
    pub(crate) fn by_name(&self, name: &str) -> Option<&Route> {
        self.routes
            .iter()
            .chain(&self.fallback)
            .find(|r| r.name == name)
    }

    /// Whether anything observes: the dispatcher waits for a run's record to commit
    /// before reporting it only then.
    pub(crate) fn is_observed(&self) -> bool {
        self.observer.is_some()
    }

    pub(crate) fn emit(&self, observation: &Observation) {
        if let Some(observer) = &self.observer {
            observer(observation);
        }
    }

    fn unique_name(&self, base: String) -> String {
        let taken = |n: &str| self.routes.iter().any(|r| r.name == n) || n == FALLBACK_NAME;
        if !taken(&base) {
            return base;
        }
        // There are fewer routes than this range, so a free name is always found.
        (2..=self.routes.len() + 2)
            .map(|i| format!("{base}#{i}"))
            .find(|n| !taken(n))
            .unwrap_or(base)
    }
}
