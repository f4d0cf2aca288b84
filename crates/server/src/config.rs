//! [`Config`] and its [`ConfigBuilder`]: everything a receiver is told at start-up,
//! with sensible defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dronehook_protocol::{Policy, Secret};

use crate::store::StoreUrl;

/// The default listen address: all interfaces, port 3000.
pub const DEFAULT_ADDR: &str = "0.0.0.0:3000";
/// The default webhook path.
pub const DEFAULT_PATH: &str = "/";
/// The default body limit: 1 MiB.
pub const DEFAULT_MAX_BODY: usize = 1024 * 1024;
/// The default time a client has to send the request headers.
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// The default time a client has to send the whole request.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The default time an idle keep-alive connection is kept open, waiting for the next
/// request: 120 s, longer than the 90 s Go's `http.Transport` (Drone's client) keeps an
/// idle connection, so that the client always closes first. A server that closes first
/// races the client's next request on that connection, and Go does not retry a `POST`
/// it has started writing.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// The default cap on open connections.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// The default number of handler workers (with a journal).
pub const DEFAULT_WORKERS: usize = 8;
/// The default number of attempts a handler gets (with a journal).
pub const DEFAULT_MAX_ATTEMPTS: u32 = 5;
/// The default delay before the first retry; each later retry waits twice as long.
pub const DEFAULT_RETRY_BASE: Duration = Duration::from_secs(1);
/// The default cap on the delay between retries.
pub const DEFAULT_RETRY_MAX: Duration = Duration::from_secs(300);
/// The default time graceful shutdown waits for in-flight requests and handlers.
pub const DEFAULT_SHUTDOWN_GRACE: Duration = Duration::from_secs(10);
/// The accepted-request rate, per second, the default replay capacity is sized for:
/// the capacity is this rate times the replay window (300 000 entries for the
/// default 5 minute window, about 40 MB when full).
pub const DEFAULT_REPLAY_RATE: u32 = 1000;
/// The default retention of the store (SQLite or PostgreSQL): requests older than 7
/// days go, once their handler runs are finished.
pub const DEFAULT_RETAIN: Duration = Duration::from_secs(7 * 24 * 3600);
/// The default row bound of the store: the newest million requests are kept (and any
/// older one whose handler runs are not finished).
pub const DEFAULT_MAX_ROWS: u64 = 1_000_000;
/// The default time between two pruning passes of the store (SQLite or PostgreSQL):
/// 60 s. Pruning runs in the background, off the request path; the first pass comes
/// one interval after the start.
pub(crate) const DEFAULT_PRUNE_INTERVAL: Duration = Duration::from_secs(60);
/// The shortest pruning interval a configuration takes: each pass is a query of the
/// whole store's oldest rows, so a shorter one would keep a core busy for nothing.
pub(crate) const MIN_PRUNE_INTERVAL: Duration = Duration::from_millis(100);
/// The default lease on a handler run in a PostgreSQL store: renewed every third of
/// it while the handler runs; when its holder dies, another instance runs it after
/// this long.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(30);

/// PEM files for TLS: a certificate chain and its private key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// The private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// How a receiver runs: where it listens, how it verifies, what it keeps.
///
/// Made with a [`ConfigBuilder`]: start from [`Config::builder`] with a verification
/// [`Policy`] (the secrets and the allowed clock skew), set what differs from the
/// defaults, then [`build`](ConfigBuilder::build). Each setting is read back with the
/// getter of the same name:
///
/// ```
/// use std::time::Duration;
/// use dronehook_protocol::Policy;
/// use dronehook_server::Config;
///
/// let config = Config::builder(Policy::new("s3cr3t").max_skew(Duration::from_secs(120)))
///     .addr("127.0.0.1:0".parse().unwrap())
///     .path("/hooks/drone")
///     .journal("/var/lib/dronehook/journal.db")
///     .build();
/// assert_eq!(config.path(), "/hooks/drone");
/// assert_eq!(config.secret_count(), 1);
/// assert_eq!(config.replay_window(), Duration::from_secs(120));
/// assert_eq!(config.replay_capacity(), 120_000);
/// ```
///
/// Its `Debug` output names how many secrets there are, never the secrets.
#[derive(Clone)]
pub struct Config {
    /// The policy; empty (no secrets) when verification is off.
    pub(crate) policy: Policy,
    /// Whether requests are verified: only [`Config::insecure_no_verification`] turns
    /// this off.
    pub(crate) verify: bool,
    pub(crate) addr: SocketAddr,
    pub(crate) path: String,
    pub(crate) max_body: usize,
    pub(crate) header_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_connections: usize,
    pub(crate) replay_protection: bool,
    /// `None`: derived from the window and [`DEFAULT_REPLAY_RATE`].
    pub(crate) replay_capacity: Option<usize>,
    pub(crate) store: Option<StoreUrl>,
    pub(crate) retain: Option<Duration>,
    pub(crate) max_rows: Option<u64>,
    pub(crate) prune_interval: Duration,
    pub(crate) lease: Duration,
    pub(crate) workers: usize,
    pub(crate) max_attempts: u32,
    pub(crate) retry_base: Duration,
    pub(crate) retry_max: Duration,
    pub(crate) shutdown_grace: Duration,
    pub(crate) tls: Option<TlsFiles>,
}

