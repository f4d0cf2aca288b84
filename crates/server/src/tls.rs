//! TLS from PEM files with rustls.

use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsFiles;
use crate::error::{Error, Result};

/// Loads the certificate chain and key and builds an acceptor (HTTP/1.1 only).
pub(crate) fn acceptor(files: &TlsFiles) -> Result<TlsAcceptor> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&files.cert)
        .map_err(|e| Error::tls(Some(files.cert.clone()), e))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| Error::tls(Some(files.cert.clone()), e))?;
    if certs.is_empty() {
        return Err(Error::tls(
            Some(files.cert.clone()),
            "no certificate in the file",
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .map_err(|e| Error::tls(Some(files.key.clone()), e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::tls(None, e))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| Error::tls(Some(files.key.clone()), e))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
