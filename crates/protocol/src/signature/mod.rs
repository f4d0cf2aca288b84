//! HTTP signatures as Drone uses them (draft-cavage-http-signatures-10, HMAC-SHA256):
//! [`Signer`] produces Drone's `Date`, `Digest` and `Signature` headers; [`Policy`]
//! verifies a received request, closing the holes of Drone's reference receiver.

mod digest;
mod error;
mod params;

use std::time::{Duration, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, Mac};
use http::HeaderMap;
use http::header::{AUTHORIZATION, AsHeaderName, DATE, HeaderName};
use sha2::Sha256;

pub use digest::BodyDigest;
pub use error::{Error, VerifyError};
pub use params::{MAX_HEADER_LEN, ParseError, SignatureParams};

use crate::decode::Outline;
use crate::model::Envelope;

type HmacSha256 = Hmac<Sha256>;

/// The key id Drone sends.
pub const DRONE_KEY_ID: &str = "hmac-key";
/// The only algorithm accepted.
pub const ALGORITHM: &str = "hmac-sha256";
/// The header list Drone signs.
pub const DRONE_HEADERS: &[&str] = &["date", "digest"];
/// The default allowed clock skew, in both directions.
pub const DEFAULT_MAX_SKEW: Duration = Duration::from_secs(5 * 60);

/// A shared secret. Its `Debug` output is redacted and it has no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Box<[u8]>);

impl Secret {
    /// A secret from raw bytes. Drone uses `DRONE_WEBHOOK_SECRET` as raw bytes, not hex.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Secret(bytes.into().into_boxed_slice())
    }

    /// The secret's bytes. Named so that reading them is visible in review.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }

    fn mac(&self) -> HmacSha256 {
        // HMAC takes keys of any length, so this cannot fail.
        HmacSha256::new_from_slice(&self.0).unwrap_or_else(|_| unreachable!())
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Secret::new(s.as_bytes())
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Secret::new(s.into_bytes())
    }
}

impl From<Vec<u8>> for Secret {
    fn from(b: Vec<u8>) -> Self {
        Secret::new(b)
    }
}

impl From<&[u8]> for Secret {
    fn from(b: &[u8]) -> Self {
        Secret::new(b)
    }
}

/// Formats a time as an HTTP date (`Wed, 01 Jan 2020 00:00:00 GMT`), as Go's `http.TimeFormat`.
pub fn http_date(t: SystemTime) -> String {
    httpdate::fmt_http_date(t)
}

/// Builds the signing string: one `name: value` line per listed header, joined by `\n`.
///
/// `lookup` returns a header's value (several values already joined with `, `), or
/// `None` when the request lacks it.
fn signing_string<'a, S: AsRef<str>>(
    names: &[S],
    method: &str,
    target: &str,
    mut lookup: impl FnMut(&str) -> Option<std::borrow::Cow<'a, [u8]>>,
) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(128);
    for (i, name) in names.iter().enumerate() {
        let name = name.as_ref();
        if i > 0 {
            out.push(b'\n');
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        if name == "(request-target)" {
            out.extend_from_slice(method.to_ascii_lowercase().as_bytes());
            out.push(b' ');
            out.extend_from_slice(target.as_bytes());
        } else {
            let value = lookup(name).ok_or_else(|| name.to_owned())?;
            out.extend_from_slice(&value);
        }
    }
    Ok(out)
}

