//! The reference's signing vector and Go encoding cases, byte for byte.

use dronehook_protocol::{Action, Build, Envelope, Event, SignInput, Signer};

use crate::{VECTOR_BODY, VECTOR_SECRET, vector_time};

#[test]
fn vector_body_is_256_bytes_and_reencodes_to_itself() {
    assert_eq!(VECTOR_BODY.len(), 256);
    let envelope = Envelope::decode(VECTOR_BODY).unwrap();
    assert_eq!(
        String::from_utf8(envelope.encode()).unwrap(),
        std::str::from_utf8(VECTOR_BODY).unwrap()
    );
}

#[test]
fn signing_vector_comes_out_exactly() {
    let signed = Signer::new(VECTOR_SECRET)
        .sign(&SignInput::new(VECTOR_BODY, vector_time()))
        .unwrap();
    assert_eq!(signed.date, "Wed, 01 Jan 2020 00:00:00 GMT");
    assert_eq!(
        signed.digest,
        "SHA-256=1NqoE6nmLuLrxfKG+i0dak+F2+4FK26iIKpsfRy4Kvw="
    );
    assert_eq!(
        signed.signature,
        r#"keyId="hmac-key",algorithm="hmac-sha256",signature="Y3+K+rKwpbbQxWG+alUx8ikrK7d/c1vRLCwgnWCs7so=",headers="date digest""#
    );
    assert_eq!(
        signed.headers("user").map(|(n, _)| n),
        [
            "X-Drone-Event",
            "Content-Type",
            "Digest",
            "Date",
            "Signature"
        ]
    );
}

#[test]
fn message_with_html_emoji_and_line_separator_encodes_as_go() {
    let mut build = Build::default();
    build.number = 7;
    build.message = "fix <script> & \u{1F680} \u{2028}end\u{2029}\u{7}\u{0}\t\"\\".into();
    let mut e = Envelope::default();
    e.event = Event::Build;
    e.action = Action::Updated;
    e.build = Some(Box::new(build));
    let out = String::from_utf8(e.encode()).unwrap();
    // What Go's encoding/json writes for the same struct (omitempty fields left out).
    let expected = concat!(
        r#"{"event":"build","action":"updated","build":{"id":0,"repo_id":0,"trigger":"","number":7,"status":"","event":"","action":"","link":"","timestamp":0,"#,
        r#""message":"fix \u003cscript\u003e \u0026 "#,
        "\u{1F680}",
        r#" \u2028end\u2029\u0007\u0000\t\"\\","before":"","after":"","ref":"","source_repo":"","source":"","target":"","author_login":"","author_name":"","author_email":"","author_avatar":"","sender":"","started":0,"finished":0,"created":0,"updated":0,"version":0}}"#
    );
    assert_eq!(out, expected);
}

#[test]
fn map_keys_are_sorted_and_empty_maps_omitted() {
    let mut build = Build::default();
    build.params.insert("b".into(), "2".into());
    build.params.insert("B".into(), "1".into());
    build.params.insert("a<".into(), "3".into());
    let out = String::from_utf8(build.to_go_json()).unwrap();
    assert!(
        out.contains(r#""params":{"B":"1","a\u003c":"3","b":"2"}"#),
        "{out}"
    );
    assert!(
        !Build::default()
            .to_go_json()
            .windows(8)
            .any(|w| w == b"\"params\"")
    );
}
