//! [`Server`]: binding the listener, accepting connections under a cap, serving each
//! connection, and graceful shutdown.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::AsyncWriteExt as _;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::task::JoinHandle;

use crate::config::Config;
use crate::dispatch::Dispatcher;
use crate::error::{Error, Result};
use crate::handler::Router;
use crate::journal::Journal;
use crate::metrics::Metrics;
use crate::replay::ReplayCache;
use crate::service::Shared;
use crate::shutdown::{ShutdownHandle, shutdown_signal, stopped};
use crate::sniff::{InFlight, Parkable, Progress, Sniff, Timeouts};
use crate::store::{SharedStore, StoreUrl};

/// The receiver: bound, and serving in the background.
///
/// [`Server::bind`] starts it; [`Server::run_until_signal`] (or
/// [`Server::run_until`], [`Server::shutdown`]) stops it gracefully.
#[derive(Debug)]
pub struct Server {
    local_addr: SocketAddr,
    shutdown: ShutdownHandle,
    task: JoinHandle<Result<()>>,
    shared: Arc<Shared>,
}

impl Server {
    /// Binds the listener, opens the journal, resumes unfinished handler runs and
    /// starts serving in the background.
    ///
    /// A journal file that cannot be opened does not stop the start: the server then
    /// answers webhooks with 503 and `/healthz` with 503, and tries again with each
    /// request (so fixing the directory's permissions heals it).
    pub async fn bind(config: Config, router: Router) -> Result<Server> {
        if config.verify && config.secret_count() == 0 {
            return Err(Error::config("no secrets: every request would be refused"));
        }
        let tls = match config.tls() {
            Some(files) => Some(crate::tls::acceptor(files)?),
            None => None,
        };
        let listener = listen(config.addr).map_err(|e| Error::bind(config.addr, e))?;
        let local_addr = listener
            .local_addr()
            .map_err(|e| Error::bind(config.addr, e))?;

        let metrics = Metrics::new();
        let journal = match config.journal() {
            Some(path) => {
                let path = path.to_owned();
                let stats = metrics.batches.clone();
                let journal = tokio::task::spawn_blocking(move || Journal::start(&path, stats))
                    .await
                    .map_err(|e| Error::config(format!("journal start-up failed: {e}")))?;
                // A newer schema is not something a retry fixes: refuse to start.
                if let Some(e) = journal.schema_error() {
                    journal.close();
                    return Err(e);
                }
                Some(journal)
            }
            None => None,
        };
        let router = Arc::new(router);
        let shared_store = match config.store() {
            Some(StoreUrl::Postgres(url)) => {
                Some(SharedStore::open(url, &config, router.clone(), &metrics).await?)
            }
            _ => None,
        };
        // With a shared store the replay check is the database's: every receiver sees
        // every accepted key there, which a map in one process cannot offer.
        let replay = (config.replay_protection && shared_store.is_none())
            .then(|| ReplayCache::new(config.replay_window(), config.replay_capacity()));
        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let dispatcher = journal
            .as_ref()
            .map(|journal| Dispatcher::start(&config, router.clone(), journal.clone(), &metrics));
        let shared = Arc::new(Shared {
            config: config.clone(),
            router,
            journal: journal.clone(),
            replay,
            metrics,
            dispatcher: dispatcher.clone(),
            store: shared_store,
        });
        if let Some(dispatcher) = &dispatcher {
            dispatcher.resume().await;
        }

        if let Some(journal) = &journal
            && (config.retain.is_some() || config.max_rows.is_some())
        {
            tokio::spawn(prune_journal(
                journal.clone(),
                config.retain,
                config.max_rows,
                shutdown_rx.clone(),
            ));
        }
        let task = tokio::spawn(accept_loop(listener, tls, shared.clone(), shutdown_rx));
        if !config.verify {
            // Its own target, so that a program that warns in its own words (the CLI)
            // can leave this line out.
            tracing::warn!(
                target: "dronehook_server::insecure",
                addr = %local_addr,
                "VERIFICATION DISABLED (Config::insecure_no_verification): requests are not \
                 verified; anyone who can reach this port can send events"
            );
        }
        tracing::info!(
            addr = %local_addr,
            path = %config.path,
            secrets = config.secret_count(),
            verification = config.verify,
            store = ?config.store().map(ToString::to_string),
            tls = config.tls.is_some(),
            "dronehook receiver listening"
        );
        Ok(Server {
            local_addr,
            shutdown: ShutdownHandle { tx: shutdown_tx },
            task,
            shared,
        })
    }