/// Signs requests the way Drone does.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use dronehook_protocol::{SignInput, Signer};
///
/// let body = br#"{"event":"user","action":"created","user":{"id":1,"login":"octocat","email":"octocat@github.com","machine":false,"admin":false,"active":true,"avatar":"","syncing":false,"synced":1564096971,"created":1564096971,"updated":1564096971,"last_login":1564096971}}"#;
/// let now = UNIX_EPOCH + Duration::from_secs(1_577_836_800); // 2020-01-01T00:00:00Z
/// let signed = Signer::new("correct-horse-battery-staple").sign(&SignInput::new(body, now)).unwrap();
/// assert_eq!(signed.date, "Wed, 01 Jan 2020 00:00:00 GMT");
/// assert_eq!(signed.digest, "SHA-256=1NqoE6nmLuLrxfKG+i0dak+F2+4FK26iIKpsfRy4Kvw=");
/// assert!(signed.signature.contains(r#"signature="Y3+K+rKwpbbQxWG+alUx8ikrK7d/c1vRLCwgnWCs7so=""#));
/// ```
#[derive(Clone)]
pub struct Signer {
    /// The HMAC keyed once with the secret, cloned per signature (keying costs two
    /// SHA-256 blocks); the secret itself is not kept.
    keyed: HmacSha256,
    key_id: String,
    headers: Vec<String>,
    algorithm: Option<String>,
    /// The `Signature` value before the signature itself (`keyId="…",algorithm="…",
    /// signature="`) and after it (`",headers="…"`), rendered once when the signer is
    /// configured rather than per request: only the signature changes.
    frame: (String, String),
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Written by hand so the keyed HMAC state never reaches a log.
        f.debug_struct("Signer")
            .field("secret", &format_args!("Secret(<redacted>)"))
            .field("key_id", &self.key_id)
            .field("headers", &self.headers)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl Signer {
    /// A signer with Drone's settings: key id `hmac-key`, headers `date digest`.
    pub fn new(secret: impl Into<Secret>) -> Self {
        Signer {
            keyed: secret.into().mac(),
            key_id: DRONE_KEY_ID.to_owned(),
            headers: DRONE_HEADERS.iter().map(|s| (*s).to_owned()).collect(),
            algorithm: Some(ALGORITHM.to_owned()),
            frame: (String::new(), String::new()),
        }
        .framed()
    }

    /// Renders [`Signer::frame`] from the parameters: what `SignatureParams::render`
    /// writes for them, in Drone's order (`keyId`, `algorithm`, `signature`,
    /// `headers`).
    fn framed(mut self) -> Self {
        let mut head = String::new();
        params::push_param(&mut head, "keyId", &self.key_id);
        if let Some(a) = &self.algorithm {
            params::push_param(&mut head, "algorithm", a);
        }
        head.push_str(",signature=\"");
        let mut tail = String::from("\"");
        params::push_param(&mut tail, "headers", &self.headers.join(" "));
        self.frame = (head, tail);
        self
    }

    /// Sets the `keyId` parameter.
    pub fn key_id(mut self, key_id: impl Into<String>) -> Self {
        self.key_id = key_id.into();
        self.framed()
    }

    /// Sets the signed header list (names are lower-cased). `date` and `digest` are
    /// produced by the signer; `(request-target)` and any other name are taken from
    /// the [`SignInput`].
    pub fn headers<I, S>(mut self, names: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.headers = names
            .into_iter()
            .map(|s| s.as_ref().to_ascii_lowercase())
            .collect();
        self.framed()
    }

    /// Sets the `algorithm` parameter written into the header (`None` leaves it out).
    /// The signature itself is always HMAC-SHA256; this exists to produce test
    /// requests that claim something else.
    pub fn algorithm(mut self, algorithm: Option<&str>) -> Self {
        self.algorithm = algorithm.map(str::to_owned);
        self.framed()
    }

    /// Signs a body: computes `Date` from `input.now`, `Digest` from the body, and the
    /// `Signature` over the configured headers.
    pub fn sign(&self, input: &SignInput<'_>) -> Result<Signed, SignError> {
        let date = input.date.clone().unwrap_or_else(|| http_date(input.now));
        let digest = BodyDigest::of(input.body);
        let digest_value = input
            .digest
            .clone()
            .unwrap_or_else(|| digest.header_value());
        let signing = signing_string(
            &self.headers,
            input.method,
            input.target,
            |name| match name {
                "date" => Some(date.as_bytes().into()),
                "digest" => Some(digest_value.as_bytes().into()),
                other => input
                    .headers
                    .iter()
                    .find(|(n, _)| n.eq_ignore_ascii_case(other))
                    .map(|(_, v)| v.as_bytes().into()),
            },
        )
        .map_err(|name| SignError { header: name })?;
        let mut mac = self.keyed.clone();
        mac.update(&signing);
        let (head, tail) = &self.frame;
        // 44 bytes: the base64 of a 32-byte HMAC-SHA256.
        let mut signature = String::with_capacity(head.len() + 44 + tail.len());
        signature.push_str(head);
        STANDARD.encode_string(mac.finalize().into_bytes(), &mut signature);
        signature.push_str(tail);
        Ok(Signed {
            date,
            digest: digest_value,
            signature,
            body_digest: digest,
        })
    }
}

/// What to sign: the body, the time, and whatever extra headers the list names.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SignInput<'a> {
    /// The exact body bytes.
    pub body: &'a [u8],
    /// The send time (the `Date` header). The crate never reads the clock.
    pub now: SystemTime,
    /// A `Date` header value to use verbatim instead of formatting `now`.
    pub date: Option<String>,
    /// A `Digest` header value to use verbatim instead of hashing the body (for test
    /// requests that carry odd or wrong digests).
    pub digest: Option<String>,
    /// The method, for `(request-target)`.
    pub method: &'a str,
    /// The path and query, for `(request-target)`.
    pub target: &'a str,
    /// Other headers named in the list.
    pub headers: Vec<(&'a str, &'a str)>,
}

