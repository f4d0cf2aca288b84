//! What the inspector never shows or takes: credential headers, a replayed
//! endpoint's answer body, words of a crafted link, a redeliver to a handler the
//! event has no run of.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use dronehook_protocol::{SignInput, Signer};
use dronehook_server::{Delivery, EventQuery, Router, RunStatus, Store, StoreUrl};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{
    Running, SECRET, build_event, csrf_of, get, parse, request, send, start_with,
};

/// A receiver with one handler, `print`, that succeeds.
async fn started(url: &StoreUrl) -> Running {
    let router = Router::new()
        .route_named("print", "", |_d: Delivery| {
            std::future::ready(Ok::<(), String>(()))
        })
        .expect("route");
    start_with(Some(url.clone()), router, |b| b).await
}

/// The one stored event's id, once its runs are finished.
async fn settled(url: &StoreUrl) -> i64 {
    let store = Store::open_read_only(url).await.expect("store opens");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let list = store.list(&EventQuery::new()).await.expect("lists");
        if let [one] = list.as_slice()
            && one.runs.iter().all(|r| r.status != RunStatus::Pending)
        {
            return one.id;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not settled: {list:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The `<td>` of the header row named `name` on a detail page.
fn header_cell<'a>(html: &'a str, name: &str) -> &'a str {
    html.split(&format!("<th>{name}</th><td>"))
        .nth(1)
        .and_then(|r| r.split("</td>").next())
        .unwrap_or_else(|| panic!("no {name} row in {html}"))
}

#[tokio::test]
async fn credential_headers_are_never_shown_and_the_signature_value_neither() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = StoreUrl::Sqlite(dir.path().join("store.db"));
    let run = started(&url).await;

    // A signed delivery that went through a proxy adding credentials of its own.
    let body = build_event("octocat/creds", 1, "success", "m");
    let signed = Signer::new(SECRET)
        .sign(&SignInput::new(&body, SystemTime::now()))
        .expect("signs");
    let signature_value = signed
        .signature
        .split("signature=\"")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("a signature value")
        .to_owned();
    let extra = [
        ("Authorization", "Basic dXNlcjpwYXNzd29yZA=="),
        ("Proxy-Authorization", "Bearer proxy-secret-0123456789"),
        ("Cookie", "session=cookie-secret-0123456789"),
        ("X-Api-Key", "api-key-secret-0123456789"),
        ("X-Auth-Token", "auth-token-secret-0123456789"),
    ];
    let mut head = format!(
        "POST / HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nX-Drone-Event: build\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\nDate: {}\r\n\
         Digest: {}\r\nSignature: {}\r\n",
        run.receiver,
        body.len(),
        signed.date,
        signed.digest,
        signed.signature,
    );
    for (n, v) in extra {
        let _ = write!(head, "{n}: {v}\r\n");
    }
    head.push_str("\r\n");
    let mut stream = TcpStream::connect(run.receiver).await.expect("connects");
    stream.write_all(head.as_bytes()).await.expect("writes");
    stream.write_all(&body).await.expect("writes");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("reads");
    assert_eq!(parse(&raw).status, 204);
    let id = settled(&url).await;

    let page = get(run.ui, &format!("/events/{id}")).await;
    assert_eq!(page.status, 200);
    let html = &page.body;
    for (name, value) in extra {
        assert_eq!(
            header_cell(html, &name.to_ascii_lowercase()),
            "***",
            "{name}"
        );
        assert!(!html.contains(value), "{name}'s value shown: {html}");
    }
    assert!(!html.contains("dXNlcjpw"), "{html}");
    assert!(
        !html.contains(&signature_value),
        "the signature is shown: {html}"
    );
    assert_eq!(
        header_cell(html, "signature"),
        "keyId=&quot;hmac-key&quot;,algorithm=&quot;hmac-sha256&quot;,\
         signature=&quot;***&quot;,headers=&quot;date digest&quot;"
    );
    // The allow-listed headers, as received.
    assert_eq!(header_cell(html, "x-drone-event"), "build");
    assert_eq!(header_cell(html, "content-type"), "application/json");
    assert_eq!(header_cell(html, "date"), signed.date);
}

/// An endpoint that answers every request `status` with `body`, once per connection,
/// after reading the whole request.
async fn answering(status: &'static str, body: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("binds");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut seen = Vec::new();
                let mut buf = [0u8; 4096];
                loop {
                    let Ok(n) = conn.read(&mut buf).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    seen.extend_from_slice(&buf[..n]);
                    let text = String::from_utf8_lossy(&seen).to_ascii_lowercase();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text[..end]
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if seen.len() >= end + 4 + length {
                            break;
                        }
                    }
                }
                let answer = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = conn.write_all(answer.as_bytes()).await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_replay_shows_the_status_line_and_never_the_answer_body() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = StoreUrl::Sqlite(dir.path().join("store.db"));
    let run = started(&url).await;
    let body = build_event("octocat/replay", 2, "success", "m");
    assert_eq!(send(run.receiver, SECRET, &body, "build").await, 204);
    let id = settled(&url).await;
    let csrf = csrf_of(&get(run.ui, &format!("/events/{id}")).await.body);

    for (status, shown) in [
        ("500 Internal Server Error", "500 Internal Server Error"),
        ("403 Forbidden", "403 Forbidden"),
        ("200 OK", "200 OK"),
    ] {
        let secret_body = "internal-service-secret-answer";
        let endpoint = format!("http://{}/", answering(status, secret_body).await);
        let replay = request(
            run.ui,
            "POST",
            &format!("/events/{id}/replay"),
            &[],
            &format!(
                "csrf={csrf}&endpoint={}",
                endpoint.replace(':', "%3A").replace('/', "%2F")
            ),
        )
        .await;
        assert_eq!(replay.status, 200, "{}", replay.body);
        let result = replay
            .body
            .split(r#"<ul id="result">"#)
            .nth(1)
            .and_then(|r| r.split("</ul>").next())
            .expect("a result list");
        assert_eq!(result, format!("<li>{endpoint}: answered {shown}</li>"));
        assert!(!replay.body.contains(secret_body), "{}", replay.body);
    }
}

