//! `cargo xtask`: the project's automation.
//!
//! - `cargo xtask test` runs everything CI checks, step by step, and ends with one
//!   `N passed, N failed` line;
//! - `cargo xtask fixtures [--check]` regenerates `fixtures/` from the protocol crate's
//!   samples (or, with `--check`, fails when the committed files are stale);
//! - `cargo xtask conformance` runs every fixture through every path between the crates
//!   and the `dronehook` binary and prints a table of results;
//! - `cargo xtask bench` measures `dronehook serve` beside a no-op hyper server and
//!   rewrites docs/benchmarks.md; `cargo xtask bench overload` loads it with slowloris
//!   connections beside legitimate clients;
//! - `cargo xtask fuzz [--time SECONDS]` runs every cargo-fuzz target briefly;
//! - `cargo xtask tidy` checks the rules rustfmt and clippy do not: every source's
//!   `//!` line, forbidden macros, and the direction of the crates' dependencies.

mod bench;
mod ci;
mod conformance;
mod fixtures;
mod fuzz;
mod tidy;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The project's automation, run as `cargo xtask <command>`.
#[derive(Parser, Debug)]
#[command(name = "xtask", bin_name = "cargo xtask", version, about)]
struct Cli {
    /// The workspace to work on (default: the one xtask was built in). Tests point it
    /// at a scratch copy.
    #[arg(long, global = true, hide = true, value_name = "DIR")]
    root: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Runs every check CI runs: fmt, clippy, tests, docs, fixtures, conformance, tidy.
    Test,
    /// Regenerates fixtures/ from the protocol crate's samples.
    Fixtures {
        /// Changes nothing; fails when a generated file is missing, differs or is stale.
        #[arg(long)]
        check: bool,
    },
    /// Runs every fixture through every path between the crates and prints a table.
    Conformance,
    /// Checks that sources start with a `//!` line and hold no forbidden macros or
    /// attributes, and that the crates depend on each other in the allowed direction.
    Tidy,
    /// Measures `dronehook serve` against a no-op hyper server and writes docs/benchmarks.md.
    Bench(bench::BenchArgs),
    /// Runs every cargo-fuzz target for a while; failing inputs become regression fixtures.
    Fuzz(fuzz::FuzzArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let root = cli.root.unwrap_or_else(workspace_root);
    let result = match cli.command {
        Command::Test => {
            return if ci::run(&root) {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            };
        }
        Command::Fixtures { check } => fixtures::run(&root, check),
        Command::Conformance => conformance::run(&root),
        Command::Tidy => tidy::run(&root),
        Command::Bench(args) => bench::run(&root, &args),
        Command::Fuzz(args) => fuzz::run(&root, &args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root: xtask lives one directory below it, and the path is fixed at
/// build time so the commands work from any current directory.
fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}
