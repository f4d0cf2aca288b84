//! Raw HTTP/1.1 messages as the fixtures store them: a request parsed into what the
//! verifier needs, and a response's status line and body read off a socket.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use dronehook_protocol::http::{HeaderMap, HeaderName, HeaderValue};

/// A parsed raw request.
#[derive(Debug)]
pub(crate) struct Request {
    pub(crate) method: String,
    pub(crate) target: String,
    pub(crate) headers: HeaderMap,
    pub(crate) body: Vec<u8>,
}

/// Finds the blank line that ends the head.
fn split_head(bytes: &[u8]) -> Option<(&[u8], &[u8])> {
    let at = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
    Some((&bytes[..at], &bytes[at + 4..]))
}

impl Request {
    /// Parses a request: the request line, `Name: value` header lines, a blank line
    /// and the body (everything after it, whatever `Content-Length` says).
    pub(crate) fn parse(bytes: &[u8]) -> Result<Request> {
        let (head, body) =
            split_head(bytes).context("the request has no blank line after its head")?;
        let head = std::str::from_utf8(head).context("the request head is not UTF-8")?;
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or_default();
        let mut parts = request_line.split(' ');
        let (Some(method), Some(target), Some(_version), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            bail!("the request line {request_line:?} is not `METHOD TARGET VERSION`");
        };
        let mut headers = HeaderMap::new();
        for line in lines {
            let (name, value) = line
                .split_once(':')
                .with_context(|| format!("header line {line:?} has no colon"))?;
            let name = HeaderName::from_bytes(name.trim().as_bytes())
                .with_context(|| format!("bad header name in {line:?}"))?;
            let value = HeaderValue::from_bytes(value.trim().as_bytes())
                .with_context(|| format!("bad header value in {line:?}"))?;
            headers.append(name, value);
        }
        Ok(Request {
            method: method.to_owned(),
            target: target.to_owned(),
            headers,
            body: body.to_vec(),
        })
    }
}

/// A response's status and body.
#[derive(Debug)]
pub(crate) struct Response {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
}

/// Sends raw bytes to `addr` and reads one response. The request should ask for
/// `Connection: close` or carry a `Content-Length`; the response is read up to its
/// `Content-Length`, or to the end of the connection.
pub(crate) fn exchange(addr: SocketAddr, request: &[u8]) -> Result<Response> {
    let timeout = Duration::from_secs(30);
    let mut stream = TcpStream::connect_timeout(&addr, timeout)
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    // The server may answer and close before reading a large or bad request whole;
    // that is an answer, so a failed write is not an error by itself.
    let _ = stream.write_all(request);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        if let Some((head, body)) = split_head(&buf) {
            let head = String::from_utf8_lossy(head).into_owned();
            let status = head
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse::<u16>().ok())
                .with_context(|| format!("bad status line in {head:?}"))?;
            let length = head.lines().find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.trim()
                    .eq_ignore_ascii_case("content-length")
                    .then(|| v.trim().parse::<usize>().ok())?
            });
            // These statuses never have a body, whatever the headers say.
            if status == 204 || status == 304 || (100..200).contains(&status) {
                return Ok(Response {
                    status,
                    body: Vec::new(),
                });
            }
            if let Some(length) = length.filter(|&l| body.len() >= l) {
                return Ok(Response {
                    status,
                    body: body[..length].to_vec(),
                });
            }
        }
        let n = match stream.read(&mut chunk) {
            Ok(n) => n,
            // A reset after a complete answer still counts as that answer.
            Err(_) if !buf.is_empty() => 0,
            Err(e) => return Err(e).context("reading the response"),
        };
        if n == 0 {
            let (head, body) =
                split_head(&buf).context("the connection closed before a response")?;
            let head = String::from_utf8_lossy(head);
            let status = head
                .split(' ')
                .nth(1)
                .and_then(|s| s.parse::<u16>().ok())
                .context("bad status line")?;
            return Ok(Response {
                status,
                body: body.to_vec(),
            });
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_parses_into_its_parts() {
        let req = Request::parse(
            b"POST /hook?x=1 HTTP/1.1\r\nHost: a\r\nDate: d1\r\nDate: d2\r\n\r\n{\"a\":1}",
        )
        .unwrap();
        assert_eq!(req.method, "POST");
        assert_eq!(req.target, "/hook?x=1");
        assert_eq!(req.headers.get_all("date").iter().count(), 2);
        assert_eq!(req.body, b"{\"a\":1}");
    }

    #[test]
    fn a_request_without_a_blank_line_is_refused() {
        let err = Request::parse(b"POST / HTTP/1.1\r\nHost: a\r\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "the request has no blank line after its head"
        );
    }
}
