//! `dronehook events` against stores written by real `dronehook serve` processes:
//! list and show see what was received, replay delivers the same bytes to a second
//! receiver with a new valid signature, redeliver runs a handler again, a hanging
//! handler is killed at its timeout and a failing one ends `dead`; `send` reports a
//! duplicate; bad input ends with one line and its exit status.

use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::{PATIENCE, Served, dronehook, run, serve_cmd, stderr, stdout};

/// `dronehook events ARGS --store STORE`.
fn events(store: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = dronehook();
    cmd.arg("events").args(args).arg("--store").arg(store);
    run(&mut cmd)
}

/// `events list --json`, parsed.
fn list(store: &Path) -> Vec<Value> {
    let out = events(store, &["list", "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// `events show ID --json`, parsed.
fn show(store: &Path, id: i64) -> Value {
    let out = events(store, &["show", &id.to_string(), "--json"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Polls `show ID` until `done` holds for it (runs finish after the answer).
fn show_until(store: &Path, id: i64, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let event = show(store, id);
        if done(&event) {
            return event;
        }
        assert!(Instant::now() < deadline, "never came: {event:#}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The named run of a `show --json` object.
fn run_of<'a>(event: &'a Value, handler: &str) -> &'a Value {
    event["runs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["handler"] == handler)
        .unwrap_or_else(|| panic!("no {handler} run in {event:#}"))
}

fn send(url: &str, secret: &str, fixture: &str) -> std::process::Output {
    run(dronehook().args([
        "send",
        "--endpoint",
        url,
        "--secret",
        secret,
        "--retries",
        "0",
        fixture,
    ]))
}

/// A receiver with a SQLite store at DIR/NAME whose exec appends a line per run.
fn receiver(dir: &Path, name: &str, secret: &str, exec: &str, extra: &[&str]) -> Served {
    let mut serve = serve_cmd();
    serve
        .env("OUT", dir)
        .args(["--secret", secret, "--output", "none", "--store"])
        .arg(dir.join(name))
        .args(["--exec", exec])
        .args(extra);
    Served::start(serve)
}

#[test]
fn list_and_show_see_what_serve_received() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store.db");
    let served = receiver(
        dir.path(),
        "store.db",
        "s3cr3t",
        "echo handled $DRONE_EVENT; echo to-stderr >&2",
        &[],
    );
    for fixture in ["fixture:build_finished", "fixture:user_created"] {
        let out = send(&served.url, "s3cr3t", fixture);
        assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    }
    let listed = list(&store);
    let names: Vec<(String, String)> = listed
        .iter()
        .map(|e| {
            (
                e["event"].as_str().unwrap().into(),
                e["action"].as_str().unwrap().into(),
            )
        })
        .collect();
    // Newest first.
    assert_eq!(
        names,
        [
            ("user".into(), "created".into()),
            ("build".into(), "updated".into())
        ]
    );
    let build_id = listed[1]["id"].as_i64().unwrap();
    assert_eq!(listed[1]["repo"], "octocat/hello-world");
    assert_eq!(listed[1]["build"], 42);
    assert_eq!(listed[1]["build_status"], "success");

    let event = show_until(&store, build_id, |e| run_of(e, "exec")["status"] == "ok");
    let exec = run_of(&event, "exec");
    assert_eq!(exec["attempts"], 1);
    assert_eq!(exec["output"], "handled build\nto-stderr\n");
    assert_eq!(
        event["verification"],
        "signature valid (secret #1 of the receiver's); body matches its digest"
    );
    let fixture = run(dronehook().args(["fixtures", "show", "build_finished"])).stdout;
    assert_eq!(
        event["payload"],
        serde_json::from_slice::<Value>(&fixture).unwrap()
    );

    // --raw: the bytes as received.
    let raw = events(&store, &["show", &build_id.to_string(), "--raw"]);
    assert_eq!(raw.status.code(), Some(0));
    assert_eq!(raw.stdout, fixture);

    // The text form shortens the signature and never shows it whole.
    let text = events(&store, &["show", &build_id.to_string()]);
    let text = stdout(&text);
    let headers = event["headers"].as_array().unwrap();
    let signature = headers
        .iter()
        .find(|h| h[0].as_str().unwrap().eq_ignore_ascii_case("signature"))
        .unwrap()[1]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(signature.contains("...(44 chars)"), "{signature}");
    assert!(text.contains(&signature), "{text}");
    assert!(text.contains("exec  ok       1 attempt"), "{text}");
    assert!(text.contains("    | handled build"), "{text}");
    drop(served);
}

#[test]
fn replay_sends_the_same_bytes_signed_anew_to_another_receiver() {
    let dir = tempfile::tempdir().unwrap();
    let first = receiver(dir.path(), "first.db", "one", "true", &[]);
    let out = send(&first.url, "one", "fixture:build_failed");
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    drop(first);
    let first_store = dir.path().join("first.db");
    let id = list(&first_store)[0]["id"].as_i64().unwrap();
    let original = show(&first_store, id);

    // The second receiver has another secret: it accepts the replay only if it was
    // signed again, with the secret given to `replay`; its exec keeps the body.
    let second = receiver(dir.path(), "second.db", "two", r#"cat > "$OUT/body""#, &[]);
    // A Date a second later than the original's, to see that it is fresh.
    std::thread::sleep(Duration::from_millis(1100));
    let out = run(dronehook()
        .args([
            "events",
            "replay",
            &id.to_string(),
            "--endpoint",
            &second.url,
        ])
        .args(["--secret", "two", "--store"])
        .arg(&first_store));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stdout(&out).contains(&format!("event {id}  build updated     delivered")),
        "{}",
        stdout(&out)
    );
    let second_store = dir.path().join("second.db");
    let copy_id = list(&second_store)[0]["id"].as_i64().unwrap();
    let copy = show_until(&second_store, copy_id, |e| {
        run_of(e, "exec")["status"] == "ok"
    });
    let fixture = run(dronehook().args(["fixtures", "show", "build_failed"])).stdout;
    assert_eq!(std::fs::read(dir.path().join("body")).unwrap(), fixture);
    let raw = events(&second_store, &["show", &copy_id.to_string(), "--raw"]);
    assert_eq!(raw.stdout, fixture);
    assert_eq!(copy["digest"], original["digest"]);
    assert_eq!(
        copy["verification"],
        "signature valid (secret #1 of the receiver's); body matches its digest"
    );
    let date = |e: &Value| {
        e["headers"]
            .as_array()
            .unwrap()
            .iter()
            .find(|h| h[0].as_str().unwrap().eq_ignore_ascii_case("date"))
            .map(|h| h[1].as_str().unwrap().to_owned())
            .unwrap()
    };
    assert_ne!(date(&copy), date(&original), "the replay has a fresh Date");

    // Sent again, the same bytes are a duplicate there.
    let again = run(dronehook()
        .args([
            "events",
            "replay",
            &id.to_string(),
            "--endpoint",
            &second.url,
        ])
        .args(["--secret", "two", "--json", "--store"])
        .arg(&first_store));
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    let report: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(report["events"][0]["deliveries"][0]["duplicate"], true);
    assert_eq!(report["endpoints"][0]["duplicates"], 1);
}

#[test]
fn replay_filter_selects_many() {
    let dir = tempfile::tempdir().unwrap();
    let first = receiver(dir.path(), "first.db", "one", "true", &[]);
    for fixture in [
        "fixture:build_created",
        "fixture:build_failed",
        "fixture:user_deleted",
    ] {
        assert_eq!(send(&first.url, "one", fixture).status.code(), Some(0));
    }
    let second = receiver(dir.path(), "second.db", "two", "true", &[]);
    let out = run(dronehook()
        .args([
            "events",
            "replay",
            "--filter",
            "event=build:*",
            "--endpoint",
            &second.url,
        ])
        .args(["--secret", "two", "--store"])
        .arg(dir.path().join("first.db")));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let text = stdout(&out);
    assert_eq!(text.matches("delivered").count(), 3, "{text}");
    assert!(!text.contains("user"), "{text}");
    let copies = list(&dir.path().join("second.db"));
    assert_eq!(copies.len(), 2);
    assert!(copies.iter().all(|e| e["event"] == "build"));
}

#[test]
fn redeliver_runs_the_handler_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store.db");
    let served = receiver(
        dir.path(),
        "store.db",
        "s3cr3t",
        r#"echo "$DRONE_DELIVERY_ID $DRONE_DELIVERY_ATTEMPT" >> "$OUT/runs""#,
        &[],
    );
    assert_eq!(
        send(&served.url, "s3cr3t", "fixture:repo_enabled")
            .status
            .code(),
        Some(0)
    );
    let id = list(&store)[0]["id"].as_i64().unwrap();
    show_until(&store, id, |e| run_of(e, "exec")["status"] == "ok");

    let out = events(&store, &["redeliver", &id.to_string(), "--handler", "exec"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("event {id}: queued exec\n"));
    // The running receiver picks the queued run up from the store.
    let event = show_until(&store, id, |e| {
        let exec = run_of(e, "exec");
        exec["status"] == "ok" && exec["attempts"].as_u64() == Some(2)
    });
    assert_eq!(run_of(&event, "exec")["status"], "ok");
    let runs = std::fs::read_to_string(dir.path().join("runs")).unwrap();
    assert_eq!(runs, format!("{id} 1\n{id} 2\n"));
    // No second copy of the event.
    assert_eq!(list(&store).len(), 1);
    drop(served);
}

#[test]
fn a_hanging_handler_is_killed_at_its_timeout_and_marked() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store.db");
    let served = receiver(
        dir.path(),
        "store.db",
        "s3cr3t",
        "echo started; sleep 300",
        &["--exec-timeout", "1s", "--attempts", "1"],
    );
    assert_eq!(
        send(&served.url, "s3cr3t", "fixture:user_created")
            .status
            .code(),
        Some(0)
    );
    let id = list(&store)[0]["id"].as_i64().unwrap();
    let event = show_until(&store, id, |e| run_of(e, "exec")["status"] != "pending");
    let exec = run_of(&event, "exec");
    assert_eq!(exec["status"], "dead");
    assert_eq!(
        exec["last_error"],
        "--exec timed out after 1s and was killed"
    );
    assert_eq!(exec["output"], "started\n");
    let text = stdout(&events(&store, &["list"]));
    assert!(text.contains("exec:dead"), "{text}");
    let dead = list_filtered(&store, &["--state", "dead"]);
    assert_eq!(dead.len(), 1);
    drop(served);
}

fn list_filtered(store: &Path, filters: &[&str]) -> Vec<Value> {
    let mut args = vec!["list", "--json"];
    args.extend_from_slice(filters);
    let out = events(store, &args);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_failing_handler_ends_dead_after_its_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let store = dir.path().join("store.db");
    let served = receiver(
        dir.path(),
        "store.db",
        "s3cr3t",
        r#"echo "attempt $DRONE_DELIVERY_ATTEMPT"; exit 3"#,
        &["--attempts", "2"],
    );
    assert_eq!(
        send(&served.url, "s3cr3t", "fixture:user_deleted")
            .status
            .code(),
        Some(0)
    );
    let id = list(&store)[0]["id"].as_i64().unwrap();
    let event = show_until(&store, id, |e| run_of(e, "exec")["status"] == "dead");
    let exec = run_of(&event, "exec");
    assert_eq!(exec["attempts"], 2);
    assert_eq!(exec["last_error"], "--exec exited with status 3");
    assert_eq!(exec["output"], "attempt 2\n");
    drop(served);
}

#[test]
fn send_reports_a_duplicate_when_the_receiver_had_the_body() {
    let dir = tempfile::tempdir().unwrap();
    let served = receiver(dir.path(), "store.db", "s3cr3t", "true", &[]);
    let first = send(&served.url, "s3cr3t", "fixture:build_created");
    assert!(
        stdout(&first).contains("build created     delivered"),
        "{}",
        stdout(&first)
    );
    // The same body, signed again with a new Date: a replay to the receiver.
    let second = send(&served.url, "s3cr3t", "fixture:build_created");
    assert_eq!(second.status.code(), Some(0));
    let text = stdout(&second);
    assert!(text.contains("build created     duplicate"), "{text}");
    assert!(text.contains("delivered  duplicate  failed"), "{text}");
    assert_eq!(list(&dir.path().join("store.db")).len(), 1);

    // Without a store, the in-memory replay check says the same.
    let plain = Served::start({
        let mut serve = serve_cmd();
        serve.args(["--secret", "s3cr3t", "--output", "none"]);
        serve
    });
    send(&plain.url, "s3cr3t", "fixture:build_created");
    let again = run(dronehook().args([
        "send",
        "--endpoint",
        &plain.url,
        "--secret",
        "s3cr3t",
        "--json",
        "fixture:build_created",
    ]));
    let report: Value = serde_json::from_slice(&again.stdout).unwrap();
    assert_eq!(
        report["events"][0]["deliveries"][0]["duplicate"], true,
        "{report:#}"
    );
    assert_eq!(report["endpoints"][0]["duplicates"], 1);
    assert_eq!(report["endpoints"][0]["delivered"], 0);
}

/// Runs `events ARGS` and checks its exit status and its one line on stderr.
fn fails(args: &[&str], store: Option<&Path>, code: i32, line: &str) {
    let mut cmd = dronehook();
    cmd.arg("events").args(args);
    if let Some(store) = store {
        cmd.arg("--store").arg(store);
    }
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(code), "{args:?}: {}", stderr(&out));
    assert_eq!(stderr(&out), format!("{line}\n"), "{args:?}");
    assert!(out.stdout.is_empty(), "{args:?}");
}

#[test]
fn bad_input_is_one_line_and_its_exit_status() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.db");
    fails(
        &["list"],
        Some(&missing),
        1,
        &format!("error: no store at {}", missing.display()),
    );
    // A store of a newer schema than this build knows.
    let newer = dir.path().join("newer.db");
    rusqlite::Connection::open(&newer)
        .unwrap()
        .execute_batch("PRAGMA user_version = 99;")
        .unwrap();
    let out = events(&newer, &["list"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.starts_with("error: the store's schema is version 99; this dronehook knows up to "),
        "{text}"
    );
    assert!(text.ends_with(": upgrade dronehook\n"), "{text}");

    // An unreachable PostgreSQL: nothing listens on port 1.
    let mut cmd = dronehook();
    cmd.args([
        "events",
        "stats",
        "--store",
        "postgres://dronehook:hunter2@127.0.0.1:1/none",
    ]);
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(1));
    let text = stderr(&out);
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.starts_with("error: cannot open postgres://dronehook:***@127.0.0.1:1/none: "),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");

    // A real store for the rest.
    let served = receiver(dir.path(), "store.db", "s3cr3t", "true", &[]);
    send(&served.url, "s3cr3t", "fixture:build_created");
    drop(served);
    let store = dir.path().join("store.db");
    fails(
        &["show", "999"],
        Some(&store),
        1,
        "error: no event 999 in the store",
    );
    fails(
        &["redeliver", "999"],
        Some(&store),
        1,
        "error: no event 999 in the store",
    );
    fails(
        &["erase", "999"],
        Some(&store),
        1,
        "error: no event 999 in the store",
    );
    fails(
        &["list", "--event", "build:[", "--json"],
        Some(&store),
        2,
        "error: invalid --event \"build:[\": syntax error in event pattern \"build:[\"",
    );
    fails(
        &["list", "--since", "yesterday"],
        Some(&store),
        2,
        "error: invalid --since \"yesterday\": give a duration back from now (30m, 2h, 7d) or a moment (2026-01-01T00:00:00Z)",
    );
    fails(
        &[
            "replay",
            "--filter",
            "colour=red",
            "--endpoint",
            "http://127.0.0.1:9/",
            "--secret",
            "x",
        ],
        Some(&store),
        2,
        "error: invalid --filter term \"colour=red\": the keys are event, repo, status, state, since, until",
    );
    fails(
        &["prune", "--older-than", "soon"],
        Some(&store),
        2,
        "error: invalid --older-than \"soon\": durations look like 30m, 12h or 7d",
    );
    fails(
        &["list"],
        None,
        2,
        "error: no store: give --store or set DRONEHOOK_STORE (sqlite:PATH, a PATH, or postgres://...)",
    );
    let out = events(&store, &["show", "abc"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(stderr(&out).lines().count(), 1, "{}", stderr(&out));
}

/// `events ARGS --store URL` for a PostgreSQL store.
fn events_at(url: &str, args: &[&str]) -> std::process::Output {
    run(dronehook().arg("events").args(args).args(["--store", url]))
}

#[test]
fn the_commands_work_on_a_postgres_store_too() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(dronehook_testkit::database());
    let url = db.url().to_owned();
    let dir = tempfile::tempdir().unwrap();
    let mut serve = serve_cmd();
    serve
        .env("OUT", dir.path())
        .args(["--secret", "s3cr3t", "--output", "none", "--store", &url])
        .args([
            "--exec",
            r#"echo "run $DRONE_DELIVERY_ATTEMPT"; echo x >> "$OUT/runs""#,
        ]);
    let served = Served::start(serve);
    for fixture in ["fixture:build_failed", "fixture:user_deleted"] {
        assert_eq!(send(&served.url, "s3cr3t", fixture).status.code(), Some(0));
    }
    let json = |out: &std::process::Output| -> Vec<Value> {
        assert_eq!(out.status.code(), Some(0), "{}", stderr(out));
        stdout(out)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect()
    };
    let builds = json(&events_at(&url, &["list", "--json", "--event", "build:*"]));
    assert_eq!(builds.len(), 1);
    assert_eq!(builds[0]["build_status"], "failure");
    let id = builds[0]["id"].as_i64().unwrap().to_string();

    // The run finishes after the answer: wait for its output.
    let deadline = Instant::now() + PATIENCE;
    let shown = loop {
        let out = events_at(&url, &["show", &id, "--json"]);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
        let shown: Value = serde_json::from_slice(&out.stdout).unwrap();
        if run_of(&shown, "exec")["status"] == "ok" {
            break shown;
        }
        assert!(Instant::now() < deadline, "{shown:#}");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(run_of(&shown, "exec")["output"], "run 1\n");
    let raw = events_at(&url, &["show", &id, "--raw"]);
    let fixture = run(dronehook().args(["fixtures", "show", "build_failed"])).stdout;
    assert_eq!(raw.stdout, fixture);

    // redeliver: the receiver is told (NOTIFY) and runs the handler again.
    let out = events_at(&url, &["redeliver", &id]);
    assert_eq!(
        stdout(&out),
        format!("event {id}: queued exec\n"),
        "{}",
        stderr(&out)
    );
    let deadline = Instant::now() + PATIENCE;
    while std::fs::read_to_string(dir.path().join("runs"))
        .unwrap_or_default()
        .lines()
        .count()
        < 3
    {
        assert!(Instant::now() < deadline, "the redelivered run did not run");
        std::thread::sleep(Duration::from_millis(100));
    }

    let stats: Value =
        serde_json::from_slice(&events_at(&url, &["stats", "--json"]).stdout).unwrap();
    assert_eq!(stats["events"], 2);
    assert_eq!(stats["by_event"]["build:updated"], 1);
    assert_eq!(stats["by_event"]["user:deleted"], 1);

    let out = events_at(&url, &["erase", &id]);
    assert_eq!(stdout(&out), format!("event {id}: erased\n"));
    let out = events_at(&url, &["show", &id, "--raw"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stderr(&out),
        format!("error: event {id} was erased: its body is gone\n")
    );
    drop(served);
}
