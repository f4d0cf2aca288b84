//! Operations: health, metrics, graceful shutdown, start-up errors.

use std::time::Duration;

use dronehook_server::{Delivery, Router, Server};
use http::StatusCode;

use crate::util::{Calls, config, corpus, deliver, request, start};

#[tokio::test]
async fn healthz_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(config().journal(dir.path().join("j.db")), Router::new()).await;
    let addr = server.local_addr();
    let health = request(addr, "GET", "/healthz", &[], Vec::new()).await;
    assert_eq!(
        (health.status, health.body.as_str()),
        (StatusCode::OK, "ok\n")
    );
    assert_eq!(
        deliver(addr, corpus("user_created")).await.status,
        StatusCode::NO_CONTENT
    );
    assert_eq!(
        request(addr, "GET", "/nope", &[], Vec::new()).await.status,
        StatusCode::NOT_FOUND
    );

    let metrics = request(addr, "GET", "/metrics", &[], Vec::new()).await;
    assert_eq!(metrics.status, StatusCode::OK);
    assert!(
        metrics.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/openmetrics-text")
    );
    let text = metrics.body;
    for needle in [
        r#"dronehook_requests_total{code="ok"} 1"#,
        r#"dronehook_requests_total{code="not_found"} 1"#,
        "dronehook_request_duration_seconds_count 2",
        "dronehook_journal_commit_duration_seconds_count 1",
        "dronehook_journal_batch_size_count 1",
        "dronehook_journal_batch_size_sum 1.0",
        "dronehook_journal_commits_total ",
        "dronehook_open_connections ",
        "# EOF",
    ] {
        assert!(text.contains(needle), "{needle} missing from:\n{text}");
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn graceful_shutdown_finishes_the_request_in_flight() {
    let calls = Calls::default();
    let started = std::sync::Arc::new(tokio::sync::Notify::new());
    let slow = {
        let calls = calls.clone();
        let started = started.clone();
        move |d: Delivery| {
            let calls = calls.clone();
            started.notify_one();
            async move {
                tokio::time::sleep(Duration::from_millis(300)).await;
                calls.0.lock().unwrap().push(d);
                Ok::<(), String>(())
            }
        }
    };
    let server = start(config(), Router::new().route("", slow).unwrap()).await;
    let addr = server.local_addr();
    let in_flight = tokio::spawn(async move { deliver(addr, corpus("user_created")).await });
    // Shut down once the request is being handled (the handler sleeps).
    let handle = server.shutdown_handle();
    started.notified().await;
    handle.shutdown();
    server.wait().await.unwrap();
    assert_eq!(in_flight.await.unwrap().status, StatusCode::NO_CONTENT);
    assert_eq!(calls.len(), 1);
    assert!(
        tokio::net::TcpStream::connect(addr).await.is_err(),
        "no longer accepting"
    );
}

#[tokio::test]
async fn run_until_stops_on_the_given_signal() {
    let server = start(config(), Router::new()).await;
    let addr = server.local_addr();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(server.run_until(async move {
        let _ = rx.await;
    }));
    assert_eq!(
        deliver(addr, corpus("repo_enabled")).await.status,
        StatusCode::NO_CONTENT
    );
    tx.send(()).unwrap();
    task.await.unwrap().unwrap();
}

#[tokio::test]
async fn start_up_errors_say_what_is_wrong() {
    let no_secrets =
        dronehook_server::Config::builder(dronehook_server::protocol::Policy::with_secrets(Vec::<
            String,
        >::new(
        )))
        .build();
    let err = Server::bind(no_secrets, Router::new()).await.unwrap_err();
    assert!(err.is_config());
    assert_eq!(
        err.to_string(),
        "configuration: no secrets: every request would be refused"
    );

    let taken = start(config(), Router::new()).await;
    let err = Server::bind(config().addr(taken.local_addr()).build(), Router::new())
        .await
        .unwrap_err();
    assert!(err.is_bind());
    assert!(
        err.to_string()
            .starts_with(&format!("cannot listen on {}", taken.local_addr()))
    );
    taken.shutdown().await.unwrap();

    let err = Server::bind(
        config()
            .tls("/nonexistent/cert.pem", "/nonexistent/key.pem")
            .build(),
        Router::new(),
    )
    .await
    .unwrap_err();
    assert!(err.is_tls());
    assert!(
        err.to_string().starts_with("TLS: /nonexistent/cert.pem:"),
        "{err}"
    );
}

#[tokio::test]
async fn config_defaults_and_debug_hide_secrets() {
    let b = dronehook_server::Config::builder(dronehook_server::protocol::Policy::new("hunter2"));
    let c = b.clone().build();
    assert_eq!(c.addr().to_string(), "0.0.0.0:3000");
    assert_eq!(c.path(), "/");
    assert!(c.replay_protection());
    assert_eq!(c.journal(), None);
    assert!(!c.is_insecure_no_verification());
    assert_eq!(
        c.policy()
            .map(dronehook_server::protocol::Policy::secret_count),
        Some(1)
    );
    assert_eq!(b.clone().path("hooks").build().path(), "/hooks");
    let debug = format!("{b:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
    let debug = format!("{c:?}");
    assert!(!debug.contains("hunter2"), "{debug}");
}
