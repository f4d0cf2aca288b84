//! TLS to PostgreSQL, with libpq's `sslmode` meanings, so a URL that works with `psql`
//! (or Drone's own `DRONE_DATABASE_DATASOURCE`) works here:
//!
//! | `sslmode` | TLS | the server's certificate |
//! |---|---|---|
//! | `disable` | never | – |
//! | `prefer` (the default) | when the server offers it | not checked |
//! | `require` | always | not checked, unless `sslrootcert` is given: then as `verify-ca` |
//! | `verify-ca` | always | signed by a trusted root |
//! | `verify-full` | always | signed by a trusted root, and for the URL's host |
//!
//! The trusted roots are `sslrootcert`'s: a PEM file, or `system` for the operating
//! system's store, which is also what `verify-ca` and `verify-full` use without it
//! (libpq would read `~/.postgresql/root.crt` instead). A client certificate is
//! `sslcert` and `sslkey` (PEM files, both or neither; libpq would look in
//! `~/.postgresql/` without them), sent when the server asks for one; the key file is
//! refused, as libpq refuses it, when its group or others may read it. tokio-postgres
//! knows none of these, nor the `verify-*` modes, so they are taken off the URL here.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_postgres::config::SslMode;
use tokio_postgres_rustls::MakeRustlsConnect;

/// What to check of the server's certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Check {
    /// Nothing: the connection is encrypted, not authenticated (`prefer`, `require`).
    Nothing,
    /// The chain to a trusted root (`verify-ca`).
    Chain,
    /// The chain and the host name (`verify-full`).
    Full,
}

/// The URL's TLS parameters that tokio-postgres does not know (percent-decoded).
#[derive(Debug, Default, PartialEq, Eq)]
struct TlsParams {
    mode: Option<String>,
    root: Option<String>,
    cert: Option<String>,
    key: Option<String>,
}

/// Parses a `postgres://` URL into tokio-postgres's configuration and the TLS
/// connector its `sslmode`, `sslrootcert`, `sslcert` and `sslkey` ask for. The error
/// is one line.
pub(super) fn configure(url: &str) -> Result<(tokio_postgres::Config, MakeRustlsConnect), String> {
    let (rest, params) = split_tls_params(url);
    let mut config: tokio_postgres::Config = rest
        .parse()
        .map_err(|e| format!("not a PostgreSQL URL: {e}"))?;
    let (ssl_mode, check) = match params.mode.as_deref() {
        None | Some("prefer") => (SslMode::Prefer, Check::Nothing),
        Some("disable") => (SslMode::Disable, Check::Nothing),
        Some("require") if params.root.is_some() => (SslMode::Require, Check::Chain),
        Some("require") => (SslMode::Require, Check::Nothing),
        Some("verify-ca") => (SslMode::Require, Check::Chain),
        Some("verify-full") => (SslMode::Require, Check::Full),
        Some(other) => {
            return Err(format!(
                "sslmode={other} is not supported: give disable, prefer, require, verify-ca or verify-full"
            ));
        }
    };
    config.ssl_mode(ssl_mode);
    // As libpq, without TLS the certificate files are not read.
    let identity = if ssl_mode == SslMode::Disable {
        None
    } else {
        identity(params.cert.as_deref(), params.key.as_deref())?
    };
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let algorithms = provider.signature_verification_algorithms;
    let chain = match check {
        Check::Nothing => None,
        Check::Chain | Check::Full => {
            let roots = Arc::new(roots(params.root.as_deref())?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| format!("TLS: {e}"))?;
            Some(webpki)
        }
    };
    let builder = match (check, chain) {
        (Check::Full, Some(webpki)) => builder.with_webpki_verifier(webpki),
        (_, chain) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Lenient { chain, algorithms })),
    };
    let client = match identity {
        Some((certs, key)) => builder
            .with_client_auth_cert(certs, key)
            .map_err(|e| format!("sslcert and sslkey: {e}"))?,
        None => builder.with_no_client_auth(),
    };
    Ok((config, MakeRustlsConnect::new(client)))
}

/// The URL without the parameters of [`TlsParams`], and their values.
fn split_tls_params(url: &str) -> (String, TlsParams) {
    let mut params = TlsParams::default();
    // The query starts at the first `?` after the host: a password may hold one.
    let path_start = url
        .find("://")
        .map(|i| i + 3)
        .and_then(|start| url[start..].find('/').map(|i| start + i));
    let Some(q) = path_start.and_then(|p| url[p..].find('?').map(|i| p + i)) else {
        return (url.to_owned(), params);
    };
    let mut kept = Vec::new();
    for pair in url[q + 1..].split('&') {
        let slot = match pair.split_once('=') {
            Some(("sslmode", value)) => Some((&mut params.mode, value)),
            Some(("sslrootcert", value)) => Some((&mut params.root, value)),
            Some(("sslcert", value)) => Some((&mut params.cert, value)),
            Some(("sslkey", value)) => Some((&mut params.key, value)),
            _ => None,
        };
        match slot {
            Some((slot, value)) => *slot = Some(percent_decode(value)),
            None => kept.push(pair),
        }
    }
    let mut rest = url[..q].to_owned();
    if !kept.is_empty() {
        rest.push('?');
        rest.push_str(&kept.join("&"));
    }
    (rest, params)
}