/// Sets up a [`Config`]; made by [`Config::builder`] (or
/// [`Config::insecure_no_verification`]), finished by [`ConfigBuilder::build`].
#[derive(Clone, Debug)]
pub struct ConfigBuilder {
    config: Config,
}

impl Config {
    /// Starts a configuration with this verification policy and every other setting at
    /// its default: listen on `0.0.0.0:3000`, path `/`, 1 MiB bodies, 10 s to send the
    /// headers and 30 s for the whole request, idle keep-alive connections closed after
    /// 120 s, 1024 connections, replay protection on, no journal, no TLS.
    pub fn builder(policy: Policy) -> ConfigBuilder {
        ConfigBuilder {
            config: Config::with_policy(policy, true),
        }
    }

    /// Starts a configuration that does **not verify requests**: no signature, digest
    /// or `Date` check, so anyone who can reach the port can send events. For local
    /// experiments only. The body is still checked to decode, and every other rule
    /// (path, method, size, content type, replay check, journal) still applies; the
    /// replay window is the default skew, and a delivery's `secret_index` is 0.
    ///
    /// The server logs a warning when it starts with this configuration.
    pub fn insecure_no_verification() -> ConfigBuilder {
        ConfigBuilder {
            config: Config::with_policy(Policy::with_secrets(Vec::<Secret>::new()), false),
        }
    }

    fn with_policy(policy: Policy, verify: bool) -> Config {
        Config {
            policy,
            verify,
            addr: DEFAULT_ADDR.parse().unwrap_or_else(|_| unreachable!()),
            path: DEFAULT_PATH.to_owned(),
            max_body: DEFAULT_MAX_BODY,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            replay_protection: true,
            replay_capacity: None,
            store: None,
            retain: Some(DEFAULT_RETAIN),
            max_rows: Some(DEFAULT_MAX_ROWS),
            prune_interval: DEFAULT_PRUNE_INTERVAL,
            lease: DEFAULT_LEASE,
            workers: DEFAULT_WORKERS,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            retry_base: DEFAULT_RETRY_BASE,
            retry_max: DEFAULT_RETRY_MAX,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            tls: None,
        }
    }

    /// The verification policy, or `None` when verification is off
    /// ([`Config::insecure_no_verification`]).
    pub fn policy(&self) -> Option<&Policy> {
        self.verify.then_some(&self.policy)
    }

    /// Whether this configuration was made by [`Config::insecure_no_verification`]:
    /// requests are not verified.
    pub fn is_insecure_no_verification(&self) -> bool {
        !self.verify
    }

    /// How many secrets verify requests (for a start-up line; never the secrets): 0
    /// when verification is off.
    pub fn secret_count(&self) -> usize {
        self.policy.secret_count()
    }

    /// The listen address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The webhook path.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The body limit in bytes.
    pub fn max_body(&self) -> usize {
        self.max_body
    }

    /// How long a client may take to send the request headers.
    pub fn header_timeout(&self) -> Duration {
        self.header_timeout
    }

    /// How long a client may take to send the whole request.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// How long a keep-alive connection may stay idle between requests.
    pub fn idle_timeout(&self) -> Duration {
        self.idle_timeout
    }

    /// The cap on open connections.
    pub fn max_connections(&self) -> usize {
        self.max_connections
    }

    /// Whether replay protection is on.
    pub fn replay_protection(&self) -> bool {
        self.replay_protection
    }

    /// How long an accepted body is remembered for replay protection: the policy's
    /// skew, since an older copy fails the `Date` check anyway.
    pub fn replay_window(&self) -> Duration {
        self.policy.skew()
    }

    /// How many accepted requests the in-memory replay check remembers at most: the
    /// value set with [`ConfigBuilder::replay_capacity`], or else the replay window
    /// times [`DEFAULT_REPLAY_RATE`] a second (at least 1).
    pub fn replay_capacity(&self) -> usize {
        self.replay_capacity.unwrap_or_else(|| {
            let entries = self.replay_window().as_millis() * u128::from(DEFAULT_REPLAY_RATE) / 1000;
            usize::try_from(entries).unwrap_or(usize::MAX).max(1)
        })
    }

