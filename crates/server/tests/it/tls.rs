//! HTTPS with rustls, from PEM files made by rcgen.

use std::sync::Arc;

use dronehook_server::Router;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::util::{Calls, PATIENCE, config, corpus, raw_body, start, status_line};

#[tokio::test]
async fn a_signed_request_over_tls_is_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, certified.cert.pem()).unwrap();
    std::fs::write(&key_path, certified.signing_key.serialize_pem()).unwrap();

    let calls = Calls::default();
    let server = start(
        config().tls(&cert_path, &key_path),
        Router::new().route("", calls.handler()).unwrap(),
    )
    .await;
    assert!(server.config().tls().is_some());

    let mut roots = rustls::RootCertStore::empty();
    roots.add(certified.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(client));
    let tcp = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .unwrap();
    let mut tls = connector
        .connect(ServerName::try_from("localhost").unwrap(), tcp)
        .await
        .unwrap();

    let body = corpus("build_success");
    let head = crate::util::signed_head(body, &["Connection: close"]);
    tls.write_all(head.as_bytes()).await.unwrap();
    tls.write_all(body).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(PATIENCE, tls.read_to_end(&mut out))
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out);
    assert_eq!(status_line(&text), "HTTP/1.1 204 No Content");
    assert_eq!(raw_body(&text), "");
    assert_eq!(calls.len(), 1);

    // Plain HTTP on the TLS port is not served.
    let plain = crate::util::raw(
        server.local_addr(),
        b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
    )
    .await;
    assert!(!plain.contains("200 OK"), "{plain}");
    server.shutdown().await.unwrap();
}
