//! `cargo xtask fuzz`: runs every cargo-fuzz target in `fuzz/` for a while, prints a
//! table of executions and outcomes, and turns every failing input into a regression
//! fixture under `fuzz/regressions/<target>/`, which `cargo test` replays.
//!
//! cargo-fuzz builds with `--sanitizer none`, which works on the stable toolchain this
//! project uses; the coverage instrumentation is libFuzzer's own.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The fuzz targets, in the order they run.
pub(crate) const TARGETS: &[&str] = &[
    "signature_header",
    "digest_header",
    "payload_decode",
    "verify_request",
];

/// Options for `cargo xtask fuzz`.
#[derive(clap::Args, Debug)]
pub(crate) struct FuzzArgs {
    /// Seconds to run each target.
    #[arg(long, default_value_t = 30, value_name = "SECONDS")]
    time: u64,
    /// Stop each target after this many executions instead (whichever comes first).
    #[arg(long, value_name = "N")]
    runs: Option<u64>,
    /// Run only these targets.
    #[arg(value_name = "TARGET")]
    targets: Vec<String>,
}

struct Outcome {
    target: String,
    runs: u64,
    per_sec: u64,
    failure: Option<String>,
}

pub(crate) fn run(root: &Path, args: &FuzzArgs) -> Result<()> {
    let available = Command::new("cargo").args(["fuzz", "--version"]).output();
    if !available.is_ok_and(|o| o.status.success()) {
        bail!("cargo-fuzz is not installed: run `cargo install cargo-fuzz --locked`");
    }
    let targets: Vec<&str> = if args.targets.is_empty() {
        TARGETS.to_vec()
    } else {
        for t in &args.targets {
            if !TARGETS.contains(&t.as_str()) {
                bail!(
                    "unknown fuzz target {t:?}; the targets are {}",
                    TARGETS.join(", ")
                );
            }
        }
        args.targets.iter().map(String::as_str).collect()
    };
    let mut outcomes = Vec::new();
    for target in targets {
        outcomes.push(run_target(root, target, args)?);
    }
    println!(
        "\n{:<18} {:>12} {:>10}  outcome",
        "target", "executions", "exec/s"
    );
    for o in &outcomes {
        let outcome = o
            .failure
            .as_deref()
            .unwrap_or("ok: no crash, panic or hang");
        println!(
            "{:<18} {:>12} {:>10}  {outcome}",
            o.target, o.runs, o.per_sec
        );
    }
    let failed = outcomes.iter().filter(|o| o.failure.is_some()).count();
    if failed > 0 {
        bail!(
            "{failed} fuzz target(s) failed; the inputs are in fuzz/regressions/ and replayed by `cargo test -p dronehook-protocol`"
        );
    }
    Ok(())
}

fn run_target(root: &Path, target: &str, args: &FuzzArgs) -> Result<Outcome> {
    let corpus = root.join("fuzz/corpus").join(target);
    let seeds = root.join("fuzz/seeds").join(target);
    let artifacts = root.join("fuzz/artifacts").join(target);
    std::fs::create_dir_all(&corpus).with_context(|| format!("creating {}", corpus.display()))?;
    std::fs::create_dir_all(&artifacts)?;
    let before: Vec<_> = list(&artifacts);
    let mut libfuzzer_args = vec![
        format!("-max_total_time={}", args.time),
        "-timeout=10".to_owned(),
        "-rss_limit_mb=2048".to_owned(),
        "-max_len=65536".to_owned(),
        "-print_final_stats=1".to_owned(),
    ];
    if let Some(runs) = args.runs {
        libfuzzer_args.push(format!("-runs={runs}"));
    }
    println!(
        "== fuzz {target} ({} s{})",
        args.time,
        args.runs
            .map(|r| format!(", at most {r} runs"))
            .unwrap_or_default()
    );
    let output = Command::new("cargo")
        .current_dir(root)
        .args(["fuzz", "run", "-O", "--sanitizer", "none", target])
        .arg(&corpus)
        .arg(&seeds)
        .arg("--")
        .args(&libfuzzer_args)
        .output()
        .context("running cargo fuzz")?;
    let log = String::from_utf8_lossy(&output.stderr);
    let stat = |name: &str| -> u64 {
        log.lines()
            .find_map(|l| l.strip_prefix(&format!("stat::{name}:")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    let mut failure = None;
    if !output.status.success() {
        let regressions = root.join("fuzz/regressions").join(target);
        std::fs::create_dir_all(&regressions)?;
        let mut kept = Vec::new();
        for path in list(&artifacts).into_iter().filter(|p| !before.contains(p)) {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            std::fs::copy(&path, regressions.join(&name))?;
            kept.push(name);
        }
        let reason = log
            .lines()
            .find(|l| l.contains("panicked at") || l.contains("ERROR: libFuzzer"))
            .unwrap_or("cargo fuzz failed")
            .trim()
            .to_owned();
        failure = Some(format!(
            "FAILED: {reason}; kept {}",
            if kept.is_empty() {
                "nothing".to_owned()
            } else {
                kept.join(", ")
            }
        ));
    }
    Ok(Outcome {
        target: target.to_owned(),
        runs: stat("number_of_executed_units"),
        per_sec: stat("average_exec_per_sec"),
        failure,
    })
}

fn list(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    out.sort();
    out
}
