//! [`VerifyError`]: every way a request can fail verification, each with a stable code.

use std::fmt;
use std::time::Duration;

use crate::decode::DecodeError;

/// Why a request failed verification.
///
/// Messages name what is wrong and never include a secret, an expected signature
/// or an expected digest: a server may send them to an unauthenticated peer.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum VerifyError {
    /// No `Signature` header, and no `Authorization` header of the `Signature` scheme.
    SignatureMissing,
    /// The signature header cannot be parsed (or there are several of them).
    SignatureMalformed(String),
    /// The header claims an algorithm other than `hmac-sha256`.
    AlgorithmUnsupported(String),
    /// The `keyId` is not one the policy accepts.
    KeyIdUnknown(String),
    /// The signed header list does not include `date`.
    DateUnsigned,
    /// The signed header list does not include `digest`.
    DigestUnsigned,
    /// The signed header list names a header the request does not have.
    HeaderMissing(String),
    /// The signed `Date` header is absent.
    DateMissing,
    /// The `Date` header is not an HTTP date.
    DateMalformed,
    /// The `Date` is older than the allowed skew.
    DateStale {
        /// How old the request is.
        age: Duration,
        /// The allowed skew.
        max_skew: Duration,
    },
    /// The `Date` is further in the future than the allowed skew.
    DateFuture {
        /// How far ahead the request is.
        ahead: Duration,
        /// The allowed skew.
        max_skew: Duration,
    },
    /// The `Digest` header is absent or has no SHA-256 value.
    DigestMissing,
    /// The `Digest` header cannot be parsed or a value is not valid base64 of the right length.
    DigestMalformed(String),
    /// The `Digest` header carries an MD5 or SHA-1 value.
    DigestWeak(String),
    /// A digest value does not match the body.
    DigestMismatch,
    /// The signature does not match under any configured secret.
    SignatureInvalid,
}

impl VerifyError {
    /// A stable short code, such as `digest.mismatch`, for responses, logs and scripts.
    pub fn code(&self) -> &'static str {
        match self {
            VerifyError::SignatureMissing => "signature.missing",
            VerifyError::SignatureMalformed(_) => "signature.malformed",
            VerifyError::AlgorithmUnsupported(_) => "signature.algorithm",
            VerifyError::KeyIdUnknown(_) => "signature.key_id",
            VerifyError::DateUnsigned => "date.unsigned",
            VerifyError::DigestUnsigned => "digest.unsigned",
            VerifyError::HeaderMissing(_) => "signature.header_missing",
            VerifyError::DateMissing => "date.missing",
            VerifyError::DateMalformed => "date.malformed",
            VerifyError::DateStale { .. } => "date.stale",
            VerifyError::DateFuture { .. } => "date.future",
            VerifyError::DigestMissing => "digest.missing",
            VerifyError::DigestMalformed(_) => "digest.malformed",
            VerifyError::DigestWeak(_) => "digest.weak",
            VerifyError::DigestMismatch => "digest.mismatch",
            VerifyError::SignatureInvalid => "signature.invalid",
        }
    }

    /// Whether the request is malformed (HTTP 400) rather than unauthenticated (401).
    pub fn is_malformed(&self) -> bool {
        matches!(
            self,
            VerifyError::SignatureMalformed(_)
                | VerifyError::DateMalformed
                | VerifyError::DigestMalformed(_)
        )
    }

    /// Every code this type can produce, for documentation and exhaustive tests.
    pub const CODES: &'static [&'static str] = &[
        "signature.missing",
        "signature.malformed",
        "signature.algorithm",
        "signature.key_id",
        "date.unsigned",
        "digest.unsigned",
        "signature.header_missing",
        "date.missing",
        "date.malformed",
        "date.stale",
        "date.future",
        "digest.missing",
        "digest.malformed",
        "digest.weak",
        "digest.mismatch",
        "signature.invalid",
    ];
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let code = self.code();
        match self {
            VerifyError::SignatureMissing => write!(
                f,
                "{code}: the request has no Signature header (nor an `Authorization: Signature` header)"
            ),
            VerifyError::SignatureMalformed(reason) => {
                write!(f, "{code}: the signature header is malformed: {reason}")
            }
            VerifyError::AlgorithmUnsupported(alg) => write!(
                f,
                "{code}: the signature claims algorithm {alg:?}; only hmac-sha256 is accepted"
            ),
            VerifyError::KeyIdUnknown(id) => write!(f, "{code}: keyId {id:?} is not accepted"),
            VerifyError::DateUnsigned => write!(
                f,
                "{code}: the signature does not cover the Date header, so the request's age is not authenticated"
            ),
            VerifyError::DigestUnsigned => write!(
                f,
                "{code}: the signature does not cover the Digest header, so the body is not authenticated"
            ),
            VerifyError::HeaderMissing(name) => write!(
                f,
                "{code}: the signature covers {name:?}, which the request does not have"
            ),
            VerifyError::DateMissing => write!(f, "{code}: the request has no Date header"),
            VerifyError::DateMalformed => write!(f, "{code}: the Date header is not an HTTP date"),
            VerifyError::DateStale { age, max_skew } => write!(
                f,
                "{code}: the request was signed {}s ago, more than the {}s allowed",
                age.as_secs(),
                max_skew.as_secs()
            ),
            VerifyError::DateFuture { ahead, max_skew } => write!(
                f,
                "{code}: the request is dated {}s in the future, more than the {}s allowed",
                ahead.as_secs(),
                max_skew.as_secs()
            ),
            VerifyError::DigestMissing => {
                write!(f, "{code}: the request has no SHA-256 Digest of its body")
            }
            VerifyError::DigestMalformed(reason) => {
                write!(f, "{code}: the Digest header is malformed: {reason}")
            }
            VerifyError::DigestWeak(alg) => write!(
                f,
                "{code}: the Digest header uses {alg}, which is too weak; SHA-256 is required"
            ),
            VerifyError::DigestMismatch => {
                write!(f, "{code}: the body is not the one that was signed")
            }
            VerifyError::SignatureInvalid => {
                write!(
                    f,
                    "{code}: the signature does not match any configured secret"
                )
            }
        }
    }
}

impl fmt::Debug for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The Display text is already free of secrets; Debug shows the same.
        write!(f, "VerifyError({self})")
    }
}

impl std::error::Error for VerifyError {}

/// Any reason a request is refused: verification or decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The request is not authentic or not well signed.
    Verify(VerifyError),
    /// The (authentic) body is not a Drone payload.
    Decode(DecodeError),
}

impl Error {
    /// The stable short code.
    pub fn code(&self) -> &'static str {
        match self {
            Error::Verify(e) => e.code(),
            Error::Decode(e) => e.code(),
        }
    }

    /// Whether the request is malformed (HTTP 400) rather than unauthenticated (401).
    pub fn is_malformed(&self) -> bool {
        match self {
            Error::Verify(e) => e.is_malformed(),
            Error::Decode(_) => true,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Verify(e) => e.fmt(f),
            Error::Decode(e) => write!(f, "{}: {e}", e.code()),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Verify(e) => Some(e),
            Error::Decode(e) => Some(e),
        }
    }
}

impl From<VerifyError> for Error {
    fn from(e: VerifyError) -> Self {
        Error::Verify(e)
    }
}

impl From<DecodeError> for Error {
    fn from(e: DecodeError) -> Self {
        Error::Decode(e)
    }
}
