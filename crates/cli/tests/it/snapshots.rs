//! Snapshot tests: each `tests/cmd/*.md` file holds commands with their exact output
//! and exit status. Secrets and dates are pinned on the command lines, so the output
//! is the same on every run; the few random parts (`dronehook secret`) are elided
//! with `[..]`.

#[test]
fn cli_snapshots() {
    trycmd::TestCases::new()
        .register_bin(
            "dronehook",
            std::path::Path::new(env!("CARGO_BIN_EXE_dronehook")),
        )
        // The environment a developer's shell may carry must not change the output.
        .env("NO_COLOR", "1")
        .case("tests/cmd/*.md");
}
