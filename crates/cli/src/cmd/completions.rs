//! `dronehook completions SHELL`: a completion script for the shell.

use clap::CommandFactory as _;

use crate::Outcome;
use crate::args::{Cli, CompletionsArgs};
use crate::output;

/// Prints the script on standard output.
pub(crate) fn run(args: &CompletionsArgs) -> anyhow::Result<Outcome> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "dronehook", &mut script);
    output::out_bytes(&script)?;
    Ok(Outcome::Ok)
}
