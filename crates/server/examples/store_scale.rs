//! How fast `Store::list` answers on a large SQLite journal: builds one (1,000,000
//! events by default, about 500 MB, in a temporary directory) and times a page of
//! each `EventQuery` filter. The numbers in docs/server.md ("Reading the store") come
//! from:
//!
//! ```text
//! cargo run --release -p dronehook-server --example store_scale [EVENTS]
//! ```
//!
//! The journal: 70% build events of 200 repositories (each with a `notify` run: nearly
//! all ok, 1% dead, 0.1% pending), the rest repository and user events, one every
//! 100 ms.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dronehook_server::protocol::EventFilter;
use dronehook_server::{EventQuery, Journal, RunStatus, Store, StoreUrl};

const STATUSES: &[&str] = &["success", "failure", "running", "killed", "error"];
const START_MS: i64 = 1_700_000_000_000;

fn at(id: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis((START_MS + id * 100) as u64)
}

fn build(path: &std::path::Path, n: i64) -> Result<(), Box<dyn std::error::Error>> {
    // The receiver's own code creates the file and its schema.
    Journal::open(path)?;
    let mut c = rusqlite::Connection::open(path)?;
    c.execute_batch("PRAGMA synchronous = OFF")?;
    let tx = c.transaction()?;
    {
        let mut delivery = tx.prepare(
            "INSERT INTO deliveries (id, received_at_ms, digest, event, action, known, repo,
             build, headers, body, build_status, secret_index)
             VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?7, ?8, ?9, ?10, 0)",
        )?;
        let mut run = tx.prepare(
            "INSERT INTO runs (delivery_id, handler, status, attempts, updated_at_ms, next_at_ms)
             VALUES (?1, 'notify', ?2, 1, ?3, ?4)",
        )?;
        let body = vec![b'x'; 300];
        for id in 1..=n {
            let ms = START_MS + id * 100;
            let (event, action) = match id % 20 {
                0..=13 => ("build", if id % 2 == 0 { "updated" } else { "created" }),
                14..=16 => ("repo", "enabled"),
                _ => ("user", "created"),
            };
            let is_build = event == "build";
            let repo = (event != "user").then(|| format!("org{}/repo{}", id % 7, id % 200));
            let status = is_build.then(|| STATUSES[(id / 20 % 5) as usize]);
            let mut digest = [0u8; 32];
            digest[..8].copy_from_slice(&id.to_le_bytes());
            delivery.execute(rusqlite::params![
                id,
                ms,
                &digest[..],
                event,
                action,
                repo,
                is_build.then_some(id),
                &b"x-drone-event: build\r\n"[..],
                &body,
                status,
            ])?;
            if is_build {
                let state = match id % 1000 {
                    7 => "pending",
                    100..=109 => "dead",
                    _ => "ok",
                };
                run.execute(rusqlite::params![
                    id,
                    state,
                    ms,
                    (state == "pending").then_some(ms)
                ])?;
            }
        }
    }
    tx.commit()?;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let n: i64 = match std::env::args().nth(1) {
        Some(arg) => arg
            .parse()
            .map_err(|_| format!("not a number of events: {arg}"))?,
        None => 1_000_000,
    };
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("journal.db");
    let started = Instant::now();
    build(&path, n)?;
    println!("{n} events built in {:.1?}", started.elapsed());
    let store = Store::open_read_only(&StoreUrl::Sqlite(path)).await?;
    let builds = EventFilter::parse("build:*")?;
    let queries = [
        ("no filter", EventQuery::new()),
        ("events build:*", EventQuery::new().events(builds.clone())),
        (
            "events user:*",
            EventQuery::new().events(EventFilter::parse("user:*")?),
        ),
        ("repo = org3/repo13", EventQuery::new().repo("org3/repo13")),
        ("repo org* (broad)", EventQuery::new().repo("org*")),
        ("repo org3/repo19?", EventQuery::new().repo("org3/repo19?")),
        (
            "build_status killed",
            EventQuery::new().build_status("killed"),
        ),
        (
            "run_status dead",
            EventQuery::new().run_status(RunStatus::Dead),
        ),
        (
            "run_status pending",
            EventQuery::new().run_status(RunStatus::Pending),
        ),
        ("since (last 5%)", EventQuery::new().since(at(n - n / 20))),
        ("until (oldest 10%)", EventQuery::new().until(at(n / 10))),
        (
            "since+until (5 min)",
            EventQuery::new().since(at(n / 2)).until(at(n / 2 + 3000)),
        ),
        ("before (deep page)", EventQuery::new().before(n / 3)),
        (
            "all together",
            EventQuery::new()
                .events(builds)
                .repo("org3/*")
                .build_status("failure")
                .run_status(RunStatus::Ok)
                .since(at(n / 4))
                .before(n - 10),
        ),
    ];
    for (name, query) in queries {
        // The first page warms the cache, as a tool's second page finds it.
        store.list(&query).await?;
        let started = Instant::now();
        let page = store.list(&query).await?;
        println!(
            "{name:24} {:>3} events {:>10.2?}",
            page.len(),
            started.elapsed()
        );
    }
    let started = Instant::now();
    let stats = store.stats(None).await?;
    println!(
        "stats ({} events)          {:>10.2?}",
        stats.events,
        started.elapsed()
    );
    let started = Instant::now();
    let board = store.latest_builds(50).await?;
    println!(
        "latest_builds ({})         {:>10.2?}",
        board.len(),
        started.elapsed()
    );
    Ok(())
}
