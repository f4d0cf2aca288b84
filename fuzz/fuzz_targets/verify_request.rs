//! Fuzz target: the whole verify path. The input is split into header lines and a
//! body; header values the `http` crate accepts are verified with a fixed policy and
//! time. Any outcome is fine except a panic; a success must be a genuinely signed request.
#![no_main]

use std::time::{Duration, UNIX_EPOCH};

use dronehook_protocol::http::{HeaderMap, HeaderName, HeaderValue};
use dronehook_protocol::{Policy, RequestParts};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
        Some(i) => (&data[..i], &data[i + 2..]),
        None => (data, &[][..]),
    };
    let mut headers = HeaderMap::new();
    for line in head.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) else {
            continue;
        };
        headers.append(name, value);
    }
    let now = UNIX_EPOCH + Duration::from_secs(1_577_836_800);
    let policy = Policy::new("correct-horse-battery-staple").any_key_id();
    let req = RequestParts::new("POST", "/", &headers, body);
    let _ = policy.verify_and_decode(&req, now);
});
