//! `serve --exec`: the command gets the payload on stdin and the event in DRONE_*
//! variables; a non-zero exit or a timeout is a handler error the sender sees.

use crate::support::{Served, dronehook, run, serve_cmd, stderr, stdout};

#[test]
fn exec_gets_the_payload_on_stdin_and_the_event_in_its_environment() {
    let dir = tempfile::tempdir().unwrap();
    let mut serve = serve_cmd();
    serve
        .env("OUT", dir.path())
        // Given through the environment, so the test can check it is not passed on.
        .env("DRONE_SECRET", "s3cr3t")
        .args(["--output", "none", "--exec"])
        .arg(r#"cat > "$OUT/body.json" && env | grep '^DRONE_' | sort > "$OUT/env.txt""#);
    let served = Served::start(serve);
    let out = run(dronehook().args([
        "send",
        "--endpoint",
        &served.url,
        "--secret",
        "s3cr3t",
        "fixture:build_finished",
    ]));
    // Without a journal the handler runs before the answer, so its files exist now.
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );

    let fixture = run(dronehook().args(["fixtures", "show", "build_finished"])).stdout;
    assert_eq!(
        std::fs::read(dir.path().join("body.json")).unwrap(),
        fixture
    );
    let env = std::fs::read_to_string(dir.path().join("env.txt")).unwrap();
    for expected in [
        "DRONE_EVENT=build",
        "DRONE_ACTION=updated",
        "DRONE_REPO=octocat/hello-world",
        "DRONE_BUILD_NUMBER=42",
        "DRONE_BUILD_STATUS=success",
        "DRONE_BUILD_EVENT=push",
        "DRONE_BUILD_LINK=https://drone.example.com/octocat/hello-world/42",
        "DRONE_BRANCH=main",
        "DRONE_DELIVERY_ATTEMPT=1",
    ] {
        assert!(
            env.lines().any(|l| l == expected),
            "{expected} missing from:\n{env}"
        );
    }
    assert!(
        env.lines()
            .any(|l| l.starts_with("DRONE_COMMIT=") && l.len() > 20),
        "{env}"
    );
    assert!(
        !env.contains("s3cr3t"),
        "a secret reached the command:\n{env}"
    );
}

#[test]
fn a_failing_exec_is_a_handler_error() {
    let mut serve = serve_cmd();
    serve.args(["--secret", "s3cr3t", "--output", "none", "--exec", "exit 3"]);
    let served = Served::start(serve);
    let out = run(dronehook().args([
        "send",
        "--endpoint",
        &served.url,
        "--secret",
        "s3cr3t",
        "--retries",
        "0",
        "fixture:user_deleted",
    ]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains(
            "the receiver answered 500 Internal Server Error: --exec exited with status 3"
        ),
        "{}",
        stdout(&out)
    );
    let line = served
        .wait_stderr("handler failed")
        .expect("serve reports the failure");
    assert_eq!(
        line,
        "handler failed  exec  user:deleted  attempt 1: --exec exited with status 3"
    );
}

#[test]
fn a_slow_exec_is_killed_at_its_timeout() {
    let mut serve = serve_cmd();
    serve.args([
        "--secret",
        "s3cr3t",
        "--output",
        "none",
        "--exec",
        "sleep 30",
        "--exec-timeout",
        "1s",
    ]);
    let served = Served::start(serve);
    let out = run(dronehook().args([
        "send",
        "--endpoint",
        &served.url,
        "--secret",
        "s3cr3t",
        "--retries",
        "0",
        "fixture:user_created",
    ]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("--exec timed out after 1s and was killed"),
        "{}",
        stdout(&out)
    );
    drop(served);
}

#[test]
fn with_a_journal_a_failed_exec_is_recorded_there() {
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.db");
    let mut serve = crate::support::serve_cmd();
    serve
        .env("OUT", dir.path())
        .args(["--secret", "s3cr3t", "--output", "none", "--journal"])
        .arg(&journal)
        .args(["--exec", r#"echo "$DRONE_DELIVERY_ID" > "$OUT/id"; exit 3"#]);
    let mut served = Served::start(serve);
    let out = run(dronehook().args([
        "send",
        "--endpoint",
        &served.url,
        "--secret",
        "s3cr3t",
        "fixture:build_created",
    ]));
    // With a journal the request is acknowledged before the handler runs.
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let line = served
        .wait_stderr("handler failed")
        .expect("serve reports the failure");
    assert!(
        line.contains("attempt 1, will retry: --exec exited with status 3"),
        "{line}"
    );

    // A graceful stop flushes the journal; then it can be read.
    let pid = served.child.id().to_string();
    run(std::process::Command::new("kill").args(["-TERM", &pid]));
    assert_eq!(served.child.wait().unwrap().code(), Some(0));
    let id: i64 = std::fs::read_to_string(dir.path().join("id"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let journal = dronehook_server::Journal::open(&journal).unwrap();
    let runs = journal.runs(id).unwrap();
    let exec = runs
        .iter()
        .find(|r| r.handler == "exec")
        .expect("the exec run is recorded");
    assert!(exec.attempts >= 1, "{exec:?}");
    assert_eq!(
        exec.last_error.as_deref(),
        Some("--exec exited with status 3")
    );
    let entry = journal
        .entry(id)
        .unwrap()
        .expect("the request is journaled");
    assert_eq!(
        (entry.event.as_str(), entry.action.as_str()),
        ("build", "created")
    );
}
