//! One endpoint URL, checked and taken apart once: where requests go, the `Host` they
//! carry, `Authorization: Basic` from credentials in the URL, and the URL as reports
//! show it (password hidden).

use http::{HeaderValue, Uri};

use crate::Error;

/// One configured endpoint.
pub(crate) struct Endpoint {
    /// The URL as shown in reports, with any password replaced by `***`.
    pub(crate) url: String,
    /// The URL requests go to, without user information.
    pub(crate) uri: Uri,
    /// The `Host` header: the host and any explicit port, as Go sends it.
    pub(crate) host: HeaderValue,
    /// `Authorization: Basic` from user information in the URL, as Go's client adds it.
    pub(crate) authorization: Option<HeaderValue>,
}

impl Endpoint {
    pub(crate) fn parse(url: &str) -> Result<Endpoint, Error> {
        // Messages quote the URL only after its password is hidden.
        let shown = redact(url);
        let uri: Uri = url
            .parse()
            .map_err(|e| Error::builder(format!("endpoint {shown:?} is not a URL: {e}")))?;
        match uri.scheme_str() {
            Some("http" | "https") => {}
            _ => {
                return Err(Error::builder(format!(
                    "endpoint {shown:?} must start with http:// or https://"
                )));
            }
        }
        let (Some(authority), Some(host)) = (uri.authority(), uri.host()) else {
            return Err(Error::builder(format!("endpoint {shown:?} has no host")));
        };
        if host.is_empty() {
            return Err(Error::builder(format!("endpoint {shown:?} has no host")));
        }
        let host_port = match uri.port() {
            Some(port) => format!("{host}:{port}"),
            None => host.to_owned(),
        };
        let authorization = authority
            .as_str()
            .rsplit_once('@')
            .map(|(userinfo, _)| basic_auth(userinfo))
            .transpose()
            .map_err(|()| Error::builder(format!("endpoint {shown:?} has unusable credentials")))?;
        let mut parts = uri.into_parts();
        parts.authority = Some(
            host_port
                .parse()
                .map_err(|_| Error::builder(format!("endpoint {shown:?} has no host")))?,
        );
        let uri = Uri::from_parts(parts)
            .map_err(|e| Error::builder(format!("endpoint {shown:?} is not a URL: {e}")))?;
        let host = HeaderValue::from_str(&host_port)
            .map_err(|_| Error::builder(format!("endpoint {shown:?} has no host")))?;
        Ok(Endpoint {
            url: shown,
            uri,
            host,
            authorization,
        })
    }
}

/// Hides the password of `scheme://user:password@host/...` behind `***`.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            let hidden = if userinfo.contains(':') { ":***" } else { "" };
            format!("{scheme}://{user}{hidden}@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

/// `Basic base64(user:password)` from percent-encoded user information.
fn basic_auth(userinfo: &str) -> Result<HeaderValue, ()> {
    let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
    let credentials = format!("{}:{}", percent_decode(user)?, percent_decode(password)?);
    let mut value =
        HeaderValue::from_str(&format!("Basic {}", base64_encode(credentials.as_bytes())))
            .map_err(|_| ())?;
    value.set_sensitive(true);
    Ok(value)
}

fn percent_decode(s: &str) -> Result<String, ()> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3).ok_or(())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| ())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| ())
}

fn base64_encode(input: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(input)
}
