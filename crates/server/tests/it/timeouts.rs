//! Slow clients: the header timeout, the request deadline and the connection cap.

use std::time::Duration;

use dronehook_server::Router;
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::util::{PATIENCE, config, corpus, deliver, raw_body, start, status_line};

#[tokio::test]
async fn a_slowloris_connection_is_closed_while_others_are_served() {
    let server = start(
        config().header_timeout(Duration::from_millis(500)),
        Router::new(),
    )
    .await;
    let addr = server.local_addr();
    let mut slow = TcpStream::connect(addr).await.unwrap();
    slow.write_all(b"POST / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let dripping = tokio::spawn(async move {
        // One header byte now and then, never finishing the head; the server must
        // close the connection anyway.
        let started = tokio::time::Instant::now();
        let mut buf = [0u8; 1024];
        loop {
            if slow.write_all(b"X").await.is_err() {
                return (started.elapsed(), String::new());
            }
            match tokio::time::timeout(Duration::from_millis(100), slow.read(&mut buf)).await {
                Ok(Ok(0) | Err(_)) => return (started.elapsed(), String::new()),
                Ok(Ok(n)) => {
                    let mut text = String::from_utf8_lossy(&buf[..n]).into_owned();
                    let mut rest = Vec::new();
                    let _ = tokio::time::timeout(PATIENCE, slow.read_to_end(&mut rest)).await;
                    text.push_str(&String::from_utf8_lossy(&rest));
                    return (started.elapsed(), text);
                }
                Err(_) => assert!(
                    started.elapsed() < PATIENCE,
                    "slowloris connection never closed"
                ),
            }
        }
    });
    // Meanwhile another client is served.
    assert_eq!(
        deliver(addr, corpus("user_created")).await.status,
        StatusCode::NO_CONTENT
    );
    let (_, text) = dripping.await.unwrap();
    // hyper answers a header timeout with 408 and closes, or just closes.
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_body_that_never_ends_hits_the_request_deadline() {
    let server = start(
        config().request_timeout(Duration::from_millis(500)),
        Router::new(),
    )
    .await;
    let body = corpus("user_created");
    let head = crate::util::signed_head(body, &[]);
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&body[..10]).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(PATIENCE, stream.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out);
    assert_eq!(status_line(&text), "HTTP/1.1 408 Request Timeout");
    assert_eq!(raw_body(&text), "request.timeout\n");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn connections_over_the_cap_wait_for_a_free_slot() {
    let server = start(config().max_connections(1), Router::new()).await;
    let addr = server.local_addr();
    // The one slot is held by an idle connection...
    let idle = TcpStream::connect(addr).await.unwrap();
    crate::util::wait_until(|| {
        server
            .metrics_text()
            .contains("dronehook_open_connections 1")
    })
    .await;
    let waiting = tokio::spawn(async move { deliver(addr, corpus("repo_enabled")).await.status });
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        !waiting.is_finished(),
        "the second client waits while the slot is taken"
    );
    // ...and once it closes, the waiting client is served.
    drop(idle);
    assert_eq!(waiting.await.unwrap(), StatusCode::NO_CONTENT);
    server.shutdown().await.unwrap();
}
