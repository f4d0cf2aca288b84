//! What the receiver observes reaches the pages: the live stream, the refusals ring
//! with its reasons, everything escaped.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use dronehook_protocol::{SignInput, Signer};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::support::{SECRET, build_event, get, send, start};

/// Reads an open event stream until `want` appears (10 s at most); returns all read.
async fn read_until(stream: &mut TcpStream, seen: &mut String, want: &str) {
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !seen.contains(want) {
        let n = tokio::time::timeout_at(deadline, stream.read(&mut buf))
            .await
            .unwrap_or_else(|_| panic!("{want:?} within 10 s; read so far: {seen}"))
            .expect("reads");
        assert!(n > 0, "the stream ended before {want:?}: {seen}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
}

async fn open_stream(ui: std::net::SocketAddr, target: &str) -> (TcpStream, String) {
    let mut s = TcpStream::connect(ui).await.expect("connects");
    s.write_all(format!("GET {target} HTTP/1.1\r\nHost: {ui}\r\n\r\n").as_bytes())
        .await
        .expect("writes");
    let mut seen = String::new();
    // The stream's first bytes come at once: the page knows it is open.
    read_until(&mut s, &mut seen, "retry: 2000").await;
    assert!(seen.starts_with("HTTP/1.1 200 OK\r\n"), "{seen}");
    assert!(
        seen.to_ascii_lowercase()
            .contains("content-type: text/event-stream"),
        "{seen}"
    );
    (s, seen)
}

/// Reads until the first `event: NAME` frame is whole; its `data`, as JSON.
async fn read_frame(stream: &mut TcpStream, seen: &mut String, name: &str) -> serde_json::Value {
    let marker = format!("event: {name}\ndata: ");
    read_until(stream, seen, &marker).await;
    let at = seen.find(&marker).expect("just read") + marker.len();
    // A frame ends with a blank line.
    let mut rest = seen[at..].to_owned();
    read_until(stream, &mut rest, "\n\n").await;
    seen.push_str(&rest[seen.len() - at..]);
    let data = rest.split('\n').next().unwrap_or_default();
    serde_json::from_str(data).unwrap_or_else(|e| panic!("JSON in {data:?}: {e}"))
}

#[tokio::test]
async fn a_new_event_reaches_an_open_stream() {
    let run = start(None, |b| b).await;
    let (mut stream, mut seen) = open_stream(run.ui, "/stream").await;
    let body = build_event("octocat/hello-world", 42, "success", "fix the thing");
    assert_eq!(send(run.receiver, SECRET, &body, "build").await, 204);
    let v = read_frame(&mut stream, &mut seen, "delivery").await;
    assert_eq!(v["event"], "build:updated");
    assert_eq!(v["repo"], "octocat/hello-world");
    assert_eq!(v["build"], 42);
    assert_eq!(v["code"], "ok");

    // And the list (no store: what this inspector saw) has it.
    let page = get(run.ui, "/").await;
    assert!(page.body.contains(r#"<tr class="event">"#), "{}", page.body);
    assert!(
        page.body
            .contains(r#"<td class="repo">octocat/hello-world</td>"#)
    );

    // A filter that does not match keeps it off that stream.
    let (mut filtered, mut fseen) = open_stream(run.ui, "/stream?event=repo:*").await;
    let (mut all, mut aseen) = open_stream(run.ui, "/stream").await;
    let body = build_event("octocat/other", 43, "failure", "again");
    assert_eq!(send(run.receiver, SECRET, &body, "build").await, 204);
    read_until(&mut all, &mut aseen, "octocat/other").await;
    // The filtered stream gets the next refusal but never saw the delivery.
    assert_eq!(
        send(run.receiver, "wrong-secret", &body, "build").await,
        401
    );
    read_until(&mut filtered, &mut fseen, "event: refusal").await;
    assert!(!fseen.contains("octocat/other"), "{fseen}");

    // A malformed filter: 400 with the reason.
    let bad = get(run.ui, "/stream?event=build:%5B").await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.starts_with("event filter: "), "{}", bad.body);
    let bad = get(run.ui, "/?state=sleeping").await;
    assert_eq!(bad.status, 400);
    assert!(
        bad.body
            .contains("state filter: &quot;sleeping&quot; is not one of pending, ok, dead"),
        "{}",
        bad.body
    );
}

#[tokio::test]
async fn refusals_say_why_and_show_no_body_or_secret() {
    let run = start(None, |b| b).await;
    let (mut stream, mut seen) = open_stream(run.ui, "/stream").await;
    let body = build_event("octocat/hello-world", 7, "success", "SECRET-BODY-MARKER");

    // A different secret.
    assert_eq!(
        send(run.receiver, "another-secret", &body, "build").await,
        401
    );
    read_until(&mut stream, &mut seen, "signed with a different secret").await;

    // A Date 11 minutes behind, signed correctly otherwise.
    let now = SystemTime::now() - Duration::from_secs(11 * 60);
    let signed = Signer::new(SECRET)
        .sign(&SignInput::new(&body, now))
        .expect("signs");
    let mut head = format!(
        "POST / HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
        run.receiver
    );
    for (n, v) in signed.headers("<script>alert(1)</script>") {
        let _ = write!(head, "{n}: {v}\r\n");
    }
    let _ = write!(head, "Content-Length: {}\r\n\r\n", body.len());
    let mut s = TcpStream::connect(run.receiver).await.expect("connects");
    s.write_all(head.as_bytes()).await.expect("writes");
    s.write_all(&body).await.expect("writes");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.expect("reads");
    assert!(
        raw.starts_with(b"HTTP/1.1 401"),
        "{}",
        String::from_utf8_lossy(&raw)
    );
    read_until(&mut stream, &mut seen, "Date 11 min behind this server").await;

    // The body changed after signing.
    let signed = Signer::new(SECRET)
        .sign(&SignInput::new(&body, SystemTime::now()))
        .expect("signs");
    let mut changed = body.clone();
    changed[10] ^= 1;
    let mut head = format!(
        "POST / HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
        run.receiver
    );
    for (n, v) in signed.headers("build") {
        let _ = write!(head, "{n}: {v}\r\n");
    }
    let _ = write!(head, "Content-Length: {}\r\n\r\n", changed.len());
    let mut s = TcpStream::connect(run.receiver).await.expect("connects");
    s.write_all(head.as_bytes()).await.expect("writes");
    s.write_all(&changed).await.expect("writes");
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.expect("reads");
    read_until(&mut stream, &mut seen, "body changed after signing").await;

    let page = get(run.ui, "/refusals").await;
    assert_eq!(page.status, 200);
    let rows = page.body.matches(r#"<tr class="refusal">"#).count();
    assert_eq!(rows, 3, "{}", page.body);
    assert!(
        page.body
            .contains(r#"<td class="reason">Date 11 min behind this server</td>"#)
    );
    assert!(
        page.body.contains(r#"<td class="skew">-11 min</td>"#),
        "{}",
        page.body
    );
    assert!(page.body.contains(r#"<td class="code">date.stale</td>"#));
    assert!(page.body.contains(r#"<td class="key-id">hmac-key</td>"#));
    assert_eq!(
        page.body.matches(r#"<td class="peer">127.0.0.1:"#).count(),
        3,
        "{}",
        page.body
    );
    assert_eq!(
        page.body.matches(r#"<td class="status">401</td>"#).count(),
        3,
        "{}",
        page.body
    );
    // The hostile X-Drone-Event is shown as text, not markup.
    assert!(
        page.body
            .contains(r#"<td class="event">&lt;script&gt;alert(1)&lt;/script&gt;</td>"#),
        "{}",
        page.body
    );
    assert!(!page.body.contains("<script>alert"), "{}", page.body);
    // Never a body, never a secret.
    for page in [&page.body, &seen] {
        assert!(!page.contains("SECRET-BODY-MARKER"));
        assert!(!page.contains(SECRET));
        assert!(!page.contains("another-secret"));
    }
}

#[tokio::test]
async fn the_receiver_never_waits_for_the_inspector_and_the_ring_keeps_500() {
    use dronehook_inspector::Inspector;
    use dronehook_protocol::Policy;
    use dronehook_server::{Config, Router, Server};

    // An inspector that is not listening yet: nothing reads what the observer sends.
    let inspector = Inspector::builder(None)
        .addr(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .build()
        .expect("settings");
    let router = Router::new().observe(inspector.observer());
    let config = Config::builder(Policy::new(SECRET))
        .addr(std::net::SocketAddr::from(([127, 0, 0, 1], 0)))
        .build();
    let server = Server::bind(config, router).await.expect("binds");
    let receiver = server.local_addr();
    let shutdown = server.shutdown_handle();
    tokio::spawn(server.wait());

    // 1500 refused requests on one kept-alive connection (more than the channel's
    // 1024): every one is answered at once.
    let mut s = TcpStream::connect(receiver).await.expect("connects");
    let request = format!("GET / HTTP/1.1\r\nHost: {receiver}\r\n\r\n");
    let started = std::time::Instant::now();
    let mut answered = 0;
    let mut buf = vec![0u8; 64 * 1024];
    let mut seen = Vec::new();
    for _ in 0..1500 {
        s.write_all(request.as_bytes()).await.expect("writes");
        loop {
            let text = String::from_utf8_lossy(&seen);
            if let Some(end) = text.find("method_not_allowed\n") {
                seen.drain(..end + "method_not_allowed\n".len());
                answered += 1;
                break;
            }
            let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
                .await
                .expect("answered within 10 s")
                .expect("reads");
            assert!(n > 0, "closed after {answered}");
            seen.extend_from_slice(&buf[..n]);
        }
    }
    assert_eq!(answered, 1500);
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "{:?}",
        started.elapsed()
    );

    // Listening now, it keeps the newest 500 of what the channel still held.
    let bound = inspector.bind().await.expect("binds");
    let ui = bound.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(bound.run_until(async move {
        let _ = stopped.await;
    }));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let page = get(ui, "/refusals").await;
        let rows = page.body.matches(r#"<tr class="refusal">"#).count();
        if rows == dronehook_inspector::REFUSALS_KEPT {
            assert!(page.body.contains(r#"<td class="reason">not a POST</td>"#));
            break;
        }
        assert!(
            rows < 500 && tokio::time::Instant::now() < deadline,
            "{rows} rows"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let _ = stop.send(());
    shutdown.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_that_ends_reaches_an_open_stream_with_the_events_runs() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = dronehook_server::StoreUrl::Sqlite(dir.path().join("store.db"));
    // The handler waits for the test, so the run is pending when the event arrives.
    let (go, gate) = tokio::sync::watch::channel(false);
    let router = dronehook_server::Router::new()
        .route_named(
            "deploy",
            "build:*",
            move |_d: dronehook_server::Delivery| {
                let mut gate = gate.clone();
                async move {
                    let _ = gate.wait_for(|open| *open).await;
                    Err::<(), _>(std::io::Error::other("the cluster said no"))
                }
            },
        )
        .expect("route");
    let run = crate::support::start_with(Some(url), router, |b| b).await;
    let (mut stream, mut seen) = open_stream(run.ui, "/stream").await;

    let body = build_event("octocat/hello-world", 7, "success", "ship it");
    assert_eq!(send(run.receiver, SECRET, &body, "build").await, 204);
    let delivery = read_frame(&mut stream, &mut seen, "delivery").await;
    assert_eq!(delivery["runs"], "deploy pending");
    assert!(!seen.contains("event: runs\n"), "{seen}");

    // The run ends (failed, no attempt left: dead): the stream says so, read from
    // the store after the outcome was recorded.
    go.send(true).expect("the handler waits");
    assert_eq!(
        read_frame(&mut stream, &mut seen, "runs").await,
        serde_json::json!({ "id": delivery["id"], "runs": "deploy dead" })
    );
    // And the event's page shows it.
    let page = get(run.ui, &format!("/events/{}", delivery["id"])).await;
    assert!(
        page.body
            .contains(r#"<td class="status state-dead">dead</td><td class="attempts">1</td>"#),
        "{}",
        page.body
    );
    assert!(
        page.body
            .contains(r#"<div class="error">the cluster said no</div>"#),
        "{}",
        page.body
    );
}
