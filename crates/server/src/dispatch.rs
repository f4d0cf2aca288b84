//! Running handlers: inline before the answer without a journal; with a journal, in a
//! bounded worker pool after the answer, with retries and resumption after a restart.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use dronehook_protocol::Envelope;
use tokio::sync::{Mutex, Notify, mpsc, watch};
use tokio::task::JoinSet;

use crate::config::Config;
use crate::handler::{Delivery, HandlerError, HandlerRecord, Observation, Route, Router};
use crate::journal::{Attempt, Due, Journal, RunStatus, header_map};
use crate::metrics::Metrics;
use crate::shutdown::stopped;

/// One handler run to make.
pub(crate) struct Job {
    route: Route,
    delivery: Delivery,
    /// The run's attempts when it was last (re)queued.
    base: u32,
}

/// Runs one handler attempt on its own task, so a panic becomes an error instead of
/// taking a worker (or a connection) down.
async fn attempt(route: &Route, delivery: Delivery) -> (Result<(), HandlerError>, Duration) {
    let started = Instant::now();
    let fut = route.handler.call(delivery);
    let result = match tokio::spawn(fut).await {
        Ok(result) => result,
        Err(e) if e.is_panic() => Err(HandlerError::new("the handler panicked")),
        Err(_) => Err(HandlerError::new("the handler was cancelled")),
    };
    (result, started.elapsed())
}

fn outcome_label(result: &Result<(), HandlerError>) -> &'static str {
    if result.is_ok() { "ok" } else { "error" }
}

/// Runs the routes for a delivery concurrently and waits for all of them; the first
/// error (in route order) is returned.
pub(crate) async fn run_inline(
    router: &Router,
    metrics: &Metrics,
    selected: Vec<Route>,
    delivery: &Delivery,
) -> Result<(), String> {
    let mut set = JoinSet::new();
    for (i, route) in selected.into_iter().enumerate() {
        let delivery = delivery.clone();
        set.spawn(async move {
            let (result, duration) = attempt(&route, delivery).await;
            (i, route.name, result, duration)
        });
    }
    let mut results = Vec::new();
    while let Some(joined) = set.join_next().await {
        if let Ok(r) = joined {
            results.push(r);
        }
    }
    results.sort_by_key(|r| r.0);
    let mut first_error = None;
    for (_, name, result, duration) in results {
        metrics.handler_run(&name, outcome_label(&result));
        if let Err(e) = &result {
            tracing::warn!(handler = %name, error = %e, "handler failed");
            first_error.get_or_insert_with(|| e.message().to_owned());
        }
        router.emit(&Observation::Handler(HandlerRecord {
            handler: name,
            delivery_id: None,
            event: delivery.filter_name(),
            attempt: 1,
            result,
            duration,
            will_retry: false,
        }));
    }
    first_error.map_or(Ok(()), Err)
}

/// How often the poller looks for due runs in the journal when nothing woke it: runs
/// queued by another process (`Store::redeliver`) start within this.
const POLL_EVERY: Duration = Duration::from_secs(1);

/// The most runs one poll claims (the queue's free room bounds it too).
const MAX_CLAIM: usize = 256;

/// The worker pool of a server with a journal.
///
/// The journal holds every run's truth: a run is pending with a due time
/// (`next_at_ms`), or held by this receiver (queued in memory or running), or
/// finished. The in-memory queue is bounded (four runs per worker): a new request's
/// runs go to it when it has room, and otherwise wait in the journal, where the
/// poller claims them when the queue drains. Retries are due times in the journal,
/// not timers in memory, so nothing acknowledged is lost to a full queue or a stop.
#[derive(Clone)]
pub(crate) struct Dispatcher {
    inner: Arc<Inner>,
}

struct Inner {
    tx: mpsc::Sender<Job>,
    journal: Journal,
    workers: std::sync::Mutex<Option<JoinSet<()>>>,
    stop: watch::Sender<bool>,
    /// Wakes the poller: the queue drained, or a retry fell due.
    wake: Arc<Notify>,
}

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dispatcher")
    }
}

#[derive(Clone)]
struct Settings {
    max_attempts: u32,
    retry_base: Duration,
    retry_max: Duration,
}

