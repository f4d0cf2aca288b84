//! The hostile catalog through the verifier: every case that is not about transport
//! is rendered, parsed back from its raw bytes and verified at the time it was
//! signed; the outcome must be exactly the case's `verify` expectation.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dronehook_protocol::hostile::{self, Case, Group, RenderContext, VerifyOutcome};
use dronehook_protocol::http::{HeaderMap, HeaderName, HeaderValue};
use dronehook_protocol::{Policy, RequestParts};

const SECRET: &str = "hostile-test-secret";

/// 2026-11-23T05:00:00Z: any time works, the catalog reads no clock.
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_795_410_000)
}

/// A request parsed back from the catalog's own bytes.
struct Parsed {
    method: String,
    target: String,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// Parses what `Case::render` writes: a request line, `Name: value` lines, a blank
/// line, and a body framed by `Content-Length` or `Transfer-Encoding: chunked`.
fn parse(raw: &[u8]) -> Parsed {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a blank line ends the head");
    let (head, rest) = (&raw[..split], &raw[split + 4..]);
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let request_line = String::from_utf8(lines.next().unwrap().to_vec()).unwrap();
    let mut parts = request_line.split(' ');
    let method = parts.next().unwrap().to_owned();
    let target = parts.next().unwrap().to_owned();
    assert_eq!(parts.next(), Some("HTTP/1.1"));
    let mut headers = HeaderMap::new();
    for line in lines {
        let colon = line
            .iter()
            .position(|&b| b == b':')
            .expect("a header has a colon");
        let name = HeaderName::from_bytes(&line[..colon]).unwrap();
        let value = HeaderValue::from_bytes(line[colon + 1..].trim_ascii()).unwrap();
        headers.append(name, value);
    }
    let body = if headers.get("transfer-encoding").is_some() {
        dechunk(rest)
    } else {
        let length: usize = headers
            .get("content-length")
            .map_or(0, |v| v.to_str().unwrap().parse().unwrap());
        assert_eq!(rest.len(), length, "Content-Length frames the body");
        rest.to_vec()
    };
    Parsed {
        method,
        target,
        headers,
        body,
    }
}

fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&rest[..end]).unwrap(), 16).unwrap();
        rest = &rest[end + 2..];
        if size == 0 {
            assert_eq!(rest, b"\r\n");
            return body;
        }
        body.extend_from_slice(&rest[..size]);
        assert_eq!(&rest[size..size + 2], b"\r\n");
        rest = &rest[size + 2..];
    }
}

/// What the verifier says about one rendering of a case.
fn verify(case: &Case, ctx: &RenderContext) -> String {
    let req = parse(&case.render(ctx));
    let parts = RequestParts::new(&req.method, &req.target, &req.headers, &req.body);
    match Policy::new(SECRET).verify_and_decode(&parts, ctx.now) {
        Ok(_) => "valid".to_owned(),
        Err(e) => e.code().to_owned(),
    }
}

