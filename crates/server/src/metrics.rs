//! The Prometheus metrics `GET /metrics` serves.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

/// The codes of 2xx answers: counted on every good request, so their counters are
/// made at start (and show as 0 until the first).
const FREQUENT_CODES: [&str; 3] = ["ok", "replay", "unknown_event"];

/// The server's metrics; cloning shares them.
#[derive(Clone)]
pub(crate) struct Metrics {
    registry: Arc<Registry>,
    requests: Family<Labels, Counter>,
    /// The counters of the answers a working receiver gives all the time, looked up
    /// without the family's lock, hashing and label allocation (see `request`).
    frequent: Arc<[(&'static str, Counter)]>,
    request_seconds: Histogram,
    commit_seconds: Histogram,
    handler_runs: Family<Labels, Counter>,
    replay_full: Counter,
    pub(crate) open_connections: Gauge,
    pub(crate) batches: crate::journal::BatchStats,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    pub(crate) fn new() -> Self {
        let mut registry = Registry::with_prefix("dronehook");
        let requests = Family::<Labels, Counter>::default();
        registry.register(
            "requests",
            "Webhook requests by outcome code",
            requests.clone(),
        );
        // 50 µs to about 26 s: covers a fast no-journal answer and a slow disk alike.
        let request_seconds = Histogram::new(exponential_buckets(0.000_05, 2.0, 20));
        registry.register(
            "request_duration_seconds",
            "Time from the request headers to the answer",
            request_seconds.clone(),
        );
        let commit_seconds = Histogram::new(exponential_buckets(0.000_05, 2.0, 20));
        registry.register(
            "journal_commit_duration_seconds",
            "Time a journal commit (one batch, one fsync) took",
            commit_seconds.clone(),
        );
        let handler_runs = Family::<Labels, Counter>::default();
        registry.register(
            "handler_runs",
            "Handler runs by handler and outcome",
            handler_runs.clone(),
        );
        let commits = Counter::default();
        registry.register(
            "journal_commits",
            "Journal transactions committed (one fsync each)",
            commits.clone(),
        );
        let batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 10));
        registry.register(
            "journal_batch_size",
            "Requests committed together in one journal transaction",
            batch_size.clone(),
        );
        let replay_full = Counter::default();
        registry.register(
            "replay_full",
            "Requests the full replay map had no room for (refused with 503 replay.full, \
             or left to the journal's dedupe)",
            replay_full.clone(),
        );
        let open_connections = Gauge::default();
        registry.register(
            "open_connections",
            "Open client connections",
            open_connections.clone(),
        );
        let frequent: Arc<[(&'static str, Counter)]> = FREQUENT_CODES
            .iter()
            .map(|&code| {
                let counter = requests
                    .get_or_create(&vec![("code", code.to_owned())])
                    .clone();
                (code, counter)
            })
            .collect();
        Metrics {
            registry: Arc::new(registry),
            requests,
            frequent,
            request_seconds,
            commit_seconds,
            handler_runs,
            replay_full,
            open_connections,
            batches: crate::journal::BatchStats {
                commits,
                batch_size: Some(batch_size),
            },
        }
    }

    pub(crate) fn request(&self, code: &'static str, latency: Duration) {
        // The success codes are counted through handles taken at start (a shared
        // atomic each); the family's read lock, label hashing and allocation are left
        // to the rare error codes.
        match self.frequent.iter().find(|(c, _)| *c == code) {
            Some((_, counter)) => {
                counter.inc();
            }
            None => {
                self.requests
                    .get_or_create(&vec![("code", code.to_owned())])
                    .inc();
            }
        }
        self.request_seconds.observe(latency.as_secs_f64());
    }

    pub(crate) fn commit(&self, took: Duration) {
        self.commit_seconds.observe(took.as_secs_f64());
    }

    pub(crate) fn replay_full(&self) {
        self.replay_full.inc();
    }

    pub(crate) fn handler_run(&self, handler: &str, outcome: &'static str) {
        self.handler_runs
            .get_or_create(&vec![
                ("handler", handler.to_owned()),
                ("outcome", outcome.to_owned()),
            ])
            .inc();
    }

    pub(crate) fn encode(&self) -> String {
        let mut out = String::with_capacity(4096);
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}
