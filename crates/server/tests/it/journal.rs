//! The journal: what an acknowledged request leaves on disk, replay protection across
//! restarts, and 503 when the journal cannot be written.

use std::path::PathBuf;

use dronehook_server::protocol::BodyDigest;
use dronehook_server::{Journal, Router, RunStatus};
use http::StatusCode;

use crate::util::{Calls, config, corpus, deliver, post, request, signed, start};

#[tokio::test]
async fn an_acknowledged_request_is_in_the_journal_with_its_fields() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let calls = Calls::default();
    let server = start(
        config().journal(&path),
        Router::new().route("build:*", calls.handler()).unwrap(),
    )
    .await;
    assert_eq!(server.config().journal(), Some(path.as_path()));
    assert_eq!(server.config().secret_count(), 1);
    let body = corpus("build_updated");
    let answer = deliver(server.local_addr(), body).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    calls.wait_for(1).await;
    let delivered = &calls.all()[0];
    let id = delivered.id.expect("a journal id");

    let journal = Journal::open(&path).unwrap();
    let entry = journal.entry(id).unwrap().expect("entry");
    assert_eq!(entry.body, body);
    assert_eq!(entry.digest, BodyDigest::of(body));
    assert_eq!(
        (entry.event.as_str(), entry.action.as_str()),
        ("build", "updated")
    );
    assert!(entry.known);
    assert_eq!(entry.repo.as_deref(), Some("Diesel-Net/plex"));
    assert_eq!(entry.build, delivered.envelope.build_number());
    assert!(
        entry
            .headers
            .iter()
            .any(|(n, v)| n == "digest" && v.starts_with(b"SHA-256="))
    );
    assert_eq!(journal.find(&BodyDigest::of(body)).unwrap(), Some(id));

    // The run is recorded once the handler is done.
    crate::util::wait_until(|| {
        journal
            .runs(id)
            .unwrap()
            .first()
            .is_some_and(|r| r.status == RunStatus::Ok)
    })
    .await;
    let runs = journal.runs(id).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!((runs[0].handler.as_str(), runs[0].attempts), ("build:*", 1));
    assert_eq!(runs[0].last_error, None);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn unknown_events_are_journaled_without_handler_runs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let calls = Calls::default();
    let server = start(
        config().journal(&path),
        Router::new().route("", calls.handler()).unwrap(),
    )
    .await;
    let body = br#"{"event":"pipeline","action":"exploded"}"#;
    let answer = post(server.local_addr(), "/", &signed(body), body).await;
    assert_eq!(answer.status, StatusCode::ACCEPTED);
    server.shutdown().await.unwrap();
    let journal = Journal::open(&path).unwrap();
    let entries = journal.entries(0, 10).unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(
        (entries[0].event.as_str(), entries[0].known),
        ("pipeline", false)
    );
    assert!(journal.runs(entries[0].id).unwrap().is_empty());
    assert_eq!(calls.len(), 0);
}

#[tokio::test]
async fn replay_protection_survives_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let body = corpus("repo_enabled");
    let headers = signed(body);

    let calls = Calls::default();
    let server = start(
        config().journal(&path),
        Router::new().route("", calls.handler()).unwrap(),
    )
    .await;
    assert_eq!(
        post(server.local_addr(), "/", &headers, body).await.status,
        StatusCode::NO_CONTENT
    );
    calls.wait_for(1).await;
    server.shutdown().await.unwrap();

    let again = Calls::default();
    let server = start(
        config().journal(&path),
        Router::new().route("", again.handler()).unwrap(),
    )
    .await;
    let answer = post(server.local_addr(), "/", &headers, body).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (StatusCode::NO_CONTENT, "")
    );
    server.shutdown().await.unwrap();
    assert_eq!(again.len(), 0, "not delivered again after the restart");
    assert_eq!(Journal::open(&path).unwrap().count().unwrap(), 1);
}

/// A journal path that cannot be created, even by root (who ignores file modes): a
/// read-only directory when that holds, else a path inside procfs.
fn unwritable_journal(dir: &tempfile::TempDir) -> PathBuf {
    use std::os::unix::fs::PermissionsExt as _;
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro).unwrap();
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555)).unwrap();
    if std::fs::write(ro.join("probe"), b"x").is_err() {
        return ro.join("journal.db");
    }
    PathBuf::from("/proc/self/journal.db")
}

#[tokio::test]
async fn a_journal_in_a_read_only_directory_answers_503() {
    let dir = tempfile::tempdir().unwrap();
    let path = unwritable_journal(&dir);
    assert!(Journal::open(&path).unwrap_err().is_journal());
    let calls = Calls::default();
    let server = start(
        config().journal(&path),
        Router::new().route("", calls.handler()).unwrap(),
    )
    .await;
    let answer = deliver(server.local_addr(), corpus("build_created")).await;
    assert_eq!(
        (answer.status, answer.body.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "journal.unavailable\n")
    );
    let health = request(server.local_addr(), "GET", "/healthz", &[], Vec::new()).await;
    assert_eq!(
        (health.status, health.body.as_str()),
        (StatusCode::SERVICE_UNAVAILABLE, "journal.unavailable\n")
    );
    // The refused request was not remembered: the same copy is refused again, not
    // answered as a replay.
    let answer = deliver(server.local_addr(), corpus("build_created")).await;
    assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(calls.len(), 0);
    assert!(server.shutdown().await.unwrap_err().is_journal());
}
