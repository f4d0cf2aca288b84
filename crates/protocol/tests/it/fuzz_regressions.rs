//! Every input that ever made a fuzz target fail, kept in `fuzz/regressions/<target>/`
//! and replayed here with the target's own property, so plain `cargo test` guards them.

use std::path::Path;

use dronehook_protocol::{BodyDigest, Envelope, Outline, SignatureParams};

use crate::repo_root;

fn inputs(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = repo_root().join("fuzz/regressions").join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut out: Vec<_> = entries
        .map(|e| e.unwrap().path())
        .map(|p: std::path::PathBuf| (name(&p), std::fs::read(&p).unwrap()))
        .collect();
    out.sort();
    out
}

fn name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

#[test]
fn payload_decode_regressions() {
    let cases = inputs("payload_decode");
    assert!(
        !cases.is_empty(),
        "fuzz/regressions/payload_decode holds the float round-trip case"
    );
    for (name, data) in cases {
        // The target's whole property: check equals decode, the fast path equals serde,
        // and the round trip holds.
        let decoded = Envelope::decode_with_header(&data, Some("build"));
        assert_eq!(
            decoded,
            dronehook_protocol::__private::decode_with_header_serde(&data, Some("build")),
            "{name}"
        );
        assert_eq!(
            Envelope::check_with_header(&data, Some("build")),
            decoded.as_ref().map(Outline::of).map_err(Clone::clone),
            "{name}"
        );
        if let Ok(envelope) = decoded {
            let bytes = envelope.encode();
            let again = Envelope::decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
            assert_eq!(again.encode(), bytes, "{name}");
        }
    }
}

#[test]
fn signature_header_regressions() {
    for (name, data) in inputs("signature_header") {
        let Ok(text) = std::str::from_utf8(&data) else {
            continue;
        };
        if let Ok(params) = SignatureParams::parse(text) {
            assert_eq!(
                SignatureParams::parse(&params.render()),
                Ok(params),
                "{name}"
            );
        }
    }
}

#[test]
fn digest_header_regressions() {
    for (name, data) in inputs("digest_header") {
        let Some((&split, rest)) = data.split_first() else {
            continue;
        };
        let (body, value) = rest.split_at(usize::from(split).min(rest.len()));
        let digest = BodyDigest::of(body);
        let _ = digest.check_header(value, body);
        assert_eq!(
            digest.check_header(digest.header_value().as_bytes(), body),
            Ok(()),
            "{name}"
        );
    }
}

#[test]
fn floats_in_unknown_fields_round_trip_exactly() {
    // The fuzzer's find, reduced: serde_json's fast float parser could be one ULP off,
    // so a float written back and read again changed. `float_roundtrip` fixes it.
    let body = br#"{"event":"build","x":[5.555555555555555e82,0.1,1e-7,123456789.123456789]}"#;
    let once = Envelope::decode(body).unwrap().encode();
    let twice = Envelope::decode(&once).unwrap().encode();
    assert_eq!(
        String::from_utf8(twice).unwrap(),
        String::from_utf8(once).unwrap()
    );
}