impl<'a> SignInput<'a> {
    /// A body and a time; method `POST`, target `/`.
    pub fn new(body: &'a [u8], now: SystemTime) -> Self {
        SignInput {
            body,
            now,
            date: None,
            digest: None,
            method: "POST",
            target: "/",
            headers: Vec::new(),
        }
    }

    /// Sets the request target (method and path with query) for `(request-target)`.
    pub fn target(mut self, method: &'a str, target: &'a str) -> Self {
        self.method = method;
        self.target = target;
        self
    }

    /// Adds a header value that the signed list may name.
    pub fn header(mut self, name: &'a str, value: &'a str) -> Self {
        self.headers.push((name, value));
        self
    }

    /// Uses this exact `Date` value (for test requests with odd date formats).
    pub fn date(mut self, date: impl Into<String>) -> Self {
        self.date = Some(date.into());
        self
    }

    /// Uses this exact `Digest` value (for test requests with odd or wrong digests).
    pub fn digest(mut self, digest: impl Into<String>) -> Self {
        self.digest = Some(digest.into());
        self
    }
}

/// A signed request's headers.
#[derive(Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub struct Signed {
    /// The `Date` header value.
    pub date: String,
    /// The `Digest` header value.
    pub digest: String,
    /// The `Signature` header value.
    pub signature: String,
    /// The body's SHA-256, which the receiver will use as its dedupe key.
    pub body_digest: BodyDigest,
}

impl Signed {
    /// The headers in the order Drone sets them: `X-Drone-Event`, `Content-Type`,
    /// `Digest`, `Date`, `Signature`.
    pub fn headers<'a>(&'a self, event: &'a str) -> [(&'static str, &'a str); 5] {
        [
            ("X-Drone-Event", event),
            ("Content-Type", "application/json"),
            ("Digest", &self.digest),
            ("Date", &self.date),
            ("Signature", &self.signature),
        ]
    }
}

/// A header list names a header the [`SignInput`] does not provide.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SignError {
    header: String,
}

impl std::fmt::Display for SignError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "the signed header list names {:?}, which was not given",
            self.header
        )
    }
}

impl std::error::Error for SignError {}

