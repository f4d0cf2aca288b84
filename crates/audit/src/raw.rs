//! Raw HTTP/1.1 messages, read with `httparse`: a captured request parsed into what a
//! verifier needs ([`Request::parse`]), a request written ([`write_request`]), and a
//! response read incrementally, sans-IO, as far as its status and code
//! ([`read_response`], [`ResponseReader`] for a connection's successive reads), plus a
//! blocking [`exchange`] over TCP built on them.
//!
//! Cases are sent as raw bytes because many of them are requests an HTTP client
//! library would refuse to send: duplicated headers, two framings, a length with no
//! body.

use std::fmt;
use std::io::{self, Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use dronehook_protocol::http::{HeaderMap, HeaderName, HeaderValue};

/// The most headers a parsed request may have.
pub const MAX_HEADERS: usize = 128;

/// The most response bytes read: a code is one short line, and a hostile receiver
/// must not make a reader buffer without end.
pub const MAX_RESPONSE: usize = 64 * 1024;

/// A parsed request.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Request {
    /// The method (`POST`).
    pub method: String,
    /// The request target (path and query).
    pub target: String,
    /// The headers, as sent (a repeated name keeps every value, in order).
    pub headers: HeaderMap,
    /// The body, de-chunked when it was sent chunked.
    pub body: Vec<u8>,
}

/// Why a request could not be parsed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    /// The bytes end before the blank line that closes the head.
    Incomplete,
    /// More than [`MAX_HEADERS`] header lines.
    TooManyHeaders,
    /// Not an HTTP/1.x request (httparse's reason).
    NotHttp(String),
    /// A header name that is not a token.
    BadHeaderName(String),
    /// A header value with bytes a value may not hold.
    BadHeaderValue(String),
    /// A `Content-Length` that is not a number.
    BadContentLength,
    /// Two `Content-Length` headers that disagree.
    ContentLengthConflict,
    /// Fewer body bytes than `Content-Length` declares.
    ShortBody {
        /// The bytes there are.
        have: usize,
        /// The bytes declared.
        declared: usize,
    },
    /// A chunked body that does not decode (what is wrong with it).
    Chunked(&'static str),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::Incomplete => {
                f.write_str("the request ends before the blank line that closes its headers")
            }
            ParseError::TooManyHeaders => {
                write!(f, "the request has more than {MAX_HEADERS} headers")
            }
            ParseError::NotHttp(why) => write!(f, "the request is not HTTP/1.x: {why}"),
            ParseError::BadHeaderName(name) => write!(f, "bad header name {name:?}"),
            ParseError::BadHeaderValue(name) => write!(f, "bad value in header {name:?}"),
            ParseError::BadContentLength => f.write_str("Content-Length is not a number"),
            ParseError::ContentLengthConflict => {
                f.write_str("the request has two different Content-Length headers")
            }
            ParseError::ShortBody { have, declared } => write!(
                f,
                "the body has {have} bytes but Content-Length says {declared}"
            ),
            ParseError::Chunked(why) => f.write_str(why),
        }
    }
}

impl std::error::Error for ParseError {}

impl Request {
    /// Parses a request. The body is framed by `Transfer-Encoding: chunked` when
    /// present, else by `Content-Length` (bytes after it, such as an editor's final
    /// newline, are ignored), else it is everything after the headers. Lines may end
    /// in CRLF or, as hand-written files often do, in LF alone.
    pub fn parse(bytes: &[u8]) -> Result<Request, ParseError> {
        let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut slots);
        let head_len = match req.parse(bytes) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => return Err(ParseError::Incomplete),
            Err(httparse::Error::TooManyHeaders) => return Err(ParseError::TooManyHeaders),
            Err(e) => return Err(ParseError::NotHttp(e.to_string())),
        };
        let method = req.method.unwrap_or_default().to_owned();
        let target = req.path.unwrap_or_default().to_owned();
        let mut headers = HeaderMap::new();
        for h in req.headers.iter() {
            let name = HeaderName::from_bytes(h.name.as_bytes())
                .map_err(|_| ParseError::BadHeaderName(h.name.to_owned()))?;
            let value = HeaderValue::from_bytes(h.value)
                .map_err(|_| ParseError::BadHeaderValue(h.name.to_owned()))?;
            headers.append(name, value);
        }
        let rest = &bytes[head_len..];

        let chunked = headers.get_all("transfer-encoding").iter().any(|v| {
            v.to_str().is_ok_and(|v| {
                v.split(',')
                    .any(|t| t.trim().eq_ignore_ascii_case("chunked"))
            })
        });
        let body = if chunked {
            dechunk_request(rest)?
        } else if let Some(declared) = content_length(&headers)? {
            if rest.len() < declared {
                return Err(ParseError::ShortBody {
                    have: rest.len(),
                    declared,
                });
            }
            rest[..declared].to_vec()
        } else {
            rest.to_vec()
        };
        Ok(Request {
            method,
            target,
            headers,
            body,
        })
    }
}

