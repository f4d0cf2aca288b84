//! `dronehook audit` against a real `dronehook serve`: every case of the hostile
//! catalog passes; a wrong secret, an untrusted certificate or an absent receiver
//! are reported as such.

use serde_json::Value;

use crate::support::{Served, dronehook, run, serve_cmd, stderr, stdout};

const SECRET: &str = "audit-s3cr3t";

fn serve(extra: &[&str]) -> Served {
    let mut cmd = serve_cmd();
    cmd.args(["--secret", SECRET, "--output", "none"])
        .args(extra);
    Served::start(cmd)
}

#[test]
fn every_case_passes_against_our_server() {
    let served = serve(&[]);
    let out = run(dronehook().args(["audit", &served.url, "--secret", SECRET]));
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}{}", stderr(&out));
    let total = dronehook_audit::all().len();
    let fixtures = std::fs::read_dir(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../fixtures/hostile"
    ))
    .unwrap()
    .filter(|e| {
        e.as_ref()
            .unwrap()
            .path()
            .extension()
            .is_some_and(|x| x == "expect")
    })
    .count();
    assert_eq!(total, fixtures, "every case of the catalog is sent");
    assert!(
        text.trim_end()
            .ends_with(&format!("{total}/{total} cases passed")),
        "{text}"
    );
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| l.ends_with("  pass") || l.ends_with("  FAIL"))
        .collect();
    assert_eq!(rows.len(), total, "{text}");
    assert!(rows.iter().all(|r| r.ends_with("  pass")), "{text}");
    assert!(
        text.lines().any(|l| l.starts_with("digest_body_replaced ")
            && l.matches("401 digest.mismatch").count() == 2),
        "{text}"
    );
    assert!(text.contains("204, then 404 not_found"), "{text}");
    // Connection-level cases: two pipelined requests on one connection, answered in
    // order; HTTP/2's preface closed without an answer.
    assert!(
        text.lines()
            .any(|l| l.starts_with("transport_pipelined_forgery ")
                && l.contains("204, then 401 digest.mismatch ")
                && l.contains(" 204, 401 digest.mismatch ")
                && l.ends_with("  pass")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("transport_http2_preface ")
                && l.contains("closed or 4xx")
                && l.contains("  closed  ")
                && l.ends_with("  pass")),
        "{text}"
    );
    assert!(text.contains("204 x50"), "{text}");

    // A second run passes too: its bodies are new to the receiver, so the 202s of
    // unknown events are not answered as replays.
    let again = run(dronehook().args(["audit", &served.url, "--secret", SECRET, "--json"]));
    assert_eq!(again.status.code(), Some(0), "{}", stdout(&again));
    let json: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(json["passed"], total);
    assert_eq!(json["failed"], 0);
    let unknown = json["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "body_unknown_event")
        .unwrap();
    assert_eq!(unknown["got"], "202");
    assert_eq!(unknown["copies"][0]["status"], 202);
}

#[test]
fn a_path_other_than_the_urls_is_audited_with_path() {
    let served = serve(&["--path", "/hooks/drone"]);
    let base = served.url.trim_end_matches("hooks/drone");
    let out = run(dronehook().args([
        "audit",
        base,
        "--secret",
        SECRET,
        "--path",
        "/hooks/drone",
        "--json",
    ]));
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["path"], "/hooks/drone");
}

#[test]
fn a_wrong_secret_fails_the_accepting_cases_only() {
    let served = serve(&[]);
    let out = run(dronehook().args(["audit", &served.url, "--secret", "not-the-secret", "--json"]));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let case = |name: &str| {
        json["cases"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == name)
            .unwrap()
            .clone()
    };
    let valid = case("signature_valid");
    assert_eq!(valid["pass"], false);
    assert_eq!(valid["expected"], "204");
    assert_eq!(valid["got"], "401 signature.invalid");
    // Refusals that come before the signature is checked still match.
    assert_eq!(case("signature_missing")["pass"], true);
    assert_eq!(case("transport_wrong_method")["pass"], true);
    let passed = json["passed"].as_u64().unwrap();
    let total = json["total"].as_u64().unwrap();
    assert!(passed > 0 && passed < total, "{passed}/{total}");
    assert_eq!(json["failed"].as_u64().unwrap(), total - passed);
}

