//! Fuzz target: the `Signature` header parser. Any input must give a value or an
//! error, never a panic; a parsed value must render and re-parse to itself.
#![no_main]

use dronehook_protocol::SignatureParams;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(params) = SignatureParams::parse(text) {
        // Values parsed from quoted strings may hold characters the renderer escapes;
        // the round trip must still give the same parameters.
        let rendered = params.render();
        let again = SignatureParams::parse(&rendered);
        if rendered.len() <= dronehook_protocol::MAX_HEADER_LEN {
            assert_eq!(again.as_ref(), Ok(&params), "render: {rendered}");
        }
    }
    let _ = SignatureParams::parse_authorization(text);
});
