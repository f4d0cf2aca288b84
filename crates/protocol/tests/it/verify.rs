//! Verification: every failure class through one `check` helper. Each case signs a
//! request with the real signer (varying what it signs), optionally tampers with it,
//! and renders the verifier's answer as one line.

use std::time::{Duration, SystemTime};

use dronehook_protocol::http::{HeaderMap, HeaderName, HeaderValue};
use dronehook_protocol::{Policy, RequestParts, SignInput, Signer};
use expect_test::{Expect, expect};

use crate::{VECTOR_BODY, VECTOR_SECRET, vector_time};

/// A request under construction: body, headers, and the time it is verified at.
struct Case {
    body: Vec<u8>,
    headers: HeaderMap,
    now: SystemTime,
    policy: Policy,
}

impl Case {
    /// A request signed exactly as Drone signs the reference vector.
    fn drone() -> Case {
        Case::signed(
            &Signer::new(VECTOR_SECRET),
            SignInput::new(VECTOR_BODY, vector_time()),
        )
    }

    fn signed(signer: &Signer, input: SignInput<'_>) -> Case {
        let signed = signer.sign(&input).unwrap();
        let mut headers = HeaderMap::new();
        for (name, value) in signed.headers("user") {
            headers.append(
                HeaderName::from_static(lower(name)),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        Case {
            body: input.body.to_vec(),
            headers,
            now: vector_time(),
            policy: Policy::new(VECTOR_SECRET),
        }
    }

    fn set(mut self, name: &'static str, value: &str) -> Case {
        self.headers
            .insert(name, HeaderValue::from_bytes(value.as_bytes()).unwrap());
        self
    }

    fn remove(mut self, name: &'static str) -> Case {
        self.headers.remove(name);
        self
    }

    fn render(&self) -> String {
        let req = RequestParts::new("POST", "/hooks?x=1", &self.headers, &self.body);
        match self.policy.verify(&req, self.now) {
            Ok(v) => format!("ok secret={} key={}", v.secret_index, v.key_id),
            Err(e) => e.to_string(),
        }
    }
}

fn lower(name: &str) -> &'static str {
    match name {
        "X-Drone-Event" => "x-drone-event",
        "Content-Type" => "content-type",
        "Digest" => "digest",
        "Date" => "date",
        _ => "signature",
    }
}

fn check(case: &Case, expected: Expect) {
    expected.assert_eq(&case.render());
}

fn vector() -> SignInput<'static> {
    SignInput::new(VECTOR_BODY, vector_time())
}

fn drone_with(signer: Signer) -> Case {
    Case::signed(&signer, vector())
}