#[tokio::test]
async fn redeliver_takes_only_the_events_own_run_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = StoreUrl::Sqlite(dir.path().join("store.db"));
    let run = started(&url).await;
    let body = build_event("octocat/names", 3, "success", "m");
    assert_eq!(send(run.receiver, SECRET, &body, "build").await, 204);
    let id = settled(&url).await;
    let csrf = csrf_of(&get(run.ui, &format!("/events/{id}")).await.body);

    let refused = format!("event {id} has no run of that handler: give one of print\n");
    for handler in ["nosuch", "%3Cb%3Eprint%3C%2Fb%3E", "Print"] {
        let a = request(
            run.ui,
            "POST",
            &format!("/events/{id}/redeliver"),
            &[],
            &format!("csrf={csrf}&handler={handler}"),
        )
        .await;
        assert_eq!(
            (a.status, a.body.as_str()),
            (400, refused.as_str()),
            "{handler}"
        );
        let b = request(
            run.ui,
            "POST",
            "/failed/redrive",
            &[],
            &format!("csrf={csrf}&id={id}&handler={handler}"),
        )
        .await;
        assert_eq!(
            (b.status, b.body.as_str()),
            (400, refused.as_str()),
            "{handler}"
        );
    }
    // Nothing was queued: the run is still done, with its one attempt.
    let store = Store::open_read_only(&url).await.expect("store opens");
    let runs = store
        .list(&EventQuery::new())
        .await
        .expect("lists")
        .remove(0)
        .runs;
    assert_eq!(runs.len(), 1);
    assert_eq!((runs[0].status, runs[0].attempts), (RunStatus::Ok, 1));

    // The event's own run name is taken.
    let ok = request(
        run.ui,
        "POST",
        &format!("/events/{id}/redeliver"),
        &[],
        &format!("csrf={csrf}&handler=print"),
    )
    .await;
    assert_eq!(
        (ok.status, ok.header("location")),
        (303, Some(format!("/events/{id}?queued=print").as_str()))
    );
    let redrive = request(
        run.ui,
        "POST",
        "/failed/redrive",
        &[],
        &format!("csrf={csrf}&id=999999&handler=print"),
    )
    .await;
    assert_eq!(redrive.status, 404);
}

/// The notice paragraph of a page, if any.
fn notice(html: &str) -> Option<&str> {
    html.split(r#"<p class="notice" id="notice">"#)
        .nth(1)
        .and_then(|r| r.split("</p>").next())
}

#[tokio::test]
async fn a_crafted_link_puts_no_words_of_its_own_on_a_page() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = StoreUrl::Sqlite(dir.path().join("store.db"));
    let run = started(&url).await;
    let body = build_event("octocat/links", 4, "success", "m");
    assert_eq!(send(run.receiver, SECRET, &body, "build").await, 204);
    let id = settled(&url).await;

    let detail = async |query: &str| {
        let page = get(run.ui, &format!("/events/{id}?{query}")).await;
        assert_eq!(page.status, 200, "{query}");
        notice(&page.body).map(str::to_owned)
    };
    let queued_print = Some(
        "Queued again: print. The receiver picks the runs up within a second or so.".to_owned(),
    );
    assert_eq!(detail("queued=print").await, queued_print);
    assert_eq!(
        detail("queued=Your+session+expired%2C+call+555-0100&queued=print").await,
        queued_print
    );
    assert_eq!(detail("queued=Your+session+expired").await, None);
    assert_eq!(detail("queued=print%2C+and+more").await, None);
    assert_eq!(
        detail("queued=").await,
        Some("No handler run was queued.".to_owned())
    );
    assert_eq!(detail("other=1").await, None);

    let failed = async |query: &str| {
        let page = get(run.ui, &format!("/failed?{query}")).await;
        assert_eq!(page.status, 200, "{query}");
        notice(&page.body).map(str::to_owned)
    };
    assert_eq!(
        failed("redriven=3").await,
        Some("Queued again: 3 run(s).".to_owned())
    );
    for crafted in [
        "redriven=3+runs.+Call+555-0100",
        "redriven=%2B3",
        "redriven=-1",
        "redriven=",
        "redriven=%3Cb%3E",
    ] {
        assert_eq!(failed(crafted).await, None, "{crafted}");
    }
}
