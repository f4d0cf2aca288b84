//! A small receiver with a store, for trying the server by hand and for the crash
//! tests (which need a real process to kill).
//!
//! Usage: `dronehook-receiver-demo ADDR STORE SECRET [HANDLER_LOG]`, where STORE is a
//! journal file or a `postgres://` URL (with the `postgres` feature). It prints
//! `listening on ADDR` once it accepts connections. Each handler run appends
//! `started ID` to HANDLER_LOG (when given) as it starts and the delivery id alone as
//! it ends, so a test can see which runs happened and which were under way.
//! `DEMO_HANDLER_DELAY_MS` slows each run down; `DEMO_LEASE_MS` sets the lease on a
//! handler run in a PostgreSQL store.

use std::io::Write as _;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dronehook_server::{Config, Delivery, Router, Server, StoreUrl, protocol::Policy};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let usage = "usage: dronehook-receiver-demo ADDR STORE SECRET [HANDLER_LOG]";
    let addr = args.next().ok_or(usage)?.parse()?;
    let store: StoreUrl = args.next().ok_or(usage)?.parse()?;
    let secret = args.next().ok_or(usage)?;
    let log = args.next().map(PathBuf::from);
    let delay_ms: u64 = std::env::var("DEMO_HANDLER_DELAY_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);

    let lease_ms: u64 = std::env::var("DEMO_LEASE_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30_000);

    let config = Config::builder(Policy::new(secret))
        .addr(addr)
        .store(store)
        .retry_base(Duration::from_millis(10))
        .lease(Duration::from_millis(lease_ms))
        .build();
    // One file handle behind a lock: each line is written whole, whatever the
    // number of handler runs under way.
    let log = match log {
        Some(path) => Some(Arc::new(Mutex::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)?,
        ))),
        None => None,
    };
    let router = Router::new().route("*,*:*", move |d: Delivery| {
        let log = log.clone();
        async move {
            let id = d.id.unwrap_or(0);
            let append = |line: String| -> std::io::Result<()> {
                match &log {
                    Some(log) => log
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .write_all(line.as_bytes()),
                    None => Ok(()),
                }
            };
            append(format!("started {id}\n"))?;
            tokio::time::sleep(Duration::from_millis(delay_ms)).await;
            append(format!("{id}\n"))
        }
    })?;
    let server = Server::bind(config, router).await?;
    println!("listening on {}", server.local_addr());
    server.run_until_signal().await?;
    Ok(())
}
