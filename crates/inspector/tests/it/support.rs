//! A receiver with an inspector, and a small HTTP/1.1 client that shows exactly what
//! came back.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::Duration;

use dronehook_inspector::{Bound, Inspector};
use dronehook_protocol::{Policy, Secret};
use dronehook_server::{Config, Router, Server, ShutdownHandle, StoreUrl};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

pub(crate) const SECRET: &str = "inspector-test-secret";

/// A running receiver and its inspector.
pub(crate) struct Running {
    pub(crate) receiver: SocketAddr,
    pub(crate) ui: SocketAddr,
    pub(crate) actions: bool,
    shutdown: ShutdownHandle,
    stop_ui: Option<tokio::sync::oneshot::Sender<()>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shutdown.shutdown();
        if let Some(stop) = self.stop_ui.take() {
            let _ = stop.send(());
        }
    }
}

/// Starts a receiver (one secret, the store given) observed by an inspector built by
/// `ui` from a builder over the same store.
pub(crate) async fn start(
    store: Option<StoreUrl>,
    ui: impl FnOnce(dronehook_inspector::InspectorBuilder) -> dronehook_inspector::InspectorBuilder,
) -> Running {
    start_with(store, Router::new(), ui).await
}

/// [`start`] with the receiver's handlers in `router` (one attempt each, so a
/// failing handler's run is dead at once).
pub(crate) async fn start_with(
    store: Option<StoreUrl>,
    router: Router,
    ui: impl FnOnce(dronehook_inspector::InspectorBuilder) -> dronehook_inspector::InspectorBuilder,
) -> Running {
    let inspector = ui(Inspector::builder(store.clone())
        .addr(SocketAddr::from(([127, 0, 0, 1], 0)))
        .replay_secret(Some(Secret::from(SECRET))))
    .build()
    .expect("inspector settings");
    let router = router.observe(inspector.observer());
    let mut config = Config::builder(Policy::new(SECRET))
        .addr(SocketAddr::from(([127, 0, 0, 1], 0)))
        .max_attempts(1);
    if let Some(store) = store {
        config = config.store(store);
    }
    let server = Server::bind(config.build(), router)
        .await
        .expect("receiver binds");
    let receiver = server.local_addr();
    let shutdown = server.shutdown_handle();
    tokio::spawn(server.wait());
    let bound: Bound = inspector.bind().await.expect("inspector binds");
    let ui_addr = bound.local_addr();
    let actions = bound.actions();
    let (stop_ui, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(bound.run_until(async move {
        let _ = stopped.await;
    }));
    Running {
        receiver,
        ui: ui_addr,
        actions,
        shutdown,
        stop_ui: Some(stop_ui),
    }
}

/// An answer, as received.
#[derive(Debug)]
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: String,
}

impl Answer {
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One request on its own connection (`Connection: close`), read to the end.
pub(crate) async fn request(
    addr: SocketAddr,
    method: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Answer {
    let mut stream = TcpStream::connect(addr).await.expect("connects");
    let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (n, v) in headers {
        let _ = write!(head, "{n}: {v}\r\n");
    }
    if method == "POST" {
        let _ = write!(
            head,
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        );
    }
    head.push_str("\r\n");
    head.push_str(body);
    stream.write_all(head.as_bytes()).await.expect("writes");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut raw))
        .await
        .expect("answers within 10 s")
        .expect("reads");
    parse(&raw)
}

pub(crate) fn parse(raw: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(raw);
    let (head, body) = text.split_once("\r\n\r\n").expect("a whole head");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Answer {
        status,
        headers,
        body: body.to_owned(),
    }
}

pub(crate) async fn get(addr: SocketAddr, target: &str) -> Answer {
    request(addr, "GET", target, &[], "").await
}

/// Sends `body` to the receiver signed with `secret`, as dronehook-client does.
pub(crate) async fn send(receiver: SocketAddr, secret: &str, body: &[u8], event: &str) -> u16 {
    let client = dronehook_client::Client::builder()
        .secret(secret)
        .endpoint(format!("http://{receiver}/"))
        .attempts(1)
        .build()
        .expect("client");
    let report = client
        .send(dronehook_client::Payload::captured(body.to_vec(), event))
        .await;
    report.endpoints[0]
        .status
        .map(|s| s.as_u16())
        .expect("an answer")
}

/// A build event whose commit message and author are given.
pub(crate) fn build_event(repo: &str, number: i64, status: &str, message: &str) -> Vec<u8> {
    serde_json::json!({
        "event": "build",
        "action": "updated",
        "repo": {"id": 1, "slug": repo, "namespace": repo.split('/').next(), "name": repo.split('/').nth(1)},
        "build": {
            "id": number, "number": number, "status": status, "event": "push",
            "target": "main", "source": "main", "message": message,
            "author_login": "octocat", "author_name": "The Octocat",
            "started": 1_700_000_000, "finished": 1_700_000_095,
        },
        "system": {"proto": "https", "host": "drone.example.com", "link": "https://drone.example.com"},
    })
    .to_string()
    .into_bytes()
}

/// The CSRF value a page embeds.
pub(crate) fn csrf_of(page: &str) -> String {
    let at =
        page.find("name=\"csrf\" value=\"").expect("a csrf field") + "name=\"csrf\" value=\"".len();
    page[at..at + 64].to_owned()
}
