//! When to try again: exponential backoff with jitter, and `Retry-After`.

use std::time::{Duration, SystemTime};

use http::HeaderMap;
use rand::Rng as _;

/// The backoff before attempt `attempt + 1`, after `attempt` (1-based) failed:
/// `base * 2^(attempt-1)`, capped at `max`, then a random point in its upper half
/// ("equal jitter"), so many senders retrying together spread out but never retry
/// sooner than half the planned wait.
pub(crate) fn backoff(attempt: u32, base: Duration, max: Duration) -> Duration {
    let exp = attempt.saturating_sub(1).min(31);
    let planned = base.saturating_mul(1u32 << exp).min(max);
    let half = planned / 2;
    let extra = planned.saturating_sub(half);
    if extra.is_zero() {
        return planned;
    }
    let nanos = rand::rng().random_range(0..=extra.as_nanos().min(u128::from(u64::MAX)) as u64);
    half + Duration::from_nanos(nanos)
}

/// Reads `Retry-After` in either form, delay-seconds or HTTP-date, as a wait from
/// `now`. A date in the past means "now"; an unreadable value is ignored.
pub(crate) fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let value = headers
        .get(http::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn backoff_doubles_within_its_jitter_and_stops_at_the_cap() {
        for _ in 0..200 {
            for (attempt, planned) in [
                (1, 100),
                (2, 200),
                (3, 400),
                (4, 800),
                (5, 1000),
                (40, 1000),
            ] {
                let wait = backoff(attempt, 100 * MS, 1000 * MS);
                assert!(
                    wait >= planned * MS / 2 && wait <= planned * MS,
                    "{attempt}: {wait:?}"
                );
            }
        }
        assert_eq!(
            backoff(3, Duration::ZERO, Duration::from_secs(1)),
            Duration::ZERO
        );
    }

    #[test]
    fn retry_after_reads_both_forms() {
        let now = httpdate::parse_http_date("Wed, 01 Jan 2020 00:00:00 GMT").unwrap();
        let read = |value: &str| {
            let mut headers = HeaderMap::new();
            headers.insert(http::header::RETRY_AFTER, value.parse().unwrap());
            retry_after(&headers, now)
        };
        assert_eq!(read("120"), Some(Duration::from_secs(120)));
        assert_eq!(read(" 7 "), Some(Duration::from_secs(7)));
        assert_eq!(
            read("Wed, 01 Jan 2020 00:00:30 GMT"),
            Some(Duration::from_secs(30))
        );
        assert_eq!(read("Tue, 31 Dec 2019 23:00:00 GMT"), Some(Duration::ZERO));
        assert_eq!(read("-1"), None);
        assert_eq!(read("1.5"), None);
        assert_eq!(read("tomorrow"), None);
        assert_eq!(retry_after(&HeaderMap::new(), now), None);
    }
}
