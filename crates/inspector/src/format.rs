//! How times, durations and header values are shown (credentials never).

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

/// Headers whose value a page shows as received: none of them carries a credential.
/// Every other header's value is `***` (a proxy's `Authorization`, cookies, API keys:
/// whatever a sender or a proxy added), the same allow-list as the store's `Debug`.
const SHOWN_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "date",
    "x-drone-event",
    "user-agent",
];

/// `Signature` parameters whose value is shown; the signature itself and any other
/// parameter are `***`.
const SHOWN_PARAMS: &[&str] = &["keyid", "algorithm", "headers", "created", "expires"];

/// A header value as shown: the allow-listed headers as received; `Signature` (and an
/// `Authorization: Signature ...`) with its parameters but not the signature; a
/// `Digest` shortened (a hash of the body, shown whole above); `***` for the rest.
/// Header names are matched case-insensitively.
pub(crate) fn header_value(name: &str, value: &[u8]) -> String {
    let text = String::from_utf8_lossy(value);
    if SHOWN_HEADERS.iter().any(|h| name.eq_ignore_ascii_case(h)) {
        return text.into_owned();
    }
    if name.eq_ignore_ascii_case("signature") {
        return signature_params(&text);
    }
    if name.eq_ignore_ascii_case("authorization") {
        let (scheme, rest) = text.trim().split_once(' ').unwrap_or((&text, ""));
        if scheme.eq_ignore_ascii_case("signature") {
            return format!("{scheme} {}", signature_params(rest.trim()));
        }
        return "***".to_owned();
    }
    if name.eq_ignore_ascii_case("digest") {
        return shorten(&text, 24);
    }
    "***".to_owned()
}

/// `keyId="k",algorithm="hmac-sha256",signature="...",headers="date digest"` with the
/// signature's value (and any parameter not in [`SHOWN_PARAMS`]) replaced by `***`.
fn signature_params(text: &str) -> String {
    split_params(text)
        .iter()
        .map(|part| match part.split_once('=') {
            Some((key, value))
                if SHOWN_PARAMS
                    .iter()
                    .any(|p| key.trim().eq_ignore_ascii_case(p)) =>
            {
                format!("{}={}", key.trim(), value.trim())
            }
            Some((key, value)) if value.trim().starts_with('"') => {
                format!("{}=\"***\"", key.trim())
            }
            Some((key, _)) => format!("{}=***", key.trim()),
            None => "***".to_owned(),
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Splits on the commas outside double quotes.
fn split_params(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(&text[start..]);
    parts.retain(|p| !p.trim().is_empty());
    parts
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
    fn credentials_are_never_shown() {
        let v = br#"keyId="hmac-key",algorithm="hmac-sha256",signature="abcdefghijklmnopqrstuvwxyz0123456789=",headers="date digest""#;
        let shown =
            r#"keyId="hmac-key",algorithm="hmac-sha256",signature="***",headers="date digest""#;
        assert_eq!(header_value("Signature", v), shown);
        assert_eq!(header_value("SIGNATURE", v), shown);
        // The parameter names in any case, a comma inside quotes, an unknown parameter.
        assert_eq!(
            header_value(
                "signature",
                br#"KEYID="a,b", Signature="c2VjcmV0", ALGORITHM="hmac-sha256", extra="x", junk"#
            ),
            r#"KEYID="a,b",Signature="***",ALGORITHM="hmac-sha256",extra="***",***"#
        );
        assert_eq!(
            header_value(
                "Authorization",
                br#"signature keyId="k",signature="c2VjcmV0""#
            ),
            r#"signature keyId="k",signature="***""#
        );
        for (name, value) in [
            ("Authorization", "Basic dXNlcjpwYXNzd29yZA=="),
            ("authorization", "Bearer abcdefghijklmnopqrstuvwxyz"),
            ("Proxy-Authorization", "Basic dXNlcjpwYXNzd29yZA=="),
            ("Cookie", "session=s3cret"),
            ("X-Api-Key", "s3cret"),
            ("x-auth-token", "s3cret"),
            ("X-Forwarded-For", "192.0.2.1"),
        ] {
            assert_eq!(header_value(name, value.as_bytes()), "***", "{name}");
        }
        assert_eq!(
            header_value(
                "digest",
                b"SHA-256=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
            ),
            "SHA-256=47DEQpj8HBSa+/TI…"
        );
        assert_eq!(header_value("X-Drone-Event", b"build"), "build");
        assert_eq!(
            header_value("content-type", b"application/json"),
            "application/json"
        );
    }
}
