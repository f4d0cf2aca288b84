//! Replay protection: a copy of an accepted request is answered but not delivered.

use dronehook_server::Router;
use http::StatusCode;

use crate::util::{Calls, config, corpus, post, signed, start};

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
