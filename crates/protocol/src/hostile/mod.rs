//! The hostile-input catalog: requests a webhook receiver must refuse (and a few it
//! must accept), each with the outcome expected from `dronehook serve` and from
//! `dronehook verify`.
//!
//! It is the catalog's single source: `dronehook audit` sends it to any receiver,
//! the protocol's tests run it through [`Policy::verify_and_decode`](crate::Policy),
//! and `fixtures/hostile/` is written from [`Case::template_text`].
//!
//! A case is a request *template*: the request line, the header lines, the body, how
//! to sign it (header list, claimed algorithm, key id, right or wrong secret) and any
//! damage done after signing (the body replaced, a header duplicated, ...). Templates
//! are signed when they are rendered, with the caller's secret and time, so the
//! `Date` is fresh and any receiver can be tested with its own secret. Like the rest
//! of the crate this module reads no clock: [`RenderContext::now`] is a parameter.
//!
//! ```
//! use std::time::{Duration, UNIX_EPOCH};
//! use dronehook_protocol::hostile::{self, RenderContext};
//!
//! let case = hostile::get("digest_body_replaced").unwrap();
//! assert_eq!(case.server.to_string(), "401 digest.mismatch");
//! let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
//! let request = case.render(&RenderContext::new("s3cr3t", now));
//! assert!(request.starts_with(b"POST / HTTP/1.1\r\nHost: localhost\r\n"));
//! assert!(hostile::all().len() >= 48);
//! ```

mod cases;

use std::fmt;
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac as _};
use sha2::{Digest as _, Sha256, Sha512};

use crate::signature::BodyDigest;

/// Every case, grouped, in a stable order.
pub fn all() -> Vec<Case> {
    cases::all()
}

/// The case with this name.
pub fn get(name: &str) -> Option<Case> {
    all().into_iter().find(|c| c.name == name)
}

/// The marker in template bodies that [`RenderContext::nonce`] replaces, so that each
/// run of the catalog sends bodies the receiver has not seen (a receiver that keeps
/// accepted digests would otherwise answer every run after the first as a replay).
pub const NONCE_MARKER: &str = "{{nonce}}";

/// What part of a request a case attacks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Group {
    /// The `Signature` header itself: presence, grammar, value.
    Signature,
    /// The `keyId` parameter.
    KeyId,
    /// The `algorithm` parameter.
    Algorithm,
    /// The `headers` parameter: what the signature covers.
    Headers,
    /// The `Date` header.
    Date,
    /// The `Digest` header.
    Digest,
    /// The same request sent more than once.
    Replay,
    /// HTTP framing and metadata: method, lengths, encodings, media type.
    Transport,
    /// The (authentic) body.
    Body,
}

impl Group {
    /// Every group, in catalog order.
    pub const ALL: &'static [Group] = &[
        Group::Signature,
        Group::KeyId,
        Group::Algorithm,
        Group::Headers,
        Group::Date,
        Group::Digest,
        Group::Replay,
        Group::Transport,
        Group::Body,
    ];

    /// The group's name, as case names start with it (`key_id`, `digest`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Group::Signature => "signature",
            Group::KeyId => "key_id",
            Group::Algorithm => "algorithm",
            Group::Headers => "headers",
            Group::Date => "date",
            Group::Digest => "digest",
            Group::Replay => "replay",
            Group::Transport => "transport",
            Group::Body => "body",
        }
    }
}

impl fmt::Display for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a receiver answers: the HTTP status and the response body's code (its first
/// line; empty for an empty body).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ServerOutcome {
    /// The HTTP status.
    pub status: u16,
    /// The error code, such as `digest.mismatch`; empty when the body is empty.
    pub code: &'static str,
}

impl ServerOutcome {
    /// An outcome.
    pub const fn new(status: u16, code: &'static str) -> Self {
        ServerOutcome { status, code }
    }

