//! Faults of the journal's disk: a full disk (real `ENOSPC` from `/dev/full`), a
//! file-size limit reached mid-run (real `EFBIG` in a child process), and the journal
//! made unwritable under load and writable again (the same limit lowered to nothing on
//! the running receiver, then lifted). Either way a request the journal did not commit
//! is answered 503 `journal.unavailable`, never a 2xx, every request answered with a
//! 2xx is in the journal, and the receiver serves again by itself once it can write.
//!
//! The read-only journal is `journal::a_journal_in_a_read_only_directory_answers_503`;
//! the client against a receiver that stalls, hangs up or answers 500 is tested in
//! `crates/client/tests/it/delivery.rs`.

use std::net::SocketAddr;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dronehook_server::protocol::BodyDigest;
use dronehook_server::{Journal, Router};
use http::StatusCode;

use crate::util::{Calls, config, deliver, request, start, user_event, wait_until};

/// Makes the journal's write-ahead log a character device with `/dev/full`'s number,
/// where every write fails with `ENOSPC`, as on a full disk, and reading gives zeros,
/// which SQLite takes for an empty log. (A symbolic link to `/dev/full` does not do:
/// SQLite opens the log with `O_NOFOLLOW`.) Creating a device node needs root or
/// `CAP_MKNOD`; returns false when that is refused.
fn fill_the_disk(journal: &Path) -> bool {
    let wal = wal_path(journal);
    let _ = std::fs::remove_file(&wal);
    let rdev = std::fs::metadata("/dev/full").expect("/dev/full").rdev();
    // Linux's encoding of a device number (glibc's gnu_dev_major and gnu_dev_minor).
    let major = ((rdev >> 8) & 0xfff) | ((rdev >> 32) & !0xfff);
    let minor = (rdev & 0xff) | ((rdev >> 12) & !0xff);
    let status = std::process::Command::new("mknod")
        .arg(&wal)
        .args(["c", &major.to_string(), &minor.to_string()])
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run mknod");
    status.success()
}

fn wal_path(journal: &Path) -> std::path::PathBuf {
    let mut wal = journal.as_os_str().to_owned();
    wal.push("-wal");
    wal.into()
}

/// Checks, with SQLite itself, that the mechanism gives `SQLITE_FULL` on a write.
fn assert_writes_fail_with_sqlite_full(journal: &Path) {
    let conn = rusqlite::Connection::open(journal).unwrap();
    let err = conn
        .execute("CREATE TABLE probe (x)", [])
        .expect_err("a write to a full disk fails");
    assert_eq!(
        err.sqlite_error_code(),
        Some(rusqlite::ErrorCode::DiskFull),
        "{err}"
    );
    drop(conn);
    // Closing the last connection deletes the log file, here the device node: make it
    // again.
    assert!(fill_the_disk(journal));
}

#[tokio::test]
async fn a_full_disk_answers_503_and_never_a_2xx() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");

    // A journal with one delivery, written while the disk had room.
    let calls = Calls::default();
    let server = start(
        config().journal(&path),
        Router::new().route("", calls.handler()).unwrap(),
    )
    .await;
    assert_eq!(
        deliver(server.local_addr(), &user_event(0)).await.status,
        StatusCode::NO_CONTENT
    );
    calls.wait_for(1).await;
    server.shutdown().await.unwrap();

    if !fill_the_disk(&path) {
        // Not root: no device node. The file-size limit test below covers the same
        // outcome with a mechanism open to every user.
        assert_ne!(std::fs::metadata(dir.path()).unwrap().uid(), 0);
        return;
    }
    assert_writes_fail_with_sqlite_full(&path);

    let calls = Calls::default();
    let server = start(
        config().journal(&path),
        Router::new().route("", calls.handler()).unwrap(),
    )
    .await;
    let addr = server.local_addr();
    // Some one at a time, then a burst that the writer commits in batches.
    for n in 1..=5 {
        let answer = deliver(addr, &user_event(n)).await;
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, "journal.unavailable\n"),
            "request {n}"
        );
    }
    let burst: Vec<_> = (6..=45)
        .map(|n| tokio::spawn(async move { deliver(addr, &user_event(n)).await }))
        .collect();
    for (i, task) in burst.into_iter().enumerate() {
        let answer = task.await.unwrap();
        assert_eq!(
            (answer.status, answer.body.as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, "journal.unavailable\n"),
            "burst request {i}"
        );
    }
    let health = request(addr, "GET", "/healthz", &[], Vec::new()).await;
    assert_eq!(
        (health.status, health.body.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "journal.unavailable\n")
    );
    // A refused body is not remembered as accepted: its copy is refused again.
    let answer = deliver(addr, &user_event(1)).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    let metrics = server.metrics_text();
    assert!(
        metrics.contains("dronehook_requests_total{code=\"journal.unavailable\"} 46"),
        "{metrics}"
    );
    server.shutdown().await.unwrap();
    assert_eq!(calls.len(), 0, "no handler ran for a refused request");

    // Space again: the journal holds the one delivery from before and none of the
    // refused ones, and a refused body is accepted when sent again.
    let _ = std::fs::remove_file(wal_path(&path));
    let journal = Journal::open(&path).unwrap();
    assert_eq!(journal.count().unwrap(), 1);
    for n in 1..=45 {
        assert_eq!(journal.find(&BodyDigest::of(&user_event(n))).unwrap(), None);
    }
    let calls = Calls::default();
    let server = start(
        config().journal(&path),
        Router::new().route("", calls.handler()).unwrap(),
    )
    .await;
    assert_eq!(
        deliver(server.local_addr(), &user_event(1)).await.status,
        StatusCode::NO_CONTENT
    );
    calls.wait_for(1).await;
    server.shutdown().await.unwrap();
    assert_eq!(journal.count().unwrap(), 2);
}

