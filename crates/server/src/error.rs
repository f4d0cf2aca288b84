//! [`Error`]: why a receiver could not start, or its journal could not be read.

use std::fmt;
use std::path::PathBuf;

/// A receiver's start-up or journal failure. Opaque: ask it with the `is_*` methods.
///
/// Messages name the file or address involved and never hold a secret.
pub struct Error {
    kind: Kind,
}

#[derive(Debug)]
enum Kind {
    Bind {
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    Tls {
        path: Option<PathBuf>,
        message: String,
    },
    Journal {
        path: PathBuf,
        message: String,
    },
    Config(String),
    Io(std::io::Error),
    Store(String),
    NotFound(String),
    Schema(String),
    ReadOnly(String),
}

/// A receiver result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub(crate) fn bind(addr: std::net::SocketAddr, source: std::io::Error) -> Self {
        Error {
            kind: Kind::Bind { addr, source },
        }
    }

    pub(crate) fn tls(path: Option<PathBuf>, message: impl fmt::Display) -> Self {
        Error {
            kind: Kind::Tls {
                path,
                message: message.to_string(),
            },
        }
    }

    pub(crate) fn journal(path: impl Into<PathBuf>, message: impl fmt::Display) -> Self {
        Error {
            kind: Kind::Journal {
                path: path.into(),
                message: message.to_string(),
            },
        }
    }

    pub(crate) fn config(message: impl Into<String>) -> Self {
        Error {
            kind: Kind::Config(message.into()),
        }
    }

    pub(crate) fn io(source: std::io::Error) -> Self {
        Error {
            kind: Kind::Io(source),
        }
    }

    pub(crate) fn store(message: impl fmt::Display) -> Self {
        Error {
            kind: Kind::Store(message.to_string()),
        }
    }

    pub(crate) fn not_found(message: impl Into<String>) -> Self {
        Error {
            kind: Kind::NotFound(message.into()),
        }
    }

    pub(crate) fn schema(message: impl Into<String>) -> Self {
        Error {
            kind: Kind::Schema(message.into()),
        }
    }

    pub(crate) fn read_only(message: impl Into<String>) -> Self {
        Error {
            kind: Kind::ReadOnly(message.into()),
        }
    }

    /// What was asked for is not there: no store at a path, no event with an id.
    pub fn is_not_found(&self) -> bool {
        matches!(self.kind, Kind::NotFound(_))
    }

    /// The store's schema is newer than this build knows (upgrade dronehook), or
    /// older than a read-only handle can read (open it read-write once to migrate).
    pub fn is_schema(&self) -> bool {
        matches!(self.kind, Kind::Schema(_))
    }

    /// A write was asked of a store opened with [`crate::Store::open_read_only`].
    pub fn is_read_only(&self) -> bool {
        matches!(self.kind, Kind::ReadOnly(_))
    }

    /// The listen address could not be bound.
    pub fn is_bind(&self) -> bool {
        matches!(self.kind, Kind::Bind { .. })
    }

    /// The TLS certificate or key could not be loaded.
    pub fn is_tls(&self) -> bool {
        matches!(self.kind, Kind::Tls { .. })
    }

    /// The journal could not be opened, written or read.
    pub fn is_journal(&self) -> bool {
        matches!(self.kind, Kind::Journal { .. })
    }

    /// The configuration is inconsistent (for example, no secrets).
    pub fn is_config(&self) -> bool {
        matches!(self.kind, Kind::Config(_))
    }

    /// The store (a database server) could not be reached, migrated or read.
    pub fn is_store(&self) -> bool {
        matches!(self.kind, Kind::Store(_))
    }

    /// Another I/O failure (for example, installing a signal handler).
    pub fn is_io(&self) -> bool {
        matches!(self.kind, Kind::Io(_))
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Bind { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            Kind::Tls {
                path: Some(path),
                message,
            } => {
                write!(f, "TLS: {}: {message}", path.display())
            }
            Kind::Tls {
                path: None,
                message,
            } => write!(f, "TLS: {message}"),
            Kind::Journal { path, message } => {
                write!(f, "journal {}: {message}", path.display())
            }
            Kind::Config(message) => write!(f, "configuration: {message}"),
            Kind::Io(source) => write!(f, "{source}"),
            Kind::Store(message) => write!(f, "store: {message}"),
            Kind::NotFound(message) | Kind::Schema(message) | Kind::ReadOnly(message) => {
                f.write_str(message)
            }
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Error({self})")
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            Kind::Bind { source, .. } | Kind::Io(source) => Some(source),
            _ => None,
        }
    }
}
