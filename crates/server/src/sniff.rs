//! The connection's reader: a byte-level watch on request heads for
//! `Transfer-Encoding` together with `Content-Length` and for the codings
//! `Transfer-Encoding` names, hyper's own answers held back, and the header-read and
//! idle deadlines.
//!
//! hyper 1.x accepts a request with both headers (chunked wins, as RFC 9112 allows),
//! drops the `Content-Length` header and closes the connection after answering, so the
//! service cannot see that both were sent. Two framings for one body are how requests
//! are smuggled past proxies, so the receiver refuses them with 400: this reader notes,
//! per connection, that a head carried both, and the service checks the note.
//!
//! The codings are read for heads hyper refuses itself (a `Transfer-Encoding` whose
//! last coding is not `chunked`): hyper answers those with an empty 400 before the
//! service sees them. Every answer hyper makes by itself (400, 414, 431, to a head it
//! cannot parse) is held back here and replaced by one with the refusal's code
//! (`framing.rs`, `closing.rs`): see [`Sniff::refusal`].
//!
//! The deadlines live here because hyper 1.x has only one timer for both: its
//! `header_read_timeout` starts when it begins waiting for a head, so on a keep-alive
//! connection it also measures the idle time before the next request, and an idle
//! connection is closed after the header timeout (10 s) — while Drone's Go client keeps
//! idle connections for 90 s and does not retry a `POST` written into a connection the
//! server is closing. So hyper's timer is off and this reader keeps two deadlines:
//!
//! - **idle**: from the end of a request (the answer flushed) to the first byte of
//!   the next head, [`Config::idle_timeout`](crate::Config::idle_timeout). When it
//!   passes, the reader reports the end of the stream: hyper, idle with nothing
//!   buffered, closes the connection cleanly (a FIN, no answer). hyper does not read
//!   again after an answer until the stream wakes it, so the idle timer is armed
//!   when the answer is flushed.
//! - **park** (plain TCP only): after a short idle spell at a clean request boundary
//!   the reader also reports the end of the stream, but marks the connection
//!   [`parked`](Sniff::parked): `server.rs` then takes the stream back from hyper,
//!   drops hyper's connection and buffers, and waits for the stream to become
//!   readable ([`Sniff::poll_parked`]) before giving it to a new hyper connection.
//! - **head**: from the first byte of a head (or from the connection's start, for its
//!   first request) until the service is called with the parsed head (on a kept-alive
//!   connection the clock is read when the reader first waits for the rest of the
//!   head, in the same poll of the connection as that first byte, so a head that
//!   arrives whole costs no clock reading),
//!   [`Config::header_timeout`](crate::Config::header_timeout). When it passes, the
//!   read fails with `TimedOut` and hyper drops the connection: a slowloris client
//!   holds nothing for longer.
//!
//! While a request is with the service neither applies (the service has the
//! whole-request deadline). The service wrapper in `server.rs` tells this reader when
//! requests start and end through a shared counter ([`Progress`]).
//!
//! One timer per connection is registered lazily and only moved earlier, never later:
//! when it fires before the current deadline it is re-armed. A kept-alive connection
//! under load therefore costs no timer operation per request (hyper's timer cost an
//! allocation and a registration per request).

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

const TE: &[u8] = b"transfer-encoding:";
const CL: &[u8] = b"content-length:";

/// Counts a connection's requests as the service sees them: odd while one is with the
/// service, even between requests. Shared by the service wrapper and [`Sniff`].
#[derive(Debug, Default)]
pub(crate) struct Progress(AtomicU64);

impl Progress {
    /// A request's head was parsed and the service called.
    pub(crate) fn start(&self) {
        self.0.fetch_add(1, Ordering::Release);
    }

    /// The service answered (or the request was dropped).
    pub(crate) fn end(&self) {
        self.0.fetch_add(1, Ordering::Release);
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }
}