fn content_length(headers: &HeaderMap) -> Result<Option<usize>, ParseError> {
    let mut found: Option<usize> = None;
    for value in &headers.get_all("content-length") {
        let n = value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .ok_or(ParseError::BadContentLength)?;
        if found.is_some_and(|f| f != n) {
            return Err(ParseError::ContentLengthConflict);
        }
        found = Some(n);
    }
    Ok(found)
}

/// Decodes a request's chunked body; trailers are read past and dropped.
fn dechunk_request(mut rest: &[u8]) -> Result<Vec<u8>, ParseError> {
    let mut body = Vec::new();
    loop {
        let (consumed, size) = match httparse::parse_chunk_size(rest) {
            Ok(httparse::Status::Complete(found)) => found,
            Ok(httparse::Status::Partial) => {
                return Err(ParseError::Chunked(
                    "the chunked body ends in the middle of a chunk size",
                ));
            }
            Err(_) => {
                return Err(ParseError::Chunked(
                    "the chunked body has an invalid chunk size",
                ));
            }
        };
        rest = &rest[consumed..];
        if size == 0 {
            return Ok(body);
        }
        let size =
            usize::try_from(size).map_err(|_| ParseError::Chunked("a chunk is too large"))?;
        if rest.len() < size {
            return Err(ParseError::Chunked(
                "the chunked body ends in the middle of a chunk",
            ));
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size..];
        rest = rest
            .strip_prefix(b"\r\n")
            .or_else(|| rest.strip_prefix(b"\n"))
            .ok_or(ParseError::Chunked(
                "a chunk is not followed by a line break",
            ))?;
    }
}

/// Writes a complete request: request line, `Host`, the given headers,
/// `Content-Length`, a blank line and the body.
pub fn write_request(
    method: &str,
    host: &str,
    target: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 512);
    out.extend_from_slice(format!("{method} {target} HTTP/1.1\r\nHost: {host}\r\n").as_bytes());
    for (name, value) in headers {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body);
    out
}

/// A response, read as far as its code.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Response {
    /// The HTTP status (of the final response: interim 1xx responses are skipped).
    pub status: u16,
    /// The body, or its beginning: reading stops once the first line (the code) is
    /// complete, and never goes past [`MAX_RESPONSE`] bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// The code the body carries: its first line, trimmed (empty for an empty body).
    pub fn code(&self) -> &str {
        crate::response_code(&self.body)
    }
}

/// Why a response could not be read.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResponseError {
    /// The bytes are not an HTTP/1.x response (httparse's reason).
    NotHttp(String),
    /// The head is over [`MAX_RESPONSE`] bytes.
    HeadTooLarge,
    /// The connection closed before any byte of an answer.
    Closed,
    /// The connection closed in the middle of the head.
    Cut,
}

impl fmt::Display for ResponseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ResponseError::NotHttp(why) => write!(f, "the answer is not HTTP/1.x: {why}"),
            ResponseError::HeadTooLarge => f.write_str("the answer's head is over 64 KiB"),
            ResponseError::Closed => f.write_str("the connection closed without an answer"),
            ResponseError::Cut => f.write_str("the connection closed in the middle of the answer"),
        }
    }
}