/// The client certificate chain and its key, from `sslcert` and `sslkey`.
fn identity(
    cert: Option<&str>,
    key: Option<&str>,
) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>, String> {
    let (cert, key) = match (cert, key) {
        (None, None) => return Ok(None),
        (Some(cert), Some(key)) => (cert, key),
        (Some(_), None) => return Err("sslcert needs sslkey: give both, or neither".to_owned()),
        (None, Some(_)) => return Err("sslkey needs sslcert: give both, or neither".to_owned()),
    };
    let certs = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("sslcert {cert}: {}", pem_error(&e)))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("sslcert {cert}: {}", pem_error(&e)))?;
    if certs.is_empty() {
        return Err(format!("sslcert {cert}: no certificate in it"));
    }
    key_file_is_private(key)?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| match e {
        rustls_pki_types::pem::Error::NoItemsFound => format!("sslkey {key}: no private key in it"),
        other => format!("sslkey {key}: {}", pem_error(&other)),
    })?;
    Ok(Some((certs, key_der)))
}

/// libpq's rule for a private key file: a regular file that only its owner may read
/// (`0600` or less), or, owned by root, its group too (`0640` or less).
fn key_file_is_private(path: &str) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata(path).map_err(|e| format!("sslkey {path}: {e}"))?;
    if !meta.is_file() {
        return Err(format!("sslkey {path}: not a regular file"));
    }
    let mode = meta.mode();
    let open = if meta.uid() == rustix::process::geteuid().as_raw() {
        mode & 0o077 != 0
    } else {
        meta.uid() == 0 && mode & 0o037 != 0
    };
    if open {
        return Err(format!(
            "sslkey {path}: its group or others may read it (mode {:04o}); make it u=rw (0600) or less, or u=rw,g=r (0640) or less if root owns it",
            mode & 0o7777
        ));
    }
    Ok(())
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// The roots a certificate must chain to: `sslrootcert`'s file, or the system's.
fn roots(root: Option<&str>) -> Result<RootCertStore, String> {
    let mut store = RootCertStore::empty();
    match root {
        None | Some("system") => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = store.add_parsable_certificates(found.certs);
            if added == 0 {
                return Err(
                    "sslrootcert: the system has no trusted root certificates; give sslrootcert=FILE"
                        .to_owned(),
                );
            }
        }
        Some(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("sslrootcert {path}: {}", pem_error(&e)))?
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("sslrootcert {path}: {}", pem_error(&e)))?;
            let (added, _) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(format!("sslrootcert {path}: no certificate in it"));
            }
        }
    }
    Ok(store)
}

fn pem_error(e: &rustls_pki_types::pem::Error) -> String {
    match e {
        rustls_pki_types::pem::Error::Io(io) => io.to_string(),
        other => format!("not a PEM file ({other})"),
    }
}

/// What webpki's verifier does not check as libpq's modes ask: `prefer` and `require`
/// without roots take any certificate; `verify-ca` checks the chain and not the name
/// (webpki checks the chain first, so a name error means the chain was good). The
/// handshake's signatures are checked either way, so the peer holds the
/// certificate's key.
#[derive(Debug)]
struct Lenient {
    /// The chain's check (`verify-ca`), or none (`prefer`, `require`).
    chain: Option<Arc<WebPkiServerVerifier>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tls_parameters_are_taken_off_the_url() {
        let split = |u: &str| split_tls_params(u);
        let some = |s: &str| Some(s.to_owned());
        assert_eq!(
            split(
                "postgres://u:p?x@h/db?sslmode=verify-full&connect_timeout=3&sslrootcert=%2Fetc%2Fca.pem&sslcert=c.pem&sslkey=%2Fk%20ey.pem"
            ),
            (
                "postgres://u:p?x@h/db?connect_timeout=3".to_owned(),
                TlsParams {
                    mode: some("verify-full"),
                    root: some("/etc/ca.pem"),
                    cert: some("c.pem"),
                    key: some("/k ey.pem"),
                }
            )
        );
        assert_eq!(
            split("postgres://h/db?sslmode=disable"),
            (
                "postgres://h/db".to_owned(),
                TlsParams {
                    mode: some("disable"),
                    ..TlsParams::default()
                }
            )
        );
        assert_eq!(
            split("postgres://h/db"),
            ("postgres://h/db".to_owned(), TlsParams::default())
        );
        assert_eq!(
            split("postgres://u:p?x@h"),
            ("postgres://u:p?x@h".to_owned(), TlsParams::default())
        );
    }

    #[test]
    fn each_sslmode_has_a_meaning_or_a_one_line_refusal() {
        let mode = |u: &str| configure(u).map(|(c, _)| c.get_ssl_mode());
        assert_eq!(mode("postgres://h/db"), Ok(SslMode::Prefer));
        assert_eq!(mode("postgres://h/db?sslmode=prefer"), Ok(SslMode::Prefer));
        assert_eq!(
            mode("postgres://h/db?sslmode=disable"),
            Ok(SslMode::Disable)
        );
        assert_eq!(
            mode("postgres://h/db?sslmode=require"),
            Ok(SslMode::Require)
        );
        assert_eq!(
            mode("postgres://h/db?sslmode=allow").unwrap_err(),
            "sslmode=allow is not supported: give disable, prefer, require, verify-ca or verify-full"
        );
        assert_eq!(
            mode("postgres://h/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem")
                .unwrap_err(),
            "sslrootcert /nonexistent/ca.pem: No such file or directory (os error 2)"
        );
        let not_pem = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(not_pem.path(), "hello\n").unwrap();
        let path = not_pem.path().display();
        assert_eq!(
            mode(&format!(
                "postgres://h/db?sslmode=verify-ca&sslrootcert={path}"
            ))
            .unwrap_err(),
            format!("sslrootcert {path}: no certificate in it")
        );
    }
}
