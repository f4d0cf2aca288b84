//! Helpers: signed requests, a counting handler, a hyper client and a raw TCP client.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use dronehook_server::protocol::{SignInput, Signer};
use dronehook_server::{Config, ConfigBuilder, Delivery, Router, Server};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The shared secret every test signs with.
pub(crate) const SECRET: &str = "correct-horse-battery-staple";

/// A generous bound for anything a test waits for.
pub(crate) const PATIENCE: Duration = Duration::from_secs(30);

/// The Drone 2.4 captures, by name: the workspace's `fixtures/corpus/`, the one copy.
pub(crate) const CORPUS: &[(&str, &[u8])] = &[
    (
        "build_created",
        include_bytes!("../../../../fixtures/corpus/build_created.json"),
    ),
    (
        "build_failure",
        include_bytes!("../../../../fixtures/corpus/build_failure.json"),
    ),
    (
        "build_killed",
        include_bytes!("../../../../fixtures/corpus/build_killed.json"),
    ),
    (
        "build_success",
        include_bytes!("../../../../fixtures/corpus/build_success.json"),
    ),
    (
        "build_updated",
        include_bytes!("../../../../fixtures/corpus/build_updated.json"),
    ),
    (
        "repo_disabled",
        include_bytes!("../../../../fixtures/corpus/repo_disabled.json"),
    ),
    (
        "repo_enabled",
        include_bytes!("../../../../fixtures/corpus/repo_enabled.json"),
    ),
    (
        "user_created",
        include_bytes!("../../../../fixtures/corpus/user_created.json"),
    ),
    (
        "user_deleted",
        include_bytes!("../../../../fixtures/corpus/user_deleted.json"),
    ),
];

/// One corpus body.
pub(crate) fn corpus(name: &str) -> &'static [u8] {
    CORPUS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, b)| *b)
        .expect("corpus entry")
}

/// A config for tests: 127.0.0.1, a free port, the test secret.
pub(crate) fn config() -> ConfigBuilder {
    config_with(dronehook_server::protocol::Policy::new(SECRET))
}

/// [`config`] with a policy of the test's own (its skew, its secrets).
pub(crate) fn config_with(policy: dronehook_server::protocol::Policy) -> ConfigBuilder {
    Config::builder(policy)
        .addr("127.0.0.1:0".parse().unwrap())
        .shutdown_grace(Duration::from_secs(5))
}

/// Starts a server.
pub(crate) async fn start(config: ConfigBuilder, router: Router) -> Server {
    Server::bind(config.build(), router)
        .await
        .expect("server starts")
}

/// The deliveries a recording handler has seen.
#[derive(Clone, Default)]
pub(crate) struct Calls(pub(crate) Arc<Mutex<Vec<Delivery>>>);

impl Calls {
    pub(crate) fn len(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    pub(crate) fn all(&self) -> Vec<Delivery> {
        self.0.lock().unwrap().clone()
    }

    /// A handler that records each delivery and succeeds.
    pub(crate) fn handler(
        &self,
    ) -> impl Fn(Delivery) -> std::future::Ready<Result<(), String>> + Send + Sync + 'static {
        let calls = self.clone();
        move |d| {
            calls.0.lock().unwrap().push(d);
            std::future::ready(Ok(()))
        }
    }

    /// Waits until at least `n` calls were seen.
    pub(crate) async fn wait_for(&self, n: usize) {
        wait_until(|| self.len() >= n).await;
    }
}

/// Spawns a receiver process (the demo binary, directly or through a shell) and
/// returns it with the address from its `listening on ADDR` line.
pub(crate) async fn spawn_listening(
    mut command: tokio::process::Command,
) -> (tokio::process::Child, SocketAddr) {
    use tokio::io::AsyncBufReadExt as _;
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the demo receiver");
    let stdout = child.stdout.take().unwrap();
    let mut lines = tokio::io::BufReader::new(stdout).lines();
    let line = tokio::time::timeout(PATIENCE, lines.next_line())
        .await
        .expect("the demo starts in time")
        .unwrap()
        .expect("a line");
    let addr = line
        .strip_prefix("listening on ")
        .expect("the address line")
        .parse()
        .unwrap();
    (child, addr)
}

/// Polls a condition until it holds, failing the test after [`PATIENCE`].
pub(crate) async fn wait_until(mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !cond() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached in time"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Drone's headers for a body signed at `now`.
pub(crate) fn signed_at(body: &[u8], now: SystemTime) -> Vec<(String, String)> {
    let signed = Signer::new(SECRET)
        .sign(&SignInput::new(body, now))
        .unwrap();
    let event = dronehook_server::protocol::Envelope::decode(body)
        .map_or_else(|_| "build".to_owned(), |e| e.event.as_str().to_owned());
    signed
        .headers(&event)
        .iter()
        .map(|(n, v)| ((*n).to_owned(), (*v).to_owned()))
        .collect()
}

/// Drone's headers for a body signed now.
pub(crate) fn signed(body: &[u8]) -> Vec<(String, String)> {
    signed_at(body, SystemTime::now())
}

/// A response as the tests look at it.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) body: String,
}