/// Marks the end of a request when dropped: when the service's future completes, or
/// when it is dropped unfinished.
pub(crate) struct InFlight(pub(crate) Arc<Progress>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// A stream whose connection can be parked while idle: hyper's connection (and its
/// two 8 KiB buffers) is dropped and the bare stream waits to become readable.
pub(crate) trait Parkable {
    /// Whether this kind of stream is ever parked.
    const PARKS: bool;

    /// Ready once the stream has something to read.
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>>;
}

impl Parkable for tokio::net::TcpStream {
    const PARKS: bool = true;

    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        tokio::net::TcpStream::poll_read_ready(self, cx)
    }
}

/// A TLS stream is never parked: rustls may hold decrypted bytes the socket's
/// readiness does not show, and its own buffers dominate its memory anyway.
impl<S> Parkable for tokio_rustls::server::TlsStream<S> {
    const PARKS: bool = false;

    fn poll_read_ready(&self, _: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// The connection's timeouts.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Timeouts {
    pub(crate) header: Duration,
    pub(crate) idle: Duration,
    /// After this long idle, a connection that can be parked is (see [`Sniff::parked`]);
    /// `None` never parks (TLS connections).
    pub(crate) park: Option<Duration>,
}

/// What a deadline that has passed calls for.
#[derive(Clone, Copy, Debug)]
enum Due {
    /// Idle long enough to be parked.
    Park,
    /// Idle for the idle timeout: close.
    Close,
    /// A head did not arrive within the header timeout.
    HeadLate,
}

/// Where a connection is, as far as its deadlines go.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Waiting for the first byte of the next head: the idle deadline.
    Idle,
    /// A head has begun (or the connection is new): the header deadline.
    Head,
    /// A head has begun on a kept-alive connection, its deadline not set yet: the clock
    /// is read when the reader first has to wait for the rest of the head, which is in
    /// the same poll of the connection's task as the read that began it (hyper reads
    /// on until the head parses or the stream has nothing more). A head that arrives
    /// whole, the usual case, is handed to the service without that clock reading.
    HeadBegun,
    /// A request is with the service: no deadline here.
    Busy,
}

/// Wraps a connection's stream: sets `flag` once a head has both headers, and ends the
/// connection when a head is too slow or the connection idles too long.
pub(crate) struct Sniff<T> {
    inner: T,
    flag: Arc<AtomicBool>,
    progress: Arc<Progress>,
    /// The value of `progress` last seen.
    seen: u64,
    phase: Phase,
    /// When the current phase's time is up (unused while busy or in a head begun).
    deadline: Instant,
    /// When the connection last became idle (the idle deadline's start).
    idle_since: Instant,
    /// The value of `progress` at the last flush of the writes.
    flushed: u64,
    /// A head announced a chunked body: this reader no longer knows where requests
    /// end, so the connection is never parked.
    unframed: bool,
    /// The stream reported its end because the connection was parked, not closed.
    parked: bool,
    /// Armed at or before `deadline`; created at the first wait.
    timer: Option<Pin<Box<Sleep>>>,
    timeouts: Timeouts,
    prefix: [u8; 40],
    prefix_len: usize,
    line_len: usize,
    te: bool,
    /// The codings of the `Transfer-Encoding` line being read.
    codings: Codings,
    /// What the `Transfer-Encoding` lines seen said.
    te_note: TeNote,
    cl: Option<u64>,
    /// Body bytes still to pass over unread (the head gave a Content-Length).
    skip: u64,
    /// The status of an answer hyper wrote by itself, to a head it could not parse
    /// (see [`Sniff::refused`]); the answer was held back.
    refused: Option<u16>,
}

impl<T> Sniff<T> {
    /// A new connection's reader; its first head is due `timeouts.header` after
    /// `started` (when the connection was accepted).
    pub(crate) fn new(
        inner: T,
        flag: Arc<AtomicBool>,
        progress: Arc<Progress>,
        timeouts: Timeouts,
        started: Instant,
    ) -> Self {
        Sniff {
            inner,
            flag,
            seen: progress.get(),
            flushed: progress.get(),
            progress,
            phase: Phase::Head,
            deadline: started + timeouts.header,
            idle_since: started,
            unframed: false,
            parked: false,
            timer: None,
            timeouts,
            prefix: [0; 40],
            prefix_len: 0,
            line_len: 0,
            te: false,
            codings: Codings::default(),
            te_note: TeNote::default(),
            cl: None,
            skip: 0,
            refused: None,
        }
    }

