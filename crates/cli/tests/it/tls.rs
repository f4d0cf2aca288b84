//! `serve --tls-cert/--tls-key` with an rcgen certificate, and `send` trusting it
//! with `--ca-cert`, or skipping verification, or refusing it.

use crate::support::{Served, dronehook, run, serve_cmd, stderr, stdout};

#[test]
fn send_reaches_a_tls_receiver_it_trusts() {
    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();

    let mut serve = serve_cmd();
    serve
        .args(["--secret", "s3cr3t", "--output", "none", "--tls-cert"])
        .arg(&cert);
    serve.arg("--tls-key").arg(&key);
    let served = Served::start(serve);
    assert!(
        served.url.starts_with("https://127.0.0.1:"),
        "{}",
        served.url
    );
    let url = served.url.replace("127.0.0.1", "localhost");
    let send = |extra: &[&str]| {
        run(dronehook()
            .args([
                "send",
                "--secret",
                "s3cr3t",
                "--retries",
                "0",
                "--endpoint",
                &url,
            ])
            .args(extra)
            .arg("fixture:user_created"))
    };

    let trusted = send(&["--ca-cert", cert.to_str().unwrap()]);
    assert_eq!(
        trusted.status.code(),
        Some(0),
        "{}{}",
        stdout(&trusted),
        stderr(&trusted)
    );
    let skipped = send(&["--skip-verify"]);
    assert_eq!(skipped.status.code(), Some(0), "{}", stdout(&skipped));
    let refused = send(&[]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stdout(&refused).contains("TLS handshake failed"),
        "{}",
        stdout(&refused)
    );
}

#[test]
fn unusable_tls_files_are_a_usage_error() {
    let out = run(dronehook().args([
        "serve",
        "--secret",
        "s",
        "--bind",
        "127.0.0.1:0",
        "--tls-cert",
        "missing.pem",
        "--tls-key",
        "missing-key.pem",
    ]));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.starts_with("error: TLS: missing.pem: "), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// `dronehook send --secret s3cr3t --retries 0 --endpoint URL`, with more arguments
/// and a fixture.
fn send_to(url: &str, extra: &[&str]) -> std::process::Output {
    run(dronehook()
        .args([
            "send",
            "--secret",
            "s3cr3t",
            "--retries",
            "0",
            "--endpoint",
            url,
        ])
        .args(extra)
        .arg("fixture:user_created"))
}

/// `dronehook serve` over HTTPS with these files.
fn serve_tls(cert: &std::path::Path, key: &std::path::Path) -> Served {
    let mut serve = serve_cmd();
    serve
        .args(["--secret", "s3cr3t", "--output", "none", "--tls-cert"])
        .arg(cert)
        .arg("--tls-key")
        .arg(key);
    Served::start(serve)
}

#[test]
fn the_files_of_cert_serve_and_send_https() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("certs");
    let made = run(dronehook().arg("cert").arg("--out").arg(&out));
    assert_eq!(made.status.code(), Some(0), "{}", stderr(&made));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(out.join("server-key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the key is its owner's only");
    }

    let served = serve_tls(&out.join("server.pem"), &out.join("server-key.pem"));
    let ca = out.join("ca.pem");
    let ca = ca.to_str().unwrap();
    // By the IP address and by the name, both in the default names.
    // The same body twice: the second is a replay, answered 2xx and reported as a
    // duplicate, which shows the TLS connection worked just as well.
    for (url, word) in [
        (served.url.clone(), "delivered"),
        (served.url.replace("127.0.0.1", "localhost"), "duplicate"),
    ] {
        let sent = send_to(&url, &["--ca-cert", ca]);
        assert_eq!(
            sent.status.code(),
            Some(0),
            "{url}: {}{}",
            stdout(&sent),
            stderr(&sent)
        );
        assert!(
            stdout(&sent).contains(&format!("fixture:user_created  user created      {word}")),
            "{}",
            stdout(&sent)
        );
    }
    // Without the CA, the same server is not trusted.
    let refused = send_to(&served.url, &[]);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        stdout(&refused).contains("TLS handshake failed: invalid peer certificate: UnknownIssuer"),
        "{}",
        stdout(&refused)
    );
}

#[test]
fn a_ca_certificate_served_as_the_servers_own_is_explained() {
    // What `openssl req -x509 -newkey ... -subj /CN=localhost` makes: a self-signed
    // certificate with basicConstraints CA:TRUE.
    let dir = tempfile::tempdir().unwrap();
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    let cert_path = dir.path().join("cert.pem");
    let key_path = dir.path().join("key.pem");
    std::fs::write(&cert_path, cert.pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();

    let served = serve_tls(&cert_path, &key_path);
    let message = "TLS handshake failed: the server's certificate is a CA certificate (as \
                   `openssl req -x509` makes), which cannot identify a server; serve a \
                   certificate issued by a CA and trust that CA (`dronehook cert --out DIR` \
                   makes both)";
    let ca = cert_path.to_str().unwrap();
    let sent = send_to(&served.url, &["--ca-cert", ca]);
    assert_eq!(sent.status.code(), Some(1), "{}", stderr(&sent));
    let text = stdout(&sent);
    let row = text
        .lines()
        .find(|l| l.starts_with(&served.url))
        .unwrap_or_else(|| panic!("no row for the endpoint: {text}"));
    assert!(row.ends_with(&format!("  {message}")), "{row}");

    let sent = send_to(&served.url, &["--ca-cert", ca, "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&sent.stdout).unwrap();
    assert_eq!(json["endpoints"][0]["last_error"], message, "{json}");
    assert_eq!(json["events"][0]["deliveries"][0]["class"], "tls", "{json}");
    assert_eq!(
        json["events"][0]["deliveries"][0]["error"], message,
        "{json}"
    );
}
