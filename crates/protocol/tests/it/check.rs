//! The checking pass against the decoder: `Envelope::check_with_header` must accept
//! exactly what `Envelope::decode_with_header` accepts, with the same error, and read
//! the same outline. Compared on every payload the project has, on hand-picked edge
//! cases, and on random mutations of real payloads.

use dronehook_protocol::{Envelope, Outline, samples};
use proptest::prelude::*;

use crate::repo_root;

/// Both ways, compared; returns the shared result for further assertions.
///
/// The decoder itself is compared with serde alone too: its fast path must
/// build the same envelope, or decline.
fn check(body: &[u8], header: Option<&str>) -> Result<Outline, String> {
    let full = Envelope::decode_with_header(body, header);
    assert_eq!(
        full,
        dronehook_protocol::__private::decode_with_header_serde(body, header),
        "the fast decoder and serde disagree on {:?} (header {header:?})",
        String::from_utf8_lossy(body)
    );
    let decoded = full.map(|e| Outline::of(&e));
    let checked = Envelope::check_with_header(body, header);
    assert_eq!(
        checked,
        decoded,
        "check and decode disagree on {:?} (header {header:?})",
        String::from_utf8_lossy(body)
    );
    checked.map_err(|e| e.code().to_owned())
}

/// Every payload in the repository: samples, Drone captures, fuzz seeds and
/// regressions (some of which do not decode).
fn every_payload() -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = samples::all().into_iter().map(|s| s.body).collect();
    for dir in [
        "fixtures/corpus",
        "fixtures/payloads",
        "fuzz/seeds/payload_decode",
        "fuzz/regressions/payload_decode",
    ] {
        let mut paths: Vec<_> = std::fs::read_dir(repo_root().join(dir))
            .unwrap_or_else(|e| panic!("{dir}: {e}"))
            .map(|entry| entry.unwrap().path())
            .filter(|p| p.extension().is_none_or(|x| x != "md"))
            .collect();
        paths.sort();
        out.extend(paths.iter().map(|p| std::fs::read(p).unwrap()));
    }
    out
}

#[test]
fn every_payload_checks_as_it_decodes() {
    let payloads = every_payload();
    assert!(payloads.len() >= 40, "{} payloads", payloads.len());
    let mut accepted = 0;
    for body in &payloads {
        for header in [None, Some("build"), Some("user")] {
            if check(body, header).is_ok() {
                accepted += 1;
            }
        }
    }
    // Most are real payloads: the comparison must not be between two rejections.
    assert!(accepted >= payloads.len(), "{accepted} accepted");
}

