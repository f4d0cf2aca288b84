//! [`Config`]: everything a receiver is told at start-up, with sensible defaults.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dronehook_protocol::Policy;

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
/// Start from [`Config::new`] with a verification [`Policy`] (the secrets and the
/// allowed clock skew) and change what differs from the defaults:
///
/// ```
/// use std::time::Duration;
/// use dronehook_protocol::Policy;
/// use dronehook_server::Config;
///
/// let config = Config::new(Policy::new("s3cr3t").max_skew(Duration::from_secs(120)))
///     .addr("127.0.0.1:0".parse().unwrap())
///     .path("/hooks/drone")
///     .journal("/var/lib/dronehook/journal.db");
/// assert_eq!(config.secret_count(), 1);
/// assert_eq!(config.replay_window(), Duration::from_secs(120));
/// ```
#[derive(Clone, Debug)]
pub struct Config {
    pub(crate) policy: Policy,
    pub(crate) addr: SocketAddr,
    pub(crate) path: String,
    pub(crate) max_body: usize,
    pub(crate) header_timeout: Duration,
    pub(crate) request_timeout: Duration,
    pub(crate) idle_timeout: Duration,
    pub(crate) max_connections: usize,
    pub(crate) replay_protection: bool,
    pub(crate) journal: Option<PathBuf>,
    pub(crate) workers: usize,
    pub(crate) max_attempts: u32,
    pub(crate) retry_base: Duration,
    pub(crate) retry_max: Duration,
    pub(crate) shutdown_grace: Duration,
    pub(crate) tls: Option<TlsFiles>,
}

impl Config {
    /// A configuration with this verification policy and every other setting at its
    /// default: listen on `0.0.0.0:3000`, path `/`, 1 MiB bodies, 10 s to send the
    /// headers and 30 s for the whole request, idle keep-alive connections closed after
    /// 120 s, 1024 connections, replay protection on, no journal, no TLS.
    pub fn new(policy: Policy) -> Self {
        Config {
            policy,
            addr: DEFAULT_ADDR.parse().unwrap_or_else(|_| unreachable!()),
            path: DEFAULT_PATH.to_owned(),
            max_body: DEFAULT_MAX_BODY,
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            replay_protection: true,
            journal: None,
            workers: DEFAULT_WORKERS,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            retry_base: DEFAULT_RETRY_BASE,
            retry_max: DEFAULT_RETRY_MAX,
            shutdown_grace: DEFAULT_SHUTDOWN_GRACE,
            tls: None,
        }
    }

    /// Sets the verification policy (secrets, skew, key ids).
    pub fn policy(mut self, policy: Policy) -> Self {
        self.policy = policy;
        self
    }

    /// Sets the listen address; port 0 picks a free port ([`crate::RunningServer::local_addr`]).
    pub fn addr(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// Sets the webhook path (default `/`). A missing leading `/` is added.
    pub fn path(mut self, path: impl Into<String>) -> Self {
        let path = path.into();
        self.path = if path.starts_with('/') {
            path
        } else {
            format!("/{path}")
        };
        self
    }

    /// Sets the body limit in bytes (default 1 MiB); larger bodies get 413.
    pub fn max_body_bytes(mut self, bytes: usize) -> Self {
        self.max_body = bytes;
        self
    }

    /// Sets how long a client may take to send the request headers (default 10 s):
    /// counted from the connection's start for its first request, and from the first
    /// byte of the head for each later request on a keep-alive connection (the wait
    /// before that byte is [`Config::idle_timeout`]'s). A connection whose head is not
    /// complete in time is closed: this is what stops slowloris clients.
    pub fn header_timeout(mut self, timeout: Duration) -> Self {
        self.header_timeout = timeout;
        self
    }

    /// Sets how long a keep-alive connection may stay idle between an answer and the
    /// first byte of its next request before the server closes it (default 120 s,
    /// [`DEFAULT_IDLE_TIMEOUT`]). Keep it longer than the clients' own idle timeout
    /// (90 s for Drone's Go client) so that the client, which knows whether it is
    /// about to send, always closes first. Closing is graceful: only a connection with
    /// no request under way is closed, with a FIN and no answer.
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Sets how long a client may take to send the whole request (default 30 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// Sets the cap on open connections (default 1024); further clients wait in the
    /// listen backlog.
    pub fn max_connections(mut self, max: usize) -> Self {
        self.max_connections = max.max(1);
        self
    }

    /// Turns replay protection on or off (default on). When on, a body accepted within
    /// the policy's skew window is answered with success again but not delivered again.
    pub fn replay_protection(mut self, on: bool) -> Self {
        self.replay_protection = on;
        self
    }

    /// Keeps a journal in this SQLite file: every acknowledged request is on disk
    /// first, handlers run after the answer with retries, and a restart resumes them.
    pub fn journal(mut self, path: impl Into<PathBuf>) -> Self {
        self.journal = Some(path.into());
        self
    }

    /// Sets or clears the journal path.
    pub fn journal_opt(mut self, path: Option<PathBuf>) -> Self {
        self.journal = path;
        self
    }

    /// Sets how many handler runs may be under way at once (with a journal; default 8).
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = workers.max(1);
        self
    }

    /// Sets how many attempts a failing handler gets (with a journal; default 5).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Sets the delay before the first retry (default 1 s); each retry doubles it.
    pub fn retry_base(mut self, delay: Duration) -> Self {
        self.retry_base = delay;
        self
    }

    /// Sets the cap on the delay between retries (default 5 minutes).
    pub fn retry_max(mut self, delay: Duration) -> Self {
        self.retry_max = delay;
        self
    }

    /// Sets how long graceful shutdown waits for in-flight requests and handler runs
    /// (default 10 s). Handler runs still going then are resumed at the next start.
    pub fn shutdown_grace(mut self, grace: Duration) -> Self {
        self.shutdown_grace = grace;
        self
    }

    /// Serves HTTPS with this PEM certificate chain and key.
    pub fn tls(mut self, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        self.tls = Some(TlsFiles {
            cert: cert.into(),
            key: key.into(),
        });
        self
    }

    /// The verification policy.
    pub fn verification_policy(&self) -> &Policy {
        &self.policy
    }

    /// The listen address.
    pub fn listen_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The webhook path.
    pub fn webhook_path(&self) -> &str {
        &self.path
    }

    /// How many secrets the policy holds (for a start-up line; never the secrets).
    pub fn secret_count(&self) -> usize {
        self.policy.secret_count()
    }

    /// The journal file, when there is one.
    pub fn journal_path(&self) -> Option<&Path> {
        self.journal.as_deref()
    }

    /// How long an accepted body is remembered for replay protection: the policy's
    /// skew, since an older copy fails the `Date` check anyway.
    pub fn replay_window(&self) -> Duration {
        self.policy.skew()
    }

    /// Whether replay protection is on.
    pub fn is_replay_protected(&self) -> bool {
        self.replay_protection
    }

    /// The TLS files, when HTTPS is on.
    pub fn tls_files(&self) -> Option<&TlsFiles> {
        self.tls.as_ref()
    }
}
