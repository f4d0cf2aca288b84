//! The `Signature` header's grammar (draft-cavage-http-signatures-10 §2.1):
//! `name="value"` parameters separated by commas. Written by hand because it is
//! ours to get exactly right: it reads attacker-controlled bytes before anything
//! is authenticated, so every input has a defined outcome and none panics.

use std::borrow::Cow;
use std::fmt;

/// The longest `Signature` header accepted. Drone's is about 130 bytes; a limit keeps
/// a hostile header from costing more than a normal one.
pub const MAX_HEADER_LEN: usize = 8 * 1024;

/// The parameters of a `Signature` header (or of `Authorization: Signature ...`).
#[derive(Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub struct SignatureParams {
    /// `keyId`: which key the sender used. Drone always sends `hmac-key`.
    pub key_id: String,
    /// `algorithm`, if given. Verification is pinned to `hmac-sha256` whatever this says.
    pub algorithm: Option<String>,
    /// `headers`: the signed headers in signing order, lower-cased. `None` when the
    /// parameter is absent, which the draft reads as `date` alone.
    pub headers: Option<Vec<String>>,
    /// `signature`: the base64 text of the signature, not yet decoded.
    pub signature: String,
    /// `created` (later drafts), if given.
    pub created: Option<i64>,
    /// `expires` (later drafts), if given.
    pub expires: Option<i64>,
}

impl SignatureParams {
    /// Parameters with the given key id and signature and nothing else.
    pub fn new(key_id: impl Into<String>, signature: impl Into<String>) -> Self {
        SignatureParams {
            key_id: key_id.into(),
            algorithm: None,
            headers: None,
            signature: signature.into(),
            created: None,
            expires: None,
        }
    }

    /// The signed header list, with the draft's default (`date`) when absent.
    pub fn signed_headers(&self) -> Vec<&str> {
        match &self.headers {
            Some(list) => list.iter().map(String::as_str).collect(),
            None => vec!["date"],
        }
    }

    /// Renders the header value in the order Drone's signer writes it:
    /// `keyId`, `algorithm`, `signature`, `headers`, then `created` and `expires`.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(128);
        push_param(&mut out, "keyId", &self.key_id);
        if let Some(a) = &self.algorithm {
            push_param(&mut out, "algorithm", a);
        }
        push_param(&mut out, "signature", &self.signature);
        if let Some(h) = &self.headers {
            push_param(&mut out, "headers", &h.join(" "));
        }
        if let Some(c) = self.created {
            out.push_str(",created=");
            out.push_str(&c.to_string());
        }
        if let Some(e) = self.expires {
            out.push_str(",expires=");
            out.push_str(&e.to_string());
        }
        out
    }

    /// Parses a `Signature` header value. Parameter names are case-insensitive;
    /// unknown parameters are ignored; a parameter given twice, a value without
    /// closing quote, anything between parameters other than a comma and spaces,
    /// non-ASCII bytes and headers over [`MAX_HEADER_LEN`] are errors.
    pub fn parse(input: &str) -> Result<SignatureParams, ParseError> {
        Parser::new(input).parse().map(Raw::into_owned)
    }

    /// Parses an `Authorization` header value of the `Signature` scheme.
    pub fn parse_authorization(input: &str) -> Result<SignatureParams, ParseError> {
        Raw::parse_authorization(input).map(Raw::into_owned)
    }
}

/// The parameters as the parser read them, borrowed from the header wherever they
/// had no escapes: what verification reads, without a copy of each value.
#[derive(Debug)]
pub(crate) struct Raw<'a> {
    pub(crate) key_id: Cow<'a, str>,
    pub(crate) algorithm: Option<Cow<'a, str>>,
    /// The signed header names, lower-cased.
    pub(crate) headers: Option<Vec<Cow<'a, str>>>,
    pub(crate) signature: Cow<'a, str>,
    pub(crate) created: Option<i64>,
    pub(crate) expires: Option<i64>,
}

impl<'a> Raw<'a> {
    /// See [`SignatureParams::parse`].
    pub(crate) fn parse(input: &'a str) -> Result<Self, ParseError> {
        Parser::new(input).parse()
    }

    /// See [`SignatureParams::parse_authorization`].
    pub(crate) fn parse_authorization(input: &'a str) -> Result<Self, ParseError> {
        let trimmed = input.trim_start();
        let offset = input.len() - trimmed.len();
        let scheme_end = trimmed.find(' ').unwrap_or(trimmed.len());
        if !trimmed[..scheme_end].eq_ignore_ascii_case("signature") {
            return Err(ParseError {
                position: offset,
                reason: Reason::NotSignatureScheme,
            });
        }
        let rest = &trimmed[scheme_end..];
        Parser::new(rest).parse().map_err(|mut e| {
            e.position += offset + scheme_end;
            e
        })
    }

