//! Fuzz target: the payload decoder. Whatever decodes must encode, and the encoding
//! must decode to the same value and re-encode to the same bytes. The checking pass
//! must agree with the decoder on every input: same acceptance, same error, same
//! outline. The decoder's fast path must build what serde alone builds.
#![no_main]

use dronehook_protocol::{Envelope, Outline};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let decoded = Envelope::decode_with_header(data, Some("build"));
    assert_eq!(
        decoded,
        dronehook_protocol::__private::decode_with_header_serde(data, Some("build"))
    );
    let checked = Envelope::check_with_header(data, Some("build"));
    assert_eq!(checked, decoded.as_ref().map(Outline::of).map_err(Clone::clone));
    if let Ok(envelope) = decoded {
        let bytes = envelope.encode();
        let again = Envelope::decode(&bytes).expect("encoder output decodes");
        assert_eq!(again.encode(), bytes);
    }
});
