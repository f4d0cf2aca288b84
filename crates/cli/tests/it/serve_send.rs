//! `send` -> `serve` through the real binaries on 127.0.0.1, and `sign --format curl`
//! run by the real curl and accepted by `serve`.

use std::process::Command;

use serde_json::Value;

use crate::support::{Served, dronehook, run, serve_cmd, stderr, stdout};

#[test]
fn events_sent_by_send_are_printed_by_serve() {
    let mut serve = serve_cmd();
    serve.args(["--secret", "s3cr3t", "--output", "json"]);
    let mut served = Served::start(serve);

    let out = run(dronehook().args([
        "send",
        "--endpoint",
        &served.url,
        "--secret",
        "s3cr3t",
        "fixture:build_finished",
        "fixture:user_created",
        "fixture:docs_repo_activated",
    ]));
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("fixture:build_finished       build updated     delivered"),
        "{text}"
    );
    assert!(
        text.contains("fixture:docs_repo_activated  repo enabled      delivered"),
        "{text}"
    );
    let row = format!("{}          3       0         3  -", served.url);
    assert!(text.contains(&row), "{text}");
    // The documentation's `activated` goes out as Drone's `enabled`, and `send` says so.
    assert!(
        stderr(&out)
            .contains(r#"note: action "activated" is a name from Drone's documentation examples"#)
    );

    let mut events: Vec<Value> = served
        .stdout_lines(3)
        .iter()
        .map(|l| serde_json::from_str(l).expect("each line is one JSON object"))
        .collect();
    events.sort_by_key(|e| e["event"].as_str().unwrap_or_default().to_owned());
    let kinds: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e["event"].as_str().unwrap(), e["action"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("build", "updated"),
            ("repo", "enabled"),
            ("user", "created")
        ]
    );
    let build = &events[0];
    assert_eq!(build["repo"], "octocat/hello-world");
    assert_eq!(build["build"], 42);
    assert_eq!(build["status"], "success");
    assert_eq!(build["duration_s"], 151);
    assert_eq!(build["payload"]["build"]["number"], 42);
}

#[test]
fn serve_prints_pretty_lines_and_send_reports_json() {
    let mut serve = serve_cmd();
    serve.args(["--secret", "s3cr3t", "--output", "pretty"]);
    let mut served = Served::start(serve);
    let out = run(dronehook().args([
        "send",
        "--json",
        "--endpoint",
        &served.url,
        "--secret",
        "s3cr3t",
        "fixture:build_finished",
    ]));
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let report: Value = serde_json::from_slice(&out.stdout).expect("send --json prints JSON");
    assert_eq!(report["ok"], true);
    assert_eq!(report["events"][0]["deliveries"][0]["status"], 204);
    assert_eq!(report["endpoints"][0]["delivered"], 1);
    assert_eq!(
        served.stdout_lines(1),
        ["build updated  octocat/hello-world #42  success  2m31s"]
    );
}

#[test]
fn a_wrong_secret_is_a_failed_delivery_and_a_rejected_request() {
    let mut serve = serve_cmd();
    serve.args(["--secret", "s3cr3t", "--output", "none"]);
    let served = Served::start(serve);
    let out = run(dronehook().args([
        "send",
        "--endpoint",
        &served.url,
        "--secret",
        "wrong",
        "--retries",
        "0",
        "fixture:user_created",
    ]));
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("fixture:user_created  user created      failed at 1 of 1 endpoints"),
        "{text}"
    );
    assert!(
        text.contains("the receiver answered 401 Unauthorized: signature.invalid"),
        "{text}"
    );
    let line = served
        .wait_stderr("rejected")
        .expect("serve reports the rejection");
    assert!(
        line.starts_with("rejected  401 signature.invalid"),
        "{line}"
    );
}

#[test]
fn a_full_replay_map_refuses_a_new_request_with_503() {
    let mut serve = serve_cmd();
    serve.args([
        "--secret",
        "s3cr3t",
        "--output",
        "none",
        "--replay-capacity",
        "1",
    ]);
    let served = Served::start(serve);
    let send = |fixture: &str| {
        run(dronehook().args([
            "send",
            "--endpoint",
            &served.url,
            "--secret",
            "s3cr3t",
            "--retries",
            "0",
            fixture,
        ]))
    };
    let out = send("fixture:user_created");
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let out = send("fixture:repo_enabled");
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("the receiver answered 503 Service Unavailable: replay.full"),
        "{text}"
    );
    let line = served
        .wait_stderr("rejected")
        .expect("serve reports the refusal");
    assert!(line.starts_with("rejected  503 replay.full"), "{line}");
}

