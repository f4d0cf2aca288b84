//! Overload: 500 slowloris connections held open (and opened again each time the
//! server closes one) while legitimate clients deliver. Every legitimate request is
//! served, the server closes every slowloris connection itself, and afterwards no
//! connection and no task is left over. Latency and memory are measured by
//! `cargo xtask bench overload`, not asserted here.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use dronehook_server::Router;
use http::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::util::{Calls, PATIENCE, config, deliver, start, user_event, wait_until};

/// Slowloris connections held open at once.
const SLOWLORIS: usize = 500;
/// Legitimate clients, each delivering [`PER_CLIENT`] requests on fresh connections.
const CLIENTS: u64 = 8;
const PER_CLIENT: u64 = 10;

/// How a slowloris connection misbehaves.
#[derive(Clone, Copy)]
enum Kind {
    /// Connects and sends nothing.
    Silent,
    /// Sends half a request head, then nothing.
    Partial,
    /// Sends half a head, then one more header byte every 200 ms, never finishing.
    Drip,
}

/// What one slowloris connection saw: what the server sent before closing.
struct Closed {
    answer: String,
}

/// Holds one slowloris connection until the server closes it; `None` if the server
/// never accepted or never closed it within [`PATIENCE`].
async fn slowloris(
    addr: std::net::SocketAddr,
    kind: Kind,
    held: &AtomicUsize,
) -> Result<Closed, String> {
    let mut stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    held.fetch_add(1, Ordering::SeqCst);
    if !matches!(kind, Kind::Silent) {
        stream
            .write_all(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            .await
            .map_err(|e| format!("write: {e}"))?;
    }
    let started = tokio::time::Instant::now();
    let mut out = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        if started.elapsed() > PATIENCE {
            return Err(format!("not closed: {:?}", String::from_utf8_lossy(&out)));
        }
        if matches!(kind, Kind::Drip) && stream.write_all(b"x").await.is_err() {
            // The server closed (a reset shows up on the write).
            break;
        }
        let wait = match kind {
            Kind::Drip => Duration::from_millis(200),
            Kind::Silent | Kind::Partial => PATIENCE,
        };
        match tokio::time::timeout(wait, stream.read(&mut buf)).await {
            Ok(Ok(0) | Err(_)) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => {}
        }
    }
    Ok(Closed {
        answer: String::from_utf8_lossy(&out).into_owned(),
    })
}

fn gauge(metrics: &str, name: &str) -> Option<i64> {
    metrics.lines().find_map(|l| {
        l.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slowloris_connections_are_closed_and_legitimate_requests_served() {
    let calls = Calls::default();
    let server = start(
        config().header_timeout(Duration::from_secs(2)),
        Router::new().route("", calls.handler()).unwrap(),
    )
    .await;
    let addr = server.local_addr();
    let runtime = tokio::runtime::Handle::current().metrics();
    let open = || gauge(&server.metrics_text(), "dronehook_open_connections");
    assert_eq!(open(), Some(0));
    let baseline_tasks = runtime.num_alive_tasks();

    // The attackers: each reconnects whenever the server closes it, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let held = Arc::new(AtomicUsize::new(0));
    let attackers: Vec<_> = (0..SLOWLORIS)
        .map(|i| {
            let kind = [Kind::Silent, Kind::Partial, Kind::Drip][i % 3];
            let (stop, held) = (stop.clone(), held.clone());
            tokio::spawn(async move {
                let mut closed = Vec::new();
                loop {
                    closed.push(slowloris(addr, kind, &held).await);
                    if stop.load(Ordering::SeqCst) {
                        return closed;
                    }
                }
            })
        })
        .collect();
    wait_until(|| open().is_some_and(|n| n >= SLOWLORIS as i64)).await;
    let tasks_under_attack = runtime.num_alive_tasks();
    assert!(
        tasks_under_attack > baseline_tasks + SLOWLORIS,
        "a task per held connection: {tasks_under_attack} vs {baseline_tasks}"
    );

    // Legitimate clients, while the attack goes on.
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            tokio::spawn(async move {
                let mut statuses = Vec::new();
                for i in 0..PER_CLIENT {
                    let body = user_event(c * PER_CLIENT + i);
                    statuses.push(deliver(addr, &body).await.status);
                }
                statuses
            })
        })
        .collect();
    for client in clients {
        let statuses = client.await.unwrap();
        assert!(
            statuses.iter().all(|s| *s == StatusCode::NO_CONTENT),
            "{statuses:?}"
        );
    }
    assert_eq!(calls.len(), (CLIENTS * PER_CLIENT) as usize);
    // The attack was still on when the last legitimate request was answered.
    assert!(open().is_some_and(|n| n >= 1));

    // Stop reconnecting: the server's header timeout closes the last connections.
    stop.store(true, Ordering::SeqCst);
    let mut connections = 0;
    for attacker in attackers {
        for closed in attacker.await.unwrap() {
            let closed = closed.expect("the server accepted and closed the connection");
            // hyper answers a head that did not arrive in time with 408, or just closes.
            assert!(
                closed.answer.is_empty() || closed.answer.starts_with("HTTP/1.1 408"),
                "{}",
                closed.answer
            );
            connections += 1;
        }
    }
    assert!(connections >= SLOWLORIS);
    assert_eq!(held.load(Ordering::SeqCst), connections);

    // Nothing left over: no open connection, no task beyond the ones before the attack.
    wait_until(|| open() == Some(0)).await;
    wait_until(|| runtime.num_alive_tasks() <= baseline_tasks).await;
    let metrics = server.metrics_text();
    assert!(
        metrics.contains(&format!(
            "dronehook_requests_total{{code=\"ok\"}} {}",
            CLIENTS * PER_CLIENT
        )),
        "{metrics}"
    );
    server.shutdown().await.unwrap();
}