impl std::error::Error for ResponseError {}

/// Reads a response from the bytes received so far, without I/O: `Ok(None)` while
/// more bytes are needed, the response once its status and first body line are
/// known. `closed` says the connection has ended (or failed), so that what arrived
/// is all there is.
///
/// The body ends at its `Content-Length`, at the end of its chunks, at the end of
/// its first line, at the end of the connection, or at [`MAX_RESPONSE`] bytes,
/// whichever comes first; 204 and 304 responses have none.
///
/// ```
/// use dronehook_audit::raw::read_response;
///
/// let bytes = b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 16\r\n\r\ndigest.mismatch\n";
/// assert_eq!(read_response(&bytes[..30], false), Ok(None));
/// let response = read_response(bytes, false)?.unwrap();
/// assert_eq!((response.status, response.code()), (401, "digest.mismatch"));
/// # Ok::<(), dronehook_audit::raw::ResponseError>(())
/// ```
pub fn read_response(buf: &[u8], closed: bool) -> Result<Option<Response>, ResponseError> {
    let mut rest = buf;
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut headers);
        let head_len = match response.parse(rest) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) => {
                return if rest.len() > MAX_RESPONSE {
                    Err(ResponseError::HeadTooLarge)
                } else if !closed {
                    Ok(None)
                } else if rest.is_empty() {
                    Err(ResponseError::Closed)
                } else {
                    Err(ResponseError::Cut)
                };
            }
            Err(e) => return Err(ResponseError::NotHttp(e.to_string())),
        };
        let status = response.code.unwrap_or_default();
        if (100..200).contains(&status) {
            // An interim response (100 Continue): the real one follows.
            rest = &rest[head_len..];
            continue;
        }
        if status == 204 || status == 304 {
            return Ok(Some(Response {
                status,
                body: Vec::new(),
            }));
        }
        let header = |name: &str| {
            response
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).trim().to_owned())
        };
        let length = header("content-length").and_then(|v| v.parse::<usize>().ok());
        let chunked =
            header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
        let body = &rest[head_len..];
        let complete = match (length, chunked) {
            (_, true) => dechunk_response(body).is_some(),
            (Some(n), false) => body.len() >= n,
            (None, false) => false,
        };
        let enough =
            complete || closed || body.len() > MAX_RESPONSE || (!chunked && body.contains(&b'\n'));
        if !enough {
            return Ok(None);
        }
        let body = if chunked {
            dechunk_response(body).unwrap_or_default()
        } else {
            let end = length
                .unwrap_or(body.len())
                .min(body.len())
                .min(MAX_RESPONSE);
            body[..end].to_vec()
        };
        return Ok(Some(Response { status, body }));
    }
}

/// A complete chunked response body, decoded; `None` while it is incomplete.
fn dechunk_response(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let Ok(httparse::Status::Complete((used, size))) = httparse::parse_chunk_size(rest) else {
            return None;
        };
        rest = &rest[used..];
        let size = usize::try_from(size).ok()?;
        if size == 0 {
            return Some(out);
        }
        if rest.len() < size.checked_add(2)? {
            return None;
        }
        out.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

/// Why an [`exchange`] gave no response.
#[derive(Debug)]
#[non_exhaustive]
pub enum ExchangeError {
    /// The connection could not be made.
    Connect(io::Error),
    /// Reading failed before a response was complete.
    Read(io::Error),
    /// No response within the timeout.
    Timeout(Duration),
    /// What was read is not a response.
    Response(ResponseError),
}

impl fmt::Display for ExchangeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExchangeError::Connect(e) => write!(f, "cannot connect: {}", io_reason(e)),
            ExchangeError::Read(e) => write!(
                f,
                "the connection failed before an answer: {}",
                io_reason(e)
            ),
            ExchangeError::Timeout(d) => write!(f, "no answer within {d:?}"),
            ExchangeError::Response(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for ExchangeError {}

/// An I/O error in a few words: `connection refused`, `connection reset`, or the
/// system's text.
pub fn io_reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".into(),
        io::ErrorKind::ConnectionReset => "connection reset".into(),
        _ => e.to_string(),
    }
}

