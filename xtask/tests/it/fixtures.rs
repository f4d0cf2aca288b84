//! `xtask fixtures` through the real binary: the committed `fixtures/` must be what
//! the generator writes (so plain `cargo test` fails when someone changed the samples
//! or the signer and did not regenerate), and `--check` must name every stale file.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

fn xtask(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(args)
        .output()
        .expect("the xtask binary runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn committed_fixtures_are_what_the_generator_writes() {
    let out = xtask(&["fixtures", "--check"]);
    assert!(
        out.status.success(),
        "`cargo xtask fixtures --check` failed:\n{}",
        text(&out.stderr)
    );
    assert!(
        text(&out.stdout).starts_with("fixtures are up to date ("),
        "{}",
        text(&out.stdout)
    );
    assert_eq!(text(&out.stderr), "");
}

/// A scratch workspace with no `../shared` beside it, as in a fresh clone: the
/// generator must work, and keep the committed corpus as it is.
#[test]
fn a_scratch_copy_is_generated_checked_and_repaired() {
    let scratch = tempfile::tempdir().unwrap();
    let root = scratch.path().join("ws");
    let root_arg = root.to_str().unwrap();
    let corpus = root.join("fixtures/corpus");
    fs::create_dir_all(&corpus).unwrap();
    fs::write(corpus.join("kept.json"), b"{\"event\":\"user\"}").unwrap();

    // Nothing generated yet: --check lists what is missing and changes nothing.
    let out = xtask(&["--root", root_arg, "fixtures", "--check"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(
        err.starts_with("error: fixtures are stale: run `cargo xtask fixtures` and commit\n"),
        "{err}"
    );
    assert!(
        err.contains("\n  fixtures/payloads/build_updated.json: missing\n"),
        "{err}"
    );
    assert!(
        err.contains("\n  fixtures/requests/build_updated.http: missing\n"),
        "{err}"
    );
    assert!(err.contains("\n  fixtures/corpus/NOTICE: missing"), "{err}");
    assert!(!root.join("fixtures/payloads").exists());

    // Generating writes everything and keeps the corpus that has no source here.
    let out = xtask(&["--root", root_arg, "fixtures"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("wrote fixtures/payloads/build_updated.json\n"));
    assert!(text(&out.stdout).contains("fixtures/corpus/ was kept as committed"));
    assert_eq!(
        fs::read(corpus.join("kept.json")).unwrap(),
        b"{\"event\":\"user\"}"
    );
    let notice = fs::read_to_string(corpus.join("NOTICE")).unwrap();
    assert!(notice.contains("Diesel-Net/drone-discord") && notice.contains("under the MIT"));
    let request = fs::read(root.join("fixtures/requests/user_created.http")).unwrap();
    assert!(request.starts_with(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Drone-Event: user\r\n"));
    assert_eq!(
        xtask(&["--root", root_arg, "fixtures", "--check"])
            .status
            .code(),
        Some(0)
    );

    // A second run changes nothing.
    let out = xtask(&["--root", root_arg, "fixtures"]);
    assert!(text(&out.stdout).ends_with(" changed\n"));
    assert!(
        text(&out.stdout).contains(" 0 changed"),
        "{}",
        text(&out.stdout)
    );
    assert!(!text(&out.stdout).contains("wrote "));

    // An edited file and a stray one are reported, then repaired and removed.
    let payload = root.join("fixtures/payloads/user_created.json");
    fs::write(&payload, b"{}").unwrap();
    fs::write(root.join("fixtures/requests/old.http"), b"x").unwrap();
    let out = xtask(&["--root", root_arg, "fixtures", "--check"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        text(&out.stderr),
        "error: fixtures are stale: run `cargo xtask fixtures` and commit\n  \
         fixtures/payloads/user_created.json: differs from the generator's output\n  \
         fixtures/requests/old.http: no longer generated\n"
    );
    assert_eq!(fs::read(&payload).unwrap(), b"{}");
    let out = xtask(&["--root", root_arg, "fixtures"]);
    assert!(text(&out.stdout).contains("removed fixtures/requests/old.http\n"));
    assert!(!Path::new(&root.join("fixtures/requests/old.http")).exists());
    assert_eq!(
        xtask(&["--root", root_arg, "fixtures", "--check"])
            .status
            .code(),
        Some(0)
    );
}