    /// Whether the request is accepted (a 2xx status).
    pub fn is_accepted(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// Whether a response with this status and body matches: same status and, when
    /// a code is expected, the same first line of the body.
    pub fn matches(&self, status: u16, body: &[u8]) -> bool {
        status == self.status && response_code(body) == self.code
    }
}

/// The code a response body carries: its first line, trimmed (empty for an empty body).
pub fn response_code(body: &[u8]) -> &str {
    let text = match std::str::from_utf8(body) {
        Ok(t) => t,
        Err(e) => std::str::from_utf8(&body[..e.valid_up_to()]).unwrap_or_default(),
    };
    text.lines().next().unwrap_or_default().trim()
}

impl fmt::Display for ServerOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.code.is_empty() {
            write!(f, "{}", self.status)
        } else {
            write!(f, "{} {}", self.status, self.code)
        }
    }
}

/// What `dronehook verify` (that is, [`Policy::verify_and_decode`](crate::Policy))
/// says about a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum VerifyOutcome {
    /// The request is authentic and its body a payload.
    Valid,
    /// Refused with this code (a [`VerifyError`](crate::VerifyError) or
    /// [`DecodeError`](crate::DecodeError) code).
    Code(&'static str),
    /// The case is about HTTP transport (method, framing, encodings), which a
    /// verifier of captured requests does not see.
    NotApplicable,
}

impl fmt::Display for VerifyOutcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyOutcome::Valid => f.write_str("valid"),
            VerifyOutcome::Code(code) => f.write_str(code),
            VerifyOutcome::NotApplicable => f.write_str("not applicable"),
        }
    }
}

/// How a replay case sends its request more than once.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Replay {
    /// How many copies are sent, the first one included.
    pub copies: usize,
    /// Sent all at once (each on its own connection) rather than one after another.
    pub concurrent: bool,
    /// For the copies after the first, the target relative to the base path (such
    /// as `elsewhere`), instead of the case's own.
    pub retarget: Option<&'static str>,
    /// What every copy after the first is answered (when concurrent, no copy is
    /// "first": every copy gets [`Case::server`] or this, and both are the same).
    pub later: ServerOutcome,
    /// How many times the receiver's handler should run for all copies together.
    /// Only observable on a receiver whose handler one can watch, such as our own.
    pub handler_calls: usize,
}

/// One hostile request and its expected outcomes.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Case {
    /// A stable snake_case name that starts with its group, such as `digest_md5`.
    pub name: &'static str,
    /// What the case attacks.
    pub group: Group,
    /// What the request is, in one line.
    pub summary: &'static str,
    /// What `dronehook serve` answers (for a replay, the first copy).
    pub server: ServerOutcome,
    /// What `dronehook verify` says.
    pub verify: VerifyOutcome,
    /// What Drone's reference receiver (drone-go `plugin/webhook`, which checks only
    /// the signature) does with the request, in one line.
    pub reference: &'static str,
    /// The request.
    pub request: Template,
    /// Set for cases that send the request more than once.
    pub replay: Option<Replay>,
}

/// A request template: rendered with a secret and a time into exact bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Template {
    /// The method.
    pub method: &'static str,
    /// The target relative to the base path: empty for the base path itself,
    /// `?x=1` for a query, `elsewhere` for another path below it.
    pub target: &'static str,
    /// Header lines in order (after `Host`, before the signature). A name may repeat.
    pub headers: Vec<(&'static str, Value)>,
    /// The body; [`NONCE_MARKER`] in it is replaced when rendering.
    pub body: Vec<u8>,
    /// How the request is signed; `None` sends no signature at all.
    pub sign: Option<Sign>,
    /// What is done to the request after it is signed.
    pub damage: Vec<Damage>,
    /// How the body is framed.
    pub framing: Framing,
}

/// A header value in a template.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Value {
    /// This exact text.
    Text(String),
    /// A date relative to the rendering time.
    Date(DateSpec),
    /// A digest of the body (as it is when signed).
    Digest(DigestSpec),
}

