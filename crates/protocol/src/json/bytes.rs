//! Byte-level helpers of the scanner: word-at-a-time searches, digit runs and
//! comparisons, and the unescaping of a string the scanner has checked.

#![allow(
    clippy::inline_always,
    reason = "the scan is one hot loop; measured under callgrind, inlining its helpers saves a fifth of the instructions"
)]

/// Eight copies of a byte, for the word-at-a-time string scan.
pub(crate) const fn splat(b: u8) -> u64 {
    0x0101_0101_0101_0101 * b as u64
}

/// The position of the first `"`, `\` or control byte at or after `i`.
///
/// Eight bytes at a time: for each test, the lowest flagged byte of the classic
/// "has a zero byte" trick is exact (a borrow only propagates upwards from a true
/// match), so the lowest flag of the three combined is the first special byte.
#[inline(always)]
pub(crate) fn find_special(bytes: &[u8], mut i: usize) -> Option<usize> {
    const ONES: u64 = splat(1);
    const HIGH: u64 = splat(0x80);
    while i + 8 <= bytes.len() {
        let w = load8(bytes, i);
        let quote = w ^ splat(b'"');
        let backslash = w ^ splat(b'\\');
        // The three tests share their `& !x` mask: `"`, `\` and 0x20 have the high bit
        // clear, so it is the high bit of `!w` in all three.
        let hits =
            (quote.wrapping_sub(ONES) | backslash.wrapping_sub(ONES) | w.wrapping_sub(splat(0x20)))
                & !w
                & HIGH;
        if hits != 0 {
            return Some(i + (hits.trailing_zeros() / 8) as usize);
        }
        i += 8;
    }
    while let Some(&b) = bytes.get(i) {
        if b == b'"' || b == b'\\' || b < 0x20 {
            return Some(i);
        }
        i += 1;
    }
    None
}

/// Eight bytes at `at` as one little-endian word.
#[inline(always)]
pub(crate) fn load8(bytes: &[u8], at: usize) -> u64 {
    let mut word = [0u8; 8];
    word.copy_from_slice(&bytes[at..at + 8]);
    u64::from_le_bytes(word)
}

/// The value of eight ASCII digits loaded as a little-endian word (the first digit in
/// the lowest byte): pairs, then quads, then the whole, each step one multiplication
/// (Lemire's "parse eight digits" method).
#[inline(always)]
pub(crate) fn eight_digits(word: u64) -> u64 {
    let word = (word & 0x0F0F_0F0F_0F0F_0F0F).wrapping_mul(2561) >> 8;
    let word = (word & 0x00FF_00FF_00FF_00FF).wrapping_mul(6_553_601) >> 16;
    (word & 0x0000_FFFF_0000_FFFF).wrapping_mul(42_949_672_960_001) >> 32
}

/// Four bytes at `at` as one little-endian word.
#[inline(always)]
pub(crate) fn load4(bytes: &[u8], at: usize) -> u32 {
    let mut word = [0u8; 4];
    word.copy_from_slice(&bytes[at..at + 4]);
    u32::from_le_bytes(word)
}

/// Whether two slices of the same length are equal, compared a word at a time with
/// overlapping loads: keys are short, and a call to `memcmp` costs more than the
/// comparison itself.
#[inline(always)]
pub(crate) fn eq_short(hay: &[u8], pat: &[u8]) -> bool {
    let n = pat.len();
    if hay.len() != n {
        return false;
    }
    if n >= 8 {
        let mut i = 0;
        while i + 8 < n {
            if load8(hay, i) != load8(pat, i) {
                return false;
            }
            i += 8;
        }
        load8(hay, n - 8) == load8(pat, n - 8)
    } else if n >= 4 {
        load4(hay, 0) == load4(pat, 0) && load4(hay, n - 4) == load4(pat, n - 4)
    } else {
        // A byte loop: a slice comparison would call `memcmp`.
        hay.iter().zip(pat).all(|(a, b)| a == b)
    }
}

/// The high bit of each byte of `word` that is not an ASCII digit.
#[inline(always)]
pub(crate) fn digit_flags(word: u64) -> u64 {
    // Digits become 0..=9; every other byte becomes 10 or more, or has its high bit
    // set. Adding 0x76 to the low seven bits sets the high bit exactly for 10 and
    // more, without a carry between bytes.
    let x = word ^ splat(b'0');
    (((x & splat(0x7f)) + splat(0x76)) | x) & splat(0x80)
}

/// Powers of ten up to 10^7, to put the digits of a second word after the first's.
pub(crate) const POW10: [u64; 8] = [1, 10, 100, 1_000, 10_000, 100_000, 1_000_000, 10_000_000];

