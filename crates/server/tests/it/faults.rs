//! Faults of the journal's disk: a full disk (real `ENOSPC` from `/dev/full`) and a
//! file-size limit reached mid-run (real `EFBIG` in a child process). Either way a
//! request the journal did not commit is answered 503 `journal.unavailable`, never a
//! 2xx, and every request answered with a 2xx is in the journal.
//!
//! The read-only journal is `journal::a_journal_in_a_read_only_directory_answers_503`;
//! the client against a receiver that stalls, hangs up or answers 500 is tested in
//! `crates/client/tests/it/delivery.rs`.

use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use dronehook_server::protocol::BodyDigest;
use dronehook_server::{Journal, Router};
use http::StatusCode;

use crate::util::{Calls, config, deliver, request, start, user_event};

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
