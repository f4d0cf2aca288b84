//! Runs handlers from the PostgreSQL store: claims due runs with a lease, runs each on a
//! bounded number of tasks, renews the lease while the handler runs, and records the
//! outcome (ok, a retry after its backoff, or dead after the last attempt).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use dronehook_protocol::Envelope;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use super::{Claimed, Outcome, PostgresStore};
use crate::dispatch::backoff;
use crate::handler::{Delivery, HandlerError, HandlerRecord, Observation, Route, Router};
use crate::journal::header_map;
use crate::metrics::Metrics;

/// How the runner behaves.
#[derive(Clone, Debug)]
pub(crate) struct RunnerSettings {
    /// Handler runs at once.
    pub(crate) workers: usize,
    /// Attempts per run, the first included.
    pub(crate) max_attempts: u32,
    /// The first retry's delay; each later one doubles, up to `retry_max`.
    pub(crate) retry_base: Duration,
    pub(crate) retry_max: Duration,
    /// How long a claim holds a run; renewed every third of it while the handler runs.
    pub(crate) lease: Duration,
}

/// The handler runs of one instance.
pub(crate) struct Runner {
    stop: watch::Sender<bool>,
    tasks: std::sync::Mutex<Option<JoinSet<()>>>,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Runner")
    }
}

struct Context {
    store: PostgresStore,
    router: Arc<Router>,
    metrics: Metrics,
    settings: RunnerSettings,
    handlers: Vec<String>,
}

impl Runner {
    /// Starts claiming runs of the router's handlers.
    pub(crate) fn start(
        store: PostgresStore,
        router: Arc<Router>,
        metrics: Metrics,
        settings: RunnerSettings,
    ) -> Runner {
        let (stop, stop_rx) = watch::channel(false);
        let handlers = router.names().into_iter().map(str::to_owned).collect();
        let cx = Arc::new(Context {
            store,
            router,
            metrics,
            settings,
            handlers,
        });
        let mut tasks = JoinSet::new();
        tasks.spawn(claim_loop(cx, stop_rx));
        Runner {
            stop,
            tasks: std::sync::Mutex::new(Some(tasks)),
        }
    }

    /// Stops claiming and waits (up to `grace`) for the runs under way. A run still
    /// going after that is dropped; its lease expires and an instance claims it again.
    pub(crate) async fn stop(&self, grace: Duration) {
        self.stop.send_replace(true);
        let tasks = self
            .tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(mut tasks) = tasks {
            let all = async { while tasks.join_next().await.is_some() {} };
            if tokio::time::timeout(grace, all).await.is_err() {
                tracing::warn!(
                    "handler runs still going after the grace period; their leases expire and they run again"
                );
            }
        }
    }
}

async fn claim_loop(cx: Arc<Context>, mut stop: watch::Receiver<bool>) {
    let slots = Arc::new(Semaphore::new(cx.settings.workers.max(1)));
    let mut running = JoinSet::new();
    loop {
        if *stop.borrow() {
            break;
        }
        // Claim only what there are free workers for: a claimed run waiting for a
        // worker would hold a lease another instance could use.
        let Ok(first) = slots.clone().acquire_owned().await else {
            break;
        };
        let free = slots.available_permits() + 1;
        let claimed = cx
            .store
            .claim(
                &cx.handlers,
                free,
                cx.settings.lease,
                cx.settings.max_attempts,
            )
            .await;
        let claimed = match claimed {
            Ok(claimed) => claimed,
            Err(e) => {
                tracing::warn!(error = %e, "cannot claim handler runs");
                Vec::new()
            }
        };
        if claimed.is_empty() {
            drop(first);
            // Reap finished runs so the set does not grow.
            while running.try_join_next().is_some() {}
            tokio::select! {
                _ = cx.store.wait_for_work(cx.settings.lease) => {}
                () = crate::shutdown::stopped(&mut stop) => break,
            }
            continue;
        }
        let mut first = Some(first);
        for run in claimed {
            let permit = match first.take() {
                Some(p) => p,
                None => match slots.clone().try_acquire_owned() {
                    Ok(p) => p,
                    // Not expected (only this loop takes permits); the lease expires.
                    Err(_) => break,
                },
            };
            let cx = cx.clone();
            running.spawn(async move {
                execute(&cx, run).await;
                drop(permit);
            });
        }
    }
    // The runs under way finish (the caller bounds how long it waits).
    while running.join_next().await.is_some() {}
}

