//! [`ClientBuilder`]: the settings, their defaults, and [`build`](ClientBuilder::build),
//! which checks them and makes the connection pool.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use dronehook_protocol::{EventFilter, Secret, Signer};
use http::HeaderValue;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use rustls_pki_types::CertificateDer;

use crate::endpoint::{Endpoint, redact};
use crate::send::Inner;
use crate::{Client, Error, Roots, tls};

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

        Ok(Client::new(Arc::new(Inner {
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
        })))
    }
}
