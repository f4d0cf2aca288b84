//! Colour only on a terminal (here a pseudo-terminal made by `script`), never with
//! NO_COLOR, never into a pipe.

use std::process::Command;

use crate::support::{BIN, run, stdout};

/// Runs `dronehook ARGS` under a pseudo-terminal and returns what it printed.
fn on_a_terminal(args: &str, no_color: bool) -> String {
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &format!("{BIN} {args}"), "/dev/null"]);
    if no_color {
        cmd.env("NO_COLOR", "1");
    } else {
        cmd.env_remove("NO_COLOR");
    }
    stdout(&run(&mut cmd))
}

#[test]
fn colour_on_a_terminal_unless_no_color_is_set() {
    let args = "fixtures list";
    let coloured = on_a_terminal(args, false);
    assert!(
        coloured.contains("\u{1b}["),
        "no colour on a terminal: {coloured:?}"
    );
    assert!(coloured.contains("build_finished"), "{coloured:?}");
    let plain = on_a_terminal(args, true);
    assert!(
        !plain.contains("\u{1b}["),
        "colour despite NO_COLOR: {plain:?}"
    );
    assert!(plain.contains("build_finished"), "{plain:?}");
    let piped = run(Command::new(BIN)
        .args(["fixtures", "list"])
        .env_remove("NO_COLOR"));
    assert!(!stdout(&piped).contains('\u{1b}'), "colour into a pipe");
}
