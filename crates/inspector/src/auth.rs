//! Access: the token, the session cookie it buys, and the CSRF token every form
//! carries.
//!
//! The cookie never holds the token: it holds SHA-256 of a per-process random salt
//! and the token, so a leaked cookie stops working at the next start and does not
//! reveal the token. Comparisons are constant-time.

use std::fmt::Write as _;

use dronehook_protocol::Secret;
use http::HeaderMap;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;

/// The session cookie's name.
pub(crate) const COOKIE: &str = "dronehook_ui";

/// The answer to a POST whose CSRF field is missing or wrong.
pub(crate) const CSRF_REFUSED: &str = "csrf token missing or wrong";

pub(crate) struct Auth {
    /// SHA-256 of the token, for a constant-time comparison of equal-length values.
    token: Option<[u8; 32]>,
    /// The cookie value a login sets.
    session: String,
    /// The forms' hidden field value.
    csrf: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn random() -> [u8; 32] {
    rand::random()
}

impl Auth {
    pub(crate) fn new(token: Option<Secret>) -> Auth {
        let salt = random();
        let token = token.map(|t| <[u8; 32]>::from(Sha256::digest(t.expose())));
        let session = match &token {
            Some(t) => {
                let mut h = Sha256::new();
                h.update(salt);
                h.update(t);
                hex(&h.finalize())
            }
            None => String::new(),
        };
        Auth {
            token,
            session,
            csrf: hex(&random()),
        }
    }

    pub(crate) fn has_token(&self) -> bool {
        self.token.is_some()
    }

    /// The CSRF value the pages embed.
    pub(crate) fn csrf(&self) -> &str {
        &self.csrf
    }

    /// Whether `given` is the CSRF value.
    pub(crate) fn csrf_ok(&self, given: Option<&str>) -> bool {
        given.is_some_and(|g| bool::from(g.as_bytes().ct_eq(self.csrf.as_bytes())))
    }

    /// Whether `given` is the token.
    pub(crate) fn token_ok(&self, given: &str) -> bool {
        match &self.token {
            Some(t) => bool::from(Sha256::digest(given.as_bytes()).as_slice().ct_eq(t)),
            None => true,
        }
    }

    /// The `Set-Cookie` value a successful login answers with.
    pub(crate) fn set_cookie(&self) -> String {
        format!(
            "{COOKIE}={}; Path=/; HttpOnly; SameSite=Strict",
            self.session
        )
    }

    /// Whether a request may see the pages: no token configured, or the session
    /// cookie, or `Authorization: Bearer TOKEN`.
    pub(crate) fn allows(&self, headers: &HeaderMap) -> bool {
        if self.token.is_none() {
            return true;
        }
        let bearer = headers
            .get_all(http::header::AUTHORIZATION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .filter_map(bearer)
            .any(|t| self.token_ok(t));
        bearer || self.cookie_ok(headers)
    }

    fn cookie_ok(&self, headers: &HeaderMap) -> bool {
        headers
            .get_all(http::header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .any(|(name, value)| {
                name == COOKIE && bool::from(value.as_bytes().ct_eq(self.session.as_bytes()))
            })
    }
}

/// The token of `Authorization: Bearer TOKEN`; the scheme's name is
/// case-insensitive (RFC 9110 section 11.1), so `bearer` and `BEARER` count too.
fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once([' ', '\t'])?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cookie_holds_no_token_and_only_the_session_passes() {
        let auth = Auth::new(Some(Secret::from("s3cret-token")));
        let cookie = auth.set_cookie();
        assert!(!cookie.contains("s3cret-token"), "{cookie}");
        assert!(cookie.ends_with("; Path=/; HttpOnly; SameSite=Strict"));
        let value = cookie
            .split(';')
            .next()
            .and_then(|p| p.split_once('='))
            .map(|(_, v)| v.to_owned())
            .expect("a value");
        let mut headers = HeaderMap::new();
        headers.insert(
            http::header::COOKIE,
            format!("other=1; {COOKIE}={value}")
                .parse()
                .expect("header"),
        );
        assert!(auth.allows(&headers));
        headers.insert(
            http::header::COOKIE,
            format!("{COOKIE}={value}x").parse().expect("header"),
        );
        assert!(!auth.allows(&headers));
        headers.clear();
        headers.insert(
            http::header::AUTHORIZATION,
            "Bearer s3cret-token".parse().expect("header"),
        );
        assert!(auth.allows(&headers));
        headers.insert(
            http::header::AUTHORIZATION,
            "Bearer wrong".parse().expect("header"),
        );
        assert!(!auth.allows(&headers));
        for scheme in ["bearer", "BEARER", "BeArEr"] {
            headers.insert(
                http::header::AUTHORIZATION,
                format!("{scheme}  s3cret-token").parse().expect("header"),
            );
            assert!(auth.allows(&headers), "{scheme}");
        }
        for refused in [
            "Basic s3cret-token",
            "Bearers3cret-token",
            "Bearer",
            "s3cret-token",
        ] {
            headers.insert(
                http::header::AUTHORIZATION,
                refused.parse().expect("header"),
            );
            assert!(!auth.allows(&headers), "{refused}");
        }
    }

    #[test]
    fn csrf_needs_the_exact_value() {
        let auth = Auth::new(None);
        let good = auth.csrf().to_owned();
        assert_eq!(good.len(), 64);
        assert!(auth.csrf_ok(Some(&good)));
        assert!(!auth.csrf_ok(Some(&good[..63])));
        assert!(!auth.csrf_ok(Some("")));
        assert!(!auth.csrf_ok(None));
    }
}
