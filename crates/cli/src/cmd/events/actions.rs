//! The commands that change the store: `redeliver`, `prune`, `erase`.

use std::time::SystemTime;

use clap::Args;

use super::StoreArg;
use super::query::{QueryArgs, duration};
use crate::output;
use crate::{Outcome, usage};

#[derive(Args, Debug)]
pub(crate) struct RedeliverArgs {
    #[command(flatten)]
    pub(crate) store: StoreArg,
    /// The events' IDs.
    #[arg(value_name = "ID", value_parser = super::parse_id, required_unless_present = "filter")]
    pub(crate) ids: Vec<i64>,
    /// Select the events instead (or as well), as `replay --filter` does
    /// (`state=dead since=1d`); at most 10000.
    #[arg(long, value_name = "FILTER")]
    pub(crate) filter: Option<String>,
    /// Only this handler's run (`exec`, `forward`, ...); created if the event has none
    /// of that name. Default: every run the event has.
    #[arg(long, value_name = "NAME")]
    pub(crate) handler: Option<String>,
}

/// Queues runs again; the receivers sharing the store pick them up within about a
/// second (SQLite: they poll it; PostgreSQL: NOTIFY).
pub(crate) async fn redeliver(args: RedeliverArgs) -> anyhow::Result<Outcome> {
    if let Some(name) = &args.handler
        && (name.trim().is_empty() || name.chars().any(char::is_control))
    {
        return Err(usage(format!(
            "invalid --handler {name:?}: give a route name such as exec"
        )));
    }
    let filter = match &args.filter {
        Some(text) => Some(QueryArgs::parse_filter(text)?.query(SystemTime::now())?),
        None => None,
    };
    let store = args.store.open(true).await?;
    let mut ids = args.ids.clone();
    if let Some(query) = filter {
        let found = store.list(&query.limit(super::query::MAX_LIMIT)).await?;
        if found.is_empty() && ids.is_empty() {
            anyhow::bail!("no event matches --filter");
        }
        for event in found {
            if !ids.contains(&event.id) {
                ids.push(event.id);
            }
        }
    }
    for id in ids {
        let queued = store
            .redeliver(id, args.handler.as_deref())
            .await
            .map_err(|e| {
                if e.is_not_found() {
                    anyhow::anyhow!("no event {id} in the store")
                } else {
                    anyhow::Error::new(e)
                }
            })?;
        let line = if queued.is_empty() {
            format!("event {id}: no handler run to queue")
        } else {
            format!("event {id}: queued {}", queued.join(", "))
        };
        output::out_line(&line)?;
    }
    Ok(Outcome::Ok)
}

#[derive(Args, Debug)]
pub(crate) struct PruneArgs {
    #[command(flatten)]
    pub(crate) store: StoreArg,
    /// Remove the events received longer ago than this (`30d`, `12h`) whose handler
    /// runs are all finished.
    #[arg(long, value_name = "DURATION")]
    pub(crate) older_than: String,
    /// Count what would be removed, and remove nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
}

pub(crate) async fn prune(args: PruneArgs) -> anyhow::Result<Outcome> {
    let older_than = duration("--older-than", &args.older_than)?;
    let store = args.store.open(!args.dry_run).await?;
    let pruned = store.prune(older_than, args.dry_run).await?;
    let n = pruned.events;
    let events = if n == 1 { "event" } else { "events" };
    let age = args.older_than.trim();
    output::out_line(&if args.dry_run {
        format!("would prune {n} {events} received more than {age} ago (dry run)")
    } else {
        format!("pruned {n} {events} received more than {age} ago")
    })?;
    Ok(Outcome::Ok)
}

#[derive(Args, Debug)]
pub(crate) struct EraseArgs {
    #[command(flatten)]
    pub(crate) store: StoreArg,
    /// The events' IDs.
    #[arg(value_name = "ID", required = true, value_parser = super::parse_id)]
    pub(crate) ids: Vec<i64>,
}

/// Removes payloads, headers and run output for good; what remains is that the event
/// arrived (its digest keeps the replay check true) and how it was handled.
pub(crate) async fn erase(args: EraseArgs) -> anyhow::Result<Outcome> {
    let store = args.store.open(true).await?;
    for &id in &args.ids {
        let erased = store.erase(id).await.map_err(|e| {
            if e.is_not_found() {
                anyhow::anyhow!("no event {id} in the store")
            } else {
                anyhow::Error::new(e)
            }
        })?;
        output::out_line(&if erased {
            format!("event {id}: erased")
        } else {
            format!("event {id}: already erased")
        })?;
    }
    Ok(Outcome::Ok)
}
