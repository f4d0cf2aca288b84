//! Running handlers: inline before the answer without a journal; with a journal, in a
//! bounded worker pool after the answer, with retries and resumption after a restart.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dronehook_protocol::Envelope;
use tokio::sync::{Mutex, mpsc, watch};
use tokio::task::JoinSet;

use crate::config::Config;
use crate::handler::{Delivery, HandlerError, HandlerRecord, Observation, Route, Router};
use crate::journal::{Journal, RunStatus, header_map};
use crate::metrics::Metrics;
use crate::shutdown::stopped;

/// One handler run to make.
struct Job {
    route: Route,
    delivery: Delivery,
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

/// The worker pool of a server with a journal.
#[derive(Clone)]
pub(crate) struct Dispatcher {
    inner: Arc<Inner>,
}

struct Inner {
    tx: mpsc::UnboundedSender<Job>,
    router: Arc<Router>,
    journal: Journal,
    workers: std::sync::Mutex<Option<JoinSet<()>>>,
    stop: watch::Sender<bool>,
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

impl Dispatcher {
    /// Starts the workers.
    pub(crate) fn start(
        config: &Config,
        router: Arc<Router>,
        journal: Journal,
        metrics: &Metrics,
    ) -> Dispatcher {
        let (tx, rx) = mpsc::unbounded_channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let (stop, stop_rx) = watch::channel(false);
        let settings = Settings {
            max_attempts: config.max_attempts,
            retry_base: config.retry_base,
            retry_max: config.retry_max,
        };
        let mut workers = JoinSet::new();
        for _ in 0..config.workers {
            let rx = rx.clone();
            let mut stop_rx = stop_rx.clone();
            let tx = tx.downgrade();
            let journal = journal.clone();
            let metrics = metrics.clone();
            let router = router.clone();
            let settings = settings.clone();
            workers.spawn(async move {
                loop {
                    let job = {
                        let mut rx = rx.lock().await;
                        tokio::select! {
                            job = rx.recv() => job,
                            () = stopped(&mut stop_rx) => None,
                        }
                    };
                    let Some(job) = job else { break };
                    run_job(job, &journal, &metrics, &router, &settings, &tx, &stop_rx).await;
                }
            });
        }
        Dispatcher {
            inner: Arc::new(Inner {
                tx,
                router,
                journal,
                workers: std::sync::Mutex::new(Some(workers)),
                stop,
            }),
        }
    }

    /// Queues a run of `route` for a journaled delivery.
    pub(crate) fn enqueue(&self, route: Route, delivery: Delivery) {
        let _ = self.inner.tx.send(Job { route, delivery });
    }

    /// Queues every run the journal says is unfinished (after a restart).
    pub(crate) async fn resume(&self) {
        let journal = self.inner.journal.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            let runs = journal.pending_runs()?;
            let mut out = Vec::with_capacity(runs.len());
            // Entries that cannot be resumed, logged on the caller's side (where the
            // server's subscriber is): the id and why, never the headers or body.
            let mut unreadable = Vec::new();
            let mut last: Option<(i64, Option<Delivery>)> = None;
            for run in runs {
                let delivery = match &last {
                    Some((id, d)) if *id == run.delivery_id => d.clone(),
                    _ => {
                        let delivery = match journal.entry(run.delivery_id)? {
                            None => {
                                unreadable.push((run.delivery_id, "no such entry".to_owned()));
                                None
                            }
                            Some(entry) => {
                                let headers = header_map(&entry.headers);
                                match dronehook_protocol::event_header(&headers).and_then(|event| {
                                    Envelope::decode_with_header(&entry.body, event)
                                }) {
                                    Ok(envelope) => {
                                        let mut d = Delivery::new(
                                            envelope,
                                            Bytes::from(entry.body),
                                            headers,
                                            entry.received_at,
                                        );
                                        d.id = Some(entry.id);
                                        Some(d)
                                    }
                                    Err(e) => {
                                        unreadable.push((entry.id, e.to_string()));
                                        None
                                    }
                                }
                            }
                        };
                        last = Some((run.delivery_id, delivery.clone()));
                        delivery
                    }
                };
                if let Some(delivery) = delivery {
                    out.push((run.handler, run.attempts, delivery));
                }
            }
            Ok::<_, crate::Error>((out, unreadable))
        })
        .await;
        let (runs, unreadable) = match loaded {
            Ok(Ok(loaded)) => loaded,
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot read unfinished handler runs");
                return;
            }
            Err(_) => return,
        };
        for (id, error) in unreadable {
            tracing::warn!(
                entry = id,
                %error,
                "an unfinished run's journal entry cannot be decoded; it is not resumed"
            );
        }
        if !runs.is_empty() {
            tracing::info!(runs = runs.len(), "resuming unfinished handler runs");
        }
        for (handler, attempts, mut delivery) in runs {
            let Some(route) = self.inner.router.by_name(&handler) else {
                tracing::warn!(%handler, "an unfinished run names a handler this server does not have");
                continue;
            };
            delivery.attempt = attempts + 1;
            self.enqueue(route.clone(), delivery);
        }
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
    tx: &mpsc::WeakUnboundedSender<Job>,
    stop: &watch::Receiver<bool>,
) {
    let Job { route, delivery } = job;
    let attempt_no = delivery.attempt;
    let id = delivery.id.unwrap_or(0);
    let event = delivery.filter_name();
    let (result, duration) = attempt(&route, delivery.clone()).await;
    let will_retry = result.is_err() && attempt_no < settings.max_attempts;
    let status = match (&result, will_retry) {
        (Ok(()), _) => RunStatus::Ok,
        (Err(_), true) => RunStatus::Pending,
        (Err(_), false) => RunStatus::Failed,
    };
    let error = result.as_ref().err().map(|e| e.message().to_owned());
    journal.record_attempt(id, &route.name, status, error.clone(), duration);
    metrics.handler_run(&route.name, outcome_label(&result));
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
    if will_retry {
        let delay = backoff(settings.retry_base, settings.retry_max, attempt_no);
        let tx = tx.clone();
        let mut stop = stop.clone();
        let mut delivery = delivery;
        delivery.attempt = attempt_no + 1;
        tokio::spawn(async move {
            tokio::select! {
                () = tokio::time::sleep(delay) => {
                    if let Some(tx) = tx.upgrade() {
                        let _ = tx.send(Job { route, delivery });
                    }
                }
                // At shutdown the run stays pending in the journal for the next start.
                () = stopped(&mut stop) => {}
            }
        });
    }
}