    /// The stream, for the connection's last words once hyper is done with it (an
    /// answer of its own, the lingering close): read and written past this reader.
    pub(crate) fn inner_mut(&mut self) -> &mut T {
        &mut self.inner
    }

    /// The stream.
    pub(crate) fn into_inner(self) -> T {
        self.inner
    }

    /// Whether input may remain that belongs to a request already answered: the
    /// connection is not at a request boundary (a body of announced length not all
    /// read, a head cut short, a chunked request seen on it). Closing then could reset
    /// the connection and destroy the answer in the client's receive buffer, so the
    /// close lingers (see `linger.rs`).
    pub(crate) fn unsettled(&self) -> bool {
        self.unframed
            || self.skip > 0
            || self.prefix_len > 0
            || self.line_len > 0
            || self.te
            || self.cl.is_some()
    }

    /// The status of the answer hyper made by itself to a head it could not parse
    /// (400, 414 or 431, with an empty body), if it made one. That answer never
    /// reaches the stream: the connection answers instead, with the refusal's code
    /// in the body as every other refusal has it (`framing.rs`).
    ///
    /// It is told from the service's answers by when it is written: hyper parses a
    /// head only once the previous answer is flushed, so an answer written while no
    /// request has been with the service since the last flush is hyper's own. The
    /// status line is looked at first, so the check costs an answer (nearly always a
    /// 2xx) one comparison of ten bytes.
    fn holds_back(&mut self, first: &[u8]) -> bool {
        if !first.starts_with(b"HTTP/1.1 4") {
            return false;
        }
        let now = self.progress.get();
        if !now.is_multiple_of(2) || now != self.flushed {
            return false;
        }
        self.refused = first
            .get(9..12)
            .and_then(|digits| std::str::from_utf8(digits).ok())
            .and_then(|digits| digits.parse().ok());
        self.refused.is_some()
    }

    /// The status and code to answer with instead of hyper's own refusal, if hyper
    /// refused a head (see [`Sniff::holds_back`]).
    ///
    /// hyper has split the head off its buffer by the time it refuses a header's
    /// value, so the head's framing comes from what this reader noted: both framings
    /// (400) before another coding (501), as the service has them. A connection's first
    /// such head sets the note, and every framing refusal closes the connection, so
    /// the note is the refused head's unless a head before it on the connection was
    /// refused for something else with this one already read behind it.
    pub(crate) fn refusal(&self) -> Option<(http::StatusCode, &'static str)> {
        let status = self.refused?;
        let both = self.flag.load(Ordering::Acquire);
        Some(crate::framing::refused_head(
            status,
            both,
            self.te_note.connection_other && !both,
        ))
    }

    /// Catches up with the service: a request started (busy) or ended (idle from now).
    fn observe(&mut self) {
        let now = self.progress.get();
        if now != self.seen {
            self.seen = now;
            if now % 2 == 1 {
                self.phase = Phase::Busy;
            } else {
                self.phase = Phase::Idle;
                self.idle_since = Instant::now();
                self.deadline = self.idle_since + self.timeouts.idle;
            }
        }
    }

