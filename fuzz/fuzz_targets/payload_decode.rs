//! Fuzz target: the payload decoder. Whatever decodes must encode, and the encoding
//! must decode to the same value and re-encode to the same bytes.
#![no_main]

use dronehook_protocol::Envelope;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(envelope) = Envelope::decode_with_header(data, Some("build")) {
        let bytes = envelope.encode();
        let again = Envelope::decode(&bytes).expect("encoder output decodes");
        assert_eq!(again.encode(), bytes);
    }
});
