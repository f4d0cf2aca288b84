//! Receivers sharing a PostgreSQL store, as real processes (the demo receiver) over
//! real sockets: each event handled once across receivers and replays, a receiver
//! killed under load, and the database stopped and started again under load.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dronehook_server::protocol::BodyDigest;
use dronehook_testkit::{Cluster, TestDatabase, database};
use http::StatusCode;
use tokio::process::{Child, Command};

use crate::util::{SECRET, deliver, request, user_event};

/// Long enough for a loaded 2-core machine; only a failure waits this long.
const PATIENCE: Duration = Duration::from_secs(120);

async fn spawn_demo(url: &str, log: &Path, delay_ms: u32, lease_ms: u32) -> (Child, SocketAddr) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dronehook-receiver-demo"));
    command
        .args(["127.0.0.1:0", url, SECRET, log.to_str().unwrap()])
        .env("DEMO_HANDLER_DELAY_MS", delay_ms.to_string())
        .env("DEMO_LEASE_MS", lease_ms.to_string());
    crate::util::spawn_listening(command).await
}

async fn sql(url: &str) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client
}

async fn count(client: &tokio_postgres::Client, query: &str) -> i64 {
    client.query_one(query, &[]).await.unwrap().get(0)
}

/// Waits (up to [`PATIENCE`]) until `query` counts `expected` rows.
async fn wait_for_count(client: &tokio_postgres::Client, query: &str, expected: i64) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let n = count(client, query).await;
        if n == expected {
            return;
        }
        if Instant::now() >= deadline {
            let left: Vec<String> = client
                .query(
                    "SELECT format('%s %s %s %s %s %s %s', delivery_id, status, attempts, last_error, lease_owner, lease_until, next_at) FROM dronehook_runs WHERE status <> 'ok'",
                    &[],
                )
                .await
                .unwrap()
                .iter()
                .map(|r| r.get(0))
                .collect();
            panic!("{query}: {n}, not {expected}; not ok: {left:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// How often each delivery id appears in the handler logs.
fn handled(logs: &[&Path]) -> BTreeMap<i64, usize> {
    let mut out = BTreeMap::new();
    for log in logs {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        // A process killed mid-write may leave half a line: only whole lines count.
        for line in text.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
            if let Ok(id) = line.trim().parse::<i64>() {
                *out.entry(id).or_insert(0) += 1;
            }
        }
    }
    out
}

async fn metric(addr: SocketAddr, code: &str) -> u64 {
    let text = request(addr, "GET", "/metrics", &[], Vec::new()).await.body;
    let key = format!("requests_total{{code=\"{code}\"}}");
    text.lines()
        .find(|l| l.contains(&key))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// A signed POST that may find no receiver, or lose it mid-way: `None` then.
async fn try_deliver(addr: SocketAddr, body: &[u8]) -> Option<StatusCode> {
    use http_body_util::BodyExt as _;
    let stream = tokio::net::TcpStream::connect(addr).await.ok()?;
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .ok()?;
    tokio::spawn(conn);
    let mut req = http::Request::post("/").header("host", addr.to_string());
    for (name, value) in crate::util::signed(body) {
        req = req.header(name, value);
    }
    let req = req
        .body(http_body_util::Full::new(bytes::Bytes::copy_from_slice(
            body,
        )))
        .ok()?;
    let resp = tokio::time::timeout(PATIENCE, sender.send_request(req))
        .await
        .ok()?
        .ok()?;
    let status = resp.status();
    resp.into_body().collect().await.ok()?;
    Some(status)
}

/// An answer during the outage test: the body's digest, status, body, whether it had
/// `Retry-After`, when the request was sent and when the answer came.
type Answered = (BodyDigest, StatusCode, String, bool, Instant, Instant);

async fn stored_digests(client: &tokio_postgres::Client) -> BTreeSet<Vec<u8>> {
    client
        .query("SELECT digest FROM dronehook_deliveries", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, Vec<u8>>(0))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_receivers_handle_each_event_once_and_answer_every_replay() {
    const EVENTS: u64 = 1_000;
    const CLIENTS: u64 = 8;
    let db = database().await;
    let dir = tempfile::tempdir().unwrap();
    let (log_a, log_b) = (dir.path().join("a.log"), dir.path().join("b.log"));
    let (_a, addr_a) = spawn_demo(db.url(), &log_a, 0, 30_000).await;
    let (_b, addr_b) = spawn_demo(db.url(), &log_b, 0, 30_000).await;
    let addrs = [addr_a, addr_b];

    // Each event goes to one receiver, round-robin, then its copy to the other.
    let clients: Vec<_> = (0..CLIENTS)
        .map(|first| {
            tokio::spawn(async move {
                let mut n = first;
                while n < EVENTS {
                    let body = user_event(n);
                    let i = (n % 2) as usize;
                    let sent = deliver(addrs[i], &body).await;
                    assert_eq!(sent.status, StatusCode::NO_CONTENT, "{sent:?}");
                    let replayed = deliver(addrs[1 - i], &body).await;
                    assert_eq!(replayed.status, StatusCode::NO_CONTENT, "{replayed:?}");
                    n += CLIENTS;
                }
            })
        })
        .collect();
    for client in clients {
        client.await.unwrap();
    }

    // Every copy sent second was answered as a replay, by whichever receiver got it.
    let replays = metric(addr_a, "replay").await + metric(addr_b, "replay").await;
    let new = metric(addr_a, "ok").await + metric(addr_b, "ok").await;
    assert_eq!((new, replays), (EVENTS, EVENTS));

    let client = sql(db.url()).await;
    wait_for_count(
        &client,
        "SELECT count(*) FROM dronehook_runs WHERE status = 'ok'",
        EVENTS as i64,
    )
    .await;
    assert_eq!(
        count(&client, "SELECT count(*) FROM dronehook_deliveries").await,
        EVENTS as i64
    );
    let handled = handled(&[&log_a, &log_b]);
    assert_eq!(handled.len(), EVENTS as usize);
    let twice: Vec<_> = handled.iter().filter(|(_, n)| **n != 1).collect();
    assert!(twice.is_empty(), "handled more than once: {twice:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_killed_under_load_loses_nothing_and_the_survivor_runs_its_handlers() {
    const EVENTS: u64 = 400;
    const CLIENTS: u64 = 8;
    let db = database().await;
    let dir = tempfile::tempdir().unwrap();
    let (log_a, log_b) = (dir.path().join("a.log"), dir.path().join("b.log"));
    // Slow handlers and a short lease: the doomed receiver holds leases when it dies.
    let (mut a, addr_a) = spawn_demo(db.url(), &log_a, 300, 1_000).await;
    let (_b, addr_b) = spawn_demo(db.url(), &log_b, 20, 1_000).await;
    let pid_a = a.id().unwrap();
    let addrs = [addr_a, addr_b];

    let acked = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|first| {
            let acked = acked.clone();
            tokio::spawn(async move {
                let mut n = first;
                while n < EVENTS {
                    let body = user_event(n);
                    let addr = addrs[(n % 2) as usize];
                    // A connection refused or cut (the killed receiver) is no answer.
                    if try_deliver(addr, &body)
                        .await
                        .is_some_and(|s| s.is_success())
                    {
                        acked.lock().unwrap().push(BodyDigest::of(&body));
                    }
                    n += CLIENTS;
                }
            })
        })
        .collect();

    let client = sql(db.url()).await;
    let held_by_a = format!(
        "SELECT count(*) FROM dronehook_runs WHERE lease_owner LIKE '%/{pid_a}/%' AND status = 'pending'"
    );
    let deadline = Instant::now() + PATIENCE;
    while acked.lock().unwrap().len() < 100 || count(&client, &held_by_a).await == 0 {
        assert!(Instant::now() < deadline, "the load did not build up");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    a.kill().await.expect("SIGKILL");
    for c in clients {
        c.await.unwrap();
    }

    // Nothing acknowledged is lost.
    let stored = stored_digests(&client).await;
    let acked = acked.lock().unwrap().clone();
    let lost: Vec<_> = acked
        .iter()
        .filter(|d| !stored.contains(&d.as_bytes()[..]))
        .map(BodyDigest::to_hex)
        .collect();
    assert!(lost.is_empty(), "{} acknowledged events lost", lost.len());
    assert!(
        acked.len() < EVENTS as usize,
        "the killed receiver's share was refused"
    );

    // Every run completes on the survivor once the dead receiver's leases expire.
    let deliveries = count(&client, "SELECT count(*) FROM dronehook_deliveries").await;
    wait_for_count(
        &client,
        "SELECT count(*) FROM dronehook_runs WHERE status = 'ok'",
        deliveries,
    )
    .await;
    let attempts: BTreeMap<i64, i32> = client
        .query("SELECT delivery_id, attempts FROM dronehook_runs", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert!(
        attempts.values().any(|&n| n >= 2),
        "no run was taken over from the dead receiver"
    );
    // Only a run the dead receiver had started runs a second time.
    let handled = handled(&[&log_a, &log_b]);
    for (id, n) in &attempts {
        let times = handled.get(id).copied().unwrap_or(0);
        assert!(times >= 1, "delivery {id} never handled");
        assert!(
            times <= *n as usize,
            "delivery {id} handled {times} times in {n} attempts"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_stopped_and_started_under_load_gives_no_2xx_and_loses_nothing() {
    let mut cluster = Cluster::start().await.unwrap();
    let db = TestDatabase::create_in(&cluster.admin_url()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (log_a, log_b) = (dir.path().join("a.log"), dir.path().join("b.log"));
    let (_a, addr_a) = spawn_demo(db.url(), &log_a, 0, 5_000).await;
    let (_b, addr_b) = spawn_demo(db.url(), &log_b, 0, 5_000).await;
    let addrs = [addr_a, addr_b];

    let answers: Arc<Mutex<Vec<Answered>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4u64)
        .map(|first| {
            let answers = answers.clone();
            let stop = stop.clone();
            tokio::spawn(async move {
                let mut n = first;
                while !stop.load(Ordering::Relaxed) {
                    let body = user_event(n);
                    let sent = Instant::now();
                    let a = deliver(addrs[(n % 2) as usize], &body).await;
                    let retry_after = a.headers.get("retry-after").is_some();
                    answers.lock().unwrap().push((
                        BodyDigest::of(&body),
                        a.status,
                        a.body,
                        retry_after,
                        sent,
                        Instant::now(),
                    ));
                    n += 4;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        })
        .collect();
    let acked = |answers: &Mutex<Vec<Answered>>| {
        answers
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a.1.is_success())
            .count()
    };
    let deadline = Instant::now() + PATIENCE;
    while acked(&answers) < 100 {
        assert!(Instant::now() < deadline, "no load");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    cluster.stop();
    let down_from = Instant::now();
    tokio::time::sleep(Duration::from_secs(3)).await;
    // Not ready while the database is away, and saying why in one line.
    let health = request(addr_a, "GET", "/healthz", &[], Vec::new()).await;
    assert_eq!(health.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        health.body.starts_with("store.unavailable: ") && health.body.lines().count() == 1,
        "{:?}",
        health.body
    );
    let down_until = Instant::now();
    cluster.start_again().await.unwrap();

    // Both receivers serve again by themselves.
    let after = acked(&answers);
    let deadline = Instant::now() + PATIENCE;
    while acked(&answers) < after + 100 {
        assert!(Instant::now() < deadline, "the receivers did not recover");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for addr in addrs {
        let deadline = Instant::now() + PATIENCE;
        while request(addr, "GET", "/healthz", &[], Vec::new())
            .await
            .status
            != StatusCode::OK
        {
            assert!(Instant::now() < deadline, "/healthz did not recover");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.await.unwrap();
    }

    let answers = answers.lock().unwrap().clone();
    // During the outage: no 2xx; 503 `store.unavailable` with Retry-After.
    let during: Vec<_> = answers
        .iter()
        .filter(|a| a.4 >= down_from && a.5 <= down_until)
        .collect();
    assert!(!during.is_empty(), "no request during the outage");
    for a in &during {
        assert_eq!(a.1, StatusCode::SERVICE_UNAVAILABLE, "{a:?}");
        assert_eq!(a.2, "store.unavailable\n");
        assert!(a.3, "no Retry-After");
    }
    // Nothing acknowledged is lost, and every handler runs.
    let client = sql(db.url()).await;
    let stored = stored_digests(&client).await;
    let lost = answers
        .iter()
        .filter(|a| a.1.is_success() && !stored.contains(&a.0.as_bytes()[..]))
        .count();
    assert_eq!(lost, 0, "acknowledged events lost");
    let deliveries = count(&client, "SELECT count(*) FROM dronehook_deliveries").await;
    wait_for_count(
        &client,
        "SELECT count(*) FROM dronehook_runs WHERE status = 'ok'",
        deliveries,
    )
    .await;
    drop(client);
    drop(db);
    drop(cluster);
}
