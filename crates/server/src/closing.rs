//! How a connection ends while its client may still be sending: the lingering close,
//! and the answer to a head hyper refused itself.
//!
//! An answer sent before the request's body is read (413 on the `Content-Length`, 404,
//! 405, 415, 501, a head hyper cannot parse, ...) ends the connection. Closing a
//! socket with unread input makes the kernel reset the connection: the client's write
//! then fails, and a reset that arrives before the client reads discards the answer
//! waiting in its receive buffer, so a client that writes its whole request before
//! reading (most do) sees a broken pipe instead of the 413. So such a connection ends
//! as mature servers end it (Go's `net/http` half-closes, drains and waits; Apache
//! calls it a lingering close): the answer is flushed, the write side is shut down
//! (the client reads the answer, then the end of the stream), and what the client
//! still sends is read and thrown away until it closes its side, up to
//! [`LINGER_BYTES`] and [`LINGER_TIME`]; then the socket is closed. A client that
//! sends `Expect: 100-continue` is answered before it sends the body (hyper sends
//! `100 Continue` only once the service reads the body, which a refused request's
//! service never does), so it need not send the body at all.
//!
//! A connection that ends at a request boundary (every byte read belongs to a request
//! answered) is closed at once, as before.

use std::sync::Arc;
use std::time::Duration;

use http::StatusCode;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::watch;

use crate::handler::{Observation, RequestRecord};
use crate::service::Shared;
use crate::sniff::Sniff;

/// The most bytes a lingering close reads and discards before closing: room for a
/// request body several times the default `max_body` (1 MiB) that a client writes
/// whole before it reads the answer. A client still sending after that is cut off
/// (the connection is reset).
pub const LINGER_BYTES: u64 = 4 * 1024 * 1024;

/// The longest a lingering close waits for the client to finish sending and close its
/// side; then the socket is closed whatever is still coming.
pub const LINGER_TIME: Duration = Duration::from_secs(2);

/// The lingering close: shut down the write side, read and discard up to
/// [`LINGER_BYTES`] for up to [`LINGER_TIME`] (or until the client closes, the stream
/// fails or the server stops), then close. Boxed by its callers, so that its buffer
/// and timer exist only while a connection lingers.
pub(crate) async fn linger<S>(mut stream: S, shutdown: &mut watch::Receiver<bool>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    if stream.shutdown().await.is_err() {
        return;
    }
    let drain = async {
        let mut buf = vec![0u8; 16 * 1024];
        let mut left = LINGER_BYTES;
        while left > 0 {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => left = left.saturating_sub(n as u64),
            }
        }
    };
    tokio::select! {
        _ = tokio::time::timeout(LINGER_TIME, drain) => {}
        () = crate::shutdown::stopped(shutdown) => {}
    }
}

/// Answers a head hyper refused (its own answer was held back, see
/// `Sniff::refusal`) with `status` and `code` in the body, counts and logs it as any
/// refused request, then closes lingering.
pub(crate) async fn refuse_head<S>(
    shared: &Arc<Shared>,
    mut sniff: Sniff<S>,
    (status, code): (StatusCode, &'static str),
    shutdown: &mut watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    // From the head's start when the reader knows it; otherwise the refusal is
    // counted without a duration sample rather than with a made-up zero.
    let latency = sniff.head_started().map(|started| started.elapsed());
    shared.metrics.request_maybe_timed(code, latency);
    tracing::info!(
        target: "dronehook_server::request",
        status = status.as_u16(),
        code,
        event = "",
        action = "",
        repo = "",
        build = None::<i64>,
        id = None::<i64>,
        latency_us = latency.map(|l| u64::try_from(l.as_micros()).unwrap_or(u64::MAX)),
        "request"
    );
    shared.router.emit(&Observation::Request(RequestRecord {
        status: status.as_u16(),
        code,
        event: None,
        action: None,
        repo: None,
        build: None,
        delivery_id: None,
        latency: latency.unwrap_or_default(),
        // A head hyper refused: nothing of it was parsed to report.
        peer: None,
        key_id: None,
        event_header: None,
        date_skew: None,
    }));
    let answer = crate::framing::answer(status, code);
    let stream = sniff.inner_mut();
    if stream.write_all(&answer).await.is_err() || stream.flush().await.is_err() {
        return;
    }
    linger(sniff.into_inner(), shutdown).await;
}
