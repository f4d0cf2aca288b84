//! SIGKILL in the middle of 2,000 requests, with handler runs under way: every
//! acknowledged request is in the journal afterwards, the restarted server delivers
//! every unfinished run, and only a run already started before the kill runs twice.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use dronehook_server::Journal;
use dronehook_server::protocol::BodyDigest;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use tokio::process::{Child, Command};

use crate::util::{PATIENCE, SECRET, signed, user_event, wait_until};

const TOTAL: u64 = 2_000;
const CLIENTS: u64 = 16;

/// Starts the demo receiver and reads the address it prints.
async fn spawn_demo(
    journal: &std::path::Path,
    log: &std::path::Path,
    delay_ms: u32,
) -> (Child, SocketAddr) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_dronehook-receiver-demo"));
    command
        .args([
            "127.0.0.1:0",
            journal.to_str().unwrap(),
            SECRET,
            log.to_str().unwrap(),
        ])
        .env("DEMO_HANDLER_DELAY_MS", delay_ms.to_string());
    crate::util::spawn_listening(command).await
}

/// One client: sends its share of the requests over a keep-alive connection and
/// records the ones answered with a 2xx, until the connection breaks.
async fn client(addr: SocketAddr, first: u64, acked: Arc<Mutex<Vec<BodyDigest>>>) {
    let Ok(stream) = tokio::net::TcpStream::connect(addr).await else {
        return;
    };
    let Ok((mut sender, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
    else {
        return;
    };
    tokio::spawn(conn);
    let mut n = first;
    while n < TOTAL {
        let body = user_event(n);
        let mut req = Request::post("/").header("host", addr.to_string());
        for (name, value) in signed(&body) {
            req = req.header(name, value);
        }
        let req = req.body(Full::new(Bytes::from(body.clone()))).unwrap();
        let Ok(Ok(resp)) = tokio::time::timeout(PATIENCE, sender.send_request(req)).await else {
            return;
        };
        let status = resp.status();
        if resp.into_body().collect().await.is_err() {
            return;
        }
        if status.is_success() {
            acked.lock().unwrap().push(BodyDigest::of(&body));
        }
        n += CLIENTS;
    }
}

/// What a demo receiver's handler log says: the runs started, and the runs finished
/// (whole lines only: a killed process may have left half a line).
fn handler_log(path: &std::path::Path) -> (BTreeSet<i64>, Vec<i64>) {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let mut started = BTreeSet::new();
    let mut finished = Vec::new();
    for line in text.split_inclusive('\n').filter(|l| l.ends_with('\n')) {
        let line = line.trim();
        if let Some(id) = line.strip_prefix("started ") {
            started.insert(id.parse().unwrap());
        } else {
            finished.push(line.parse().unwrap());
        }
    }
    (started, finished)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_way_loses_no_acknowledged_request() {
    let dir = tempfile::tempdir().unwrap();
    let journal_path = dir.path().join("journal.db");
    let log = dir.path().join("handled.log");

    // Slow handlers, so that runs are still queued when the process dies.
    let (mut child, addr) = spawn_demo(&journal_path, &log, 20).await;
    let acked = Arc::new(Mutex::new(Vec::new()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|i| tokio::spawn(client(addr, i, acked.clone())))
        .collect();
    // Killed once a third is acknowledged and the log shows a run started and not
    // finished: between runs the workers can all be idle for a moment, and a kill
    // then would leave nothing under way to check.
    wait_until(|| {
        acked.lock().unwrap().len() >= (TOTAL * 3 / 10) as usize && {
            let (started, finished) = handler_log(&log);
            started.iter().any(|id| !finished.contains(id))
        }
    })
    .await;
    child.kill().await.expect("SIGKILL");
    for c in clients {
        c.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() >= (TOTAL * 3 / 10) as usize);
    assert!(
        acked.len() < TOTAL as usize,
        "killed mid-way, not after the last request"
    );

    let journal = Journal::open(&journal_path).unwrap();
    let missing: Vec<_> = acked
        .iter()
        .filter(|d| journal.find(d).unwrap().is_none())
        .map(BodyDigest::to_hex)
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged requests missing: {missing:?}",
        missing.len()
    );
    let unfinished: BTreeSet<i64> = journal
        .pending_runs()
        .unwrap()
        .iter()
        .map(|r| r.delivery_id)
        .collect();
    assert!(!unfinished.is_empty(), "the kill left runs unfinished");
    // The kill came while handlers ran: some had started and not finished.
    let (started, finished) = handler_log(&log);
    let finished_before: BTreeSet<i64> = finished.iter().copied().collect();
    assert_eq!(finished.len(), finished_before.len(), "a run ran twice");
    let under_way: Vec<_> = started.difference(&finished_before).collect();
    assert!(
        !under_way.is_empty(),
        "no handler run was under way at the kill"
    );

    // The restarted server delivers every unfinished run.
    // A log of its own: the killed process may have left half a line in the first.
    let log = dir.path().join("resumed.log");
    let (mut child, _addr) = spawn_demo(&journal_path, &log, 0).await;
    wait_until(|| journal.pending_runs().unwrap().is_empty()).await;
    child.kill().await.unwrap();
    let (_, resumed) = handler_log(&log);
    let handled: BTreeSet<i64> = resumed.iter().copied().collect();
    assert_eq!(resumed.len(), handled.len(), "a resumed run ran twice");
    let not_delivered: Vec<_> = unfinished.difference(&handled).collect();
    assert!(
        not_delivered.is_empty(),
        "unfinished runs not resumed: {not_delivered:?}"
    );
    // Only unfinished runs are run again, none the journal had recorded as done; and
    // each process ran each run at most once (above). So a run runs twice only when
    // the first process had started it: killed under way, or finished with its record
    // not yet written (a handler's end is logged before its record is committed).
    let rerun_done: Vec<_> = handled.difference(&unfinished).collect();
    assert!(
        rerun_done.is_empty(),
        "runs recorded as done ran again: {rerun_done:?}"
    );
}