/// How many ASCII digits start at `i`, counted eight at a time; at most a few more
/// than 18, since longer numbers are declined anyway.
#[inline(always)]
pub(crate) fn digit_run(bytes: &[u8], start: usize) -> usize {
    let mut i = start;
    while let Some(chunk) = bytes.get(i..i + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let flags = digit_flags(u64::from_le_bytes(word));
        if flags != 0 {
            return i - start + (flags.trailing_zeros() / 8) as usize;
        }
        i += 8;
        if i - start > 18 {
            return i - start;
        }
    }
    while bytes.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    i - start
}

/// The value of four hex digits, either case, as serde_json reads `\uXXXX`.
#[inline]
pub(crate) fn hex4(digits: &[u8]) -> Option<u16> {
    let mut n: u16 = 0;
    for &d in digits.get(..4)? {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            b'A'..=b'F' => d - b'A' + 10,
            _ => return None,
        };
        n = (n << 4) | u16::from(v);
    }
    Some(n)
}

/// The value of a string's text between its quotes, which [`Scanner::string`] has
/// checked: every escape is one of JSON's and surrogates come in valid pairs.
pub(crate) fn unescape(raw: &str) -> Option<String> {
    let bytes = raw.as_bytes();
    let mut out = String::with_capacity(raw.len());
    let mut i = 0;
    // memchr's vectorised search, not `str::find`, which goes a byte at a time here.
    while let Some(offset) = memchr::memchr(b'\\', bytes.get(i..)?) {
        out.push_str(raw.get(i..i + offset)?);
        i += offset;
        // The character and the length of its escape.
        let (c, len) = match *bytes.get(i + 1)? {
            b'"' => ('"', 2),
            b'\\' => ('\\', 2),
            b'/' => ('/', 2),
            b'b' => ('\u{8}', 2),
            b'f' => ('\u{c}', 2),
            b'n' => ('\n', 2),
            b'r' => ('\r', 2),
            b't' => ('\t', 2),
            b'u' => {
                let high = u32::from(hex4(bytes.get(i + 2..)?)?);
                if (0xD800..0xDC00).contains(&high) {
                    // `\uD83D\uDE00`: the low half's digits start 8 bytes in.
                    let low = u32::from(hex4(bytes.get(i + 8..)?)?).checked_sub(0xDC00)?;
                    (char::from_u32(0x10000 + ((high - 0xD800) << 10) + low)?, 12)
                } else {
                    (char::from_u32(high)?, 6)
                }
            }
            _ => return None,
        };
        i += len;
        out.push(c);
    }
    out.push_str(raw.get(i..)?);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::{digit_run, eq_short, find_special};

    #[test]
    fn compares_short_slices_at_every_length() {
        for len in 0..40usize {
            let a: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            assert!(eq_short(&a, &a.clone()), "{len}");
            assert!(
                !eq_short(&a, &a[..len.saturating_sub(1)]) || len == 0,
                "{len}"
            );
            for at in 0..len {
                let mut b = a.clone();
                b[at] ^= 0x20;
                assert!(!eq_short(&a, &b), "{len} {at}");
            }
        }
    }

    #[test]
    fn counts_digits_at_every_length() {
        let fillers = [
            b'"', b',', b'}', b'/', b':', b'.', b'e', 0x00, 0x7f, 0x80, 0xb0, 0xff,
        ];
        for len in 0..30 {
            let digits: Vec<u8> = (0..len).map(|i| b'0' + (i % 10) as u8).collect();
            // Past 18 digits the count only needs to say "too many".
            assert_eq!(digit_run(&digits, 0).min(19), len.min(19), "{len}");
            for &filler in &fillers {
                for tail in 0..10 {
                    let mut bytes = digits.clone();
                    bytes.push(filler);
                    bytes.extend(std::iter::repeat_n(b'7', tail));
                    assert_eq!(digit_run(&bytes, 0).min(19), len.min(19), "{bytes:?}");
                }
            }
        }
    }

    #[test]
    fn finds_special_bytes_at_every_position() {
        let fillers = [b'a', b' ', b'~', 0x21, 0x7f, 0x80, 0xa0, 0xe2, 0xff];
        for len in 0..24 {
            for &filler in &fillers {
                let plain = vec![filler; len];
                assert_eq!(find_special(&plain, 0), None, "{len} {filler}");
                for at in 0..len {
                    for special in [b'"', b'\\', 0x00, 0x1f, b'\n'] {
                        let mut bytes = plain.clone();
                        bytes[at] = special;
                        // A second special byte later must not hide the first.
                        if at + 3 < len {
                            bytes[at + 3] = b'"';
                        }
                        for from in 0..=at {
                            assert_eq!(find_special(&bytes, from), Some(at), "{bytes:?} {from}");
                        }
                    }
                }
            }
        }
    }
}
