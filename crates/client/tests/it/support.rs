//! A bare hyper receiver on 127.0.0.1 for the tests: it verifies every request with
//! the protocol crate's `Policy`, records it, and answers as the test's handler says.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use dronehook_protocol::{Envelope, Error as ProtocolError, Policy, RequestParts, Verified};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;

/// The secret every test uses.
pub(crate) const SECRET: &str = "correct-horse-battery-staple";

/// How long a test waits for something that should happen at once. Generous, because
/// the machine is small and shared; a passing test never waits this long.
pub(crate) const PATIENCE: Duration = Duration::from_secs(30);

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    /// When it arrived (after its body was read).
    pub(crate) at: Instant,
    /// The header names in the order they came on the wire.
    pub(crate) header_order: Vec<String>,
    /// The headers.
    pub(crate) headers: HeaderMap,
    /// The exact body.
    pub(crate) body: Bytes,
    /// What the protocol crate's verifier said.
    pub(crate) verified: Result<(Verified, Envelope), String>,
}

impl Received {
    pub(crate) fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }
}

/// What the handler wants sent back.
pub(crate) struct Reply {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(&'static str, String)>,
    pub(crate) body: String,
    /// When set, the answer waits until the gate opens.
    pub(crate) gate: Option<watch::Receiver<bool>>,
}

impl Reply {
    pub(crate) fn status(status: u16) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body: String::new(),
            gate: None,
        }
    }

    pub(crate) fn header(mut self, name: &'static str, value: impl Into<String>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    pub(crate) fn body(mut self, body: impl Into<String>) -> Reply {
        self.body = body.into();
        self
    }

    pub(crate) fn after(mut self, gate: watch::Receiver<bool>) -> Reply {
        self.gate = Some(gate);
        self
    }
}

/// Decides the answer to the `n`th request (0-based, counted across restarts).
pub(crate) type Handler = Arc<dyn Fn(usize, &Received) -> Reply + Send + Sync>;

/// A gate a handler can wait on; the test opens it.
pub(crate) fn gate() -> (watch::Sender<bool>, watch::Receiver<bool>) {
    watch::channel(false)
}

struct State {
    handler: Handler,
    policy: Policy,
    received: Mutex<Vec<Received>>,
    changed: Notify,
    connections: AtomicUsize,
}

/// A running receiver.
pub(crate) struct Receiver {
    pub(crate) addr: SocketAddr,
    state: Arc<State>,
    tasks: Option<JoinSet<()>>,
}

impl Receiver {
    /// Starts a receiver that answers 204 to everything.
    pub(crate) async fn ok() -> Receiver {
        Receiver::start(|_, _| Reply::status(204)).await
    }

    /// Starts a receiver on a fresh port.
    pub(crate) async fn start(
        handler: impl Fn(usize, &Received) -> Reply + Send + Sync + 'static,
    ) -> Receiver {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let state = Arc::new(State {
            handler: Arc::new(handler),
            policy: Policy::new(SECRET),
            received: Mutex::new(Vec::new()),
            changed: Notify::new(),
            connections: AtomicUsize::new(0),
        });
        let addr = listener.local_addr().expect("local addr");
        let mut receiver = Receiver {
            addr,
            state,
            tasks: None,
        };
        receiver.serve(listener);
        receiver
    }

    fn serve(&mut self, listener: TcpListener) {
        let state = self.state.clone();
        let mut tasks = JoinSet::new();
        let (conn_tx, mut conn_rx) = tokio::sync::mpsc::unbounded_channel();
        tasks.spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                if conn_tx.send(stream).is_err() {
                    break;
                }
            }
        });
        // Connections are served from a second set owned by this task, so that
        // aborting it closes every open connection at once (a restart).
        tasks.spawn(async move {
            let mut conns = JoinSet::new();
            while let Some(stream) = conn_rx.recv().await {
                state.connections.fetch_add(1, Ordering::SeqCst);
                let state = state.clone();
                conns.spawn(async move {
                    let service = service_fn(move |req| handle(state.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
                // Finished connections are reaped as new ones come.
                while conns.try_join_next().is_some() {}
            }
        });
        self.tasks = Some(tasks);
    }

    /// The URL of the root path.
    pub(crate) fn url(&self) -> String {
        format!("http://{}/", self.addr)
    }

    /// Stops listening and closes every connection.
    pub(crate) fn stop(&mut self) {
        if let Some(mut tasks) = self.tasks.take() {
            tasks.abort_all();
        }
    }

    /// Stops, then listens again on the same port (the same handler and records).
    pub(crate) async fn restart(&mut self) {
        self.stop();
        // The old listener's socket closes when its aborted task is dropped, which
        // may take a moment on a busy runtime: bind until the port is free again.
        let deadline = Instant::now() + PATIENCE;
        let listener = loop {
            match TcpListener::bind(self.addr).await {
                Ok(l) => break l,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    tokio::task::yield_now().await;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(e) => panic!("could not bind {} again: {e}", self.addr),
            }
        };
        self.serve(listener);
    }

    /// Everything received so far.
    pub(crate) fn received(&self) -> Vec<Received> {
        self.state.received.lock().unwrap().clone()
    }

    /// How many requests arrived so far.
    pub(crate) fn count(&self) -> usize {
        self.state.received.lock().unwrap().len()
    }

    /// How many TCP connections were accepted.
    pub(crate) fn connections(&self) -> usize {
        self.state.connections.load(Ordering::SeqCst)
    }

    /// Waits until at least `n` requests have arrived.
    pub(crate) async fn wait_for(&self, n: usize) {
        wait_until(&self.state.changed, || self.count() >= n).await;
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits for a condition that `notify` signals changes of, up to [`PATIENCE`].
pub(crate) async fn wait_until(notify: &Notify, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        let notified = notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        if cond() {
            return;
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            assert!(cond(), "condition not reached within {PATIENCE:?}");
            return;
        }
    }
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

fn handle(
    state: Arc<State>,
    req: Request<Incoming>,
) -> BoxFuture<Result<Response<Full<Bytes>>, Infallible>> {
    Box::pin(async move {
        let (parts, body) = req.into_parts();
        let body = body
            .collect()
            .await
            .map(http_body_util::Collected::to_bytes)
            .unwrap_or_default();
        let target = parts
            .uri
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        let request = RequestParts::new(parts.method.as_str(), &target, &parts.headers, &body);
        let verified = state
            .policy
            .verify_and_decode(&request, SystemTime::now())
            .map_err(|e: ProtocolError| e.to_string());
        let received = Received {
            at: Instant::now(),
            header_order: parts
                .headers
                .keys()
                .map(|k| k.as_str().to_owned())
                .collect(),
            headers: parts.headers.clone(),
            body,
            verified,
        };
        let n = {
            let mut all = state.received.lock().unwrap();
            all.push(received.clone());
            all.len() - 1
        };
        state.changed.notify_waiters();
        let reply = (state.handler)(n, &received);
        if let Some(mut gate) = reply.gate {
            let _ = gate.wait_for(|open| *open).await;
        }
        let mut response = Response::new(Full::new(Bytes::from(reply.body)));
        *response.status_mut() = StatusCode::from_u16(reply.status).unwrap();
        for (name, value) in reply.headers {
            response.headers_mut().insert(name, value.parse().unwrap());
        }
        Ok(response)
    })
}

/// A URL on which nothing listens: a port bound and released at once.
pub(crate) async fn refusing_url() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    format!("http://{addr}/")
}