#[test]
fn every_case_verifies_as_expected() {
    let ctx = RenderContext::new(SECRET, now())
        .host("receiver.test:8443")
        .base_path("/hooks/drone")
        .nonce("run-1");
    let mut failures = Vec::new();
    let mut checked = 0;
    for case in hostile::all() {
        let expected = match case.verify {
            VerifyOutcome::NotApplicable => continue,
            other => other.to_string(),
        };
        checked += 1;
        let got = verify(&case, &ctx);
        if got != expected {
            failures.push(format!("{}: expected {expected}, got {got}", case.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(checked >= 40, "only {checked} cases were checked");
}

/// Cases that share a code fail for the reason they are about, not for an accident
/// of the request (the message says which).
#[test]
fn cases_fail_for_their_own_reason() {
    let ctx = RenderContext::new(SECRET, now());
    let reasons = [
        ("signature_empty", "the header is empty"),
        ("signature_not_base64", "is not base64"),
        (
            "signature_and_authorization",
            "both Signature and Authorization",
        ),
        (
            "signature_docs_authorization",
            "does not use the `Signature` scheme",
        ),
        ("signature_twice", "more than one Signature header"),
        (
            "signature_duplicate_parameter",
            "parameter `keyId` given twice",
        ),
        ("signature_unterminated_quote", "unterminated quoted value"),
        (
            "signature_junk_between_parameters",
            "expected `,` between parameters",
        ),
        ("signature_non_ascii", "non-ASCII"),
        ("signature_over_8kib", "longer than 8192 bytes"),
        ("key_id_missing", "the `keyId` parameter is missing"),
        ("headers_name_repeated", "listed twice"),
        ("headers_created", "(created) cannot be used"),
        ("headers_expires", "(expires) cannot be used"),
        ("digest_hex", "is 48 bytes long, not 32"),
        ("digest_bad_base64", "the SHA-256 value is not base64"),
        ("digest_md5", "uses MD5"),
        ("digest_sha1", "uses SHA,"),
        ("body_invalid_utf8", "invalid unicode code point"),
        ("body_lone_surrogate", "unexpected end of hex escape"),
        ("body_byte_order_mark", "expected value"),
        ("body_not_json", "expected value"),
        ("body_empty", "EOF while parsing"),
        ("body_trailing_bytes", "trailing characters"),
        ("body_nested_arrays", "recursion limit exceeded"),
        ("body_number_1e400", "number out of range"),
        ("body_integer_2_pow_64", "expected i64"),
        ("body_duplicate_keys", "duplicate field `action`"),
    ];
    for (name, reason) in reasons {
        let case = hostile::get(name).unwrap();
        let req = parse(&case.render(&ctx));
        let parts = RequestParts::new(&req.method, &req.target, &req.headers, &req.body);
        let err = Policy::new(SECRET)
            .verify_and_decode(&parts, ctx.now)
            .unwrap_err();
        assert!(
            err.to_string().contains(reason),
            "{name}: {err} does not say {reason:?}"
        );
    }
}

#[test]
fn the_catalog_is_large_named_and_grouped() {
    let cases = hostile::all();
    assert!(cases.len() >= 48, "{} cases", cases.len());
    let names: BTreeSet<&str> = cases.iter().map(|c| c.name).collect();
    assert_eq!(names.len(), cases.len(), "case names are unique");
    for case in &cases {
        assert!(
            case.name.starts_with(&format!("{}_", case.group)),
            "{} is named after its group",
            case.name
        );
        assert!(
            case.name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "{} is snake_case",
            case.name
        );
        assert!(!case.summary.is_empty() && !case.reference.is_empty());
        // A refusal names its code; an acceptance has an empty body.
        assert_eq!(
            case.server.code.is_empty(),
            case.server.is_accepted(),
            "{}",
            case.name
        );
        if case.verify == VerifyOutcome::NotApplicable {
            assert_eq!(case.group, Group::Transport, "{}", case.name);
        }
    }
    for group in Group::ALL {
        assert!(
            cases.iter().any(|c| c.group == *group),
            "group {group} has cases"
        );
    }
    assert_eq!(
        hostile::get("digest_body_replaced").map(|c| c.server.to_string()),
        Some("401 digest.mismatch".to_owned())
    );
    assert_eq!(hostile::get("no_such_case"), None);
}

#[test]
fn rendering_is_deterministic_and_uses_the_context() {
    let case = hostile::get("signature_valid").unwrap();
    let ctx = RenderContext::new(SECRET, now())
        .host("example.test")
        .base_path("/in")
        .nonce("n-42");
    assert_eq!(case.render(&ctx), case.render(&ctx));
    let text = String::from_utf8(case.render(&ctx)).unwrap();
    assert!(text.starts_with("POST /in HTTP/1.1\r\nHost: example.test\r\nX-Drone-Event: user\r\n"));
    assert!(
        text.contains("\r\nDate: Mon, 23 Nov 2026 05:00:00 GMT\r\n"),
        "{text}"
    );
    assert!(text.contains("+hostile.signature_valid.n-42\""), "{text}");
    assert!(text.ends_with("}}"));
    // Another nonce gives another body, hence another digest and signature.
    let other = case.render(&ctx.clone().nonce("n-43"));
    assert_ne!(other, case.render(&ctx));
    // The secret matters: a request signed with another one is refused.
    let wrong = RenderContext::new("another-secret", now());
    assert_eq!(verify(&case, &wrong), "signature.invalid");
}

#[test]
fn replays_render_their_copies() {
    let ctx = RenderContext::new(SECRET, now()).base_path("/hooks");
    let exact = hostile::get("replay_exact").unwrap();
    let copies = exact.render_copies(&ctx);
    assert_eq!(copies.len(), 2);
    assert_eq!(copies[0], copies[1]);

    let many = hostile::get("replay_50_at_once").unwrap();
    let copies = many.render_copies(&ctx);
    assert_eq!(copies.len(), 50);
    assert!(copies.iter().all(|c| *c == copies[0]));
    assert_eq!(many.expected_for_copy(49).to_string(), "204");

    let moved = hostile::get("replay_other_path").unwrap();
    let copies = moved.render_copies(&ctx);
    assert!(copies[0].starts_with(b"POST /hooks HTTP/1.1\r\n"));
    assert!(copies[1].starts_with(b"POST /hooks/elsewhere HTTP/1.1\r\n"));
    // Only the request line differs: the signed headers and the body are the same.
    let tail = |c: &[u8]| c[c.iter().position(|&b| b == b'\n').unwrap()..].to_vec();
    assert_eq!(tail(&copies[0]), tail(&copies[1]));
    assert_eq!(moved.expected_for_copy(0).to_string(), "204");
    assert_eq!(moved.expected_for_copy(1).to_string(), "404 not_found");

    let query = hostile::get("replay_other_query").unwrap();
    let copies = query.render_copies(&ctx);
    assert!(copies[1].starts_with(b"POST /hooks?replayed=1 HTTP/1.1\r\n"));
    assert_eq!(
        hostile::get("signature_valid")
            .unwrap()
            .render_copies(&ctx)
            .len(),
        1
    );
}

#[test]
fn templates_use_the_fixture_placeholders() {
    let text = |name: &str| String::from_utf8(hostile::get(name).unwrap().template_text()).unwrap();
    let valid = text("signature_valid");
    assert!(
        valid.starts_with(
            "POST / HTTP/1.1\r\nHost: localhost\r\nX-Drone-Event: user\r\nContent-Type: application/json\r\nDigest: {{digest}}\r\nDate: {{date}}\r\nSignature: {{signature}}\r\nContent-Length: {{content-length}}\r\nConnection: close\r\n\r\n{\"event\":\"user\""
        ),
        "{valid}"
    );
    assert!(valid.contains("+hostile.signature_valid.0\""));
    let stale = text("date_stale");
    assert!(stale.contains("\r\nDate: {{date:-600}}\r\n"), "{stale}");
    let sha1 = text("algorithm_hmac_sha1");
    assert!(
        sha1.contains("\r\nSignature: keyId=\"hmac-key\",algorithm=\"hmac-sha1\",signature=\"{{signature-b64:date digest}}\",headers=\"date digest\"\r\n"),
        "{sha1}"
    );
    let absent = text("headers_absent");
    assert!(
        absent.contains("signature=\"{{signature-b64:date}}\"\r\n"),
        "{absent}"
    );
    // A forged body keeps the literal digest of the body that was signed.
    let forged = text("digest_body_replaced");
    assert!(forged.contains("\r\nDigest: SHA-256="), "{forged}");
    assert!(!forged.contains("{{content-length}}"));
    let unterminated = text("signature_unterminated_quote");
    assert!(
        unterminated.contains("headers=\"date digest\r\n"),
        "{unterminated}"
    );
    let rfc850 = text("date_rfc850");
    assert!(rfc850.contains("\r\nDate: {{date-rfc850}}\r\n"), "{rfc850}");
    let wrong = text("signature_wrong_secret");
    assert!(!wrong.contains("{{signature"), "{wrong}");
}
