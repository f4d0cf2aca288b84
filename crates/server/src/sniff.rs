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
    prefix: [u8; 18],
    prefix_len: usize,
    line_len: usize,
    te: bool,
    cl: bool,
}

impl<T> Sniff<T> {
    pub(crate) fn new(inner: T, flag: Arc<AtomicBool>) -> Self {
        Sniff {
            inner,
            flag,
            prefix: [0; 18],
            prefix_len: 0,
            line_len: 0,
            te: false,
            cl: false,
        }
    }

    fn scan(&mut self, bytes: &[u8]) {
        for &b in bytes {
            match b {
                b'\n' => {
                    if self.line_len == 0 {
                        // A blank line ends a head (or is a blank line in a body; the
                        // flags only count when both are seen within one block).
                        if self.te && self.cl {
                            self.flag.store(true, Ordering::Release);
                        }
                        self.te = false;
                        self.cl = false;
                    } else {
                        let line = &self.prefix[..self.prefix_len];
                        self.te |= line.starts_with(TE);
                        self.cl |= line.starts_with(CL);
                    }
                    self.prefix_len = 0;
                    self.line_len = 0;
                }
                b'\r' => {}
                _ => {
                    if self.prefix_len < self.prefix.len() {
                        self.prefix[self.prefix_len] = b.to_ascii_lowercase();
                        self.prefix_len += 1;
                    }
                    self.line_len += 1;
                }
            }
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Sniff<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let result = Pin::new(&mut self.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = result {
            let new = buf.filled()[before..].to_vec();
            self.scan(&new);
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
