//! Snapshot tests: each `tests/cmd/*.md` file holds commands with their exact output
//! and exit status. Secrets and dates are pinned on the command lines, so the output
//! is the same on every run; the few random parts (`dronehook secret`) are elided
//! with `[..]`.
//!
//! The `events*.md` files read a store built for them by `events_store::build` (its
//! content is described there), handed over in `DRONEHOOK_STORE`: `events.md` only
//! reads it, `events-write.md` changes its own copy.

use crate::events_store;

#[test]
fn cli_snapshots() {
    trycmd::TestCases::new()
        .register_bin(
            "dronehook",
            std::path::Path::new(env!("CARGO_BIN_EXE_dronehook")),
        )
        // The environment a developer's shell may carry must not change the output.
        .env("NO_COLOR", "1")
        .case("tests/cmd/*.md")
        .skip("tests/cmd/events*.md");
}

#[test]
fn events_snapshots() {
    let dir = tempfile::tempdir().unwrap();
    let read = dir.path().join("events.db");
    events_store::build(&read);
    let write = dir.path().join("events-write.db");
    events_store::build(&write);
    for (case, store) in [
        ("tests/cmd/events.md", &read),
        ("tests/cmd/events-write.md", &write),
    ] {
        trycmd::TestCases::new()
            .register_bin(
                "dronehook",
                std::path::Path::new(env!("CARGO_BIN_EXE_dronehook")),
            )
            .env("NO_COLOR", "1")
            .env("DRONEHOOK_STORE", store.display().to_string())
            .case(case)
            .run();
    }
}