    /// The address the listener is bound to (the real port when the config said 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The configuration the server runs with.
    pub fn config(&self) -> &Config {
        &self.shared.config
    }

    /// The journal, when there is one.
    pub fn journal(&self) -> Option<&Journal> {
        self.shared.journal.as_ref()
    }

    /// The current metrics in Prometheus text format (what `GET /metrics` answers).
    pub fn metrics_text(&self) -> String {
        self.shared.metrics.encode()
    }

    /// A handle that can start the shutdown from elsewhere.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.shutdown.clone()
    }

    /// Shuts down gracefully and waits until it is done.
    pub async fn shutdown(self) -> Result<()> {
        self.shutdown.shutdown();
        self.wait().await
    }

    /// Waits until the server has stopped (after a [`ShutdownHandle::shutdown`]).
    pub async fn wait(self) -> Result<()> {
        match self.task.await {
            Ok(result) => result,
            Err(e) => Err(Error::config(format!("the server task failed: {e}"))),
        }
    }

    /// Serves until `signal` completes, then shuts down gracefully.
    pub async fn run_until(self, signal: impl Future<Output = ()>) -> Result<()> {
        let handle = self.shutdown.clone();
        let mut task = self.task;
        tokio::select! {
            result = &mut task => {
                return result.unwrap_or_else(|e| Err(Error::config(format!("the server task failed: {e}"))));
            }
            () = signal => {}
        }
        tracing::info!("shutting down");
        handle.shutdown();
        task.await
            .unwrap_or_else(|e| Err(Error::config(format!("the server task failed: {e}"))))
    }

    /// Serves until SIGTERM or Ctrl-C (SIGINT), then shuts down gracefully.
    pub async fn run_until_signal(self) -> Result<()> {
        let signal = shutdown_signal()?;
        self.run_until(signal).await
    }
}

/// How often the journal is pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Prunes the journal by the retention settings until the server stops, off the
/// request path (a blocking task with the journal's reading connection).
async fn prune_journal(
    journal: Journal,
    retain: Option<Duration>,
    max_rows: Option<u64>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(PRUNE_EVERY) => {}
            () = stopped(&mut stop) => return,
        }
        let journal = journal.clone();
        match tokio::task::spawn_blocking(move || journal.prune(retain, max_rows)).await {
            Ok(Ok(0)) | Err(_) => {}
            Ok(Ok(n)) => tracing::info!(deliveries = n, "journal pruned"),
            Ok(Err(e)) => tracing::warn!(error = %e, "journal pruning failed"),
        }
    }
}

/// The listen backlog: how many connections the kernel completes and queues for
/// `accept` (capped by `net.core.somaxconn`). `TcpListener::bind` uses 128, the
/// standard library's value; a burst of a few hundred connections (an attacker's, or
/// legitimate clients waiting for a free slot under the connection cap) then overflows
/// the queue and the kernel drops handshakes, so clients stall for a SYN retransmit
/// (a second or more) and a client that sends nothing can be left half-open.
const LISTEN_BACKLOG: u32 = 4096;

/// Binds a listener with [`LISTEN_BACKLOG`], with `SO_REUSEADDR` as tokio's
/// `TcpListener::bind` sets it (a restart can bind while old connections linger).
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    #[cfg(unix)]
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

