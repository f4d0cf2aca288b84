//! The TLS settings: which roots are trusted, extra roots, and Drone's
//! `DRONE_WEBHOOK_SKIP_VERIFY` (a verifier that accepts any certificate).

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};

use crate::Error;

/// Which certificate authorities a client trusts for `https` endpoints, besides the
/// certificates added with [`ClientBuilder::add_root_certificate`](crate::ClientBuilder::add_root_certificate).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Roots {
    /// Mozilla's roots, compiled in (`webpki-roots`): the same everywhere, no system files needed.
    #[default]
    Webpki,
    /// The operating system's store (`rustls-native-certs`).
    Native,
    /// Only the explicitly added certificates.
    None,
}

/// Parses every certificate in a PEM text.
pub(crate) fn parse_pem(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, Error> {
    let mut out = Vec::new();
    for cert in CertificateDer::pem_slice_iter(pem) {
        out.push(cert.map_err(|e| Error::builder(format!("bad PEM certificate: {e}")))?);
    }
    if out.is_empty() {
        return Err(Error::builder("no certificate found in the PEM text"));
    }
    Ok(out)
}

/// Builds the rustls configuration.
pub(crate) fn config(
    roots: Roots,
    extra: &[CertificateDer<'static>],
    skip_verify: bool,
) -> Result<ClientConfig, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::builder(format!("TLS settings: {e}")))?;
    // ALPN is left to hyper-rustls, which offers `http/1.1` (webhooks are HTTP/1.1,
    // as Drone sends them) and refuses a configuration that sets it already.
    let config = if skip_verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnything {
                algorithms: provider.signature_verification_algorithms,
            }))
            .with_no_client_auth()
    } else {
        let mut store = RootCertStore::empty();
        match roots {
            Roots::Webpki => store.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
            Roots::Native => {
                let found = rustls_native_certs::load_native_certs();
                // Unreadable entries in the system store are skipped, as browsers do;
                // only a store with nothing usable in it is an error.
                let (added, _ignored) = store.add_parsable_certificates(found.certs);
                if added == 0 {
                    return Err(Error::builder(
                        "no usable certificate in the system's root store",
                    ));
                }
            }
            Roots::None => {}
        }
        for cert in extra {
            store
                .add(cert.clone())
                .map_err(|e| Error::builder(format!("unusable root certificate: {e}")))?;
        }
        if store.is_empty() {
            return Err(Error::builder(
                "no trusted root certificate (Roots::None and none added)",
            ));
        }
        builder.with_root_certificates(store).with_no_client_auth()
    };
    Ok(config)
}

/// Accepts any server certificate, but still checks that the handshake was signed
/// by the key in it, so the connection is at least consistent.
#[derive(Debug)]
struct AcceptAnything {
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for AcceptAnything {
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