/// Room in the queue, taken before a request's commit.
pub(crate) struct Reserved(Vec<mpsc::OwnedPermit<Job>>);

impl Dispatcher {
    /// Starts the workers and the poller.
    pub(crate) fn start(
        config: &Config,
        router: Arc<Router>,
        journal: Journal,
        metrics: &Metrics,
    ) -> Dispatcher {
        let workers_n = config.workers.max(1);
        let (tx, rx) = mpsc::channel::<Job>(workers_n.saturating_mul(4));
        let rx = Arc::new(Mutex::new(rx));
        let (stop, stop_rx) = watch::channel(false);
        let wake = Arc::new(Notify::new());
        let settings = Settings {
            max_attempts: config.max_attempts,
            retry_base: config.retry_base,
            retry_max: config.retry_max,
        };
        let mut workers = JoinSet::new();
        for _ in 0..workers_n {
            let rx = rx.clone();
            let mut stop_rx = stop_rx.clone();
            let journal = journal.clone();
            let metrics = metrics.clone();
            let router = router.clone();
            let settings = settings.clone();
            let wake = wake.clone();
            workers.spawn(async move {
                loop {
                    let (job, drained) = {
                        let mut rx = rx.lock().await;
                        let job = tokio::select! {
                            job = rx.recv() => job,
                            () = stopped(&mut stop_rx) => None,
                        };
                        (job, rx.is_empty())
                    };
                    let Some(job) = job else { break };
                    if drained {
                        // Room again: what waits in the journal may come in.
                        wake.notify_one();
                    }
                    run_job(job, &journal, &metrics, &router, &settings, &wake).await;
                }
            });
        }
        workers.spawn(poll_loop(
            tx.clone(),
            journal.clone(),
            router,
            wake.clone(),
            stop_rx,
        ));
        Dispatcher {
            inner: Arc::new(Inner {
                tx,
                journal,
                workers: std::sync::Mutex::new(Some(workers)),
                stop,
                wake,
            }),
        }
    }

    /// Room for `n` runs in the queue, all or none: with it, a request's runs are
    /// stored as held and queued after the commit; without, they are stored due and
    /// the poller brings them in.
    pub(crate) fn reserve(&self, n: usize) -> Option<Reserved> {
        let mut permits = Vec::with_capacity(n);
        for _ in 0..n {
            permits.push(self.inner.tx.clone().try_reserve_owned().ok()?);
        }
        Some(Reserved(permits))
    }

    /// Queues a journaled delivery's runs into the room reserved for them.
    pub(crate) fn enqueue(reserved: Reserved, routes: Vec<Route>, delivery: &Delivery) {
        for (permit, route) in reserved.0.into_iter().zip(routes) {
            permit.send(Job {
                route,
                delivery: delivery.clone(),
                base: 0,
            });
        }
    }

    /// Runs were stored due instead of queued (no room): look for them soon.
    pub(crate) fn nudge(&self) {
        self.inner.wake.notify_one();
    }

    /// At start: every pending run is due now (those a stopped receiver held, those
    /// waiting for a retry), and the poller brings them in as the queue has room.
    pub(crate) async fn resume(&self) {
        let journal = self.inner.journal.clone();
        match tokio::task::spawn_blocking(move || journal.release_pending()).await {
            Ok(Ok(n)) if n > 0 => {
                tracing::info!(runs = n, "resuming unfinished handler runs");
            }
            Ok(Ok(_)) | Err(_) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "cannot read unfinished handler runs"),
        }
        self.inner.wake.notify_one();
    }

    /// Stops taking jobs and waits (up to `grace`) for the runs under way. Queued and
    /// retrying runs stay pending in the journal for the next start.
    pub(crate) async fn stop(&self, grace: Duration) {
        self.inner.stop.send_replace(true);
        let workers = self
            .inner
            .workers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(mut workers) = workers {
            let all = async { while workers.join_next().await.is_some() {} };
            if tokio::time::timeout(grace, all).await.is_err() {
                tracing::warn!(
                    "handler runs still going after the grace period; they resume at the next start"
                );
            }
        }
    }
}

