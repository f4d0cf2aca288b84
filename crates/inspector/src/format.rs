//! How times, durations and header values are shown.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `2026-12-04 16:40:05` (UTC), or `-` for a time before 1970.
pub(crate) fn time(t: SystemTime) -> String {
    let Ok(since) = t.duration_since(UNIX_EPOCH) else {
        return "-".to_owned();
    };
    let secs = since.as_secs();
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// A span in the largest unit that keeps it readable: `850 ms`, `12 s`, `11 min`,
/// `3 h`, `2 d`.
pub(crate) fn span(d: Duration) -> String {
    let s = d.as_secs();
    if s == 0 {
        format!("{} ms", d.as_millis())
    } else if s < 120 {
        format!("{s} s")
    } else if s < 2 * 3600 {
        format!("{} min", (s + 30) / 60)
    } else if s < 2 * 86_400 {
        format!("{} h", (s + 1800) / 3600)
    } else {
        format!("{} d", (s + 43_200) / 86_400)
    }
}

/// `11 min behind` / `2 h ahead of` / `in step with`, for a skew in seconds.
pub(crate) fn skew_words(skew: i64) -> String {
    let span_of = span(Duration::from_secs(skew.unsigned_abs()));
    match skew {
        0 => "in step with".to_owned(),
        s if s < 0 => format!("{span_of} behind"),
        _ => format!("{span_of} ahead of"),
    }
}

/// A signed skew for a table cell: `-11 min`, `+2 s`, `0 s`.
pub(crate) fn skew_cell(skew: i64) -> String {
    let sign = match skew {
        s if s < 0 => "-",
        s if s > 0 => "+",
        _ => "",
    };
    format!("{sign}{}", span(Duration::from_secs(skew.unsigned_abs())))
}

/// A header value as shown: signatures and digests shortened to their start, so a
/// page never shows the whole of one (they are not secrets, but they are noise).
pub(crate) fn header_value(name: &str, value: &[u8]) -> String {
    let text = String::from_utf8_lossy(value);
    let name = name.to_ascii_lowercase();
    if name == "signature" || name == "authorization" {
        // Keep the parameters readable, shorten the signature itself.
        return match text.find("signature=\"") {
            Some(at) => {
                let start = at + "signature=\"".len();
                let rest = &text[start..];
                let sig_len = rest.find('"').unwrap_or(rest.len());
                let shown: String = rest[..sig_len].chars().take(8).collect();
                format!("{}{shown}…{}", &text[..start], &rest[sig_len..])
            }
            None => shorten(&text, 24),
        };
    }
    if name == "digest" {
        return shorten(&text, 24);
    }
    text.into_owned()
}

fn shorten(text: &str, keep: usize) -> String {
    if text.chars().count() <= keep {
        text.to_owned()
    } else {
        format!("{}…", text.chars().take(keep).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_spans() {
        assert_eq!(time(UNIX_EPOCH), "1970-01-01 00:00:00");
        assert_eq!(
            time(UNIX_EPOCH + Duration::from_secs(1_796_402_405)),
            "2026-12-04 16:40:05"
        );
        assert_eq!(span(Duration::from_millis(850)), "850 ms");
        assert_eq!(span(Duration::from_secs(660)), "11 min");
        assert_eq!(skew_words(-660), "11 min behind");
        assert_eq!(skew_cell(-660), "-11 min");
        assert_eq!(skew_cell(3), "+3 s");
    }

    #[test]
    fn signatures_are_shortened() {
        let v = br#"keyId="hmac-key",algorithm="hmac-sha256",signature="abcdefghijklmnopqrstuvwxyz0123456789=",headers="date digest""#;
        assert_eq!(
            header_value("Signature", v),
            r#"keyId="hmac-key",algorithm="hmac-sha256",signature="abcdefgh…",headers="date digest""#
        );
        assert_eq!(
            header_value(
                "digest",
                b"SHA-256=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
            ),
            "SHA-256=47DEQpj8HBSa+/TI…"
        );
        assert_eq!(header_value("x-drone-event", b"build"), "build");
    }
}
