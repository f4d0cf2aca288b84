//! The catalog through the verifier: every case that is not about transport
//! is rendered, parsed back from its raw bytes and verified at the time it was
//! signed; the outcome must be exactly the case's `verify` expectation.

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dronehook_audit::{self as audit, Case, Group, RenderContext, VerifyOutcome, raw};
use dronehook_protocol::{Policy, RequestParts};

const SECRET: &str = "hostile-test-secret";

/// 2026-11-23T05:00:00Z: any time works, the catalog reads no clock.
fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_795_410_000)
}

/// Parses what `Case::render` writes, with the crate's own request parser (httparse
/// underneath, independent of the renderer).
fn parse(raw: &[u8]) -> raw::Request {
    raw::Request::parse(raw).unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(raw)))
}

/// What the verifier says about one rendering of a case.
fn verify(case: &Case, ctx: &RenderContext) -> String {
    verify_copy(&case.render(ctx), ctx)
}

/// What the verifier says about one rendered copy of a case.
fn verify_copy(bytes: &[u8], ctx: &RenderContext) -> String {
    let req = parse(bytes);
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
    for case in audit::all() {
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
    // The generated fixtures are the catalog written out: a case dropped from the
    // catalog (or left unchecked) makes the counts differ.
    let with_verify = fixture_expects()
        .iter()
        .filter(|text| !text.lines().any(|l| l == "verify: -"))
        .count();
    assert_eq!(checked, with_verify);
}

/// Cases that share a code fail for the reason they are about, not for an accident
/// of the request (the message says which).
#[test]
fn cases_fail_for_their_own_reason() {
    let ctx = RenderContext::new(SECRET, now());
    let reasons = [
        ("signature_empty", "the header is empty"),
        ("signature_not_base64", "is not base64"),
        ("signature_non_canonical_base64", "is not base64"),
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
    ];
    for (name, reason) in reasons {
        let case = audit::get(name).unwrap();
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
    let cases = audit::all();
    assert_eq!(cases.len(), fixture_expects().len());
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
        // A refusal names its code; an acceptance has an empty body ("closed or a
        // 4xx" names none).
        assert_eq!(
            case.server.code.is_empty(),
            case.server.is_accepted() || case.server.is_closed_or_4xx(),
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
        audit::get("digest_body_replaced").map(|c| c.server.to_string()),
        Some("401 digest.mismatch".to_owned())
    );
    assert_eq!(audit::get("no_such_case"), None);
}

#[test]
fn rendering_is_deterministic_and_uses_the_context() {
    let case = audit::get("signature_valid").unwrap();
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
    let exact = audit::get("replay_exact").unwrap();
    let copies = exact.render_copies(&ctx);
    assert_eq!(copies.len(), 2);
    assert_eq!(copies[0], copies[1]);

    let many = audit::get("replay_50_at_once").unwrap();
    let copies = many.render_copies(&ctx);
    assert_eq!(copies.len(), 50);
    assert!(copies.iter().all(|c| *c == copies[0]));
    assert_eq!(many.expected_for_copy(49).to_string(), "204");

    let moved = audit::get("replay_other_path").unwrap();
    let copies = moved.render_copies(&ctx);
    assert!(copies[0].starts_with(b"POST /hooks HTTP/1.1\r\n"));
    assert!(copies[1].starts_with(b"POST /hooks/elsewhere HTTP/1.1\r\n"));
    // Only the request line differs: the signed headers and the body are the same.
    let tail = |c: &[u8]| c[c.iter().position(|&b| b == b'\n').unwrap()..].to_vec();
    assert_eq!(tail(&copies[0]), tail(&copies[1]));
    assert_eq!(moved.expected_for_copy(0).to_string(), "204");
    assert_eq!(moved.expected_for_copy(1).to_string(), "404 not_found");

    // Re-spelled copies: the same Date, Digest, signature value and body, the
    // parameters written in another order or carried in another header.
    let head_line = |c: &[u8], name: &str| {
        String::from_utf8_lossy(c)
            .lines()
            .find(|l| l.starts_with(name))
            .map(str::to_owned)
    };
    let reordered = audit::get("replay_parameters_reordered").unwrap();
    let copies = reordered.render_copies(&ctx);
    let (first, later) = (
        head_line(&copies[0], "Signature: ").unwrap(),
        head_line(&copies[1], "Signature: ").unwrap(),
    );
    assert!(
        first.starts_with("Signature: keyId=\"hmac-key\",algorithm="),
        "{first}"
    );
    assert!(
        later.starts_with("Signature: headers=\"date digest\",signature="),
        "{later}"
    );
    let param = |line: &str, name: &str| {
        line.split(',')
            .find(|p| p.trim_start_matches("Signature: ").starts_with(name))
            .map(str::to_owned)
    };
    assert_eq!(param(&first, "signature="), param(&later, "signature="));
    for name in ["Date: ", "Digest: "] {
        assert_eq!(head_line(&copies[0], name), head_line(&copies[1], name));
    }
    assert_eq!(verify_copy(&copies[1], &ctx), "valid");
    let moved = audit::get("replay_moved_to_authorization").unwrap();
    let copies = moved.render_copies(&ctx);
    assert_eq!(head_line(&copies[1], "Signature: "), None);
    assert_eq!(
        head_line(&copies[1], "Authorization: ").unwrap(),
        head_line(&copies[0], "Signature: ").unwrap().replacen(
            "Signature: ",
            "Authorization: Signature ",
            1
        )
    );
    assert_eq!(verify_copy(&copies[1], &ctx), "valid");
    assert_eq!(moved.expected_for_copy(0).to_string(), "202");
    assert_eq!(moved.expected_for_copy(1).to_string(), "204");

    let query = audit::get("replay_other_query").unwrap();
    let copies = query.render_copies(&ctx);
    assert!(copies[1].starts_with(b"POST /hooks?replayed=1 HTTP/1.1\r\n"));
    assert_eq!(
        audit::get("signature_valid")
            .unwrap()
            .render_copies(&ctx)
            .len(),
        1
    );
}

#[test]
fn templates_use_the_fixture_placeholders() {
    let text = |name: &str| String::from_utf8(audit::get(name).unwrap().template_text()).unwrap();
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

#[test]
fn connection_level_cases_render_their_bytes() {
    use audit::{Connection, ServerOutcome};
    let ctx = RenderContext::new(SECRET, now()).nonce("n-1");
    let pipelined = audit::get("transport_pipelined_forgery").unwrap();
    assert!(matches!(pipelined.connection, Connection::Pipelined(ref more) if more.len() == 1));
    assert_eq!(pipelined.answers_per_connection(), 2);
    assert_eq!(pipelined.expected_for_copy(0), ServerOutcome::new(204, ""));
    assert_eq!(
        pipelined.expected_for_copy(1),
        ServerOutcome::new(401, "digest.mismatch")
    );
    // Two requests with the same signed head: the first valid, the second forged.
    let bytes = pipelined.render(&ctx);
    let first = parse(&bytes);
    let first_len =
        String::from_utf8_lossy(&bytes).find("\r\n\r\n").unwrap() + 4 + first.body.len();
    let second = parse(&bytes[first_len..]);
    assert!(first.headers.get("connection").is_none());
    assert_eq!(second.headers["connection"], "close");
    for name in ["date", "digest", "signature"] {
        assert_eq!(first.headers[name], second.headers[name], "{name}");
    }
    assert_eq!(verify_copy(&bytes[..first_len], &ctx), "valid");
    assert_eq!(verify_copy(&bytes[first_len..], &ctx), "digest.mismatch");
    let template = String::from_utf8(pipelined.template_text()).unwrap();
    assert_eq!(
        template
            .matches("\r\n{{pipelined}}\r\nPOST / HTTP/1.1\r\n")
            .count(),
        1,
        "{template}"
    );

    let preface = audit::get("transport_http2_preface").unwrap();
    assert_eq!(preface.server, ServerOutcome::CLOSED_OR_4XX);
    assert_eq!(preface.server.to_string(), "closed or 4xx");
    assert!(
        preface
            .render(&ctx)
            .starts_with(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    );
    assert_eq!(preface.template_text(), preface.render(&ctx));
}

/// The text of every `fixtures/hostile/*.expect` file (one a case).
fn fixture_expects() -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/hostile");
    let files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "expect"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    files
}