/// Sends `request` on a new TCP connection and reads the answer, blocking, within
/// `timeout` from connecting to the end of the answer.
///
/// The request is written while the answer is read: a receiver may answer (413,
/// 400) before it has read the whole request, and then stop reading it. A failed
/// write is not an error by itself, for the same reason; the answer decides.
pub fn exchange(
    addr: SocketAddr,
    request: &[u8],
    timeout: Duration,
) -> Result<Response, ExchangeError> {
    exchange_pipelined(addr, request, 1, timeout)
        .into_iter()
        .next()
        .unwrap_or(Err(ExchangeError::Response(ResponseError::Closed)))
}

/// Like [`exchange`], for pipelined requests: `request` holds `answers` requests back
/// to back, and as many answers are read from the connection, in order, each an
/// answer or why it is missing.
pub fn exchange_pipelined(
    addr: SocketAddr,
    request: &[u8],
    answers: usize,
    timeout: Duration,
) -> Vec<Result<Response, ExchangeError>> {
    let deadline = Instant::now() + timeout;
    let connected = TcpStream::connect_timeout(&addr, timeout)
        .and_then(|stream| stream.try_clone().map(|writer| (stream, writer)));
    let (stream, mut writer) = match connected {
        Ok(pair) => pair,
        Err(e) => {
            return (0..answers.max(1))
                .map(|_| {
                    Err(ExchangeError::Connect(io::Error::new(
                        e.kind(),
                        e.to_string(),
                    )))
                })
                .collect();
        }
    };
    let _ = stream.set_nodelay(true);
    let _ = writer.set_write_timeout(Some(timeout));
    std::thread::scope(|scope| {
        scope.spawn(move || {
            if writer.write_all(request).is_ok() {
                let _ = writer.flush();
            }
        });
        let answer = read_until_answered(&stream, deadline, timeout, answers.max(1));
        // Unblocks a writer the receiver stopped reading from.
        let _ = stream.shutdown(Shutdown::Both);
        answer
    })
}

fn read_until_answered(
    mut stream: &TcpStream,
    deadline: Instant,
    timeout: Duration,
    answers: usize,
) -> Vec<Result<Response, ExchangeError>> {
    let mut answer = ResponseReader::pipelined(answers);
    let mut chunk = [0u8; 8192];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let read = if left.is_zero() {
            None
        } else {
            let _ = stream.set_read_timeout(Some(left));
            match stream.read(&mut chunk) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    None
                }
                read => Some(read.map(|n| &chunk[..n])),
            }
        };
        let Some(read) = read else {
            return answer.timed_out(timeout);
        };
        if let Some(result) = answer.feed_all(read) {
            return result;
        }
    }
}

/// The reading side of an exchange, sans-IO: fed the outcome of each read of the
/// connection, it says when the answer is decided and what it is. [`exchange`] drives
/// it over a blocking TCP stream; another transport (an async TLS stream) drives it
/// the same way, so that every exchange judges what it read alike.
///
/// A reader made with [`ResponseReader::pipelined`] reads several answers in a row
/// from one connection ([`ResponseReader::feed_all`]): every answer but the last must
/// be complete (a 204, a `Content-Length` or chunked body) before the next is read.
#[derive(Debug)]
pub struct ResponseReader {
    buf: Vec<u8>,
    /// Where the answer being read starts in `buf`.
    start: usize,
    /// How many answers are read.
    wanted: usize,
    /// The answers decided so far.
    done: Vec<Result<Response, ExchangeError>>,
}

impl Default for ResponseReader {
    fn default() -> Self {
        ResponseReader::new()
    }
}

impl ResponseReader {
    /// A reader that has read nothing yet, of one answer.
    pub fn new() -> Self {
        ResponseReader::pipelined(1)
    }

    /// A reader of `answers` answers in a row on one connection (at least one).
    pub fn pipelined(answers: usize) -> Self {
        ResponseReader {
            buf: Vec::with_capacity(1024),
            start: 0,
            wanted: answers.max(1),
            done: Vec::new(),
        }
    }

