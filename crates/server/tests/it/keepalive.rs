//! Keep-alive connections: the header timeout counts from a head's first byte, not
//! from the end of the previous answer, and an idle connection is closed (cleanly)
//! only after the idle timeout.
//!
//! Every wait here is a multiple of the timeout it is measured against, and only lower
//! bounds on elapsed time are asserted, so a loaded machine makes the tests slower,
//! never wrong.

use std::time::Duration;

use dronehook_server::{Delivery, Router, Server};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::Instant;

use crate::util::{Calls, KeepAlive, PATIENCE, config, start, status_line, user_event};

/// The header timeout of these tests: short, so that idling past it is quick.
const HEADER: Duration = Duration::from_millis(300);

/// A server with the short header timeout and an idle timeout longer than any test.
async fn start_patient(calls: &Calls) -> Server {
    start(
        config().header_timeout(HEADER).idle_timeout(PATIENCE),
        Router::new().route("", calls.handler()).unwrap(),
    )
    .await
}

fn no_content(answer: &str) {
    assert_eq!(status_line(answer), "HTTP/1.1 204 No Content", "{answer}");
}

#[tokio::test]
async fn a_connection_idle_past_the_header_timeout_serves_its_next_request() {
    let calls = Calls::default();
    let server = start_patient(&calls).await;
    let mut conn = KeepAlive::connect(server.local_addr()).await;
    conn.write(&KeepAlive::signed_request(&user_event(1))).await;
    no_content(&conn.answer().await);

    // Five header timeouts of silence: hyper's own header timer would have closed the
    // connection after one.
    tokio::time::sleep(HEADER * 5).await;
    conn.write(&KeepAlive::signed_request(&user_event(2))).await;
    no_content(&conn.answer().await);
    assert_eq!(calls.len(), 2);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_head_in_pieces_after_an_idle_spell_is_timed_from_its_first_byte() {
    let calls = Calls::default();
    let header = Duration::from_secs(2);
    let server = start(
        config().header_timeout(header).idle_timeout(PATIENCE),
        Router::new().route("", calls.handler()).unwrap(),
    )
    .await;
    let mut conn = KeepAlive::connect(server.local_addr()).await;
    conn.write(&KeepAlive::signed_request(&user_event(1))).await;
    no_content(&conn.answer().await);

    // Idle for longer than the header timeout, then a head in four pieces spread over
    // a small part of it: the idle spell must not count against the head.
    tokio::time::sleep(header + Duration::from_millis(500)).await;
    let request = KeepAlive::signed_request(&user_event(2));
    let piece = request.len() / 4 + 1;
    for chunk in request.chunks(piece) {
        conn.write(chunk).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    no_content(&conn.answer().await);
    assert_eq!(calls.len(), 2);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_first_head_in_pieces_within_the_header_timeout_is_served() {
    let server = start(
        config().header_timeout(Duration::from_secs(5)),
        Router::new(),
    )
    .await;
    let mut conn = KeepAlive::connect(server.local_addr()).await;
    let request = KeepAlive::signed_request(&user_event(1));
    // Byte by byte through the request line and the first header, then the rest.
    let (start, rest) = request.split_at(40);
    for byte in start.chunks(8) {
        conn.write(byte).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    conn.write(rest).await;
    no_content(&conn.answer().await);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn an_idle_connection_is_closed_cleanly_after_the_idle_timeout() {
    let idle = Duration::from_secs(1);
    let server = start(
        config().header_timeout(HEADER).idle_timeout(idle),
        Router::new(),
    )
    .await;
    let mut conn = KeepAlive::connect(server.local_addr()).await;
    conn.write(&KeepAlive::signed_request(&user_event(1))).await;
    no_content(&conn.answer().await);
    let answered = Instant::now();

    // A FIN with nothing before it (no 408, no reset), and not before the idle timeout.
    let sent = conn.closed().await.expect("a clean close, not a reset");
    assert_eq!(String::from_utf8_lossy(&sent), "");
    assert!(
        // The server's clock starts a moment before the answer reaches this client.
        answered.elapsed() + Duration::from_millis(100) >= idle,
        "closed after {:?}, before the idle timeout",
        answered.elapsed()
    );
    crate::util::wait_until(|| {
        server
            .metrics_text()
            .contains("dronehook_open_connections 0")
    })
    .await;
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_request_slower_than_the_idle_timeout_is_answered() {
    // The handler runs before the answer (no journal) and takes three idle timeouts:
    // a request with the service is not idle, whatever the clock says.
    let idle = Duration::from_millis(300);
    let router = Router::new()
        .route("", |_: Delivery| async {
            tokio::time::sleep(Duration::from_millis(900)).await;
            Ok::<(), String>(())
        })
        .unwrap();
    let server = start(config().header_timeout(HEADER).idle_timeout(idle), router).await;
    let mut conn = KeepAlive::connect(server.local_addr()).await;
    conn.write(&KeepAlive::signed_request(&user_event(1))).await;
    no_content(&conn.answer().await);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_slowloris_head_on_a_kept_alive_connection_is_cut_after_the_header_timeout() {
    // The idle timeout is far beyond the test's patience: only the header deadline
    // can close this connection.
    let server = start(
        config().header_timeout(HEADER).idle_timeout(PATIENCE * 10),
        Router::new(),
    )
    .await;
    let addr = server.local_addr();
    let mut conn = KeepAlive::connect(addr).await;
    conn.write(&KeepAlive::signed_request(&user_event(1))).await;
    no_content(&conn.answer().await);

    // Idle for a while (the head's clock must not start yet), then a head that drips.
    tokio::time::sleep(HEADER * 2).await;
    conn.write(b"POST / HTTP/1.1\r\nHost: x\r\n").await;
    let first_byte = Instant::now();
    let dripping = tokio::spawn(async move {
        // One more header byte every 100 ms, never finishing the head.
        let mut buf = [0u8; 1024];
        loop {
            if conn.stream().write_all(b"X").await.is_err() {
                return (first_byte.elapsed(), Vec::new());
            }
            match tokio::time::timeout(Duration::from_millis(100), conn.stream().read(&mut buf))
                .await
            {
                Ok(Ok(0) | Err(_)) => return (first_byte.elapsed(), Vec::new()),
                Ok(Ok(n)) => return (first_byte.elapsed(), buf[..n].to_vec()),
                Err(_) => assert!(first_byte.elapsed() < PATIENCE, "never closed"),
            }
        }
    });
    // Meanwhile another client is served.
    let mut other = KeepAlive::connect(addr).await;
    other
        .write(&KeepAlive::signed_request(&user_event(2)))
        .await;
    no_content(&other.answer().await);

    let (elapsed, sent) = dripping.await.unwrap();
    // Closed without an answer, and not before the head's time was up.
    assert_eq!(String::from_utf8_lossy(&sent), "");
    // This clock started before the first byte was sent, the server's after it arrived.
    assert!(elapsed >= HEADER, "{elapsed:?}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_connection_parked_again_and_again_keeps_serving() {
    // Idle for longer than the park delay (250 ms) before each request: each time the
    // connection is parked (hyper's connection dropped) and taken up again.
    let calls = Calls::default();
    let server = start_patient(&calls).await;
    let mut conn = KeepAlive::connect(server.local_addr()).await;
    for n in 0..3 {
        conn.write(&KeepAlive::signed_request(&user_event(n))).await;
        no_content(&conn.answer().await);
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    // Two requests in one write (pipelined) after the idle spell: both answered, in
    // order, on the same connection.
    let mut both = KeepAlive::signed_request(&user_event(10));
    both.extend_from_slice(&KeepAlive::signed_request(&user_event(11)));
    conn.write(&both).await;
    no_content(&conn.answer().await);
    no_content(&conn.answer().await);
    assert_eq!(calls.len(), 5);
    assert!(
        server
            .metrics_text()
            .contains("dronehook_open_connections 1")
    );
    server.shutdown().await.unwrap();
    // The shutdown closed the parked connection.
    let sent = conn.closed().await.expect("a clean close");
    assert_eq!(String::from_utf8_lossy(&sent), "");
}