    /// The journal file, when the store is SQLite.
    pub fn journal(&self) -> Option<&Path> {
        match &self.store {
            Some(StoreUrl::Sqlite(path)) => Some(path),
            _ => None,
        }
    }

    /// The store, when there is one.
    pub fn store(&self) -> Option<&StoreUrl> {
        self.store.as_ref()
    }

    /// How long the store keeps a request whose handler runs are finished.
    pub fn retain(&self) -> Option<Duration> {
        self.retain
    }

    /// How many requests the store keeps at most (never pruning one whose handler runs
    /// are not finished).
    pub fn max_rows(&self) -> Option<u64> {
        self.max_rows
    }

    /// How often the store (SQLite or PostgreSQL) is pruned by the retention settings
    /// ([`Config::retain`], [`Config::max_rows`]).
    pub fn prune_interval(&self) -> Duration {
        self.prune_interval
    }

    /// How long a claim on a handler run in a PostgreSQL store lasts unrenewed.
    pub fn lease(&self) -> Duration {
        self.lease
    }

    /// How many handler runs may be under way at once (with a journal).
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// How many attempts a failing handler gets (with a journal).
    pub fn max_attempts(&self) -> u32 {
        self.max_attempts
    }

    /// The delay before the first retry.
    pub fn retry_base(&self) -> Duration {
        self.retry_base
    }

    /// The cap on the delay between retries.
    pub fn retry_max(&self) -> Duration {
        self.retry_max
    }

    /// How long graceful shutdown waits for in-flight requests and handler runs.
    pub fn shutdown_grace(&self) -> Duration {
        self.shutdown_grace
    }

    /// The TLS files, when HTTPS is on.
    pub fn tls(&self) -> Option<&TlsFiles> {
        self.tls.as_ref()
    }
}

impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Written by hand so that no secret, nor anything derived from one, is printed.
        let mut d = f.debug_struct("Config");
        if self.verify {
            d.field("secrets", &self.policy.secret_count());
        } else {
            d.field("verification", &"DISABLED (insecure_no_verification)");
        }
        d.field("max_skew", &self.policy.skew())
            .field("addr", &self.addr)
            .field("path", &self.path)
            .field("max_body", &self.max_body)
            .field("header_timeout", &self.header_timeout)
            .field("request_timeout", &self.request_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_connections", &self.max_connections)
            .field("replay_protection", &self.replay_protection)
            .field("replay_capacity", &self.replay_capacity())
            .field("store", &self.store)
            .field("retain", &self.retain)
            .field("max_rows", &self.max_rows)
            .field("prune_interval", &self.prune_interval)
            .field("lease", &self.lease)
            .field("workers", &self.workers)
            .field("max_attempts", &self.max_attempts)
            .field("retry_base", &self.retry_base)
            .field("retry_max", &self.retry_max)
            .field("shutdown_grace", &self.shutdown_grace)
            .field("tls", &self.tls)
            .finish()
    }
}

impl ConfigBuilder {
    /// Finishes the configuration.
    pub fn build(self) -> Config {
        self.config
    }

    /// Sets the listen address; port 0 picks a free port ([`crate::Server::local_addr`]).
    pub fn addr(mut self, addr: SocketAddr) -> Self {
        self.config.addr = addr;
        self
    }

    /// Sets the webhook path (default `/`). A missing leading `/` is added.
    pub fn path(mut self, path: impl Into<String>) -> Self {
        let path = path.into();
        self.config.path = if path.starts_with('/') {
            path
        } else {
            format!("/{path}")
        };
        self
    }

    /// Sets the body limit in bytes (default 1 MiB); larger bodies get 413.
    pub fn max_body(mut self, bytes: usize) -> Self {
        self.config.max_body = bytes;
        self
    }

    /// Sets how long a client may take to send the request headers (default 10 s):
    /// counted from the connection's start for its first request, and from the first
    /// byte of the head for each later request on a keep-alive connection (the wait
    /// before that byte is [`ConfigBuilder::idle_timeout`]'s). A connection whose head
    /// is not complete in time is closed: this is what stops slowloris clients.
    pub fn header_timeout(mut self, timeout: Duration) -> Self {
        self.config.header_timeout = timeout;
        self
    }