/// A `Date` header value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DateSpec {
    /// An IMF-fixdate (what Drone sends) this many seconds from now.
    Offset(i64),
    /// The obsolete RFC 850 form (`Monday, 23-Nov-26 05:14:59 GMT`), this many
    /// seconds from now.
    Rfc850(i64),
    /// The obsolete asctime form (`Mon Nov 23 05:14:59 2026`), this many seconds
    /// from now.
    Asctime(i64),
    /// This exact text.
    Literal(&'static str),
}

/// A `Digest` header value, computed from the body.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DigestSpec {
    /// `SHA-256=<base64>`, as Drone sends it.
    Sha256,
    /// `sha-256=<base64>`: the algorithm name in lower case.
    Sha256LowerCase,
    /// `SHA-512=<base64>` alone.
    Sha512,
    /// The right `SHA-256` value and a wrong `SHA-512` value in one header.
    Sha256AndWrongSha512,
    /// `SHA-256=` of other bytes.
    Sha256Of(&'static [u8]),
    /// `SHA-256=` and the digest in hex instead of base64.
    Sha256Hex,
    /// A weak algorithm's name with a value of its length (`MD5`, 16 bytes; `SHA`,
    /// 20 bytes). The value is not that algorithm's digest: a receiver must refuse
    /// the algorithm before it looks at the value.
    Weak(&'static str, usize),
    /// This exact text.
    Literal(&'static str),
}

/// How a template is signed: the parameters written and the key used.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Sign {
    /// The `keyId` parameter; `None` leaves it out.
    pub key_id: Option<&'static str>,
    /// The `algorithm` parameter; `None` leaves it out. The signature is always
    /// HMAC-SHA256, whatever this claims.
    pub algorithm: Option<&'static str>,
    /// The `headers` parameter, space-separated as written; `None` leaves it out
    /// (the draft then means `date` alone, and that is what is signed).
    pub headers: Option<&'static str>,
    /// The key.
    pub secret: Key,
    /// The header the parameters go in.
    pub carrier: Carrier,
}

impl Sign {
    /// Drone's: `keyId="hmac-key",algorithm="hmac-sha256",headers="date digest"`,
    /// the right secret, in a `Signature` header.
    pub fn drone() -> Self {
        Sign {
            key_id: Some(crate::DRONE_KEY_ID),
            algorithm: Some(crate::ALGORITHM),
            headers: Some("date digest"),
            secret: Key::Right,
            carrier: Carrier::Signature,
        }
    }
}

/// Which secret signs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Key {
    /// The receiver's secret ([`RenderContext::secret`]).
    Right,
    /// Another secret (the right one with `-wrong` appended).
    Wrong,
}

/// Where the signature parameters are sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Carrier {
    /// `Signature: keyId=...`, as Drone sends them.
    Signature,
    /// `Authorization: Signature keyId=...`, the draft's other form.
    Authorization,
}

/// Something done to a request after it is signed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Damage {
    /// The body is replaced; the signed `Digest` still describes the old one. This is
    /// a forgery under a captured header set.
    ReplaceBody(Vec<u8>),
    /// The parameters are sent again in `Authorization: Signature ...`.
    CopyToAuthorization,
    /// The signature header is sent twice.
    SignatureTwice,
    /// Text is appended to the signature header's value (for `Authorization`, the
    /// whole value, `Signature ` included; the same for the edits below).
    AppendToSignature(String),
    /// The last bytes of the signature header's value are cut off.
    TruncateSignature(usize),
    /// The first occurrence of a text in the signature header's value is replaced.
    ReplaceInSignature(&'static str, String),
    /// The `signature` parameter's value is replaced by this text.
    SignatureValue(&'static str),
}

impl Damage {
    /// Whether this changes the text of the signature header's value.
    fn edits_value(&self) -> bool {
        matches!(
            self,
            Damage::AppendToSignature(_)
                | Damage::TruncateSignature(_)
                | Damage::ReplaceInSignature(..)
                | Damage::SignatureValue(_)
        )
    }
}

/// How the body is framed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Framing {
    /// `Content-Length` and the body, as Drone sends it.
    ContentLength,
    /// `Content-Length` with this value and no body bytes at all: a claim a receiver
    /// should refuse from the head alone.
    DeclaredOnly(u64),
    /// `Transfer-Encoding: chunked`, chunks of this size.
    Chunked(usize),
    /// `Transfer-Encoding: chunked` (chunks of this size) and a `Content-Length`
    /// too: two framings, the stuff of request smuggling.
    ChunkedAndLength(usize),
}