    /// While parked: ready with `true` once the stream has something to read (or its
    /// end), with `false` once the idle deadline has passed or the stream failed.
    pub(crate) fn poll_parked(&mut self, cx: &mut Context<'_>) -> Poll<bool>
    where
        T: Parkable,
    {
        if let Poll::Ready(ready) = self.inner.poll_read_ready(cx) {
            return Poll::Ready(ready.is_ok());
        }
        self.poll_deadline(cx).map(|_| false)
    }

    /// Whether the last end of stream hyper saw was this reader parking the
    /// connection: idle for the park delay, at a clean request boundary (every byte
    /// read belonged to a request the service has answered), with the answer flushed.
    /// hyper has then closed its side without a shutdown and holds nothing the caller
    /// cannot take back with `into_parts`.
    pub(crate) fn parked(&self) -> bool {
        self.parked
    }

    /// Makes a parked connection's reader ready for a new hyper connection: still
    /// idle, with the same idle deadline.
    pub(crate) fn unpark(&mut self) {
        self.parked = false;
    }

    /// When this connection may be parked, if it may.
    fn park_at(&self) -> Option<Instant> {
        let after = self.timeouts.park.filter(|_| !self.parked)?;
        let boundary = !self.unframed
            && self.skip == 0
            && self.prefix_len == 0
            && self.line_len == 0
            && !self.te
            && self.cl.is_none();
        (boundary && self.flushed == self.seen).then(|| self.idle_since + after)
    }

    /// Waits for the current deadline; ready with what is due once its time is up.
    fn poll_deadline(&mut self, cx: &mut Context<'_>) -> Poll<Due> {
        let (deadline, park) = match self.phase {
            Phase::Busy => return Poll::Pending,
            Phase::Head => (self.deadline, false),
            Phase::HeadBegun => {
                self.phase = Phase::Head;
                self.deadline = Instant::now() + self.timeouts.header;
                (self.deadline, false)
            }
            Phase::Idle => match self.park_at() {
                Some(at) if at < self.deadline => (at, true),
                _ => (self.deadline, false),
            },
        };
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        if timer.deadline() > deadline {
            timer.as_mut().reset(deadline);
        }
        loop {
            if timer.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            if timer.deadline() < deadline {
                // It fired for an earlier deadline (one that has since moved later):
                // arm it again for the current one.
                timer.as_mut().reset(deadline);
                continue;
            }
            return Poll::Ready(match self.phase {
                Phase::Idle if park => Due::Park,
                Phase::Idle => Due::Close,
                Phase::Head | Phase::HeadBegun | Phase::Busy => Due::HeadLate,
            });
        }
    }

    /// Reads a stretch of the stream: a body of known length is passed over, lines are
    /// found with `memchr`, and only the first bytes of each line are looked at.
    fn scan(&mut self, mut bytes: &[u8]) {
        while !bytes.is_empty() {
            if self.skip > 0 {
                let n = usize::try_from(self.skip)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                bytes = &bytes[n..];
                self.skip -= n as u64;
                continue;
            }
            if let Some(i) = memchr::memchr(b'\n', bytes) {
                self.feed(&bytes[..i]);
                self.end_line();
                bytes = &bytes[i + 1..];
            } else {
                self.feed(bytes);
                break;
            }
        }
    }

    /// Part of a line (no `\n`). The bytes are kept as they came: `end_line` compares
    /// the names ASCII case-insensitively, so no lowercase copy is made byte by byte.
    fn feed(&mut self, part: &[u8]) {
        let room = self.prefix.len() - self.prefix_len;
        let take = room.min(part.len());
        self.prefix[self.prefix_len..self.prefix_len + take].copy_from_slice(&part[..take]);
        let before = self.line_len;
        self.prefix_len += take;
        self.line_len += part.len();
        if self.te_note.line {
            self.codings.feed(part);
        } else if before < TE.len() && self.line_len >= TE.len() {
            // The name is in (the prefix holds more than it): a Transfer-Encoding
            // line's value is read whole, however long, the part kept in the prefix
            // and the rest of this piece.
            if starts_with_ignore_case(&self.prefix[..self.prefix_len], TE) {
                self.te_note.line = true;
                self.codings.feed(&self.prefix[TE.len()..self.prefix_len]);
                self.codings.feed(&part[take..]);
            }
        }
    }

    fn end_line(&mut self) {
        let blank = self.line_len == 0 || (self.line_len == 1 && self.prefix[0] == b'\r');
        if blank {
            // A blank line ends a head (or is a blank line in a body; the flags only
            // count when both are seen within one block).
            self.unframed |= self.te;
            self.te_note.connection_other |= self.te_note.head_other && self.cl.is_none();
            self.te_note.head_other = false;
            match (self.te, self.cl) {
                (true, Some(_)) => self.flag.store(true, Ordering::Release),
                // The next head starts after the body.
                (false, Some(len)) => self.skip = len,
                _ => {}
            }
            self.te = false;
            self.cl = None;
        } else {
            let line = &self.prefix[..self.prefix_len];
            if self.te_note.line {
                self.te = true;
                self.te_note.head_other |= self.codings.end_line();
                self.te_note.line = false;
            }
            if let Some(value) = starts_with_ignore_case(line, CL).then(|| &line[CL.len()..]) {
                // An unreadable length is left to hyper, which refuses it; 0 keeps
                // the scan going line by line.
                let len = std::str::from_utf8(value)
                    .ok()
                    .and_then(|v| v.trim().parse::<u64>().ok())
                    .unwrap_or(0);
                self.cl = Some(self.cl.unwrap_or(0).max(len));
            }
        }
        self.prefix_len = 0;
        self.line_len = 0;
    }
}

/// What a connection's `Transfer-Encoding` lines said.
#[derive(Debug, Default)]
struct TeNote {
    /// The line being read is a `Transfer-Encoding` line (known once its name is in):
    /// its value streams through [`Codings`].
    line: bool,
    /// A `Transfer-Encoding` line of the current head named a coding other than
    /// `chunked`.
    head_other: bool,
    /// A head on this connection named a coding other than `chunked` (without a
    /// `Content-Length`): what a head hyper refuses is answered for (see
    /// [`Sniff::refusal`]).
    connection_other: bool,
}

/// The codings of a `Transfer-Encoding` line, read as its bytes stream: a list split
/// at commas, each element trimmed of whitespace, empty elements skipped (as
/// `framing::transfer_coding_refusal` reads the header's values).
#[derive(Debug, Default)]
struct Codings {
    /// Bytes of the current element so far (not counting leading whitespace).
    len: usize,
    /// The current element is not (a beginning of) `chunked`.
    differs: bool,
    /// Whitespace came after the current element's first byte: any more bytes make
    /// it something other than `chunked`.
    spaced: bool,
    /// An element other than `chunked` was named on this line.
    other: bool,
}

impl Codings {
    fn feed(&mut self, bytes: &[u8]) {
        for &b in bytes {
            match b {
                b',' => self.end_element(),
                b' ' | b'\t' | b'\r' => self.spaced = self.len > 0,
                _ => {
                    self.differs |=
                        self.spaced || b"chunked".get(self.len) != Some(&b.to_ascii_lowercase());
                    self.len += 1;
                }
            }
        }
    }