    /// Takes one read's outcome: the bytes read (none at the end of the stream) or
    /// the read's error, which ends the stream. `None` while the answer is not
    /// complete (read again); else the response, or why there is none: a failed read
    /// before a whole answer is [`ExchangeError::Read`] (a reset after a complete
    /// answer still counts as that answer), bytes that are not a response
    /// [`ExchangeError::Response`]. For a pipelined reader, the first answer once all
    /// are decided.
    pub fn feed(&mut self, read: io::Result<&[u8]>) -> Option<Result<Response, ExchangeError>> {
        self.feed_all(read).map(|all| {
            all.into_iter()
                .next()
                .unwrap_or(Err(ExchangeError::Response(ResponseError::Closed)))
        })
    }

    /// Like [`ResponseReader::feed`], for every answer: `None` while some answer is
    /// not decided; else each answer in order, or why it is missing (an answer after
    /// the connection ended is [`ResponseError::Closed`]).
    pub fn feed_all(
        &mut self,
        read: io::Result<&[u8]>,
    ) -> Option<Vec<Result<Response, ExchangeError>>> {
        let (closed, failure) = match read {
            Ok(bytes) => {
                self.buf.extend_from_slice(bytes);
                (bytes.is_empty(), None)
            }
            Err(e) => (true, Some(e)),
        };
        loop {
            let rest = &self.buf[self.start..];
            if self.done.len() + 1 < self.wanted {
                match complete_response(rest) {
                    Ok(Some((response, used))) => {
                        self.done.push(Ok(response));
                        self.start += used;
                        continue;
                    }
                    Ok(None) if !closed => return None,
                    // The connection ended: what is left is the last answer there is.
                    Ok(None) => {}
                    Err(e) => {
                        self.done.push(Err(ExchangeError::Response(e)));
                        return Some(self.finish());
                    }
                }
            }
            let answer = match (read_response(rest, closed), failure) {
                (Ok(Some(response)), _) => Ok(response),
                (Ok(None), _) => return None,
                // Reset (or, over TLS, ended without a close_notify) before any byte
                // of an answer: the receiver closed the connection, however abruptly.
                (Err(_), Some(e)) if rest.is_empty() && ends_abruptly(&e) => {
                    Err(ExchangeError::Response(ResponseError::Closed))
                }
                // A reset before a whole answer is the reset's fault, not the answer's.
                (Err(_), Some(e)) => Err(ExchangeError::Read(e)),
                (Err(e), None) => Err(ExchangeError::Response(e)),
            };
            self.done.push(answer);
            return Some(self.finish());
        }
    }

    /// The answers decided, and for each one missing, that the connection ended
    /// before it.
    fn finish(&mut self) -> Vec<Result<Response, ExchangeError>> {
        let mut all = std::mem::take(&mut self.done);
        while all.len() < self.wanted {
            all.push(Err(ExchangeError::Response(ResponseError::Closed)));
        }
        all
    }

    /// The answers decided, and [`ExchangeError::Timeout`] for the others.
    pub fn timed_out(&mut self, timeout: Duration) -> Vec<Result<Response, ExchangeError>> {
        let mut all = std::mem::take(&mut self.done);
        while all.len() < self.wanted {
            all.push(Err(ExchangeError::Timeout(timeout)));
        }
        all
    }
}

/// Whether a read error is the peer ending the connection without the usual goodbye.
fn ends_abruptly(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::UnexpectedEof
    )
}

