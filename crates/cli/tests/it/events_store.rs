//! A small store with known content, for the `events` snapshots (`tests/cmd/events*.md`).
//!
//! The store is built the way a receiver builds it: an in-process `dronehook_server`
//! with a SQLite store receives signed requests over 127.0.0.1 and runs two handlers
//! (`exec`, which fails on `user:*` events, and `notify`). What would differ from run
//! to run is then pinned with SQL: each request is signed with a fixed `Date` (the
//! receiver is given a skew window wide enough to take it) and sent with a fixed
//! `Host`, and afterwards the receive times, run durations and run times are set to
//! fixed values and one run is put back to `pending`. Everything else (ids, digests,
//! headers, bodies, run states, attempts, errors, output) is what the receiver wrote.
//!
//! The events, oldest first (ids 1 to 6, received a minute apart from
//! 2026-01-01T10:00:00Z):
//! 1 `build:created`  octocat/hello-world #42 pending   exec ok, notify ok
//! 2 `build:updated`  octocat/hello-world #42 success   exec ok, notify ok
//! 3 `build:updated`  octocat/hello-world #43 failure   exec ok, notify pending
//! 4 `user:deleted`                                     exec dead (exit status 3), notify ok
//! 5 `repo:enabled`   octocat/hello-world               exec ok, notify ok
//! 6 `user:created`                                     exec dead, notify ok

use std::fmt::Write as _;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::time::{Duration, UNIX_EPOCH};

use dronehook_protocol::{Policy, SignInput, Signer};
use dronehook_server::{Config, Delivery, HandlerError, Router, Server, StoreUrl};

/// The secret the requests are signed with.
pub(crate) const SECRET: &str = "fixture-secret";
/// When the first event was received (2026-01-01T10:00:00Z), in milliseconds.
pub(crate) const FIRST_MS: i64 = 1_767_261_600_000;

/// The samples sent, in order (their ids are 1, 2, ...).
const SAMPLES: [&str; 6] = [
    "build_created",
    "build_finished",
    "build_failed",
    "user_deleted",
    "repo_enabled",
    "user_created",
];

/// Builds the store at `path` (a new SQLite file).
pub(crate) fn build(path: &Path) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(receive_all(path));
    drop(runtime);
    pin_times(path);
}

async fn receive_all(path: &Path) {
    let exec = |d: Delivery| {
        let user = d.envelope.event.as_str() == "user";
        d.set_output(if user {
            "removing the account's data\nerror: the directory service refused\n"
        } else {
            "deployed octocat/hello-world\n"
        });
        std::future::ready(if user {
            Err(HandlerError::new("--exec exited with status 3"))
        } else {
            Ok(())
        })
    };
    let notify = |_d: Delivery| std::future::ready(Ok::<(), HandlerError>(()));
    let router = Router::new()
        .unknown_events(true)
        .route_named("exec", "", exec)
        .unwrap()
        .route_named("notify", "", notify)
        .unwrap();
    // Ten years of skew, so that the fixed Date of 2026-01-01 is taken.
    let policy = Policy::new(SECRET).max_skew(Duration::from_secs(10 * 365 * 86_400));
    let config = Config::builder(policy)
        .addr("127.0.0.1:0".parse().unwrap())
        .replay_capacity(1000)
        .store(StoreUrl::Sqlite(path.to_owned()))
        .max_attempts(1)
        .build();
    let server = Server::bind(config, router).await.unwrap();
    let addr = server.local_addr();
    for (i, name) in SAMPLES.iter().enumerate() {
        let sample = dronehook_protocol::samples::get(name).unwrap();
        let date = UNIX_EPOCH + Duration::from_millis((FIRST_MS + i as i64 * 60_000) as u64);
        let signed = Signer::new(SECRET)
            .sign(&SignInput::new(&sample.body, date))
            .unwrap();
        let mut request = format!(
            "POST / HTTP/1.1\r\nHost: receiver.example\r\nUser-Agent: Go-http-client/1.1\r\nContent-Length: {}\r\n",
            sample.body.len()
        );
        for (name, value) in signed.headers(sample.header_event) {
            let _ = write!(request, "{name}: {value}\r\n");
        }
        request.push_str("Connection: close\r\n\r\n");
        let body = sample.body.clone();
        let answer = tokio::task::spawn_blocking(move || {
            let mut stream = TcpStream::connect(addr).unwrap();
            stream.write_all(request.as_bytes()).unwrap();
            stream.write_all(&body).unwrap();
            let mut answer = String::new();
            let _ = stream.read_to_string(&mut answer);
            answer
        })
        .await
        .unwrap();
        assert!(answer.starts_with("HTTP/1.1 204"), "{name}: {answer}");
    }
    // Every run finishes (one attempt each), then the store is closed.
    let store = dronehook_server::Store::open(&StoreUrl::Sqlite(path.to_owned()))
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let query =
            dronehook_server::EventQuery::new().run_status(dronehook_server::RunStatus::Pending);
        let pending = store.list(&query).await.unwrap();
        let all = store
            .list(&dronehook_server::EventQuery::new())
            .await
            .unwrap();
        let runs: usize = all.iter().map(|e| e.runs.len()).sum();
        if pending.is_empty() && runs == 2 * SAMPLES.len() {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "runs did not finish");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(store);
    server.shutdown().await.unwrap();
}

/// Sets what depends on the clock to fixed values.
fn pin_times(path: &Path) {
    let db = rusqlite::Connection::open(path).unwrap();
    db.execute_batch(&format!(
        "UPDATE deliveries SET received_at_ms = {FIRST_MS} + (id - 1) * 60000;
         UPDATE runs SET
             duration_ms = CASE handler WHEN 'exec' THEN 1250 ELSE 3 END,
             updated_at_ms = {FIRST_MS} + (delivery_id - 1) * 60000 + 2000,
             next_at_ms = NULL;
         UPDATE runs SET status = 'pending', attempts = 0, last_error = NULL,
             duration_ms = NULL, output = NULL,
             next_at_ms = {FIRST_MS} + 2 * 60000 + 5000
             WHERE delivery_id = 3 AND handler = 'notify';
         PRAGMA wal_checkpoint(TRUNCATE);"
    ))
    .unwrap();
}
