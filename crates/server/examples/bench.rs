//! Receiver throughput beside a no-op hyper server, measured in one run.
//!
//! ```sh
//! cargo run --release -p dronehook-server --example bench -- [SECONDS] [CONNECTIONS] [ROUNDS] [ONLY]
//! ```
//!
//! Each server runs on its own two-worker tokio runtime on 127.0.0.1; the load
//! generator runs on one more thread with CONNECTIONS keep-alive connections (32 by
//! default), each sending a request and waiting for the answer, as Drone does. The
//! body is the Drone 2.4 `build_success` capture (5,167 bytes), signed once before the
//! timed window so the generator's hashing is not charged to the servers. Servers:
//!
//! - `noop`: hyper 1.x HTTP/1.1 reading the body whole and answering 204 (the ceiling);
//! - `receiver`: dronehook-server, replay check off, no journal, one no-op handler;
//! - `receiver+journal`: the same with a journal in a fresh SQLite file.
//!
//! The three are interleaved ROUNDS times (3 by default) and the median is printed;
//! ONLY (a server's name) runs just that one, for profiling.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use dronehook_server::protocol::{Policy, SignInput, Signer};
use dronehook_server::{Config, Delivery, Router, Server};
use http_body_util::{BodyExt, Full};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SECRET: &str = "bench-secret";
const BODY: &[u8] = include_bytes!("../../../fixtures/corpus/build_success.json");

fn main() {
    let mut args = std::env::args().skip(1);
    let seconds: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let connections: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(32);
    let rounds: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let only = args.next();
    let duration = Duration::from_secs(seconds);
    let request = Arc::new(signed_request());

    let names = ["noop", "receiver", "receiver+journal"];
    let mut results: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    for round in 0..rounds {
        for (i, name) in names.iter().enumerate() {
            if only.as_deref().is_some_and(|o| o != *name) {
                results[i].push(f64::NAN);
                continue;
            }
            let dir = tempfile::tempdir().expect("a temporary directory");
            let server_rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("a runtime");
            let (addr, server) = server_rt.block_on(start(name, dir.path()));
            let rps = load(addr, &request, connections, duration);
            if let Some(server) = server {
                if server.journal().is_some() {
                    commit_summary(&server.metrics_text());
                }
                server_rt
                    .block_on(server.shutdown())
                    .expect("a clean shutdown");
            }
            server_rt.shutdown_timeout(Duration::from_secs(5));
            println!("round {}: {name:<17} {rps:>9.0} req/s", round + 1);
            results[i].push(rps);
        }
    }
    let medians: Vec<f64> = results
        .iter_mut()
        .map(|r| {
            r.sort_by(f64::total_cmp);
            r[r.len() / 2]
        })
        .collect();
    println!();
    println!("| server | requests/s (median of {rounds}) | share of no-op |");
    println!("| --- | ---: | ---: |");
    for (name, rps) in names.iter().zip(&medians) {
        println!("| {name} | {rps:.0} | {:.0}% |", 100.0 * rps / medians[0]);
    }
}

/// Prints the journal's transactions, requests per transaction and how long a request
/// waited for its commit on average (the batch's commit time, fsync included).
fn commit_summary(metrics: &str) {
    let value = |name: &str| {
        metrics
            .lines()
            .find_map(|l| {
                l.strip_prefix(name)
                    .and_then(|v| v.trim().parse::<f64>().ok())
            })
            .unwrap_or(0.0)
    };
    let count = value("dronehook_journal_commit_duration_seconds_count ");
    let sum = value("dronehook_journal_commit_duration_seconds_sum ");
    let batches = value("dronehook_journal_batch_size_count ");
    let batched = value("dronehook_journal_batch_size_sum ");
    println!(
        "  journal: {:.0} transactions, {:.1} requests per transaction, {:.2} ms per commit as a request waits for it",
        value("dronehook_journal_commits_total "),
        batched / batches.max(1.0),
        1000.0 * sum / count.max(1.0)
    );
}