/// A whole response at the start of `buf` and how many bytes it takes, for reading
/// the next one behind it: `Ok(None)` while it is incomplete, or when its end is the
/// end of the connection (no length, not chunked).
fn complete_response(buf: &[u8]) -> Result<Option<(Response, usize)>, ResponseError> {
    let mut offset = 0;
    loop {
        let rest = &buf[offset..];
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut headers);
        let head_len = match response.parse(rest) {
            Ok(httparse::Status::Complete(n)) => n,
            Ok(httparse::Status::Partial) if rest.len() > MAX_RESPONSE => {
                return Err(ResponseError::HeadTooLarge);
            }
            Ok(httparse::Status::Partial) => return Ok(None),
            Err(e) => return Err(ResponseError::NotHttp(e.to_string())),
        };
        let status = response.code.unwrap_or_default();
        if (100..200).contains(&status) {
            offset += head_len;
            continue;
        }
        let end = offset + head_len;
        if status == 204 || status == 304 {
            let body = Vec::new();
            return Ok(Some((Response { status, body }, end)));
        }
        let header = |name: &str| {
            response
                .headers
                .iter()
                .find(|h| h.name.eq_ignore_ascii_case(name))
                .map(|h| String::from_utf8_lossy(h.value).trim().to_owned())
        };
        let body = &rest[head_len..];
        if header("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
            return Ok(chunked_length(body).and_then(|used| {
                let body = dechunk_response(&body[..used])?;
                Some((Response { status, body }, end + used))
            }));
        }
        let Some(length) = header("content-length").and_then(|v| v.parse::<usize>().ok()) else {
            return Ok(None);
        };
        if body.len() < length {
            return Ok(None);
        }
        let body = body[..length.min(MAX_RESPONSE)].to_vec();
        return Ok(Some((Response { status, body }, end + length)));
    }
}