#[test]
fn an_endpoint_that_refuses_connections_fails_the_send() {
    // A port that was free a moment ago and has no listener now.
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let url = format!("http://127.0.0.1:{port}/");
    let out = run(dronehook().args([
        "send",
        "--endpoint",
        &url,
        "--secret",
        "s3cr3t",
        "--retries",
        "0",
        "fixture:user_created",
    ]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("could not connect"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn a_curl_command_from_sign_is_accepted_by_serve() {
    let mut serve = serve_cmd();
    serve.args([
        "--secret",
        "s3cr3t",
        "--output",
        "pretty",
        "--path",
        "/hooks/drone",
    ]);
    let mut served = Served::start(serve);
    assert!(served.url.ends_with("/hooks/drone"), "{}", served.url);
    let out = run(dronehook().args([
        "sign",
        "fixture:build_failed",
        "--secret",
        "s3cr3t",
        "--format",
        "curl",
        "--url",
        &served.url,
    ]));
    assert_eq!(out.status.code(), Some(0), "stderr: {}", stderr(&out));
    let script = stdout(&out);
    let curl = run(Command::new("sh").args(["-c", &script]));
    assert_eq!(curl.status.code(), Some(0), "curl said: {}", stderr(&curl));
    let line = &served.stdout_lines(1)[0];
    assert!(
        line.starts_with("build updated  octocat/hello-world #"),
        "{line}"
    );
    assert!(line.contains("  failure  "), "{line}");
}

#[test]
fn an_http_request_from_sign_is_verified_by_verify() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("request.http");
    let out = run(dronehook().args([
        "sign",
        "fixture:repo_enabled",
        "--secret",
        "s3cr3t",
        "--format",
        "http",
    ]));
    assert_eq!(out.status.code(), Some(0));
    std::fs::write(&file, &out.stdout).unwrap();
    let out = run(dronehook()
        .args(["verify", "--secret", "s3cr3t", "--request"])
        .arg(&file));
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    assert_eq!(stdout(&out), "valid  repo enabled  octocat/hello-world\n");
}

#[test]
fn insecure_mode_accepts_unsigned_requests_and_says_so() {
    let mut serve = serve_cmd();
    serve.args(["--insecure-no-verify", "--output", "pretty"]);
    let mut served = Served::start(serve);
    assert_eq!(
        served.preamble,
        [
            "WARNING: --insecure-no-verify: requests are NOT verified; anyone who can reach this port can send events"
        ]
    );
    assert!(
        served
            .banner
            .contains("(0 secrets, journal off, replay check off)"),
        "{}",
        served.banner
    );
    let curl = run(Command::new("curl").args([
        "-sS",
        "--fail-with-body",
        "-H",
        "X-Drone-Event: user",
        // The receiver's transport rules hold without verification too: curl's
        // default form type would be refused with 415.
        "-H",
        "Content-Type: application/json",
        "--data-raw",
        r#"{"action":"created","user":{"login":"octocat"}}"#,
        &served.url,
    ]));
    assert_eq!(curl.status.code(), Some(0), "curl said: {}", stderr(&curl));
    assert_eq!(served.stdout_lines(1), ["user created  octocat"]);
}

#[test]
fn serve_with_a_journal_names_it_and_keeps_events() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.db");
    let mut serve = serve_cmd();
    serve
        .args(["--secret", "s3cr3t", "--output", "json", "--journal"])
        .arg(&journal);
    let mut served = Served::start(serve);
    assert!(
        served
            .banner
            .contains(&format!("journal {}", journal.display())),
        "{}",
        served.banner
    );
    assert!(served.banner.contains("(1 secret,"), "{}", served.banner);
    let out = run(dronehook().args([
        "send",
        "--endpoint",
        &served.url,
        "--secret",
        "s3cr3t",
        "fixture:repo_disabled",
    ]));
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let event: Value = serde_json::from_str(&served.stdout_lines(1)[0]).unwrap();
    assert_eq!(event["action"], "disabled");
    assert!(event["delivery_id"].is_i64(), "{event}");
    assert!(journal.exists());
}

#[test]
fn serve_stops_cleanly_on_sigterm() {
    let mut serve = serve_cmd();
    serve.args(["--secret", "s3cr3t", "--output", "none"]);
    let mut served = Served::start(serve);
    let pid = served.child.id().to_string();
    let kill = run(Command::new("kill").args(["-TERM", &pid]));
    assert_eq!(kill.status.code(), Some(0));
    let status = served.child.wait().expect("serve exits");
    assert_eq!(status.code(), Some(0));
}

/// Sends fixtures one `send` at a time, so that their order at the receiver is known.
fn send_each(url: &str, fixtures: &[&str]) {
    for fixture in fixtures {
        let out = run(dronehook().args(["send", "--endpoint", url, "--secret", "s3cr3t", fixture]));
        assert_eq!(out.status.code(), Some(0), "{fixture}: {}", stdout(&out));
    }
}

#[test]
fn serve_events_filters_what_is_handled() {
    let mut serve = serve_cmd();
    serve.args([
        "--secret", "s3cr3t", "--output", "pretty", "--events", "build:*",
    ]);
    let mut served = Served::start(serve);
    // Without a journal a handler has run when the answer comes, so had the user
    // event been printed, it would come first.
    send_each(
        &served.url,
        &["fixture:user_created", "fixture:build_finished"],
    );
    assert_eq!(
        served.stdout_lines(1),
        ["build updated  octocat/hello-world #42  success  2m31s"]
    );
}

#[test]
fn a_repeated_body_is_delivered_once_unless_the_replay_check_is_off() {
    for (flag, expected) in [
        (
            None,
            vec!["user created  octocat", "repo deleted  octocat/hello-world"],
        ),
        (
            Some("--no-replay-check"),
            vec![
                "user created  octocat",
                "user created  octocat",
                "repo deleted  octocat/hello-world",
            ],
        ),
    ] {
        let mut serve = serve_cmd();
        serve
            .args(["--secret", "s3cr3t", "--output", "pretty"])
            .args(flag);
        let mut served = Served::start(serve);
        if flag.is_none() {
            assert!(
                served.banner.contains("replay check on"),
                "{}",
                served.banner
            );
        } else {
            assert!(
                served.banner.contains("replay check off"),
                "{}",
                served.banner
            );
        }
        send_each(
            &served.url,
            &[
                "fixture:user_created",
                "fixture:user_created",
                "fixture:repo_deleted",
            ],
        );
        assert_eq!(served.stdout_lines(expected.len()), expected, "{flag:?}");
    }
}

#[test]
fn forward_relays_each_event_re_signed_with_the_forward_secret() {
    let mut downstream = serve_cmd();
    downstream.args(["--secret", "downstream", "--output", "pretty"]);
    let mut downstream = Served::start(downstream);
    let mut upstream = serve_cmd();
    upstream.args([
        "--secret",
        "s3cr3t",
        "--output",
        "none",
        "--forward",
        &downstream.url,
        "--forward-secret",
        "downstream",
    ]);
    let upstream = Served::start(upstream);
    send_each(&upstream.url, &["fixture:repo_enabled"]);
    assert_eq!(
        downstream.stdout_lines(1),
        ["repo enabled  octocat/hello-world"]
    );
}

#[test]
fn send_takes_a_directory_of_payloads() {
    let dir = tempfile::tempdir().unwrap();
    let written = run(dronehook()
        .args(["fixtures", "write", "--drone"])
        .arg(dir.path()));
    assert_eq!(written.status.code(), Some(0));
    let count = std::fs::read_dir(dir.path()).unwrap().count();
    assert!(count >= 9, "{count} fixtures");

    let mut serve = serve_cmd();
    serve.args(["--secret", "s3cr3t", "--output", "none"]);
    let served = Served::start(serve);
    let out = run(dronehook()
        .args(["send", "--endpoint", &served.url, "--secret", "s3cr3t"])
        .arg(dir.path()));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let row = format!("{}  {count:>9}       0  {count:>8}  -", served.url);
    assert!(
        stdout(&out).contains(&row),
        "{row:?} not in:\n{}",
        stdout(&out)
    );
}