/// Loads the delivery, runs the handler while renewing the lease, records the outcome.
async fn execute(cx: &Context, run: Claimed) {
    let Some(route) = cx.router.by_name(&run.handler).cloned() else {
        return;
    };
    let delivery = match load(cx, &run).await {
        Ok(d) => d,
        // The database did not answer: the lease expires and the run is claimed again
        // when it does (recording anything now would fail the same way).
        Err(Load::Store(error)) => {
            tracing::warn!(id = run.delivery_id, handler = %run.handler, %error, "cannot read a stored delivery; it runs once the store answers");
            return;
        }
        Err(Load::Corrupt(error)) => {
            tracing::error!(id = run.delivery_id, handler = %run.handler, %error, "cannot run a stored delivery");
            let outcome = Outcome::Dead { error };
            record(cx, &run, &outcome, Duration::ZERO, None).await;
            return;
        }
    };
    let event = delivery.filter_name();
    let slot = delivery.output.clone();
    let (result, duration) = attempt_with_lease(cx, &run, &route, delivery).await;
    // Attempts count from the run's last (re)queueing: a redelivery gets a fresh set.
    let made = run.attempt.saturating_sub(run.base);
    let will_retry = result.is_err() && made < cx.settings.max_attempts;
    let outcome = match &result {
        Ok(()) => Outcome::Ok,
        Err(e) if will_retry => Outcome::Retry {
            error: e.message().to_owned(),
            after: backoff(cx.settings.retry_base, cx.settings.retry_max, made),
        },
        Err(e) => Outcome::Dead {
            error: e.message().to_owned(),
        },
    };
    record(cx, &run, &outcome, duration, slot.take().as_deref()).await;
    cx.metrics
        .handler_run(&route.name, if result.is_ok() { "ok" } else { "error" });
    match &result {
        Ok(()) => {
            tracing::info!(handler = %route.name, id = run.delivery_id, attempt = run.attempt, duration_ms = duration.as_millis() as u64, "handler ok");
        }
        Err(e) => {
            tracing::warn!(handler = %route.name, id = run.delivery_id, attempt = run.attempt, error = %e, will_retry, "handler failed");
        }
    }
    cx.router.emit(&Observation::Handler(HandlerRecord {
        handler: route.name.clone(),
        delivery_id: Some(run.delivery_id),
        event,
        attempt: run.attempt,
        result,
        duration,
        will_retry,
    }));
}

/// Why a claimed run's delivery could not be loaded.
enum Load {
    /// The store could not be read (for now).
    Store(String),
    /// The delivery is missing or does not decode: no retry will change that.
    Corrupt(String),
}

async fn load(cx: &Context, run: &Claimed) -> Result<Delivery, Load> {
    let entry = cx
        .store
        .entry(run.delivery_id)
        .await
        .map_err(|e| Load::Store(e.to_string()))?
        .ok_or_else(|| Load::Corrupt("the delivery is not in the store".to_owned()))?;
    if entry.body.is_empty() {
        return Err(Load::Corrupt("the delivery was erased".to_owned()));
    }
    let header_event = entry
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("x-drone-event"))
        .and_then(|(_, v)| std::str::from_utf8(v).ok());
    let envelope = Envelope::decode_with_header(&entry.body, header_event)
        .map_err(|e| Load::Corrupt(format!("the stored body does not decode: {e}")))?;
    let mut delivery = Delivery::new(
        envelope,
        Bytes::from(entry.body),
        header_map(&entry.headers),
        entry.received_at,
    );
    delivery.id = Some(entry.id);
    delivery.attempt = run.attempt;
    Ok(delivery)
}

/// Runs the handler on its own task (a panic becomes an error), renewing the lease
/// every third of its length until it ends.
async fn attempt_with_lease(
    cx: &Context,
    run: &Claimed,
    route: &Route,
    delivery: Delivery,
) -> (Result<(), HandlerError>, Duration) {
    let started = Instant::now();
    let mut handler = tokio::spawn(route.handler.call(delivery));
    let mut renew = tokio::time::interval(cx.settings.lease / 3);
    renew.tick().await;
    let result = loop {
        tokio::select! {
            joined = &mut handler => break match joined {
                Ok(result) => result,
                Err(e) if e.is_panic() => Err(HandlerError::new("the handler panicked")),
                Err(_) => Err(HandlerError::new("the handler was cancelled")),
            },
            _ = renew.tick() => match cx.store.renew(run, cx.settings.lease).await {
                Ok(true) => {}
                Ok(false) => tracing::warn!(handler = %run.handler, id = run.delivery_id, "lost the lease of a running handler; another instance may run it again"),
                Err(e) => tracing::warn!(handler = %run.handler, id = run.delivery_id, error = %e, "cannot renew a lease"),
            },
        }
    };
    (result, started.elapsed())
}

/// Records an outcome, trying again while the database is unreachable, for as long as
/// the lease would have lasted: after that the run is claimed again anyway.
async fn record(
    cx: &Context,
    run: &Claimed,
    outcome: &Outcome,
    duration: Duration,
    output: Option<&[u8]>,
) {
    let deadline = Instant::now() + cx.settings.lease;
    loop {
        match cx.store.finish(run, outcome, duration, output).await {
            Ok(true) => return,
            Ok(false) => {
                tracing::warn!(handler = %run.handler, id = run.delivery_id, "the run's lease was lost before its outcome was recorded; it runs again");
                return;
            }
            Err(e) if Instant::now() < deadline => {
                tracing::debug!(error = %e, "cannot record a handler outcome yet");
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => {
                tracing::error!(handler = %run.handler, id = run.delivery_id, error = %e, "cannot record a handler outcome; the run runs again");
                return;
            }
        }
    }
}
