//! Property tests: signing and verifying round-trip, any single-byte change fails,
//! the header parser never panics and round-trips, decode/encode is the identity on
//! encoder output.

use std::time::{Duration, UNIX_EPOCH};

use dronehook_protocol::http::{HeaderMap, HeaderValue};
use dronehook_protocol::{
    Action, Build, Envelope, Event, Policy, RequestParts, SignInput, SignatureParams, Signer,
    Stage, User,
};
use proptest::prelude::*;

fn header_lists() -> impl Strategy<Value = Vec<String>> {
    // Any subset of optional headers around the two that must be signed, in any order.
    (
        proptest::sample::subsequence(
            vec!["(request-target)", "x-drone-event", "content-type"],
            0..=3,
        ),
        any::<bool>(),
        proptest::collection::vec(any::<prop::sample::Index>(), 0..3),
    )
        .prop_map(|(extra, date_first, shuffles)| {
            let mut list: Vec<String> = extra.into_iter().map(str::to_owned).collect();
            if date_first {
                list.extend(["date".to_owned(), "digest".to_owned()]);
            } else {
                list.extend(["digest".to_owned(), "date".to_owned()]);
            }
            for idx in shuffles {
                let i = idx.index(list.len());
                list.swap(0, i);
            }
            list
        })
}

struct Signed {
    headers: HeaderMap,
    body: Vec<u8>,
}

fn sign(secret: &[u8], body: &[u8], secs: u64, list: &[String]) -> Signed {
    let now = UNIX_EPOCH + Duration::from_secs(secs);
    let signer = Signer::new(secret.to_vec()).headers(list);
    let input = SignInput::new(body, now)
        .target("POST", "/hook")
        .header("x-drone-event", "build")
        .header("content-type", "application/json");
    let signed = signer.sign(&input).unwrap();
    let mut headers = HeaderMap::new();
    for (name, value) in signed.headers("build") {
        headers.insert(name, HeaderValue::from_str(value).unwrap());
    }
    Signed {
        headers,
        body: body.to_vec(),
    }
}

fn verify(secret: &[u8], s: &Signed, secs: u64) -> Result<(), String> {
    let now = UNIX_EPOCH + Duration::from_secs(secs);
    Policy::new(secret.to_vec())
        .verify(
            &RequestParts::new("POST", "/hook", &s.headers, &s.body),
            now,
        )
        .map(|_| ())
        .map_err(|e| e.code().to_owned())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn sign_then_verify_round_trips(
        secret in proptest::collection::vec(any::<u8>(), 0..64),
        body in proptest::collection::vec(any::<u8>(), 0..2048),
        secs in 0u64..4_000_000_000,
        list in header_lists(),
    ) {
        let s = sign(&secret, &body, secs, &list);
        prop_assert_eq!(verify(&secret, &s, secs), Ok(()));
    }

    #[test]
    fn any_single_byte_change_fails(
        body in proptest::collection::vec(any::<u8>(), 1..512),
        which in 0usize..4,
        pos in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let secret = b"prop-secret";
        let secs = 1_700_000_000;
        let mut s = sign(secret, &body, secs, &["date".into(), "digest".into()]);
        let name = ["date", "digest", "signature"];
        if which == 3 {
            let i = pos.index(s.body.len());
            s.body[i] ^= flip;
        } else {
            let mut value = s.headers[name[which]].as_bytes().to_vec();
            // In the Signature header, the change goes into the signature value itself:
            // parameter names and the algorithm are case-insensitive by design.
            let (start, len) = if which == 2 {
                let text = String::from_utf8(value.clone()).unwrap();
                let start = text.find("signature=\"").unwrap() + 11;
                (start, 44)
            } else {
                (0, value.len())
            };
            let i = start + pos.index(len);
            value[i] ^= flip;
            // A byte that cannot be in a header at all would be refused before us;
            // everything else must reach the verifier and fail there.
            if let Ok(v) = HeaderValue::from_bytes(&value) {
                s.headers.insert(name[which], v);
            } else {
                return Ok(());
            }
        }
        prop_assert!(verify(secret, &s, secs).is_err());
    }

    #[test]
    fn header_parser_never_panics(input in ".{0,300}") {
        let _ = SignatureParams::parse(&input);
        let _ = SignatureParams::parse_authorization(&input);
    }

    #[test]
    fn header_parser_never_panics_on_near_misses(
        parts in proptest::collection::vec(prop_oneof![
            Just("keyId".to_owned()), Just("=".to_owned()), Just("\"".to_owned()), Just(",".to_owned()),
            Just("signature".to_owned()), Just("headers".to_owned()), Just(" ".to_owned()), Just("\\".to_owned()),
            "[a-z(). -]{0,8}",
        ], 0..24)
    ) {
        let _ = SignatureParams::parse(&parts.concat());
    }

    #[test]
    fn header_parse_of_render_is_identity(
        key_id in "[ -~]{0,24}",
        algorithm in proptest::option::of("[ -~]{0,16}"),
        headers in proptest::option::of(proptest::collection::vec("[a-z0-9()-]{1,12}", 0..5)),
        signature in "[A-Za-z0-9+/=]{0,64}",
        created in proptest::option::of(any::<i64>()),
        expires in proptest::option::of(any::<i64>()),
    ) {
        let mut p = SignatureParams::new(key_id, signature);
        p.algorithm = algorithm;
        p.headers = headers;
        p.created = created;
        p.expires = expires;
        prop_assert_eq!(SignatureParams::parse(&p.render()), Ok(p));
    }

    /// The signer renders the constant parts of its `Signature` value once, when it is
    /// configured: the value must still be what `render` writes for the parameters.
    #[test]
    fn signer_writes_what_render_writes(
        key_id in "[ -~]{0,24}",
        algorithm in proptest::option::of("[ -~]{0,16}"),
        list in header_lists(),
        body in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let signer = Signer::new(b"prop-secret".to_vec())
            .headers(&list)
            .algorithm(algorithm.as_deref())
            .key_id(key_id.clone());
        let input = SignInput::new(&body, UNIX_EPOCH + Duration::from_secs(1_700_000_000))
            .header("x-drone-event", "build")
            .header("content-type", "application/json");
        let signed = signer.sign(&input).unwrap();
        let start = signed.signature.find(",signature=\"").unwrap() + 12;
        let mut expected = SignatureParams::new(key_id, &signed.signature[start..start + 44]);
        expected.algorithm = algorithm;
        expected.headers = Some(list);
        prop_assert_eq!(&signed.signature, &expected.render());
    }

    #[test]
    fn decode_of_encode_is_identity(
        login in ".{0,20}",
        message in ".{0,40}",
        number in any::<i64>(),
        flags in any::<(bool, bool)>(),
        stages in 0usize..3,
        params in proptest::collection::btree_map(".{0,6}", ".{0,6}", 0..4),
        action in "[a-z]{0,10}",
    ) {
        let mut e = Envelope::default();
        e.event = Event::Build;
        e.action = Action::parse(&action);
        let mut user = User::default();
        user.login = login.into();
        user.admin = flags.0;
        e.user = Some(Box::new(user));
        let mut build = Build::default();
        build.number = number;
        build.message = message.into();
        build.debug = flags.1;
        build.params = params;
        build.stages = (0..stages).map(|i| { let mut s = Stage::default(); s.number = i as i64; s }).collect();
        e.build = Some(Box::new(build));
        let bytes = e.encode();
        let decoded = Envelope::decode(&bytes).unwrap();
        prop_assert_eq!(&decoded, &e);
        prop_assert_eq!(decoded.encode(), bytes);
    }
}
