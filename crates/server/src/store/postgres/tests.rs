//! The PostgreSQL store against a real server (found or started by dronehook-testkit),
//! each test in a database of its own.

use std::time::{Duration, SystemTime};

use dronehook_protocol::BodyDigest;
use dronehook_testkit::{Cluster, TestDatabase, database};

use super::*;

fn entry(n: u32, handlers: &[&str]) -> NewEntry {
    let body = format!("{{\"n\":{n}}}").into_bytes();
    NewEntry {
        received_at: SystemTime::now(),
        digest: BodyDigest::of(&body),
        dedupe: true,
        event: "user".into(),
        action: "created".into(),
        known: true,
        repo: Some("octocat/hello".into()),
        build: Some(i64::from(n)),
        build_status: None,
        secret_index: Some(0),
        headers: b"x-drone-event: user\r\ncontent-type: application/json\r\n".to_vec(),
        packed: None,
        body: body.into(),
        handlers: handlers.iter().map(|h| (*h).to_owned()).collect(),
        queued: false,
    }
}

fn settings() -> Settings {
    Settings {
        // Pruning is called by the tests themselves.
        maintenance_every: Duration::from_secs(3600),
        ..Settings::default()
    }
}

async fn open(db: &TestDatabase, settings: Settings) -> PostgresStore {
    PostgresStore::open(db.url(), settings, BatchStats::default())
        .await
        .unwrap()
}

