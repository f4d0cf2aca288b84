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