#[test]
fn drone_requests_pass() {
    check(&Case::drone(), expect![[r#"ok secret=0 key=hmac-key"#]]);
    let sig = Case::drone().headers["signature"]
        .to_str()
        .unwrap()
        .to_owned();
    check(
        &Case::drone()
            .remove("signature")
            .set("authorization", &format!("Signature {sig}")),
        expect![[r#"ok secret=0 key=hmac-key"#]],
    );
    check(
        &drone_with(Signer::new(VECTOR_SECRET).algorithm(None)),
        expect![[r#"ok secret=0 key=hmac-key"#]],
    );
    let mut rotated = Case::drone();
    rotated.policy = Policy::with_secrets(["old-secret", VECTOR_SECRET]);
    check(&rotated, expect![[r#"ok secret=1 key=hmac-key"#]]);
}

#[test]
fn signature_header_failures() {
    check(
        &Case::drone().remove("signature"),
        expect![[
            r#"signature.missing: the request has no Signature header (nor an `Authorization: Signature` header)"#
        ]],
    );
    let sig = Case::drone().headers["signature"]
        .to_str()
        .unwrap()
        .to_owned();
    check(
        &Case::drone().set("authorization", &format!("Signature {sig}")),
        expect![[
            r#"signature.malformed: the signature header is malformed: both Signature and Authorization: Signature headers are present"#
        ]],
    );
    check(
        &Case::drone().remove("signature").set("authorization", r#"hmac-key",algorithm="hmac-sha256",signature="QrS16+RlRsFjXn5IVW8tWz+3ZRAypjpNgzehEuvJksk="#),
        expect![[r#"signature.malformed: the signature header is malformed: the Authorization header does not use the `Signature` scheme (expected `Signature keyId="...",...`)"#]],
    );
    let mut twice = Case::drone();
    twice
        .headers
        .append("signature", HeaderValue::from_str(&sig).unwrap());
    check(
        &twice,
        expect![[
            r#"signature.malformed: the signature header is malformed: more than one Signature header"#
        ]],
    );
    check(
        &Case::drone().set("signature", &format!("{sig},keyId=\"x\"")),
        expect![
            "signature.malformed: the signature header is malformed: parameter `keyId` given twice (at byte 120)"
        ],
    );
    check(
        &Case::drone().set("signature", "keyId=\"hmac-key\",signature=\"é\""),
        expect![[
            r#"signature.malformed: the signature header is malformed: non-ASCII bytes in the header"#
        ]],
    );
    check(
        &Case::drone().set("signature", &format!("{sig},pad=\"{}\"", "x".repeat(9000))),
        expect![[
            r#"signature.malformed: the signature header is malformed: the header is longer than 8192 bytes"#
        ]],
    );
    // A signature too long for the verifier's stack buffer: well-formed, it cannot
    // match; not base64, it is malformed, as a short one would be.
    check(
        &Case::drone().set(
            "signature",
            &format!(
                r#"keyId="hmac-key",headers="date digest",signature="{}""#,
                "QUFB".repeat(34)
            ),
        ),
        expect!["signature.invalid: the signature does not match any configured secret"],
    );
    check(
        &Case::drone().set(
            "signature",
            &format!(
                r#"keyId="hmac-key",headers="date digest",signature="{}!""#,
                "QUFB".repeat(34)
            ),
        ),
        expect![
            "signature.malformed: the signature header is malformed: the `signature` value is not base64"
        ],
    );
    check(
        &Case::drone().set(
            "signature",
            r#"keyId="hmac-key",headers="date digest",signature="!!notbase64""#,
        ),
        expect![[
            r#"signature.malformed: the signature header is malformed: the `signature` value is not base64"#
        ]],
    );
    check(
        &Case::drone().set(
            "signature",
            r#"algorithm="hmac-sha256",headers="date digest",signature="AAAA""#,
        ),
        expect![[
            r#"signature.malformed: the signature header is malformed: the `keyId` parameter is missing"#
        ]],
    );
    let mut wrong = Case::drone();
    wrong.policy = Policy::new("another-secret");
    check(
        &wrong,
        expect![[r#"signature.invalid: the signature does not match any configured secret"#]],
    );
    let mut none = Case::drone();
    none.policy = Policy::with_secrets(Vec::<String>::new());
    check(
        &none,
        expect![[r#"signature.invalid: the signature does not match any configured secret"#]],
    );
}

#[test]
fn algorithm_is_pinned() {
    for (alg, expected) in [
        (
            "hmac-sha1",
            expect![[
                r#"signature.algorithm: the signature claims algorithm "hmac-sha1"; only hmac-sha256 is accepted"#
            ]],
        ),
        (
            "rsa-sha256",
            expect![[
                r#"signature.algorithm: the signature claims algorithm "rsa-sha256"; only hmac-sha256 is accepted"#
            ]],
        ),
        (
            "hs2019",
            expect![[
                r#"signature.algorithm: the signature claims algorithm "hs2019"; only hmac-sha256 is accepted"#
            ]],
        ),
        (
            "none",
            expect![[
                r#"signature.algorithm: the signature claims algorithm "none"; only hmac-sha256 is accepted"#
            ]],
        ),
        (
            "",
            expect![[
                r#"signature.algorithm: the signature claims algorithm ""; only hmac-sha256 is accepted"#
            ]],
        ),
        ("HMAC-SHA256", expect![[r#"ok secret=0 key=hmac-key"#]]),
    ] {
        check(
            &drone_with(Signer::new(VECTOR_SECRET).algorithm(Some(alg))),
            expected,
        );
    }
}

#[test]
fn key_ids() {
    check(
        &drone_with(Signer::new(VECTOR_SECRET).key_id("other")),
        expect![[r#"signature.key_id: keyId "other" is not accepted"#]],
    );
    let mut any = drone_with(Signer::new(VECTOR_SECRET).key_id("other"));
    any.policy = Policy::new(VECTOR_SECRET).any_key_id();
    check(&any, expect![[r#"ok secret=0 key=other"#]]);
    let mut listed = drone_with(Signer::new(VECTOR_SECRET).key_id("ci-2"));
    listed.policy = Policy::new(VECTOR_SECRET).key_ids(["ci-1", "ci-2"]);
    check(&listed, expect![[r#"ok secret=0 key=ci-2"#]]);
}

#[test]
fn signed_header_list() {
    let s = |h: &[&str]| drone_with(Signer::new(VECTOR_SECRET).headers(h));
    check(
        &s(&["date"]),
        expect![[
            r#"digest.unsigned: the signature does not cover the Digest header, so the body is not authenticated"#
        ]],
    );
    check(
        &s(&["digest"]),
        expect![[
            r#"date.unsigned: the signature does not cover the Date header, so the request's age is not authenticated"#
        ]],
    );
    check(
        &s(&[]),
        expect![[
            r#"date.unsigned: the signature does not cover the Date header, so the request's age is not authenticated"#
        ]],
    );
    check(
        &s(&["Date", "DIGEST"]),
        expect![[r#"ok secret=0 key=hmac-key"#]],
    );
    check(
        &s(&["date", "digest", "date"]),
        expect![[
            r#"signature.malformed: the signature header is malformed: "date" is listed twice in `headers`"#
        ]],
    );
    check(
        &Case::signed(
            &Signer::new(VECTOR_SECRET).headers(["(created)", "date", "digest"]),
            vector().header("(created)", "1577836800"),
        ),
        expect![[
            r#"signature.malformed: the signature header is malformed: (created) cannot be used with hmac-sha256"#
        ]],
    );
    check(
        &Case::signed(
            &Signer::new(VECTOR_SECRET).headers(["(expires)", "date", "digest"]),
            vector().header("(expires)", "1577836900"),
        ),
        expect![[
            r#"signature.malformed: the signature header is malformed: (expires) cannot be used with hmac-sha256"#
        ]],
    );
    let absent = Case::drone().set(
        "signature",
        r#"keyId="hmac-key",algorithm="hmac-sha256",signature="Y3+K+rKwpbbQxWG+alUx8ikrK7d/c1vRLCwgnWCs7so=""#,
    );
    check(
        &absent,
        expect![[
            r#"digest.unsigned: the signature does not cover the Digest header, so the body is not authenticated"#
        ]],
    );
    let extra = Case::signed(
        &Signer::new(VECTOR_SECRET).headers([
            "(request-target)",
            "date",
            "digest",
            "x-drone-event",
        ]),
        vector()
            .target("POST", "/hooks?x=1")
            .header("x-drone-event", "user"),
    );
    check(&extra, expect![[r#"ok secret=0 key=hmac-key"#]]);
    check(
        &Case::signed(
            &Signer::new(VECTOR_SECRET).headers(["(request-target)", "date", "digest"]),
            vector().target("POST", "/elsewhere"),
        ),
        expect![[r#"signature.invalid: the signature does not match any configured secret"#]],
    );
    check(
        &extra.remove("x-drone-event"),
        expect![[
            r#"signature.header_missing: the signature covers "x-drone-event", which the request does not have"#
        ]],
    );
    check(
        &Case::drone().remove("date"),
        expect![[r#"date.missing: the request has no Date header"#]],
    );
    check(
        &Case::drone().remove("digest"),
        expect![[r#"digest.missing: the request has no SHA-256 Digest of its body"#]],
    );
}

#[test]
fn dates() {
    let at = |secs_before: i64| {
        let mut c = Case::drone();
        c.now = if secs_before >= 0 {
            vector_time() + Duration::from_secs(secs_before as u64)
        } else {
            vector_time() - Duration::from_secs(secs_before.unsigned_abs())
        };
        c
    };
    check(&at(300), expect![[r#"ok secret=0 key=hmac-key"#]]);
    check(&at(-300), expect![[r#"ok secret=0 key=hmac-key"#]]);
    check(
        &at(360),
        expect![[r#"date.stale: the request was signed 360s ago, more than the 300s allowed"#]],
    );
    check(
        &at(-360),
        expect![[
            r#"date.future: the request is dated 360s in the future, more than the 300s allowed"#
        ]],
    );
    check(
        &at(86_400 * 365 * 5),
        expect![[
            r#"date.stale: the request was signed 157680000s ago, more than the 300s allowed"#
        ]],
    );
    let mut wide = at(3_600);
    wide.policy = Policy::new(VECTOR_SECRET).max_skew(Duration::from_secs(7_200));
    check(&wide, expect![[r#"ok secret=0 key=hmac-key"#]]);
    let dated = |date: &str| Case::signed(&Signer::new(VECTOR_SECRET), vector().date(date));
    check(
        &dated("Wednesday, 01-Jan-20 00:00:00 GMT"),
        expect![[r#"ok secret=0 key=hmac-key"#]],
    );
    check(
        &dated("Wed Jan  1 00:00:00 2020"),
        expect![[r#"ok secret=0 key=hmac-key"#]],
    );
    check(
        &dated("2020-01-01T00:00:00Z"),
        expect![[r#"date.malformed: the Date header is not an HTTP date"#]],
    );
    check(
        &dated("yesterday"),
        expect![[r#"date.malformed: the Date header is not an HTTP date"#]],
    );
    // Sent twice: the draft joins the values with ", ", which is not a date.
    let joined = Case::signed(
        &Signer::new(VECTOR_SECRET),
        vector().date("Wed, 01 Jan 2020 00:00:00 GMT, Wed, 01 Jan 2020 00:00:00 GMT"),
    );
    let mut sent_twice = joined;
    sent_twice.headers.remove("date");
    sent_twice.headers.append(
        "date",
        HeaderValue::from_static("Wed, 01 Jan 2020 00:00:00 GMT"),
    );
    sent_twice.headers.append(
        "date",
        HeaderValue::from_static("Wed, 01 Jan 2020 00:00:00 GMT"),
    );
    check(
        &sent_twice,
        expect![[r#"date.malformed: the Date header is not an HTTP date"#]],
    );
}

#[test]
fn digests() {
    const GOOD: &str = "SHA-256=1NqoE6nmLuLrxfKG+i0dak+F2+4FK26iIKpsfRy4Kvw=";
    let digest = |value: &str| Case::signed(&Signer::new(VECTOR_SECRET), vector().digest(value));
    check(&digest(GOOD), expect![[r#"ok secret=0 key=hmac-key"#]]);
    check(
        &digest("sha-256=1NqoE6nmLuLrxfKG+i0dak+F2+4FK26iIKpsfRy4Kvw="),
        expect![[r#"ok secret=0 key=hmac-key"#]],
    );
    check(
        &digest("SHA-256=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="),
        expect![[r#"digest.mismatch: the body is not the one that was signed"#]],
    );
    check(
        &digest(&format!(
            "{GOOD}, SHA-256=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
        )),
        expect![[r#"digest.mismatch: the body is not the one that was signed"#]],
    );
    let sha512 = "SHA-512=z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwvY7kxvUdBeoGlODJ6+SfaPg==";
    check(
        &digest(sha512),
        expect![[r#"digest.missing: the request has no SHA-256 Digest of its body"#]],
    );
    check(
        &digest(&format!("{GOOD},{sha512}")),
        expect![[r#"digest.mismatch: the body is not the one that was signed"#]],
    );
    check(
        &digest("MD5=Q2hlY2sgSW50ZWdyaXR5IQ=="),
        expect![[
            r#"digest.weak: the Digest header uses MD5, which is too weak; SHA-256 is required"#
        ]],
    );
    check(
        &digest(&format!("{GOOD}, SHA=2jmj7l5rSw0yVb/vlWAYkK/YBwk=")),
        expect![[
            r#"digest.weak: the Digest header uses SHA, which is too weak; SHA-256 is required"#
        ]],
    );
    check(
        &digest("SHA-256=d4da8a13a9e62ee2ebc5f28afa2d1d6a4f85dbee052b6ea2208a6c7d1c b82afc"),
        expect![[
            r#"digest.malformed: the Digest header is malformed: the SHA-256 value is not base64"#
        ]],
    );
    check(
        &digest("SHA-256=d4da8a13a9e62ee2ebc5f28afa2d1d6a4f85dbee052b6ea2208a6c7d1cb82a"),
        expect![
            "digest.malformed: the Digest header is malformed: the SHA-256 value is not base64"
        ],
    );
    // Values too long for the verifier's stack buffer keep the same outcomes.
    check(
        &digest(&format!("SHA-256={}", "QUFB".repeat(34))),
        expect![
            "digest.malformed: the Digest header is malformed: the SHA-256 value is 102 bytes long, not 32"
        ],
    );
    check(
        &digest(&format!("SHA-256={}!", "QUFB".repeat(34))),
        expect![
            "digest.malformed: the Digest header is malformed: the SHA-256 value is not base64"
        ],
    );
    check(
        &digest("SHA-256"),
        expect![[
            r#"digest.malformed: the Digest header is malformed: expected `algorithm=value`, got "SHA-256""#
        ]],
    );
    check(
        &digest("=abc"),
        expect![[r#"digest.malformed: the Digest header is malformed: empty algorithm name"#]],
    );
    check(
        &digest(&format!("{GOOD}, UNKNOWN-ALG=xyz")),
        expect![[r#"ok secret=0 key=hmac-key"#]],
    );
    // A valid signature over a captured header set, with a forged body: the hole in
    // Drone's reference receiver.
    let mut forged = Case::drone();
    forged.body =
        br#"{"event":"user","action":"deleted","user":{"id":1,"login":"octocat"}}"#.to_vec();
    check(
        &forged,
        expect![[r#"digest.mismatch: the body is not the one that was signed"#]],
    );
}

#[test]
fn nothing_secret_leaks() {
    let policy = Policy::new(VECTOR_SECRET);
    let debug = format!("{policy:?} {:?}", Signer::new(VECTOR_SECRET));
    assert!(!debug.contains(VECTOR_SECRET), "{debug}");
    assert!(debug.contains("<redacted>"));
    let mut forged = Case::drone();
    forged.body = b"{}".to_vec();
    let err = policy
        .verify(
            &RequestParts::new("POST", "/", &forged.headers, &forged.body),
            vector_time(),
        )
        .unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(
        !text.contains("1NqoE6nm"),
        "expected digest must not appear: {text}"
    );
    assert!(
        !text.contains("RBNvo1WzZ4oRRq0W9"),
        "the forged body's digest must not appear: {text}"
    );
    let mut wrong = Case::drone();
    wrong.policy = Policy::new("x");
    assert!(!wrong.render().contains("Y3+K"));
}

/// Two `X-Drone-Event` headers are refused whatever their values: which one names
/// the event would depend on the reader. One header, or none, is read as before.
#[test]
fn a_repeated_event_header_is_refused() {
    use dronehook_protocol::{DecodeError, Error, event_header};

    let case = Case::drone();
    let policy = &case.policy;
    for values in [["user", "user"], ["user", "build"], ["", "user"]] {
        let mut headers = case.headers.clone();
        headers.remove("x-drone-event");
        for value in values {
            headers.append("x-drone-event", HeaderValue::from_static(value));
        }
        assert_eq!(event_header(&headers), Err(DecodeError::EventRepeated));
        let req = RequestParts::new("POST", "/hooks", &headers, &case.body);
        assert_eq!(req.header_event(), Err(DecodeError::EventRepeated));
        // The signature does not cover the header, so the request verifies; the
        // repetition is refused where the header is read.
        assert!(policy.verify(&req, case.now).is_ok());
        let err = policy.verify_and_decode(&req, case.now).unwrap_err();
        assert!(
            matches!(err, Error::Decode(DecodeError::EventRepeated)),
            "{err:?}"
        );
        assert_eq!(err.code(), "payload.event_repeated");
        assert_eq!(
            err.to_string(),
            "payload.event_repeated: the request has more than one X-Drone-Event header"
        );
        let err = policy.verify_and_check(&req, case.now).unwrap_err();
        assert_eq!(err.code(), "payload.event_repeated");
    }
    // Three are refused too; one, or none, is read as before.
    let mut headers = case.headers.clone();
    headers.append("x-drone-event", HeaderValue::from_static("user"));
    headers.append("x-drone-event", HeaderValue::from_static("user"));
    assert_eq!(event_header(&headers), Err(DecodeError::EventRepeated));
    let req = RequestParts::new("POST", "/hooks", &case.headers, &case.body);
    assert_eq!(req.header_event(), Ok(Some("user")));
    assert!(policy.verify_and_decode(&req, case.now).is_ok());
    let mut headers = case.headers.clone();
    headers.remove("x-drone-event");
    assert_eq!(event_header(&headers), Ok(None));
}