/// Claims due runs from the journal into the queue's free room: every
/// [`POLL_EVERY`], and when woken (the queue drained, a retry fell due).
async fn poll_loop(
    tx: mpsc::Sender<Job>,
    journal: Journal,
    router: Arc<Router>,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let handlers: Vec<String> = router.names().into_iter().map(str::to_owned).collect();
    if handlers.is_empty() {
        return;
    }
    // Claimed runs whose jobs could not be made and whose release failed too.
    let mut stranded: Vec<Due> = Vec::new();
    loop {
        tokio::select! {
            () = tokio::time::sleep(POLL_EVERY) => {}
            () = wake.notified() => {}
            () = stopped(&mut stop) => return,
        }
        let mut permits = Vec::new();
        while permits.len() < MAX_CLAIM {
            match tx.clone().try_reserve_owned() {
                Ok(p) => permits.push(p),
                Err(_) => break,
            }
        }
        if permits.is_empty() {
            continue;
        }
        if !stranded.is_empty() {
            let (reader, runs) = (journal.clone(), std::mem::take(&mut stranded));
            stranded = tokio::task::spawn_blocking(move || match reader.release_claimed(&runs) {
                Ok(()) => Vec::new(),
                Err(_) => runs,
            })
            .await
            .unwrap_or_default();
        }
        let (reader, names) = (journal.clone(), handlers.clone());
        if let Ok(Ok(buried)) =
            tokio::task::spawn_blocking(move || reader.bury_unknown(&names)).await
        {
            for (entry, handler) in buried {
                tracing::warn!(entry, %handler, "a run for a handler this receiver does not have is dead");
            }
        }
        let (reader, names, limit) = (journal.clone(), handlers.clone(), permits.len());
        let loaded = tokio::task::spawn_blocking(move || load_due(&reader, &names, limit)).await;
        let (jobs, unreadable) = match loaded {
            Ok(Ok(loaded)) => loaded,
            Ok(Err((e, unreleased))) => {
                if journal.is_available() {
                    tracing::warn!(error = %e, "cannot claim due handler runs");
                }
                // Released at the next poll, or the one after: never held for good.
                stranded.extend(unreleased);
                continue;
            }
            Err(_) => continue,
        };
        for (run, error) in unreadable {
            tracing::warn!(entry = run.delivery_id, handler = %run.handler, %error, "a stored delivery cannot be decoded; its run is dead");
            journal.record_attempt(Attempt {
                delivery_id: run.delivery_id,
                handler: run.handler,
                status: RunStatus::Dead,
                error: Some(format!("the stored delivery cannot be run: {error}")),
                duration: Duration::ZERO,
                next_at: None,
                output: None,
            });
        }
        let full = jobs.len() == limit;
        for ((run, mut delivery), permit) in jobs.into_iter().zip(permits) {
            let Some(route) = router.by_name(&run.handler) else {
                // Claimed by name from this router's names: not expected, but a claim
                // must not be leaked.
                stranded.push(run);
                continue;
            };
            delivery.attempt = run.attempts + 1;
            permit.send(Job {
                route: route.clone(),
                delivery,
                base: run.base,
            });
        }
        if full {
            // There may be more due: look again as soon as there is room.
            wake.notify_one();
        }
    }
}

/// Claims up to `limit` due runs and loads their deliveries; runs whose delivery is
/// gone, erased or does not decode come back apart, with why. When the deliveries
/// cannot be read (or reading panics) the claimed runs are released, due now; the
/// error comes back with those whose release failed too.
#[allow(clippy::type_complexity)]
fn load_due(
    journal: &Journal,
    handlers: &[String],
    limit: usize,
) -> Result<(Vec<(Due, Delivery)>, Vec<(Due, String)>), (crate::Error, Vec<Due>)> {
    let runs = journal
        .claim_due(handlers, limit)
        .map_err(|e| (e, Vec::new()))?;
    let loaded = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        load_claimed(journal, &runs)
    }));
    let error = match loaded {
        Ok(Ok(loaded)) => return Ok(loaded),
        Ok(Err(e)) => e,
        Err(_) => crate::Error::store("reading a due run's delivery failed unexpectedly"),
    };
    match journal.release_claimed(&runs) {
        Ok(()) => Err((error, Vec::new())),
        Err(_) => Err((error, runs)),
    }
}