#[test]
fn edge_cases_check_as_they_decode() {
    let cases: &[(&str, Result<(), &str>)] = &[
        (r#"{"event":"build","action":"created"}"#, Ok(())),
        (
            r#"{"event":"build","event":"build"}"#,
            Err("payload.duplicate_key"),
        ),
        (
            r#"{"event":"build","x":1,"x":2}"#,
            Err("payload.duplicate_key"),
        ),
        (
            r#"{"event":"user","user":{"avatar":"a","avatar_url":"b"}}"#,
            Err("payload.duplicate_key"),
        ),
        (r#"{"event":"user","user":{"avatar_url":"b"}}"#, Ok(())),
        (r#"{"event":"build","x":1e400}"#, Err("payload.invalid")),
        (
            r#"{"event":"build","x":[1,{"a":1,"b":2},"s\n",null,true,-0.5e-3]}"#,
            Ok(()),
        ),
        (
            r#"{"event":"build","x":[1,{"a":1,"a":2},"s\n",null,true,-0.5e-3]}"#,
            Err("payload.duplicate_key"),
        ),
        (
            r#"{"event":"build","build":{"number":"42"}}"#,
            Err("payload.invalid"),
        ),
        (
            r#"{"event":"build","build":{"number":4.2}}"#,
            Err("payload.invalid"),
        ),
        (
            r#"{"event":"build","build":{"number":9223372036854775808}}"#,
            Err("payload.invalid"),
        ),
        (r#"{"event":"build","build":{"number":null}}"#, Ok(())),
        (
            r#"{"event":"build","build":null,"repo":null,"user":null}"#,
            Ok(()),
        ),
        (
            r#"{"event":"build","build":{"stages":[null]}}"#,
            Err("payload.invalid"),
        ),
        (
            r#"{"event":"build","build":{"stages":[{"depends_on":[null]}]}}"#,
            Err("payload.invalid"),
        ),
        (
            r#"{"event":"build","build":{"stages":[{"depends_on":["a\u0041"]}]}}"#,
            Ok(()),
        ),
        (
            r#"{"event":"build","build":{"params":{"a":"1","a":"2"}}}"#,
            Err("payload.duplicate_key"),
        ),
        (
            r#"{"event":"build","build":{"params":{"a":null}}}"#,
            Err("payload.invalid"),
        ),
        (r#"{"event":"build","build":{"params":null}}"#, Ok(())),
        (r#"{"event":"bu\u0069ld","repo":{"slug":"a\/b"}}"#, Ok(())),
        (r#"{"event":"build","repo":{"slug":""}}"#, Ok(())),
        (
            r#"{"event":"build","status":"\ud800"}"#,
            Err("payload.invalid"),
        ),
        (r#"{"event":"build"} x"#, Err("payload.invalid")),
        (
            r#"{"event":"build","build":{"status":5}}"#,
            Err("payload.invalid"),
        ),
        (
            r#"{"event":"build","repo":{"private":"true"}}"#,
            Err("payload.invalid"),
        ),
        (r#"{"action":"created"}"#, Err("payload.event_missing")),
        (r#"[]"#, Err("payload.invalid")),
        (r#"null"#, Err("payload.invalid")),
    ];
    for (body, expected) in cases {
        let got = check(body.as_bytes(), None).map(|_| ());
        assert_eq!(got, expected.map_err(str::to_owned), "{body}");
    }
    // The header fills in a missing event and must agree with a present one.
    assert!(check(br#"{"action":"created"}"#, Some("user")).is_ok());
    assert_eq!(
        check(br#"{"event":"user"}"#, Some("repo")),
        Err("payload.event_mismatch".to_owned())
    );
    // Deep nesting in an unknown field hits serde_json's limit in both.
    let deep = format!(
        r#"{{"event":"build","x":{}{}}}"#,
        "[".repeat(200),
        "]".repeat(200)
    );
    assert_eq!(
        check(deep.as_bytes(), None),
        Err("payload.invalid".to_owned())
    );
    assert_eq!(check(b"\xff", None), Err("payload.invalid".to_owned()));
}

#[test]
fn the_outline_reads_escaped_fields() {
    let outline = check(
        br#"{"event":"build","action":"upd\u0061ted","repo":{"slug":"octocat\/hello"},"build":{"number":7}}"#,
        None,
    )
    .unwrap();
    assert_eq!(outline.action.as_str(), "updated");
    assert_eq!(outline.repo_slug.as_deref(), Some("octocat/hello"));
    assert_eq!(outline.build_number, Some(7));
}

/// A key given twice is refused with one code wherever it sits: in the models'
/// objects, in string maps, in unknown objects at any depth, inside arrays, and when
/// the two are written differently but unescape to the same key. Each case is checked
/// against the decoder, and against the same body with the second key renamed, which
/// both accept.
#[test]
fn duplicate_keys_at_any_depth_check_as_they_decode() {
    // `K` is the second occurrence of the object's first key; `"j"` in its place is
    // no repeat.
    let cases = [
        // Depth 1: the envelope's own fields and unknown ones.
        r#"{"k":1,"event":"build",K:2}"#,
        r#"{"action":"a","event":"build",K:"b"}"#,
        // Depth 2: the repository's fields, an unknown object, a string map.
        r#"{"event":"build","repo":{"slug":"a/b","id":1,K:"c/d"}}"#,
        r#"{"event":"build","x":{"k":1,K:2}}"#,
        r#"{"event":"build","build":{"params":{"k":"1",K:"2"}}}"#,
        // Depth 3 to 5, through the models and through unknown objects.
        r#"{"event":"build","build":{"stages":[{"name":"a",K:"b"}]}}"#,
        r#"{"event":"build","build":{"stages":[{"labels":{"k":"v",K:"w"}}]}}"#,
        r#"{"event":"build","build":{"stages":[{"steps":[{"x":{"k":1,K:2}}]}]}}"#,
        r#"{"event":"build","x":{"a":{"b":{"c":{"k":1,K:2}}}}}"#,
        r#"{"event":"build","repo":{"x":{"a":{"b":{"k":null,K:null}}}}}"#,
        // Inside arrays, nested or not.
        r#"{"event":"build","x":[{"k":1,K:2}]}"#,
        r#"{"event":"build","x":[1,[{"a":1},{"k":1,"a":2,K:3}]]}"#,
        r#"{"event":"build","build":{"stages":[{},{"steps":[{},{"k":[],K:{}}]}]}}"#,
        // Deep: an unknown object 100 levels down.
        &format!(
            r#"{{"event":"build","x":{}{{"k":1,K:2}}{}}}"#,
            "[".repeat(100),
            "]".repeat(100)
        ),
    ];
    for case in cases {
        // The key repeated is the one before the last `{` preceding `K`.
        let before = &case[..case.find('K').unwrap()];
        let open = before.rfind('{').unwrap();
        let key = before[open + 2..].split('"').next().unwrap();
        let escaped = format!(r#""\u{:04x}{}""#, u32::from(key.as_bytes()[0]), &key[1..]);
        for (second, expected) in [
            (
                format!("\"{key}\""),
                Err("payload.duplicate_key".to_owned()),
            ),
            // Escaped, the same key.
            (escaped, Err("payload.duplicate_key".to_owned())),
            (r#""j""#.to_owned(), Ok(())),
        ] {
            let body = case.replace('K', &second);
            for header in [None, Some("build")] {
                assert_eq!(
                    check(body.as_bytes(), header).map(|_| ()),
                    expected,
                    "{body}"
                );
            }
        }
    }
    // The error names the key and where the repeat is.
    let err = Envelope::decode(br#"{"event":"build","x":[{"k":1,"k":2}]}"#).unwrap_err();
    assert_eq!(err.code(), "payload.duplicate_key");
    assert_eq!(
        err.to_string(),
        "the body is not a valid payload: duplicate field `k` at line 1 column 32"
    );
    let err = Envelope::check(
        b"{\"event\":\"build\",\n\"build\":{\"params\":{\"a\":\"1\",\n\"a\":\"2\"}}}",
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "the body is not a valid payload: duplicate field `a` at line 3 column 3"
    );
}

/// JSON fragments a mutation may put in place of a value.
fn fragments() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("null".to_owned()),
        Just("true".to_owned()),
        Just("0".to_owned()),
        Just("-1".to_owned()),
        Just("1.5".to_owned()),
        Just("1e400".to_owned()),
        Just("18446744073709551616".to_owned()),
        Just("9223372036854775807".to_owned()),
        Just(r#""""#.to_owned()),
        Just(r#""a\nb""#.to_owned()),
        Just(r#""\ud800""#.to_owned()),
        Just("[]".to_owned()),
        Just(r#"["x",null]"#.to_owned()),
        Just("{}".to_owned()),
        Just(r#"{"a":1,"a":2}"#.to_owned()),
        Just(r#"{"number":3}"#.to_owned()),
        Just(r#"[{"id":1}]"#.to_owned()),
        "[a-z]{1,8}".prop_map(|s| format!("\"{s}\"")),
    ]
}

/// The positions in `body` where a JSON value starts after a `:` (object values).
fn value_starts(body: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut in_string = false;
    let mut escaped = false;
    for (i, &b) in body.iter().enumerate() {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => in_string = false,
                _ => {}
            }
        } else if b == b'"' {
            in_string = true;
        } else if b == b':' {
            out.push(i + 1);
        }
    }
    out
}

/// The end of the JSON value starting at `start` (scalars, strings, or bracketed).
fn value_end(body: &[u8], start: usize) -> usize {
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for (i, &b) in body.iter().enumerate().skip(start) {
        if in_string {
            match (escaped, b) {
                (true, _) => escaped = false,
                (false, b'\\') => escaped = true,
                (false, b'"') => {
                    in_string = false;
                    if depth == 0 {
                        return i + 1;
                    }
                }
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'{' | b'[' => depth += 1,
            b'}' | b']' | b',' if depth == 0 => return i,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
    }
    body.len()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// Replace one value of a real payload by another fragment.
    #[test]
    fn replacing_a_value_checks_as_it_decodes(
        sample in 0..16usize,
        which in any::<prop::sample::Index>(),
        fragment in fragments(),
    ) {
        let all = samples::all();
        let body = &all[sample % all.len()].body;
        let starts = value_starts(body);
        let start = starts[which.index(starts.len())];
        let end = value_end(body, start);
        let mut mutated = body[..start].to_vec();
        mutated.extend_from_slice(fragment.as_bytes());
        mutated.extend_from_slice(&body[end..]);
        check(&mutated, None).ok();
    }

    /// Insert a key (known or not, maybe a duplicate) into some object of a payload.
    #[test]
    fn inserting_a_key_checks_as_it_decodes(
        sample in 0..16usize,
        which in any::<prop::sample::Index>(),
        key in prop_oneof![
            Just("id"), Just("slug"), Just("number"), Just("avatar_url"), Just("stages"),
            Just("event"), Just("extra"), Just("params"), Just("depends_on"), Just("status"),
        ],
        fragment in fragments(),
    ) {
        let all = samples::all();
        let body = &all[sample % all.len()].body;
        let opens: Vec<usize> = body.iter().enumerate()
            .filter(|&(_, &b)| b == b'{').map(|(i, _)| i + 1).collect();
        let at = opens[which.index(opens.len())];
        let mut mutated = body[..at].to_vec();
        mutated.extend_from_slice(format!("\"{key}\":{fragment},").as_bytes());
        mutated.extend_from_slice(&body[at..]);
        check(&mutated, None).ok();
    }

    /// Flip, drop or insert one byte anywhere.
    #[test]
    fn a_byte_changed_checks_as_it_decodes(
        sample in 0..16usize,
        at in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        op in 0..3u8,
    ) {
        let all = samples::all();
        let mut body = all[sample % all.len()].body.clone();
        let i = at.index(body.len());
        match op {
            0 => body[i] = byte,
            1 => { body.remove(i); }
            _ => body.insert(i, byte),
        }
        check(&body, Some("build")).ok();
    }
}

/// The cases the fast path (a schema-directed scan that declines anything unusual)
/// must either settle exactly as the decoder does or leave to the serde-based pass:
/// escapes, `\u` escapes and surrogates, numbers at the edges of what it reads,
/// whitespace, unknown fields of every kind, aliases and `null`s.
#[test]
fn fast_path_edge_cases_check_as_they_decode() {
    let ok = Ok(());
    let invalid = Err("payload.invalid");
    let duplicate = Err("payload.duplicate_key");
    let cases: &[(&str, Result<(), &str>)] = &[
        // Escapes in ordinary strings, in kept fields and in keys.
        (
            r#"{"event":"build","repo":{"link":"\"\\\/\b\f\n\r\t"}}"#,
            ok,
        ),
        (
            r#"{"event":"build","repo":{"link":"\u003c\u003e\u0026\u0000"}}"#,
            ok,
        ),
        (r#"{"event":"build","repo":{"link":"\a"}}"#, invalid),
        (r#"{"event":"build","repo":{"link":"\x41"}}"#, invalid),
        (r#"{"event":"build","repo":{"link":"\u00zz"}}"#, invalid),
        (r#"{"event":"build","repo":{"link":"\u004"}}"#, invalid),
        (r#"{"event":"build","repo":{"slug":"a\u002fb"}}"#, ok),
        (r#"{"event":"build","action":"cr\u0065ated"}"#, ok),
        (r#"{"\u0065vent":"build"}"#, ok),
        (r#"{"event":"build","repo":{"sl\u0075g":"a/b"}}"#, ok),
        (
            r#"{"event":"build","repo":{"slug":"a/b","sl\u0075g":"c/d"}}"#,
            duplicate,
        ),
        (
            "{\"event\":\"build\",\"repo\":{\"link\":\"a\u{1}b\"}}",
            invalid,
        ),
        (
            "{\"event\":\"build\",\"repo\":{\"link\":\"a\tb\"}}",
            invalid,
        ),
        (
            "{\"event\":\"build\",\"repo\":{\"link\":\"a\u{7f}b é 日本 😀\"}}",
            ok,
        ),
        // Surrogates: pairs are fine, anything lone is an error.
        (r#"{"event":"build","repo":{"name":"\ud83d\ude00"}}"#, ok),
        (r#"{"event":"build","repo":{"name":"\uD83D\uDE00"}}"#, ok),
        (r#"{"event":"build","repo":{"name":"\ud83d"}}"#, invalid),
        (r#"{"event":"build","repo":{"name":"\ud83dx"}}"#, invalid),
        (r#"{"event":"build","repo":{"name":"\ud83d\n"}}"#, invalid),
        (
            r#"{"event":"build","repo":{"name":"\ud83d\u0041"}}"#,
            invalid,
        ),
        (r#"{"event":"build","repo":{"name":"\ude00"}}"#, invalid),
        (
            r#"{"event":"build","repo":{"name":"\ude00\ud83d"}}"#,
            invalid,
        ),
        (r#"{"event":"build","x":"\udfff"}"#, invalid),
        (r#"{"event":"build","x":{"\ud800":1}}"#, invalid),
        // Integers: leading zeros, -0, 18 and 19 digits, the i64 limits, floats.
        (r#"{"event":"build","build":{"number":0}}"#, ok),
        (r#"{"event":"build","build":{"number":-7}}"#, ok),
        (r#"{"event":"build","build":{"number":007}}"#, invalid),
        (r#"{"event":"build","build":{"number":00}}"#, invalid),
        (r#"{"event":"build","build":{"number":-0}}"#, invalid),
        (r#"{"event":"build","build":{"number":-}}"#, invalid),
        (r#"{"event":"build","build":{"number":+1}}"#, invalid),
        (
            r#"{"event":"build","build":{"number":999999999999999999}}"#,
            ok,
        ),
        (
            r#"{"event":"build","build":{"number":-999999999999999999}}"#,
            ok,
        ),
        (
            r#"{"event":"build","build":{"number":1000000000000000000}}"#,
            ok,
        ),
        (
            r#"{"event":"build","build":{"number":9223372036854775807}}"#,
            ok,
        ),
        (
            r#"{"event":"build","build":{"number":-9223372036854775808}}"#,
            ok,
        ),
        (
            r#"{"event":"build","build":{"number":9223372036854775808}}"#,
            invalid,
        ),
        (
            r#"{"event":"build","build":{"number":-9223372036854775809}}"#,
            invalid,
        ),
        (r#"{"event":"build","build":{"number":1.0}}"#, invalid),
        (r#"{"event":"build","build":{"number":1e3}}"#, invalid),
        (r#"{"event":"build","build":{"number":1E3}}"#, invalid),
        (r#"{"event":"build","build":{"number":12x}}"#, invalid),
        (r#"{"event":"build","repo":{"id":0.0}}"#, invalid),
        (r#"{"event":"build","x":-0}"#, ok),
        (r#"{"event":"build","x":007}"#, invalid),
        (r#"{"event":"build","x":1.5e3}"#, ok),
        (r#"{"event":"build","x":12345678901234567890123}"#, ok),
        (r#"{"event":"build","x":1e999}"#, invalid),
        // Whitespace: serde_json's four, anywhere between tokens; nothing else.
        (
            " \t\r\n{ \t\r\n\"event\" \t\r\n: \t\r\n\"build\" \t\r\n, \"build\" : { \"number\" : 3 , \"stages\" : [ { \"depends_on\" : [ \"a\" , \"b\" ] } , { } ] } } \t\r\n",
            ok,
        ),
        ("{\"event\":\"build\"}\n", ok),
        ("\u{feff}{\"event\":\"build\"}", invalid),
        ("{\"event\":\"build\"\u{b}}", invalid),
        ("{\"event\":\"build\"\u{a0}}", invalid),
        ("{\"event\":\"build\"} {}", invalid),
        // Unknown fields of every kind, nested, and repeated.
        (
            r#"{"event":"build","x":"s","y":true,"z":false,"n":null,"i":-3,"a":[],"o":{}}"#,
            ok,
        ),
        (
            r#"{"event":"build","repo":{"x":[1,"a",null,[{"k":[true]}]],"y":{"k":{"k":1},"j":2}}}"#,
            ok,
        ),
        (
            r#"{"event":"build","repo":{"x":[1,"a",null,[{"k":[true]}]],"y":{"k":{"k":1},"k":2}}}"#,
            duplicate,
        ),
        (
            r#"{"event":"build","build":{"stages":[{"steps":[{"x":{"y":[]}}]}]}}"#,
            ok,
        ),
        (
            r#"{"event":"build","u0":0,"u1":1,"u2":2,"u3":3,"u4":4,"u5":5,"u6":6,"u7":7,"u8":8,"u9":9}"#,
            ok,
        ),
        (r#"{"event":"build","x":1,"y":2,"x":3}"#, duplicate),
        (r#"{"event":"build","x":tru}"#, invalid),
        (r#"{"event":"build","x":nul}"#, invalid),
        (r#"{"event":"build","x":[1,]}"#, invalid),
        (r#"{"event":"build","x":{"a":1,}}"#, invalid),
        (r#"{"event":"build","x":undefined}"#, invalid),
        // Aliases count as their field.
        (r#"{"event":"user","user":{"avatar_url":"a"}}"#, ok),
        (
            r#"{"event":"user","user":{"avatar_url":"a","avatar":"b"}}"#,
            duplicate,
        ),
        (
            r#"{"event":"user","user":{"avatar_url":"a","avatar_url":"b"}}"#,
            duplicate,
        ),
        // Fields out of Drone's order, and repeated ones.
        (
            r#"{"build":{"number":5,"id":1},"action":"updated","event":"build"}"#,
            ok,
        ),
        (
            r#"{"event":"build","build":{"number":5,"id":1,"number":6}}"#,
            duplicate,
        ),
        (
            r#"{"event":"build","build":null,"build":{"number":1}}"#,
            duplicate,
        ),
        // `null` for every kind of field, and in lists.
        (
            r#"{"event":null,"action":null,"user":null,"repo":null,"build":null,"system":null}"#,
            Err("payload.event_missing"),
        ),
        (
            r#"{"event":"build","build":{"number":null,"status":null,"debug":null,"params":null,"stages":null}}"#,
            ok,
        ),
        (
            r#"{"event":"build","build":{"stages":[{"depends_on":null,"labels":null,"steps":null}]}}"#,
            ok,
        ),
        (r#"{"event":"build","build":{"stages":[null]}}"#, invalid),
        (
            r#"{"event":"build","build":{"stages":[{"steps":[{},null]}]}}"#,
            invalid,
        ),
        (
            r#"{"event":"build","build":{"stages":[{"depends_on":["a",null]}]}}"#,
            invalid,
        ),
        (
            r#"{"event":"build","build":{"stages":[{"labels":{"a":null}}]}}"#,
            invalid,
        ),
        (
            r#"{"event":"build","build":{"params":{"a":"1","a":"2"}}}"#,
            duplicate,
        ),
        // Wrong types in each kind of field.
        (r#"{"event":"build","build":{"params":[]}}"#, invalid),
        (r#"{"event":"build","build":{"stages":{}}}"#, invalid),
        (
            r#"{"event":"build","build":{"stages":[{"depends_on":"a"}]}}"#,
            invalid,
        ),
        (r#"{"event":"build","build":{"debug":1}}"#, invalid),
        (r#"{"event":"build","build":{"trigger":1}}"#, invalid),
        (r#"{"event":"build","build":[]}"#, invalid),
        (r#"{"event":1}"#, invalid),
    ];
    for (body, expected) in cases {
        let got = check(body.as_bytes(), None).map(|_| ());
        assert_eq!(got, expected.map_err(str::to_owned), "{body}");
    }
    // A deep unknown value: past the fast path's own limit, still under serde_json's.
    for depth in [63, 64, 65, 100] {
        let body = format!(
            r#"{{"event":"build","x":{}{}}}"#,
            "[".repeat(depth),
            "]".repeat(depth)
        );
        assert_eq!(check(body.as_bytes(), None).map(|_| ()), Ok(()), "{depth}");
    }
}

/// The outline the fast path reads, field by field, on compact and spaced bodies.
#[test]
fn fast_path_reads_the_outline() {
    for body in [
        r#"{"event":"build","action":"updated","repo":{"id":1,"slug":"octocat/hello","build":{"number":3}},"build":{"id":2,"number":42}}"#,
        "{ \"event\" : \"build\" , \"action\" : \"updated\" , \"repo\" : { \"slug\" : \"octocat/hello\" } , \"build\" : { \"number\" : 42 } }",
    ] {
        let outline = check(body.as_bytes(), Some("build")).unwrap();
        assert_eq!(outline.event.as_str(), "build");
        assert_eq!(outline.action.as_str(), "updated");
        assert_eq!(outline.repo_slug.as_deref(), Some("octocat/hello"));
        assert_eq!(outline.build_number, Some(42));
    }
    // A build without a number is build 0; a nested build is not the envelope's.
    let outline = check(
        br#"{"event":"build","repo":{"build":{"number":3}},"build":{}}"#,
        None,
    )
    .unwrap();
    assert_eq!(outline.build_number, Some(0));
    assert_eq!(outline.repo_slug, None);
    let outline = check(br#"{"event":"repo","repo":{"slug":""},"build":null}"#, None).unwrap();
    assert_eq!(outline.build_number, None);
    assert_eq!(outline.repo_slug, None);
    // The header fills in a missing event and must agree with a present one.
    assert_eq!(
        check(br#"{"action":"created"}"#, Some("user"))
            .unwrap()
            .event
            .as_str(),
        "user"
    );
    assert_eq!(
        check(br#"{"event":"user"}"#, Some("repo")),
        Err("payload.event_mismatch".to_owned())
    );
}