/// A signed `user:created` event of about 2 KB, distinct for each `n`.
fn padded_event(n: u64) -> Vec<u8> {
    let avatar = "a".repeat(2000);
    format!(
        r#"{{"event":"user","action":"created","user":{{"id":{n},"login":"user{n}","email":"u{n}@example.com","machine":false,"admin":false,"active":true,"avatar":"https://example.com/{avatar}","syncing":false,"synced":0,"created":1636759997,"updated":1636759997,"last_login":0}}}}"#
    )
    .into_bytes()
}

/// The demo receiver in a child process whose files may not grow past `limit_kib`
/// (`RLIMIT_FSIZE`, set with the shell's `ulimit -f`, in 512-byte blocks; `None`: no
/// limit yet, see [`set_file_size_limit`]). `SIGXFSZ` is ignored (an ignored signal
/// stays ignored across `exec`), so a write past the limit fails with `EFBIG` instead
/// of killing the process.
async fn spawn_limited_demo(
    journal: &Path,
    limit_kib: Option<u64>,
) -> (tokio::process::Child, SocketAddr) {
    let blocks = limit_kib.map_or_else(|| "unlimited".to_owned(), |k| (k * 2).to_string());
    let mut command = tokio::process::Command::new("sh");
    command.args([
        "-c",
        // Without a limit, `ulimit` is not called at all: it would set the hard limit
        // too, which a process without privileges cannot raise again.
        "trap '' XFSZ; if [ \"$1\" != unlimited ]; then ulimit -f \"$1\"; fi; shift; exec \"$@\"",
        "sh",
        &blocks,
        env!("CARGO_BIN_EXE_dronehook-receiver-demo"),
        "127.0.0.1:0",
        journal.to_str().unwrap(),
        crate::util::SECRET,
    ]);
    crate::util::spawn_listening(command).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_that_cannot_grow_mid_run_answers_503_and_every_2xx_is_kept() {
    const LIMIT_KIB: u64 = 256;
    const MAX_REQUESTS: u64 = 3_000;
    const REFUSALS: usize = 10;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let (mut child, addr) = spawn_limited_demo(&path, Some(LIMIT_KIB)).await;

    // Four clients deliver distinct events until the journal has refused a few.
    let next = Arc::new(AtomicU64::new(0));
    let answers: Arc<Mutex<Vec<(u64, StatusCode, String)>>> = Arc::default();
    let refused = || {
        answers
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, s, _)| *s != StatusCode::NO_CONTENT)
            .count()
    };
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (next, answers) = (next.clone(), answers.clone());
            tokio::spawn(async move {
                loop {
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    let refusals = answers
                        .lock()
                        .unwrap()
                        .iter()
                        .filter(|(_, s, _)| *s != StatusCode::NO_CONTENT)
                        .count();
                    if n >= MAX_REQUESTS || refusals >= REFUSALS {
                        return;
                    }
                    let answer = deliver(addr, &padded_event(n)).await;
                    answers
                        .lock()
                        .unwrap()
                        .push((n, answer.status, answer.body));
                }
            })
        })
        .collect();
    for client in clients {
        client.await.unwrap();
    }
    child.kill().await.unwrap();
    assert!(
        refused() >= REFUSALS,
        "no refusal in {MAX_REQUESTS} requests: the file-size limit did not bite"
    );

    let answers = answers.lock().unwrap().clone();
    let journal = Journal::open(&path).unwrap();
    let mut accepted = 0;
    for (n, status, body) in &answers {
        let kept = journal.find(&BodyDigest::of(&padded_event(*n))).unwrap();
        match *status {
            StatusCode::NO_CONTENT => {
                assert!(
                    kept.is_some(),
                    "request {n} was answered 204 but is not in the journal"
                );
                accepted += 1;
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(body, "journal.unavailable\n");
                assert_eq!(kept, None, "request {n} was refused but is in the journal");
            }
            other => panic!("request {n}: {other} {body}"),
        }
    }
    assert!(accepted > 0, "the journal took requests before it was full");
    assert_eq!(journal.count().unwrap(), accepted);
}

