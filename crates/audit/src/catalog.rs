//! The catalog's model: a [`Case`] is a request template with its expected outcomes.
//!
//! A case is a request *template*: the request line, the header lines, the body, how
//! to sign it (header list, claimed algorithm, key id, right or wrong secret) and any
//! damage done after signing (the body replaced, a header duplicated, ...). Templates
//! are signed when they are rendered ([`Case::render`]), with the caller's secret and
//! time, so the `Date` is fresh and any receiver can be tested with its own secret.

use std::fmt;

use crate::cases;

/// Every case, grouped, in a stable order.
pub fn all() -> Vec<Case> {
    cases::all()
}

/// The case with this name.
pub fn get(name: &str) -> Option<Case> {
    all().into_iter().find(|c| c.name == name)
}

/// The marker in template bodies that [`RenderContext::nonce`](crate::RenderContext::nonce) replaces, so that each
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
///
/// Status 0 ([`ServerOutcome::CLOSED_OR_4XX`]) is the one expectation that is not a
/// single answer: the connection is closed without any answer, or answered with some
/// 4xx (whatever its code). It is for bytes that are not an HTTP/1.1 request at all,
/// where receivers differ in whether they say so before they close, and only a
/// success would be wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ServerOutcome {
    /// The HTTP status; 0 for [`ServerOutcome::CLOSED_OR_4XX`].
    pub status: u16,
    /// The error code, such as `digest.mismatch`; empty when the body is empty.
    pub code: &'static str,
}

impl ServerOutcome {
    /// An outcome.
    pub const fn new(status: u16, code: &'static str) -> Self {
        ServerOutcome { status, code }
    }

    /// The connection closed without an answer, or any 4xx answer.
    pub const CLOSED_OR_4XX: ServerOutcome = ServerOutcome::new(0, "");

    /// Whether this is [`ServerOutcome::CLOSED_OR_4XX`].
    pub fn is_closed_or_4xx(&self) -> bool {
        self.status == 0
    }

    /// Whether the request is accepted (a 2xx status).
    pub fn is_accepted(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// Whether a response with this status and body matches: same status and, when
    /// a code is expected, the same first line of the body (for
    /// [`ServerOutcome::CLOSED_OR_4XX`], any 4xx).
    pub fn matches(&self, status: u16, body: &[u8]) -> bool {
        self.matches_code(status, response_code(body))
    }

    /// Whether an answer with this status and code matches.
    pub fn matches_code(&self, status: u16, code: &str) -> bool {
        if self.is_closed_or_4xx() {
            (400..500).contains(&status)
        } else {
            status == self.status && code == self.code
        }
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
        if self.is_closed_or_4xx() {
            f.write_str("closed or 4xx")
        } else if self.code.is_empty() {
            write!(f, "{}", self.status)
        } else {
            write!(f, "{} {}", self.status, self.code)
        }
    }
}

/// What `dronehook verify` (that is, [`Policy::verify_and_decode`](dronehook_protocol::Policy))
/// says about a case.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum VerifyOutcome {
    /// The request is authentic and its body a payload.
    Valid,
    /// Refused with this code (a [`VerifyError`](dronehook_protocol::VerifyError) or
    /// [`DecodeError`](dronehook_protocol::DecodeError) code).
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
    /// What is done to the copies after the first besides (the same signature, Date
    /// and body, sent differently: parameters reordered, another header).
    pub later_damage: Vec<Damage>,
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
    /// What is written on the case's connection: the request alone, or more.
    pub connection: Connection,
}

impl Case {
    /// What answer `index` (0-based) is expected to be: for a replay, the answer to
    /// copy `index`; for a pipelined case, the answer to request `index` on its
    /// connection.
    pub fn expected_for_copy(&self, index: usize) -> ServerOutcome {
        if let Connection::Pipelined(more) = &self.connection {
            return match index {
                0 => self.server,
                i => more.get(i - 1).map_or(self.server, |p| p.server),
            };
        }
        match &self.replay {
            Some(replay) if index > 0 && !replay.concurrent => replay.later,
            _ => self.server,
        }
    }

    /// How many answers one connection of this case is expected to carry: one, or
    /// one for each request of a pipelined case.
    pub fn answers_per_connection(&self) -> usize {
        match &self.connection {
            Connection::Pipelined(more) => 1 + more.len(),
            _ => 1,
        }
    }
}

/// What a case writes on its connection (each copy of a replay has its own).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Connection {
    /// The case's request alone, with `Connection: close`: one answer.
    Single,
    /// The case's request, then these, written back to back before any answer is
    /// read. Every request but the last leaves out `Connection: close`; the answers
    /// must come in order, the first [`Case::server`], then each of these.
    Pipelined(Vec<Pipelined>),
    /// These bytes, which are not an HTTP/1.1 request, instead of the case's
    /// request (whose template then only documents the intent).
    Raw(&'static [u8]),
}

/// A request written behind another on the same connection.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Pipelined {
    /// The request.
    pub request: Template,
    /// Its expected answer.
    pub server: ServerOutcome,
}

impl Pipelined {
    /// A request and its expected answer.
    pub fn new(request: Template, server: ServerOutcome) -> Self {
        Pipelined { request, server }
    }
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
    /// A wrong `SHA-512` value, then the right `SHA-256` value, in one header.
    WrongSha512AndSha256,
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
            key_id: Some(dronehook_protocol::DRONE_KEY_ID),
            algorithm: Some(dronehook_protocol::ALGORITHM),
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
    /// The receiver's secret ([`RenderContext::secret`](crate::RenderContext::secret)).
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
    /// The `signature` parameter's base64 has the unused low bits of its last
    /// character set: the same bytes to a lenient decoder, but not the canonical
    /// encoding of any value.
    NonCanonicalSignature,
    /// The parameters are written in reverse order (`headers`, `signature`,
    /// `algorithm`, `keyId`): the same signature, differently spelled.
    ReorderParameters,
    /// The parameters are sent in `Authorization: Signature ...` instead of a
    /// `Signature` header.
    MoveToAuthorization,
}

impl Damage {
    /// Whether this changes the text of the signature header's value.
    pub(crate) fn edits_value(&self) -> bool {
        matches!(
            self,
            Damage::AppendToSignature(_)
                | Damage::TruncateSignature(_)
                | Damage::ReplaceInSignature(..)
                | Damage::SignatureValue(_)
                | Damage::NonCanonicalSignature
                | Damage::ReorderParameters
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
    /// One `Transfer-Encoding` header line per value given, and the body in chunks of
    /// this size (not otherwise encoded): codings besides `chunked`, or `chunked`
    /// named twice.
    Codings(&'static [&'static str], usize),
    /// Two `Content-Length` headers: the body's length, then one more.
    TwoLengths,
    /// `Content-Length: +N`, the body's length with a sign, which the field's grammar
    /// (digits only) does not allow.
    SignedLength,
    /// `Transfer-Encoding: chunked` with a first chunk size of 2^64 (`10000000000000000`
    /// in hex), which overflows any 64-bit length, before the body and a last chunk.
    ChunkSizeOverflow,
}
