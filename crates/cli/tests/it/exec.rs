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

/// The live (not zombie) processes whose process group is `group`, from /proc.
#[cfg(target_os = "linux")]
fn live_members(group: u32) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // `pid (comm) state ppid pgrp ...`; comm may hold spaces, so split after `)`.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.get(2) == Some(&group.to_string().as_str()) && fields.first() != Some(&"Z") {
            found.push(stat.split(' ').take(3).collect::<Vec<_>>().join(" "));
        }
    }
    found
}

#[cfg(target_os = "linux")]
#[test]
fn at_its_timeout_the_whole_process_group_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let mut serve = serve_cmd();
    serve
        .env("OUT", dir.path())
        .args([
            "--secret",
            "s3cr3t",
            "--output",
            "none",
            "--exec-timeout",
            "1s",
        ])
        // The shell starts a grandchild and waits for it: killing only the shell
        // would leave the `sleep` running.
        .args(["--exec", r#"echo $$ > "$OUT/group"; sleep 300 & wait"#]);
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
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("--exec timed out after 1s and was killed"),
        "{}",
        stdout(&out)
    );
    let group: u32 = std::fs::read_to_string(dir.path().join("group"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    // SIGKILL is sent before the answer; the kernel may take a moment to finish them.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let mut left = live_members(group);
    while !left.is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
        left = live_members(group);
    }
    assert_eq!(left, Vec::<String>::new(), "processes of the group remain");
}

/// Collects serve's stderr lines up to and including the first containing `needle`.
fn stderr_until(served: &Served, needle: &str) -> Vec<String> {
    let mut lines = Vec::new();
    while let Ok(line) = served.stderr_lines.recv_timeout(crate::support::PATIENCE) {
        let done = line.contains(needle);
        lines.push(line);
        if done {
            return lines;
        }
    }
    panic!("no stderr line with {needle:?} in {lines:?}");
}

#[test]
fn a_command_s_output_stays_out_of_the_receiver_s_stderr() {
    let mut serve = serve_cmd();
    serve.args(["--secret", "s3cr3t", "--output", "none", "--exec"]).arg(
        // 200 KB of output, then a marker on each stream.
        "head -c 200000 /dev/zero | tr '\\0' x; echo; echo marker-out; echo marker-err >&2; exit 3",
    );
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
    let lines = stderr_until(&served, "handler failed");
    assert!(
        lines
            .iter()
            .all(|l| !l.contains("marker") && !l.contains("xxx")),
        "{lines:?}"
    );
    assert_eq!(
        lines.last().map(String::as_str),
        Some("handler failed  exec  user:deleted  attempt 1: --exec exited with status 3")
    );
}

#[test]
fn with_debug_a_command_s_output_is_shown_line_by_line() {
    let mut serve = serve_cmd();
    serve.args([
        "--secret",
        "s3cr3t",
        "--output",
        "none",
        "--debug",
        "--exec",
        "echo marker-out; echo marker-err >&2",
    ]);
    let served = Served::start(serve);
    let out = run(dronehook().args([
        "send",
        "--endpoint",
        &served.url,
        "--secret",
        "s3cr3t",
        "fixture:user_deleted",
    ]));
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let lines = stderr_until(&served, "marker-err");
    assert!(
        lines
            .iter()
            .any(|l| l == "exec output  user:deleted: marker-out"),
        "{lines:?}"
    );
    assert_eq!(
        lines.last().map(String::as_str),
        Some("exec output  user:deleted: marker-err")
    );
}

#[test]
fn attempts_bounds_the_tries_of_a_failing_handler() {
    let dir = tempfile::tempdir().unwrap();
    let mut serve = serve_cmd();
    serve
        .args(["--secret", "s3cr3t", "--output", "none", "--attempts", "2"])
        .arg("--store")
        .arg(dir.path().join("store.db"))
        .args(["--exec", "exit 4"]);
    let served = Served::start(serve);
    let out = run(dronehook().args([
        "send",
        "--endpoint",
        &served.url,
        "--secret",
        "s3cr3t",
        "fixture:user_deleted",
    ]));
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let lines = stderr_until(&served, "attempt 2");
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.starts_with("handler failed"))
            .cloned()
            .collect::<Vec<_>>(),
        [
            "handler failed  exec  user:deleted  attempt 1, will retry: --exec exited with status 4",
            "handler failed  exec  user:deleted  attempt 2: --exec exited with status 4",
        ]
    );
}

#[test]
fn a_command_that_never_reads_a_large_body_is_still_killed_at_its_timeout() {
    let dir = tempfile::tempdir().unwrap();
    // A payload larger than a pipe's buffer (64 KiB on Linux): writing it to a
    // command that never reads its input blocks until the command is gone.
    let sample = run(dronehook().args(["fixtures", "show", "user_created"])).stdout;
    let mut payload: serde_json::Value = serde_json::from_slice(&sample).unwrap();
    // DRONE_USER_LOGIN gets the first 32 KiB of it: the environment has a size limit.
    payload["user"]["login"] = serde_json::json!("x".repeat(300_000));
    let file = dir.path().join("large.json");
    std::fs::write(&file, serde_json::to_vec(&payload).unwrap()).unwrap();
    let mut serve = serve_cmd();
    serve.args([
        "--secret",
        "s3cr3t",
        "--output",
        "none",
        "--exec",
        "sleep 300",
        "--exec-timeout",
        "1s",
    ]);
    let served = Served::start(serve);
    let started = std::time::Instant::now();
    let out = run(dronehook()
        .args(["send", "--endpoint", &served.url, "--secret", "s3cr3t"])
        .args(["--retries", "0", "--timeout", "30s"])
        .arg(&file));
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("--exec timed out after 1s and was killed"),
        "{}",
        stdout(&out)
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}
