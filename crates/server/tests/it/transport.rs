//! The connection level: answers sent before the body is read reach clients that are
//! still sending (the lingering close, `Expect: 100-continue`), transfer codings, and
//! the heads hyper refuses itself, each with its status and code.

use std::fmt::Write as _;
use std::io::{ErrorKind, Read as _, Write as _};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use dronehook_server::{LINGER_BYTES, LINGER_TIME, MAX_HEAD_BYTES, MAX_HEADERS, Router};

use crate::util::{
    Calls, KeepAlive, PATIENCE, config, corpus, raw, raw_body, signed, signed_head, start,
    status_line,
};

/// A blocking client as most are written: connect, write the whole request, then read
/// the answer to the end. The error, if the write or the read failed.
///
/// Its send buffer is kept small (64 KiB, as on a busy host or over a real network),
/// so that a body larger than the buffers is still being written when the answer
/// comes; loopback's buffers otherwise grow to megabytes and hide the race.
fn write_all_then_read(addr: SocketAddr, request: &[u8]) -> Result<String, std::io::Error> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.set_send_buffer_size(64 * 1024)?;
    socket.connect(&addr.into())?;
    let mut stream = std::net::TcpStream::from(socket);
    stream.set_read_timeout(Some(PATIENCE))?;
    stream.set_write_timeout(Some(PATIENCE))?;
    stream.write_all(request)?;
    let mut out = Vec::new();
    stream.read_to_end(&mut out)?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

