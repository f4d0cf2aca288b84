//! The `dronehook` command. Filled in by the command-line issue.

use clap::Parser;

/// Receive, verify, send and inspect Drone CI webhooks.
#[derive(Parser)]
#[command(name = "dronehook", version)]
struct Cli {}

fn main() -> anyhow::Result<()> {
    let _cli = Cli::parse();
    Ok(())
}
