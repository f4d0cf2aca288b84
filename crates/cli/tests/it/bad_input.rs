//! Bad input: each gives one line on stderr, `error: ...`, and the right exit status
//! (2 for what the user gave, 1 for a failure while running).

use std::process::Stdio;

use crate::support::{dronehook, run, stderr, stdout};

/// Runs and returns (status, stderr, stdout).
fn outcome(args: &[&str]) -> (Option<i32>, String, String) {
    let out = run(dronehook().args(args));
    (out.status.code(), stderr(&out), stdout(&out))
}

#[test]
fn serve_without_a_secret_refuses_to_start() {
    assert_eq!(
        outcome(&["serve", "--bind", "127.0.0.1:0"]),
        (
            Some(2),
            "error: no secret: give --secret or --secret-file, or set DRONE_SECRET or DRONE_WEBHOOK_SECRET (--insecure-no-verify accepts unsigned requests)\n".into(),
            String::new()
        )
    );
    assert_eq!(
        outcome(&[
            "send",
            "--endpoint",
            "http://127.0.0.1:9/",
            "fixture:user_created"
        ])
        .1,
        "error: no secret: give --secret or set DRONE_WEBHOOK_SECRET\n"
    );
    assert_eq!(
        outcome(&["sign", "fixture:user_created"]).1,
        "error: no secret: give --secret or set DRONE_WEBHOOK_SECRET\n"
    );
    assert_eq!(
        outcome(&["verify", "-H", "Date: x", "fixture:user_created"]).0,
        Some(2)
    );
}

#[test]
fn unreadable_files_are_named() {
    let missing = [
        vec!["sign", "--secret", "s", "missing.json"],
        vec!["encode", "missing.json"],
        vec![
            "send",
            "--secret",
            "s",
            "--endpoint",
            "http://127.0.0.1:9/",
            "missing.json",
        ],
        vec!["verify", "--secret", "s", "--request", "missing.json"],
    ];
    for args in missing {
        assert_eq!(
            outcome(&args),
            (
                Some(2),
                "error: cannot read missing.json: No such file or directory\n".into(),
                String::new()
            ),
            "{args:?}"
        );
    }
    assert_eq!(
        outcome(&["serve", "--secret-file", "missing.txt"]).1,
        "error: cannot read missing.txt: No such file or directory\n"
    );
}

#[test]
fn invalid_json_is_reported_with_its_position() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.json");
    std::fs::write(&bad, "{\"event\": \"user\",\n  oops}\n").unwrap();
    let bad = bad.to_str().unwrap();
    let expected = format!(
        "error: {bad}: the body is not a valid payload: key must be a string at line 2 column 3\n"
    );
    assert_eq!(
        outcome(&["encode", bad]),
        (Some(2), expected.clone(), String::new())
    );
    let (code, err, _) = outcome(&[
        "send",
        "--secret",
        "s",
        "--endpoint",
        "http://127.0.0.1:9/",
        bad,
    ]);
    assert_eq!((code, err), (Some(2), expected));
}

#[test]
fn bad_urls_are_refused_before_anything_is_sent() {
    let cases = [
        (
            "ftp://example.com/",
            "error: invalid URL \"ftp://example.com/\": the scheme is \"ftp\", not http or https\n",
        ),
        (
            "example.com:3000",
            "error: invalid URL \"example.com:3000\": it needs a scheme, as in http://example.com:3000\n",
        ),
        (
            "http://exa mple.com/",
            "error: invalid URL \"http://exa mple.com/\"\n",
        ),
    ];
    for (url, message) in cases {
        let send = outcome(&[
            "send",
            "--secret",
            "s",
            "--endpoint",
            url,
            "fixture:user_created",
        ]);
        assert_eq!(
            send,
            (Some(2), message.to_owned(), String::new()),
            "send {url}"
        );
        let sign = outcome(&[
            "sign",
            "--secret",
            "s",
            "--format",
            "curl",
            "--url",
            url,
            "fixture:user_created",
        ]);
        assert_eq!(sign.0, Some(2), "sign {url}");
        assert_eq!(sign.1, message, "sign {url}");
    }
    let forward = outcome(&[
        "serve",
        "--secret",
        "s",
        "--bind",
        "127.0.0.1:0",
        "--forward",
        "nowhere",
    ]);
    assert_eq!(
        forward.1,
        "error: invalid URL \"nowhere\": it needs a scheme, as in http://nowhere\n"
    );
}

#[test]
fn a_port_in_use_stops_serve_with_status_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (code, err, _) = outcome(&["serve", "--secret", "s", "--bind", &addr]);
    assert_eq!(code, Some(1));
    assert!(
        err.starts_with(&format!(
            "error: cannot listen on {addr}: Address already in use"
        )),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn unknown_fixtures_and_bad_filters_are_usage_errors() {
    let expected = "error: unknown fixture \"nope\"; `dronehook fixtures list` shows the names\n";
    assert_eq!(outcome(&["fixtures", "show", "nope"]).1, expected);
    assert_eq!(
        outcome(&["encode", "fixture:nope"]),
        (Some(2), expected.into(), String::new())
    );
    assert_eq!(
        outcome(&[
            "send",
            "--secret",
            "s",
            "--endpoint",
            "http://127.0.0.1:9/",
            "fixture:nope"
        ])
        .1,
        expected
    );
    let (code, err, _) = outcome(&[
        "send",
        "--secret",
        "s",
        "--endpoint",
        "http://127.0.0.1:9/",
        "--events",
        "build:[",
        "fixture:user_created",
    ]);
    assert_eq!(code, Some(2));
    assert!(err.starts_with("error: invalid --events: "), "{err}");
    assert_eq!(err.lines().count(), 1);
}

#[test]
fn fixtures_write_refuses_to_overwrite_without_force() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out");
    let target_str = target.to_str().unwrap();
    let first = outcome(&["fixtures", "write", target_str]);
    assert_eq!(first.0, Some(0));
    assert!(first.2.starts_with("wrote "), "{}", first.2);
    assert!(target.join("build_finished.json").exists());
    let again = outcome(&["fixtures", "write", target_str]);
    assert_eq!(again.0, Some(2));
    assert!(
        again
            .1
            .ends_with(".json exists; give --force to replace it\n"),
        "{}",
        again.1
    );
    assert_eq!(
        outcome(&["fixtures", "write", "--force", target_str]).0,
        Some(0)
    );
}

#[test]
fn a_closed_pipe_ends_the_command_quietly() {
    let mut child = dronehook()
        .args(["completions", "zsh"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Close the reading end at once, as `| head -0` would.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stderr(&out), "");
}

#[test]
fn stdin_on_a_terminal_is_not_waited_for_but_a_pipe_is_read() {
    let mut child = dronehook()
        .args(["encode", "--event", "user", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().unwrap();
        stdin
            .write_all(br#"{"action":"created","user":{"login":"x"}}"#)
            .unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(
        stdout(&out)
            .starts_with(r#"{"event":"user","action":"created","user":{"id":0,"login":"x""#)
    );
}

#[test]
fn insecure_mode_refuses_what_it_cannot_do() {
    assert_eq!(
        outcome(&["serve", "--insecure-no-verify", "--bind", "127.0.0.1:0", "--journal", "j.db"]),
        (
            Some(2),
            "error: --store (--journal) and --tls-cert need a secret: --insecure-no-verify runs a bare receiver without them\n".into(),
            String::new()
        )
    );
}
