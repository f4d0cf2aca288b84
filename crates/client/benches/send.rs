//! Signed deliveries per second to a local no-op receiver over kept-alive connections.
//!
//! The receiver is a bare hyper HTTP/1.1 server on 127.0.0.1 that reads each body
//! and answers 204 without verifying (so the number is the sender's, plus the
//! unavoidable HTTP work on the other side). Both run in one process on one tokio
//! runtime, sharing the machine's cores, as a relay on a small box would.
//!
//! Run with `cargo bench -p dronehook-client --bench send`.

// criterion's `criterion_group!` generates a public function with no doc comment.
#![allow(missing_docs)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use dronehook_client::{Client, Payload};
use dronehook_protocol::{Envelope, samples};
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::runtime::Runtime;

/// Events per measured batch.
const BATCH: usize = 2_048;

async fn noop(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    // The body is read, as any receiver must, so the connection stays usable.
    let _ = req.into_body().collect().await;
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::NO_CONTENT;
    Ok(response)
}

async fn receiver() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service_fn(noop))
                    .await;
            });
        }
    });
    addr
}

fn payload() -> Payload {
    // A real build event, the most common webhook and one of the larger ones.
    let sample = samples::get("build_updated")
        .or_else(|| samples::all().into_iter().find(|s| s.drone))
        .expect("the protocol crate has samples");
    let envelope = Envelope::decode(&sample.body).expect("samples decode");
    Payload::from_envelope(&envelope)
}

/// CPU time used so far by every thread of this process (sender, receiver and the
/// runtime), from the scheduler's per-thread nanosecond counters.
fn cpu_time() -> Duration {
    let mut total = 0u64;
    if let Ok(tasks) = std::fs::read_dir("/proc/self/task") {
        for task in tasks.flatten() {
            let stat = std::fs::read_to_string(task.path().join("schedstat")).unwrap_or_default();
            total += stat
                .split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Duration::from_nanos(total)
}

async fn send_all(client: &Client, payloads: &[Payload], concurrency: usize) {
    let bulk = client
        .send_all(payloads.iter().cloned(), concurrency, |_| {})
        .await;
    assert!(bulk.is_success());
}

/// 64 tasks each calling `send` in a loop, `BATCH` deliveries in all.
async fn send_tasks(client: &Client, payload: &Payload) {
    let per_task = BATCH / 64;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..64 {
        let (client, payload) = (client.clone(), payload.clone());
        tasks.spawn(async move {
            for _ in 0..per_task {
                assert!(client.send(&payload).await.is_success());
            }
        });
    }
    while tasks.join_next().await.is_some() {}
}

fn deliveries(c: &mut Criterion) {
    let runtime = Runtime::new().expect("runtime");
    let addr = runtime.block_on(receiver());
    let client = Client::builder()
        .secret("correct-horse-battery-staple")
        .endpoint(format!("http://{addr}/"))
        .attempts(1)
        .build()
        .expect("client");
    let payload = payload();
    let payloads: Vec<Payload> = (0..BATCH).map(|_| payload.clone()).collect();

    let mut group = c.benchmark_group("deliveries");
    group.throughput(Throughput::Elements(BATCH as u64));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(8));
    for concurrency in [1usize, 16, 64] {
        group.bench_with_input(
            BenchmarkId::new("send_all", concurrency),
            &concurrency,
            |b, &concurrency| {
                b.iter(|| runtime.block_on(send_all(&client, &payloads, concurrency)));
            },
        );
    }
    // Many callers each sending one event at a time, as a server emitting webhooks
    // from its request handlers would.
    group.bench_function("send/64 tasks", |b| {
        b.iter(|| runtime.block_on(send_tasks(&client, &payload)));
    });
    // A reference: the same hyper client and pool with a fixed, pre-signed request,
    // so the difference to the rows above is the sender's own work (signing, the
    // filter, retry bookkeeping, reports).
    let signed = dronehook_protocol::Signer::new("correct-horse-battery-staple")
        .sign(&dronehook_protocol::SignInput::new(
            payload.body(),
            std::time::SystemTime::now(),
        ))
        .expect("sign");
    let bare = runtime.block_on(async {
        let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
        connector.set_nodelay(true);
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build::<_, Full<Bytes>>(connector)
    });
    let uri: http::Uri = format!("http://{addr}/").parse().expect("uri");
    let bare_tasks = || {
        let (bare, uri, body, signed) = (&bare, &uri, payload.body(), &signed);
        async move {
            let per_task = BATCH / 64;
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..64 {
                let (bare, uri, body, signed) =
                    (bare.clone(), uri.clone(), body.clone(), signed.clone());
                tasks.spawn(async move {
                    for _ in 0..per_task {
                        let mut request = Request::post(uri.clone());
                        for (name, value) in signed.headers("build") {
                            request = request.header(name, value);
                        }
                        let request = request.body(Full::new(body.clone())).expect("request");
                        let response = bare.request(request).await.expect("response");
                        let _ = response.into_body().collect().await;
                    }
                });
            }
            while tasks.join_next().await.is_some() {}
        }
    };
    group.bench_function("reference: bare hyper client, 64 tasks", |b| {
        b.iter(|| runtime.block_on(bare_tasks()));
    });
    group.finish();

    // The same work timed in CPU time instead of wall time: deliveries per CPU-second
    // of sender and receiver together. Other processes on a shared machine steal wall
    // time but hardly change this, so it tells what an idle machine would do: with
    // both cores free, about twice this many per second.
    let mut cpu = c.benchmark_group("deliveries per cpu-second");
    cpu.throughput(Throughput::Elements(BATCH as u64));
    cpu.sample_size(10);
    cpu.measurement_time(Duration::from_secs(8));
    cpu.bench_function("send_all/64", |b| {
        b.iter_custom(|iters| {
            let start = cpu_time();
            for _ in 0..iters {
                runtime.block_on(send_all(&client, &payloads, 64));
            }
            cpu_time().saturating_sub(start)
        });
    });
    cpu.bench_function("send/64 tasks", |b| {
        b.iter_custom(|iters| {
            let start = cpu_time();
            for _ in 0..iters {
                runtime.block_on(send_tasks(&client, &payload));
            }
            cpu_time().saturating_sub(start)
        });
    });
    cpu.bench_function("reference: bare hyper client, 64 tasks", |b| {
        b.iter_custom(|iters| {
            let start = cpu_time();
            for _ in 0..iters {
                runtime.block_on(bare_tasks());
            }
            cpu_time().saturating_sub(start)
        });
    });
    cpu.finish();
}

criterion_group!(benches, deliveries);
criterion_main!(benches);
