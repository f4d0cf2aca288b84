//! Reading a captured raw HTTP/1.1 request (`verify --request FILE`) with `httparse`,
//! and writing one (`sign --format http`).

use dronehook_protocol::http::{HeaderMap, HeaderName, HeaderValue};

/// The most headers a captured request may have.
const MAX_HEADERS: usize = 128;

/// A parsed request.
#[derive(Debug)]
pub(crate) struct RawRequest {
    /// The method (`POST`).
    pub(crate) method: String,
    /// The request target (path and query).
    pub(crate) target: String,
    /// The headers, as sent.
    pub(crate) headers: HeaderMap,
    /// The body, de-chunked when it was sent chunked.
    pub(crate) body: Vec<u8>,
}

/// Parses a request. The body is framed by `Transfer-Encoding: chunked` when present,
/// else by `Content-Length` (bytes after it, such as an editor's final newline, are
/// ignored), else it is everything after the headers.
pub(crate) fn parse(bytes: &[u8]) -> Result<RawRequest, String> {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut slots);
    let head_len = match req.parse(bytes) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            return Err("the request ends before the blank line that closes its headers".into());
        }
        Err(httparse::Error::TooManyHeaders) => {
            return Err(format!("the request has more than {MAX_HEADERS} headers"));
        }
        Err(e) => return Err(format!("the request is not HTTP/1.x: {e}")),
    };
    let method = req.method.unwrap_or_default().to_owned();
    let target = req.path.unwrap_or_default().to_owned();
    let mut headers = HeaderMap::new();
    for h in req.headers.iter() {
        let name = HeaderName::from_bytes(h.name.as_bytes())
            .map_err(|_| format!("bad header name {:?}", h.name))?;
        let value = HeaderValue::from_bytes(h.value)
            .map_err(|_| format!("bad value in header {:?}", h.name))?;
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
        dechunk(rest)?
    } else if let Some(len) = content_length(&headers)? {
        if rest.len() < len {
            return Err(format!(
                "the body has {} bytes but Content-Length says {len}",
                rest.len()
            ));
        }
        rest[..len].to_vec()
    } else {
        rest.to_vec()
    };
    Ok(RawRequest {
        method,
        target,
        headers,
        body,
    })
}

fn content_length(headers: &HeaderMap) -> Result<Option<usize>, String> {
    let mut found: Option<usize> = None;
    for value in &headers.get_all("content-length") {
        let n = value
            .to_str()
            .ok()
            .and_then(|v| v.trim().parse::<usize>().ok())
            .ok_or("Content-Length is not a number")?;
        if found.is_some_and(|f| f != n) {
            return Err("the request has two different Content-Length headers".into());
        }
        found = Some(n);
    }
    Ok(found)
}

/// Decodes a chunked body; trailers are read past and dropped.
fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let (consumed, size) = match httparse::parse_chunk_size(rest) {
            Ok(httparse::Status::Complete(found)) => found,
            Ok(httparse::Status::Partial) => {
                return Err("the chunked body ends in the middle of a chunk size".into());
            }
            Err(_) => return Err("the chunked body has an invalid chunk size".into()),
        };
        rest = &rest[consumed..];
        if size == 0 {
            return Ok(body);
        }
        let size = usize::try_from(size).map_err(|_| "a chunk is too large".to_owned())?;
        if rest.len() < size {
            return Err("the chunked body ends in the middle of a chunk".into());
        }
        body.extend_from_slice(&rest[..size]);
        rest = &rest[size..];
        rest = rest
            .strip_prefix(b"\r\n")
            .or_else(|| rest.strip_prefix(b"\n"))
            .ok_or("a chunk is not followed by a line break")?;
    }
}

/// Writes a complete request: request line, `Host`, the given headers,
/// `Content-Length`, a blank line and the body.
pub(crate) fn render(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_and_sized_bodies() {
        let chunked = b"POST /hook HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;ext=1\r\nde\r\n0\r\nTrailer: t\r\n\r\n";
        let req = parse(chunked).unwrap();
        assert_eq!(req.body, b"abcde");
        assert_eq!(req.target, "/hook");
        let sized = b"POST / HTTP/1.1\nContent-Length: 2\n\nab\n";
        assert_eq!(parse(sized).unwrap().body, b"ab");
        let short = b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nab";
        assert_eq!(
            parse(short).unwrap_err(),
            "the body has 2 bytes but Content-Length says 5"
        );
    }
}