/// A received request, as the verifier needs it.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct RequestParts<'a> {
    /// The method (`POST`).
    pub method: &'a str,
    /// The path and query, for `(request-target)`.
    pub target: &'a str,
    /// The headers.
    pub headers: &'a HeaderMap,
    /// The exact body bytes.
    pub body: &'a [u8],
}

impl<'a> RequestParts<'a> {
    /// Gathers the parts of a request.
    pub fn new(method: &'a str, target: &'a str, headers: &'a HeaderMap, body: &'a [u8]) -> Self {
        RequestParts {
            method,
            target,
            headers,
            body,
        }
    }

    /// The `X-Drone-Event` header, which names the event when the body does not;
    /// [`EventRepeated`](crate::DecodeError::EventRepeated) when the request has two or
    /// more (see [`event_header`](crate::event_header)).
    pub fn header_event(&self) -> Result<Option<&'a str>, crate::DecodeError> {
        crate::event_header(self.headers)
    }
}

/// What verification established about a request.
#[derive(Clone, PartialEq, Eq, Debug)]
#[non_exhaustive]
pub struct Verified {
    /// The index, in the policy's list, of the secret that matched (key rotation).
    pub secret_index: usize,
    /// The `keyId` the sender gave.
    pub key_id: String,
    /// The signed `Date`.
    pub date: SystemTime,
    /// SHA-256 of the body: the dedupe key.
    pub body_digest: BodyDigest,
}

/// How requests are verified: the secrets, the allowed clock skew, the accepted key ids.
///
/// Beyond Drone's reference receiver, a request passes only if the signature covers
/// `date` and `digest`, the `Digest` matches the exact body, and the `Date` is within
/// the skew of `now`. The algorithm is pinned to HMAC-SHA256 whatever the header claims.
#[derive(Clone)]
pub struct Policy {
    secrets: Vec<Secret>,
    /// HMAC state keyed with each secret, computed once: keying hashes the padded key
    /// twice, which would otherwise be repeated for every request.
    keyed: Vec<HmacSha256>,
    max_skew: Duration,
    key_ids: Option<Vec<String>>,
}

impl Policy {
    /// A policy with one secret, the default skew (5 minutes) and key id `hmac-key`.
    pub fn new(secret: impl Into<Secret>) -> Self {
        Policy::with_secrets([secret.into()])
    }