async fn accept_loop(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    shared: Arc<Shared>,
    mut shutdown: watch::Receiver<bool>,
) -> Result<()> {
    let max = shared.config.max_connections;
    let permits = Arc::new(Semaphore::new(max));
    let mut builder = http1::Builder::new();
    // hyper's header-read timer also runs while a kept-alive connection waits for its
    // next request, so it would close idle connections after the header timeout; the
    // connection's reader keeps the header and idle deadlines instead (sniff.rs).
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .max_headers(crate::framing::MAX_HEADERS)
        .max_buf_size(crate::framing::MAX_HEAD_BYTES)
        .keep_alive(true);
    let builder = Arc::new(builder);
    let timeouts = Timeouts {
        header: shared.config.header_timeout,
        idle: shared.config.idle_timeout,
        park: None,
    };

    loop {
        // The permit is taken before accepting, so clients over the cap wait in the
        // kernel's backlog instead of holding a task and a buffer here.
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(p) => p,
                Err(_) => break,
            },
            () = stopped(&mut shutdown) => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Running out of file descriptors and the like: wait a little
                    // rather than spin, then keep serving.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = stopped(&mut shutdown) => break,
        };
        let accepted = tokio::time::Instant::now();
        let _ = stream.set_nodelay(true);
        // Counted from here until the task ends, with the permit given back then.
        let open = Open::new(&shared, permit);
        let conn = Conn {
            builder: &builder,
            shared: &shared,
            timeouts,
            accepted,
        };
        match &tls {
            // Built here and boxed, so that the task of an idle plain connection holds
            // little more than hyper's connection (see `Conn::serve`).
            None => {
                let serve = conn.serve(stream, shutdown.clone());
                tokio::spawn(async move {
                    serve.await;
                    drop(open);
                });
            }
            // The handshake and the rustls state live in their own task.
            Some(acceptor) => {
                let acceptor = acceptor.clone();
                let builder = builder.clone();
                let shared = shared.clone();
                let shutdown = shutdown.clone();
                tokio::spawn(async move {
                    let handshake =
                        tokio::time::timeout(shared.config.header_timeout, acceptor.accept(stream))
                            .await;
                    match handshake {
                        Ok(Ok(stream)) => {
                            let conn = Conn {
                                builder: &builder,
                                shared: &shared,
                                timeouts,
                                accepted,
                            };
                            conn.serve(stream, shutdown).await;
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                    drop(open);
                });
            }
        }
    }
    drop(listener);

    // Wait for the open connections: each gives its permit back when it ends.
    let grace = shared.config.shutdown_grace;
    let all = u32::try_from(max).unwrap_or(u32::MAX);
    if tokio::time::timeout(grace, permits.acquire_many(all))
        .await
        .is_err()
    {
        tracing::warn!("connections still open after the grace period; closing them");
    }
    if let Some(dispatcher) = &shared.dispatcher {
        dispatcher.stop(grace).await;
    }
    if let Some(store) = &shared.store {
        store.stop(grace).await;
    }
    if let Some(journal) = &shared.journal {
        let flushed = journal.flush().await;
        let journal = journal.clone();
        let _ = tokio::task::spawn_blocking(move || journal.close()).await;
        flushed?;
    }
    tracing::info!("stopped");
    Ok(())
}

/// An open connection: counted in the `open_connections` gauge and holding its slot
/// under the connection cap until dropped.
struct Open {
    gauge: prometheus_client::metrics::gauge::Gauge,
    _permit: OwnedSemaphorePermit,
}

