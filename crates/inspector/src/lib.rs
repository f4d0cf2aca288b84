//! The dronehook web inspector: a small web application, served from the binary on a
//! listener of its own, that shows what a receiver got and refused, what each build
//! did, and redelivers or replays an event.
//!
//! - [`Inspector::builder`] takes the store to read (the receiver's), the access
//!   token, the address; [`InspectorBuilder::build`] checks that a token guards any
//!   address beyond loopback.
//! - [`Inspector::observer`] gives the closure for the receiver's
//!   `Router::observe`: it feeds the live list and the refusals page. It only puts
//!   the record on a bounded broadcast channel (O(1), never waits), so the
//!   receiver's request path does not slow down.
//! - [`Inspector::bind`] opens the store (read-write, or read-only when it cannot be
//!   written: actions are then off) and the listener; [`Bound::run_until`] serves.
//!
//! Pages are rendered on the server with maud (every value escaped at compile-checked
//! interpolation); the CSS and the few lines of JavaScript for live updates are
//! embedded; nothing is loaded from elsewhere. See docs/inspector.md.

mod auth;
mod data;
mod format;
mod live;
mod pages;
mod reason;
mod routes;

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use dronehook_protocol::Secret;
use dronehook_server::{Observation, StoreUrl};
use tokio::net::TcpListener;

pub use live::REFUSALS_KEPT;

/// The address the inspector listens on unless told otherwise.
pub const DEFAULT_ADDR: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 8081);

/// The inspector's one-line refusal to listen beyond loopback without a token.
pub const NEEDS_TOKEN: &str =
    "--ui on a non-loopback address needs --ui-token (or DRONEHOOK_UI_TOKEN)";

/// The fewest characters a token may have: a shorter one is guessable, and the
/// login form is the whole defence of an inspector beyond loopback.
pub const MIN_TOKEN_CHARS: usize = 16;

/// Why the inspector could not start. One line, never a secret.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A non-loopback address without a token.
    NeedsToken,
    /// An empty token (it would let anyone in).
    EmptyToken,
    /// A token shorter than [`MIN_TOKEN_CHARS`].
    ShortToken,
    /// The listener could not be bound.
    Bind(SocketAddr, std::io::Error),
    /// The store could not be opened.
    Store(String),
}

impl Error {
    /// Whether the error is the caller's settings (a command line's usage error).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Error::NeedsToken | Error::EmptyToken | Error::ShortToken
        )
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NeedsToken => f.write_str(NEEDS_TOKEN),
            Error::EmptyToken => f.write_str("--ui-token is empty"),
            Error::ShortToken => write!(
                f,
                "--ui-token is too short: give at least {MIN_TOKEN_CHARS} characters"
            ),
            Error::Bind(addr, e) => write!(f, "--ui: cannot listen on {addr}: {e}"),
            Error::Store(e) => write!(f, "--ui: {e}"),
        }
    }
}

impl std::error::Error for Error {}

/// The inspector's settings. See [`Inspector::builder`].
#[must_use]
pub struct InspectorBuilder {
    store: Option<StoreUrl>,
    token: Option<Secret>,
    addr: SocketAddr,
    replay_secret: Option<Secret>,
    drone_url: Option<String>,
    retention: Option<Duration>,
    read_only: bool,
}

impl fmt::Debug for InspectorBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InspectorBuilder")
            .field("store", &self.store.as_ref().map(ToString::to_string))
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .field("addr", &self.addr)
            .field(
                "replay_secret",
                &self.replay_secret.as_ref().map(|_| "<redacted>"),
            )
            .field("drone_url", &self.drone_url)
            .field("retention", &self.retention)
            .field("read_only", &self.read_only)
            .finish()
    }
}

impl InspectorBuilder {
    /// The access token: every page then needs the `dronehook_ui` cookie (from
    /// `POST /login`) or `Authorization: Bearer TOKEN`. Required beyond loopback; at
    /// least [`MIN_TOKEN_CHARS`] characters. The inspector speaks plain HTTP: beyond
    /// loopback, put a TLS-terminating proxy in front so the token is not sent in clear.
    pub fn token(mut self, token: Option<Secret>) -> Self {
        self.token = token;
        self
    }

    /// Where to listen (default [`DEFAULT_ADDR`]).
    pub fn addr(mut self, addr: SocketAddr) -> Self {
        self.addr = addr;
        self
    }

    /// The secret a replay to an endpoint is signed with: the receiver's first
    /// (current) secret, the one a sender is told to use. Without one, replay is off.
    pub fn replay_secret(mut self, secret: Option<Secret>) -> Self {
        self.replay_secret = secret;
        self
    }

