//! The `Digest` header (RFC 3230): `SHA-256=<base64>`, possibly with other algorithms.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest as _, Sha256, Sha512};
use subtle::ConstantTimeEq;

use super::VerifyError;

/// SHA-256 of a request body: the `Digest` value and the dedupe key of a verified request.
///
/// Drone bodies carry object versions and timestamps, so two deliveries with the same
/// bytes are the same event: a receiver that has accepted this digest before can
/// answer success again without delivering twice.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BodyDigest([u8; 32]);

impl BodyDigest {
    /// Hashes a body.
    pub fn of(body: &[u8]) -> Self {
        BodyDigest(Sha256::digest(body).into())
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Wraps 32 raw bytes (for example read back from a journal).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        BodyDigest(bytes)
    }

    /// Lower-case hex, 64 characters.
    pub fn to_hex(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::with_capacity(64);
        for b in self.0 {
            let _ = write!(s, "{b:02x}");
        }
        s
    }

    /// Checks a `Digest` header value against this digest of `body` (which must be the
    /// body this digest was computed from; SHA-512 values, if any, are checked on it).
    /// The rules are [`Policy::verify`](crate::Policy::verify)'s: every SHA-256 value
    /// must match, a SHA-512 value must match too, MD5 and SHA-1 are refused.
    pub fn check_header(&self, value: &[u8], body: &[u8]) -> Result<(), VerifyError> {
        check(value, body, self)
    }

    /// The `Digest` header value Drone sends: `SHA-256=` and standard base64.
    pub fn header_value(&self) -> String {
        let mut s = String::with_capacity(52);
        s.push_str("SHA-256=");
        STANDARD.encode_string(self.0, &mut s);
        s
    }
}

impl std::fmt::Debug for BodyDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BodyDigest({})", self.to_hex())
    }
}

impl std::fmt::Display for BodyDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// Checks a `Digest` header value against the body's SHA-256 (already computed).
///
/// Every SHA-256 value must match; a SHA-512 value, if present, must match too;
/// MD5 and SHA-1 values are refused outright, since a sender that offers them
/// invites a downgrade. Algorithm names are case-insensitive (`sha-256` passes).
pub(crate) fn check(value: &[u8], body: &[u8], sha256: &BodyDigest) -> Result<(), VerifyError> {
    let value = std::str::from_utf8(value)
        .map_err(|_| VerifyError::DigestMalformed("non-ASCII bytes".into()))?;
    let mut saw_sha256 = false;
    let mut pending_sha512 = Vec::new();
    for entry in value.split(',') {
        let entry = entry.trim();
        let Some((alg, encoded)) = entry.split_once('=') else {
            return Err(VerifyError::DigestMalformed(format!(
                "expected `algorithm=value`, got {:?}",
                truncate(entry)
            )));
        };
        let alg = alg.trim();
        if alg.eq_ignore_ascii_case("sha-256") {
            let got = decode(encoded.trim(), 32, "SHA-256")?;
            if !bool::from(got[..32].ct_eq(sha256.as_bytes())) {
                return Err(VerifyError::DigestMismatch);
            }
            saw_sha256 = true;
        } else if alg.eq_ignore_ascii_case("sha-512") {
            pending_sha512.push(decode(encoded.trim(), 64, "SHA-512")?);
        } else if ["md5", "sha", "sha-1", "unixsum", "unixcksum"]
            .iter()
            .any(|weak| alg.eq_ignore_ascii_case(weak))
        {
            return Err(VerifyError::DigestWeak(alg.to_ascii_uppercase()));
        } else if alg.is_empty() {
            return Err(VerifyError::DigestMalformed("empty algorithm name".into()));
        }
        // Other algorithms are ignored, as RFC 3230 lets a recipient do.
    }
    if !saw_sha256 {
        return Err(VerifyError::DigestMissing);
    }
    if !pending_sha512.is_empty() {
        let sha512 = Sha512::digest(body);
        for got in pending_sha512 {
            if !bool::from(got.ct_eq(sha512.as_slice())) {
                return Err(VerifyError::DigestMismatch);
            }
        }
    }
    Ok(())
}

fn decode(encoded: &str, len: usize, alg: &str) -> Result<[u8; 64], VerifyError> {
    let mut buf = [0u8; 64];
    let n = base64_decode(encoded.as_bytes(), &mut buf)
        .map_err(|_| VerifyError::DigestMalformed(format!("the {alg} value is not base64")))?
        .len();
    if n != len {
        return Err(VerifyError::DigestMalformed(format!(
            "the {alg} value is {n} bytes long, not {len}"
        )));
    }
    Ok(buf)
}

/// Decodes standard base64 into `buf`, or onto the heap when the value is too long for
/// it: the values verification reads (32- and 64-byte digests and signatures) cost no
/// allocation, and a value of any length still gets base64's own verdict.
pub(crate) fn base64_decode<'b>(
    encoded: &[u8],
    buf: &'b mut [u8; 64],
) -> Result<Cow<'b, [u8]>, base64::DecodeError> {
    match STANDARD.decode_slice(encoded, buf) {
        Ok(n) => Ok(Cow::Borrowed(&buf[..n])),
        Err(base64::DecodeSliceError::OutputSliceTooSmall) => {
            STANDARD.decode(encoded).map(Cow::Owned)
        }
        Err(base64::DecodeSliceError::DecodeError(e)) => Err(e),
    }
}

/// Shortens attacker-supplied text quoted in an error.
fn truncate(s: &str) -> &str {
    match s.char_indices().nth(32) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}
