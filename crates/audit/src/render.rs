//! Rendering a case into the exact bytes of a request: signed live with a secret and a
//! time ([`Case::render`]), or written as a fixture template in the placeholder language
//! of `fixtures/hostile/README.md` ([`Case::template_text`]).

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use dronehook_protocol::{BodyDigest, Secret};
use hmac::{Hmac, Mac as _};
use sha2::{Digest as _, Sha256, Sha512};

use crate::catalog::{
    Carrier, Case, Connection, Damage, DateSpec, DigestSpec, Framing, Key, NONCE_MARKER, Sign,
    Template, Value,
};

/// What a rendering needs: the secret, the time, and where the receiver is.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RenderContext {
    /// The receiver's secret.
    pub secret: Secret,
    /// The send time (the `Date` header and the signature are computed for it).
    pub now: SystemTime,
    /// The `Host` header.
    pub host: String,
    /// The receiver's path, such as `/` or `/hooks/drone`.
    pub base_path: String,
    /// Replaces [`NONCE_MARKER`] in bodies: a value unique to this run of the catalog.
    pub nonce: String,
}

impl RenderContext {
    /// A context with host `localhost`, base path `/` and nonce `0`.
    pub fn new(secret: impl Into<Secret>, now: SystemTime) -> Self {
        RenderContext {
            secret: secret.into(),
            now,
            host: "localhost".into(),
            base_path: "/".into(),
            nonce: "0".into(),
        }
    }

    /// Sets the `Host` header.
    pub fn host(mut self, host: impl Into<String>) -> Self {
        self.host = host.into();
        self
    }

    /// Sets the receiver's path.
    pub fn base_path(mut self, path: impl Into<String>) -> Self {
        self.base_path = path.into();
        self
    }

    /// Sets the nonce.
    pub fn nonce(mut self, nonce: impl Into<String>) -> Self {
        self.nonce = nonce.into();
        self
    }
}

impl Case {
    /// The complete raw HTTP/1.1 request, signed with `ctx.secret` at `ctx.now`
    /// (for a replay, the first copy).
    ///
    /// A pipelined case renders as all its requests back to back, as they are written
    /// on its one connection; a raw case as its bytes.
    pub fn render(&self, ctx: &RenderContext) -> Vec<u8> {
        self.build(&Mode::Live(ctx))
    }

    fn build(&self, mode: &Mode<'_>) -> Vec<u8> {
        match &self.connection {
            Connection::Raw(bytes) => bytes.to_vec(),
            Connection::Pipelined(more) => {
                let mut out = self.request.build(mode, self.request.target, false);
                for (i, next) in more.iter().enumerate() {
                    if matches!(mode, Mode::Template) {
                        out.extend_from_slice(PIPELINE_SEPARATOR);
                    }
                    let last = i + 1 == more.len();
                    out.extend_from_slice(&next.request.build(mode, next.request.target, last));
                }
                out
            }
            _ => self.request.build(mode, self.request.target, true),
        }
    }

    /// Every copy to send: one for most cases, [`Replay::copies`](crate::Replay::copies) for a replay. The
    /// copies are signed once and are identical but for a [`Replay::retarget`](crate::Replay::retarget).
    pub fn render_copies(&self, ctx: &RenderContext) -> Vec<Vec<u8>> {
        let first = self.render(ctx);
        let Some(replay) = &self.replay else {
            return vec![first];
        };
        let mut out = Vec::with_capacity(replay.copies);
        let later = if replay.retarget.is_none() && replay.later_damage.is_empty() {
            first.clone()
        } else {
            let mut template = self.request.clone();
            template.damage.extend(replay.later_damage.iter().cloned());
            template.build(
                &Mode::Live(ctx),
                replay.retarget.unwrap_or(self.request.target),
                true,
            )
        };
        out.push(first);
        for _ in 1..replay.copies {
            out.push(later.clone());
        }
        out
    }

    /// The request as a template for `fixtures/hostile/NAME.http`, in the placeholder
    /// language of `fixtures/hostile/README.md`: `{{date}}`, `{{date:-600}}`,
    /// `{{digest}}`, `{{content-length}}`, `{{signature}}` and
    /// `{{signature-b64:LIST}}` (signed over the headers as written, with the fixture
    /// runner's secret), plus `{{date-rfc850:N}}` and `{{date-asctime:N}}` for the
    /// obsolete date forms. Host is `localhost`, the base path `/`, the nonce `0`.
    /// A wrong-secret signature is written as a fixed base64 value, which no secret
    /// produces in practice.
    ///
    /// The requests of a pipelined case are separated by a line `{{pipelined}}` (the
    /// line break before it is not part of the body before it); a raw case's bytes
    /// are written as they are.
    pub fn template_text(&self) -> Vec<u8> {
        self.build(&Mode::Template)
    }
}