/// Sets the soft file-size limit (`RLIMIT_FSIZE`) of a running process with
/// util-linux's `prlimit` (any user may change their own processes' soft limits):
/// `Some(bytes)`, or `None` for no limit.
fn set_file_size_limit(pid: u32, bytes: Option<u64>) {
    let value = bytes.map_or_else(|| "unlimited".to_owned(), |b| b.to_string());
    let status = std::process::Command::new("prlimit")
        .arg(format!("--pid={pid}"))
        .arg(format!("--fsize={value}:"))
        .status()
        .expect("run prlimit (util-linux)");
    assert!(status.success(), "prlimit --fsize={value}: {status}");
}

/// An answer during the outage: the event's number, status, body, whether it had
/// `Retry-After`, when the request was sent and when the answer came.
type Answered = (u64, StatusCode, String, bool, Instant, Instant);

/// The journal becomes unwritable under load, as when its disk fills, and writable
/// again, with the receiver left running. The fault is the file-size limit lowered to
/// 0 on the running process (every write to the journal's files fails with `EFBIG`)
/// and lifted again: a real failing write that any user can inject and undo on a
/// live process. A read-only directory does not do (root, as in CI, writes anyway,
/// and SQLite keeps its files open), nor does a small file system (mounting one needs
/// root).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_journal_unwritable_under_load_answers_503_then_serves_again_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let (mut child, addr) = spawn_limited_demo(&path, None).await;
    let pid = child.id().unwrap();

    let answers: Arc<Mutex<Vec<Answered>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let (answers, stop, next) = (answers.clone(), stop.clone(), next.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let n = next.fetch_add(1, Ordering::SeqCst);
                    let sent = Instant::now();
                    let a = deliver(addr, &user_event(n)).await;
                    let retry_after = a.headers.get("retry-after").is_some();
                    answers.lock().unwrap().push((
                        n,
                        a.status,
                        a.body,
                        retry_after,
                        sent,
                        Instant::now(),
                    ));
                    // Not flat out: the machine's two cores are shared.
                    tokio::time::sleep(Duration::from_millis(2)).await;
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
    wait_until(|| acked(&answers) >= 100).await;

    set_file_size_limit(pid, Some(0));
    let down_from = Instant::now();
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Not ready for the whole outage, however the failing batches interleave with
    // the checks (a reopened connection is no proof that the journal can be written).
    for _ in 0..15 {
        let health = request(addr, "GET", "/healthz", &[], Vec::new()).await;
        assert_eq!(
            (health.status, health.body.as_str()),
            (StatusCode::SERVICE_UNAVAILABLE, "journal.unavailable\n")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let down_until = Instant::now();
    set_file_size_limit(pid, None);

    // It serves again by itself: more requests acknowledged, and ready.
    let after = acked(&answers);
    wait_until(|| acked(&answers) >= after + 100).await;
    let health = request(addr, "GET", "/healthz", &[], Vec::new()).await;
    assert_eq!(
        (health.status, health.body.as_str()),
        (StatusCode::OK, "ok\n")
    );
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    child.kill().await.unwrap();

    let answers = answers.lock().unwrap().clone();
    // During the outage: no 2xx, only 503 `journal.unavailable` with Retry-After.
    let during: Vec<_> = answers
        .iter()
        .filter(|a| a.4 >= down_from && a.5 <= down_until)
        .collect();
    assert!(
        during.len() >= 10,
        "only {} requests during the outage",
        during.len()
    );
    for a in &during {
        assert_eq!(
            (a.1, a.2.as_str(), a.3),
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "journal.unavailable\n",
                true
            ),
            "event {} during the outage",
            a.0
        );
    }
    // Nothing acknowledged is lost; nothing refused was kept.
    let journal = Journal::open(&path).unwrap();
    let mut accepted = 0;
    for (n, status, body, ..) in &answers {
        let kept = journal.find(&BodyDigest::of(&user_event(*n))).unwrap();
        match *status {
            StatusCode::NO_CONTENT => {
                assert!(kept.is_some(), "event {n} was answered 204 but is not kept");
                accepted += 1;
            }
            StatusCode::SERVICE_UNAVAILABLE => {
                assert_eq!(body, "journal.unavailable\n");
                assert_eq!(kept, None, "event {n} was refused but is kept");
            }
            other => panic!("event {n}: {other} {body}"),
        }
    }
    assert_eq!(journal.count().unwrap(), accepted);
}