    /// Drone's address, for the builds board's links (`DRONE_SERVER`'s value, e.g.
    /// `https://drone.example.com`). Without it, links use the payload's own URLs.
    pub fn drone_url(mut self, url: Option<String>) -> Self {
        self.drone_url = url.map(|u| u.trim_end_matches('/').to_owned());
        self
    }

    /// The receiver's retention, shown on the health page.
    pub fn retention(mut self, retention: Option<Duration>) -> Self {
        self.retention = retention;
        self
    }

    /// Opens the store read-only even when it could be written: the pages work, the
    /// actions (redeliver, redrive, replay) are off and answer 409.
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = read_only;
        self
    }

    /// Checks the settings: beyond loopback, a token is required; a token has at
    /// least [`MIN_TOKEN_CHARS`] characters.
    pub fn build(self) -> Result<Inspector, Error> {
        match &self.token {
            Some(t) if t.expose().is_empty() => return Err(Error::EmptyToken),
            // Characters, not bytes: a token is typed, and what is typed is counted.
            Some(t) if String::from_utf8_lossy(t.expose()).chars().count() < MIN_TOKEN_CHARS => {
                return Err(Error::ShortToken);
            }
            None if !self.addr.ip().is_loopback() => return Err(Error::NeedsToken),
            _ => {}
        }
        let auth = auth::Auth::new(self.token);
        Ok(Inspector {
            hub: live::Hub::new(),
            settings: Arc::new(Settings {
                store: self.store,
                addr: self.addr,
                auth,
                replay_secret: self.replay_secret,
                drone_url: self.drone_url,
                retention: self.retention,
                read_only: self.read_only,
            }),
        })
    }
}

/// What the routes share besides the store and the live hub.
pub(crate) struct Settings {
    pub(crate) store: Option<StoreUrl>,
    pub(crate) addr: SocketAddr,
    pub(crate) auth: auth::Auth,
    pub(crate) replay_secret: Option<Secret>,
    pub(crate) drone_url: Option<String>,
    pub(crate) retention: Option<Duration>,
    pub(crate) read_only: bool,
}

/// The inspector, before it listens.
pub struct Inspector {
    hub: live::Hub,
    settings: Arc<Settings>,
}

impl fmt::Debug for Inspector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Inspector")
            .field("addr", &self.settings.addr)
            .field("token", &self.settings.auth.has_token())
            .finish_non_exhaustive()
    }
}

impl Inspector {
    /// Settings for an inspector over `store` (the receiver's store; `None`: the live
    /// list and refusals only, from what the receiver observes).
    pub fn builder(store: Option<StoreUrl>) -> InspectorBuilder {
        InspectorBuilder {
            store,
            token: None,
            addr: DEFAULT_ADDR,
            replay_secret: None,
            drone_url: None,
            retention: None,
            read_only: false,
        }
    }

    /// The closure for `Router::observe`. Per request it clones the record onto a
    /// bounded broadcast channel and returns: O(1), no lock held across I/O, no
    /// waiting for readers (a reader that falls behind loses the oldest records).
    pub fn observer(&self) -> impl Fn(&Observation) + Send + Sync + 'static {
        self.hub.observer()
    }

    /// Opens the store and binds the listener.
    pub async fn bind(self) -> Result<Bound, Error> {
        let store = match &self.settings.store {
            Some(url) => Some(
                data::Data::open(url, self.settings.read_only)
                    .await
                    .map_err(Error::Store)?,
            ),
            None => None,
        };
        let addr = self.settings.addr;
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|e| Error::Bind(addr, e))?;
        let local = listener.local_addr().map_err(|e| Error::Bind(addr, e))?;
        Ok(Bound {
            listener,
            local,
            app: Arc::new(routes::App {
                settings: self.settings,
                hub: self.hub,
                data: store,
            }),
        })
    }
}

/// A bound inspector: serve it with [`Bound::run_until`].
pub struct Bound {
    listener: TcpListener,
    local: SocketAddr,
    app: Arc<routes::App>,
}

impl fmt::Debug for Bound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bound")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

impl Bound {
    /// The address it listens on (the port chosen when 0 was asked for).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Whether actions (redeliver, redrive, replay) are on: a writable store.
    pub fn actions(&self) -> bool {
        self.app.writable()
    }

    /// Serves until `shutdown` completes. Open pages' live streams are closed then.
    pub async fn run_until(self, shutdown: impl Future<Output = ()> + Send) {
        routes::serve(self.listener, self.app, shutdown).await;
    }
}