/// Between the requests of a pipelined case in its fixture template.
const PIPELINE_SEPARATOR: &[u8] = b"\r\n{{pipelined}}\r\n";

/// Live rendering, or the placeholder text for fixtures.
enum Mode<'a> {
    Live(&'a RenderContext),
    Template,
}

/// Fills in the parts of a header value that depend on the time.
fn date_value(spec: DateSpec, mode: &Mode<'_>) -> String {
    let at = |offset: i64| match mode {
        Mode::Live(ctx) => {
            let delta = Duration::from_secs(offset.unsigned_abs());
            if offset < 0 {
                ctx.now.checked_sub(delta).unwrap_or(SystemTime::UNIX_EPOCH)
            } else {
                ctx.now + delta
            }
        }
        Mode::Template => SystemTime::UNIX_EPOCH,
    };
    let offset_arg = |offset: i64| match offset {
        0 => String::new(),
        n if n > 0 => format!(":+{n}"),
        n => format!(":{n}"),
    };
    match (spec, mode) {
        (DateSpec::Literal(text), _) => text.to_owned(),
        (DateSpec::Offset(n), Mode::Template) => format!("{{{{date{}}}}}", offset_arg(n)),
        (DateSpec::Rfc850(n), Mode::Template) => {
            format!("{{{{date-rfc850{}}}}}", offset_arg(n))
        }
        (DateSpec::Asctime(n), Mode::Template) => {
            format!("{{{{date-asctime{}}}}}", offset_arg(n))
        }
        (DateSpec::Offset(n), Mode::Live(_)) => dronehook_protocol::http_date(at(n)),
        (DateSpec::Rfc850(n), Mode::Live(_)) => rfc850_date(at(n)),
        (DateSpec::Asctime(n), Mode::Live(_)) => asctime_date(at(n)),
    }
}

/// The parts of an IMF-fixdate (`Wed, 01 Jan 2020 00:00:00 GMT`): weekday, day,
/// month, year, time.
fn imf_parts(t: SystemTime) -> (String, String, String, String, String) {
    let imf = dronehook_protocol::http_date(t);
    let mut words = imf.split([' ', ',']).filter(|w| !w.is_empty());
    let mut next = || words.next().unwrap_or_default().to_owned();
    (next(), next(), next(), next(), next())
}

/// RFC 850's date form: `Sunday, 06-Nov-94 08:49:37 GMT`.
pub fn rfc850_date(t: SystemTime) -> String {
    let (weekday, day, month, year, time) = imf_parts(t);
    let long = match weekday.as_str() {
        "Mon" => "Monday",
        "Tue" => "Tuesday",
        "Wed" => "Wednesday",
        "Thu" => "Thursday",
        "Fri" => "Friday",
        "Sat" => "Saturday",
        _ => "Sunday",
    };
    let yy = &year[year.len().saturating_sub(2)..];
    format!("{long}, {day}-{month}-{yy} {time} GMT")
}

/// C's asctime form: `Sun Nov  6 08:49:37 1994` (the day padded with a space).
pub fn asctime_date(t: SystemTime) -> String {
    let (weekday, day, month, year, time) = imf_parts(t);
    let day = day.trim_start_matches('0');
    format!("{weekday} {month} {day:>2} {time} {year}")
}

fn digest_value(spec: DigestSpec, body: &[u8]) -> String {
    let sha256 = BodyDigest::of(body);
    let b64 = |bytes: &[u8]| STANDARD.encode(bytes);
    match spec {
        DigestSpec::Sha256 => sha256.header_value(),
        DigestSpec::Sha256LowerCase => format!("sha-256={}", b64(sha256.as_bytes())),
        DigestSpec::Sha512 => format!("SHA-512={}", b64(&Sha512::digest(body))),
        DigestSpec::Sha256AndWrongSha512 => format!(
            "{},SHA-512={}",
            sha256.header_value(),
            b64(&Sha512::digest(b"not the body"))
        ),
        DigestSpec::WrongSha512AndSha256 => format!(
            "SHA-512={},{}",
            b64(&Sha512::digest(b"not the body")),
            sha256.header_value()
        ),
        DigestSpec::Sha256Of(other) => BodyDigest::of(other).header_value(),
        DigestSpec::Sha256Hex => format!("SHA-256={}", sha256.to_hex()),
        DigestSpec::Weak(alg, len) => {
            let bytes: Vec<u8> = sha256
                .as_bytes()
                .iter()
                .copied()
                .cycle()
                .take(len)
                .collect();
            format!("{alg}={}", b64(&bytes))
        }
        DigestSpec::Literal(text) => text.to_owned(),
    }
}

