//! `Store`, the tools' view of a store, against a real receiver writing a real SQLite
//! file or a real PostgreSQL database (dronehook-testkit): every method, its bad
//! inputs, read-only handles, schema versions, and reading beside a writing receiver.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use dronehook_server::protocol::{BodyDigest, EventFilter};
use dronehook_server::{Delivery, EventQuery, RunStatus, Server, Store, StoreUrl, StoredEvent};
use http::StatusCode;

use crate::util::{PATIENCE, config, corpus, deliver, start, user_event};

/// Where a test's store lives; dropping it removes it.
pub(crate) struct Fixture {
    pub(crate) url: StoreUrl,
    _dir: Option<tempfile::TempDir>,
    #[cfg(feature = "postgres")]
    _db: Option<dronehook_testkit::TestDatabase>,
}

pub(crate) fn sqlite() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    Fixture {
        url: StoreUrl::Sqlite(dir.path().join("journal.db")),
        _dir: Some(dir),
        #[cfg(feature = "postgres")]
        _db: None,
    }
}

#[cfg(feature = "postgres")]
pub(crate) async fn postgres() -> Fixture {
    let db = dronehook_testkit::database().await;
    Fixture {
        url: StoreUrl::Postgres(db.url().to_owned()),
        _dir: None,
        _db: Some(db),
    }
}

/// A build event of another repository (the corpus has one), with a distinct body.
fn build_of(name: &str, slug: &str) -> Vec<u8> {
    let body = std::str::from_utf8(corpus(name)).unwrap();
    let from = "\"slug\": \"Diesel-Net/plex\"";
    assert!(body.contains(from), "the corpus names its repository");
    body.replace(from, &format!("\"slug\": \"{slug}\""))
        .into_bytes()
}

