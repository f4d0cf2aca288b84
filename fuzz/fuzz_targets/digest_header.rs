//! Fuzz target: the `Digest` header parser. The first byte splits the input into a
//! body and a header value; any input must give `Ok` or a verification error.
#![no_main]

use dronehook_protocol::BodyDigest;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else { return };
    let at = usize::from(split).min(rest.len());
    let (body, value) = rest.split_at(at);
    let digest = BodyDigest::of(body);
    let _ = digest.check_header(value, body);
    // The header Drone would send for this body always passes.
    assert_eq!(digest.check_header(digest.header_value().as_bytes(), body), Ok(()));
});
