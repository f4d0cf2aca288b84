//! The `dronehook` command: receive, verify, send and inspect Drone CI webhooks.
//!
//! `main` only calls [`run`], which turns every outcome into an exit status: 0 for
//! success, 1 when a verification or a delivery failed, 2 for a wrong command line
//! or input. Errors are printed as one line, `error: ...`, and never as a panic.

mod args;
mod cmd;
mod input;
mod output;
mod secrets;
mod summary;

use std::io::Write as _;
use std::process::ExitCode;

use clap::Parser as _;

use crate::args::{Cli, Command};

/// What a command reports when it did not fail outright.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// Everything worked.
    Ok,
    /// The command ran, and what it checked or delivered failed (already reported).
    Failed,
}

/// An error caused by what the user gave: arguments, files, inputs. Exit status 2.
#[derive(Debug)]
pub(crate) struct UsageError(pub(crate) String);

impl std::fmt::Display for UsageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Builds an [`anyhow::Error`] that exits with status 2.
pub(crate) fn usage(message: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(UsageError(message.into()))
}

fn main() -> ExitCode {
    run()
}

/// Parses the command line, runs the command and maps the outcome to an exit status.
fn run() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) if !err.use_stderr() => {
            // Help and version go to stdout with status 0; a closed pipe while
            // printing them is not an error.
            let _ = err.print();
            return ExitCode::SUCCESS;
        }
        Err(err) => {
            // clap's message spreads over several lines (the usage, a pointer to
            // --help); it is folded into one, keeping what it says about the mistake.
            let text = err.render().to_string();
            let line = text
                .lines()
                .map(str::trim)
                .filter(|l| {
                    !l.is_empty()
                        && !l.starts_with("Usage:")
                        && !l.starts_with("For more information")
                })
                .collect::<Vec<_>>()
                .join(" ");
            let _ = writeln!(std::io::stderr().lock(), "{line} (see --help)");
            return ExitCode::from(2);
        }
    };
    match dispatch(cli) {
        Ok(Outcome::Ok) => ExitCode::SUCCESS,
        Ok(Outcome::Failed) => ExitCode::from(1),
        Err(err) if output::is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            let line = format!("{err:#}").replace(['\n', '\r'], " ");
            let _ = writeln!(std::io::stderr().lock(), "error: {line}");
            if err.chain().any(<dyn std::error::Error>::is::<UsageError>) {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            }
        }
    }
}

fn dispatch(cli: Cli) -> anyhow::Result<Outcome> {
    match cli.command {
        Command::Serve(args) => cmd::serve::run(*args),
        Command::Send(args) => cmd::send::run(args),
        Command::Sign(args) => cmd::sign::run(&args),
        Command::Verify(args) => cmd::verify::run(&args),
        Command::Events(args) => cmd::events::run(args),
        Command::Audit(args) => cmd::audit::run(&args),
        Command::Encode(args) => cmd::encode::run(&args),
        Command::Fixtures(command) => cmd::fixtures::run(command),
        Command::Secret(args) => cmd::secret::run(&args),
        Command::Cert(args) => cmd::cert::run(&args),
        Command::Completions(args) => cmd::completions::run(&args),
    }
}
