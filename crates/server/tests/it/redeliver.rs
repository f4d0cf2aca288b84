//! The SQLite dispatcher's store-backed queue, with a real receiver on 127.0.0.1:
//! runs queued by a separate `Store` handle (as the CLI's `events redeliver` does from
//! another process) are run by the receiver within about a second, and a burst
//! larger than the in-memory queue loses nothing.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dronehook_server::{Delivery, EventQuery, Router, RunStatus, Store, StoreUrl};
use http::StatusCode;

use crate::util::{PATIENCE, config, deliver, start, user_event, wait_until};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivery_from_another_handle_is_run_by_the_running_receiver() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let seen: Arc<Mutex<Vec<(i64, u32)>>> = Arc::default();
    let handler = {
        let seen = seen.clone();
        move |d: Delivery| {
            seen.lock().unwrap().push((d.id.unwrap(), d.attempt));
            std::future::ready(Ok::<_, String>(()))
        }
    };
    let server = start(
        config().journal(&path),
        Router::new().route_named("sink", "", handler).unwrap(),
    )
    .await;
    assert_eq!(
        deliver(server.local_addr(), &user_event(1)).await.status,
        StatusCode::NO_CONTENT
    );
    wait_until(|| seen.lock().unwrap().len() == 1).await;
    let id = seen.lock().unwrap()[0].0;

    // The tool's handle: a connection of its own on the same file.
    let store = Store::open(&StoreUrl::Sqlite(path.clone())).await.unwrap();
    let asked = Instant::now();
    assert_eq!(store.redeliver(id, None).await.unwrap(), ["sink"]);
    wait_until(|| seen.lock().unwrap().len() == 2).await;
    let took = asked.elapsed();
    assert!(took < Duration::from_secs(3), "picked up after {took:?}");
    assert_eq!(
        *seen.lock().unwrap(),
        [(id, 1), (id, 2)],
        "attempt numbers go on"
    );
    // The store says so too.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let run = store.get(id).await.unwrap().unwrap().summary.runs[0].clone();
        if run.status == RunStatus::Ok && run.attempts == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "{run:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_larger_than_the_queue_loses_nothing() {
    // One worker: an in-memory queue of four runs. The handlers wait at a gate, so
    // while it is shut the burst's runs can only wait in the journal.
    const N: u64 = 30;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let seen: Arc<Mutex<BTreeMap<(String, i64), u32>>> = Arc::default();
    let (open, gate) = tokio::sync::watch::channel(false);
    let recorder = |name: &'static str| {
        let seen = seen.clone();
        let gate = gate.clone();
        move |d: Delivery| {
            let seen = seen.clone();
            let mut gate = gate.clone();
            async move {
                let _ = gate.wait_for(|open| *open).await;
                *seen
                    .lock()
                    .unwrap()
                    .entry((name.to_owned(), d.id.unwrap()))
                    .or_default() += 1;
                Ok::<_, String>(())
            }
        }
    };
    let server = start(
        config().journal(&path).workers(1),
        Router::new()
            .route_named("a", "", recorder("a"))
            .unwrap()
            .route_named("b", "user:*", recorder("b"))
            .unwrap(),
    )
    .await;
    let addr = server.local_addr();
    let sends: Vec<_> = (0..N)
        .map(|n| tokio::spawn(async move { deliver(addr, &user_event(n)).await.status }))
        .collect();
    for send in sends {
        assert_eq!(
            send.await.unwrap(),
            StatusCode::NO_CONTENT,
            "every one acknowledged"
        );
    }
    // With the gate shut: one run held by the worker, at most four queued, the rest
    // waiting in the journal with a due time.
    let store = Store::open(&StoreUrl::Sqlite(path.clone())).await.unwrap();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let runs: Vec<_> = store
        .list(&EventQuery::new().limit(1000))
        .await
        .unwrap()
        .into_iter()
        .flat_map(|e| e.runs)
        .collect();
    assert_eq!(runs.len(), 2 * N as usize);
    assert!(runs.iter().all(|r| r.status == RunStatus::Pending));
    let held = runs.iter().filter(|r| r.next_at.is_none()).count();
    assert!((1..=5).contains(&held), "{held} runs held in memory");

    open.send_replace(true);
    wait_until(|| seen.lock().unwrap().len() == 2 * N as usize).await;
    let deadline = Instant::now() + PATIENCE;
    while !store
        .list(&EventQuery::new().run_status(RunStatus::Pending))
        .await
        .unwrap()
        .is_empty()
    {
        assert!(Instant::now() < deadline, "runs left pending");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.shutdown().await.unwrap();
    // Every run once: none dropped by the full queue, none run twice by the poller.
    let seen = seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2 * N as usize);
    assert!(seen.values().all(|&n| n == 1), "{seen:?}");
    let stats = store.stats(None).await.unwrap();
    assert_eq!(stats.events, N);
    assert_eq!(stats.by_run_status, [(RunStatus::Ok, 2 * N)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_keeps_the_last_64_kib_of_its_output() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    // 100,000 bytes: a counter's digits, so which end was kept shows.
    let output: Vec<u8> = (0..100_000u32).map(|i| b'0' + (i % 10) as u8).collect();
    let handler = {
        let output = output.clone();
        move |d: Delivery| {
            d.set_output(b"replaced".to_vec());
            d.set_output(output.clone());
            std::future::ready(Err::<(), _>("exit status 3"))
        }
    };
    let server = start(
        config().journal(&path).max_attempts(1),
        Router::new().route_named("exec", "", handler).unwrap(),
    )
    .await;
    assert_eq!(
        deliver(server.local_addr(), &user_event(1)).await.status,
        StatusCode::NO_CONTENT
    );
    let store = Store::open(&StoreUrl::Sqlite(path.clone())).await.unwrap();
    let deadline = Instant::now() + PATIENCE;
    let run = loop {
        let events = store
            .list(&EventQuery::new().run_status(RunStatus::Dead))
            .await
            .unwrap();
        if let Some(event) = events.first() {
            assert!(event.runs[0].output.is_none(), "lists leave the output out");
            break store.get(event.id).await.unwrap().unwrap().summary.runs[0].clone();
        }
        assert!(Instant::now() < deadline, "the run never ended");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(run.last_error.as_deref(), Some("exit status 3"));
    let kept = run.output.unwrap();
    assert_eq!(kept.len(), dronehook_server::MAX_RUN_OUTPUT);
    assert_eq!(
        kept[..],
        output[output.len() - dronehook_server::MAX_RUN_OUTPUT..]
    );
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_replay_without_a_store_says_it_is_a_duplicate() {
    let server = start(config(), Router::new()).await;
    let first = deliver(server.local_addr(), &user_event(9)).await;
    assert_eq!(first.status, StatusCode::NO_CONTENT);
    assert!(
        first
            .headers
            .get(dronehook_server::protocol::DUPLICATE_HEADER)
            .is_none()
    );
    let again = deliver(server.local_addr(), &user_event(9)).await;
    assert_eq!(again.status, StatusCode::NO_CONTENT);
    assert_eq!(again.headers.get("Dronehook-Duplicate").unwrap(), "true");
    server.shutdown().await.unwrap();
}

/// The receiver in a process of its own (the demo binary), the redelivery from this
/// one: what `dronehook events redeliver` does beside a running `dronehook serve`.
async fn a_redelivery_reaches_a_receiver_process(url: StoreUrl) {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("handled.log");
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_dronehook-receiver-demo"));
    command
        .args([
            "127.0.0.1:0",
            &url_arg(&url),
            crate::util::SECRET,
            log.to_str().unwrap(),
        ])
        .kill_on_drop(true);
    let (mut child, addr) = crate::util::spawn_listening(command).await;
    // The ids of finished runs (the demo may log other lines too).
    let lines = || -> Vec<String> {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.parse::<i64>().is_ok())
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(
        deliver(addr, &user_event(1)).await.status,
        StatusCode::NO_CONTENT
    );
    wait_until(|| lines().len() == 1).await;
    let id: i64 = lines()[0].parse().unwrap();

    let store = Store::open(&url).await.unwrap();
    let asked = Instant::now();
    assert_eq!(store.redeliver(id, None).await.unwrap(), ["*,*:*"]);
    wait_until(|| lines().len() == 2).await;
    let took = asked.elapsed();
    assert_eq!(lines(), [id.to_string(), id.to_string()]);
    assert!(took < Duration::from_secs(3), "picked up after {took:?}");
    child.kill().await.unwrap();
}

fn url_arg(url: &StoreUrl) -> String {
    match url {
        StoreUrl::Sqlite(path) => path.display().to_string(),
        StoreUrl::Postgres(url) => url.clone(),
        other => panic!("{other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivery_reaches_a_receiver_process_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    a_redelivery_reaches_a_receiver_process(StoreUrl::Sqlite(dir.path().join("journal.db"))).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivery_reaches_a_receiver_process_postgres() {
    let db = dronehook_testkit::database().await;
    a_redelivery_reaches_a_receiver_process(StoreUrl::Postgres(db.url().to_owned())).await;
}

/// A handler that waits at a gate, counting attempts started, ended, and the most
/// running at once.
#[derive(Clone, Default)]
struct Gated {
    started: Arc<Mutex<Vec<(i64, u32)>>>,
    ended: Arc<Mutex<usize>>,
    running: Arc<Mutex<(usize, usize)>>,
}

impl Gated {
    fn handler(
        &self,
        gate: tokio::sync::watch::Receiver<bool>,
    ) -> impl Fn(Delivery) -> std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send>>
    + Send
    + Sync
    + 'static {
        let this = self.clone();
        move |d: Delivery| {
            let this = this.clone();
            let mut gate = gate.clone();
            Box::pin(async move {
                this.started
                    .lock()
                    .unwrap()
                    .push((d.id.unwrap(), d.attempt));
                {
                    let mut r = this.running.lock().unwrap();
                    r.0 += 1;
                    r.1 = r.1.max(r.0);
                }
                d.set_output(b"kept unless erased".to_vec());
                let _ = gate.wait_for(|open| *open).await;
                this.running.lock().unwrap().0 -= 1;
                *this.ended.lock().unwrap() += 1;
                Ok(())
            })
        }
    }
}

async fn run_of(store: &Store, id: i64) -> dronehook_server::HandlerRun {
    store.get(id).await.unwrap().unwrap().summary.runs[0].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivery_of_a_running_run_waits_for_its_attempt_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let gated = Gated::default();
    let (open, gate) = tokio::sync::watch::channel(false);
    let server = start(
        config().journal(&path),
        Router::new()
            .route_named("sink", "", gated.handler(gate))
            .unwrap(),
    )
    .await;
    assert_eq!(
        deliver(server.local_addr(), &user_event(1)).await.status,
        StatusCode::NO_CONTENT
    );
    wait_until(|| gated.started.lock().unwrap().len() == 1).await;
    let id = gated.started.lock().unwrap()[0].0;
    let store = Store::open(&StoreUrl::Sqlite(path.clone())).await.unwrap();
    assert_eq!(store.redeliver(id, None).await.unwrap(), ["sink"]);

    // Longer than the poller's period: the run is flagged, still held, not due.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(gated.started.lock().unwrap().len(), 1, "not started twice");
    let run = run_of(&store, id).await;
    assert_eq!(run.status, RunStatus::Pending);
    assert_eq!(run.next_at, None, "held, not due: {run:?}");

    // Its attempt ends; the run is due again and runs once more, alone.
    open.send_replace(true);
    wait_until(|| *gated.ended.lock().unwrap() == 2).await;
    assert_eq!(*gated.started.lock().unwrap(), [(id, 1), (id, 2)]);
    assert_eq!(gated.running.lock().unwrap().1, 1, "never two at once");
    let deadline = Instant::now() + PATIENCE;
    loop {
        let run = run_of(&store, id).await;
        if run.status == RunStatus::Ok && run.attempts == 2 {
            break;
        }
        assert!(Instant::now() < deadline, "{run:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    server.shutdown().await.unwrap();
    assert_eq!(gated.started.lock().unwrap().len(), 2, "no third attempt");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_ending_after_its_event_was_erased_keeps_no_output() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let gated = Gated::default();
    let (open, gate) = tokio::sync::watch::channel(false);
    let server = start(
        config().journal(&path),
        Router::new()
            .route_named("exec", "", gated.handler(gate))
            .unwrap(),
    )
    .await;
    assert_eq!(
        deliver(server.local_addr(), &user_event(1)).await.status,
        StatusCode::NO_CONTENT
    );
    wait_until(|| gated.started.lock().unwrap().len() == 1).await;
    let id = gated.started.lock().unwrap()[0].0;
    let store = Store::open(&StoreUrl::Sqlite(path.clone())).await.unwrap();
    assert!(store.erase(id).await.unwrap());
    open.send_replace(true);
    let deadline = Instant::now() + PATIENCE;
    let run = loop {
        let run = run_of(&store, id).await;
        if run.status != RunStatus::Pending {
            break run;
        }
        assert!(Instant::now() < deadline, "{run:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(run.status, RunStatus::Ok);
    assert_eq!(run.output, None, "the erased event's output stays erased");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_outcome_whose_commit_failed_is_written_once_the_journal_can() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let gated = Gated::default();
    let (open, gate) = tokio::sync::watch::channel(false);
    let server = start(
        config().journal(&path),
        Router::new()
            .route_named("sink", "", gated.handler(gate))
            .unwrap(),
    )
    .await;
    let addr = server.local_addr();
    assert_eq!(
        deliver(addr, &user_event(1)).await.status,
        StatusCode::NO_CONTENT
    );
    wait_until(|| gated.started.lock().unwrap().len() == 1).await;
    let id = gated.started.lock().unwrap()[0].0;

    // The fault: a trigger (made by another connection on the same file) aborts
    // every update of a run's attempts, so the commit with the outcome fails.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "CREATE TRIGGER no_attempts BEFORE UPDATE OF attempts ON runs
         BEGIN SELECT RAISE(ABORT, 'injected'); END;",
    )
    .unwrap();
    open.send_replace(true);
    let deadline = Instant::now() + PATIENCE;
    loop {
        let health = crate::util::request(addr, "GET", "/healthz", &[], Vec::new()).await;
        if health.status == StatusCode::SERVICE_UNAVAILABLE {
            break;
        }
        assert!(Instant::now() < deadline, "the commit never failed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let store = Store::open(&StoreUrl::Sqlite(path.clone())).await.unwrap();
    let run = run_of(&store, id).await;
    assert_eq!((run.status, run.attempts), (RunStatus::Pending, 0));

    // The fault goes; with no other request, the outcome is written by itself.
    conn.execute_batch("DROP TRIGGER no_attempts").unwrap();
    let deadline = Instant::now() + PATIENCE;
    loop {
        let run = run_of(&store, id).await;
        if run.status == RunStatus::Ok && run.attempts == 1 {
            break;
        }
        assert!(Instant::now() < deadline, "the outcome was lost: {run:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.shutdown().await.unwrap();
    assert_eq!(gated.started.lock().unwrap().len(), 1, "run once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claimed_run_whose_delivery_cannot_be_read_is_released_not_held() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let seen: Arc<Mutex<Vec<(i64, u32)>>> = Arc::default();
    let handler = {
        let seen = seen.clone();
        move |d: Delivery| {
            seen.lock().unwrap().push((d.id.unwrap(), d.attempt));
            std::future::ready(Ok::<_, String>(()))
        }
    };
    let server = start(
        config().journal(&path),
        Router::new().route_named("sink", "", handler).unwrap(),
    )
    .await;
    assert_eq!(
        deliver(server.local_addr(), &user_event(1)).await.status,
        StatusCode::NO_CONTENT
    );
    wait_until(|| seen.lock().unwrap().len() == 1).await;
    let id = seen.lock().unwrap()[0].0;
    let store = Store::open(&StoreUrl::Sqlite(path.clone())).await.unwrap();
    wait_until_done(&store, id, 1).await;

    // The fault, in one transaction: the run is due again, and the deliveries table
    // is renamed, so the poller claims the run and then fails to read its delivery.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "BEGIN IMMEDIATE;
         UPDATE runs SET status = 'pending', next_at_ms = 0, attempts_base = attempts;
         ALTER TABLE deliveries RENAME TO deliveries_away;
         COMMIT;",
    )
    .unwrap();
    // Several polls fail: the run is given back each time, never held.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (status, next_at): (String, Option<i64>) = conn
        .query_row(
            "SELECT status, next_at_ms FROM runs WHERE delivery_id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(status, "pending");
    assert!(next_at.is_some(), "the claimed run is held until a restart");

    // The table comes back: the run is run.
    conn.execute_batch("ALTER TABLE deliveries_away RENAME TO deliveries")
        .unwrap();
    wait_until(|| seen.lock().unwrap().len() == 2).await;
    wait_until_done(&store, id, 2).await;
    server.shutdown().await.unwrap();
}

async fn wait_until_done(store: &Store, id: i64, attempts: u32) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let run = run_of(store, id).await;
        if run.status == RunStatus::Ok && run.attempts == attempts {
            return;
        }
        assert!(Instant::now() < deadline, "{run:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivery_to_a_handler_the_receiver_lacks_is_dead_with_why() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let calls = Arc::new(Mutex::new(0));
    let handler = {
        let calls = calls.clone();
        move |_: Delivery| {
            *calls.lock().unwrap() += 1;
            std::future::ready(Ok::<_, String>(()))
        }
    };
    let server = start(
        config().journal(&path),
        Router::new().route_named("sink", "", handler).unwrap(),
    )
    .await;
    assert_eq!(
        deliver(server.local_addr(), &user_event(1)).await.status,
        StatusCode::NO_CONTENT
    );
    let store = Store::open(&StoreUrl::Sqlite(path.clone())).await.unwrap();
    let id = loop {
        if let Some(e) = store.list(&EventQuery::new()).await.unwrap().first() {
            break e.id;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    wait_until_done(&store, id, 1).await;
    assert_eq!(store.redeliver(id, Some("snik")).await.unwrap(), ["snik"]);
    let deadline = Instant::now() + PATIENCE;
    let run = loop {
        let event = store.get(id).await.unwrap().unwrap();
        let run = event
            .summary
            .runs
            .iter()
            .find(|r| r.handler == "snik")
            .cloned();
        if let Some(run) = run.filter(|r| r.status != RunStatus::Pending) {
            break run;
        }
        assert!(Instant::now() < deadline, "{:?}", event.summary.runs);
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(run.status, RunStatus::Dead);
    assert_eq!(
        run.last_error.as_deref(),
        Some("no handler snik on this receiver")
    );
    assert_eq!(run.attempts, 0);
    assert_eq!(*calls.lock().unwrap(), 1, "sink was not run for it");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_dropped_during_its_commit_still_runs_its_handler() {
    use tokio::io::AsyncWriteExt as _;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let seen: Arc<Mutex<Vec<i64>>> = Arc::default();
    let handler = {
        let seen = seen.clone();
        move |d: Delivery| {
            seen.lock().unwrap().push(d.id.unwrap());
            std::future::ready(Ok::<_, String>(()))
        }
    };
    let server = start(
        config().journal(&path),
        Router::new().route_named("sink", "", handler).unwrap(),
    )
    .await;
    // Another connection holds the write lock: the receiver's commit waits for it.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch("BEGIN IMMEDIATE").unwrap();
    let body = user_event(1);
    let mut request = crate::util::signed_head(&body, &[]).into_bytes();
    request.extend_from_slice(&body);
    let mut stream = tokio::net::TcpStream::connect(server.local_addr())
        .await
        .unwrap();
    stream.write_all(&request).await.unwrap();
    // The client hangs up while the commit waits: the request's future is dropped.
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(stream);
    tokio::time::sleep(Duration::from_millis(300)).await;
    conn.execute_batch("COMMIT").unwrap();

    // Committed, so acknowledged as far as the journal knows: its run must run.
    let store = Store::open(&StoreUrl::Sqlite(path.clone())).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let id = loop {
        if let Some(e) = store.list(&EventQuery::new()).await.unwrap().first() {
            break e.id;
        }
        assert!(Instant::now() < deadline, "never committed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    wait_until_done(&store, id, 1).await;
    assert_eq!(*seen.lock().unwrap(), [id]);
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_erased_payload_is_in_neither_the_journal_nor_its_wal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let seen: Arc<Mutex<Vec<i64>>> = Arc::default();
    let handler = {
        let seen = seen.clone();
        move |d: Delivery| {
            seen.lock().unwrap().push(d.id.unwrap());
            std::future::ready(Ok::<_, String>(()))
        }
    };
    let server = start(
        config().journal(&path),
        Router::new().route_named("sink", "", handler).unwrap(),
    )
    .await;
    assert_eq!(
        deliver(server.local_addr(), &user_event(424_242))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    wait_until(|| seen.lock().unwrap().len() == 1).await;
    let id = seen.lock().unwrap()[0];
    let store = Store::open(&StoreUrl::Sqlite(path.clone())).await.unwrap();
    wait_until_done(&store, id, 1).await;
    let marker = b"u424242@example.com";
    let holds = |file: &std::path::Path| {
        std::fs::read(file)
            .unwrap_or_default()
            .windows(marker.len())
            .any(|w| w == marker)
    };
    let wal = dir.path().join("journal.db-wal");
    assert!(holds(&path) || holds(&wal), "the payload was stored");

    // With the receiver still running (its connections open), the erase empties
    // the WAL: no copy of the payload is left in either file.
    assert!(store.erase(id).await.unwrap());
    assert!(!holds(&path), "the database file keeps the payload");
    assert!(!holds(&wal), "the WAL keeps the payload");
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_due_run_of_an_event_marked_erased_is_dead_not_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let seen: Arc<Mutex<Vec<i64>>> = Arc::default();
    let handler = {
        let seen = seen.clone();
        move |d: Delivery| {
            seen.lock().unwrap().push(d.id.unwrap());
            std::future::ready(Ok::<_, String>(()))
        }
    };
    let server = start(
        config().journal(&path),
        Router::new().route_named("sink", "", handler).unwrap(),
    )
    .await;
    assert_eq!(
        deliver(server.local_addr(), &user_event(1)).await.status,
        StatusCode::NO_CONTENT
    );
    wait_until(|| seen.lock().unwrap().len() == 1).await;
    let id = seen.lock().unwrap()[0];
    let store = Store::open(&StoreUrl::Sqlite(path.clone())).await.unwrap();
    wait_until_done(&store, id, 1).await;
    // The erased column decides, not the body's length: marked erased with its body
    // still there, and due again, the run is dead without running.
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute_batch(
        "BEGIN IMMEDIATE;
         UPDATE deliveries SET erased = 1;
         UPDATE runs SET status = 'pending', next_at_ms = 0, attempts_base = attempts;
         COMMIT;",
    )
    .unwrap();
    let deadline = Instant::now() + PATIENCE;
    let run = loop {
        let run = run_of(&store, id).await;
        if run.status != RunStatus::Pending {
            break run;
        }
        assert!(Instant::now() < deadline, "{run:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(run.status, RunStatus::Dead);
    assert_eq!(
        run.last_error.as_deref(),
        Some("the stored delivery cannot be run: the delivery was erased")
    );
    assert_eq!(seen.lock().unwrap().len(), 1, "not run again");
    server.shutdown().await.unwrap();
}
