//! `dronehook events`: looks into a receiver's store from the command line (list,
//! show, replay, redeliver, prune, stats, erase), beside the receivers writing it.
//!
//! Each subcommand opens the store through `dronehook_server::Store`: the reading
//! ones read-only (a running receiver's SQLite file is read at the same time, WAL), the
//! others read-write. A tool never creates a store.

mod actions;
mod list;
mod query;
mod replay;
mod show;
mod stats;

use std::time::{Duration, SystemTime};

use clap::{Args, Subcommand};
use dronehook_server::{Store, StoreUrl};

use crate::{Outcome, usage};

/// `dronehook events SUBCOMMAND`.
#[derive(Args, Debug)]
#[command(after_help = "\
Exit status: 0 on success; 1 when the store cannot be opened (unreachable, missing, a
newer schema), an ID is not in it, or a replay failed; 2 when the command line is wrong
(a malformed filter, duration or ID).")]
pub(crate) struct EventsArgs {
    #[command(subcommand)]
    pub(crate) command: EventsCommand,
}

#[derive(Subcommand, Debug)]
pub(crate) enum EventsCommand {
    /// List the stored events, newest first, one line each.
    List(list::ListArgs),
    /// Show one event: headers, verification, payload and every handler run.
    Show(show::ShowArgs),
    /// Send stored events again to an endpoint, signed now (fresh Date).
    Replay(replay::ReplayArgs),
    /// Queue handler runs again, on the receivers that share the store.
    Redeliver(actions::RedeliverArgs),
    /// Remove finished events older than a duration.
    Prune(actions::PruneArgs),
    /// Counts by event, build status and handler state; oldest, newest, size.
    Stats(stats::StatsArgs),
    /// Remove events' payloads and headers for good, keeping that they arrived.
    Erase(actions::EraseArgs),
}

/// `--store`, shared by every subcommand.
#[derive(Args, Debug)]
pub(crate) struct StoreArg {
    /// The store: a SQLite file (`sqlite:PATH` or a PATH) or `postgres://USER@HOST/DB`,
    /// as given to `serve --store`.
    #[arg(
        long,
        env = "DRONEHOOK_STORE",
        hide_env_values = true,
        value_name = "STORE"
    )]
    // Parsed here rather than by clap, whose refusal would echo the value (and a
    // password in it).
    pub(crate) store: Option<String>,
}

impl StoreArg {
    /// The store's URL, or a usage error (without the URL's password).
    fn url(&self) -> anyhow::Result<StoreUrl> {
        match self.store.as_deref().map(str::trim) {
            None | Some("") => Err(usage(
                "no store: give --store or set DRONEHOOK_STORE (sqlite:PATH, a PATH, or postgres://...)",
            )),
            Some(text) => text.parse().map_err(|e| usage(format!("--store: {e}"))),
        }
    }

    /// Opens the store: read-only for the commands that only read, so that a store
    /// this user may not write (or a replica) can still be looked into.
    async fn open(&self, write: bool) -> anyhow::Result<Store> {
        let url = self.url()?;
        let opened = if write {
            Store::open(&url).await
        } else {
            Store::open_read_only(&url).await
        };
        // The store's errors are one line and never show a password; a missing store,
        // an unreachable one or a newer schema is a failure (1), not a usage error.
        // Those that do not name the store get its URL (shown without a password).
        opened.map_err(|e| {
            if e.is_not_found() || e.is_schema() {
                anyhow::Error::new(e)
            } else {
                anyhow::anyhow!("cannot open {url}: {e}")
            }
        })
    }
}

/// Runs an `events` subcommand.
pub(crate) fn run(args: EventsArgs) -> anyhow::Result<Outcome> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match args.command {
            EventsCommand::List(a) => list::run(a).await,
            EventsCommand::Show(a) => show::run(a).await,
            EventsCommand::Replay(a) => replay::run(a).await,
            EventsCommand::Redeliver(a) => actions::redeliver(a).await,
            EventsCommand::Prune(a) => actions::prune(a).await,
            EventsCommand::Stats(a) => stats::run(a).await,
            EventsCommand::Erase(a) => actions::erase(a).await,
        }
    })
}

/// Reads an event ID: a whole number above 0 (the first column of `events list`).
fn parse_id(text: &str) -> Result<i64, String> {
    match text.trim().parse::<i64>() {
        Ok(id) if id > 0 => Ok(id),
        _ => Err("an event ID is a whole number above 0 (see `dronehook events list`)".to_owned()),
    }
}

/// A moment as the commands print it: RFC 3339 in UTC, whole seconds.
fn moment(t: SystemTime) -> String {
    humantime::format_rfc3339_seconds(t).to_string()
}

/// A moment in JSON: RFC 3339 in UTC, milliseconds.
fn moment_json(t: SystemTime) -> String {
    humantime::format_rfc3339_millis(t).to_string()
}

/// A duration as the commands print it: `850ms`, `12.3s`, `4m05s`.
fn short(d: Duration) -> String {
    let ms = d.as_millis();
    if ms < 1000 {
        format!("{ms}ms")
    } else if ms < 60_000 {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        let s = d.as_secs();
        format!("{}m{:02}s", s / 60, s % 60)
    }
}

/// An event's name as filters see it: `event:action`, or `event` without an action.
fn filter_name(event: &str, action: &str) -> String {
    dronehook_protocol::filter::filter_name(event, action)
}
