//! Retention on a running receiver: its background task prunes events older than
//! `retain` whose handler runs are finished, every `prune_interval`, and keeps those
//! with a run still pending, whatever their age. The SQLite journal and (with the
//! `postgres` feature) the PostgreSQL store.

use std::time::Duration;

use dronehook_server::protocol::BodyDigest;
use dronehook_server::{Config, ConfigBuilder, Journal, Router, RunStatus};
use http::StatusCode;

use crate::util::{Calls, config, config_with, corpus, deliver, start, user_event, wait_until};

/// What the tests keep: a second.
const RETAIN: Duration = Duration::from_secs(1);
/// How often the receiver prunes in these tests.
const EVERY: Duration = Duration::from_millis(200);

/// `user:*` events are handled at once (their runs finish); `build:*` events' handler
/// fails, and its retry is an hour away: their runs stay pending.
fn router(calls: &Calls) -> Router {
    Router::new()
        .route("user:*", calls.handler())
        .unwrap()
        .route("build:*", |_| async {
            Err::<(), _>("the build handler is down".to_owned())
        })
        .unwrap()
}

fn retention(builder: ConfigBuilder) -> ConfigBuilder {
    builder
        .retain(Some(RETAIN))
        .max_rows(None)
        .prune_interval(EVERY)
        .retry_base(Duration::from_secs(3600))
        .max_attempts(10)
}

const PENDING: [&str; 2] = ["build_created", "build_failure"];

#[test]
fn the_prune_interval_defaults_to_a_minute_and_is_at_least_100_ms() {
    let policy = || dronehook_server::protocol::Policy::new("s");
    assert_eq!(
        Config::builder(policy()).build().prune_interval(),
        Duration::from_secs(60)
    );
    assert_eq!(
        Config::builder(policy())
            .prune_interval(Duration::from_secs(5))
            .build()
            .prune_interval(),
        Duration::from_secs(5)
    );
    assert_eq!(
        Config::builder(policy())
            .prune_interval(Duration::ZERO)
            .build()
            .prune_interval(),
        Duration::from_millis(100)
    );
}

#[tokio::test]
async fn a_running_receiver_prunes_old_finished_events_of_its_journal_and_keeps_pending_ones() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("journal.db");
    let calls = Calls::default();
    let server = start(retention(config().journal(&path)), router(&calls)).await;
    let addr = server.local_addr();
    for n in 0..5 {
        assert_eq!(
            deliver(addr, &user_event(n)).await.status,
            StatusCode::NO_CONTENT
        );
    }
    for name in PENDING {
        assert_eq!(
            deliver(addr, corpus(name)).await.status,
            StatusCode::NO_CONTENT
        );
    }
    calls.wait_for(5).await;
    let journal = Journal::open(&path).unwrap();
    let id = |body: &[u8]| journal.find(&BodyDigest::of(body)).unwrap();

    // The finished events go once older than RETAIN; the pending ones stay.
    wait_until(|| journal.count().unwrap() == 2).await;
    for n in 0..5 {
        assert_eq!(id(&user_event(n)), None, "user event {n} kept");
    }
    for name in PENDING {
        let kept = id(corpus(name)).unwrap_or_else(|| panic!("{name} pruned"));
        let runs = journal.runs(kept).unwrap();
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].status, RunStatus::Pending, "{name}");
    }
    // A new event is not pruned before it is RETAIN old.
    assert_eq!(
        deliver(addr, &user_event(99)).await.status,
        StatusCode::NO_CONTENT
    );
    assert!(id(&user_event(99)).is_some());
    wait_until(|| id(&user_event(99)).is_none()).await;
    assert_eq!(journal.count().unwrap(), 2);
    server.shutdown().await.unwrap();
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_receiver_prunes_old_finished_events_of_its_postgresql_store_and_keeps_pending_ones()
 {
    use dronehook_server::StoreUrl;

    let db = dronehook_testkit::database().await;
    let calls = Calls::default();
    // The store's replay check reads the deliveries of the last replay window (the
    // `Date` skew), and pruning keeps those: a short skew lets the test see pruning.
    let policy = dronehook_server::protocol::Policy::new(crate::util::SECRET)
        .max_skew(Duration::from_secs(2));
    let server = start(
        retention(config_with(policy).store(StoreUrl::Postgres(db.url().to_owned()))),
        router(&calls),
    )
    .await;
    let addr = server.local_addr();
    for n in 0..5 {
        assert_eq!(
            deliver(addr, &user_event(n)).await.status,
            StatusCode::NO_CONTENT
        );
    }
    for name in PENDING {
        assert_eq!(
            deliver(addr, corpus(name)).await.status,
            StatusCode::NO_CONTENT
        );
    }
    calls.wait_for(5).await;

    let (client, connection) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    let kept = || async {
        client
            .query("SELECT digest FROM dronehook_deliveries", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| r.get::<_, Vec<u8>>(0))
            .collect::<Vec<_>>()
    };
    let digest = |body: &[u8]| BodyDigest::of(body).as_bytes().to_vec();
    let deadline = tokio::time::Instant::now() + crate::util::PATIENCE;
    while kept().await.len() != 2 {
        assert!(tokio::time::Instant::now() < deadline, "not pruned");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut expected: Vec<_> = PENDING.iter().map(|name| digest(corpus(name))).collect();
    let mut found = kept().await;
    expected.sort();
    found.sort();
    assert_eq!(found, expected, "the pending events are the ones kept");
    let pending: i64 = client
        .query_one(
            "SELECT count(*) FROM dronehook_runs WHERE status = 'pending'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(pending, 2);
    // A new event is not pruned before it is RETAIN old.
    assert_eq!(
        deliver(addr, &user_event(99)).await.status,
        StatusCode::NO_CONTENT
    );
    assert!(kept().await.contains(&digest(&user_event(99))));
    let deadline = tokio::time::Instant::now() + crate::util::PATIENCE;
    while kept().await.len() != 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the new event was not pruned"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    server.shutdown().await.unwrap();
    drop(client);
}
