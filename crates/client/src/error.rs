//! The client's error type: opaque, classified by `is_*()` methods, cheap to clone.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;

type Source = Arc<dyn std::error::Error + Send + Sync + 'static>;

/// Why a delivery attempt, or building a client, failed.
///
/// The error is opaque: ask it what it is with the `is_*()` methods. It is cheap to
/// clone (its cause is shared), so reports holding it can be cloned too. Its messages
/// never contain the secret.
#[derive(Clone)]
pub struct Error {
    kind: Kind,
    source: Option<Source>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// The builder was given something unusable.
    Builder(String),
    /// The TCP connection (or the TLS handshake) could not be made.
    Connect,
    /// The TLS handshake failed (a subclass of connect errors). `ca_as_server`: the
    /// server presented a CA certificate as its own, which rustls refuses as
    /// `CaUsedAsEndEntity`; common enough (`openssl req -x509` makes such
    /// certificates) to be explained in words.
    Tls { ca_as_server: bool },
    /// An attempt took longer than the per-attempt timeout.
    Timeout(Duration),
    /// The receiver answered with a status that is not 2xx.
    Status { status: StatusCode, body: String },
    /// The connection failed after it was made (reset, closed mid-response).
    Io,
    /// The payload could not be signed.
    Sign,
}

impl Error {
    pub(crate) fn new(kind: Kind) -> Self {
        Error { kind, source: None }
    }

    pub(crate) fn with_source(
        kind: Kind,
        source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
    ) -> Self {
        Error {
            kind,
            source: Some(Arc::from(source.into())),
        }
    }

    pub(crate) fn builder(message: impl Into<String>) -> Self {
        Error::new(Kind::Builder(message.into()))
    }

    /// Whether the client could not be built from the given settings.
    pub fn is_builder(&self) -> bool {
        matches!(self.kind, Kind::Builder(_))
    }

    /// Whether no connection could be made (refused, unreachable, DNS, TLS handshake).
    pub fn is_connect(&self) -> bool {
        matches!(self.kind, Kind::Connect | Kind::Tls { .. })
    }

    /// Whether the TLS handshake failed (an untrusted certificate, a wrong name).
    /// Such errors are also [`is_connect`](Self::is_connect).
    pub fn is_tls(&self) -> bool {
        matches!(self.kind, Kind::Tls { .. })
    }

    /// Whether the attempt ran out of time.
    pub fn is_timeout(&self) -> bool {
        matches!(self.kind, Kind::Timeout(_))
    }

    /// Whether the receiver answered with a status outside 2xx.
    pub fn is_status(&self) -> bool {
        matches!(self.kind, Kind::Status { .. })
    }

    /// Whether the connection broke after it was made (reset, closed mid-response).
    pub fn is_io(&self) -> bool {
        matches!(self.kind, Kind::Io)
    }

    /// The receiver's status, for [`is_status`](Self::is_status) errors.
    pub fn status(&self) -> Option<StatusCode> {
        match &self.kind {
            Kind::Status { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The start of the receiver's response body (at most 512 bytes, lossily
    /// decoded), for [`is_status`](Self::is_status) errors.
    pub fn body(&self) -> Option<&str> {
        match &self.kind {
            Kind::Status { body, .. } => Some(body),
            _ => None,
        }
    }

    /// Whether the failure is worth another attempt: connection errors, timeouts,
    /// broken connections, 408, 429 and 5xx. TLS failures and other statuses are final.
    pub fn is_retryable(&self) -> bool {
        match &self.kind {
            Kind::Connect | Kind::Timeout(_) | Kind::Io => true,
            Kind::Status { status, .. } => {
                *status == StatusCode::REQUEST_TIMEOUT
                    || *status == StatusCode::TOO_MANY_REQUESTS
                    || status.is_server_error()
            }
            // A certificate that fails verification fails the same way next time.
            Kind::Tls { .. } | Kind::Builder(_) | Kind::Sign => false,
        }
    }

    /// A short name of the error's class, stable for scripts and tables:
    /// `builder`, `connect`, `tls`, `timeout`, `status`, `io` or `sign`.
    pub fn class(&self) -> &'static str {
        match self.kind {
            Kind::Builder(_) => "builder",
            Kind::Connect => "connect",
            Kind::Tls { .. } => "tls",
            Kind::Timeout(_) => "timeout",
            Kind::Status { .. } => "status",
            Kind::Io => "io",
            Kind::Sign => "sign",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Builder(message) => write!(f, "invalid client settings: {message}"),
            Kind::Connect => f.write_str("could not connect"),
            Kind::Tls { ca_as_server: true } => {
                // What is wrong and what to do, in place of rustls's variant name.
                return f.write_str(
                    "TLS handshake failed: the server's certificate is a CA certificate (as \
                     `openssl req -x509` makes), which cannot identify a server; serve a \
                     certificate issued by a CA and trust that CA (`dronehook cert --out DIR` \
                     makes both)",
                );
            }
            Kind::Tls {
                ca_as_server: false,
            } => f.write_str("TLS handshake failed"),
            Kind::Timeout(limit) => write!(f, "timed out after {}", DisplayDuration(*limit)),
            Kind::Status { status, body } if body.is_empty() => {
                write!(f, "the receiver answered {status}")
            }
            Kind::Status { status, body } => {
                write!(f, "the receiver answered {status}: {body}")
            }
            Kind::Io => f.write_str("the connection failed"),
            Kind::Sign => f.write_str("could not sign the request"),
        }?;
        // The innermost cause says the most (`Connection refused`, `UnknownIssuer`);
        // the layers between add only wrapping words.
        if let Some(source) = &self.source {
            let mut cause: &(dyn std::error::Error + 'static) = source.as_ref();
            while let Some(next) = cause.source() {
                cause = next;
            }
            write!(f, ": {cause}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.kind);
        if let Some(source) = &self.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn std::error::Error + 'static))
    }
}

/// Durations in messages: `60s`, `250ms`.
struct DisplayDuration(Duration);

impl fmt::Display for DisplayDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = self.0;
        if d.subsec_nanos() == 0 {
            write!(f, "{}s", d.as_secs())
        } else {
            write!(f, "{}ms", d.as_millis())
        }
    }
}