/// How many bytes a complete chunked body takes (its last chunk and an empty
/// trailer included); `None` while it is incomplete.
fn chunked_length(body: &[u8]) -> Option<usize> {
    let mut used = 0;
    loop {
        let Ok(httparse::Status::Complete((n, size))) = httparse::parse_chunk_size(&body[used..])
        else {
            return None;
        };
        used += n;
        let size = usize::try_from(size).ok()?;
        if size == 0 {
            let trailer_end = body[used..].windows(2).position(|w| w == b"\r\n")?;
            if trailer_end == 0 {
                return Some(used + 2);
            }
            let end = body[used..].windows(4).position(|w| w == b"\r\n\r\n")?;
            return Some(used + end + 4);
        }
        used = used.checked_add(size)?.checked_add(2)?;
        if body.len() < used {
            return None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_response_reader_decides_on_what_each_read_gave() {
        let answer =
            b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 15\r\n\r\nbody.too_large\n";
        // In two reads: undecided after the first, the answer after the second.
        let mut reader = ResponseReader::new();
        assert!(reader.feed(Ok(&answer[..20])).is_none());
        let response = reader.feed(Ok(&answer[20..])).unwrap().unwrap();
        assert_eq!((response.status, response.code()), (413, "body.too_large"));
        // A reset after the whole answer: still that answer.
        let mut reader = ResponseReader::new();
        assert!(reader.feed(Ok(&answer[..])).is_some());
        let mut reader = ResponseReader::new();
        assert!(reader.feed(Ok(&answer[..40])).is_none());
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        assert_eq!(
            reader.feed(Err(reset)).unwrap().unwrap_err().to_string(),
            "the connection failed before an answer: connection reset"
        );
        // The end of the stream before an answer: what was read is no response.
        let mut reader = ResponseReader::new();
        assert!(reader.feed(Ok(b"HTTP/1.1 2")).is_none());
        let err = reader.feed(Ok(b"")).unwrap().unwrap_err();
        assert!(matches!(err, ExchangeError::Response(_)), "{err:?}");
    }

    #[test]
    fn a_pipelined_reader_reads_its_answers_in_order() {
        let first = b"HTTP/1.1 204 No Content\r\ndate: x\r\n\r\n";
        let chunked =
            b"HTTP/1.1 400 Bad Request\r\ntransfer-encoding: chunked\r\n\r\n5\r\nbad.x\r\n0\r\n\r\n";
        let last = b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 16\r\n\r\ndigest.mismatch\n";
        let mut all = first.to_vec();
        all.extend_from_slice(chunked);
        all.extend_from_slice(last);
        let mut reader = ResponseReader::pipelined(3);
        // Byte by byte: nothing is decided before the last answer's code.
        for byte in &all[..all.len() - 1] {
            assert!(reader.feed_all(Ok(std::slice::from_ref(byte))).is_none());
        }
        let answers = reader.feed_all(Ok(&all[all.len() - 1..])).unwrap();
        let got: Vec<(u16, String)> = answers
            .into_iter()
            .map(|a| a.map(|r| (r.status, r.code().to_owned())).unwrap())
            .collect();
        assert_eq!(
            got,
            [
                (204, String::new()),
                (400, "bad.x".to_owned()),
                (401, "digest.mismatch".to_owned())
            ]
        );
        // The connection closed after the first answer: the second is missing.
        let mut reader = ResponseReader::pipelined(2);
        assert!(reader.feed_all(Ok(first)).is_none());
        let answers = reader.feed_all(Ok(b"")).unwrap();
        assert_eq!(answers[0].as_ref().unwrap().status, 204);
        assert!(matches!(
            answers[1],
            Err(ExchangeError::Response(ResponseError::Closed))
        ));
        // Reset without a byte: closed, however abruptly.
        let mut reader = ResponseReader::pipelined(2);
        let reset = io::Error::from(io::ErrorKind::ConnectionReset);
        let answers = reader.feed_all(Err(reset)).unwrap();
        assert!(
            answers
                .iter()
                .all(|a| matches!(a, Err(ExchangeError::Response(ResponseError::Closed))))
        );
        // Closed without a byte: one `Closed` for each answer.
        let mut reader = ResponseReader::pipelined(2);
        let answers = reader.feed_all(Ok(b"")).unwrap();
        assert_eq!(answers.len(), 2);
        assert!(
            answers
                .iter()
                .all(|a| matches!(a, Err(ExchangeError::Response(ResponseError::Closed))))
        );
    }

    #[test]
    fn chunked_and_sized_request_bodies() {
        let chunked = b"POST /hook HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nTrailer: t\r\n\r\n";
        let req = Request::parse(chunked).unwrap();
        assert_eq!(req.body, b"abcde");
        assert_eq!(req.target, "/hook");
        let sized = b"POST / HTTP/1.1\nContent-Length: 2\n\nab\n";
        assert_eq!(Request::parse(sized).unwrap().body, b"ab");
        let short = b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab";
        assert_eq!(
            Request::parse(short).unwrap_err().to_string(),
            "the body has 2 bytes but Content-Length says 5"
        );
    }

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
    fn bad_requests_say_why() {
        let err = |bytes: &[u8]| Request::parse(bytes).unwrap_err().to_string();
        assert_eq!(
            err(b"POST / HTTP/1.1\r\nHost: a\r\n"),
            "the request ends before the blank line that closes its headers"
        );
        assert_eq!(
            err(b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab"),
            "the request has two different Content-Length headers"
        );
        assert_eq!(
            err(b"POST / HTTP/1.1\r\nContent-Length: x\r\n\r\nab"),
            "Content-Length is not a number"
        );
        assert_eq!(
            err(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n"),
            "the chunked body has an invalid chunk size"
        );
        assert_eq!(
            err(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"),
            "the chunked body ends in the middle of a chunk"
        );
        let many = format!(
            "POST / HTTP/1.1\r\n{}\r\n",
            "A: b\r\n".repeat(MAX_HEADERS + 1)
        );
        assert_eq!(
            err(many.as_bytes()),
            format!("the request has more than {MAX_HEADERS} headers")
        );
        assert_eq!(
            err(b"POST / SPDY/3\r\n\r\n"),
            "the request is not HTTP/1.x: invalid HTTP version"
        );
    }

    #[test]
    fn a_written_request_parses_back() {
        let bytes = write_request("POST", "h:1", "/x", &[("Date", "d")], b"{}");
        assert_eq!(
            bytes,
            b"POST /x HTTP/1.1\r\nHost: h:1\r\nDate: d\r\nContent-Length: 2\r\n\r\n{}"
        );
        let req = Request::parse(&bytes).unwrap();
        assert_eq!(req.body, b"{}");
        assert_eq!(req.headers["date"], "d");
    }

    fn read(bytes: &[u8]) -> Result<(u16, String), String> {
        match read_response(bytes, true) {
            Ok(Some(r)) => Ok((r.status, r.code().to_owned())),
            Ok(None) => Err("incomplete".into()),
            Err(e) => Err(e.to_string()),
        }
    }

    #[test]
    fn responses_are_read_to_their_code() {
        assert_eq!(
            read(b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 16\r\n\r\ndigest.mismatch\n"),
            Ok((401, "digest.mismatch".into()))
        );
        assert_eq!(
            read(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n"),
            Ok((204, String::new()))
        );
        assert_eq!(
            read(b"HTTP/1.1 400 Bad Request\r\ntransfer-encoding: chunked\r\n\r\n4\r\nbad\n\r\n0\r\n\r\n"),
            Ok((400, "bad".into()))
        );
        assert_eq!(
            read(b"HTTP/1.1 400 Bad Request\r\n\r\nInvalid Input\n"),
            Ok((400, "Invalid Input".into()))
        );
        assert_eq!(
            read(b""),
            Err("the connection closed without an answer".into())
        );
        assert_eq!(
            read(b"HTTP/1.1 400 Bad"),
            Err("the connection closed in the middle of the answer".into())
        );
        assert_eq!(
            read(b"SSH-2.0-OpenSSH\r\n"),
            Err("the answer is not HTTP/1.x: invalid HTTP version".into())
        );
    }

    #[test]
    fn a_response_is_complete_when_its_code_is_known() {
        let more = |bytes: &[u8]| read_response(bytes, false).unwrap();
        // The head alone, a partial first line, a partial chunked body: more to come.
        assert_eq!(more(b"HTTP/1.1 413 Payload Too Large\r\n"), None);
        assert_eq!(
            more(b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 15\r\n\r\nbody.too"),
            None
        );
        assert_eq!(
            more(b"HTTP/1.1 400 Bad\r\ntransfer-encoding: chunked\r\n\r\n4\r\nbad\n\r\n"),
            None
        );
        // A body without a length ends with its first line.
        let r = more(b"HTTP/1.1 400 Bad\r\n\r\ntransport.malformed\nmore").unwrap();
        assert_eq!(r.code(), "transport.malformed");
        // A length ends the body even without a line break.
        let r = more(b"HTTP/1.1 404 Not Found\r\ncontent-length: 9\r\n\r\nnot_foundXYZ").unwrap();
        assert_eq!(r.body, b"not_found");
        // A head that never ends is refused.
        let mut endless = b"HTTP/1.1 200 OK\r\n".to_vec();
        endless.resize(MAX_RESPONSE + 10, b'a');
        assert_eq!(
            read_response(&endless, false),
            Err(ResponseError::HeadTooLarge)
        );
    }

    #[test]
    fn an_exchange_over_tcp_reads_the_answer() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let (done, wait) = std::sync::mpsc::channel::<()>();
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().unwrap();
            let mut head = [0u8; 64];
            let n = conn.read(&mut head).unwrap();
            assert!(head[..n].starts_with(b"POST /"));
            // Answer without reading the rest, and keep the connection open, as a
            // receiver refusing early may: the sender must not wait for its write.
            conn.write_all(
                b"HTTP/1.1 413 Payload Too Large\r\ncontent-length: 15\r\n\r\nbody.too_large\n",
            )
            .unwrap();
            let _ = wait.recv();
        });
        let mut request = b"POST / HTTP/1.1\r\nContent-Length: 4000000\r\n\r\n".to_vec();
        request.resize(4_000_000, b'x');
        let response = exchange(addr, &request, Duration::from_secs(10)).unwrap();
        assert_eq!((response.status, response.code()), (413, "body.too_large"));
        done.send(()).unwrap();
        server.join().unwrap();

        let absent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = absent.local_addr().unwrap();
        drop(absent);
        let err = exchange(addr, b"GET / HTTP/1.1\r\n\r\n", Duration::from_secs(5)).unwrap_err();
        assert_eq!(err.to_string(), "cannot connect: connection refused");
    }
}