    /// Sets how long a keep-alive connection may stay idle between an answer and the
    /// first byte of its next request before the server closes it (default 120 s,
    /// [`DEFAULT_IDLE_TIMEOUT`]). Keep it longer than the clients' own idle timeout
    /// (90 s for Drone's Go client) so that the client, which knows whether it is
    /// about to send, always closes first. Closing is graceful: only a connection with
    /// no request under way is closed, with a FIN and no answer.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.config.idle_timeout = timeout;
        self
    }

    /// Sets how long a client may take to send the whole request (default 30 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.config.request_timeout = timeout;
        self
    }

    /// Sets the cap on open connections (default 1024); further clients wait in the
    /// listen backlog.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.config.max_connections = max.max(1);
        self
    }

    /// Turns replay protection on or off (default on). When on, a body accepted within
    /// the policy's skew window is answered with success again but not delivered again.
    pub fn replay_protection(mut self, on: bool) -> Self {
        self.config.replay_protection = on;
        self
    }

    /// Sets how many accepted requests the in-memory replay check remembers at most
    /// (default: the replay window times [`DEFAULT_REPLAY_RATE`] a second; at least
    /// 1). Each entry costs 115 to 165 bytes of memory. When it is full, a new request is
    /// answered 503 `replay.full` with `Retry-After` (the time until the oldest entry
    /// expires) rather than let through unchecked; a copy of a remembered request is
    /// still answered as a replay. With a journal, whose unique key on the body's
    /// digest catches every copy of an accepted body, a full map refuses nothing: the
    /// journal decides.
    pub fn replay_capacity(mut self, entries: usize) -> Self {
        self.config.replay_capacity = Some(entries.max(1));
        self
    }

    /// Keeps a journal in this SQLite file: every acknowledged request is on disk
    /// first, handlers run after the answer with retries, and a restart resumes them.
    pub fn journal(mut self, path: impl Into<PathBuf>) -> Self {
        self.config.store = Some(StoreUrl::Sqlite(path.into()));
        self
    }

    /// Sets the store: a SQLite journal (as [`ConfigBuilder::journal`]) or a PostgreSQL
    /// database that several receivers share (with the `postgres` feature; without it,
    /// [`crate::Server::bind`] refuses the configuration). With PostgreSQL the replay
    /// check is the database's, a request is answered only after its commit, and
    /// handler runs are claimed with a lease by whichever receiver has a free worker.
    pub fn store(mut self, store: StoreUrl) -> Self {
        self.config.store = Some(store);
        self
    }

    /// Sets how long the store (SQLite or PostgreSQL) keeps a request once its handler
    /// runs are finished (default 7 days; `None`: no age limit). Pruning runs in the
    /// background, off the request path.
    pub fn retain(mut self, retain: Option<Duration>) -> Self {
        self.config.retain = retain;
        self
    }

    /// Sets how many requests the store keeps at most, the newest (default a million;
    /// `None`: no bound). One whose handler runs are pending is never pruned.
    pub fn max_rows(mut self, rows: Option<u64>) -> Self {
        self.config.max_rows = rows;
        self
    }

    /// Sets how often the store (SQLite or PostgreSQL) is pruned by
    /// [`ConfigBuilder::retain`] and [`ConfigBuilder::max_rows`] (default 60 s; at
    /// least 100 ms, a shorter one is taken as 100 ms). Each receiver
    /// prunes on its own timer, in the background; the first pass comes one interval
    /// after the start. With PostgreSQL each pass also removes the replay check's
    /// expired keys, so an interval much longer than the replay window lets that
    /// table hold more rows than the window needs.
    pub fn prune_interval(mut self, interval: Duration) -> Self {
        self.config.prune_interval = interval.max(MIN_PRUNE_INTERVAL);
        self
    }

    /// Sets how long a claim on a handler run in a PostgreSQL store lasts unrenewed
    /// (default 30 s, at least 1 s): how soon another receiver takes over the runs of
    /// one that died.
    pub fn lease(mut self, lease: Duration) -> Self {
        self.config.lease = lease.max(Duration::from_secs(1));
        self
    }

    /// Sets how many handler runs may be under way at once (with a journal; default 8).
    pub fn workers(mut self, workers: usize) -> Self {
        self.config.workers = workers.max(1);
        self
    }

    /// Sets how many attempts a failing handler gets (with a journal; default 5).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.config.max_attempts = attempts.max(1);
        self
    }

    /// Sets the delay before the first retry (default 1 s); each retry doubles it.
    pub fn retry_base(mut self, delay: Duration) -> Self {
        self.config.retry_base = delay;
        self
    }

    /// Sets the cap on the delay between retries (default 5 minutes).
    pub fn retry_max(mut self, delay: Duration) -> Self {
        self.config.retry_max = delay;
        self
    }

    /// Sets how long graceful shutdown waits for in-flight requests and handler runs
    /// (default 10 s). Handler runs still going then are resumed at the next start.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.config.shutdown_grace = grace;
        self
    }

    /// Serves HTTPS with this PEM certificate chain and key.
    pub fn tls(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.config.tls = Some(TlsFiles {
            cert: cert.into(),
            key: key.into(),
        });
        self
    }
}