/// POSTs over a fresh connection with hyper's client.
pub(crate) async fn post(
    addr: SocketAddr,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Answer {
    request(addr, "POST", path, headers, body.to_vec()).await
}

/// Sends one request over a fresh connection with hyper's client.
pub(crate) async fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: Vec<u8>,
) -> Answer {
    let stream = TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header("host", addr.to_string());
    for (n, v) in headers {
        builder = builder.header(n.as_str(), v.as_str());
    }
    let req = builder.body(Full::new(Bytes::from(body))).unwrap();
    let resp = tokio::time::timeout(PATIENCE, sender.send_request(req))
        .await
        .expect("answer in time")
        .expect("response");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    Answer {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

/// A signed POST of `body` to `/`.
pub(crate) async fn deliver(addr: SocketAddr, body: &[u8]) -> Answer {
    post(addr, "/", &signed(body), body).await
}

/// Writes exact bytes and reads until the server closes (or [`PATIENCE`] passes).
pub(crate) async fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(bytes).await.expect("write");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, stream.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// Builds a raw request: the given head lines, then the body.
pub(crate) fn raw_request(lines: &[&str], body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for line in lines {
        out.extend_from_slice(line.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

/// The status line of a raw response.
pub(crate) fn status_line(response: &str) -> &str {
    response.lines().next().unwrap_or("")
}

/// The body of a raw response.
pub(crate) fn raw_body(response: &str) -> &str {
    response.split_once("\r\n\r\n").map_or("", |(_, b)| b)
}

/// A distinct valid user event (the id and login vary), for tests that need many.
pub(crate) fn user_event(n: u64) -> Vec<u8> {
    format!(
        r#"{{"event":"user","action":"created","user":{{"id":{n},"login":"user{n}","email":"u{n}@example.com","machine":false,"admin":false,"active":true,"avatar":"","syncing":false,"synced":0,"created":1636759997,"updated":1636759997,"last_login":0}}}}"#
    )
    .into_bytes()
}

/// A raw request head for a signed POST of `body` to `/`, with `extra` header lines.
pub(crate) fn signed_head(body: &[u8], extra: &[&str]) -> String {
    use std::fmt::Write as _;
    let mut head = String::from("POST / HTTP/1.1\r\nHost: localhost\r\n");
    for line in extra {
        let _ = write!(head, "{line}\r\n");
    }
    for (n, v) in signed(body) {
        let _ = write!(head, "{n}: {v}\r\n");
    }
    let _ = write!(head, "Content-Length: {}\r\n\r\n", body.len());
    head
}

/// A raw keep-alive connection: requests written as bytes, answers read one by one.
pub(crate) struct KeepAlive {
    stream: TcpStream,
    /// Bytes read past the last answer.
    pending: Vec<u8>,
}

impl KeepAlive {
    pub(crate) async fn connect(addr: SocketAddr) -> KeepAlive {
        KeepAlive {
            stream: TcpStream::connect(addr).await.expect("connect"),
            pending: Vec::new(),
        }
    }

    /// The socket itself.
    pub(crate) fn stream(&mut self) -> &mut TcpStream {
        &mut self.stream
    }

    /// Writes bytes as they are (a whole request, or a piece of one).
    pub(crate) async fn write(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// A signed request for `body` as raw bytes.
    pub(crate) fn signed_request(body: &[u8]) -> Vec<u8> {
        let mut bytes = signed_head(body, &[]).into_bytes();
        bytes.extend_from_slice(body);
        bytes
    }

    /// Reads one answer (head and `Content-Length` body) within [`PATIENCE`]; panics
    /// if the connection closes first.
    pub(crate) async fn answer(&mut self) -> String {
        let read = async {
            loop {
                if let Some(end) = self.pending.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&self.pending[..end]).into_owned();
                    let length = head
                        .lines()
                        .find_map(|l| {
                            let (name, value) = l.split_once(':')?;
                            name.eq_ignore_ascii_case("content-length")
                                .then(|| value.trim().parse::<usize>().ok())?
                        })
                        .unwrap_or(0);
                    let total = end + 4 + length;
                    if self.pending.len() >= total {
                        let answer = String::from_utf8_lossy(&self.pending[..total]).into_owned();
                        self.pending.drain(..total);
                        return answer;
                    }
                }
                let mut buf = [0u8; 4096];
                let n = self.stream.read(&mut buf).await.expect("read");
                assert!(
                    n > 0,
                    "the server closed the connection before answering: {:?}",
                    String::from_utf8_lossy(&self.pending)
                );
                self.pending.extend_from_slice(&buf[..n]);
            }
        };
        tokio::time::timeout(PATIENCE, read)
            .await
            .expect("an answer in time")
    }

    /// Waits (up to [`PATIENCE`]) until the server closes the connection; returns what
    /// it sent before closing (bytes not yet read as an answer), or the read error.
    pub(crate) async fn closed(&mut self) -> std::io::Result<Vec<u8>> {
        let mut rest = std::mem::take(&mut self.pending);
        let read = async {
            let mut buf = [0u8; 4096];
            loop {
                let n = self.stream.read(&mut buf).await?;
                if n == 0 {
                    return Ok(rest);
                }
                rest.extend_from_slice(&buf[..n]);
            }
        };
        tokio::time::timeout(PATIENCE, read)
            .await
            .expect("the server closes the connection in time")
    }
}

/// Collects what a `tracing` subscriber writes, for tests that assert log lines.
#[derive(Clone, Default)]
pub(crate) struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    /// A plain-text subscriber writing here; set it with `tracing::subscriber::set_default`
    /// on the test's thread (where a current-thread runtime runs the server's tasks).
    pub(crate) fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync + use<> {
        let log = self.clone();
        tracing_subscriber::fmt()
            .with_writer(move || log.clone())
            .with_ansi(false)
            .finish()
    }

    /// What was written so far.
    pub(crate) fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
