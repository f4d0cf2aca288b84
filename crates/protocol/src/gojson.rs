//! Go `encoding/json` output rules, written by hand because no Rust JSON writer
//! reproduces them: Go escapes `<`, `>`, `&`, U+2028 and U+2029, writes control
//! characters as `\u00XX` (except `\n`, `\r`, `\t`), and sorts map keys.

use std::collections::BTreeMap;

use serde_json::Value;

/// Hex digits in the case Go writes them.
const HEX: &[u8; 16] = b"0123456789abcdef";

/// Whether an ASCII byte must be escaped inside a Go JSON string.
const fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\' || b == b'<' || b == b'>' || b == b'&'
}

/// A lookup table of [`needs_escape`] for every byte, plus 0xE2: the lead byte of
/// U+2028 and U+2029, which the slow path inspects.
static ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut i = 0;
    while i < 256 {
        table[i] = needs_escape(i as u8) || i == 0xE2;
        i += 1;
    }
    table
};

/// Writes `s` as a Go JSON string literal, quotes included.
///
/// Most strings of a payload need no escape: they are tested in one pass and copied in
/// one piece by this short function, and only the others take the escaping loop, kept
/// out of line so the usual path saves and restores few registers.
pub(crate) fn write_str(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    if has_special(bytes) {
        write_escaped(out, bytes);
        return;
    }
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    out.extend_from_slice(bytes);
    out.push(b'"');
}

/// [`write_str`] for a string with at least one byte to escape.
#[inline(never)]
fn write_escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(bytes.len() + 8);
    out.push(b'"');
    let mut start = 0;
    // Each plain run is found by one scan and copied in one piece.
    while let Some(offset) = first_special(&bytes[start..]) {
        let i = start + offset;
        out.extend_from_slice(&bytes[start..i]);
        let b = bytes[i];
        if b == 0xE2 {
            // U+2028 is E2 80 A8 and U+2029 is E2 80 A9; other E2 sequences pass.
            if bytes.get(i + 1) == Some(&0x80) && matches!(bytes.get(i + 2), Some(0xA8 | 0xA9)) {
                out.extend_from_slice(if bytes[i + 2] == 0xA8 {
                    b"\\u2028"
                } else {
                    b"\\u2029"
                });
                start = i + 3;
            } else {
                out.push(b);
                start = i + 1;
            }
            continue;
        }
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            _ => {
                // Control characters, `<`, `>` and `&`: `\u00XX` with lower-case hex.
                out.extend_from_slice(b"\\u00");
                out.push(HEX[(b >> 4) as usize]);
                out.push(HEX[(b & 0xF) as usize]);
            }
        }
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Whether any byte of `bytes` is marked in [`ESCAPE`]: eight bytes at a time, their
/// table entries joined into one branch, then the last few bytes in one more step
/// (see [`tail_special`]) rather than a loop.
#[inline]
fn has_special(bytes: &[u8]) -> bool {
    let mut chunks = bytes.chunks_exact(8);
    for c in &mut chunks {
        if any_special(c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]) {
            return true;
        }
    }
    !chunks.remainder().is_empty() && tail_special(bytes)
}

/// Whether the bytes after the last whole group of eight hold a marked byte, tested
/// in windows that may overlap bytes already known clean: the last eight bytes when
/// the string is that long, else two windows of four, else the first, middle and
/// last byte.
#[inline]
fn tail_special(bytes: &[u8]) -> bool {
    let n = bytes.len();
    if n >= 8 {
        let c = &bytes[n - 8..];
        any_special(c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7])
    } else if n >= 4 {
        let (a, b) = (&bytes[..4], &bytes[n - 4..]);
        any_special(a[0], a[1], a[2], a[3], b[0], b[1], b[2], b[3])
    } else {
        let (a, b, c) = (bytes[0], bytes[n / 2], bytes[n - 1]);
        any_special(a, b, c, a, b, c, a, b)
    }
}

/// Whether any of eight bytes is marked in [`ESCAPE`], with one branch. The bytes
/// are eight arguments, not an array: measured under callgrind, an array folded with
/// `|` compiled to about 2k more instructions per build payload.
#[inline]
#[expect(
    clippy::too_many_arguments,
    clippy::many_single_char_names,
    reason = "eight bytes as eight values, see above"
)]
fn any_special(a: u8, b: u8, c: u8, d: u8, e: u8, f: u8, g: u8, h: u8) -> bool {
    ESCAPE[a as usize]
        | ESCAPE[b as usize]
        | ESCAPE[c as usize]
        | ESCAPE[d as usize]
        | ESCAPE[e as usize]
        | ESCAPE[f as usize]
        | ESCAPE[g as usize]
        | ESCAPE[h as usize]
}

/// The position of the first byte [`ESCAPE`] marks, for the escaping loop.
fn first_special(bytes: &[u8]) -> Option<usize> {
    let mut chunks = bytes.chunks_exact(8);
    let mut base = 0;
    for c in &mut chunks {
        if any_special(c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]) {
            break;
        }
        base += 8;
    }
    bytes[base..]
        .iter()
        .position(|&b| ESCAPE[b as usize])
        .map(|p| base + p)
}

