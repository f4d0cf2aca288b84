//! `serve --ui`: the inspector's listener beside the receiver. Off loopback it needs
//! a token or refuses to start (exit 2, one line); on loopback it serves the pages
//! from the receiver's store.

use std::io::{Read as _, Write as _};
use std::net::TcpStream;

use crate::support::{Served, run, serve_cmd, stderr};

/// `GET target` on its own connection with the extra headers; the whole answer.
fn get(addr: &str, target: &str, headers: &[&str]) -> String {
    let mut s = TcpStream::connect(addr).expect("connects");
    let mut req = format!("GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).expect("writes");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("reads");
    out
}

/// The inspector's address from its start-up line.
fn ui_addr(served: &Served) -> String {
    let line = served
        .wait_stderr("inspector on http://")
        .expect("the inspector's line");
    line.split("inspector on http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .expect("an address")
        .to_owned()
}

#[test]
fn beyond_loopback_without_a_token_it_refuses_to_start() {
    for ui in ["0.0.0.0:0", "[::]:0"] {
        let out = run(serve_cmd().args(["--secret", "s3cret", "--ui", ui]));
        assert_eq!(out.status.code(), Some(2), "{ui}");
        assert_eq!(
            stderr(&out),
            "error: --ui on a non-loopback address needs --ui-token (or DRONEHOOK_UI_TOKEN)\n",
            "{ui}"
        );
    }
    let out = run(serve_cmd().args(["--secret", "s3cret", "--ui", "nowhere"]));
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "error: invalid --ui address \"nowhere\": give a port (8081, for 127.0.0.1) or host:port\n"
    );
    let out = run(serve_cmd().args(["--secret", "s3cret", "--ui", "0.0.0.0:0", "--ui-token", ""]));
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr(&out), "error: --ui-token is empty\n");
    // A token under 16 characters, from the flag or the environment, on loopback too.
    let out = run(serve_cmd().args([
        "--secret",
        "s3cret",
        "--ui",
        "0",
        "--ui-token",
        "short-token-15c",
    ]));
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "error: --ui-token is too short: give at least 16 characters\n"
    );
    let out = run(serve_cmd()
        .args(["--secret", "s3cret", "--ui", "0.0.0.0:0"])
        .env("DRONEHOOK_UI_TOKEN", "short-token-15c"));
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "error: --ui-token is too short: give at least 16 characters\n"
    );
}

#[test]
fn with_a_token_from_the_environment_it_serves_beyond_loopback() {
    let mut cmd = serve_cmd();
    cmd.args([
        "--secret",
        "s3cret",
        "--output",
        "none",
        "--ui",
        "0.0.0.0:0",
    ])
    .env("DRONEHOOK_UI_TOKEN", "env-token-of-16-chars");
    let served = Served::start(cmd);
    let addr = ui_addr(&served).replace("0.0.0.0", "127.0.0.1");
    let denied = get(&addr, "/", &[]);
    assert!(denied.starts_with("HTTP/1.1 303 See Other\r\n"), "{denied}");
    assert!(denied.contains("\r\nlocation: /login\r\n"), "{denied}");
    let page = get(&addr, "/", &["Authorization: bearer env-token-of-16-chars"]);
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
    assert!(page.contains(r#"<table id="events">"#), "{page}");
}

#[test]
fn a_port_alone_means_loopback_and_the_pages_read_the_store() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = dir.path().join("store.db");
    let mut cmd = serve_cmd();
    cmd.args([
        "--secret", "s3cret", "--output", "none", "--ui", "0", "--store",
    ])
    .arg(&store);
    let served = Served::start(cmd);
    let addr = ui_addr(&served);
    assert!(addr.starts_with("127.0.0.1:"), "{addr}");
    for path in ["/", "/refusals", "/builds", "/failed", "/health"] {
        let page = get(&addr, path, &[]);
        assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{path}: {page}");
        assert!(
            page.contains(&format!("store {}", store.display())),
            "{path}: {page}"
        );
    }
}