    fn end_element(&mut self) {
        self.other |= self.len > 0 && (self.differs || self.len != b"chunked".len());
        self.len = 0;
        self.differs = false;
        self.spaced = false;
    }

    /// The line has ended: whether it named a coding other than `chunked`.
    fn end_line(&mut self) -> bool {
        self.end_element();
        std::mem::take(&mut self.other)
    }
}

/// Whether `line` begins with `name` (lowercase), ASCII case-insensitively.
fn starts_with_ignore_case(line: &[u8], name: &[u8]) -> bool {
    line.get(..name.len())
        .is_some_and(|head| head.eq_ignore_ascii_case(name))
}

impl<T: AsyncRead + Unpin> AsyncRead for Sniff<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = self.get_mut();
        this.observe();
        match Pin::new(&mut this.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                let read = &buf.filled()[before..];
                if !read.is_empty() {
                    if this.phase == Phase::Idle {
                        // The header deadline is set when the reader first waits for
                        // more of this head (see `Phase::HeadBegun`).
                        this.phase = Phase::HeadBegun;
                    }
                    this.scan(read);
                }
                Poll::Ready(Ok(()))
            }
            // The stream has nothing to read: what is due is reported as its end
            // when idle (hyper then closes an idle connection quietly, or hands it
            // back to be parked), as `TimedOut` for an unfinished head.
            Poll::Pending => this.poll_deadline(cx).map(|due| match due {
                Due::Park => {
                    this.parked = true;
                    Ok(())
                }
                Due::Close => Ok(()),
                Due::HeadLate => Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    "the request head did not arrive in time",
                )),
            }),
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
        }
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Sniff<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        if self.holds_back(buf) {
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_flush(cx);
        if let Poll::Ready(Ok(())) = result {
            // hyper flushes the stream only once its write buffer is empty: when the
            // service has answered, the answer is out and the connection idles from
            // now. Without a header timer of its own, hyper does not read again until
            // the stream wakes it, so the idle timer is armed here, with the task's
            // waker.
            this.observe();
            this.flushed = this.seen;
            if this.phase == Phase::Idle && this.poll_deadline(cx).is_ready() {
                // Already due: have hyper read, which reports it.
                cx.waker().wake_by_ref();
            }
        }
        result
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let first = bufs
            .iter()
            .find(|b| !b.is_empty())
            .map_or(&[][..], |b| &b[..]);
        if self.holds_back(first) {
            return Poll::Ready(Ok(bufs.iter().map(|b| b.len()).sum()));
        }
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flagged(chunks: &[&[u8]]) -> bool {
        let flag = Arc::new(AtomicBool::new(false));
        let timeouts = Timeouts {
            header: Duration::from_secs(1),
            idle: Duration::from_secs(1),
            park: None,
        };
        let mut s = Sniff::new((), flag.clone(), Arc::default(), timeouts, Instant::now());
        for c in chunks {
            s.scan(c);
        }
        flag.load(Ordering::Acquire)
    }

    /// Whether the sniffer notes a coding other than `chunked` for these reads.
    fn other_coding(chunks: &[&[u8]]) -> bool {
        let timeouts = Timeouts {
            header: Duration::from_secs(1),
            idle: Duration::from_secs(1),
            park: None,
        };
        let mut s = Sniff::new((), Arc::default(), Arc::default(), timeouts, Instant::now());
        for c in chunks {
            s.scan(c);
        }
        s.te_note.connection_other
    }

    #[test]
    fn codings_are_read_whole_across_reads() {
        let head = |te: &str| format!("POST / HTTP/1.1\r\nHost: x\r\n{te}\r\n\r\n");
        for (te, other) in [
            ("Transfer-Encoding: chunked", false),
            ("transfer-encoding:Chunked", false),
            ("Transfer-Encoding: \t chunked \t", false),
            ("Transfer-Encoding: chunked, chunked", false),
            (
                "Transfer-Encoding: chunked, chunked, chunked, chunked, chunked",
                false,
            ),
            ("Transfer-Encoding: ,chunked,", false),
            ("Transfer-Encoding: gzip, chunked", true),
            ("Transfer-Encoding: gzip", true),
            ("Transfer-Encoding: chun ked", true),
            ("Transfer-Encoding: chunkedx", true),
            ("Transfer-Encoding: chunk", true),
            ("Transfer-Encoding: chunked;x=1", true),
            (
                "Transfer-Encoding: chunked, chunked, chunked, chunked, gzip",
                true,
            ),
            (
                "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity",
                true,
            ),
            ("X-Transfer-Encoding: gzip", false),
            // Both framings: noted as that instead.
            ("Transfer-Encoding: gzip\r\nContent-Length: 0", false),
        ] {
            let bytes = head(te).into_bytes();
            assert_eq!(other_coding(&[&bytes]), other, "{te:?} in one read");
            // And byte by byte: every split of the name and the value.
            let pieces: Vec<&[u8]> = bytes.chunks(1).collect();
            assert_eq!(other_coding(&pieces), other, "{te:?} byte by byte");
        }
        // A later head on the connection is noted too, and a body is not read as a head.
        assert!(other_coding(&[
            b"POST / HTTP/1.1\r\nContent-Length: 27\r\n\r\nTransfer-Encoding: gzip\r\n\r\n",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        ]));
        assert!(!other_coding(&[
            b"POST / HTTP/1.1\r\nContent-Length: 27\r\n\r\nTransfer-Encoding: gzip\r\n\r\n"
        ]));
    }

    #[test]
    fn both_headers_in_one_head_are_noted_across_reads() {
        assert!(flagged(&[
            b"POST / HTTP/1.1\r\nTransfer-Enc",
            b"oding: chunked\r\ncontent-LENGTH: 5\r\n\r\n"
        ]));
        assert!(!flagged(&[
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello"
        ]));
        assert!(!flagged(&[
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
        ]));
        assert!(!flagged(&[
            b"POST / HTTP/1.1\r\nX-Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        ]));
    }
}