#[allow(clippy::type_complexity)]
fn load_claimed(
    journal: &Journal,
    runs: &[Due],
) -> crate::Result<(Vec<(Due, Delivery)>, Vec<(Due, String)>)> {
    let mut jobs = Vec::with_capacity(runs.len());
    let mut unreadable = Vec::new();
    let mut last: Option<(i64, Result<Delivery, String>)> = None;
    for run in runs {
        let delivery = match &last {
            Some((id, d)) if *id == run.delivery_id => d.clone(),
            _ => {
                let d = match journal.entry_to_run(run.delivery_id)? {
                    None => Err("the delivery is not in the journal".to_owned()),
                    Some((_, true)) => Err("the delivery was erased".to_owned()),
                    Some((entry, false)) => {
                        let headers = header_map(&entry.headers);
                        dronehook_protocol::event_header(&headers)
                            .and_then(|event| Envelope::decode_with_header(&entry.body, event))
                            .map(|envelope| {
                                let mut d = Delivery::new(
                                    envelope,
                                    Bytes::from(entry.body),
                                    headers,
                                    entry.received_at,
                                );
                                d.id = Some(entry.id);
                                d
                            })
                            .map_err(|e| e.to_string())
                    }
                };
                last = Some((run.delivery_id, d.clone()));
                d
            }
        };
        match delivery {
            Ok(d) => jobs.push((run.clone(), d)),
            Err(e) => unreadable.push((run.clone(), e)),
        }
    }
    Ok((jobs, unreadable))
}

/// Exponential backoff: `base * 2^(attempt - 1)`, capped.
pub(crate) fn backoff(base: Duration, max: Duration, attempt: u32) -> Duration {
    let factor = 1u32
        .checked_shl(attempt.saturating_sub(1).min(31))
        .unwrap_or(u32::MAX);
    base.saturating_mul(factor).min(max)
}

async fn run_job(
    job: Job,
    journal: &Journal,
    metrics: &Metrics,
    router: &Router,
    settings: &Settings,
    wake: &Arc<Notify>,
) {
    let Job {
        route,
        delivery,
        base,
    } = job;
    let attempt_no = delivery.attempt;
    let id = delivery.id.unwrap_or(0);
    let event = delivery.filter_name();
    let delivery = delivery.for_attempt();
    let slot = delivery.output.clone();
    let (result, duration) = attempt(&route, delivery).await;
    // Attempts count from the run's last (re)queueing: a redelivery gets a fresh set.
    let made = attempt_no.saturating_sub(base);
    let will_retry = result.is_err() && made < settings.max_attempts;
    let status = match (&result, will_retry) {
        (Ok(()), _) => RunStatus::Ok,
        (Err(_), true) => RunStatus::Pending,
        (Err(_), false) => RunStatus::Dead,
    };
    let delay = backoff(settings.retry_base, settings.retry_max, made);
    let error = result.as_ref().err().map(|e| e.message().to_owned());
    journal.record_attempt(Attempt {
        delivery_id: id,
        handler: route.name.clone(),
        status,
        error: error.clone(),
        duration,
        next_at: will_retry.then(|| SystemTime::now() + delay),
        output: slot.take(),
    });
    metrics.handler_run(&route.name, outcome_label(&result));
    if router.is_observed() {
        // The record is queued for the journal's writer; an observer that reads the
        // run from the store must find this outcome there. A failed flush is the
        // journal's to report.
        let _ = journal.flush().await;
    }
    match &error {
        None => {
            tracing::info!(handler = %route.name, id, attempt = attempt_no, duration_ms = duration.as_millis() as u64, "handler ok");
        }
        Some(e) => {
            tracing::warn!(handler = %route.name, id, attempt = attempt_no, error = %e, will_retry, "handler failed");
        }
    }
    router.emit(&Observation::Handler(HandlerRecord {
        handler: route.name.clone(),
        delivery_id: Some(id),
        event,
        attempt: attempt_no,
        result,
        duration,
        will_retry,
    }));
    if will_retry && delay < POLL_EVERY {
        // The retry is due in the journal; a short one need not wait for the next
        // poll. (Only a hint: a stop loses nothing, the due time is stored.)
        let wake = wake.clone();
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            wake.notify_one();
        });
    }
}