    /// A policy with several secrets: any of them passes (key rotation), and
    /// [`Verified::secret_index`] tells which. With no secrets nothing passes.
    pub fn with_secrets<I, S>(secrets: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<Secret>,
    {
        let secrets: Vec<Secret> = secrets.into_iter().map(Into::into).collect();
        Policy {
            keyed: secrets.iter().map(Secret::mac).collect(),
            secrets,
            max_skew: DEFAULT_MAX_SKEW,
            key_ids: Some(vec![DRONE_KEY_ID.to_owned()]),
        }
    }

    /// Sets the allowed difference between `Date` and `now`, in both directions.
    pub fn max_skew(mut self, skew: Duration) -> Self {
        self.max_skew = skew;
        self
    }

    /// The allowed skew.
    pub fn skew(&self) -> Duration {
        self.max_skew
    }

    /// How many secrets the policy holds.
    pub fn secret_count(&self) -> usize {
        self.secrets.len()
    }

    /// Accepts only these key ids (the default is `hmac-key`, Drone's).
    pub fn key_ids<I, S>(mut self, ids: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.key_ids = Some(ids.into_iter().map(Into::into).collect());
        self
    }

    /// Accepts any key id.
    pub fn any_key_id(mut self) -> Self {
        self.key_ids = None;
        self
    }

    /// The secrets (their `Debug` is redacted).
    pub fn secrets(&self) -> &[Secret] {
        &self.secrets
    }

    /// Verifies a request as of `now`.
    pub fn verify(&self, req: &RequestParts<'_>, now: SystemTime) -> Result<Verified, VerifyError> {
        let params = extract(req.headers)?;

        if let Some(alg) = &params.algorithm
            && !alg.eq_ignore_ascii_case(ALGORITHM)
        {
            return Err(VerifyError::AlgorithmUnsupported(alg.to_string()));
        }
        if let Some(ids) = &self.key_ids
            && !ids.iter().any(|id| *id == params.key_id)
        {
            return Err(VerifyError::KeyIdUnknown(params.key_id.into_owned()));
        }

        let names = params.headers.as_deref().unwrap_or(DEFAULT_NAMES);
        for (i, name) in names.iter().enumerate() {
            if matches!(&**name, "(created)" | "(expires)") {
                return Err(VerifyError::SignatureMalformed(format!(
                    "{name} cannot be used with hmac-sha256"
                )));
            }
            if names[..i].contains(name) {
                return Err(VerifyError::SignatureMalformed(format!(
                    "{name:?} is listed twice in `headers`"
                )));
            }
        }
        if !names.iter().any(|n| n == "date") {
            return Err(VerifyError::DateUnsigned);
        }
        if !names.iter().any(|n| n == "digest") {
            return Err(VerifyError::DigestUnsigned);
        }

        let signing = signing_string(names, req.method, req.target, |name| {
            listed(req.headers, name)
        })
        .map_err(|name| match name.as_str() {
            "date" => VerifyError::DateMissing,
            "digest" => VerifyError::DigestMissing,
            _ => VerifyError::HeaderMissing(name),
        })?;

        // Decoded on the stack: an HMAC-SHA256 signature is 32 bytes.
        let mut buf = [0u8; 64];
        let signature =
            digest::base64_decode(params.signature.as_bytes(), &mut buf).map_err(|_| {
                VerifyError::SignatureMalformed("the `signature` value is not base64".into())
            })?;
        // Every secret is tried, so the time taken does not tell which one matched.
        let mut matched = None;
        for (i, keyed) in self.keyed.iter().enumerate() {
            let mut mac = keyed.clone();
            mac.update(&signing);
            if mac.verify_slice(&signature).is_ok() && matched.is_none() {
                matched = Some(i);
            }
        }
        let secret_index = matched.ok_or(VerifyError::SignatureInvalid)?;

        // The signature is good, so Date and Digest are the sender's own.
        let date_value = joined(req.headers, DATE).ok_or(VerifyError::DateMissing)?;
        let date = std::str::from_utf8(&date_value)
            .ok()
            .and_then(|s| httpdate::parse_http_date(s.trim()).ok())
            .ok_or(VerifyError::DateMalformed)?;
        match now.duration_since(date) {
            Ok(age) if age > self.max_skew => {
                return Err(VerifyError::DateStale {
                    age,
                    max_skew: self.max_skew,
                });
            }
            Err(ahead) if ahead.duration() > self.max_skew => {
                return Err(VerifyError::DateFuture {
                    ahead: ahead.duration(),
                    max_skew: self.max_skew,
                });
            }
            _ => {}
        }

        let body_digest = BodyDigest::of(req.body);
        let digest_value = joined(req.headers, &DIGEST).ok_or(VerifyError::DigestMissing)?;
        digest::check(&digest_value, req.body, &body_digest)?;

        Ok(Verified {
            secret_index,
            key_id: params.key_id.into_owned(),
            date,
            body_digest,
        })
    }

    /// Verifies a request and decodes its body, taking the event from
    /// `X-Drone-Event` when the body has none.
    pub fn verify_and_decode(
        &self,
        req: &RequestParts<'_>,
        now: SystemTime,
    ) -> Result<(Verified, Envelope), Error> {
        let verified = self.verify(req, now)?;
        let envelope = Envelope::decode_with_header(req.body, req.header_event()?)?;
        Ok((verified, envelope))
    }

    /// Verifies a request and checks that its body decodes, without decoding it: the
    /// receiver's request path. See [`Envelope::check_with_header`]; decode with
    /// [`Envelope::decode_with_header`] when the payload itself is needed.
    pub fn verify_and_check(
        &self,
        req: &RequestParts<'_>,
        now: SystemTime,
    ) -> Result<(Verified, Outline), Error> {
        let verified = self.verify(req, now)?;
        let outline = Envelope::check_with_header(req.body, req.header_event()?)?;
        Ok((verified, outline))
    }
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Written by hand so the keyed HMAC states never reach a log.
        f.debug_struct("Policy")
            .field("secrets", &self.secrets)
            .field("max_skew", &self.max_skew)
            .field("key_ids", &self.key_ids)
            .finish_non_exhaustive()
    }
}

