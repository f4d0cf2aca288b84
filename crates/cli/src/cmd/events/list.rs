//! `dronehook events list`: newest first, one line (or one JSON object) per event.

use std::fmt::Write as _;
use std::time::SystemTime;

use clap::Args;
use dronehook_server::{EventSummary, HandlerRun};
use serde_json::{Value, json};

use super::query::{DEFAULT_LIMIT, MAX_LIMIT, QueryArgs};
use super::{StoreArg, filter_name, moment, moment_json};
use crate::Outcome;
use crate::output::{self, Painter};

#[derive(Args, Debug)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    pub(crate) store: StoreArg,
    #[command(flatten)]
    pub(crate) query: QueryArgs,
    /// How many events at most (1 to 10000).
    #[arg(long, default_value_t = DEFAULT_LIMIT, value_parser = parse_limit, value_name = "N")]
    pub(crate) limit: usize,
    /// Only events older than this ID: the next page after a listing that ended at ID.
    #[arg(long, value_name = "ID", value_parser = super::parse_id)]
    pub(crate) before: Option<i64>,
    /// One JSON object per line.
    #[arg(long)]
    pub(crate) json: bool,
}

fn parse_limit(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(format!("a number from 1 to {MAX_LIMIT}")),
    }
}

pub(crate) async fn run(args: ListArgs) -> anyhow::Result<Outcome> {
    let mut query = args.query.query(SystemTime::now())?.limit(args.limit);
    if let Some(before) = args.before {
        query = query.before(before);
    }
    let store = args.store.open(false).await?;
    let events = store.list(&query).await?;
    if args.json {
        let mut text = String::new();
        for event in &events {
            let _ = writeln!(text, "{}", summary_json(event));
        }
        output::out_bytes(text.as_bytes())?;
    } else if events.is_empty() {
        output::err_line("no events");
    } else {
        output::out_bytes(table(&events, Painter::stdout()).as_bytes())?;
    }
    if !args.json
        && events.len() == args.limit
        && let Some(last) = events.last()
    {
        output::err_line(&format!(
            "the newest {} shown; older ones: --before {}",
            events.len(),
            last.id
        ));
    }
    Ok(Outcome::Ok)
}

/// The listing: a heading, then a line per event, in aligned columns.
fn table(events: &[EventSummary], paint: Painter) -> String {
    let rows: Vec<[String; 5]> = events
        .iter()
        .map(|e| {
            [
                e.id.to_string(),
                moment(e.received_at),
                filter_name(&e.event, &e.action),
                e.repo.clone().unwrap_or_else(|| "-".into()),
                build(e),
            ]
        })
        .collect();
    let heads = ["ID", "RECEIVED", "EVENT", "REPO", "BUILD"];
    let mut widths = heads.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    let [w0, w1, w2, w3, w4] = widths;
    let head = format!(
        "{:>w0$}  {:w1$}  {:w2$}  {:w3$}  {:w4$}  HANDLERS",
        heads[0], heads[1], heads[2], heads[3], heads[4]
    );
    let _ = writeln!(text, "{}", paint.bold(&head));
    for (row, event) in rows.iter().zip(events) {
        let _ = writeln!(
            text,
            "{:>w0$}  {:w1$}  {:w2$}  {:w3$}  {:w4$}  {}",
            row[0],
            row[1],
            row[2],
            row[3],
            row[4],
            runs(event, paint)
        );
    }
    text
}

/// `#42 success`, `#42`, or `-`.
fn build(e: &EventSummary) -> String {
    match (e.build, &e.build_status) {
        (Some(n), Some(s)) => format!("#{n} {s}"),
        (Some(n), None) => format!("#{n}"),
        (None, Some(s)) => s.clone(),
        (None, None) => "-".into(),
    }
}

/// `exec:dead print:ok`, plus `erased` for an erased event.
fn runs(e: &EventSummary, paint: Painter) -> String {
    let mut parts: Vec<String> = e
        .runs
        .iter()
        .map(|r| {
            let state = r.status.as_str();
            let state = match state {
                "ok" => paint.good(state),
                "dead" => paint.bad(state),
                _ => paint.warn(state),
            };
            format!("{}:{state}", r.handler)
        })
        .collect();
    if parts.is_empty() {
        parts.push("-".into());
    }
    if e.erased {
        parts.push(paint.dim("(erased)"));
    }
    parts.join(" ")
}

/// One event's summary as JSON (`list --json`, and the head of `show --json`).
pub(crate) fn summary_json(e: &EventSummary) -> Value {
    json!({
        "id": e.id,
        "received": moment_json(e.received_at),
        "event": e.event,
        "action": e.action,
        "known": e.known,
        "repo": e.repo,
        "build": e.build,
        "build_status": e.build_status,
        "erased": e.erased,
        "runs": e.runs.iter().map(run_json).collect::<Vec<_>>(),
    })
}

/// One handler run as JSON; its output (only `show` has it) as text.
pub(crate) fn run_json(r: &HandlerRun) -> Value {
    let mut value = json!({
        "handler": r.handler,
        "status": r.status.as_str(),
        "attempts": r.attempts,
        "last_error": r.last_error,
        "duration_ms": r.last_duration.map(|d| d.as_millis() as u64),
        "next_at": r.next_at.map(moment_json),
        "updated_at": r.updated_at.map(moment_json),
    });
    if let Some(output) = &r.output {
        value["output"] = json!(String::from_utf8_lossy(output));
    }
    value
}