    fn into_owned(self) -> SignatureParams {
        SignatureParams {
            key_id: self.key_id.into_owned(),
            algorithm: self.algorithm.map(Cow::into_owned),
            headers: self
                .headers
                .map(|list| list.into_iter().map(Cow::into_owned).collect()),
            signature: self.signature.into_owned(),
            created: self.created,
            expires: self.expires,
        }
    }
}

impl fmt::Display for SignatureParams {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.render())
    }
}

pub(crate) fn push_param(out: &mut String, name: &str, value: &str) {
    if !out.is_empty() {
        out.push(',');
    }
    out.push_str(name);
    out.push_str("=\"");
    if value.bytes().any(|b| b == b'"' || b == b'\\') {
        for c in value.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
    } else {
        // The usual value (a key id, base64, header names) has nothing to escape.
        out.push_str(value);
    }
    out.push('"');
}

/// Why a `Signature` header could not be parsed, and at which byte.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ParseError {
    position: usize,
    reason: Reason,
}

#[derive(Clone, PartialEq, Eq, Debug)]
enum Reason {
    TooLong,
    NonAscii,
    Empty,
    ExpectedName,
    ExpectedEquals,
    ExpectedValue,
    Unterminated,
    ExpectedComma,
    Duplicate(String),
    MissingParam(&'static str),
    BadInteger(&'static str),
    BadHeaderName,
    NotSignatureScheme,
}

impl ParseError {
    /// The byte offset in the header value where the problem was found.
    pub fn position(&self) -> usize {
        self.position
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let at = self.position;
        match &self.reason {
            Reason::TooLong => write!(f, "the header is longer than {MAX_HEADER_LEN} bytes"),
            Reason::NonAscii => write!(f, "non-ASCII or control byte at byte {at}"),
            Reason::Empty => f.write_str("the header is empty"),
            Reason::ExpectedName => write!(f, "expected a parameter name at byte {at}"),
            Reason::ExpectedEquals => {
                write!(f, "expected `=` after the parameter name at byte {at}")
            }
            Reason::ExpectedValue => write!(f, "expected a quoted value at byte {at}"),
            Reason::Unterminated => write!(f, "unterminated quoted value starting at byte {at}"),
            Reason::ExpectedComma => write!(f, "expected `,` between parameters at byte {at}"),
            Reason::Duplicate(name) => write!(f, "parameter `{name}` given twice (at byte {at})"),
            Reason::MissingParam(name) => write!(f, "the `{name}` parameter is missing"),
            Reason::BadInteger(name) => write!(f, "`{name}` is not an integer (at byte {at})"),
            Reason::BadHeaderName => write!(
                f,
                "the `headers` list has an empty or invalid name at byte {at}"
            ),
            Reason::NotSignatureScheme => write!(
                f,
                "the Authorization header does not use the `Signature` scheme (expected `Signature keyId=\"...\",...`)"
            ),
        }
    }
}

impl std::error::Error for ParseError {}

struct Parser<'a> {
    input: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Parser<'a> {
    fn new(input: &'a str) -> Self {
        Parser {
            input,
            bytes: input.as_bytes(),
            pos: 0,
        }
    }

    fn err(position: usize, reason: Reason) -> ParseError {
        ParseError { position, reason }
    }

    fn skip_ows(&mut self) {
        while matches!(self.bytes.get(self.pos), Some(b' ' | b'\t')) {
            self.pos += 1;
        }
    }

    fn parse(mut self) -> Result<Raw<'a>, ParseError> {
        if self.bytes.len() > MAX_HEADER_LEN {
            return Err(Self::err(MAX_HEADER_LEN, Reason::TooLong));
        }
        // A branch-free pass the compiler vectorises; the position only on failure.
        let allowed = |b: u8| (b == b'\t') | (0x20..0x7f).contains(&b);
        if !self.bytes.iter().fold(true, |ok, &b| ok & allowed(b))
            && let Some(i) = self.bytes.iter().position(|&b| !allowed(b))
        {
            return Err(Self::err(i, Reason::NonAscii));
        }
        let mut key_id = None;
        let mut algorithm = None;
        let mut headers = None;
        let mut signature = None;
        let mut created = None;
        let mut expires = None;

        self.skip_ows();
        if self.pos == self.bytes.len() {
            return Err(Self::err(self.pos, Reason::Empty));
        }
        loop {
            let name_start = self.pos;
            while self.bytes.get(self.pos).is_some_and(|b| is_tchar(*b)) {
                self.pos += 1;
            }
            if self.pos == name_start {
                return Err(Self::err(self.pos, Reason::ExpectedName));
            }
            let name = &self.input[name_start..self.pos];
            self.skip_ows();
            if self.bytes.get(self.pos) != Some(&b'=') {
                return Err(Self::err(self.pos, Reason::ExpectedEquals));
            }
            self.pos += 1;
            self.skip_ows();
            let value = self.value()?;

            // Names compare case-insensitively, without lower-casing a copy.
            let is = |known: &str| name.eq_ignore_ascii_case(known);
            let slot: Option<&mut Option<Cow<'a, str>>> = if is("keyid") {
                Some(&mut key_id)
            } else if is("algorithm") {
                Some(&mut algorithm)
            } else if is("headers") {
                Some(&mut headers)
            } else if is("signature") {
                Some(&mut signature)
            } else if is("created") {
                Some(&mut created)
            } else if is("expires") {
                Some(&mut expires)
            } else {
                // Unknown parameters are ignored, as the draft asks.
                None
            };
            if let Some(slot) = slot {
                if slot.is_some() {
                    return Err(Self::err(name_start, Reason::Duplicate(name.to_owned())));
                }
                *slot = Some(value);
            }

            self.skip_ows();
            match self.bytes.get(self.pos) {
                None => break,
                Some(b',') => {
                    self.pos += 1;
                    self.skip_ows();
                }
                Some(_) => return Err(Self::err(self.pos, Reason::ExpectedComma)),
            }
        }