/// The base64 HMAC-SHA256 of the signing string: `name: value` lines for the listed
/// names (lower-cased), values of a repeated header joined with `, `, a header the
/// request lacks signed as empty, `(request-target)` from the request line.
fn hmac_b64(
    secret: &[u8],
    names: &str,
    method: &str,
    target: &str,
    headers: &[(String, String)],
) -> String {
    let mut lines = Vec::new();
    for name in names.split_whitespace() {
        let name = name.to_ascii_lowercase();
        let value = if name == "(request-target)" {
            format!("{} {target}", method.to_ascii_lowercase())
        } else {
            headers
                .iter()
                .filter(|(n, _)| n.eq_ignore_ascii_case(&name))
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        };
        lines.push(format!("{name}: {value}"));
    }
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).unwrap_or_else(|_| unreachable!());
    mac.update(lines.join("\n").as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// The same base64 with the unused low bits of its last character set: a strict
/// decoder refuses it, a lenient one reads the same bytes. Unchanged when the text has
/// no unused bits (no padding).
pub(crate) fn non_canonical(b64: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let data = b64.trim_end_matches('=');
    let padding = b64.len() - data.len();
    let unused_bit = match padding {
        1 | 2 => 1,
        _ => return b64.to_owned(),
    };
    let Some(last) = data.bytes().last() else {
        return b64.to_owned();
    };
    let Some(index) = ALPHABET.iter().position(|&c| c == last) else {
        return b64.to_owned();
    };
    let mut out = data[..data.len() - 1].to_owned();
    out.push(char::from(ALPHABET[index | unused_bit]));
    out.push_str(&b64[data.len()..]);
    out
}

/// A value no secret gives in practice, for wrong-secret signatures in templates.
const WRONG_SIGNATURE_TEXT: &str = "d3Jvbmctc2VjcmV0LXdyb25nLXNlY3JldC13cm9uZyE=";

/// `base` and a relative target: `""` is the base, `?q` a query on it, `x` a path
/// below it.
fn join_target(base: &str, target: &str) -> String {
    let base = if base.starts_with('/') {
        base.to_owned()
    } else {
        format!("/{base}")
    };
    if target.is_empty() || target.starts_with('?') {
        format!("{base}{target}")
    } else {
        format!("{}/{target}", base.trim_end_matches('/'))
    }
}

fn chunk(body: &[u8], size: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + body.len() / size.max(1) * 8 + 8);
    for piece in body.chunks(size.max(1)) {
        out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

impl Template {
    /// The request; `close` asks for the connection to be closed after it.
    fn build(&self, mode: &Mode<'_>, target: &str, close: bool) -> Vec<u8> {
        let (host, base, nonce) = match mode {
            Mode::Live(ctx) => (
                ctx.host.as_str(),
                ctx.base_path.as_str(),
                ctx.nonce.as_str(),
            ),
            Mode::Template => ("localhost", "/", "0"),
        };
        let target = join_target(base, target);
        let signed_body = replace_nonce(&self.body, nonce);
        let mut body = signed_body.clone();
        let mut body_replaced = false;
        for damage in &self.damage {
            if let Damage::ReplaceBody(other) = damage {
                body = replace_nonce(other, nonce);
                body_replaced = true;
            }
        }
        let length_framed = matches!(self.framing, Framing::ContentLength);

        // The header lines as sent, and (for templates) as the fixture runner signs them.
        let mut headers: Vec<(String, String)> = Vec::with_capacity(self.headers.len() + 4);
        for (name, value) in &self.headers {
            let text = match value {
                Value::Text(text) => text.clone(),
                Value::Date(spec) => date_value(*spec, mode),
                Value::Digest(DigestSpec::Sha256)
                    if matches!(mode, Mode::Template) && length_framed && !body_replaced =>
                {
                    "{{digest}}".to_owned()
                }
                Value::Digest(spec) => digest_value(*spec, &signed_body),
            };
            headers.push(((*name).to_owned(), text));
        }

        if let Some(sign) = &self.sign {
            let names = sign.headers.unwrap_or("date");
            let noncanonical = self.damage.contains(&Damage::NonCanonicalSignature);
            let reversed = self.damage.contains(&Damage::ReorderParameters);
            let carrier = if self.damage.contains(&Damage::MoveToAuthorization) {
                Carrier::Authorization
            } else {
                sign.carrier
            };
            let drone_params = sign.key_id == Some(dronehook_protocol::DRONE_KEY_ID)
                && sign.algorithm == Some(dronehook_protocol::ALGORITHM)
                && sign.headers == Some("date digest")
                && sign.secret == Key::Right;
            let signature = match (mode, sign.secret) {
                (Mode::Live(ctx), Key::Right) => {
                    hmac_b64(ctx.secret.expose(), names, self.method, &target, &headers)
                }
                (Mode::Live(ctx), Key::Wrong) => {
                    let mut wrong = ctx.secret.expose().to_vec();
                    wrong.extend_from_slice(b"-wrong");
                    hmac_b64(&wrong, names, self.method, &target, &headers)
                }
                (Mode::Template, Key::Right) if noncanonical => {
                    format!("{{{{signature-b64-noncanonical:{names}}}}}")
                }
                (Mode::Template, Key::Right) => format!("{{{{signature-b64:{names}}}}}"),
                (Mode::Template, Key::Wrong) => WRONG_SIGNATURE_TEXT.to_owned(),
            };
            let signature = match mode {
                Mode::Live(_) if noncanonical => non_canonical(&signature),
                _ => signature,
            };
            let signature = self
                .damage
                .iter()
                .find_map(|d| match d {
                    Damage::SignatureValue(v) => Some((*v).to_owned()),
                    _ => None,
                })
                .unwrap_or(signature);
            let params = match mode {
                // The runner's `{{signature}}` is Drone's whole value; edits of the
                // value need the parameters written out around the base64.
                Mode::Template if drone_params && !self.damage.iter().any(Damage::edits_value) => {
                    "{{signature}}".to_owned()
                }
                _ => render_params(sign, &signature, reversed),
            };
            let (name, mut value) = match carrier {
                Carrier::Signature => ("Signature", params),
                Carrier::Authorization => ("Authorization", format!("Signature {params}")),
            };
            for damage in &self.damage {
                match damage {
                    Damage::AppendToSignature(text) => value.push_str(text),
                    Damage::TruncateSignature(n) => {
                        let keep = value.len().saturating_sub(*n);
                        value.truncate(keep);
                    }
                    Damage::ReplaceInSignature(from, to) => {
                        value = value.replacen(from, to, 1);
                    }
                    _ => {}
                }
            }
            headers.push((name.to_owned(), value.clone()));
            for damage in &self.damage {
                match damage {
                    Damage::CopyToAuthorization => {
                        headers.push(("Authorization".into(), format!("Signature {value}")));
                    }
                    Damage::SignatureTwice => headers.push((name.to_owned(), value.clone())),
                    _ => {}
                }
            }
        }

        let mut payload = body.clone();
        match self.framing {
            Framing::ContentLength => {
                let length = match mode {
                    Mode::Template if !body_replaced => "{{content-length}}".to_owned(),
                    _ => body.len().to_string(),
                };
                headers.push(("Content-Length".into(), length));
            }
            Framing::DeclaredOnly(n) => {
                headers.push(("Content-Length".into(), n.to_string()));
                payload.clear();
            }
            Framing::Chunked(size) => {
                headers.push(("Transfer-Encoding".into(), "chunked".into()));
                payload = chunk(&body, size);
            }
            Framing::ChunkedAndLength(size) => {
                headers.push(("Transfer-Encoding".into(), "chunked".into()));
                headers.push(("Content-Length".into(), body.len().to_string()));
                payload = chunk(&body, size);
            }
            Framing::Codings(values, size) => {
                for value in values {
                    headers.push(("Transfer-Encoding".into(), (*value).to_owned()));
                }
                payload = chunk(&body, size);
            }
            Framing::TwoLengths => {
                headers.push(("Content-Length".into(), body.len().to_string()));
                headers.push(("Content-Length".into(), (body.len() + 1).to_string()));
            }
            Framing::SignedLength => {
                headers.push(("Content-Length".into(), format!("+{}", body.len())));
            }
            Framing::ChunkSizeOverflow => {
                headers.push(("Transfer-Encoding".into(), "chunked".into()));
                payload = b"10000000000000000\r\n".to_vec();
                payload.extend_from_slice(&body);
                payload.extend_from_slice(b"\r\n0\r\n\r\n");
            }
        }
        // One request per connection keeps every reader simple, ours and the fixture
        // runner's: the response ends when the connection does. Only the requests
        // before the last of a pipelined case leave it open.
        if close {
            headers.push(("Connection".into(), "close".into()));
        }

        let mut out = Vec::with_capacity(payload.len() + 1024);
        out.extend_from_slice(format!("{} {target} HTTP/1.1\r\n", self.method).as_bytes());
        out.extend_from_slice(format!("Host: {host}\r\n").as_bytes());
        for (name, value) in &headers {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value.as_bytes());
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(&payload);
        out
    }
}

/// Writes the parameters in Drone's order: `keyId`, `algorithm`, `signature`,
/// `headers` (or in the reverse order).
fn render_params(sign: &Sign, signature: &str, reversed: bool) -> String {
    let mut parts = Vec::with_capacity(4);
    if let Some(id) = sign.key_id {
        parts.push(format!("keyId=\"{id}\""));
    }
    if let Some(alg) = sign.algorithm {
        parts.push(format!("algorithm=\"{alg}\""));
    }
    parts.push(format!("signature=\"{signature}\""));
    if let Some(list) = sign.headers {
        parts.push(format!("headers=\"{list}\""));
    }
    if reversed {
        parts.reverse();
    }
    parts.join(",")
}

fn replace_nonce(body: &[u8], nonce: &str) -> Vec<u8> {
    let marker = NONCE_MARKER.as_bytes();
    let mut out = Vec::with_capacity(body.len() + nonce.len());
    let mut rest = body;
    while let Some(i) = rest.windows(marker.len()).position(|w| w == marker) {
        out.extend_from_slice(&rest[..i]);
        out.extend_from_slice(nonce.as_bytes());
        rest = &rest[i + marker.len()..];
    }
    out.extend_from_slice(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn obsolete_date_forms() {
        // 1994-11-06T08:49:37Z, RFC 9110's example.
        let t = SystemTime::UNIX_EPOCH + Duration::from_secs(784_111_777);
        assert_eq!(rfc850_date(t), "Sunday, 06-Nov-94 08:49:37 GMT");
        assert_eq!(asctime_date(t), "Sun Nov  6 08:49:37 1994");
        assert!(httpdate::parse_http_date(&rfc850_date(t)).is_ok());
        assert_eq!(httpdate::parse_http_date(&asctime_date(t)).ok(), Some(t));
    }

    #[test]
    fn targets_join_the_base_path() {
        assert_eq!(join_target("/", ""), "/");
        assert_eq!(join_target("/", "?x=1"), "/?x=1");
        assert_eq!(join_target("/", "elsewhere"), "/elsewhere");
        assert_eq!(join_target("/hooks/", "elsewhere"), "/hooks/elsewhere");
        assert_eq!(join_target("hooks", "?x=1"), "/hooks?x=1");
    }

    #[test]
    fn chunks_are_framed() {
        assert_eq!(
            chunk(b"abcde", 2),
            b"2\r\nab\r\n2\r\ncd\r\n1\r\ne\r\n0\r\n\r\n"
        );
        assert_eq!(chunk(b"", 2), b"0\r\n\r\n");
    }

    #[test]
    fn non_canonical_base64_decodes_leniently_to_the_same_bytes() {
        use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
        let canonical = STANDARD.encode([7u8; 32]);
        let loose = non_canonical(&canonical);
        assert_ne!(loose, canonical);
        assert_eq!(loose.len(), canonical.len());
        assert!(STANDARD.decode(&loose).is_err());
        let lenient = GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            GeneralPurposeConfig::new()
                .with_decode_allow_trailing_bits(true)
                .with_decode_padding_mode(DecodePaddingMode::Indifferent),
        );
        assert_eq!(lenient.decode(&loose).unwrap(), [7u8; 32]);
        assert_eq!(non_canonical("AAAA"), "AAAA");
    }

    #[test]
    fn nonces_are_replaced() {
        assert_eq!(replace_nonce(b"a{{nonce}}b{{nonce}}", "7"), b"a7b7");
    }
}
