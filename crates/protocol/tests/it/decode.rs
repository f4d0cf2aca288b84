//! Decoding: lenient where Drone versions differ, strict where safety needs it.
//! Every case goes through one `check` helper that renders the outcome as a line.

use dronehook_protocol::{Envelope, samples};
use expect_test::{Expect, expect};

fn render(body: &[u8], header: Option<&str>) -> String {
    match Envelope::decode_with_header(body, header) {
        Ok(e) => format!(
            "ok {}:{} repo={:?} build={:?} extra={}",
            e.event,
            e.action,
            e.repo_slug(),
            e.build_number(),
            e.extra.len()
        ),
        Err(err) => format!("{}: {err}", err.code()),
    }
}

fn check(body: &[u8], header: Option<&str>, expected: Expect) {
    expected.assert_eq(&render(body, header));
}

#[test]
fn header_event_rules() {
    check(
        br#"{"action":"created","user":{"login":"o"}}"#,
        Some("user"),
        expect![[r#"ok user:created repo=None build=None extra=0"#]],
    );
    check(
        br#"{"action":"created"}"#,
        None,
        expect![[
            r#"payload.event_missing: the payload has no `event` and no X-Drone-Event header names one"#
        ]],
    );
    check(
        br#"{"event":"repo","action":"enabled"}"#,
        Some("build"),
        expect![[
            r#"payload.event_mismatch: the X-Drone-Event header says "build" but the signed body says "repo""#
        ]],
    );
    check(
        br#"{"event":"repo","action":"enabled"}"#,
        Some("repo"),
        expect![[r#"ok repo:enabled repo=None build=None extra=0"#]],
    );
}

#[test]
fn strictness_where_safety_needs_it() {
    check(
        br#"{"event":"user","event":"repo"}"#,
        None,
        expect![
            "payload.duplicate_key: the body is not a valid payload: duplicate field `event` in Envelope at line 1 column 23"
        ],
    );
    check(
        br#"{"event":"build","build":{"number":1,"number":2}}"#,
        None,
        expect![
            "payload.duplicate_key: the body is not a valid payload: duplicate field `number` in Build at line 1 column 45"
        ],
    );
    check(
        br#"{"event":"user","x":1,"x":2}"#,
        None,
        expect![
            "payload.duplicate_key: the body is not a valid payload: duplicate field `x` in Envelope at line 1 column 25"
        ],
    );
    check(
        br#"{"event":"user","user":{"avatar":"a","avatar_url":"b"}}"#,
        None,
        expect![
            "payload.duplicate_key: the body is not a valid payload: duplicate field `avatar_url` in User at line 1 column 49"
        ],
    );
    check(
        br#"{"event":"user"} {}"#,
        None,
        expect![[
            r#"payload.invalid: the body is not a valid payload: trailing characters at line 1 column 18"#
        ]],
    );
    check(
        b"{\"event\":\"user\",\"action\":\"\xff\"}",
        None,
        expect![
            "payload.invalid: the body is not a valid payload: invalid unicode code point at line 1 column 27"
        ],
    );
    check(
        br#"{"event":"user","action":"\ud800"}"#,
        None,
        expect![
            "payload.invalid: the body is not a valid payload: unexpected end of hex escape at line 1 column 33"
        ],
    );
    check(
        b"\xef\xbb\xbf{\"event\":\"user\"}",
        None,
        expect![[
            r#"payload.invalid: the body is not a valid payload: expected value at line 1 column 1"#
        ]],
    );
    check(
        b"",
        None,
        expect![[
            r#"payload.invalid: the body is not a valid payload: EOF while parsing a value at line 1 column 0"#
        ]],
    );
    check(
        b"not json",
        None,
        expect![[
            r#"payload.invalid: the body is not a valid payload: expected ident at line 1 column 2"#
        ]],
    );
    check(
        br#"{"event":"build","build":{"number":1e400}}"#,
        None,
        expect![[
            r#"payload.invalid: the body is not a valid payload: number out of range at line 1 column 40"#
        ]],
    );
    check(
        br#"{"event":"build","build":{"number":18446744073709551616}}"#,
        None,
        expect![
            "payload.invalid: the body is not a valid payload: invalid type: floating point `1.8446744073709552e+19`, expected i64 at line 1 column 55"
        ],
    );
    check(
        br#"{"event":"build","build":{"number":9223372036854775808}}"#,
        None,
        expect![[
            r#"payload.invalid: the body is not a valid payload: invalid value: integer `9223372036854775808`, expected i64 at line 1 column 54"#
        ]],
    );
    check(
        br#"{"event":"build","build":{"number":"42"}}"#,
        None,
        expect![[
            r#"payload.invalid: the body is not a valid payload: invalid type: string "42", expected i64 at line 1 column 39"#
        ]],
    );
    check(
        br#"["event"]"#,
        None,
        expect![
            "payload.invalid: the body is not a valid payload: invalid type: sequence, expected a JSON object (Envelope) at line 1 column 0"
        ],
    );
    let deep = format!(
        "{{\"event\":\"user\",\"x\":{}{}}}",
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    check(
        deep.as_bytes(),
        None,
        expect![
            "payload.invalid: the body is not a valid payload: recursion limit exceeded at line 1 column 147"
        ],
    );
}

#[test]
fn leniency_where_drone_versions_differ() {
    // Missing fields default, `null` reads as zero, unknown values are carried through.
    check(
        br#"{"event":"build","action":"archived","build":null,"repo":{"slug":"a/b","id":null}}"#,
        None,
        expect![[r#"ok build:archived repo=Some("a/b") build=None extra=0"#]],
    );
    check(
        br#"{"event":"deployment","action":"created","future":{"z":1,"a":[true,null]}}"#,
        None,
        expect![[r#"ok deployment:created repo=None build=None extra=1"#]],
    );
    let e = Envelope::decode(
        br#"{"event":"user","action":"created","user":{"login":"o","avatar_url":"http://a"}}"#,
    )
    .unwrap();
    assert_eq!(e.user.as_deref().unwrap().avatar, "http://a");
}

#[test]
fn unknown_fields_are_written_back() {
    let body = br#"{"event":"repo","action":"enabled","repo":{"id":1,"new_field":"x<","throttle":0},"trace_id":"abc","nested":{"b":2,"a":1}}"#;
    let e = Envelope::decode(body).unwrap();
    let out = String::from_utf8(e.encode()).unwrap();
    assert!(
        out.contains(r#""version":0,"new_field":"x\u003c"}"#),
        "{out}"
    );
    assert!(
        out.ends_with(r#","trace_id":"abc","nested":{"a":1,"b":2}}"#),
        "{out}"
    );
    // Encoding again after decoding the output is stable.
    assert_eq!(
        Envelope::decode(out.as_bytes()).unwrap().encode(),
        out.as_bytes()
    );
}

#[test]
fn every_sample_decodes_and_drone_samples_reencode_exactly() {
    let all = samples::all();
    assert_eq!(all.iter().filter(|s| s.drone).count(), 9);
    assert_eq!(all.iter().filter(|s| !s.drone).count(), 7);
    for s in &all {
        let e = Envelope::decode_with_header(&s.body, Some(s.header_event))
            .unwrap_or_else(|err| panic!("{}: {err}", s.name));
        assert_eq!(e.event.as_str(), s.header_event, "{}", s.name);
        if s.drone {
            assert!(e.is_known());
            assert_eq!(e.encode(), s.body, "{}", s.name);
        }
    }
    let example = samples::get("docs_repo_deactivated").unwrap();
    let e = Envelope::decode_with_header(&example.body, Some("repo")).unwrap();
    assert_eq!(
        e.action.as_str(),
        "activated",
        "the documentation's mistake is carried, not corrected"
    );
    assert!(!e.repo.unwrap().active);
    assert!(samples::get("no_such_sample").is_none());
}
