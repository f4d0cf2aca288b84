//! `dronehook events stats`: what the store holds, counted.

use std::fmt::Write as _;
use std::time::SystemTime;

use clap::Args;
use dronehook_server::StoreStats;
use serde_json::{Value, json};

use super::query::when;
use super::{StoreArg, moment, moment_json};
use crate::Outcome;
use crate::output::{self, Painter};

#[derive(Args, Debug)]
pub(crate) struct StatsArgs {
    #[command(flatten)]
    pub(crate) store: StoreArg,
    /// Count only events received since then: a duration back from now (`1h`, `7d`) or
    /// a moment (RFC 3339, or an HTTP date).
    #[arg(long, value_name = "DURATION|TIME")]
    pub(crate) since: Option<String>,
    /// Print them as one JSON object.
    #[arg(long)]
    pub(crate) json: bool,
}

pub(crate) async fn run(args: StatsArgs) -> anyhow::Result<Outcome> {
    let since = match &args.since {
        Some(text) => Some(when("--since", text, SystemTime::now())?),
        None => None,
    };
    let store = args.store.open(false).await?;
    let stats = store.stats(since).await?;
    if args.json {
        output::out_line(&serde_json::to_string_pretty(&stats_json(&stats))?)?;
    } else {
        output::out_bytes(text(&stats, Painter::stdout()).as_bytes())?;
    }
    Ok(Outcome::Ok)
}

fn text(s: &StoreStats, paint: Painter) -> String {
    let mut text = String::new();
    let dash = || "-".to_owned();
    let _ = writeln!(text, "{:15} {} ({} erased)", "events", s.events, s.erased);
    let _ = writeln!(
        text,
        "{:15} {}",
        "oldest",
        s.oldest.map_or_else(dash, moment)
    );
    let _ = writeln!(
        text,
        "{:15} {}",
        "newest",
        s.newest.map_or_else(dash, moment)
    );
    let _ = writeln!(
        text,
        "{:15} {}",
        "oldest pending",
        s.oldest_pending.map_or_else(|| "none".to_owned(), moment)
    );
    let _ = writeln!(
        text,
        "{:15} {}",
        "size",
        s.size_bytes.map_or_else(dash, size)
    );
    let mut section = |title: &str, rows: Vec<(String, u64)>| {
        let _ = writeln!(text, "\n{}", paint.bold(title));
        if rows.is_empty() {
            let _ = writeln!(text, "  -");
        }
        let width = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(0);
        for (name, n) in rows {
            let _ = writeln!(text, "  {name:width$}  {n:>8}");
        }
    };
    section("by event", s.by_event.clone());
    section("by build status", s.by_build_status.clone());
    section(
        "by handler state",
        s.by_run_status
            .iter()
            .map(|(state, n)| (state.as_str().to_owned(), *n))
            .collect(),
    );
    text
}

/// Bytes in binary units, as `du -h` would: `4.0 KiB`, `12.5 MiB`.
fn size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

fn stats_json(s: &StoreStats) -> Value {
    let pairs = |rows: &[(String, u64)]| -> Value {
        Value::Object(rows.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
    };
    json!({
        "events": s.events,
        "erased": s.erased,
        "oldest": s.oldest.map(moment_json),
        "newest": s.newest.map(moment_json),
        "oldest_pending": s.oldest_pending.map(moment_json),
        "size_bytes": s.size_bytes,
        "by_event": pairs(&s.by_event),
        "by_build_status": pairs(&s.by_build_status),
        "by_run_status": Value::Object(
            s.by_run_status
                .iter()
                .map(|(state, n)| (state.as_str().to_owned(), json!(n)))
                .collect()
        ),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn sizes_read_as_du_does() {
        assert_eq!(super::size(512), "512 B");
        assert_eq!(super::size(4096), "4.0 KiB");
        assert_eq!(super::size(13_107_200), "12.5 MiB");
    }
}
