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