/// Asserts a raw answer exactly: its status line, `Connection: close`, the code body.
fn assert_refused(answer: &str, status_line_: &str, code: &str, case: &str) {
    assert_eq!(status_line(answer), status_line_, "{case}: {answer:?}");
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("\r\nconnection: close\r\n"),
        "{case}: {answer:?}"
    );
    assert!(
        answer.contains("\r\ncontent-type: text/plain; charset=utf-8\r\n"),
        "{case}: {answer:?}"
    );
    assert_eq!(raw_body(answer), format!("{code}\n"), "{case}: {answer:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_early_413_reaches_clients_that_write_their_whole_body_before_reading() {
    let server = start(config(), Router::new()).await;
    let addr = server.local_addr();
    // A signed 2 MiB body, twice the default limit: refused on its Content-Length.
    let body = vec![b' '; 2 * 1024 * 1024];
    let mut request = signed_head(&body, &["Content-Type: application/json"]).into_bytes();
    request.extend_from_slice(&body);

    let answers = tokio::task::spawn_blocking(move || {
        (0..100)
            .map(|_| write_all_then_read(addr, &request))
            .collect::<Vec<_>>()
    })
    .await
    .unwrap();
    let mut refused = 0;
    for (run, answer) in answers.iter().enumerate() {
        let answer = answer
            .as_ref()
            .unwrap_or_else(|e| panic!("run {run}: the client saw {e} instead of the 413"));
        assert_refused(
            answer,
            "HTTP/1.1 413 Payload Too Large",
            "body.too_large",
            "2 MiB",
        );
        refused += 1;
    }
    assert_eq!(refused, 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_before_the_body_reaches_a_client_still_sending() {
    let server = start(config(), Router::new()).await;
    let addr = server.local_addr();
    let body = vec![b' '; 900 * 1024];
    // Each refusal comes from the head alone; the body (under the limit, larger than
    // the sockets' buffers) is still on its way.
    let cases: [(&str, Vec<&str>, &str, &str); 5] = [
        (
            "404",
            vec!["POST /elsewhere HTTP/1.1"],
            "HTTP/1.1 404 Not Found",
            "not_found",
        ),
        (
            "405",
            vec!["PUT / HTTP/1.1"],
            "HTTP/1.1 405 Method Not Allowed",
            "method_not_allowed",
        ),
        (
            "415",
            vec!["POST / HTTP/1.1", "Content-Type: text/plain"],
            "HTTP/1.1 415 Unsupported Media Type",
            "content_type.unsupported",
        ),
        (
            "415 encoding",
            vec!["POST / HTTP/1.1", "Content-Encoding: gzip"],
            "HTTP/1.1 415 Unsupported Media Type",
            "encoding.unsupported",
        ),
        (
            "400 both framings",
            vec!["POST / HTTP/1.1", "Transfer-Encoding: chunked"],
            "HTTP/1.1 400 Bad Request",
            "transport.malformed",
        ),
    ];
    for (case, lines, status, code) in cases {
        let mut request = Vec::new();
        for line in &lines {
            request.extend_from_slice(line.as_bytes());
            request.extend_from_slice(b"\r\n");
        }
        for (n, v) in signed(&body) {
            request.extend_from_slice(format!("{n}: {v}\r\n").as_bytes());
        }
        request.extend_from_slice(
            format!("Host: x\r\nContent-Length: {}\r\n\r\n", body.len()).as_bytes(),
        );
        request.extend_from_slice(&body);
        for run in 0..10 {
            let request = request.clone();
            let answer = tokio::task::spawn_blocking(move || write_all_then_read(addr, &request))
                .await
                .unwrap()
                .unwrap_or_else(|e| panic!("{case}, run {run}: {e}"));
            assert_eq!(status_line(&answer), status, "{case}: {answer:?}");
            assert_eq!(raw_body(&answer), format!("{code}\n"), "{case}: {answer:?}");
        }
    }
}

/// Writes a head asking `Expect: 100-continue` and reads what comes back before the
/// body is sent: the whole answer up to the end of the stream.
async fn expect_continue(addr: SocketAddr, head: String) -> String {
    assert!(head.ends_with("\r\n\r\n"));
    let head = head.replacen("\r\n", "\r\nExpect: 100-continue\r\n", 1);
    raw(addr, head.as_bytes()).await
}

#[tokio::test]
async fn a_refused_expect_100_continue_gets_its_answer_and_no_continue() {
    let server = start(config(), Router::new()).await;
    let addr = server.local_addr();
    let body = vec![b' '; 2 * 1024 * 1024];
    let cases = [
        (
            signed_head(&body, &[]),
            "HTTP/1.1 413 Payload Too Large",
            "body.too_large",
        ),
        (
            signed_head(b"{}", &["Content-Type: text/plain"]),
            "HTTP/1.1 415 Unsupported Media Type",
            "content_type.unsupported",
        ),
        (
            signed_head(b"{}", &[]).replacen("POST / ", "POST /other ", 1),
            "HTTP/1.1 404 Not Found",
            "not_found",
        ),
        (
            signed_head(b"{}", &[]).replacen(
                "Content-Length: 2\r\n",
                "Transfer-Encoding: gzip, chunked\r\n",
                1,
            ),
            "HTTP/1.1 501 Not Implemented",
            "transfer_encoding.unsupported",
        ),
    ];
    for (head, status, code) in cases {
        // The body is never sent: the answer and the end of the stream come anyway.
        let started = Instant::now();
        let answer = expect_continue(addr, head).await;
        assert!(!answer.contains("100 Continue"), "{answer:?}");
        assert_eq!(status_line(&answer), status, "{answer:?}");
        assert_eq!(raw_body(&answer), format!("{code}\n"), "{answer:?}");
        // The server does not wait for a body that is not coming (nor out the linger:
        // its end of the stream came with the answer).
        assert!(started.elapsed() < PATIENCE, "{answer:?}");
    }
}

#[tokio::test]
async fn an_accepted_expect_100_continue_gets_continue_then_204() {
    let calls = Calls::default();
    let server = start(config(), Router::new().route("", calls.handler()).unwrap()).await;
    let body = corpus("build_success");
    let head = signed_head(body, &["Expect: 100-continue"]);
    let mut conn = KeepAlive::connect(server.local_addr()).await;
    conn.write(head.as_bytes()).await;
    // hyper sends the interim answer when the service reads the body.
    assert_eq!(conn.answer().await, "HTTP/1.1 100 Continue\r\n\r\n");
    conn.write(body).await;
    let answer = conn.answer().await;
    assert_eq!(
        status_line(&answer),
        "HTTP/1.1 204 No Content",
        "{answer:?}"
    );
    calls.wait_for(1).await;
    // The connection is kept alive: a second request on it is served.
    let body = corpus("build_failure");
    conn.write(&KeepAlive::signed_request(body)).await;
    assert_eq!(status_line(&conn.answer().await), "HTTP/1.1 204 No Content");
    calls.wait_for(2).await;
}

/// Sends an oversized head, then writes `chunk` every `pause` until a write fails;
/// returns the bytes written and how long until the failure.
fn send_forever(addr: SocketAddr, chunk: usize, pause: Duration) -> (u64, Duration) {
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream.set_write_timeout(Some(PATIENCE)).unwrap();
    stream
        .write_all(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000\r\n\r\n")
        .unwrap();
    let started = Instant::now();
    let piece = vec![b'x'; chunk];
    let mut written = 0u64;
    loop {
        assert!(
            started.elapsed() < PATIENCE,
            "still not cut off after {written} bytes"
        );
        match stream.write(&piece) {
            Ok(n) => written += n as u64,
            Err(e) => {
                assert_ne!(e.kind(), ErrorKind::WouldBlock, "the write timed out: {e}");
                return (written, started.elapsed());
            }
        }
        if !pause.is_zero() {
            std::thread::sleep(pause);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lingering_close_is_bounded_in_bytes() {
    let server = start(config(), Router::new()).await;
    let addr = server.local_addr();
    let (written, _) =
        tokio::task::spawn_blocking(move || send_forever(addr, 64 * 1024, Duration::ZERO))
            .await
            .unwrap();
    // What was written is what the server read and threw away, plus what the two
    // kernels' socket buffers held when it closed (a few MiB at most on loopback).
    let buffers = 16 * 1024 * 1024;
    assert!(
        written >= LINGER_BYTES && written <= LINGER_BYTES + buffers,
        "{written} bytes written before the connection was cut"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lingering_close_is_bounded_in_time() {
    let server = start(config(), Router::new()).await;
    let addr = server.local_addr();
    // 1 KiB every 10 ms: 100 KiB a second, far under the byte bound in the time bound.
    let (written, took) =
        tokio::task::spawn_blocking(move || send_forever(addr, 1024, Duration::from_millis(10)))
            .await
            .unwrap();
    assert!(written < LINGER_BYTES, "{written}");
    assert!(
        took + Duration::from_millis(100) >= LINGER_TIME
            && took < LINGER_TIME + Duration::from_secs(3),
        "cut off after {took:?}"
    );
}

/// A signed request's head lines (without `Content-Length`) and its chunked body.
fn chunked(body: &[u8], te: &[&str]) -> Vec<u8> {
    let mut out = String::from("POST / HTTP/1.1\r\nHost: x\r\n");
    for (n, v) in signed(body) {
        let _ = write!(out, "{n}: {v}\r\n");
    }
    for line in te {
        out.push_str(line);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(format!("{:x}\r\n", body.len()).as_bytes());
    bytes.extend_from_slice(body);
    bytes.extend_from_slice(b"\r\n0\r\n\r\n");
    bytes
}

#[tokio::test]
async fn transfer_encoding_is_accepted_only_as_one_chunked() {
    let calls = Calls::default();
    let server = start(config(), Router::new().route("", calls.handler()).unwrap()).await;
    let addr = server.local_addr();
    let body = corpus("build_success");
    let not_implemented = (
        "HTTP/1.1 501 Not Implemented",
        "transfer_encoding.unsupported",
    );
    let malformed = ("HTTP/1.1 400 Bad Request", "transport.malformed");
    let cases: &[(&[&str], (&str, &str))] = &[
        // hyper de-chunks these and would hand over the chunks' bytes.
        (&["Transfer-Encoding: gzip, chunked"], not_implemented),
        (
            &["Transfer-Encoding: gzip", "Transfer-Encoding: chunked"],
            not_implemented,
        ),
        (&["Transfer-Encoding: identity, chunked"], not_implemented),
        (&["Transfer-Encoding: chunked, chunked"], malformed),
        (
            &["Transfer-Encoding: chunked", "Transfer-Encoding: chunked"],
            malformed,
        ),
        (
            &["Transfer-Encoding: chunked", "Transfer-Encoding: CHUNKED"],
            malformed,
        ),
        // hyper refuses these itself (the last coding is not chunked).
        (&["Transfer-Encoding: gzip"], not_implemented),
        (&["Transfer-Encoding: chunked, gzip"], not_implemented),
        (
            &["Transfer-Encoding: chunked", "Transfer-Encoding: gzip"],
            not_implemented,
        ),
        (
            &["Transfer-Encoding: chunked, chunked, x-a-coding-name-past-forty-bytes"],
            not_implemented,
        ),
        (&["Transfer-Encoding: chunked,"], malformed),
        (&["Transfer-Encoding:"], malformed),
        // Both framings stay what they were.
        (&["Transfer-Encoding: gzip", "Content-Length: 5"], malformed),
        (
            &["Transfer-Encoding: gzip, chunked", "Content-Length: 5"],
            malformed,
        ),
    ];
    for (te, (status, code)) in cases {
        let answer = raw(addr, &chunked(body, te)).await;
        assert_refused(&answer, status, code, &format!("{te:?}"));
    }
    assert_eq!(calls.len(), 0);

    // Exactly one chunked, in any case and spacing, is served.
    for te in [
        "Transfer-Encoding: chunked",
        "transfer-encoding:  Chunked\t",
    ] {
        let body = crate::util::user_event(calls.len() as u64);
        let mut conn = KeepAlive::connect(addr).await;
        conn.write(&chunked(&body, &[te])).await;
        let answer = conn.answer().await;
        assert_eq!(
            status_line(&answer),
            "HTTP/1.1 204 No Content",
            "{te}: {answer:?}"
        );
    }
    calls.wait_for(2).await;

    // HTTP/1.0 has no chunked coding.
    let request = String::from_utf8(chunked(body, &["Transfer-Encoding: chunked"]))
        .unwrap()
        .replacen("HTTP/1.1", "HTTP/1.0", 1);
    let answer = raw(addr, request.as_bytes()).await;
    assert_refused(&answer, malformed.0, malformed.1, "HTTP/1.0 chunked");
}

/// `{name}{i}: v` header lines for each `i`.
fn lines(range: impl Iterator<Item = usize>, name: &str) -> String {
    range.fold(String::new(), |mut out, i| {
        let _ = write!(out, "{name}{i}: v\r\n");
        out
    })
}

#[tokio::test]
async fn heads_hyper_refuses_get_their_code() {
    let server = start(config(), Router::new()).await;
    let addr = server.local_addr();
    let body = corpus("build_success");
    let head = signed_head(body, &[]);
    let with_body = |head: String| {
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(body);
        bytes
    };
    let malformed = ("HTTP/1.1 400 Bad Request", "transport.malformed");
    let too_large = (
        "HTTP/1.1 431 Request Header Fields Too Large",
        "headers.too_large",
    );

    let many_headers = lines(0..10_000, "X-Header-");
    // The signed head's own header lines, and enough more for one over the limit.
    let own = head.lines().count() - 2;
    let just_over = lines(0..=MAX_HEADERS - own, "X-");
    let cases: Vec<(&str, Vec<u8>, (&str, &str))> = vec![
        ("request line", b"GARBAGE\r\n\r\n".to_vec(), malformed),
        (
            "version",
            with_body(head.replacen("HTTP/1.1", "HTTP/1.7", 1)),
            malformed,
        ),
        (
            "header name",
            with_body(head.replacen("\r\n", "\r\nBad Header: x\r\n", 1)),
            malformed,
        ),
        (
            "obs-fold",
            with_body(head.replacen("\r\n", "\r\nX-Fold: a\r\n folded\r\n", 1)),
            malformed,
        ),
        (
            "Content-Length: +N",
            with_body(head.replace(
                &format!("Content-Length: {}", body.len()),
                &format!("Content-Length: +{}", body.len()),
            )),
            malformed,
        ),
        (
            "two Content-Lengths",
            with_body(head.replacen("\r\n", "\r\nContent-Length: 3\r\n", 1)),
            malformed,
        ),
        (
            "10,000 headers",
            with_body(head.replacen("\r\n", &format!("\r\n{many_headers}"), 1)),
            too_large,
        ),
        (
            "one over the header count",
            with_body(head.replacen("\r\n", &format!("\r\n{just_over}"), 1)),
            too_large,
        ),
        (
            "head over the size limit",
            with_body(head.replacen(
                "\r\n",
                &format!("\r\nX-Big: {}\r\n", "a".repeat(2 * MAX_HEAD_BYTES)),
                1,
            )),
            too_large,
        ),
        (
            "target over 64 KiB",
            with_body(head.replacen("POST / ", &format!("POST /{} ", "a".repeat(70_000)), 1)),
            ("HTTP/1.1 414 URI Too Long", "uri.too_long"),
        ),
    ];
    for (case, request, (status, code)) in cases {
        let answer = tokio::task::spawn_blocking(move || write_all_then_read(addr, &request))
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        assert_refused(&answer, status, code, case);
    }

    // Exactly the limit is served as usual.
    let under = lines(0..MAX_HEADERS - own, "X-");
    let mut conn = KeepAlive::connect(addr).await;
    conn.write(&with_body(head.replacen(
        "\r\n",
        &format!("\r\n{under}"),
        1,
    )))
    .await;
    let answer = conn.answer().await;
    assert_eq!(
        status_line(&answer),
        "HTTP/1.1 204 No Content",
        "{answer:?}"
    );

    // hyper's refusals are counted by code as every other.
    let metrics = server.metrics_text();
    for code in ["transport.malformed", "headers.too_large", "uri.too_long"] {
        assert!(
            metrics.contains(&format!("code=\"{code}\"")),
            "{code}: {metrics}"
        );
    }
}

#[tokio::test]
async fn the_rest_of_the_transport_is_refused_as_before() {
    let server = start(config(), Router::new()).await;
    let addr = server.local_addr();
    let body = corpus("build_success");
    // A chunk size past 64 bits.
    let mut request = chunked(body, &["Transfer-Encoding: chunked"]);
    let at = request.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    request.splice(at..at, b"fffffffffffffffffffff\r\n".iter().copied());
    let answer = raw(addr, &request).await;
    assert_refused(
        &answer,
        "HTTP/1.1 400 Bad Request",
        "transport.malformed",
        "chunk size",
    );

    // HTTP/2's preface on this HTTP/1.1 listener: closed without an answer.
    let answer = raw(addr, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
    assert_eq!(answer, "");
}