        let len = self.bytes.len();
        let key_id = key_id.ok_or_else(|| Self::err(len, Reason::MissingParam("keyId")))?;
        let signature =
            signature.ok_or_else(|| Self::err(len, Reason::MissingParam("signature")))?;
        let headers = match headers {
            None => None,
            Some(Cow::Borrowed(list)) => Some(header_names(list, |n| n)?),
            // Escapes in the list: rare enough that its names are copies.
            Some(Cow::Owned(list)) => Some(header_names(&list, |n| n.into_owned().into())?),
        };
        let int =
            |v: Option<Cow<'a, str>>, name: &'static str| -> Result<Option<i64>, ParseError> {
                v.map(|s| {
                    s.parse::<i64>().map_err(|_| ParseError {
                        position: 0,
                        reason: Reason::BadInteger(name),
                    })
                })
                .transpose()
            };
        Ok(Raw {
            key_id,
            algorithm,
            headers,
            signature,
            created: int(created, "created")?,
            expires: int(expires, "expires")?,
        })
    }

    /// A quoted string (with `\` escapes) or, for `created`/`expires` style values,
    /// a bare token.
    fn value(&mut self) -> Result<Cow<'a, str>, ParseError> {
        match self.bytes.get(self.pos) {
            Some(b'"') => {
                let start = self.pos;
                self.pos += 1;
                // The usual value has no escapes: copy it in one piece.
                let rest = &self.bytes[self.pos..];
                if let Some(end) = memchr::memchr2(b'"', b'\\', rest)
                    && rest[end] == b'"'
                {
                    let value = &self.input[self.pos..self.pos + end];
                    self.pos += end + 1;
                    return Ok(Cow::Borrowed(value));
                }
                let mut out = String::new();
                loop {
                    match self.bytes.get(self.pos) {
                        None => return Err(Self::err(start, Reason::Unterminated)),
                        Some(b'"') => {
                            self.pos += 1;
                            return Ok(Cow::Owned(out));
                        }
                        Some(b'\\') => {
                            let Some(&next) = self.bytes.get(self.pos + 1) else {
                                return Err(Self::err(start, Reason::Unterminated));
                            };
                            out.push(next as char);
                            self.pos += 2;
                        }
                        Some(&b) => {
                            out.push(b as char);
                            self.pos += 1;
                        }
                    }
                }
            }
            Some(b) if is_tchar(*b) => {
                let start = self.pos;
                while self.bytes.get(self.pos).is_some_and(|b| is_tchar(*b)) {
                    self.pos += 1;
                }
                Ok(Cow::Borrowed(&self.input[start..self.pos]))
            }
            _ => Err(Self::err(self.pos, Reason::ExpectedValue)),
        }
    }
}

/// The names of a `headers` list, lower-cased: borrowed from `list` (through `keep`)
/// when they already are, as Drone's are.
fn header_names<'a, 'l>(
    list: &'l str,
    keep: impl Fn(Cow<'l, str>) -> Cow<'a, str>,
) -> Result<Vec<Cow<'a, str>>, ParseError> {
    let mut names = Vec::new();
    for name in list.split([' ', '\t']).filter(|s| !s.is_empty()) {
        if !name.bytes().all(|b| is_tchar(b) || b == b'(' || b == b')') {
            return Err(Parser::err(0, Reason::BadHeaderName));
        }
        names.push(keep(if name.bytes().any(|b| b.is_ascii_uppercase()) {
            Cow::Owned(name.to_ascii_lowercase())
        } else {
            Cow::Borrowed(name)
        }));
    }
    Ok(names)
}

