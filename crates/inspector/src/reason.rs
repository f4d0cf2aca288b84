//! The one-line reason a person needs for a refused request, from the server's
//! refusal code and what the head said (the `Date`'s skew, the `keyId`).

use crate::format::skew_words;

/// Why the request was refused, in words. `skew` is the `Date`'s distance from the
/// receiver's clock in seconds (positive: ahead).
pub(crate) fn reason(code: &str, status: u16, key_id: Option<&str>, skew: Option<i64>) -> String {
    let text = match code {
        "signature.invalid" => {
            "signed with a different secret (or a signed header changed on the way)"
        }
        "digest.mismatch" => "body changed after signing (its digest does not match)",
        "date.stale" | "date.future" => {
            return match skew {
                Some(s) => format!("Date {} this server", skew_words(s)),
                None => "Date outside the allowed skew".to_owned(),
            };
        }
        "signature.key_id" => {
            return match key_id {
                Some(k) => format!("signed with keyId {k:?}, which this server does not accept"),
                None => "signed with a keyId this server does not accept".to_owned(),
            };
        }
        "signature.missing" => "not signed: no Signature header",
        "signature.malformed" => "the Signature header cannot be read",
        "signature.algorithm" => "signed with an algorithm other than hmac-sha256",
        "signature.header_missing" => "the signature covers a header the request does not have",
        "date.unsigned" => "the signature does not cover the Date header",
        "digest.unsigned" => "the signature does not cover the Digest header",
        "date.missing" => "no Date header",
        "date.malformed" => "the Date header is not an HTTP date",
        "digest.missing" => "no SHA-256 Digest header",
        "digest.malformed" => "the Digest header cannot be read",
        "digest.weak" => "the Digest is MD5 or SHA-1, not SHA-256",
        "payload.invalid" => "authentic, but the body is not a Drone payload",
        "payload.duplicate_key" => "authentic, but the body repeats a JSON key",
        "payload.event_missing" => "no event: neither X-Drone-Event nor the body names one",
        "payload.event_repeated" => "the body names its event twice",
        "payload.event_mismatch" => "X-Drone-Event and the body name different events",
        "not_found" => "sent to a path this receiver does not serve",
        "method_not_allowed" => "not a POST",
        "body.too_large" => "the body is larger than --max-body",
        "request.timeout" => "the request did not arrive in time",
        "transport.malformed" => "the HTTP framing is broken or ambiguous",
        "encoding.unsupported" => "a compressed body (Content-Encoding)",
        "content_type.unsupported" => "not Content-Type: application/json",
        "transfer_encoding.unsupported" => "a Transfer-Encoding this receiver does not take",
        "headers.too_large" => "the headers are too large",
        "uri.too_long" => "the request target is too long",
        "replay.full" => "too many recent requests to check for replays: retry later",
        "journal.unavailable" | "store.unavailable" => {
            "the store could not commit it: the sender should retry"
        }
        _ => return format!("refused with {status} ({code})"),
    };
    text.to_owned()
}

#[cfg(test)]
mod tests {
    use super::reason;

    #[test]
    fn the_reasons_people_need() {
        assert_eq!(
            reason("signature.invalid", 401, Some("hmac-key"), Some(0)),
            "signed with a different secret (or a signed header changed on the way)"
        );
        assert_eq!(
            reason("date.stale", 401, None, Some(-660)),
            "Date 11 min behind this server"
        );
        assert_eq!(
            reason("date.future", 401, None, Some(7200)),
            "Date 2 h ahead of this server"
        );
        assert_eq!(
            reason("digest.mismatch", 401, None, None),
            "body changed after signing (its digest does not match)"
        );
        assert_eq!(
            reason("signature.key_id", 401, Some("old-key"), None),
            "signed with keyId \"old-key\", which this server does not accept"
        );
        assert_eq!(
            reason("brand.new", 418, None, None),
            "refused with 418 (brand.new)"
        );
    }
}
