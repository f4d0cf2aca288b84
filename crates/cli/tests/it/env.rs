//! Environment variables configure the commands as Drone's do, and flags override them.

use crate::support::{Served, dronehook, run, serve_cmd, stderr, stdout};

fn signature(out: &std::process::Output) -> String {
    stdout(out)
        .lines()
        .find(|l| l.starts_with("Signature: "))
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn sign_reads_the_secret_from_the_environment_and_the_flag_wins() {
    let args = [
        "sign",
        "fixture:user_created",
        "--date",
        "2020-01-01T00:00:00Z",
    ];
    let from_flag = run(dronehook().args(args).args(["--secret", "flag"]));
    let from_env = run(dronehook().args(args).env("DRONE_WEBHOOK_SECRET", "flag"));
    let both = run(dronehook()
        .args(args)
        .args(["--secret", "flag"])
        .env("DRONE_WEBHOOK_SECRET", "env"));
    let env_only = run(dronehook().args(args).env("DRONE_WEBHOOK_SECRET", "env"));
    assert_eq!(from_flag.status.code(), Some(0));
    assert_eq!(signature(&from_flag), signature(&from_env));
    assert_eq!(signature(&from_flag), signature(&both));
    assert_ne!(signature(&from_flag), signature(&env_only));
}

#[test]
fn serve_takes_drone_secret_and_the_flag_overrides_it() {
    let mut serve = serve_cmd();
    serve
        .env("DRONE_SECRET", "from-env")
        .args(["--secret", "from-flag", "--output", "none"]);
    let served = Served::start(serve);
    let send = |secret: &str| {
        run(dronehook()
            .args([
                "send",
                "--endpoint",
                &served.url,
                "--retries",
                "0",
                "fixture:user_created",
            ])
            .env("DRONE_WEBHOOK_SECRET", secret))
    };
    assert_eq!(send("from-flag").status.code(), Some(0));
    assert_eq!(send("from-env").status.code(), Some(1));
}

#[test]
fn serve_falls_back_to_drone_webhook_secret_with_several_secrets() {
    let mut serve = serve_cmd();
    serve
        .env("DRONE_WEBHOOK_SECRET", "old, new")
        .args(["--output", "none"]);
    let served = Served::start(serve);
    assert!(served.banner.contains("(2 secrets,"), "{}", served.banner);
    for secret in ["old", "new"] {
        let out = run(dronehook().args([
            "send",
            "--endpoint",
            &served.url,
            "--secret",
            secret,
            "fixture:user_deleted",
        ]));
        assert_eq!(out.status.code(), Some(0), "{secret}: {}", stdout(&out));
    }
}

#[test]
fn serve_binds_drone_bind_and_the_flag_overrides_it() {
    // An address that cannot be bound: if it were used, serve would fail.
    let mut serve = serve_cmd();
    serve
        .env("DRONE_BIND", "192.0.2.1:1")
        .args(["--secret", "s", "--output", "none"]);
    let served = Served::start(serve);
    assert!(
        served.url.starts_with("http://127.0.0.1:"),
        "{}",
        served.url
    );

    let out = run(dronehook()
        .env("DRONE_BIND", "not an address")
        .args(["serve", "--secret", "s"]));
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(
        stderr(&out),
        "error: invalid --bind address \"not an address\": give host:port, such as 127.0.0.1:3000 or :3000\n"
    );
}

#[test]
fn send_reads_endpoints_events_and_secret_from_drone_variables() {
    let mut first = serve_cmd();
    first.args(["--secret", "s3cr3t", "--output", "json"]);
    let mut first = Served::start(first);
    let mut second = serve_cmd();
    second.args(["--secret", "s3cr3t", "--output", "json"]);
    let mut second = Served::start(second);
    let out = run(dronehook()
        .env(
            "DRONE_WEBHOOK_ENDPOINT",
            format!("{},{}", first.url, second.url),
        )
        .env("DRONE_WEBHOOK_SECRET", "s3cr3t")
        .env("DRONE_WEBHOOK_EVENTS", "repo:*")
        .args(["send", "fixture:user_created", "fixture:repo_deleted"]));
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(
        text.contains("fixture:user_created  user created      filtered"),
        "{text}"
    );
    assert!(text.contains("1 event(s) left out by --events"), "{text}");
    for served in [&mut first, &mut second] {
        let line = &served.stdout_lines(1)[0];
        assert!(line.contains(r#""action":"deleted""#), "{line}");
    }

    // --events on the command line replaces the variable.
    let out = run(dronehook()
        .env("DRONE_WEBHOOK_ENDPOINT", &first.url)
        .env("DRONE_WEBHOOK_SECRET", "s3cr3t")
        .env("DRONE_WEBHOOK_EVENTS", "repo:*")
        .args([
            "send",
            "--events",
            "user:*",
            "fixture:user_created",
            "fixture:repo_deleted",
        ]));
    let text = stdout(&out);
    assert!(
        text.contains("fixture:user_created  user created      delivered"),
        "{text}"
    );
    assert!(
        text.contains("fixture:repo_deleted  repo deleted      filtered"),
        "{text}"
    );
}

#[test]
fn verify_reads_comma_separated_secrets_from_drone_secret() {
    let request = run(dronehook().args([
        "sign",
        "fixture:user_created",
        "--secret",
        "second",
        "--format",
        "http",
    ]))
    .stdout;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("r.http");
    std::fs::write(&file, request).unwrap();
    let out = run(dronehook()
        .env("DRONE_SECRET", "first,second")
        .arg("verify")
        .arg("--request")
        .arg(&file));
    assert_eq!(stdout(&out), "valid  user created  octocat\n");
    let out = run(dronehook()
        .env("DRONE_SECRET", "first,second")
        .args(["verify", "--secret", "first", "--request"])
        .arg(&file));
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out),
        "signature.invalid: the signature does not match any configured secret\n"
    );
}
