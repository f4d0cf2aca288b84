//! The pages that read the store (a real SQLite store the receiver writes), and the
//! actions that write it.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use dronehook_server::{Delivery, EventQuery, Router, RunStatus, Store, StoreUrl};

use crate::support::{SECRET, build_event, csrf_of, get, request, send, start, start_with};

/// A receiver with two handlers: `print` succeeds (and counts its calls), `deploy`
/// fails with "exit 3" for repositories named `*/broken`.
fn router(calls: Arc<AtomicUsize>) -> Router {
    Router::new()
        .route_named("print", "", move |_d: Delivery| {
            calls.fetch_add(1, Ordering::SeqCst);
            std::future::ready(Ok::<(), String>(()))
        })
        .expect("route")
        .route_named("deploy", "build:*", |d: Delivery| {
            let broken = d
                .envelope
                .repo
                .as_ref()
                .is_some_and(|r| r.slug.ends_with("/broken"));
            std::future::ready(if broken {
                Err("exit 3".to_owned())
            } else {
                Ok(())
            })
        })
        .expect("route")
}

/// Waits until every run of every stored event is finished (ok or dead).
async fn settled(url: &StoreUrl, events: usize) -> Vec<i64> {
    let store = Store::open_read_only(url).await.expect("store opens");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let list = store.list(&EventQuery::new()).await.expect("lists");
        let done = list.len() == events
            && list
                .iter()
                .all(|e| e.runs.iter().all(|r| r.status != RunStatus::Pending));
        if done {
            return list.iter().map(|e| e.id).collect();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not settled: {list:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn the_detail_shows_the_event_escaped_and_redeliver_runs_it_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = StoreUrl::Sqlite(dir.path().join("store.db"));
    let calls = Arc::new(AtomicUsize::new(0));
    let run = start_with(Some(url.clone()), router(calls.clone()), |b| b).await;
    assert!(run.actions);
    let hostile = r#"<script>alert("pwned")</script> & <b>bold</b>"#;
    let body = build_event("octocat/hello-world", 42, "success", hostile);
    assert_eq!(send(run.receiver, SECRET, &body, "build").await, 204);
    let ids = settled(&url, 1).await;
    let id = ids[0];
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    let page = get(run.ui, &format!("/events/{id}")).await;
    assert_eq!(page.status, 200);
    let html = &page.body;
    // The commit message is text: escaped, never markup.
    assert!(!html.contains("<script>alert"), "{html}");
    assert!(!html.contains("<b>bold"), "{html}");
    assert!(
        html.contains(
            r#"&lt;script&gt;alert(&quot;pwned&quot;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;"#
        ),
        "{html}"
    );
    assert!(html.contains(r#"<p id="verification">Verified: signature, Digest and Date checked with the receiver's secret #1"#), "{html}");
    assert!(html.contains(r#"<table id="headers">"#));
    // The signature's parameters are shown, its value never.
    assert!(
        html.contains("<th>signature</th><td>keyId=&quot;hmac-key&quot;,algorithm=&quot;hmac-sha256&quot;,signature=&quot;***&quot;,headers=&quot;date digest&quot;</td>"),
        "{html}"
    );
    assert!(
        html.contains(r#"<div id="payload"><details open>"#),
        "{html}"
    );
    assert!(html.contains(&format!(r#"<a id="raw" href="/events/{id}/raw">"#)));
    assert!(
        html.contains(r#"<tr class="run" data-handler="print" data-id=""#),
        "{html}"
    );
    assert!(
        html.contains(r#"<td class="status state-ok">ok</td>"#),
        "{html}"
    );
    assert!(html.contains(&format!(
        r#"<form id="redeliver" method="post" action="/events/{id}/redeliver">"#
    )));
    assert!(html.contains(&format!(
        r#"<form id="replay" method="post" action="/events/{id}/replay">"#
    )));

    // The raw bytes, exactly.
    let raw = get(run.ui, &format!("/events/{id}/raw")).await;
    assert_eq!(raw.status, 200);
    assert_eq!(raw.header("content-type"), Some("application/octet-stream"));
    assert_eq!(raw.body.as_bytes(), &body[..]);

    // Redeliver: every run queued again, and the handler runs a second time.
    let csrf = csrf_of(html);
    let done = request(
        run.ui,
        "POST",
        &format!("/events/{id}/redeliver"),
        &[],
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(
        done.header("location"),
        Some(format!("/events/{id}?queued=deploy&queued=print").as_str())
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while calls.load(Ordering::SeqCst) < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the handler did not run again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = get(run.ui, &format!("/events/{id}?queued=deploy&queued=print")).await;
    assert!(
        after.body.contains("Queued again: deploy, print."),
        "{}",
        after.body
    );

    // Replay to an endpoint (the receiver itself): signed with its first secret, so it
    // verifies; the same body is a duplicate there, answered 204.
    let endpoint = format!("http://{}/", run.receiver);
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
    assert!(
        replay
            .body
            .contains(&format!("<li>{endpoint}: answered 204 No Content</li>")),
        "{}",
        replay.body
    );
    let bad = request(
        run.ui,
        "POST",
        &format!("/events/{id}/replay"),
        &[],
        &format!("csrf={csrf}&endpoint="),
    )
    .await;
    assert_eq!(
        (bad.status, bad.body.as_str()),
        (400, "endpoint: give the URL to send the event to\n")
    );

    // An unknown id: 404 for the page, the bytes and the action.
    assert_eq!(get(run.ui, "/events/999999").await.status, 404);
    assert_eq!(get(run.ui, "/events/999999/raw").await.status, 404);
    let gone = request(
        run.ui,
        "POST",
        "/events/999999/redeliver",
        &[],
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(gone.status, 404);
}

#[tokio::test]
async fn a_read_only_store_has_no_action_forms_and_actions_answer_409() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = StoreUrl::Sqlite(dir.path().join("store.db"));
    let calls = Arc::new(AtomicUsize::new(0));
    let writer = start_with(Some(url.clone()), router(calls), |b| b).await;
    let body = build_event("octocat/broken", 5, "failure", "boom");
    assert_eq!(send(writer.receiver, SECRET, &body, "build").await, 204);
    let id = settled(&url, 1).await[0];

    let run = start(Some(url.clone()), |b| b.read_only(true)).await;
    assert!(!run.actions);
    let detail = get(run.ui, &format!("/events/{id}")).await;
    assert_eq!(detail.status, 200);
    assert!(
        detail.body.contains("(read-only: actions off)"),
        "{}",
        detail.body
    );
    assert!(!detail.body.contains("<form"), "{}", detail.body);
    assert!(!detail.body.contains("name=\"csrf\""), "{}", detail.body);
    let failed = get(run.ui, "/failed").await;
    assert!(failed.body.contains(r#"<table id="failed">"#));
    assert!(
        failed
            .body
            .contains(r#"<tr class="run" data-handler="deploy""#),
        "{}",
        failed.body
    );
    assert!(!failed.body.contains("method=\"post\""), "{}", failed.body);

    // Every action answers 409, before (and whatever) its CSRF field: nothing can
    // change here, so there is nothing to forge.
    for path in [
        format!("/events/{id}/redeliver"),
        format!("/events/{id}/replay"),
        "/failed/redrive".to_owned(),
    ] {
        for body in ["", "csrf=whatever"] {
            let a = request(run.ui, "POST", &path, &[], body).await;
            assert_eq!(
                (a.status, a.body.as_str()),
                (409, "the store is read-only: actions are off\n"),
                "{path} {body:?}"
            );
        }
    }
}

#[tokio::test]
async fn the_board_the_failed_runs_their_redrive_and_health() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = StoreUrl::Sqlite(dir.path().join("store.db"));
    let calls = Arc::new(AtomicUsize::new(0));
    let run = start_with(Some(url.clone()), router(calls), |b| {
        b.retention(Some(Duration::from_secs(7 * 86_400)))
    })
    .await;
    for (repo, number, status) in [
        ("octocat/hello-world", 41, "failure"),
        ("octocat/hello-world", 42, "success"),
        ("octocat/broken", 7, "failure"),
    ] {
        let body = build_event(repo, number, status, "msg");
        assert_eq!(send(run.receiver, SECRET, &body, "build").await, 204);
    }
    // A payload naming a script as Drone's address gets no link.
    let evil = String::from_utf8(build_event("octocat/evil", 1, "success", "msg"))
        .expect("UTF-8")
        .replace("https://drone.example.com", "javascript:alert(1)//");
    assert_eq!(
        send(run.receiver, SECRET, evil.as_bytes(), "build").await,
        204
    );
    settled(&url, 4).await;

    // One row per repository, its latest build, coloured by status, linked to Drone.
    let board = get(run.ui, "/builds").await;
    assert_eq!(board.status, 200);
    let b = &board.body;
    assert_eq!(b.matches(r#"<tr class="build""#).count(), 3, "{b}");
    assert!(!b.contains("javascript:"), "{b}");
    assert!(b.contains(r#"<td class="link"></td></tr>"#), "{b}");
    assert!(
        b.contains(r#"<tr class="build" data-repo="octocat/hello-world">"#),
        "{b}"
    );
    assert!(b.contains(r#"<td class="number">42</td><td class="status status-success">success</td><td class="branch">main</td><td class="author">octocat</td><td class="duration">95 s</td><td class="link"><a href="https://drone.example.com/octocat/hello-world/42" rel="noreferrer">open</a></td>"#), "{b}");
    assert!(
        b.contains(r#"<td class="status status-failure">failure</td>"#),
        "{b}"
    );

    // The failed page: the dead run, and a redrive of all that match.
    let failed = get(run.ui, "/failed").await;
    let f = &failed.body;
    assert_eq!(f.matches(r#"<tr class="run""#).count(), 1, "{f}");
    assert!(
        f.contains(r#"<tr class="run" data-handler="deploy""#),
        "{f}"
    );
    assert!(
        f.contains(r#"<td class="status state-dead">dead</td>"#),
        "{f}"
    );
    assert!(f.contains(r#"<td class="output">exit 3</td>"#), "{f}");
    for query in ["repo=octocat/hello-*", "state=ok", "state=pending"] {
        let none = get(run.ui, &format!("/failed?{query}")).await;
        assert_eq!(none.status, 200, "{query}");
        assert_eq!(
            none.body.matches(r#"<tr class="run""#).count(),
            0,
            "{query}: {}",
            none.body
        );
    }
    let csrf = csrf_of(f);
    let all = request(
        run.ui,
        "POST",
        "/failed/redrive",
        &[],
        &format!("csrf={csrf}&event=&repo=octocat%2F*&state="),
    )
    .await;
    assert_eq!(
        (all.status, all.header("location")),
        (303, Some("/failed?redriven=1"))
    );
    // The run is queued, fails again (one attempt) and is dead again, 2 attempts on.
    let store = Store::open_read_only(&url).await.expect("opens");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let list = store
            .list(&EventQuery::new().run_status(RunStatus::Dead))
            .await
            .expect("lists");
        let attempts: Vec<u32> = list
            .iter()
            .flat_map(|e| e.runs.iter())
            .filter(|r| r.handler == "deploy" && r.status == RunStatus::Dead)
            .map(|r| r.attempts)
            .collect();
        if attempts == [2] {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not redriven: {list:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let after = get(run.ui, "/failed?redriven=1").await;
    assert!(
        after.body.contains("Queued again: 1 run(s)."),
        "{}",
        after.body
    );

    // Health: counts over the windows, the failure rate, retention.
    let health = get(run.ui, "/health").await;
    let h = &health.body;
    assert!(h.contains(r#"<div id="health">"#), "{h}");
    assert!(h.contains(r#"<tr><th>Last hour</th><td class="events">4</td><td class="ok">7</td><td class="pending">0</td><td class="dead">1</td><td class="rate">12.5 %</td></tr>"#), "{h}");
    assert!(h.contains(r#"<dd id="retention">7 d</dd>"#), "{h}");
    assert!(h.contains(r#"<dd id="oldest-pending">none</dd>"#), "{h}");

    // The list reads the store, with its filters.
    let list = get(run.ui, "/?repo=octocat%2Fbroken").await;
    assert_eq!(
        list.body.matches(r#"<tr class="event""#).count(),
        1,
        "{}",
        list.body
    );
    assert!(
        list.body
            .contains(r#"<td class="runs">deploy dead, print ok</td>"#),
        "{}",
        list.body
    );
    let list = get(run.ui, "/?status=success&event=build:*").await;
    assert_eq!(
        list.body.matches(r#"<tr class="event""#).count(),
        2,
        "{}",
        list.body
    );
}

#[tokio::test]
async fn a_live_row_is_completed_from_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = StoreUrl::Sqlite(dir.path().join("store.db"));
    let calls = Arc::new(AtomicUsize::new(0));
    let run = start_with(Some(url.clone()), router(calls), |b| b).await;
    let mut s = tokio::net::TcpStream::connect(run.ui)
        .await
        .expect("connects");
    s.write_all(
        format!(
            "GET /stream?status=failure HTTP/1.1\r\nHost: {}\r\n\r\n",
            run.ui
        )
        .as_bytes(),
    )
    .await
    .expect("writes");
    let mut seen = String::new();
    let mut buf = [0u8; 4096];
    // The first bytes say the stream is open; only then is the event sent.
    while !seen.contains("retry: 2000") {
        let n = s.read(&mut buf).await.expect("reads");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    for (repo, status) in [("octocat/a", "success"), ("octocat/b", "failure")] {
        let body = build_event(repo, 1, status, "msg");
        assert_eq!(send(run.receiver, SECRET, &body, "build").await, 204);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !seen.contains("octocat/b") {
        let n = tokio::time::timeout_at(deadline, s.read(&mut buf))
            .await
            .expect("the failure within 10 s")
            .expect("reads");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(seen.contains(r#""status":"failure""#), "{seen}");
    assert!(!seen.contains("octocat/a"), "{seen}");
}

#[tokio::test]
async fn a_postgresql_store_reads_and_redelivers_the_same() {
    let db = dronehook_testkit::database().await;
    // A password in the URL (trust authentication ignores it) must never be shown.
    let text = match db.url().split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((user, host)) if !user.contains(':') && !user.contains('/') => {
                format!("{scheme}://{user}:hunter2@{host}")
            }
            _ => db.url().to_owned(),
        },
        None => db.url().to_owned(),
    };
    assert!(
        text.contains(":hunter2@"),
        "the test database's URL has a user: {text}"
    );
    let url: StoreUrl = text.parse().expect("a PostgreSQL URL");
    let calls = Arc::new(AtomicUsize::new(0));
    let run = start_with(Some(url.clone()), router(calls.clone()), |b| b).await;
    assert!(run.actions);
    let body = build_event("octocat/hello-world", 9, "success", "<script>x</script>");
    assert_eq!(send(run.receiver, SECRET, &body, "build").await, 204);
    let id = settled(&url, 1).await[0];
    assert_eq!(calls.load(Ordering::SeqCst), 1);

    let list = get(run.ui, "/").await;
    assert!(
        list.body
            .contains(&format!(r#"<tr class="event" data-id="{id}""#)),
        "{}",
        list.body
    );
    let page = get(run.ui, &format!("/events/{id}")).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("&lt;script&gt;x&lt;/script&gt;"),
        "{}",
        page.body
    );
    assert!(!page.body.contains("<script>x"), "{}", page.body);
    let board = get(run.ui, "/builds").await;
    assert!(
        board
            .body
            .contains(r#"<tr class="build" data-repo="octocat/hello-world">"#),
        "{}",
        board.body
    );
    let health = get(run.ui, "/health").await;
    assert!(
        health.body.contains(r#"<td class="events">1</td>"#),
        "{}",
        health.body
    );

    let csrf = csrf_of(&page.body);
    let done = request(
        run.ui,
        "POST",
        &format!("/events/{id}/redeliver"),
        &[],
        &format!("csrf={csrf}"),
    )
    .await;
    assert_eq!(done.status, 303, "{}", done.body);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while calls.load(Ordering::SeqCst) < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the handler did not run again"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The store's name is shown without a password.
    assert!(page.body.contains("store postgres"), "{}", page.body);
    if text.contains(":hunter2@") {
        assert!(!page.body.contains("hunter2"), "{}", page.body);
    }
}

#[tokio::test]
async fn an_erased_event_offers_no_action_and_replay_needs_a_secret() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = StoreUrl::Sqlite(dir.path().join("store.db"));
    let calls = Arc::new(AtomicUsize::new(0));
    // No replay secret (a receiver with verification off): no replay form.
    let run = start_with(Some(url.clone()), router(calls), |b| b.replay_secret(None)).await;
    for n in [1, 2] {
        let body = build_event("octocat/hello-world", n, "success", "SENSITIVE-MESSAGE");
        assert_eq!(send(run.receiver, SECRET, &body, "build").await, 204);
    }
    let ids = settled(&url, 2).await;
    let (erased, kept) = (ids[0], ids[1]);

    let page = get(run.ui, &format!("/events/{kept}")).await;
    assert!(
        page.body.contains(r#"<form id="redeliver""#),
        "{}",
        page.body
    );
    assert!(!page.body.contains(r#"<form id="replay""#), "{}", page.body);
    let csrf = csrf_of(&page.body);
    let replay = request(
        run.ui,
        "POST",
        &format!("/events/{kept}/replay"),
        &[],
        &format!("csrf={csrf}&endpoint=http%3A%2F%2F127.0.0.1%3A9%2F"),
    )
    .await;
    assert_eq!(
        (replay.status, replay.body.as_str()),
        (
            409,
            "no secret to sign a replay with: the receiver runs without verification\n"
        )
    );

    let store = Store::open(&url).await.expect("opens");
    assert!(store.erase(erased).await.expect("erases"));
    let page = get(run.ui, &format!("/events/{erased}")).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("This event was erased"), "{}", page.body);
    assert!(!page.body.contains("SENSITIVE-MESSAGE"), "{}", page.body);
    assert!(!page.body.contains("<form"), "{}", page.body);
    for action in ["redeliver", "replay"] {
        let a = request(
            run.ui,
            "POST",
            &format!("/events/{erased}/{action}"),
            &[],
            &format!("csrf={csrf}&endpoint=http%3A%2F%2F127.0.0.1%3A9%2F"),
        )
        .await;
        assert_eq!(
            (a.status, a.body),
            (
                409,
                format!("event {erased} was erased: there is nothing to send again\n")
            ),
            "{action}"
        );
    }
}
