//! `https` endpoints: a receiver with an rcgen certificate, trusted explicitly, not
//! trusted, and reached with skip-verify.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use dronehook_client::{Client, Payload, Roots};
use dronehook_protocol::{Policy, RequestParts};
use http::{Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use rustls_pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

use crate::support::SECRET;

struct TlsReceiver {
    url: String,
    ca_pem: String,
    verified: Arc<AtomicUsize>,
}

/// A TLS receiver whose certificate names `localhost` and `127.0.0.1`, answering
/// 204 to requests that verify and 400 to others.
async fn tls_receiver() -> TlsReceiver {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    tls_receiver_with(&certified.cert, &certified.signing_key).await
}

/// The same receiver, presenting this certificate (which it also trusts as a root).
async fn tls_receiver_with(cert: &rcgen::Certificate, key: &rcgen::KeyPair) -> TlsReceiver {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(vec![cert.der().clone()], key)
    .unwrap();
    let acceptor = TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let verified = Arc::new(AtomicUsize::new(0));
    let ok = verified.clone();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, ok) = (acceptor.clone(), ok.clone());
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let service = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let ok = ok.clone();
                    async move {
                        let (parts, body) = req.into_parts();
                        let body = body.collect().await?.to_bytes();
                        let request = RequestParts::new("POST", "/", &parts.headers, &body);
                        let status = match Policy::new(SECRET)
                            .verify(&request, std::time::SystemTime::now())
                        {
                            Ok(_) => {
                                ok.fetch_add(1, Ordering::SeqCst);
                                StatusCode::NO_CONTENT
                            }
                            Err(_) => StatusCode::BAD_REQUEST,
                        };
                        let mut response = Response::new(Full::new(bytes::Bytes::new()));
                        *response.status_mut() = status;
                        Ok::<_, hyper::Error>(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tls), service)
                    .await;
            });
        }
    });
    TlsReceiver {
        url: format!("https://127.0.0.1:{}/hook", addr.port()),
        ca_pem: cert.pem(),
        verified,
    }
}

fn payload() -> Payload {
    Payload::raw(
        &br#"{"event":"user","action":"created"}"#[..],
        "user",
        "created",
    )
}

#[tokio::test]
async fn a_certificate_trusted_explicitly_works() {
    let receiver = tls_receiver().await;
    let client = Client::builder()
        .secret(SECRET)
        .endpoint(&receiver.url)
        .add_root_certificate(&receiver.ca_pem)
        .build()
        .unwrap();
    let report = client.send(payload()).await;
    assert!(report.is_success(), "{:?}", report.endpoints);
    assert_eq!(report.endpoints[0].status.map(|s| s.as_u16()), Some(204));
    assert_eq!(receiver.verified.load(Ordering::SeqCst), 1);
    // The same with only that certificate trusted.
    let only = Client::builder()
        .secret(SECRET)
        .endpoint(&receiver.url)
        .roots(Roots::None)
        .add_root_certificate(receiver.ca_pem.as_bytes())
        .build()
        .unwrap();
    assert!(only.send(payload()).await.is_success());
    assert_eq!(receiver.verified.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn an_untrusted_certificate_fails_once_as_a_tls_error() {
    let receiver = tls_receiver().await;
    let client = Client::builder()
        .secret(SECRET)
        .endpoint(&receiver.url)
        .attempts(5)
        .build()
        .unwrap();
    let d = client.send(payload()).await.endpoints.remove(0);
    // A certificate that fails verification fails the same way next time: no retry.
    assert_eq!(d.attempts, 1);
    assert_eq!(d.status, None);
    let err = d.error.unwrap();
    assert!(
        err.is_tls() && err.is_connect() && !err.is_retryable(),
        "{err:?}"
    );
    assert_eq!(err.class(), "tls");
    assert_eq!(
        err.to_string(),
        "TLS handshake failed: invalid peer certificate: UnknownIssuer"
    );
    assert_eq!(receiver.verified.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn skip_verify_accepts_the_certificate() {
    let receiver = tls_receiver().await;
    let client = Client::builder()
        .secret(SECRET)
        .endpoint(&receiver.url)
        .skip_verify(true)
        .build()
        .unwrap();
    let report = client.send(payload()).await;
    assert!(report.is_success(), "{:?}", report.endpoints);
    assert_eq!(receiver.verified.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn trusting_another_certificate_does_not_trust_this_one() {
    let receiver = tls_receiver().await;
    let wrong = rcgen::generate_simple_self_signed(vec!["other.example".to_owned()]).unwrap();
    // Trusting a different certificate does not make this one trusted.
    let client = Client::builder()
        .secret(SECRET)
        .endpoint(&receiver.url)
        .roots(Roots::None)
        .add_root_certificate(wrong.cert.pem())
        .build()
        .unwrap();
    let err = client
        .send(payload())
        .await
        .endpoints
        .remove(0)
        .error
        .unwrap();
    assert!(err.is_tls(), "{err:?}");
    // Both certificates carry rcgen's default issuer name, so the verifier finds the
    // trusted one and then a signature that does not match it.
    assert_eq!(
        err.to_string(),
        "TLS handshake failed: invalid peer certificate: BadSignature"
    );
    assert_eq!(receiver.verified.load(Ordering::SeqCst), 0);
}

#[tokio::test]
async fn a_ca_certificate_used_as_the_servers_own_is_explained() {
    // What `openssl req -x509` makes: a self-signed certificate that says it is a CA
    // (basicConstraints CA:TRUE), here served as the receiver's own certificate.
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let receiver = tls_receiver_with(&cert, &key).await;
    let client = Client::builder()
        .secret(SECRET)
        .endpoint(&receiver.url)
        .roots(Roots::None)
        .add_root_certificate(&receiver.ca_pem)
        .attempts(3)
        .build()
        .unwrap();
    let d = client.send(payload()).await.endpoints.remove(0);
    assert_eq!(
        d.attempts, 1,
        "the same certificate fails the same way again"
    );
    let err = d.error.unwrap();
    assert!(err.is_tls() && !err.is_retryable(), "{err:?}");
    assert_eq!(
        err.to_string(),
        "TLS handshake failed: the server's certificate is a CA certificate (as `openssl req \
         -x509` makes), which cannot identify a server; serve a certificate issued by a CA \
         and trust that CA (`dronehook cert --out DIR` makes both)"
    );
    assert_eq!(receiver.verified.load(Ordering::SeqCst), 0);
}
