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
//! (libpq would read `~/.postgresql/root.crt` instead). tokio-postgres knows neither
//! `verify-*` mode nor `sslrootcert`, so both are taken off the URL here.

use std::sync::Arc;

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
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

/// Parses a `postgres://` URL into tokio-postgres's configuration and the TLS
/// connector its `sslmode` and `sslrootcert` ask for. The error is one line.
pub(super) fn configure(url: &str) -> Result<(tokio_postgres::Config, MakeRustlsConnect), String> {
    let (rest, mode, root) = split_tls_params(url);
    let mut config: tokio_postgres::Config = rest
        .parse()
        .map_err(|e| format!("not a PostgreSQL URL: {e}"))?;
    let (ssl_mode, check) = match mode.as_deref() {
        None | Some("prefer") => (SslMode::Prefer, Check::Nothing),
        Some("disable") => (SslMode::Disable, Check::Nothing),
        Some("require") if root.is_some() => (SslMode::Require, Check::Chain),
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
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS: {e}"))?;
    let client = match check {
        Check::Nothing => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(EncryptOnly(
                provider.signature_verification_algorithms,
            )))
            .with_no_client_auth(),
        Check::Chain | Check::Full => {
            let roots = Arc::new(roots(root.as_deref())?);
            let webpki = WebPkiServerVerifier::builder_with_provider(roots, provider)
                .build()
                .map_err(|e| format!("TLS: {e}"))?;
            if check == Check::Full {
                builder.with_webpki_verifier(webpki).with_no_client_auth()
            } else {
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(AnyName(webpki)))
                    .with_no_client_auth()
            }
        }
    };
    Ok((config, MakeRustlsConnect::new(client)))
}

/// The URL without its `sslmode` and `sslrootcert` parameters, and their values
/// (percent-decoded).
fn split_tls_params(url: &str) -> (String, Option<String>, Option<String>) {
    // The query starts at the first `?` after the host: a password may hold one.
    let path_start = url
        .find("://")
        .map(|i| i + 3)
        .and_then(|start| url[start..].find('/').map(|i| start + i));
    let Some(q) = path_start.and_then(|p| url[p..].find('?').map(|i| p + i)) else {
        return (url.to_owned(), None, None);
    };
    let (mut mode, mut root) = (None, None);
    let mut kept = Vec::new();
    for pair in url[q + 1..].split('&') {
        match pair.split_once('=') {
            Some(("sslmode", value)) => mode = Some(percent_decode(value)),
            Some(("sslrootcert", value)) => root = Some(percent_decode(value)),
            _ => kept.push(pair),
        }
    }
    let mut rest = url[..q].to_owned();
    if !kept.is_empty() {
        rest.push('?');
        rest.push_str(&kept.join("&"));
    }
    (rest, mode, root)
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

/// `prefer` and `require` without roots: any certificate, as libpq does. The
/// handshake's signatures are still checked, so the peer holds the certificate's key.
#[derive(Debug)]
struct EncryptOnly(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for EncryptOnly {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// `verify-ca`: the chain is checked, the name is not (webpki checks the chain first,
/// so a name error means the chain was good).
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
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
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tls_parameters_are_taken_off_the_url() {
        let split = |u: &str| split_tls_params(u);
        assert_eq!(
            split(
                "postgres://u:p?x@h/db?sslmode=verify-full&connect_timeout=3&sslrootcert=%2Fetc%2Fca.pem"
            ),
            (
                "postgres://u:p?x@h/db?connect_timeout=3".to_owned(),
                Some("verify-full".to_owned()),
                Some("/etc/ca.pem".to_owned())
            )
        );
        assert_eq!(
            split("postgres://h/db?sslmode=disable"),
            (
                "postgres://h/db".to_owned(),
                Some("disable".to_owned()),
                None
            )
        );
        assert_eq!(
            split("postgres://h/db"),
            ("postgres://h/db".to_owned(), None, None)
        );
        assert_eq!(
            split("postgres://u:p?x@h"),
            ("postgres://u:p?x@h".to_owned(), None, None)
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
