//! `serve --store postgres://...` (and `DRONEHOOK_STORE`): the banner hides the URL's
//! password, a request is committed to PostgreSQL before its answer, its copy is a
//! replay, the handler gets the delivery id and attempt; a newer schema refuses the
//! start with one line.

use std::time::{Duration, Instant};

use dronehook_testkit::{TestDatabase, database};

use crate::support::{PATIENCE, Served, dronehook, run, serve_cmd, stderr, stdout};

fn test_database() -> (tokio::runtime::Runtime, TestDatabase) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let db = rt.block_on(database());
    (rt, db)
}

fn query(rt: &tokio::runtime::Runtime, url: &str, sql: &str) -> Vec<tokio_postgres::Row> {
    rt.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client.query(sql, &[]).await.unwrap()
    })
}

/// The URL with a password added to its user (trust authentication ignores it).
fn with_password(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest))
            if rest.contains('@') && !rest[..rest.find('@').unwrap()].contains(':') =>
        {
            let (user, host) = rest.split_once('@').unwrap();
            format!("{scheme}://{user}:hunter2@{host}")
        }
        _ => url.to_owned(),
    }
}

#[test]
fn a_request_is_committed_to_postgres_and_its_copy_is_a_replay() {
    let (rt, db) = test_database();
    let dir = tempfile::tempdir().unwrap();
    let url = with_password(db.url());
    let mut serve = serve_cmd();
    serve
        .env("OUT", dir.path())
        .env("DRONEHOOK_STORE", &url)
        .args(["--secret", "s3cr3t", "--output", "none", "--exec"])
        .arg(r#"echo "$DRONE_DELIVERY_ID $DRONE_DELIVERY_ATTEMPT" >> "$OUT/runs""#);
    let served = Served::start(serve);
    assert!(
        served.banner.contains(", store postgres://"),
        "{}",
        served.banner
    );
    assert!(!served.banner.contains("hunter2"), "{}", served.banner);
    if url != db.url() {
        assert!(served.banner.contains(":***@"), "{}", served.banner);
    }

    for _ in 0..2 {
        let out = run(dronehook().args([
            "send",
            "--endpoint",
            &served.url,
            "--secret",
            "s3cr3t",
            "fixture:build_created",
        ]));
        assert_eq!(
            out.status.code(),
            Some(0),
            "{}{}",
            stdout(&out),
            stderr(&out)
        );
    }
    // One delivery for the two copies, committed before the answers.
    let rows = query(&rt, db.url(), "SELECT id FROM dronehook_deliveries");
    assert_eq!(rows.len(), 1);
    let id: i64 = rows[0].get(0);

    let deadline = Instant::now() + PATIENCE;
    let runs = loop {
        let runs = std::fs::read_to_string(dir.path().join("runs")).unwrap_or_default();
        if !runs.is_empty() {
            break runs;
        }
        assert!(Instant::now() < deadline, "the handler did not run");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(runs, format!("{id} 1\n"));
    drop(served);
}

#[test]
fn a_schema_newer_than_this_build_refuses_the_start_with_one_line() {
    let (rt, db) = test_database();
    query(
        &rt,
        db.url(),
        "CREATE TABLE dronehook_schema (version integer PRIMARY KEY)",
    );
    query(&rt, db.url(), "INSERT INTO dronehook_schema VALUES (99)");
    let out = run(dronehook().args([
        "serve",
        "--bind",
        "127.0.0.1:0",
        "--secret",
        "s3cr3t",
        "--store",
        db.url(),
    ]));
    assert_eq!(
        (out.status.code(), stderr(&out)),
        (
            Some(1),
            "error: the store's schema is version 99; this dronehook knows up to 5: upgrade dronehook\n".to_owned()
        )
    );
}

#[test]
fn a_sqlite_store_is_the_journal() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("j.db");
    let mut serve = serve_cmd();
    serve
        .env("DRONEHOOK_STORE", format!("sqlite:{}", path.display()))
        .args(["--secret", "s3cr3t", "--output", "none"]);
    let served = Served::start(serve);
    assert!(
        served
            .banner
            .contains(&format!(", journal {}, ", path.display())),
        "{}",
        served.banner
    );
    let out = run(dronehook().args([
        "send",
        "--endpoint",
        &served.url,
        "--secret",
        "s3cr3t",
        "fixture:build_created",
    ]));
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    drop(served);
    let journal = dronehook_server::Journal::open(&path).unwrap();
    assert_eq!(journal.count().unwrap(), 1);
}

#[test]
fn a_bad_store_is_refused_with_one_line() {
    let out = run(dronehook().args(["serve", "--secret", "s3cr3t", "--store", "mysql://u:p@h/db"]));
    // One line, without the value (and its password).
    assert_eq!(
        (out.status.code(), stderr(&out)),
        (
            Some(2),
            "error: --store: unknown store scheme `mysql`: give sqlite:PATH, a path, or postgres://...\n".to_owned()
        )
    );
}