/// The signed header list when `headers` is absent: the draft's default, `date` alone.
const DEFAULT_NAMES: &[std::borrow::Cow<'static, str>] = &[std::borrow::Cow::Borrowed("date")];

/// Reads the signature parameters from `Signature`, or from `Authorization: Signature`.
fn extract<'a>(headers: &'a HeaderMap) -> Result<params::Raw<'a>, VerifyError> {
    let mut sigs = headers.get_all(&SIGNATURE).iter();
    let mut auths = headers.get_all(AUTHORIZATION).iter();
    let (sig, auth) = (sigs.next(), auths.next());
    if sigs.next().is_some() {
        return Err(VerifyError::SignatureMalformed(
            "more than one Signature header".into(),
        ));
    }
    let malformed = |e: ParseError| VerifyError::SignatureMalformed(e.to_string());
    let text = |v: &'a http::HeaderValue| {
        v.to_str()
            .map_err(|_| VerifyError::SignatureMalformed("non-ASCII bytes in the header".into()))
    };
    match (sig, auth) {
        (Some(_), Some(a)) if is_signature_scheme(a.as_bytes()) => {
            Err(VerifyError::SignatureMalformed(
                "both Signature and Authorization: Signature headers are present".into(),
            ))
        }
        (Some(s), _) => params::Raw::parse(text(s)?).map_err(malformed),
        (None, Some(a)) => {
            if auths.next().is_some() {
                return Err(VerifyError::SignatureMalformed(
                    "more than one Authorization header".into(),
                ));
            }
            params::Raw::parse_authorization(text(a)?).map_err(malformed)
        }
        (None, None) => Err(VerifyError::SignatureMissing),
    }
}

fn is_signature_scheme(value: &[u8]) -> bool {
    value.len() >= 10 && value[..10].eq_ignore_ascii_case(b"signature ")
}

/// The names verification reads on every request, parsed once: a lookup by `&str`
/// validates and hashes the name each time.
static SIGNATURE: HeaderName = HeaderName::from_static("signature");
static DIGEST: HeaderName = HeaderName::from_static("digest");

/// A header's value by a name from a `headers` list: the common ones by their parsed
/// names.
fn listed<'a>(headers: &'a HeaderMap, name: &str) -> Option<std::borrow::Cow<'a, [u8]>> {
    match name {
        "date" => joined(headers, DATE),
        "digest" => joined(headers, &DIGEST),
        other => joined(headers, other),
    }
}

/// A header's value, several occurrences joined with `, ` as the draft asks.
fn joined<K: AsHeaderName>(headers: &HeaderMap, name: K) -> Option<std::borrow::Cow<'_, [u8]>> {
    let mut values = headers.get_all(name).iter();
    let first = values.next()?;
    // The usual case, one value, is borrowed: no allocation, no copy.
    let Some(second) = values.next() else {
        return Some(std::borrow::Cow::Borrowed(first.as_bytes()));
    };
    let mut out = first.as_bytes().to_vec();
    for v in std::iter::once(second).chain(values) {
        out.extend_from_slice(b", ");
        out.extend_from_slice(v.as_bytes());
    }
    Some(out.into())
}