/// Waits (up to [`PATIENCE`]) until `check` holds for the event.
async fn wait_for_event(
    store: &Store,
    id: i64,
    check: impl Fn(&StoredEvent) -> bool,
) -> StoredEvent {
    let deadline = std::time::Instant::now() + PATIENCE;
    loop {
        let event = store.get(id).await.unwrap().expect("the event");
        if check(&event) {
            return event;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the event never got there: {event:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn ids(events: &[dronehook_server::EventSummary]) -> Vec<i64> {
    events.iter().map(|e| e.id).collect()
}

/// A receiver on the fixture's store whose `notify` route (builds) keeps an output and
/// fails for the repository `acme/flaky`.
async fn receiver(fx: &Fixture, calls: Arc<AtomicU32>) -> Server {
    let handler = move |d: Delivery| {
        let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
        d.set_output(format!("call {n} attempt {}\n", d.attempt));
        let flaky = d.envelope.repo_slug() == Some("acme/flaky");
        async move {
            if flaky {
                Err("boom".to_owned())
            } else {
                Ok(())
            }
        }
    };
    start(
        config()
            .store(fx.url.clone())
            .workers(2)
            .max_attempts(2)
            .retry_base(Duration::from_millis(10))
            .lease(Duration::from_secs(5)),
        dronehook_server::Router::new()
            .route_named("notify", "build:*", handler)
            .unwrap(),
    )
    .await
}

async fn every_method_answers_as_documented(fx: Fixture) {
    let calls = Arc::new(AtomicU32::new(0));
    let server = receiver(&fx, calls.clone()).await;
    let addr = server.local_addr();
    let bodies = [
        corpus("user_created").to_vec(),
        build_of("build_success", "Diesel-Net/plex"),
        build_of("build_failure", "acme/api"),
        build_of("build_success", "acme/flaky"),
        corpus("repo_enabled").to_vec(),
    ];
    for body in &bodies {
        let answer = deliver(addr, body).await;
        assert_eq!(answer.status, StatusCode::NO_CONTENT);
        assert!(answer.headers.get("dronehook-duplicate").is_none());
    }
    // A copy is a 2xx that says it is one.
    let again = deliver(addr, &bodies[1]).await;
    assert_eq!(again.status, StatusCode::NO_CONTENT);
    assert_eq!(
        again
            .headers
            .get(dronehook_server::protocol::DUPLICATE_HEADER)
            .unwrap(),
        "true"
    );

    let store = Store::open(&fx.url).await.unwrap();
    assert!(!store.is_read_only());
    assert_eq!(store.url(), &fx.url);
    let all = store.list(&EventQuery::new()).await.unwrap();
    assert_eq!(all.len(), 5);
    assert!(all.windows(2).all(|w| w[0].id > w[1].id), "newest first");
    let [repo_enabled, flaky, api, plex, user] = ids(&all)[..] else {
        panic!("five events")
    };
    // The flaky run ends dead after its two attempts; the others ok.
    let dead = wait_for_event(&store, flaky, |e| {
        e.summary
            .runs
            .first()
            .is_some_and(|r| r.status == RunStatus::Dead)
    })
    .await;
    wait_for_event(&store, api, |e| e.summary.runs[0].status == RunStatus::Ok).await;
    wait_for_event(&store, plex, |e| e.summary.runs[0].status == RunStatus::Ok).await;

    // Each filter, alone and together.
    let list = |q: EventQuery| {
        let store = store.clone();
        async move { ids(&store.list(&q).await.unwrap()) }
    };
    let builds = EventFilter::parse("build:*").unwrap();
    assert_eq!(
        list(EventQuery::new().events(builds.clone())).await,
        [flaky, api, plex]
    );
    assert_eq!(
        list(EventQuery::new().events(EventFilter::parse("user:*,repo:enabled").unwrap())).await,
        [repo_enabled, user]
    );
    assert!(
        list(EventQuery::new().events(EventFilter::parse("nothing:*").unwrap()))
            .await
            .is_empty()
    );
    assert_eq!(list(EventQuery::new().repo("acme/*")).await, [flaky, api]);
    assert_eq!(list(EventQuery::new().repo("acme/ap?")).await, [api]);
    assert_eq!(list(EventQuery::new().repo("acme/api")).await, [api]);
    assert!(
        list(EventQuery::new().repo("ACME/*")).await.is_empty(),
        "case-sensitive"
    );
    assert!(
        list(EventQuery::new().repo("acme_api")).await.is_empty(),
        "`_` is literal"
    );
    assert!(
        list(EventQuery::new().repo("acme%")).await.is_empty(),
        "`%` is literal"
    );
    assert_eq!(
        list(EventQuery::new().repo("Diesel-Net/plex")).await,
        [repo_enabled, plex]
    );
    assert_eq!(list(EventQuery::new().build_status("failure")).await, [api]);
    assert_eq!(
        list(EventQuery::new().build_status("success")).await,
        [flaky, plex]
    );
    assert_eq!(
        list(EventQuery::new().run_status(RunStatus::Dead)).await,
        [flaky]
    );
    assert_eq!(
        list(EventQuery::new().run_status(RunStatus::Ok)).await,
        [api, plex]
    );
    assert!(
        list(EventQuery::new().run_status(RunStatus::Pending))
            .await
            .is_empty()
    );
    let later = SystemTime::now() + Duration::from_secs(60);
    assert!(list(EventQuery::new().since(later)).await.is_empty());
    assert_eq!(list(EventQuery::new().until(later)).await.len(), 5);
    assert!(
        list(EventQuery::new().until(all[4].received_at))
            .await
            .is_empty()
    );
    assert_eq!(
        list(EventQuery::new().since(all[0].received_at)).await[0],
        repo_enabled
    );
    assert_eq!(
        list(EventQuery::new().limit(2)).await,
        [repo_enabled, flaky]
    );
    assert_eq!(
        list(EventQuery::new().limit(2).before(flaky)).await,
        [api, plex]
    );
    assert_eq!(
        list(EventQuery::new().before(user)).await,
        Vec::<i64>::new()
    );
    assert_eq!(
        list(
            EventQuery::new()
                .events(builds)
                .repo("acme/*")
                .build_status("success")
        )
        .await,
        [flaky]
    );

    // A summary's fields; its runs come without output.
    let summary = &all[1];
    assert_eq!(
        (summary.event.as_str(), summary.action.as_str()),
        ("build", "updated")
    );
    assert!(summary.known && !summary.erased);
    assert_eq!(summary.repo.as_deref(), Some("acme/flaky"));
    assert_eq!(summary.build_status.as_deref(), Some("success"));
    assert!(summary.build.is_some());
    assert!(all[4].runs.is_empty() && all[4].repo.is_none() && all[4].build_status.is_none());

    // One event in full.
    assert_eq!(dead.body, bodies[3]);
    assert_eq!(dead.digest, BodyDigest::of(&bodies[3]));
    assert_eq!(dead.secret_index, Some(0));
    assert!(
        dead.headers
            .iter()
            .any(|(n, v)| n == "x-drone-event" && v == b"build")
    );
    let run = &dead.summary.runs[0];
    assert_eq!(run.handler, "notify");
    assert_eq!((run.status, run.attempts), (RunStatus::Dead, 2));
    assert_eq!(run.last_error.as_deref(), Some("boom"));
    assert!(run.next_at.is_none() && run.updated_at.is_some() && run.last_duration.is_some());
    let output = String::from_utf8(run.output.clone().unwrap()).unwrap();
    assert!(output.ends_with("attempt 2\n"), "{output}");
    let debug = format!("{dead:?}");
    assert!(
        debug.contains("signature: ***") && !debug.contains("Diesel"),
        "{debug}"
    );
    assert!(store.get(i64::MAX).await.unwrap().is_none());

    // Counts.
    let stats = store.stats(None).await.unwrap();
    assert_eq!((stats.events, stats.erased), (5, 0));
    assert_eq!(
        stats.by_event,
        [
            ("build:updated".to_owned(), 3),
            ("repo:enabled".to_owned(), 1),
            ("user:created".to_owned(), 1)
        ]
    );
    assert_eq!(
        stats.by_build_status,
        [("failure".to_owned(), 1), ("success".to_owned(), 2)]
    );
    assert_eq!(
        stats.by_run_status,
        [(RunStatus::Ok, 2), (RunStatus::Dead, 1)]
    );
    assert_eq!(stats.oldest, Some(all[4].received_at));
    assert_eq!(stats.newest, Some(all[0].received_at));
    assert_eq!(stats.oldest_pending, None);
    assert!(stats.size_bytes.unwrap() > 0);
    assert_eq!(store.stats(Some(later)).await.unwrap().events, 0);

    // The board: each repository's newest build.
    let board: Vec<(i64, Option<String>)> = store
        .latest_builds(10)
        .await
        .unwrap()
        .iter()
        .map(|e| (e.summary.id, e.summary.repo.clone()))
        .collect();
    assert_eq!(
        board,
        [
            (flaky, Some("acme/flaky".to_owned())),
            (api, Some("acme/api".to_owned())),
            (plex, Some("Diesel-Net/plex".to_owned()))
        ]
    );
    assert_eq!(store.latest_builds(1).await.unwrap().len(), 1);

    // Redelivery from this handle: the running receiver runs it again, with a fresh
    // set of attempts whose numbers go on.
    assert_eq!(store.redeliver(flaky, None).await.unwrap(), ["notify"]);
    let again = wait_for_event(&store, flaky, |e| {
        e.summary.runs[0].attempts == 4 && e.summary.runs[0].status == RunStatus::Dead
    })
    .await;
    let output = String::from_utf8(again.summary.runs[0].output.clone().unwrap()).unwrap();
    assert!(output.ends_with("attempt 4\n"), "{output}");
    // A run by a name the event has not: created, pending (no receiver has it).
    assert_eq!(
        store.redeliver(user, Some("manual")).await.unwrap(),
        ["manual"]
    );
    let manual = &store.get(user).await.unwrap().unwrap().summary.runs[0];
    assert_eq!(
        (manual.handler.as_str(), manual.status),
        ("manual", RunStatus::Pending)
    );
    assert!(manual.next_at.is_some());
    let stats = store.stats(None).await.unwrap();
    assert_eq!(stats.oldest_pending, Some(all[4].received_at));
    let e = store.redeliver(i64::MAX, None).await.unwrap_err();
    assert!(e.is_not_found(), "{e}");
    assert_eq!(e.to_string(), format!("no event {}", i64::MAX));
    assert!(
        store
            .redeliver(user, Some(""))
            .await
            .unwrap_err()
            .is_store()
    );

    // Erasing.
    assert!(store.erase(api).await.unwrap());
    assert!(!store.erase(api).await.unwrap(), "erased twice");
    let erased = store.get(api).await.unwrap().unwrap();
    assert!(erased.summary.erased && erased.body.is_empty() && erased.headers.is_empty());
    assert_eq!(erased.digest, BodyDigest::of(&bodies[2]));
    assert_eq!(erased.summary.repo.as_deref(), Some("acme/api"));
    assert_eq!(erased.summary.build_status.as_deref(), Some("failure"));
    assert_eq!(erased.summary.runs[0].status, RunStatus::Ok);
    assert!(erased.summary.runs[0].output.is_none());
    let e = store.erase(i64::MAX).await.unwrap_err();
    assert!(
        e.is_not_found() && e.to_string() == format!("no event {}", i64::MAX),
        "{e}"
    );
    let e = store.redeliver(api, None).await.unwrap_err();
    assert_eq!(
        e.to_string(),
        format!("store: event {api} was erased: there is nothing to redeliver")
    );
    assert_eq!(store.stats(None).await.unwrap().erased, 1);
    // An erased build leaves the board; a copy of its body is still a replay.
    assert_eq!(
        ids_of(&store.latest_builds(10).await.unwrap()),
        [flaky, plex]
    );
    let copy = deliver(addr, &bodies[2]).await;
    assert_eq!(copy.headers.get("dronehook-duplicate").unwrap(), "true");

    // Pruning: everything older than now whose runs are finished (not `user`'s
    // pending `manual` run).
    assert_eq!(store.prune(Duration::ZERO, true).await.unwrap().events, 4);
    assert_eq!(
        store.list(&EventQuery::new()).await.unwrap().len(),
        5,
        "dry"
    );
    assert_eq!(
        store
            .prune(Duration::from_secs(3600), false)
            .await
            .unwrap()
            .events,
        0
    );
    assert_eq!(store.prune(Duration::ZERO, false).await.unwrap().events, 4);
    assert_eq!(list(EventQuery::new()).await, [user]);
    server.shutdown().await.unwrap();
}

fn ids_of(events: &[StoredEvent]) -> Vec<i64> {
    events.iter().map(|e| e.summary.id).collect()
}

async fn a_read_only_handle_reads_and_refuses_writes(fx: Fixture) {
    let server = receiver(&fx, Arc::default()).await;
    assert_eq!(
        deliver(server.local_addr(), &user_event(1)).await.status,
        StatusCode::NO_CONTENT
    );
    let store = Store::open_read_only(&fx.url).await.unwrap();
    assert!(store.is_read_only());
    let all = store.list(&EventQuery::new()).await.unwrap();
    assert_eq!(all.len(), 1);
    let id = all[0].id;
    assert!(store.get(id).await.unwrap().is_some());
    assert_eq!(store.stats(None).await.unwrap().events, 1);
    assert_eq!(store.prune(Duration::ZERO, true).await.unwrap().events, 1);
    let expected = format!("{} was opened read-only: nothing is changed", fx.url);
    for e in [
        store.redeliver(id, None).await.unwrap_err(),
        store.erase(id).await.unwrap_err(),
        store
            .prune(Duration::ZERO, false)
            .await
            .map(|_| ())
            .unwrap_err(),
    ] {
        assert!(e.is_read_only(), "{e}");
        assert_eq!(e.to_string(), expected);
    }
    // Nothing was changed.
    let rw = Store::open(&fx.url).await.unwrap();
    assert!(!rw.get(id).await.unwrap().unwrap().summary.erased);
    server.shutdown().await.unwrap();
}

/// Reads beside a receiver taking a burst: every list succeeds, pages never repeat
/// or skip an id, and the count ends at what was acknowledged.
async fn reading_while_a_receiver_writes(fx: Fixture) {
    const N: u64 = 150;
    let server = receiver(&fx, Arc::default()).await;
    let addr = server.local_addr();
    let store = Store::open(&fx.url).await.unwrap();
    let writer = tokio::spawn(async move {
        let sends: Vec<_> = (0..N)
            .map(|n| tokio::spawn(async move { deliver(addr, &user_event(n)).await.status }))
            .collect();
        for send in sends {
            assert_eq!(send.await.unwrap(), StatusCode::NO_CONTENT);
        }
    });
    let mut reads = 0;
    while !writer.is_finished() {
        let page = store.list(&EventQuery::new().limit(40)).await.unwrap();
        assert!(page.windows(2).all(|w| w[0].id > w[1].id));
        store.stats(None).await.unwrap();
        reads += 1;
    }
    writer.await.unwrap();
    assert!(reads > 0);
    // Paging through everything sees each event once.
    let mut seen = Vec::new();
    let mut query = EventQuery::new().limit(7);
    loop {
        let page = store.list(&query).await.unwrap();
        let Some(last) = page.last() else { break };
        query = query.before(last.id);
        seen.extend(ids(&page));
    }
    assert_eq!(seen.len() as u64, N);
    assert!(seen.windows(2).all(|w| w[0] > w[1]));
    server.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_every_method_answers_as_documented() {
    every_method_answers_as_documented(sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_read_only_handle_reads_and_refuses_writes() {
    a_read_only_handle_reads_and_refuses_writes(sqlite()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_reading_while_a_receiver_writes() {
    reading_while_a_receiver_writes(sqlite()).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_every_method_answers_as_documented() {
    every_method_answers_as_documented(postgres().await).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_read_only_handle_reads_and_refuses_writes() {
    a_read_only_handle_reads_and_refuses_writes(postgres().await).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_reading_while_a_receiver_writes() {
    reading_while_a_receiver_writes(postgres().await).await;
}

#[tokio::test]
async fn a_missing_sqlite_store_is_not_found_and_never_created() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope.db");
    let url = StoreUrl::Sqlite(path.clone());
    for e in [
        Store::open(&url).await.unwrap_err(),
        Store::open_read_only(&url).await.unwrap_err(),
    ] {
        assert!(e.is_not_found(), "{e}");
        assert_eq!(e.to_string(), format!("no store at {}", path.display()));
    }
    assert!(!path.exists(), "a tool never creates a store");
    // A file that is an SQLite database but no journal.
    rusqlite::Connection::open(&path)
        .unwrap()
        .execute_batch("CREATE TABLE other (x)")
        .unwrap();
    let e = Store::open(&url).await.unwrap_err();
    assert!(e.is_not_found());
    assert_eq!(
        e.to_string(),
        format!(
            "no store at {}: the file holds no dronehook journal",
            path.display()
        )
    );
    // A file that is not a database at all.
    std::fs::write(
        &path,
        b"hello, this is not sqlite at all, not even close........",
    )
    .unwrap();
    let e = Store::open(&url).await.unwrap_err();
    assert!(e.is_store(), "{e}");
    assert_eq!(
        e.to_string(),
        format!("store: sqlite:{}: file is not a database", path.display())
    );
}

/// Version 1's tables, as journals were written before schema versions were kept.
const SCHEMA_V1: &str = "
CREATE TABLE deliveries (
    id INTEGER PRIMARY KEY, received_at_ms INTEGER NOT NULL, digest BLOB NOT NULL,
    dedupe_key BLOB UNIQUE, event TEXT NOT NULL, action TEXT NOT NULL,
    known INTEGER NOT NULL, repo TEXT, build INTEGER, headers BLOB NOT NULL,
    body BLOB NOT NULL
);
CREATE TABLE runs (
    delivery_id INTEGER NOT NULL REFERENCES deliveries(id), handler TEXT NOT NULL,
    status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT,
    duration_ms INTEGER, updated_at_ms INTEGER, PRIMARY KEY (delivery_id, handler)
);
CREATE INDEX runs_pending ON runs (status) WHERE status = 'pending';
";

#[tokio::test]
async fn a_version_1_journal_is_migrated_by_a_read_write_open_only() {
    let fx = sqlite();
    let StoreUrl::Sqlite(path) = &fx.url else {
        unreachable!()
    };
    let body = corpus("build_failure");
    {
        let c = rusqlite::Connection::open(path).unwrap();
        c.execute_batch(SCHEMA_V1).unwrap();
        c.execute(
            "INSERT INTO deliveries VALUES (1, 1700000000000, ?1, ?1, 'build', 'updated', 1,
             'Diesel-Net/plex', 7, CAST('x-drone-event: build' || char(13, 10) AS BLOB), ?2)",
            rusqlite::params![&BodyDigest::of(body).as_bytes()[..], body],
        )
        .unwrap();
        c.execute_batch(
            "INSERT INTO runs VALUES (1, 'notify', 'failed', 3, 'boom', 12, 1700000000100);",
        )
        .unwrap();
    }
    let e = Store::open_read_only(&fx.url).await.unwrap_err();
    assert!(e.is_schema(), "{e}");
    assert_eq!(
        e.to_string(),
        "the store's schema is version 1; reading needs version 3: open it read-write once (or start a receiver on it) to migrate it"
    );
    let store = Store::open(&fx.url).await.unwrap();
    let event = store.get(1).await.unwrap().unwrap();
    assert_eq!(
        event.summary.build_status.as_deref(),
        Some("failure"),
        "backfilled"
    );
    assert_eq!(
        event.summary.runs[0].status,
        RunStatus::Dead,
        "`failed` is `dead`"
    );
    assert_eq!(event.secret_index, None);
    assert_eq!(event.body, body);
    let version: i64 = rusqlite::Connection::open(path)
        .unwrap()
        .query_row("PRAGMA user_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 3);
    // Read-only now reads it.
    let ro = Store::open_read_only(&fx.url).await.unwrap();
    assert_eq!(
        ro.list(&EventQuery::new().run_status(RunStatus::Dead))
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn a_newer_sqlite_schema_is_refused_by_tools_and_by_the_receiver() {
    let fx = sqlite();
    let StoreUrl::Sqlite(path) = &fx.url else {
        unreachable!()
    };
    // A journal written by this build, then stamped as a later one's.
    let server = start(config().journal(path), dronehook_server::Router::new()).await;
    server.shutdown().await.unwrap();
    rusqlite::Connection::open(path)
        .unwrap()
        .execute_batch("PRAGMA user_version = 7")
        .unwrap();
    let expected =
        "the store's schema is version 7; this dronehook knows up to 3: upgrade dronehook";
    for e in [
        Store::open(&fx.url).await.unwrap_err(),
        Store::open_read_only(&fx.url).await.unwrap_err(),
        Server::bind(
            config().journal(path).build(),
            dronehook_server::Router::new(),
        )
        .await
        .unwrap_err(),
        dronehook_server::Journal::open(path).unwrap_err(),
    ] {
        assert!(e.is_schema(), "{e}");
        assert_eq!(e.to_string(), expected);
    }
}

#[cfg(feature = "postgres")]
async fn pg(url: &str, query: &str) {
    let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(connection);
    client.batch_execute(query).await.unwrap();
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_an_empty_or_unreachable_database_is_no_store() {
    let fx = postgres().await;
    for e in [
        Store::open(&fx.url).await.unwrap_err(),
        Store::open_read_only(&fx.url).await.unwrap_err(),
    ] {
        assert!(e.is_not_found(), "{e}");
        let line = e.to_string();
        assert!(
            line.starts_with("no store at 127.0.0.1:5432/")
                && line.ends_with(": the database holds no dronehook tables"),
            "{line}"
        );
    }
    // Nothing was created.
    let e = Store::open(&fx.url).await.unwrap_err();
    assert!(e.is_not_found());
    let nobody: StoreUrl = "postgres://u:s3cr3t@127.0.0.1:1/x?connect_timeout=2"
        .parse()
        .unwrap();
    let e = Store::open(&nobody).await.unwrap_err();
    assert!(e.is_store(), "{e}");
    let line = e.to_string();
    assert!(
        line.starts_with("store: ") && !line.contains('\n'),
        "{line}"
    );
    assert!(!line.contains("s3cr3t") && !format!("{e:?}").contains("s3cr3t"));
    let debug = format!("{:?}", Store::open(&fx.url).await.map(|_| ()).unwrap_err());
    assert!(!debug.contains('\n'));
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_newer_schema_is_refused_by_tools_and_by_the_receiver() {
    let fx = postgres().await;
    let StoreUrl::Postgres(url) = &fx.url else {
        unreachable!()
    };
    let server = start(
        config().store(fx.url.clone()),
        dronehook_server::Router::new(),
    )
    .await;
    server.shutdown().await.unwrap();
    pg(url, "INSERT INTO dronehook_schema (version) VALUES (7)").await;
    let expected =
        "the store's schema is version 7; this dronehook knows up to 5: upgrade dronehook";
    for e in [
        Store::open(&fx.url).await.unwrap_err(),
        Store::open_read_only(&fx.url).await.unwrap_err(),
        Server::bind(
            config().store(fx.url.clone()).build(),
            dronehook_server::Router::new(),
        )
        .await
        .unwrap_err(),
    ] {
        assert!(e.is_schema(), "{e}");
        assert_eq!(e.to_string(), expected);
    }
}

/// Version 1 of the PostgreSQL schema, as receivers before this one created it.
#[cfg(feature = "postgres")]
const PG_SCHEMA_V1: &str = "
CREATE TABLE dronehook_schema (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now());
INSERT INTO dronehook_schema (version) VALUES (1);
CREATE TABLE dronehook_deliveries (
    id bigint PRIMARY KEY, received_at timestamptz NOT NULL, digest bytea NOT NULL,
    event text NOT NULL, action text NOT NULL, known boolean NOT NULL, repo text,
    build bigint, headers bytea NOT NULL, body bytea NOT NULL
);
CREATE SEQUENCE dronehook_delivery_ids OWNED BY dronehook_deliveries.id;
CREATE INDEX dronehook_deliveries_digest ON dronehook_deliveries (digest);
CREATE INDEX dronehook_deliveries_received ON dronehook_deliveries (received_at);
CREATE TABLE dronehook_dedupe (key bytea PRIMARY KEY, delivery_id bigint NOT NULL, expires_at timestamptz NOT NULL);
CREATE INDEX dronehook_dedupe_expiry ON dronehook_dedupe (expires_at);
CREATE TABLE dronehook_runs (
    delivery_id bigint NOT NULL REFERENCES dronehook_deliveries (id) ON DELETE CASCADE,
    handler text NOT NULL,
    status text NOT NULL CHECK (status IN ('pending', 'ok', 'dead')),
    attempts integer NOT NULL DEFAULT 0, last_error text, duration_ms bigint,
    updated_at timestamptz NOT NULL DEFAULT now(), next_at timestamptz NOT NULL DEFAULT now(),
    lease_owner text, lease_until timestamptz, PRIMARY KEY (delivery_id, handler)
);
CREATE INDEX dronehook_runs_due ON dronehook_runs (next_at) WHERE status = 'pending';
";

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_version_1_store_is_migrated_by_a_read_write_open_only() {
    let fx = postgres().await;
    let StoreUrl::Postgres(url) = &fx.url else {
        unreachable!()
    };
    pg(url, PG_SCHEMA_V1).await;
    let body = std::str::from_utf8(corpus("build_failure"))
        .unwrap()
        .replace('\'', "''");
    pg(
        url,
        &format!(
            "INSERT INTO dronehook_deliveries VALUES (1, now(), '\\x00', 'build', 'updated', true,
             'Diesel-Net/plex', 7, convert_to('x-drone-event: build' || chr(13) || chr(10), 'UTF8'),
             convert_to('{body}', 'UTF8'));
             INSERT INTO dronehook_runs (delivery_id, handler, status, attempts, last_error)
             VALUES (1, 'notify', 'dead', 3, 'boom');"
        ),
    )
    .await;
    let e = Store::open_read_only(&fx.url).await.unwrap_err();
    assert!(e.is_schema(), "{e}");
    assert_eq!(
        e.to_string(),
        "the store's schema is version 1; reading needs version 4: open it read-write once (or start a receiver on it) to migrate it"
    );
    let store = Store::open(&fx.url).await.unwrap();
    let event = store.get(1).await.unwrap().unwrap();
    assert_eq!(
        event.summary.build_status.as_deref(),
        Some("failure"),
        "backfilled"
    );
    assert_eq!(event.summary.runs[0].status, RunStatus::Dead);
    assert_eq!(event.body, corpus("build_failure"));
    let ro = Store::open_read_only(&fx.url).await.unwrap();
    assert_eq!(
        ro.list(&EventQuery::new().build_status("failure"))
            .await
            .unwrap()
            .len(),
        1
    );
}