async fn sql(db: &TestDatabase, query: &str) {
    let (client, connection) = tokio_postgres::connect(db.url(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client.batch_execute(query).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_inserts_share_transactions_and_every_one_is_kept() {
    const N: u32 = 300;
    let db = database().await;
    let stats = BatchStats::default();
    let store = PostgresStore::open(db.url(), settings(), stats.clone())
        .await
        .unwrap();
    let inserts: Vec<_> = (0..N)
        .map(|n| {
            let store = store.clone();
            tokio::spawn(async move { store.insert(entry(n, &["h"])).await })
        })
        .collect();
    let mut ids = std::collections::BTreeSet::new();
    for insert in inserts {
        match insert.await.unwrap().unwrap().0 {
            Inserted::New(id) => assert!(ids.insert(id), "id {id} given twice"),
            other @ Inserted::Duplicate(_) => panic!("a distinct body was a {other:?}"),
        }
    }
    let commits = stats.commits.get();
    assert!(
        commits < u64::from(N) / 2,
        "{commits} transactions for {N} concurrent requests"
    );
    assert_eq!(store.count().await.unwrap(), u64::from(N));
    assert_eq!(store.pending_runs().await.unwrap().len(), N as usize);
    // What was stored reads back as it was sent.
    let expected = entry(7, &["h"]);
    let id = store.find(&expected.digest).await.unwrap().unwrap();
    let got = store.entry(id).await.unwrap().unwrap();
    assert_eq!(got.body, expected.body.to_vec());
    assert_eq!(got.digest, expected.digest);
    assert_eq!(got.build, Some(7));
    assert_eq!(got.repo.as_deref(), Some("octocat/hello"));
    assert_eq!(
        got.headers,
        vec![
            ("x-drone-event".to_owned(), b"user".to_vec()),
            ("content-type".to_owned(), b"application/json".to_vec()),
        ]
    );
    let page = store.entries(0, 10).await.unwrap();
    assert_eq!(page.len(), 10);
    assert!(page.windows(2).all(|w| w[0].id < w[1].id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_receivers_agree_on_which_copy_is_new() {
    const N: u32 = 100;
    let db = database().await;
    let a = open(&db, settings()).await;
    let b = open(&db, settings()).await;
    // Every body goes to both receivers at the same time.
    let mut pairs = Vec::new();
    for n in 0..N {
        let (a, b) = (a.clone(), b.clone());
        pairs.push(tokio::spawn(async move {
            let (x, y) = tokio::join!(a.insert(entry(n, &["h"])), b.insert(entry(n, &["h"])));
            (x.unwrap().0, y.unwrap().0)
        }));
    }
    for pair in pairs {
        match pair.await.unwrap() {
            (Inserted::New(x), Inserted::Duplicate(y))
            | (Inserted::Duplicate(y), Inserted::New(x)) => {
                assert_eq!(x, y, "the replay names the delivery that was kept");
            }
            other => panic!("not exactly one new copy: {other:?}"),
        }
    }
    // A later replay to either receiver is a replay too.
    let again = b.insert(entry(3, &["h"])).await.unwrap().0;
    assert!(matches!(again, Inserted::Duplicate(_)), "{again:?}");
    assert_eq!(a.count().await.unwrap(), u64::from(N));
    assert_eq!(b.pending_runs().await.unwrap().len(), N as usize);
    // Copies inside one batch: the first is new, the others replays of it.
    let inserts: Vec<_> = (0..8)
        .map(|_| {
            let a = a.clone();
            tokio::spawn(async move { a.insert(entry(1000, &[])).await.unwrap().0 })
        })
        .collect();
    let mut new = 0;
    for insert in inserts {
        if matches!(insert.await.unwrap(), Inserted::New(_)) {
            new += 1;
        }
    }
    assert_eq!(new, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_is_renewed_while_held_and_reclaimed_after_it_expires() {
    let db = database().await;
    let a = open(&db, settings()).await;
    let b = open(&db, settings()).await;
    let handlers = vec!["h".to_owned()];
    let lease = Duration::from_millis(1500);
    let Inserted::New(id) = a.insert(entry(1, &["h"])).await.unwrap().0 else {
        panic!("not new")
    };

    let held = a.claim(&handlers, 10, lease, 5).await.unwrap();
    assert_eq!(
        held,
        vec![Claimed {
            delivery_id: id,
            handler: "h".into(),
            attempt: 1,
            base: 0,
        }]
    );
    // Claimed once: neither the other instance nor the holder gets it again.
    assert!(b.claim(&handlers, 10, lease, 5).await.unwrap().is_empty());
    assert!(a.claim(&handlers, 10, lease, 5).await.unwrap().is_empty());
    // A handler this instance does not have is not claimed.
    assert!(
        b.claim(&["other".to_owned()], 10, lease, 5)
            .await
            .unwrap()
            .is_empty()
    );

    // Renewed before it expires, the lease outlives its first term.
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(a.renew(&held[0], lease).await.unwrap());
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(b.claim(&handlers, 10, lease, 5).await.unwrap().is_empty());

    // Not renewed, it expires, and the other instance claims the run: attempt 2.
    tokio::time::sleep(lease).await;
    let taken = b.claim(&handlers, 10, lease, 5).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].attempt, 2);
    // The first holder has lost it: it can neither renew nor record an outcome.
    assert!(!a.renew(&held[0], lease).await.unwrap());
    assert!(
        !a.finish(&held[0], &Outcome::Ok, Duration::from_millis(3), None)
            .await
            .unwrap()
    );
    assert!(
        b.finish(&taken[0], &Outcome::Ok, Duration::from_millis(4), None)
            .await
            .unwrap()
    );
    let runs = a.runs(id).await.unwrap();
    assert_eq!(runs.len(), 1);
    assert_eq!(runs[0].status, RunStatus::Ok);
    assert_eq!(runs[0].attempts, 2);
    assert_eq!(runs[0].last_duration, Some(Duration::from_millis(4)));
    assert!(a.pending_runs().await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_runs_are_retried_after_their_backoff_then_dead_and_kept() {
    let db = database().await;
    let store = open(&db, settings()).await;
    let handlers = vec!["h".to_owned()];
    let lease = Duration::from_secs(30);
    let Inserted::New(id) = store.insert(entry(1, &["h"])).await.unwrap().0 else {
        panic!("not new")
    };

    let first = store.claim(&handlers, 1, lease, 3).await.unwrap().remove(0);
    assert_eq!(first.attempt, 1);
    let retry_later = Outcome::Retry {
        error: "exit status 1".into(),
        after: Duration::from_secs(60),
    };
    assert!(
        store
            .finish(&first, &retry_later, Duration::ZERO, None)
            .await
            .unwrap()
    );
    // Not due before its backoff.
    assert!(
        store
            .claim(&handlers, 1, lease, 3)
            .await
            .unwrap()
            .is_empty()
    );
    sql(&db, "UPDATE dronehook_runs SET next_at = now()").await;

    let second = store.claim(&handlers, 1, lease, 3).await.unwrap().remove(0);
    assert_eq!(second.attempt, 2);
    let retry_now = Outcome::Retry {
        error: "exit status 2".into(),
        after: Duration::ZERO,
    };
    assert!(
        store
            .finish(&second, &retry_now, Duration::ZERO, None)
            .await
            .unwrap()
    );
    let third = store.claim(&handlers, 1, lease, 3).await.unwrap().remove(0);
    assert_eq!(third.attempt, 3);
    let dead = Outcome::Dead {
        error: "exit status 3".into(),
    };
    assert!(
        store
            .finish(&third, &dead, Duration::ZERO, None)
            .await
            .unwrap()
    );

    assert!(
        store
            .claim(&handlers, 1, lease, 3)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.pending_runs().await.unwrap().is_empty());
    let runs = store.runs(id).await.unwrap();
    assert_eq!(runs[0].status, RunStatus::Dead);
    assert_eq!(runs[0].attempts, 3);
    assert_eq!(runs[0].last_error.as_deref(), Some("exit status 3"));

    // An instance that dies during the last attempt leaves a lease that expires: the
    // run is then dead, not tried a fourth time.
    let Inserted::New(id) = store.insert(entry(2, &["h"])).await.unwrap().0 else {
        panic!("not new")
    };
    sql(
        &db,
        &format!("UPDATE dronehook_runs SET attempts = 2 WHERE delivery_id = {id}"),
    )
    .await;
    let last = store
        .claim(&handlers, 1, Duration::from_millis(200), 3)
        .await
        .unwrap();
    assert_eq!(last[0].attempt, 3);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert!(
        store
            .claim(&handlers, 1, lease, 3)
            .await
            .unwrap()
            .is_empty()
    );
    let runs = store.runs(id).await.unwrap();
    assert_eq!(runs[0].status, RunStatus::Dead);
    assert_eq!(
        runs[0].last_error.as_deref(),
        Some("its last attempt did not finish: the lease expired")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_prunes_old_and_surplus_deliveries_but_never_pending_ones() {
    let db = database().await;
    let store = open(
        &db,
        Settings {
            retain: Some(Duration::from_secs(3600)),
            max_rows: None,
            dedupe_window: Duration::from_secs(3600),
            ..settings()
        },
    )
    .await;
    let handlers = vec!["h".to_owned()];
    let mut ids = Vec::new();
    for n in 0..4 {
        let handlers: &[&str] = if n == 0 { &["h"] } else { &[] };
        let Inserted::New(id) = store.insert(entry(n, handlers)).await.unwrap().0 else {
            panic!("not new")
        };
        ids.push(id);
    }
    // Nothing is old yet.
    assert_eq!(store.prune().await.unwrap(), Pruned::default());
    sql(
        &db,
        "UPDATE dronehook_deliveries SET received_at = now() - interval '2 hours'",
    )
    .await;
    // Three old deliveries go; the one whose run is pending stays.
    let pruned = store.prune().await.unwrap();
    assert_eq!(pruned.deliveries, 3);
    assert_eq!(store.count().await.unwrap(), 1);
    assert!(store.entry(ids[0]).await.unwrap().is_some());
    // Once its run finishes, it goes too, with its run.
    let run = store
        .claim(&handlers, 1, Duration::from_secs(30), 3)
        .await
        .unwrap()
        .remove(0);
    assert!(
        store
            .finish(&run, &Outcome::Ok, Duration::ZERO, None)
            .await
            .unwrap()
    );
    assert_eq!(store.prune().await.unwrap().deliveries, 1);
    assert_eq!(store.count().await.unwrap(), 0);
    assert!(store.runs(ids[0]).await.unwrap().is_empty());

    // The row bound keeps the newest, again never a pending one. (Nor one the replay
    // check reads: the window is zero here.)
    let bounded = open(
        &db,
        Settings {
            retain: None,
            max_rows: Some(2),
            dedupe_window: Duration::ZERO,
            ..settings()
        },
    )
    .await;
    for n in 10..15 {
        let handlers: &[&str] = if n == 10 { &["h"] } else { &[] };
        bounded.insert(entry(n, handlers)).await.unwrap();
    }
    assert_eq!(bounded.prune().await.unwrap().deliveries, 2);
    let left: Vec<i64> = bounded
        .entries(0, 10)
        .await
        .unwrap()
        .iter()
        .map(|e| e.build.unwrap())
        .collect();
    assert_eq!(left, vec![10, 13, 14]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_replay_check_looks_back_one_window_and_pruning_keeps_it() {
    let db = database().await;
    let store = open(
        &db,
        Settings {
            dedupe_window: Duration::from_millis(400),
            retain: Some(Duration::ZERO),
            max_rows: Some(0),
            ..settings()
        },
    )
    .await;
    let Inserted::New(first) = store.insert(entry(1, &[])).await.unwrap().0 else {
        panic!("the first copy is new");
    };
    assert_eq!(
        store.insert(entry(1, &[])).await.unwrap().0,
        Inserted::Duplicate(first)
    );
    // Retention lets every delivery go, but not those the replay check still reads.
    assert_eq!(store.prune().await.unwrap().deliveries, 0);
    assert_eq!(store.count().await.unwrap(), 1);
    tokio::time::sleep(Duration::from_millis(600)).await;
    // Past the window, the date check refuses a copy before the store sees it: a body
    // equal to one from before the window is a new delivery.
    let Inserted::New(second) = store.insert(entry(1, &[])).await.unwrap().0 else {
        panic!("a copy past the window is new");
    };
    assert!(second > first);
    assert_eq!(store.prune().await.unwrap().deliveries, 1);
    assert_eq!(store.count().await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_fails_midway_stores_nothing_and_leaves_no_transaction_open() {
    const REFUSED: &str =
        "new row for relation \"dronehook_deliveries\" violates check constraint \"test_refuse\"";
    let db = database().await;
    // One connection: were a failed batch's connection reused with its transaction
    // still open, the next batch would run inside it.
    let store = open(
        &db,
        Settings {
            pool_size: 1,
            ..settings()
        },
    )
    .await;
    let refused = |n: u32| NewEntry {
        repo: Some("refuse/me".into()),
        ..entry(n, &["h"])
    };
    assert!(matches!(
        store.insert(entry(0, &["h"])).await.unwrap().0,
        Inserted::New(_)
    ));
    sql(
        &db,
        "ALTER TABLE dronehook_deliveries ADD CONSTRAINT test_refuse
             CHECK (repo IS DISTINCT FROM 'refuse/me')",
    )
    .await;

    // Alone: the insert fails with the database's one line, and nothing is kept.
    assert_eq!(store.insert(refused(1)).await.unwrap_err(), REFUSED);
    // Among others: whatever shared a transaction with it fails with it, the rest
    // is kept, and every answer says which.
    let inserts: Vec<_> = (2..40)
        .map(|n| {
            let store = store.clone();
            let e = if n == 20 {
                refused(n)
            } else {
                entry(n, &["h"])
            };
            tokio::spawn(async move { (n, store.insert(e).await) })
        })
        .collect();
    let mut kept = vec![0];
    for insert in inserts {
        match insert.await.unwrap() {
            (n, Ok((Inserted::New(_), _))) => kept.push(n),
            (n, Ok((other, _))) => panic!("body {n} was a {other:?}"),
            (_, Err(message)) => assert_eq!(message, REFUSED),
        }
    }
    assert!(!kept.contains(&20));
    let stored: Vec<u32> = {
        let mut ns = Vec::new();
        for n in 0..40 {
            if store.find(&entry(n, &[]).digest).await.unwrap().is_some() {
                ns.push(n);
            }
        }
        ns
    };
    kept.sort_unstable();
    assert_eq!(
        stored, kept,
        "the bodies answered as stored, and only those"
    );
    assert_eq!(store.pending_runs().await.unwrap().len(), kept.len());

    // The failed batches' locks went with their transactions: the same bodies are
    // new now that the database takes them, on the same single connection.
    sql(
        &db,
        "ALTER TABLE dronehook_deliveries DROP CONSTRAINT test_refuse",
    )
    .await;
    assert!(matches!(
        store.insert(refused(1)).await.unwrap().0,
        Inserted::New(_)
    ));
    assert!(matches!(
        store.insert(refused(20)).await.unwrap().0,
        Inserted::New(_)
    ));
    assert!(store.is_available());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schema_newer_than_this_build_is_refused_with_one_line() {
    let db = database().await;
    // Receivers starting together migrate once.
    let (a, b) = tokio::join!(
        PostgresStore::open(db.url(), settings(), BatchStats::default()),
        PostgresStore::open(db.url(), settings(), BatchStats::default()),
    );
    a.unwrap();
    b.unwrap();
    sql(&db, "INSERT INTO dronehook_schema (version) VALUES (99)").await;
    let err = PostgresStore::open(db.url(), settings(), BatchStats::default())
        .await
        .unwrap_err();
    assert!(err.is_schema());
    assert_eq!(
        err.to_string(),
        format!(
            "the store's schema is version 99; this dronehook knows up to {SCHEMA_VERSION}: upgrade dronehook"
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_that_adds_runs_wakes_other_instances() {
    let db = database().await;
    let waiting = open(
        &db,
        Settings {
            poll_every: Duration::from_secs(120),
            ..settings()
        },
    )
    .await;
    let writing = open(&db, settings()).await;
    // Let the listener connect.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let wait = tokio::spawn(async move {
        let started = std::time::Instant::now();
        let woken = waiting.wait_for_work(Duration::from_secs(120)).await;
        (woken, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    writing.insert(entry(1, &["h"])).await.unwrap();
    let (woken, took) = wait.await.unwrap();
    assert!(woken, "not woken by the notification");
    assert!(took < Duration::from_secs(10), "woken after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_going_away_fails_commits_and_coming_back_recovers() {
    let mut cluster = Cluster::start().await.unwrap();
    let db = TestDatabase::create_in(&cluster.admin_url()).await.unwrap();
    let store = open(
        &db,
        Settings {
            poll_every: Duration::from_millis(200),
            ..settings()
        },
    )
    .await;
    assert!(store.is_available());
    assert_eq!(
        store.target(),
        format!("127.0.0.1:{}/{}", cluster.port(), db.name())
    );
    assert!(matches!(
        store.insert(entry(1, &[])).await.unwrap().0,
        Inserted::New(_)
    ));

    cluster.stop();
    let failed = store.insert(entry(2, &[])).await;
    assert!(failed.is_err(), "{failed:?}");
    assert!(!store.is_available());
    let reason = store.unavailable_reason().unwrap();
    assert!(!reason.contains('\n'), "{reason}");
    assert!(!reason.is_empty());

    cluster.start_again().await.unwrap();
    // The store says it is back by itself, without a request.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while !store.is_available() {
        assert!(
            std::time::Instant::now() < deadline,
            "the store did not recover"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(matches!(
        store.insert(entry(2, &[])).await.unwrap().0,
        Inserted::New(_)
    ));
    assert!(matches!(
        store.insert(entry(1, &[])).await.unwrap().0,
        Inserted::Duplicate(_)
    ));
    assert_eq!(store.count().await.unwrap(), 2);
    drop(store);
    drop(db);
}

mod runner {
    //! The runner: handler runs claimed from the store by several instances.

    use std::collections::HashMap;
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use super::*;
    use crate::handler::{Delivery, Observation, Router};
    use crate::metrics::Metrics;
    use crate::store::postgres::runner::{Runner, RunnerSettings};

    fn runner_settings(lease: Duration) -> RunnerSettings {
        RunnerSettings {
            workers: 8,
            max_attempts: 3,
            retry_base: Duration::from_millis(20),
            retry_max: Duration::from_millis(100),
            lease,
        }
    }

    /// Counts how often each delivery id reached the handler, per instance.
    type Seen = Arc<Mutex<HashMap<i64, Vec<(&'static str, u32)>>>>;

    fn counting_router(instance: &'static str, seen: &Seen) -> Arc<Router> {
        let seen = seen.clone();
        let router = Router::new()
            .route_named("h", "", move |d: Delivery| {
                let seen = seen.clone();
                async move {
                    seen.lock()
                        .unwrap()
                        .entry(d.id.unwrap())
                        .or_default()
                        .push((instance, d.attempt));
                    Ok::<_, String>(())
                }
            })
            .unwrap();
        Arc::new(router)
    }

    async fn wait_until_no_run_is_pending(store: &PostgresStore, within: Duration) {
        let deadline = std::time::Instant::now() + within;
        loop {
            let pending = store.pending_runs().await.unwrap().len();
            if pending == 0 {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{pending} runs still pending"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_instances_run_each_handler_once() {
        const N: u32 = 200;
        let db = database().await;
        let a = open(&db, settings()).await;
        let b = open(&db, settings()).await;
        let seen = Seen::default();
        let lease = Duration::from_secs(30);
        let ra = Runner::start(
            a.clone(),
            counting_router("a", &seen),
            Metrics::new(),
            runner_settings(lease),
        );
        let rb = Runner::start(
            b.clone(),
            counting_router("b", &seen),
            Metrics::new(),
            runner_settings(lease),
        );
        let inserts: Vec<_> = (0..N)
            .map(|n| {
                let store = if n % 2 == 0 { a.clone() } else { b.clone() };
                tokio::spawn(async move { store.insert(entry(n, &["h"])).await.unwrap() })
            })
            .collect();
        for insert in inserts {
            insert.await.unwrap();
        }
        wait_until_no_run_is_pending(&a, Duration::from_secs(60)).await;
        ra.stop(Duration::from_secs(5)).await;
        rb.stop(Duration::from_secs(5)).await;
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), N as usize);
        for (id, calls) in seen.iter() {
            assert_eq!(calls.len(), 1, "delivery {id} handled {calls:?}");
            assert_eq!(calls[0].1, 1);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn runs_held_by_a_dead_instance_complete_on_the_survivor() {
        let db = database().await;
        let a = open(&db, settings()).await;
        let b = open(&db, settings()).await;
        let lease = Duration::from_millis(900);
        // Instance `a` starts every run it gets and never finishes one.
        let started = Arc::new(Mutex::new(Vec::new()));
        let hung = {
            let started = started.clone();
            Router::new()
                .route_named("h", "", move |d: Delivery| {
                    started.lock().unwrap().push(d.id.unwrap());
                    std::future::pending::<Result<(), String>>()
                })
                .unwrap()
        };
        let ra = Runner::start(
            a.clone(),
            Arc::new(hung),
            Metrics::new(),
            runner_settings(lease),
        );
        for n in 0..5 {
            a.insert(entry(n, &["h"])).await.unwrap();
        }
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while started.lock().unwrap().len() < 5 {
            assert!(
                std::time::Instant::now() < deadline,
                "a did not claim the runs"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // `a` dies: its tasks stop, its leases are not renewed.
        ra.stop(Duration::ZERO).await;
        drop(a);

        let seen = Seen::default();
        let rb = Runner::start(
            b.clone(),
            counting_router("b", &seen),
            Metrics::new(),
            runner_settings(lease),
        );
        wait_until_no_run_is_pending(&b, Duration::from_secs(30)).await;
        rb.stop(Duration::from_secs(5)).await;
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 5);
        for calls in seen.values() {
            // The second attempt: the first was the dead instance's.
            assert_eq!(calls, &vec![("b", 2)]);
        }
        for id in seen.keys() {
            let runs = b.runs(*id).await.unwrap();
            assert_eq!(runs[0].status, RunStatus::Ok);
            assert_eq!(runs[0].attempts, 2);
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failing_handler_is_retried_then_dead_with_its_attempts_observed() {
        let db = database().await;
        let store = open(&db, settings()).await;
        let observed = Arc::new(Mutex::new(Vec::new()));
        let router = {
            let observed = observed.clone();
            Router::new()
                .route_named("h", "", |d: Delivery| async move {
                    Err::<(), _>(format!("attempt {} failed", d.attempt))
                })
                .unwrap()
                .observe(move |o| {
                    if let Observation::Handler(r) = o {
                        observed.lock().unwrap().push((
                            r.delivery_id,
                            r.attempt,
                            r.will_retry,
                            r.result.as_ref().err().map(|e| e.message().to_owned()),
                        ));
                    }
                })
        };
        let runner = Runner::start(
            store.clone(),
            Arc::new(router),
            Metrics::new(),
            runner_settings(Duration::from_secs(30)),
        );
        let Inserted::New(id) = store.insert(entry(1, &["h"])).await.unwrap().0 else {
            panic!("not new")
        };
        wait_until_no_run_is_pending(&store, Duration::from_secs(30)).await;
        runner.stop(Duration::from_secs(5)).await;
        let observed = observed.lock().unwrap().clone();
        assert_eq!(
            observed,
            vec![
                (Some(id), 1, true, Some("attempt 1 failed".to_owned())),
                (Some(id), 2, true, Some("attempt 2 failed".to_owned())),
                (Some(id), 3, false, Some("attempt 3 failed".to_owned())),
            ]
        );
        let runs = store.runs(id).await.unwrap();
        assert_eq!(runs[0].status, RunStatus::Dead);
        assert_eq!(runs[0].attempts, 3);
        assert_eq!(runs[0].last_error.as_deref(), Some("attempt 3 failed"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivery_of_a_run_under_a_lease_waits_for_its_attempt_to_end() {
    let db = database().await;
    let a = open(&db, settings()).await;
    let b = open(&db, settings()).await;
    let handlers = vec!["h".to_owned()];
    let lease = Duration::from_secs(30);
    let Inserted::New(id) = a.insert(entry(1, &["h"])).await.unwrap().0 else {
        panic!("not new")
    };
    let held = a.claim(&handlers, 10, lease, 5).await.unwrap();
    assert_eq!(held.len(), 1);

    // Redelivered while a runs it: flagged, not freed for another claim.
    assert_eq!(b.redeliver(id, None).await.unwrap(), ["h"]);
    assert!(b.claim(&handlers, 10, lease, 5).await.unwrap().is_empty());
    assert!(a.renew(&held[0], lease).await.unwrap(), "a keeps its lease");

    // The attempt's end is recorded, and the run is due again with a fresh set.
    assert!(
        a.finish(&held[0], &Outcome::Ok, Duration::from_millis(3), None)
            .await
            .unwrap()
    );
    let runs = a.runs(id).await.unwrap();
    assert_eq!(runs[0].status, RunStatus::Pending);
    assert_eq!(runs[0].attempts, 1);
    assert!(runs[0].next_at.is_some(), "{:?}", runs[0]);
    let again = b.claim(&handlers, 10, lease, 5).await.unwrap();
    assert_eq!(
        again,
        vec![Claimed {
            delivery_id: id,
            handler: "h".into(),
            attempt: 2,
            base: 1,
        }]
    );
    // Its own end is final: the flag was for one attempt only.
    assert!(
        b.finish(&again[0], &Outcome::Ok, Duration::from_millis(4), None)
            .await
            .unwrap()
    );
    let runs = a.runs(id).await.unwrap();
    assert_eq!(runs[0].status, RunStatus::Ok);
    assert_eq!(runs[0].attempts, 2);

    // A run that is not held is due at once, as before.
    assert_eq!(b.redeliver(id, None).await.unwrap(), ["h"]);
    assert_eq!(b.claim(&handlers, 10, lease, 5).await.unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attempt_ending_after_its_event_was_erased_keeps_no_output() {
    let db = database().await;
    let store = open(&db, settings()).await;
    let handlers = vec!["h".to_owned()];
    let Inserted::New(id) = store.insert(entry(1, &["h"])).await.unwrap().0 else {
        panic!("not new")
    };
    let held = store
        .claim(&handlers, 10, Duration::from_secs(30), 5)
        .await
        .unwrap();
    assert!(store.erase(id).await.unwrap());
    assert!(
        store
            .finish(&held[0], &Outcome::Ok, Duration::ZERO, Some(b"the body"))
            .await
            .unwrap()
    );
    let event = store.get(id).await.unwrap().unwrap();
    assert_eq!(event.summary.runs[0].status, RunStatus::Ok);
    assert_eq!(event.summary.runs[0].output, None);
}

/// Brings an empty database to schema `version` as the receivers of that version did:
/// the steps up to it, each recorded.
async fn schema_at(db: &TestDatabase, version: i32) {
    sql(
        db,
        "CREATE TABLE dronehook_schema (version integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await;
    for (n, step) in (1..=version).zip(MIGRATIONS) {
        sql(db, step).await;
        sql(
            db,
            &format!("INSERT INTO dronehook_schema (version) VALUES ({n})"),
        )
        .await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn step_two_gives_a_build_body_that_is_not_json_no_status() {
    let db = database().await;
    // A version 1 store with three build events: JSON, not UTF-8, not JSON.
    schema_at(&db, 1).await;
    sql(
        &db,
        "INSERT INTO dronehook_deliveries
             (id, received_at, digest, event, action, known, headers, body) VALUES
             (1, now(), '\\x00', 'build', 'updated', true, '\\x',
              convert_to('{\"build\":{\"status\":\"success\"}}', 'UTF8')),
             (2, now(), '\\x00', 'build', 'updated', true, '\\x', '\\xfffe7b'),
             (3, now(), '\\x00', 'build', 'updated', true, '\\x',
              convert_to('not json', 'UTF8'));",
    )
    .await;
    let store = open(&db, settings()).await;
    let statuses: Vec<(i64, Option<String>)> = store
        .read(
            "SELECT id, build_status FROM dronehook_deliveries ORDER BY id",
            &[],
            |r| (r.get(0), r.get(1)),
        )
        .await
        .unwrap();
    assert_eq!(
        statuses,
        [(1, Some("success".to_owned())), (2, None), (3, None)]
    );
}

/// A CA named `name`: its certificate (PEM), and a certificate with `leaf`'s names
/// it signed with its key (PEM, PEM).
fn tls_chain(name: &str, leaf: rcgen::CertificateParams) -> (String, String, String) {
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.distinguished_name.push(rcgen::DnType::CommonName, name);
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let ca_cert = ca.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca, ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = leaf.signed_by(&leaf_key, &issuer).unwrap();
    (ca_cert.pem(), leaf.pem(), leaf_key.serialize_pem())
}

/// A server's certificate for `localhost`.
fn for_localhost() -> rcgen::CertificateParams {
    rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap()
}

/// A client's certificate for the user `user` (its common name, as PostgreSQL's
/// `cert` authentication reads it).
fn for_user(user: &str) -> rcgen::CertificateParams {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, user);
    params
}

/// Whether the store's connections are encrypted, or why it could not connect.
async fn connects_with_tls(url: &str) -> std::result::Result<bool, String> {
    let settings = Settings {
        background: false,
        ..settings()
    };
    let store = PostgresStore::open(url, settings, BatchStats::default())
        .await
        .map_err(|e| e.to_string())?;
    let client = store.shared.client().await?;
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .map_err(|e| describe(&e))?;
    Ok(row.get(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_and_sslrootcert_mean_what_they_mean_to_libpq() {
    let (ca, cert, key) = tls_chain("dronehook test CA", for_localhost());
    let (other_ca, _, _) = tls_chain("another CA", for_localhost());
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca).unwrap();
    let other_file = dir.path().join("other.pem");
    std::fs::write(&other_file, other_ca).unwrap();
    let (ca_file, other_file) = (ca_file.display(), other_file.display());

    let cluster = Cluster::start_tls(&cert, &key).await.unwrap();
    let db = TestDatabase::create_in(&cluster.admin_url()).await.unwrap();
    let port = cluster.port();
    let name = db.name();
    let at = |host: &str, query: &str| format!("postgres://postgres@{host}:{port}/{name}?{query}");
    let unknown_issuer =
        "store: error performing TLS handshake: invalid peer certificate: UnknownIssuer".to_owned();

    // Encryption without authentication: libpq's `prefer` (the default) and `require`.
    assert_eq!(
        connects_with_tls(&at("127.0.0.1", "sslmode=disable")).await,
        Ok(false)
    );
    assert_eq!(
        connects_with_tls(&at("127.0.0.1", "connect_timeout=5")).await,
        Ok(true)
    );
    assert_eq!(
        connects_with_tls(&at("127.0.0.1", "sslmode=prefer")).await,
        Ok(true)
    );
    assert_eq!(
        connects_with_tls(&at("127.0.0.1", "sslmode=require")).await,
        Ok(true)
    );
    // With roots, `require` checks the chain as `verify-ca` does.
    assert_eq!(
        connects_with_tls(&at(
            "127.0.0.1",
            &format!("sslmode=require&sslrootcert={ca_file}")
        ))
        .await,
        Ok(true)
    );
    assert_eq!(
        connects_with_tls(&at(
            "127.0.0.1",
            &format!("sslmode=require&sslrootcert={other_file}")
        ))
        .await,
        Err(unknown_issuer.clone())
    );
    // `verify-ca`: the chain, not the name (the certificate is for localhost).
    assert_eq!(
        connects_with_tls(&at(
            "127.0.0.1",
            &format!("sslmode=verify-ca&sslrootcert={ca_file}")
        ))
        .await,
        Ok(true)
    );
    assert_eq!(
        connects_with_tls(&at("127.0.0.1", "sslmode=verify-ca&sslrootcert=system")).await,
        Err(unknown_issuer.clone())
    );
    assert_eq!(
        connects_with_tls(&at("127.0.0.1", "sslmode=verify-ca")).await,
        Err(unknown_issuer)
    );
    // `verify-full`: the chain and the name.
    assert_eq!(
        connects_with_tls(&at(
            "localhost",
            &format!("sslmode=verify-full&sslrootcert={ca_file}")
        ))
        .await,
        Ok(true)
    );
    assert_eq!(
        connects_with_tls(&at("127.0.0.1", &format!("sslmode=verify-full&sslrootcert={ca_file}")))
            .await,
        Err("store: error performing TLS handshake: invalid peer certificate: certificate not valid for name \"127.0.0.1\"; certificate is only valid for DnsName(\"localhost\")".to_owned())
    );
    // A password is never part of the messages.
    let with_password = format!(
        "postgres://postgres:pa55word@127.0.0.1:{port}/{name}?sslmode=verify-full&sslrootcert={other_file}"
    );
    let refused = connects_with_tls(&with_password).await.unwrap_err();
    assert!(!refused.contains("pa55word"), "{refused}");

    // A server without TLS: `prefer` falls back to plain, `require` refuses.
    let plain = Cluster::start().await.unwrap();
    let plain_db = TestDatabase::create_in(&plain.admin_url()).await.unwrap();
    let plain_at = |query: &str| {
        format!(
            "postgres://postgres@127.0.0.1:{}/{}?{query}",
            plain.port(),
            plain_db.name()
        )
    };
    assert_eq!(
        connects_with_tls(&plain_at("sslmode=prefer")).await,
        Ok(false)
    );
    assert_eq!(
        connects_with_tls(&plain_at("sslmode=require")).await,
        Err("store: error performing TLS handshake: server does not support TLS".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslcert_and_sslkey_log_in_with_a_client_certificate() {
    use std::os::unix::fs::PermissionsExt as _;
    let (_, server_cert, server_key) = tls_chain("dronehook test CA", for_localhost());
    let (client_ca, cert, key) = tls_chain("dronehook client CA", for_user("postgres"));
    let (_, stranger_cert, stranger_key) = tls_chain("another client CA", for_user("postgres"));
    let dir = tempfile::tempdir().unwrap();
    let file = |name: &str, text: &str, mode: u32| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        path.display().to_string()
    };
    let (cert, key) = (file("c.crt", &cert, 0o644), file("c.key", &key, 0o600));
    let stranger = (
        file("s.crt", &stranger_cert, 0o644),
        file("s.key", &stranger_key, 0o600),
    );
    let readable_key = file("r.key", &std::fs::read_to_string(&key).unwrap(), 0o644);
    let no_key = file("n.key", &std::fs::read_to_string(&cert).unwrap(), 0o600);

    let cluster = Cluster::start_tls_client_certs(&server_cert, &server_key, &client_ca)
        .await
        .unwrap();
    let db = TestDatabase::create_in(&cluster.admin_url()).await.unwrap();
    let at = |query: &str| {
        format!(
            "postgres://postgres@127.0.0.1:{}/{}?{query}",
            cluster.port(),
            db.name()
        )
    };

    assert_eq!(
        connects_with_tls(&at(&format!("sslmode=require&sslcert={cert}&sslkey={key}"))).await,
        Ok(true)
    );
    assert_eq!(
        connects_with_tls(&at(&format!("sslcert={cert}&sslkey={key}"))).await,
        Ok(true),
        "prefer"
    );
    // The server's refusals: no certificate, one from a CA it does not trust, no TLS.
    assert_eq!(
        connects_with_tls(&at("sslmode=require")).await,
        Err("store: connection requires a valid client certificate".to_owned())
    );
    assert_eq!(
        connects_with_tls(&at(&format!(
            "sslmode=require&sslcert={}&sslkey={}",
            stranger.0, stranger.1
        )))
        .await,
        Err(
            "store: error communicating with the server: received fatal alert: UnknownCA"
                .to_owned()
        )
    );
    assert_eq!(
        connects_with_tls(&at(&format!(
            "sslmode=disable&sslcert={cert}&sslkey=/nonexistent/c.key"
        )))
        .await,
        Err(format!(
            "store: no pg_hba.conf entry for host \"127.0.0.1\", user \"postgres\", database \"{}\", no encryption",
            db.name()
        )),
        "without TLS the files are not read, and the server refuses"
    );
    // Ours, before connecting: one line each.
    assert_eq!(
        connects_with_tls(&at(&format!("sslmode=require&sslcert={cert}"))).await,
        Err("store: sslcert needs sslkey: give both, or neither".to_owned())
    );
    assert_eq!(
        connects_with_tls(&at(&format!("sslmode=require&sslkey={key}"))).await,
        Err("store: sslkey needs sslcert: give both, or neither".to_owned())
    );
    assert_eq!(
        connects_with_tls(&at(&format!(
            "sslmode=require&sslcert={cert}&sslkey={readable_key}"
        )))
        .await,
        Err(format!(
            "store: sslkey {readable_key}: its group or others may read it (mode 0644); make it u=rw (0600) or less, or u=rw,g=r (0640) or less if root owns it"
        ))
    );
    assert_eq!(
        connects_with_tls(&at(&format!(
            "sslmode=require&sslcert={cert}&sslkey={no_key}"
        )))
        .await,
        Err(format!("store: sslkey {no_key}: no private key in it"))
    );
    assert_eq!(
        connects_with_tls(&at(&format!("sslmode=require&sslcert={key}&sslkey={key}"))).await,
        Err(format!("store: sslcert {key}: no certificate in it"))
    );
    assert_eq!(
        connects_with_tls(&at(&format!(
            "sslmode=require&sslcert={cert}&sslkey=/nonexistent/c.key"
        )))
        .await,
        Err("store: sslkey /nonexistent/c.key: No such file or directory (os error 2)".to_owned())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_4_store_is_read_as_it_is_and_migrated_by_a_receiver() {
    let db = database().await;
    schema_at(&db, READ_VERSION).await;
    let version = |store: PostgresStore| async move {
        store
            .read("SELECT max(version) FROM dronehook_schema", &[], |r| {
                r.get::<_, i32>(0)
            })
            .await
            .unwrap()
    };

    let tool = PostgresStore::for_tool(db.url(), true).await.unwrap();
    assert_eq!(tool.count().await.unwrap(), 0);
    assert_eq!(
        version(tool).await,
        [READ_VERSION],
        "a read-only tool migrates nothing"
    );

    let store = open(&db, settings()).await;
    assert_eq!(
        store.insert(entry(1, &["notify"])).await.unwrap().0,
        Inserted::New(1)
    );
    assert_eq!(version(store).await, [SCHEMA_VERSION]);
}
