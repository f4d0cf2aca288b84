//! `dronehook fixtures`: the built-in sample payloads, listed, shown or written out.

use dronehook_protocol::samples;
use serde_json::{Value, json};
use std::fmt::Write as _;

use crate::args::FixturesCommand;
use crate::input::{self, reason};
use crate::output::{self, Painter};
use crate::{Outcome, usage};

/// Runs `list`, `show` or `write`.
pub(crate) fn run(command: FixturesCommand) -> anyhow::Result<Outcome> {
    match command {
        FixturesCommand::List { json } => list(json),
        FixturesCommand::Show { name } => {
            let sample = input::fixture(&name)?;
            let mut bytes = sample.body;
            if output::stdout_is_terminal() && !bytes.ends_with(b"\n") {
                bytes.push(b'\n');
            }
            output::out_bytes(&bytes)?;
            Ok(Outcome::Ok)
        }
        FixturesCommand::Write { dir, force, drone } => {
            std::fs::create_dir_all(&dir)
                .map_err(|e| usage(format!("cannot create {}: {}", dir.display(), reason(&e))))?;
            let all: Vec<_> = samples::all()
                .into_iter()
                .filter(|s| s.drone || !drone)
                .collect();
            for sample in &all {
                let path = dir.join(format!("{}.json", sample.name));
                if !force && path.exists() {
                    return Err(usage(format!(
                        "{} exists; give --force to replace it",
                        path.display()
                    )));
                }
                std::fs::write(&path, &sample.body).map_err(|e| {
                    usage(format!("cannot write {}: {}", path.display(), reason(&e)))
                })?;
            }
            output::out_line(&format!(
                "wrote {} fixtures to {}",
                all.len(),
                dir.display()
            ))?;
            Ok(Outcome::Ok)
        }
    }
}

fn list(as_json: bool) -> anyhow::Result<Outcome> {
    let all = samples::all();
    if as_json {
        let items: Vec<Value> = all
            .iter()
            .map(|s| {
                json!({
                    "name": s.name,
                    "event": s.header_event,
                    "drone": s.drone,
                    "bytes": s.body.len(),
                    "summary": s.summary,
                })
            })
            .collect();
        output::out_line(&serde_json::to_string_pretty(&items)?)?;
        return Ok(Outcome::Ok);
    }
    let paint = Painter::stdout();
    let width = all.iter().map(|s| s.name.len()).max().unwrap_or(0);
    let mut text = String::new();
    for s in &all {
        let origin = if s.drone { "drone" } else { "docs " };
        let name = format!("{:width$}", s.name);
        let _ = writeln!(
            text,
            "{}  {:5}  {}  {}",
            paint.bold(&name),
            s.header_event,
            paint.dim(origin),
            s.summary
        );
    }
    output::out_bytes(text.as_bytes())?;
    Ok(Outcome::Ok)
}
