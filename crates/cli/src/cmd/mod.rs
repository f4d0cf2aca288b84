//! One module per subcommand, plus what several of them share.

pub(crate) mod audit;
pub(crate) mod cert;
pub(crate) mod completions;
pub(crate) mod encode;
pub(crate) mod events;
pub(crate) mod fixtures;
pub(crate) mod secret;
pub(crate) mod send;
pub(crate) mod serve;
pub(crate) mod sign;
pub(crate) mod verify;

use std::time::SystemTime;

use dronehook_protocol::http::Uri;

use crate::usage;

/// Parses a moment given as an HTTP date (`Wed, 01 Jan 2020 00:00:00 GMT`) or in
/// RFC 3339 (`2020-01-01T00:00:00Z`).
pub(crate) fn parse_moment(flag: &str, text: &str) -> anyhow::Result<SystemTime> {
    let text = text.trim();
    httpdate::parse_http_date(text)
        .ok()
        .or_else(|| humantime::parse_rfc3339_weak(text).ok())
        .ok_or_else(|| {
            usage(format!(
                "invalid {flag} {text:?}: give an HTTP date (Wed, 01 Jan 2020 00:00:00 GMT) or RFC 3339 (2020-01-01T00:00:00Z)"
            ))
        })
}

/// Checks that a URL is an absolute http or https URL with a host.
pub(crate) fn parse_url(url: &str) -> anyhow::Result<Uri> {
    let uri: Uri = url
        .parse()
        .map_err(|_| usage(format!("invalid URL {url:?}")))?;
    match uri.scheme_str() {
        Some("http" | "https") => {}
        Some(other) => {
            return Err(usage(format!(
                "invalid URL {url:?}: the scheme is {other:?}, not http or https"
            )));
        }
        None => {
            return Err(usage(format!(
                "invalid URL {url:?}: it needs a scheme, as in http://{url}"
            )));
        }
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(usage(format!("invalid URL {url:?}: it has no host")));
    }
    Ok(uri)
}

/// The event a body names in its `event` field, if it is JSON and has one.
pub(crate) fn body_event(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value
        .get("event")?
        .as_str()
        .filter(|e| !e.is_empty())
        .map(str::to_owned)
}