/// RFC 7230 `tchar`: the characters of a token.
fn is_tchar(b: u8) -> bool {
    TCHAR[usize::from(b)]
}

/// [`is_tchar`] as a table: one load per byte of every parameter name.
static TCHAR: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        table[b] = c.is_ascii_alphanumeric()
            || matches!(
                c,
                b'!' | b'#'
                    | b'$'
                    | b'%'
                    | b'&'
                    | b'\''
                    | b'*'
                    | b'+'
                    | b'-'
                    | b'.'
                    | b'^'
                    | b'_'
                    | b'`'
                    | b'|'
                    | b'~'
            );
        b += 1;
    }
    table
};

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: &str) {
        let got = match SignatureParams::parse(input) {
            Ok(p) => format!("{p:?}"),
            Err(e) => format!("error: {e}"),
        };
        assert_eq!(got, expected, "input {input:?}");
    }

    #[test]
    fn parses_drone_header() {
        check(
            r#"keyId="hmac-key",algorithm="hmac-sha256",signature="Y3+K+rKwpbbQxWG+alUx8ikrK7d/c1vRLCwgnWCs7so=",headers="date digest""#,
            r#"SignatureParams { key_id: "hmac-key", algorithm: Some("hmac-sha256"), headers: Some(["date", "digest"]), signature: "Y3+K+rKwpbbQxWG+alUx8ikrK7d/c1vRLCwgnWCs7so=", created: None, expires: None }"#,
        );
    }

    #[test]
    fn grammar_edges() {
        check(
            r#" KEYID = "k" ,  Signature="c2ln" , Headers="(Request-Target) Date", x-ext="ignored""#,
            r#"SignatureParams { key_id: "k", algorithm: None, headers: Some(["(request-target)", "date"]), signature: "c2ln", created: None, expires: None }"#,
        );
        check(
            r#"keyId="a\"b",signature="s",created=1402170695,expires=1402170699"#,
            r#"SignatureParams { key_id: "a\"b", algorithm: None, headers: None, signature: "s", created: Some(1402170695), expires: Some(1402170699) }"#,
        );
        check(
            r#"keyId="a",keyid="b",signature="s""#,
            "error: parameter `keyid` given twice (at byte 10)",
        );
        check(
            r#"keyId="a",signature="s"#,
            "error: unterminated quoted value starting at byte 20",
        );
        check(
            r#"keyId="a" junk,signature="s""#,
            "error: expected `,` between parameters at byte 10",
        );
        check(
            r#"keyId="a",,signature="s""#,
            "error: expected a parameter name at byte 10",
        );
        check(
            "keyId=\"\u{e9}\",signature=\"s\"",
            "error: non-ASCII or control byte at byte 7",
        );
        check(
            r#"signature="s""#,
            "error: the `keyId` parameter is missing",
        );
        check(
            r#"keyId="k""#,
            "error: the `signature` parameter is missing",
        );
        check("", "error: the header is empty");
        check(
            r#"keyId="k",signature="s",created=soon"#,
            "error: `created` is not an integer (at byte 0)",
        );
        check(
            &format!("keyId=\"{}\",signature=\"s\"", "k".repeat(9000)),
            "error: the header is longer than 8192 bytes",
        );
    }

    #[test]
    fn documentation_header_is_a_clear_error() {
        // The example in Drone's documentation: no `Signature keyId="` prefix, no `headers`.
        let example = r#"hmac-key",algorithm="hmac-sha256",signature="QrS16+RlRsFjXn5IVW8tWz+3ZRAypjpNgzehEuvJksk="#;
        assert_eq!(
            SignatureParams::parse_authorization(example)
                .unwrap_err()
                .to_string(),
            "the Authorization header does not use the `Signature` scheme (expected `Signature keyId=\"...\",...`)"
        );
        assert_eq!(
            SignatureParams::parse(example).unwrap_err().to_string(),
            "expected `=` after the parameter name at byte 8"
        );
    }

    #[test]
    fn authorization_form() {
        let p = SignatureParams::parse_authorization(r#"Signature keyId="hmac-key",signature="s""#)
            .unwrap();
        assert_eq!(p.key_id, "hmac-key");
        let e = SignatureParams::parse_authorization(r#"Signature keyId="k",,"#).unwrap_err();
        assert_eq!(e.position(), 20);
    }
}
