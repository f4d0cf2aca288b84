//! `dronehook events replay`: stored events sent again through dronehook-client, the
//! exact body bytes signed now (a fresh `Date`), as Drone would sign them.

use std::time::SystemTime;

use clap::Args;
use dronehook_client::Payload;
use dronehook_server::Store;

use super::StoreArg;
use super::query::{DEFAULT_LIMIT, MAX_LIMIT, QueryArgs};
use super::show::fetch;
use crate::args::DeliveryArgs;
use crate::cmd::send;
use crate::output;
use crate::{Outcome, usage};

/// How many deliveries may be in flight per endpoint.
const CONCURRENCY: usize = 8;
/// From this many events on, a progress bar shows on a terminal.
const BAR_FROM: usize = 4;

#[derive(Args, Debug)]
pub(crate) struct ReplayArgs {
    #[command(flatten)]
    pub(crate) store: StoreArg,
    /// The events' IDs.
    #[arg(value_name = "ID", value_parser = super::parse_id, required_unless_present = "filter")]
    pub(crate) ids: Vec<i64>,
    /// Select the events instead (or as well): `key=value` terms, space-separated, with
    /// the keys of `list`'s filters: `event=build:* repo=octocat/* status=failure
    /// state=dead since=1h until=2026-01-01T00:00:00Z`. Newest first.
    #[arg(long, value_name = "FILTER")]
    pub(crate) filter: Option<String>,
    /// With --filter, how many events at most (1 to 10000).
    #[arg(long, default_value_t = DEFAULT_LIMIT, value_parser = parse_limit, value_name = "N")]
    pub(crate) limit: usize,
    #[command(flatten)]
    pub(crate) delivery: DeliveryArgs,
    /// Print the results as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

fn parse_limit(text: &str) -> Result<usize, String> {
    match text.trim().parse::<usize>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(format!("a number from 1 to {MAX_LIMIT}")),
    }
}

pub(crate) async fn run(args: ReplayArgs) -> anyhow::Result<Outcome> {
    // Everything the command line decides is checked before the store is opened.
    let builder = send::client_builder(&args.delivery)?;
    let filter = match &args.filter {
        Some(text) => Some(QueryArgs::parse_filter(text)?.query(SystemTime::now())?),
        None => None,
    };
    let client = builder.build().map_err(|e| usage(e.to_string()))?;

    let store = args.store.open(false).await?;
    let mut chosen = Vec::new();
    // Named events must all be there and have their bytes; nothing is sent otherwise.
    for &id in &args.ids {
        let event = fetch(&store, id).await?;
        if event.summary.erased {
            anyhow::bail!("event {id} was erased: there is no body to replay");
        }
        chosen.push(event);
    }
    if let Some(query) = filter {
        let found = select(&store, query, args.limit).await?;
        if found.is_empty() && chosen.is_empty() {
            anyhow::bail!("no event matches --filter");
        }
        for event in found {
            if chosen.iter().any(|c| c.summary.id == event.summary.id) {
                continue;
            }
            if event.summary.erased {
                output::err_line(&format!("event {}: erased, not replayed", event.summary.id));
                continue;
            }
            chosen.push(event);
        }
    }

    let labels: Vec<String> = chosen
        .iter()
        .map(|e| format!("event {}", e.summary.id))
        .collect();
    let payloads: Vec<Payload> = chosen
        .into_iter()
        .map(|e| Payload::captured(e.body, e.summary.event))
        .collect();
    let bar = send::progress_bar(payloads.len(), BAR_FROM);
    let bulk = client
        .send_all(payloads, CONCURRENCY, |p| {
            if let Some(bar) = &bar {
                bar.set_position(p.completed as u64);
            }
        })
        .await;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if args.json {
        output::out_line(&serde_json::to_string_pretty(&send::as_json(
            &labels, &bulk,
        ))?)?;
    } else {
        send::print_results(&labels, &bulk, "the filter")?;
    }
    Ok(if bulk.is_success() {
        Outcome::Ok
    } else {
        Outcome::Failed
    })
}

/// The events a query selects, newest first, with their bodies; at most `limit`.
async fn select(
    store: &Store,
    query: dronehook_server::EventQuery,
    limit: usize,
) -> anyhow::Result<Vec<dronehook_server::StoredEvent>> {
    let summaries = store.list(&query.limit(limit)).await?;
    let mut events = Vec::with_capacity(summaries.len());
    for summary in summaries {
        // An event pruned between the listing and now is simply no longer there.
        if let Some(event) = store.get(summary.id).await? {
            events.push(event);
        }
    }
    Ok(events)
}
