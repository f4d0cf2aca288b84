//! Handlers after the acknowledgement: retries with backoff, the observer hook, and
//! resumption of unfinished runs after a restart.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dronehook_protocol::{Action, Event};
use dronehook_server::{Delivery, Journal, Observation, Router, RunStatus};
use http::StatusCode;

use crate::util::{Calls, Captured, config, corpus, deliver, start, wait_until};

#[tokio::test]
async fn a_failing_handler_is_retried_with_backoff_until_it_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let tries = Arc::new(AtomicU32::new(0));
    let attempts_seen = Arc::new(Mutex::new(Vec::new()));
    let handler = {
        let tries = tries.clone();
        let attempts_seen = attempts_seen.clone();
        move |d: Delivery| {
            let n = tries.fetch_add(1, Ordering::SeqCst) + 1;
            attempts_seen.lock().unwrap().push(d.attempt);
            async move {
                if n < 3 {
                    Err(format!("flaky {n}"))
                } else {
                    Ok(())
                }
            }
        }
    };
    let records = Arc::new(Mutex::new(Vec::new()));
    let router = {
        let records = records.clone();
        Router::new()
            .route_named("notify", "build:*", handler)
            .unwrap()
            .observe(move |o| {
                if let Observation::Handler(h) = o {
                    records.lock().unwrap().push(h.clone());
                }
            })
    };
    let server = start(
        config()
            .journal(&path)
            .retry_base(Duration::from_millis(20))
            .max_attempts(5),
        router,
    )
    .await;
    let answer = deliver(server.local_addr(), corpus("build_killed")).await;
    assert_eq!(
        answer.status,
        StatusCode::NO_CONTENT,
        "answered before the handler ran"
    );
    wait_until(|| records.lock().unwrap().len() >= 3).await;
    server.shutdown().await.unwrap();

    assert_eq!(*attempts_seen.lock().unwrap(), [1, 2, 3]);
    let records = records.lock().unwrap().clone();
    assert_eq!(records.len(), 3);
    assert_eq!(records[0].result.as_ref().unwrap_err().message(), "flaky 1");
    assert!(records[0].will_retry && records[1].will_retry && !records[2].will_retry);
    assert!(records[2].result.is_ok());
    assert_eq!(records[2].handler, "notify");

    let journal = Journal::open(&path).unwrap();
    let id = records[0].delivery_id.unwrap();
    let runs = journal.runs(id).unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!((runs[0].status, runs[0].attempts), (RunStatus::Ok, 3));
}

