//! `--micro`: the criterion benches of the protocol and client crates, and a reader
//! for the estimates criterion leaves under `target/criterion` (which the HTTP report
//! also uses for the verify + decode target).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use anyhow::Context as _;
use serde_json::Value;

/// One criterion benchmark's latest estimate.
#[derive(Clone, Debug)]
pub(crate) struct Estimate {
    /// `group/function[/parameter]`.
    pub(crate) id: String,
    /// The median time per iteration, in nanoseconds.
    pub(crate) median_ns: f64,
    /// Bytes or elements per iteration, when the bench declares it.
    pub(crate) throughput: Option<(String, f64)>,
    /// When criterion wrote it.
    pub(crate) written: Option<SystemTime>,
}

impl Estimate {
    /// Bytes per second, for benches that declare a byte throughput.
    pub(crate) fn bytes_per_sec(&self) -> Option<f64> {
        match &self.throughput {
            Some((kind, n)) if kind == "Bytes" => Some(n / (self.median_ns / 1e9)),
            _ => None,
        }
    }
}

/// Runs `cargo bench` for the protocol crate and the client crate, letting criterion
/// print as it goes, then prints one summary table of both.
pub(crate) fn run(root: &Path) -> anyhow::Result<Vec<Estimate>> {
    let started = SystemTime::now();
    let mut failed = Vec::new();
    for package in ["dronehook-protocol", "dronehook-client"] {
        eprintln!("bench: cargo bench -p {package}");
        let status = Command::new(cargo())
            .current_dir(root)
            .args(["bench", "-p", package])
            .status()
            .with_context(|| format!("running cargo bench -p {package}"))?;
        if !status.success() {
            // One crate's broken bench should not hide the other's numbers.
            eprintln!("bench: warning: cargo bench -p {package} failed ({status}); continuing");
            failed.push(package);
        }
    }
    let all = read_estimates(&target_dir(root));
    let fresh: Vec<_> = all
        .into_iter()
        .filter(|e| e.written.is_some_and(|w| w >= started))
        .collect();
    println!("\ncriterion summary (median per iteration):");
    for e in &fresh {
        let rate = match (&e.throughput, e.bytes_per_sec()) {
            (_, Some(bps)) => format!("  {:.1} MB/s", bps / 1e6),
            (Some((kind, n)), None) => {
                format!("  {:.0} {}/s", n / (e.median_ns / 1e9), kind.to_lowercase())
            }
            (None, None) => String::new(),
        };
        println!("  {:<48} {:>12}{rate}", e.id, fmt_ns(e.median_ns));
    }
    if !failed.is_empty() {
        println!(
            "  (failed, so partly or not measured: {})",
            failed.join(", ")
        );
    }
    Ok(fresh)
}

/// Formats nanoseconds with a unit that keeps three or four digits.
pub(crate) fn fmt_ns(ns: f64) -> String {
    if ns < 1_000.0 {
        format!("{ns:.1} ns")
    } else if ns < 1_000_000.0 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{:.2} ms", ns / 1e6)
    }
}

/// The cargo binary that runs us (`cargo xtask` sets `CARGO`).
pub(crate) fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned())
}

/// The target directory: `CARGO_TARGET_DIR` or the workspace's `target/`.
pub(crate) fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

/// Every estimate criterion has written under `target/criterion`.
pub(crate) fn read_estimates(target: &Path) -> Vec<Estimate> {
    let mut out = Vec::new();
    let base = target.join("criterion");
    if !base.is_dir() {
        return out;
    }
    let mut stack = vec![base];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if !path.is_dir() {
                continue;
            }
            if path.file_name().is_some_and(|n| n == "new") {
                if let Some(e) = read_one(&path) {
                    out.push(e);
                }
            } else if path
                .file_name()
                .is_none_or(|n| n != "base" && n != "report")
            {
                stack.push(path);
            }
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    out
}

fn read_one(dir: &Path) -> Option<Estimate> {
    let bench: Value =
        serde_json::from_slice(&std::fs::read(dir.join("benchmark.json")).ok()?).ok()?;
    let estimates_path = dir.join("estimates.json");
    let estimates: Value = serde_json::from_slice(&std::fs::read(&estimates_path).ok()?).ok()?;
    let id = bench.get("full_id")?.as_str()?.to_owned();
    let median_ns = estimates.pointer("/median/point_estimate")?.as_f64()?;
    let throughput = bench
        .get("throughput")
        .and_then(Value::as_object)
        .and_then(|o| o.iter().next())
        .and_then(|(k, v)| Some((k.clone(), v.as_f64()?)));
    let written = std::fs::metadata(&estimates_path)
        .and_then(|m| m.modified())
        .ok();
    Some(Estimate {
        id,
        median_ns,
        throughput,
        written,
    })
}