impl Open {
    fn new(shared: &Shared, permit: OwnedSemaphorePermit) -> Open {
        let gauge = shared.metrics.open_connections.clone();
        gauge.inc();
        Open {
            gauge,
            _permit: permit,
        }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// What serving one accepted connection needs.
#[derive(Clone, Copy)]
struct Conn<'a> {
    builder: &'a Arc<http1::Builder>,
    shared: &'a Arc<Shared>,
    timeouts: Timeouts,
    /// When the connection was accepted: its first head is due a header timeout later.
    accepted: tokio::time::Instant,
}

/// How long a plain connection idles before it is parked: its hyper connection,
/// with hyper's two 8 KiB buffers, is dropped, and the bare socket waits to become
/// readable, when a new hyper connection takes over (with the same service and
/// deadlines). Long enough that a busy keep-alive connection (a request every
/// millisecond or two) does not pay for the rebuild, which costs about a microsecond
/// (what accepting a connection costs), and that one that does pays it once per 50 ms
/// of idling; short enough that connections idle between webhooks, as Drone's are,
/// hold about 2.5 KB each instead of about 18 KB, and that a burst of connections
/// going idle does not first pile up their buffers (the heap keeps its high-water
/// mark).
const PARK_AFTER: Duration = Duration::from_millis(50);

impl Conn<'_> {
    /// Builds hyper's connection over `io` now and returns the future that drives it
    /// until it ends or the server shuts down, parking it whenever it idles (plain
    /// TCP only).
    ///
    /// The connection is boxed and built outside the returned future on purpose: an
    /// idle keep-alive connection's memory is its task, and an `async fn` that took
    /// `io` and built the connection inside would keep room for the moved-from `io`,
    /// service and unpinned connection next to the pinned one (about 1 KB each).
    fn serve<I>(
        self,
        io: I,
        mut shutdown: watch::Receiver<bool>,
    ) -> impl Future<Output = ()> + Send + 'static
    where
        I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Parkable + Unpin + Send + 'static,
    {
        let smuggled = Arc::new(AtomicBool::new(false));
        let progress = Arc::new(Progress::default());
        let timeouts = Timeouts {
            park: I::PARKS.then_some(PARK_AFTER),
            ..self.timeouts
        };
        let io = TokioIo::new(Sniff::new(
            io,
            smuggled.clone(),
            progress.clone(),
            timeouts,
            self.accepted,
        ));
        let shared = self.shared.clone();
        let service = hyper::service::service_fn(move |req| {
            progress.start();
            let in_flight = InFlight(progress.clone());
            let shared = shared.clone();
            let smuggled = smuggled.load(Ordering::Acquire);
            // Boxed: hyper keeps a slot of the service future's size for the whole
            // life of the connection, so an unboxed request state (kilobytes) would be
            // paid by every idle keep-alive connection; boxed, it exists only while a
            // request is in flight. The request's future is created inside this one
            // when it is first polled: one built here would take its room twice in the
            // box (captured, then awaited) and be copied from one to the other.
            Box::pin(async move {
                let _in_flight = in_flight;
                crate::service::respond(shared, req, smuggled).await
            })
        });
        let builder = self.builder.clone();
        let mut conn = Box::pin(builder.serve_connection(io, service));
        let grace = self.shared.config.shutdown_grace;
        let shared = self.shared.clone();
        async move {
            loop {
                let ended = tokio::select! {
                    result = std::future::poll_fn(|cx| conn.poll_without_shutdown(cx)) => Some(result),
                    () = stopped(&mut shutdown) => None,
                };
                let Some(result) = ended else {
                    // Finish the request in flight, then close instead of keeping
                    // alive. Boxed: only a stopping server pays for the timer.
                    conn.as_mut().graceful_shutdown();
                    let finished = Box::pin(tokio::time::timeout(
                        grace,
                        std::future::poll_fn(|cx| conn.poll_without_shutdown(cx)),
                    ))
                    .await;
                    if matches!(finished, Ok(Ok(()))) {
                        let mut io = Pin::into_inner(conn).into_parts().io;
                        let _ = io.inner_mut().shutdown().await;
                    }
                    return;
                };
                // hyper is done with the connection: it was parked, or it is closing.
                let parts = Pin::into_inner(conn).into_parts();
                let mut sniff = parts.io.into_inner();
                if let Some(refusal) = sniff.refusal() {
                    // A head hyper could not parse: its answer was held back, the
                    // connection gives the coded one (closing.rs).
                    drop(parts.read_buf);
                    Box::pin(crate::closing::refuse_head(
                        &shared,
                        sniff,
                        refusal,
                        &mut shutdown,
                    ))
                    .await;
                    return;
                }
                if let Err(e) = result {
                    // Another error (a late head, a broken stream) ends the connection
                    // without a shutdown, as hyper does.
                    tracing::debug!(error = %e, "connection ended with an error");
                    return;
                }
                // The read buffer goes now: even empty, it holds hyper's 8 KiB.
                let buffered = !parts.read_buf.is_empty();
                drop(parts.read_buf);
                let service = parts.service;
                if buffered || sniff.unsettled() {
                    // Input is left unread (an answer came before the body, or more
                    // follows a request that closed the connection): a plain close
                    // could reset the connection before the client reads the answer.
                    Box::pin(crate::closing::linger(sniff.into_inner(), &mut shutdown)).await;
                    return;
                }
                if !sniff.parked() {
                    let _ = sniff.shutdown().await;
                    return;
                }
                // Parked: wait for the next request (or the idle deadline) holding
                // only the stream and its reader.
                let readable = tokio::select! {
                    readable = std::future::poll_fn(|cx| sniff.poll_parked(cx)) => readable,
                    () = stopped(&mut shutdown) => false,
                };
                if !readable {
                    let _ = sniff.shutdown().await;
                    return;
                }
                sniff.unpark();
                conn = Box::pin(builder.serve_connection(TokioIo::new(sniff), service));
            }
        }
    }
}