/// One raw keep-alive request: Drone's headers and the body.
fn signed_request() -> Vec<u8> {
    let signed = Signer::new(SECRET)
        .sign(&SignInput::new(BODY, SystemTime::now()))
        .expect("signing");
    let mut out =
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: Go-http-client/1.1\r\n".to_vec();
    for (name, value) in signed.headers("build") {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", BODY.len()).as_bytes());
    out.extend_from_slice(BODY);
    out
}

/// Starts one server (the no-op one stops with its runtime).
async fn start(name: &str, dir: &std::path::Path) -> (SocketAddr, Option<Server>) {
    if name == "noop" {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let _ = stream.set_nodelay(true);
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(
                        |req: hyper::Request<hyper::body::Incoming>| async move {
                            let _ = req.into_body().collect().await;
                            let mut resp = hyper::Response::new(Full::new(Bytes::new()));
                            *resp.status_mut() = hyper::StatusCode::NO_CONTENT;
                            Ok::<_, Infallible>(resp)
                        },
                    );
                    let _ = http1::Builder::new()
                        .keep_alive(true)
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        return (addr, None);
    }
    let mut config = Config::builder(Policy::new(SECRET))
        .addr("127.0.0.1:0".parse().expect("addr"))
        .replay_protection(false);
    if name == "receiver+journal" {
        config = config.journal(dir.join("journal.db"));
    }
    let router = Router::new()
        .route("", |_d: Delivery| async { Ok::<(), Infallible>(()) })
        .expect("a valid pattern");
    let server = Server::bind(config.build(), router)
        .await
        .expect("the receiver starts");
    (server.local_addr(), Some(server))
}

/// Loads a server for `duration` from one thread and returns requests per second.
fn load(addr: SocketAddr, request: &Arc<Vec<u8>>, connections: usize, duration: Duration) -> f64 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    rt.block_on(async {
        let done = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let counting = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let mut tasks = Vec::new();
        for _ in 0..connections {
            let (request, done, errors, counting, stop) = (
                request.clone(),
                done.clone(),
                errors.clone(),
                counting.clone(),
                stop.clone(),
            );
            tasks.push(tokio::spawn(async move {
                let Ok(mut stream) = tokio::net::TcpStream::connect(addr).await else {
                    errors.fetch_add(1, Ordering::Relaxed);
                    return;
                };
                let _ = stream.set_nodelay(true);
                let mut buf = vec![0u8; 4096];
                while !stop.load(Ordering::Relaxed) {
                    if stream.write_all(&request).await.is_err() {
                        errors.fetch_add(1, Ordering::Relaxed);
                        return;
                    }
                    // The answers are 204s: a head with no body.
                    let mut filled = 0;
                    loop {
                        let Ok(n) = stream.read(&mut buf[filled..]).await else {
                            return;
                        };
                        if n == 0 {
                            errors.fetch_add(1, Ordering::Relaxed);
                            return;
                        }
                        filled += n;
                        if buf[..filled].windows(4).any(|w| w == b"\r\n\r\n") {
                            break;
                        }
                    }
                    if !buf.starts_with(b"HTTP/1.1 204") {
                        errors.fetch_add(1, Ordering::Relaxed);
                    } else if counting.load(Ordering::Relaxed) {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }));
        }
        // One second of warm-up, not counted.
        tokio::time::sleep(Duration::from_secs(1)).await;
        counting.store(true, Ordering::Relaxed);
        let started = Instant::now();
        tokio::time::sleep(duration).await;
        let n = done.load(Ordering::Relaxed);
        let elapsed = started.elapsed();
        stop.store(true, Ordering::Relaxed);
        for t in tasks {
            let _ = t.await;
        }
        let errors = errors.load(Ordering::Relaxed);
        if errors > 0 {
            eprintln!("  {errors} errors");
        }
        n as f64 / elapsed.as_secs_f64()
    })
}