/// Writes an integer the way Go does: plain decimal, no exponent. `itoa` writes two
/// digits per step from a table, about three times fewer instructions than a digit
/// loop; a build payload has about a hundred integers.
pub(crate) fn write_i64(out: &mut Vec<u8>, n: i64) {
    let mut buf = itoa::Buffer::new();
    out.extend_from_slice(buf.format(n).as_bytes());
}

/// Writes a `bool` as Go does.
pub(crate) fn write_bool(out: &mut Vec<u8>, b: bool) {
    out.extend_from_slice(if b { b"true" } else { b"false" });
}

/// Writes a `map[string]string`: keys sorted by their bytes, as Go sorts them.
pub(crate) fn write_string_map(out: &mut Vec<u8>, map: &BTreeMap<String, String>) {
    out.push(b'{');
    for (i, (k, v)) in map.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(out, k);
        out.push(b':');
        write_str(out, v);
    }
    out.push(b'}');
}

/// Writes an arbitrary JSON value (an unknown field carried through) with Go's rules.
///
/// Objects come out with sorted keys, as Go writes a `map[string]interface{}`;
/// numbers keep the text serde_json gives them.
pub(crate) fn write_value(out: &mut Vec<u8>, value: &Value) {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(b) => write_bool(out, *b),
        Value::Number(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Value::String(s) => write_str(out, s),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_value(out, item);
            }
            out.push(b']');
        }
        Value::Object(map) => {
            // serde_json's map is a BTreeMap without the `preserve_order` feature,
            // but sort explicitly so a feature switched on elsewhere cannot change bytes.
            let mut entries: Vec<_> = map.iter().collect();
            entries.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
            out.push(b'{');
            for (i, (k, v)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_str(out, k);
                out.push(b':');
                write_value(out, v);
            }
            out.push(b'}');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expected: &str) {
        let mut out = Vec::new();
        write_str(&mut out, input);
        assert_eq!(String::from_utf8(out).unwrap(), expected, "input {input:?}");
    }

    #[test]
    fn strings_escape_like_go() {
        check("plain", r#""plain""#);
        check("a<b>&c", r#""a\u003cb\u003e\u0026c""#);
        check("line\nnext\r\ttab", r#""line\nnext\r\ttab""#);
        check("\u{8}\u{c}\u{0}\u{1f}", r#""\u0008\u000c\u0000\u001f""#);
        check("quote\" slash\\ solidus/", r#""quote\" slash\\ solidus/""#);
        check("sep\u{2028}para\u{2029}", r#""sep\u2028para\u2029""#);
        check(
            "\u{2026}\u{2030}\u{e9}\u{1F680}\u{7f}",
            "\"\u{2026}\u{2030}\u{e9}\u{1F680}\u{7f}\"",
        );
    }

    /// Bytes that take the escaping path, each with what Go writes for it: every
    /// escape class, and two multi-byte characters that pass unchanged (one shares
    /// U+2028's lead byte).
    const SPECIALS: [(&str, &str); 9] = [
        ("\"", "\\\""),
        ("\\", "\\\\"),
        ("<", "\\u003c"),
        ("&", "\\u0026"),
        ("\n", "\\n"),
        ("\u{1}", "\\u0001"),
        ("\u{2028}", "\\u2028"),
        ("\u{2026}", "\u{2026}"),
        ("\u{e9}", "\u{e9}"),
    ];

    #[test]
    fn escapes_are_found_at_every_position_of_a_long_run() {
        for at in 0..24 {
            for (raw, escaped) in SPECIALS {
                let before = "x".repeat(at);
                let after = "y".repeat(24 - at);
                check(
                    &format!("{before}{raw}{after}{raw}"),
                    &format!("\"{before}{escaped}{after}{escaped}\""),
                );
            }
        }
    }

    /// Short strings are tested in overlapping windows (see `tail_special`): a
    /// special byte must be found at every position of every length up to 24, and a
    /// clean string of each length must come out as it went in.
    #[test]
    fn escapes_are_found_at_every_position_of_a_short_string() {
        for len in 0..=24 {
            let clean = "x".repeat(len);
            check(&clean, &format!("\"{clean}\""));
            for at in 0..len {
                let (before, after) = ("x".repeat(at), "y".repeat(len - at - 1));
                for (raw, escaped) in SPECIALS {
                    check(
                        &format!("{before}{raw}{after}"),
                        &format!("\"{before}{escaped}{after}\""),
                    );
                }
            }
        }
    }

    #[test]
    fn integers_are_plain_decimal() {
        for n in [0, 7, -7, 1_564_096_971, i64::MAX, i64::MIN] {
            let mut out = Vec::new();
            write_i64(&mut out, n);
            assert_eq!(String::from_utf8(out).unwrap(), n.to_string());
        }
    }
}
