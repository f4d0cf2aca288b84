//! Replay protection: a copy of an accepted request is answered but not delivered, and
//! a full replay map never lets a request through unchecked.

use std::time::Duration;

use dronehook_server::protocol::Policy;
use dronehook_server::{Config, ConfigBuilder, DEFAULT_REPLAY_RATE, Router};
use http::StatusCode;

use crate::util::{Calls, SECRET, config, corpus, deliver, post, signed, start, user_event};

#[tokio::test]
async fn the_same_request_twice_is_delivered_once() {
    let calls = Calls::default();
    let server = start(config(), Router::new().route("", calls.handler()).unwrap()).await;
    let body = corpus("build_success");
    let headers = signed(body);
    for _ in 0..2 {
        let answer = post(server.local_addr(), "/", &headers, body).await;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (StatusCode::NO_CONTENT, "")
        );
    }
    assert_eq!(calls.len(), 1);
    assert!(
        server
            .metrics_text()
            .contains(r#"dronehook_requests_total{code="replay"} 1"#)
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn fifty_copies_at_once_are_delivered_once() {
    let calls = Calls::default();
    let slow = {
        let calls = calls.clone();
        move |d: dronehook_server::Delivery| {
            let calls = calls.clone();
            async move {
                // A slow handler keeps the first copy in flight while the others arrive.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                calls.0.lock().unwrap().push(d);
                Ok::<(), String>(())
            }
        }
    };
    let server = start(config(), Router::new().route("", slow).unwrap()).await;
    let addr = server.local_addr();
    let body = corpus("build_failure");
    let headers = signed(body);
    let mut tasks = Vec::new();
    for _ in 0..50 {
        let headers = headers.clone();
        tasks.push(tokio::spawn(async move {
            post(addr, "/", &headers, body).await.status
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::NO_CONTENT);
    }
    assert_eq!(calls.len(), 1);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn replay_protection_can_be_switched_off() {
    let calls = Calls::default();
    let server = start(
        config().replay_protection(false),
        Router::new().route("", calls.handler()).unwrap(),
    )
    .await;
    let body = corpus("build_success");
    let headers = signed(body);
    for _ in 0..3 {
        assert_eq!(
            post(server.local_addr(), "/", &headers, body).await.status,
            StatusCode::NO_CONTENT
        );
    }
    assert_eq!(calls.len(), 3);
    server.shutdown().await.unwrap();
}

/// A config whose replay window is `window` and whose map holds `capacity` entries.
fn bounded(window: Duration, capacity: usize) -> ConfigBuilder {
    crate::util::config_with(Policy::new(SECRET).max_skew(window)).replay_capacity(capacity)
}

#[tokio::test]
async fn a_full_replay_map_refuses_new_requests_until_its_entries_expire() {
    let calls = Calls::default();
    // Long enough that a request signed now (its Date has whole seconds) is in time
    // on a loaded machine, short enough to wait out.
    let window = Duration::from_secs(3);
    let server = start(
        bounded(window, 2),
        Router::new().route("", calls.handler()).unwrap(),
    )
    .await;
    let addr = server.local_addr();
    assert_eq!(server.config().replay_capacity(), 2);
    let first = user_event(1);
    let first_headers = signed(&first);
    assert_eq!(
        post(addr, "/", &first_headers, &first).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        deliver(addr, &user_event(2)).await.status,
        StatusCode::NO_CONTENT
    );

    // Full: a new body cannot be checked, so it is refused, never let through.
    let third = user_event(3);
    let refused = deliver(addr, &third).await;
    assert_eq!(
        (refused.status, refused.body.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "replay.full\n")
    );
    let retry_after: u64 = refused.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (1..=window.as_secs()).contains(&retry_after),
        "Retry-After: {retry_after}"
    );

    // A copy of a remembered request is still a replay: answered, not delivered.
    let again = post(addr, "/", &first_headers, &first).await;
    assert_eq!(
        (again.status, again.body.as_str()),
        (StatusCode::NO_CONTENT, "")
    );
    assert_eq!(calls.len(), 2);
    let metrics = server.metrics_text();
    assert!(
        metrics.contains(r#"dronehook_requests_total{code="replay.full"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"dronehook_requests_total{code="replay"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("dronehook_replay_full_total 1\n"),
        "{metrics}"
    );

    // Once the window has passed, the entries expire and new requests are accepted.
    tokio::time::sleep(window + Duration::from_millis(200)).await;
    assert_eq!(deliver(addr, &third).await.status, StatusCode::NO_CONTENT);
    assert_eq!(calls.len(), 3);
    assert_eq!(calls.all()[2].body.as_ref(), third.as_slice());
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn with_a_journal_a_full_replay_map_leaves_the_check_to_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let calls = Calls::default();
    let server = start(
        bounded(Duration::from_secs(300), 1).journal(dir.path().join("journal.db")),
        Router::new().route("", calls.handler()).unwrap(),
    )
    .await;
    let addr = server.local_addr();
    assert_eq!(
        deliver(addr, &user_event(1)).await.status,
        StatusCode::NO_CONTENT
    );
    // The map is full, but the journal's unique key on the digest checks the request.
    let second = user_event(2);
    let headers = signed(&second);
    assert_eq!(
        post(addr, "/", &headers, &second).await.status,
        StatusCode::NO_CONTENT
    );
    let again = post(addr, "/", &headers, &second).await;
    assert_eq!(
        (again.status, again.body.as_str()),
        (StatusCode::NO_CONTENT, "")
    );
    calls.wait_for(2).await;
    // Give a wrongly queued second run of the copy the time to show.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(calls.len(), 2);
    let metrics = server.metrics_text();
    assert!(
        metrics.contains(r#"dronehook_requests_total{code="replay"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains("dronehook_replay_full_total 2\n"),
        "{metrics}"
    );
    assert!(!metrics.contains(r#"code="replay.full""#), "{metrics}");
    server.shutdown().await.unwrap();
}

#[test]
fn the_default_replay_capacity_is_the_window_times_the_documented_rate() {
    let config = Config::builder(Policy::new(SECRET)).build();
    assert_eq!(config.replay_window(), Duration::from_secs(300));
    assert_eq!(config.replay_capacity(), 300 * DEFAULT_REPLAY_RATE as usize);
    let short = Config::builder(Policy::new(SECRET).max_skew(Duration::from_millis(1))).build();
    assert_eq!(short.replay_capacity(), 1);
    let set = Config::builder(Policy::new(SECRET))
        .replay_capacity(0)
        .build();
    assert_eq!(set.replay_capacity(), 1, "at least one entry");
}