#[tokio::test]
async fn a_handler_that_keeps_failing_is_marked_failed_after_the_last_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let tries = Arc::new(AtomicU32::new(0));
    let handler = {
        let tries = tries.clone();
        move |_d: Delivery| {
            tries.fetch_add(1, Ordering::SeqCst);
            async { Err::<(), _>("always down") }
        }
    };
    let server = start(
        config()
            .journal(&path)
            .retry_base(Duration::from_millis(5))
            .max_attempts(2),
        Router::new().route("", handler).unwrap(),
    )
    .await;
    assert_eq!(
        deliver(server.local_addr(), corpus("user_deleted"))
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    let journal = Journal::open(&path).unwrap();
    wait_until(|| {
        journal.entries(0, 1).unwrap().first().is_some_and(|e| {
            journal
                .runs(e.id)
                .unwrap()
                .first()
                .is_some_and(|r| r.status == RunStatus::Dead)
        })
    })
    .await;
    server.shutdown().await.unwrap();
    let id = journal.entries(0, 1).unwrap()[0].id;
    let run = &journal.runs(id).unwrap()[0];
    assert_eq!(
        (run.attempts, run.last_error.as_deref()),
        (2, Some("always down"))
    );
    assert_eq!(tries.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn a_restarted_server_resumes_unfinished_runs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    // First life: the handler fails and the retry is far away, so the run is pending
    // when the server stops.
    let failing = |_d: Delivery| async { Err::<(), _>("not yet") };
    let server = start(
        config()
            .journal(&path)
            .retry_base(Duration::from_secs(3600)),
        Router::new().route_named("sink", "", failing).unwrap(),
    )
    .await;
    for name in ["user_created", "repo_disabled"] {
        assert_eq!(
            deliver(server.local_addr(), corpus(name)).await.status,
            StatusCode::NO_CONTENT
        );
    }
    let journal = Journal::open(&path).unwrap();
    wait_until(|| {
        journal
            .pending_runs()
            .unwrap()
            .iter()
            .filter(|r| r.attempts == 1)
            .count()
            == 2
    })
    .await;
    server.shutdown().await.unwrap();

    // Second life: the same route name now succeeds, and gets both runs with the
    // attempt number going on from the journal.
    let calls = Calls::default();
    let server = start(
        config().journal(&path),
        Router::new()
            .route_named("sink", "", calls.handler())
            .unwrap(),
    )
    .await;
    calls.wait_for(2).await;
    wait_until(|| journal.pending_runs().unwrap().is_empty()).await;
    server.shutdown().await.unwrap();
    let mut events: Vec<String> = calls.all().iter().map(Delivery::filter_name).collect();
    events.sort();
    assert_eq!(events, ["repo:disabled", "user:created"]);
    assert!(calls.all().iter().all(|d| d.attempt == 2 && d.id.is_some()));
}

#[tokio::test]
async fn an_entry_that_cannot_be_decoded_on_resume_is_logged_and_the_others_resume() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let failing = |_d: Delivery| async { Err::<(), _>("not yet") };
    let server = start(
        config()
            .journal(&path)
            .retry_base(Duration::from_secs(3600)),
        Router::new().route_named("sink", "", failing).unwrap(),
    )
    .await;
    for name in ["user_created", "repo_disabled"] {
        assert_eq!(
            deliver(server.local_addr(), corpus(name)).await.status,
            StatusCode::NO_CONTENT
        );
    }
    let journal = Journal::open(&path).unwrap();
    wait_until(|| {
        journal
            .pending_runs()
            .unwrap()
            .iter()
            .filter(|r| r.attempts == 1)
            .count()
            == 2
    })
    .await;
    server.shutdown().await.unwrap();
    let first = journal.entries(0, 1).unwrap()[0].id;
    // The file damaged between two lives: one entry's body no longer decodes.
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute(
            "UPDATE deliveries SET body = CAST('[' AS BLOB), codec = 0 WHERE id = ?1",
            [first],
        )
        .unwrap();

    let log = Captured::default();
    let guard = tracing::subscriber::set_default(log.subscriber());
    let calls = Calls::default();
    let server = start(
        config().journal(&path),
        Router::new()
            .route_named("sink", "", calls.handler())
            .unwrap(),
    )
    .await;
    calls.wait_for(1).await;
    server.shutdown().await.unwrap();
    drop(guard);
    let events: Vec<String> = calls.all().iter().map(Delivery::filter_name).collect();
    assert_eq!(events, ["repo:disabled"]);
    // The run that cannot be made is dead, with why, instead of pending for ever.
    journal.flush().await.unwrap();
    let run = &journal.runs(first).unwrap()[0];
    assert_eq!(run.status, RunStatus::Dead);
    assert_eq!(
        run.last_error.as_deref(),
        Some(
            "the stored delivery cannot be run: the body is not a valid payload: \
             invalid type: sequence, expected a JSON object (Envelope) at line 1 column 0"
        )
    );
    let log = log.text();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("cannot be decoded"))
        .map(|l| l.split_once(" WARN ").map_or(l, |(_, rest)| rest))
        .collect();
    assert_eq!(
        warnings,
        [format!(
            "dronehook_server::dispatch: a stored delivery cannot be decoded; its run is dead \
             entry={first} handler=sink error=the body is not a valid payload: \
             invalid type: sequence, expected a JSON object (Envelope) at line 1 column 0"
        )]
    );
}

#[tokio::test]
async fn the_observer_hears_each_request_with_its_outcome() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let router = {
        let seen = seen.clone();
        Router::new().observe(move |o| {
            if let Observation::Request(r) = o {
                seen.lock().unwrap().push(r.clone());
            }
        })
    };
    let server = start(config(), router).await;
    let body = corpus("build_created");
    assert_eq!(
        deliver(server.local_addr(), body).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        deliver(server.local_addr(), body).await.status,
        StatusCode::NO_CONTENT
    );
    let bad = crate::util::post(server.local_addr(), "/", &[], body).await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    server.shutdown().await.unwrap();
    let seen = seen.lock().unwrap().clone();
    let codes: Vec<(u16, &str)> = seen.iter().map(|r| (r.status, r.code)).collect();
    assert_eq!(
        codes,
        [(204, "ok"), (204, "replay"), (401, "signature.missing")]
    );
    assert_eq!(seen[0].event, Some(Event::Build));
    assert_eq!(seen[0].action, Some(Action::Created));
    assert_eq!(seen[0].repo.as_deref(), Some("Diesel-Net/plex"));
    assert!(seen[0].build.is_some());
    assert_eq!(seen[2].event, None);
}
