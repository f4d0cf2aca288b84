//! A byte-level watch on request heads for `Transfer-Encoding` together with
//! `Content-Length`.
//!
//! hyper 1.x accepts such a request (chunked wins, as RFC 9112 allows), drops the
//! `Content-Length` header and closes the connection after answering, so the service
//! cannot see that both were sent. Two framings for one body are how requests are
//! smuggled past proxies, so the receiver refuses them with 400: this reader notes,
//! per connection, that a head carried both, and the service checks the note.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

const TE: &[u8] = b"transfer-encoding:";
const CL: &[u8] = b"content-length:";

/// Wraps a connection's stream and sets `flag` once a head has both headers.
pub(crate) struct Sniff<T> {
    inner: T,
    flag: Arc<AtomicBool>,
    prefix: [u8; 40],
    prefix_len: usize,
    line_len: usize,
    te: bool,
    cl: Option<u64>,
    /// Body bytes still to pass over unread (the head gave a Content-Length).
    skip: u64,
}

impl<T> Sniff<T> {
    pub(crate) fn new(inner: T, flag: Arc<AtomicBool>) -> Self {
        Sniff {
            inner,
            flag,
            prefix: [0; 40],
            prefix_len: 0,
            line_len: 0,
            te: false,
            cl: None,
            skip: 0,
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

    /// Part of a line (no `\n`).
    fn feed(&mut self, part: &[u8]) {
        let room = self.prefix.len() - self.prefix_len;
        let take = room.min(part.len());
        for (dst, src) in self.prefix[self.prefix_len..self.prefix_len + take]
            .iter_mut()
            .zip(part)
        {
            *dst = src.to_ascii_lowercase();
        }
        self.prefix_len += take;
        self.line_len += part.len();
    }

    fn end_line(&mut self) {
        let blank = self.line_len == 0 || (self.line_len == 1 && self.prefix[0] == b'\r');
        if blank {
            // A blank line ends a head (or is a blank line in a body; the flags only
            // count when both are seen within one block).
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
            self.te |= line.starts_with(TE);
            if let Some(value) = line.strip_prefix(CL) {
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

impl<T: AsyncRead + Unpin> AsyncRead for Sniff<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result {
            this.scan(&buf.filled()[before..]);
        }
        result
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Sniff<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
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
        let mut s = Sniff::new((), flag.clone());
        for c in chunks {
            s.scan(c);
        }
        flag.load(Ordering::Acquire)
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