/// What a rendering needs: the secret, the time, and where the receiver is.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RenderContext {
    /// The receiver's secret.
    pub secret: crate::Secret,
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
    pub fn new(secret: impl Into<crate::Secret>, now: SystemTime) -> Self {
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
    pub fn render(&self, ctx: &RenderContext) -> Vec<u8> {
        self.request.build(&Mode::Live(ctx), self.request.target)
    }

    /// Every copy to send: one for most cases, [`Replay::copies`] for a replay. The
    /// copies are signed once and are identical but for a [`Replay::retarget`].
    pub fn render_copies(&self, ctx: &RenderContext) -> Vec<Vec<u8>> {
        let first = self.render(ctx);
        let Some(replay) = &self.replay else {
            return vec![first];
        };
        let mut out = Vec::with_capacity(replay.copies);
        for i in 0..replay.copies {
            match replay.retarget {
                Some(target) if i > 0 => {
                    out.push(self.request.build(&Mode::Live(ctx), target));
                }
                _ => out.push(first.clone()),
            }
        }
        out
    }

    /// What copy `index` (0-based) of the request is answered.
    pub fn expected_for_copy(&self, index: usize) -> ServerOutcome {
        match &self.replay {
            Some(replay) if index > 0 && !replay.concurrent => replay.later,
            _ => self.server,
        }
    }

    /// The request as a template for `fixtures/hostile/NAME.http`, in the placeholder
    /// language of `fixtures/hostile/README.md`: `{{date}}`, `{{date:-600}}`,
    /// `{{digest}}`, `{{content-length}}`, `{{signature}}` and
    /// `{{signature-b64:LIST}}` (signed over the headers as written, with the fixture
    /// runner's secret), plus `{{date-rfc850:N}}` and `{{date-asctime:N}}` for the
    /// obsolete date forms. Host is `localhost`, the base path `/`, the nonce `0`.
    /// A wrong-secret signature is written as a fixed base64 value, which no secret
    /// produces in practice.
    pub fn template_text(&self) -> Vec<u8> {
        self.request.build(&Mode::Template, self.request.target)
    }
}

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
        (DateSpec::Offset(n), Mode::Live(_)) => crate::http_date(at(n)),
        (DateSpec::Rfc850(n), Mode::Live(_)) => rfc850_date(at(n)),
        (DateSpec::Asctime(n), Mode::Live(_)) => asctime_date(at(n)),
    }
}

/// The parts of an IMF-fixdate (`Wed, 01 Jan 2020 00:00:00 GMT`): weekday, day,
/// month, year, time.
fn imf_parts(t: SystemTime) -> (String, String, String, String, String) {
    let imf = crate::http_date(t);
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
    fn build(&self, mode: &Mode<'_>, target: &str) -> Vec<u8> {
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
            let drone_params = sign.key_id == Some(crate::DRONE_KEY_ID)
                && sign.algorithm == Some(crate::ALGORITHM)
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
                (Mode::Template, Key::Right) => format!("{{{{signature-b64:{names}}}}}"),
                (Mode::Template, Key::Wrong) => WRONG_SIGNATURE_TEXT.to_owned(),
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
                _ => render_params(sign, &signature),
            };
            let (name, mut value) = match sign.carrier {
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
        }
        // One request per connection keeps every reader simple, ours and the fixture
        // runner's: the response ends when the connection does.
        headers.push(("Connection".into(), "close".into()));

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

/// Writes the parameters in Drone's order: `keyId`, `algorithm`, `signature`, `headers`.
fn render_params(sign: &Sign, signature: &str) -> String {
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
    fn nonces_are_replaced() {
        assert_eq!(replace_nonce(b"a{{nonce}}b{{nonce}}", "7"), b"a7b7");
    }
}