#[test]
fn https_receivers_are_audited_with_their_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert = dir.path().join("cert.pem");
    let key = dir.path().join("key.pem");
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let served = serve(&[
        "--tls-cert",
        cert.to_str().unwrap(),
        "--tls-key",
        key.to_str().unwrap(),
    ]);
    let url = served.url.replace("127.0.0.1", "localhost");

    let trusted = run(dronehook().args([
        "audit",
        &url,
        "--secret",
        SECRET,
        "--ca-cert",
        cert.to_str().unwrap(),
    ]));
    assert_eq!(trusted.status.code(), Some(0), "{}", stdout(&trusted));

    // Without the certificate: one error, not a table of failures.
    let refused = run(dronehook().args(["audit", &url, "--secret", SECRET]));
    assert_eq!(refused.status.code(), Some(1));
    assert_eq!(stdout(&refused), "");
    let err = stderr(&refused);
    assert!(
        err.starts_with("error: cannot reach localhost:") && err.contains("TLS handshake failed"),
        "{err}"
    );
}

#[test]
fn an_absent_receiver_and_bad_arguments_are_errors() {
    // A port that was free a moment ago: nothing listens there now.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/");
    let absent = run(dronehook().args(["audit", &url, "--secret", SECRET]));
    assert_eq!(absent.status.code(), Some(1));
    assert_eq!(
        stderr(&absent).trim_end(),
        format!("error: cannot reach 127.0.0.1:{port}: connection refused")
    );

    let no_secret = run(dronehook().args(["audit", &url]));
    assert_eq!(no_secret.status.code(), Some(2));
    assert!(
        stderr(&no_secret).starts_with("error: no secret: give --secret"),
        "{}",
        stderr(&no_secret)
    );
    let bad_url = run(dronehook().args(["audit", "ftp://example.com/", "--secret", SECRET]));
    assert_eq!(bad_url.status.code(), Some(2));
    assert_eq!(
        stderr(&bad_url).trim_end(),
        "error: invalid URL \"ftp://example.com/\": the scheme is \"ftp\", not http or https"
    );
    let bad_path = run(dronehook().args(["audit", &url, "--secret", SECRET, "--path", "hooks"]));
    assert_eq!(bad_path.status.code(), Some(2));
    assert_eq!(
        stderr(&bad_path).trim_end(),
        "error: invalid --path \"hooks\": it must start with /"
    );
    let ca_on_http =
        run(dronehook().args(["audit", &url, "--secret", SECRET, "--ca-cert", "x.pem"]));
    assert_eq!(ca_on_http.status.code(), Some(2));
    assert_eq!(
        stderr(&ca_on_http).trim_end(),
        "error: --ca-cert needs an https URL"
    );
}

// The catalog's `transport_http2_preface` expects any receiver to close the
// connection without an answer or with a 4xx; this pins down what `dronehook serve`
// does of the two (closes it, sending nothing) and that it goes on serving.

/// Where a served URL listens.
fn addr_of(served: &Served) -> std::net::SocketAddr {
    served
        .url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap()
}

fn read_to_end(stream: &mut std::net::TcpStream) -> Vec<u8> {
    use std::io::Read as _;
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    let mut out = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return out,
            Err(e) => panic!("reading: {e} after {} bytes", out.len()),
        }
    }
}

#[test]
fn the_http2_preface_is_closed_without_an_answer() {
    use std::io::Write as _;
    let served = serve(&[]);
    let addr = addr_of(&served);
    let mut stream = std::net::TcpStream::connect(addr).unwrap();
    stream
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&read_to_end(&mut stream)), "");
    // The receiver serves the next connection as usual.
    let ctx = dronehook_audit::RenderContext::new(SECRET, std::time::SystemTime::now())
        .host(addr.to_string())
        .nonce(format!("after-preface-{}", std::process::id()));
    let valid = dronehook_audit::get("signature_valid")
        .unwrap()
        .render(&ctx);
    let answer =
        dronehook_audit::raw::exchange(addr, &valid, std::time::Duration::from_secs(10)).unwrap();
    assert_eq!(answer.status, 204);
}
