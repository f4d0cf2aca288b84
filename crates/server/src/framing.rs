//! How a request's body is framed, and the answers to heads hyper refuses itself.
//!
//! **Transfer codings.** A body is taken as `Content-Length` bytes or as exactly one
//! `chunked` coding. Any other coding (`gzip, chunked`, or `gzip` and `chunked` on two
//! lines) is refused with 501 `transfer_encoding.unsupported`: hyper would de-chunk
//! and ignore the rest, so the receiver would verify other bytes than a proxy that
//! does decode them sees. `chunked` named more than once (RFC 9112 forbids it), or a
//! `Transfer-Encoding` naming nothing, is 400 `transport.malformed`. hyper keeps every
//! `Transfer-Encoding` line in the header map, so the service checks them there
//! ([`transfer_coding_refusal`]); a head whose last coding is not `chunked` never
//! reaches the service (hyper refuses it): the connection's reader reads the codings
//! of every head as it streams by (sniff.rs) and [`refused_head`] answers from that.
//!
//! **hyper's own refusals.** hyper answers a head it cannot parse by itself, with an
//! empty body: 400 (bad request line, header syntax, `Content-Length`, a
//! `Transfer-Encoding` whose last coding is not `chunked`), 414 (a target over 65,534
//! bytes), 431 (a head over [`MAX_HEAD_BYTES`] or with more than [`MAX_HEADERS`]
//! header lines). The connection's reader holds that answer back (sniff.rs) and the
//! connection answers with [`answer`] instead, the code in the body as in every other
//! refusal, and `Connection: close`.

use std::time::SystemTime;

use http::header::TRANSFER_ENCODING;
use http::{HeaderMap, StatusCode};

/// The most header lines a request head may have (hyper's default, set explicitly so
/// that an upgrade cannot change it unnoticed); more is 431 `headers.too_large`.
pub const MAX_HEADERS: usize = 100;

/// The most bytes hyper buffers while it reads a request head (hyper's default, 8 KiB
/// plus 4 KiB per header line allowed); a head still unfinished then is 431
/// `headers.too_large`. Drone's heads are under 1 KB.
pub const MAX_HEAD_BYTES: usize = 8192 + 4096 * 100;

/// A coding other than `chunked`.
const UNSUPPORTED: (StatusCode, &str) =
    (StatusCode::NOT_IMPLEMENTED, "transfer_encoding.unsupported");

/// Framing that cannot be read one way only.
const MALFORMED: (StatusCode, &str) = (StatusCode::BAD_REQUEST, "transport.malformed");

/// The refusal a request's `Transfer-Encoding` lines call for, if any: accepted only
/// when they are exactly one `chunked` (case-insensitive, optional whitespace).
pub(crate) fn transfer_coding_refusal(headers: &HeaderMap) -> Option<(StatusCode, &'static str)> {
    let mut values = headers.get_all(TRANSFER_ENCODING).iter();
    let first = values.next()?;
    // What chunked clients send, settled without splitting.
    if first.as_bytes() == b"chunked" && values.next().is_none() {
        return None;
    }
    codings(
        headers
            .get_all(TRANSFER_ENCODING)
            .iter()
            .map(http::HeaderValue::as_bytes),
    )
}

/// The refusal a list of `Transfer-Encoding` values calls for: any coding other than
/// `chunked` is unsupported, whatever else is named; otherwise `chunked` must be named
/// exactly once. Empty list elements are skipped, as RFC 9110 asks of recipients.
fn codings<'a>(values: impl Iterator<Item = &'a [u8]>) -> Option<(StatusCode, &'static str)> {
    let mut chunked = 0usize;
    for value in values {
        for coding in value.split(|b| *b == b',').map(<[u8]>::trim_ascii) {
            if coding.is_empty() {
                continue;
            }
            if !coding.eq_ignore_ascii_case(b"chunked") {
                return Some(UNSUPPORTED);
            }
            chunked += 1;
        }
    }
    (chunked != 1).then_some(MALFORMED)
}

/// The status and code for a head hyper refused with `status` (400, 414 or 431).
/// A 400 is a framing refusal when the head had both `Transfer-Encoding` and
/// `Content-Length` (`both_framings`: 400 `transport.malformed` as well) or named a
/// coding other than `chunked` (`other_coding`: 501), else a malformed head.
pub(crate) fn refused_head(
    status: u16,
    both_framings: bool,
    other_coding: bool,
) -> (StatusCode, &'static str) {
    match status {
        431 => (
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "headers.too_large",
        ),
        414 => (StatusCode::URI_TOO_LONG, "uri.too_long"),
        _ if other_coding && !both_framings => UNSUPPORTED,
        _ => MALFORMED,
    }
}

/// A whole answer with the code in its body, as every refusal has it, and
/// `Connection: close`.
pub(crate) fn answer(status: StatusCode, code: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {} {}\r\ncontent-type: text/plain; charset=utf-8\r\nconnection: close\r\n\
         content-length: {}\r\ndate: {}\r\n\r\n{code}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or(""),
        code.len() + 1,
        httpdate::fmt_http_date(SystemTime::now()),
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn te(values: &[&str]) -> Option<(StatusCode, &'static str)> {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(TRANSFER_ENCODING, v.parse().unwrap());
        }
        transfer_coding_refusal(&headers)
    }

    #[test]
    fn only_one_chunked_is_accepted() {
        assert_eq!(te(&[]), None);
        assert_eq!(te(&["chunked"]), None);
        assert_eq!(te(&["Chunked"]), None);
        assert_eq!(te(&[" chunked\t"]), None);
        assert_eq!(te(&["gzip, chunked"]), Some(UNSUPPORTED));
        assert_eq!(te(&["gzip", "chunked"]), Some(UNSUPPORTED));
        assert_eq!(te(&["chunked", "identity"]), Some(UNSUPPORTED));
        assert_eq!(te(&["chunked;q=1"]), Some(UNSUPPORTED));
        assert_eq!(te(&["chunked, chunked, gzip"]), Some(UNSUPPORTED));
        assert_eq!(te(&["chunked, chunked"]), Some(MALFORMED));
        assert_eq!(te(&["chunked", "CHUNKED"]), Some(MALFORMED));
        assert_eq!(te(&[""]), Some(MALFORMED));
    }

    #[test]
    fn refused_heads_get_their_code() {
        assert_eq!(refused_head(400, false, false), MALFORMED);
        assert_eq!(refused_head(400, false, true), UNSUPPORTED);
        assert_eq!(refused_head(400, true, true), MALFORMED);
        assert_eq!(
            refused_head(431, false, true),
            (
                StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
                "headers.too_large"
            )
        );
        assert_eq!(
            refused_head(414, false, false),
            (StatusCode::URI_TOO_LONG, "uri.too_long")
        );
    }

    #[test]
    fn answers_carry_their_code() {
        let a = String::from_utf8(answer(
            StatusCode::NOT_IMPLEMENTED,
            "transfer_encoding.unsupported",
        ))
        .unwrap();
        assert!(a.starts_with("HTTP/1.1 501 Not Implemented\r\n"), "{a}");
        assert!(a.contains("\r\nconnection: close\r\n"), "{a}");
        assert!(a.contains("\r\ncontent-length: 30\r\n"), "{a}");
        assert!(
            a.ends_with("\r\n\r\ntransfer_encoding.unsupported\n"),
            "{a}"
        );
    }
}
