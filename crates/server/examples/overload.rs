//! Overload measurement: slowloris connections beside a saturating legitimate load.
//!
//! ```sh
//! cargo run --release -p dronehook-server --example overload -- --seconds 30
//! ```
//!
//! Options: `--seconds N` (30), `--slowloris N` (500 connections held open),
//! `--connections N` (32 legitimate keep-alive connections), `--header-timeout SECS`
//! (the server's, 10 by default as in `Config`), `--journal` (journal to a temporary
//! SQLite file; off by default, as the fsync then sets the latency), `--no-replay`
//! (replay protection off: the replay cache remembers every accepted body for the
//! policy's skew, 5 minutes, so with it on memory grows with the accepted rate).
//!
//! The receiver runs on its own two-worker tokio runtime on 127.0.0.1, so that
//! runtime's `num_alive_tasks` counts only its tasks; the load runs on a second,
//! single-threaded runtime in the same process. The attackers: each slowloris
//! connection connects and then sends nothing, half a request head, or half a head
//! and one more byte a second, and connects again whenever the server closes it. The
//! legitimate clients: each connection sends a signed `user:created` event (a distinct
//! body each time, signed just before sending, as Drone does) and waits for the 204,
//! over and over. Latency is from writing the request to reading the answer's head,
//! recorded in an HDR histogram. Memory is the process's resident set
//! (`/proc/self/status`), which includes the load generator. After the run the
//! attackers stop reconnecting, and the example waits for the server to close their
//! last connections by the header timeout, then compares the server's tasks and open
//! connections with those before the run.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use dronehook_server::protocol::{Policy, SignInput, Signer};
use dronehook_server::{Config, Delivery, Router, Server};
use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const SECRET: &str = "overload-secret";

struct Options {
    seconds: u64,
    slowloris: usize,
    connections: usize,
    header_timeout: Duration,
    journal: bool,
    replay: bool,
}

fn options() -> Result<Options, String> {
    let mut o = Options {
        seconds: 30,
        slowloris: 500,
        connections: 32,
        header_timeout: dronehook_server::DEFAULT_HEADER_TIMEOUT,
        journal: false,
        replay: true,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .and_then(|v| v.parse::<u64>().ok())
                .ok_or_else(|| format!("{name} needs a number"))
        };
        match arg.as_str() {
            "--seconds" => o.seconds = value("--seconds")?,
            "--slowloris" => o.slowloris = usize::try_from(value("--slowloris")?).unwrap_or(0),
            "--connections" => {
                o.connections = usize::try_from(value("--connections")?).unwrap_or(1).max(1);
            }
            "--header-timeout" => {
                o.header_timeout = Duration::from_secs(value("--header-timeout")?.max(1));
            }
            "--journal" => o.journal = true,
            "--no-replay" => o.replay = false,
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(o)
}

/// Counters the load shares with the sampler.
#[derive(Default)]
struct Counts {
    served: AtomicU64,
    errored: AtomicU64,
    slow_opened: AtomicU64,
    slow_closed_by_server: AtomicU64,
    slow_not_closed: AtomicU64,
}

fn main() {
    let o = match options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    let dir = tempfile::tempdir().expect("a temporary directory");
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime");
    let mut config = Config::builder(Policy::new(SECRET))
        .addr("127.0.0.1:0".parse().expect("an address"))
        .header_timeout(o.header_timeout)
        .replay_protection(o.replay);
    if o.journal {
        config = config.journal(dir.path().join("journal.db"));
    }
    let router = Router::new()
        .route("", |_d: Delivery| async { Ok::<(), String>(()) })
        .expect("a valid pattern");
    let server = server_rt
        .block_on(Server::bind(config.build(), router))
        .expect("the receiver starts");
    let addr = server.local_addr();
    let server_metrics = server_rt.metrics();
    let open = || open_connections(&server.metrics_text());

    println!(
        "receiver on {addr}: {} slowloris connections, {} legitimate connections, {} s, header timeout {:?}, journal {}, replay protection {}",
        o.slowloris,
        o.connections,
        o.seconds,
        o.header_timeout,
        if o.journal { "on" } else { "off" },
        if o.replay { "on" } else { "off" }
    );
    let tasks_before = server_metrics.num_alive_tasks();
    let open_before = open();
    let rss_before = rss_kib("VmRSS:");

    let counts = Arc::new(Counts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (counts, stop) = (counts.clone(), stop.clone());
        let (slowloris, connections, header_timeout) =
            (o.slowloris, o.connections, o.header_timeout);
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("a runtime");
            rt.block_on(run_load(
                addr,
                slowloris,
                connections,
                header_timeout,
                &counts,
                &stop,
            ))
        })
    };

    // Sample once a second while the load runs.
    let started = Instant::now();
    let mut peak_rss = rss_before;
    let mut peak_tasks = tasks_before;
    let mut peak_open = open_before;
    let mut last_served = 0;
    while started.elapsed() < Duration::from_secs(o.seconds) {
        std::thread::sleep(Duration::from_secs(1));
        let (rss, tasks, now_open) = (rss_kib("VmRSS:"), server_metrics.num_alive_tasks(), open());
        peak_rss = peak_rss.max(rss);
        peak_tasks = peak_tasks.max(tasks);
        peak_open = peak_open.max(now_open);
        let served = counts.served.load(Ordering::Relaxed);
        println!(
            "t={:>3}s rss {:>7.1} MiB  server tasks {tasks:>5}  open connections {now_open:>5}  served {:>6}/s  slowloris connections so far {}",
            started.elapsed().as_secs(),
            mib(rss),
            served - last_served,
            counts.slow_opened.load(Ordering::Relaxed),
        );
        last_served = served;
    }
    let elapsed = started.elapsed();
    let tasks_during = server_metrics.num_alive_tasks();
    let open_during = open();
    stop.store(true, Ordering::SeqCst);
    let histogram = load.join().expect("the load thread");

    // The attackers' last connections end by the header timeout; wait for that.
    let deadline = Instant::now() + o.header_timeout + Duration::from_secs(10);
    while (open() > 0 || server_metrics.num_alive_tasks() > tasks_before)
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let tasks_after = server_metrics.num_alive_tasks();
    let open_after = open();
    let rss_after = rss_kib("VmRSS:");
    let hwm = rss_kib("VmHWM:");
    let served = counts.served.load(Ordering::Relaxed);

    println!();
    println!(
        "legitimate requests: {served} served (204), {} errored, {:.0} req/s",
        counts.errored.load(Ordering::Relaxed),
        served as f64 / elapsed.as_secs_f64()
    );
    println!(
        "latency: p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms, max {:.2} ms",
        ms(histogram.value_at_quantile(0.50)),
        ms(histogram.value_at_quantile(0.99)),
        ms(histogram.value_at_quantile(0.999)),
        ms(histogram.max()),
    );
    println!(
        "slowloris: {} connections opened, {} closed by the server, {} not closed within the header timeout + 10 s",
        counts.slow_opened.load(Ordering::Relaxed),
        counts.slow_closed_by_server.load(Ordering::Relaxed),
        counts.slow_not_closed.load(Ordering::Relaxed),
    );
    println!(
        "memory (process RSS): before {:.1} MiB, peak sampled {:.1} MiB, peak (VmHWM) {:.1} MiB, after {:.1} MiB",
        mib(rss_before),
        mib(peak_rss),
        mib(hwm),
        mib(rss_after)
    );
    println!(
        "server tasks: before {tasks_before}, during {tasks_during} (peak {peak_tasks}), after {tasks_after}"
    );
    println!(
        "open connections: before {open_before}, during {open_during} (peak {peak_open}), after {open_after}"
    );
    server_rt
        .block_on(server.shutdown())
        .expect("a clean shutdown");
}

async fn run_load(
    addr: SocketAddr,
    slowloris: usize,
    connections: usize,
    header_timeout: Duration,
    counts: &Arc<Counts>,
    stop: &Arc<AtomicBool>,
) -> Histogram<u64> {
    let attackers: Vec<_> = (0..slowloris)
        .map(|i| {
            let (counts, stop) = (counts.clone(), stop.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    attack(addr, i % 3, header_timeout, &counts).await;
                }
            })
        })
        .collect();
    let next = Arc::new(AtomicU64::new(0));
    let clients: Vec<_> = (0..connections)
        .map(|_| {
            let (counts, stop, next) = (counts.clone(), stop.clone(), next.clone());
            tokio::spawn(async move { legitimate(addr, &counts, &stop, &next).await })
        })
        .collect();
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
    for client in clients {
        if let Ok(h) = client.await {
            let _ = histogram.add(h);
        }
    }
    for attacker in attackers {
        let _ = attacker.await;
    }
    histogram
}

/// One slowloris connection, held until the server closes it.
async fn attack(addr: SocketAddr, kind: usize, header_timeout: Duration, counts: &Counts) {
    let Ok(mut stream) = TcpStream::connect(addr).await else {
        tokio::time::sleep(Duration::from_millis(100)).await;
        return;
    };
    counts.slow_opened.fetch_add(1, Ordering::Relaxed);
    if kind > 0
        && stream
            .write_all(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            .await
            .is_err()
    {
        counts.slow_closed_by_server.fetch_add(1, Ordering::Relaxed);
        return;
    }
    let give_up = Instant::now() + header_timeout + Duration::from_secs(10);
    let mut buf = [0u8; 512];
    while Instant::now() < give_up {
        if kind == 2 && stream.write_all(b"x").await.is_err() {
            counts.slow_closed_by_server.fetch_add(1, Ordering::Relaxed);
            return;
        }
        // A 408 head and then the close, or the close alone, means the server is done.
        if let Ok(Ok(0) | Err(_)) =
            tokio::time::timeout(Duration::from_secs(1), stream.read(&mut buf)).await
        {
            counts.slow_closed_by_server.fetch_add(1, Ordering::Relaxed);
            return;
        }
    }
    counts.slow_not_closed.fetch_add(1, Ordering::Relaxed);
}

/// One legitimate keep-alive connection, sending until told to stop.
async fn legitimate(
    addr: SocketAddr,
    counts: &Counts,
    stop: &AtomicBool,
    next: &AtomicU64,
) -> Histogram<u64> {
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
    let mut stream: Option<TcpStream> = None;
    let mut buf = vec![0u8; 4096];
    while !stop.load(Ordering::Relaxed) {
        if stream.is_none() {
            let Ok(s) = TcpStream::connect(addr).await else {
                counts.errored.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let _ = s.set_nodelay(true);
            stream = Some(s);
        }
        let Some(conn) = stream.as_mut() else {
            continue;
        };
        let request = signed_request(next.fetch_add(1, Ordering::Relaxed));
        let sent = Instant::now();
        let ok = conn.write_all(&request).await.is_ok() && read_head(conn, &mut buf).await;
        let took = sent.elapsed();
        if ok && buf.starts_with(b"HTTP/1.1 204") {
            counts.served.fetch_add(1, Ordering::Relaxed);
            let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
            let _ = histogram.record(micros.min(60_000_000));
        } else {
            counts.errored.fetch_add(1, Ordering::Relaxed);
            stream = None;
        }
    }
    histogram
}

/// Reads an answer's head (204s have no body); false if the connection ended first.
async fn read_head(stream: &mut TcpStream, buf: &mut [u8]) -> bool {
    let mut filled = 0;
    loop {
        match stream.read(&mut buf[filled..]).await {
            Ok(0) | Err(_) => return false,
            Ok(n) => filled += n,
        }
        if buf[..filled].windows(4).any(|w| w == b"\r\n\r\n") {
            return true;
        }
        if filled == buf.len() {
            return false;
        }
    }
}

/// A raw request with Drone's headers for a distinct `user:created` event.
fn signed_request(n: u64) -> Vec<u8> {
    let body = format!(
        r#"{{"event":"user","action":"created","user":{{"id":{n},"login":"user{n}","email":"u{n}@example.com","machine":false,"admin":false,"active":true,"avatar":"","syncing":false,"synced":0,"created":1636759997,"updated":1636759997,"last_login":0}}}}"#
    );
    let signed = Signer::new(SECRET)
        .sign(&SignInput::new(body.as_bytes(), SystemTime::now()))
        .expect("signing");
    let mut out =
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: Go-http-client/1.1\r\n".to_vec();
    for (name, value) in signed.headers("user") {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body.as_bytes());
    out
}

fn open_connections(metrics: &str) -> i64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("dronehook_open_connections "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(-1)
}

/// A line of `/proc/self/status` in KiB (0 where there is no procfs).
fn rss_kib(field: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix(field)
                    .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            })
        })
        .unwrap_or(0)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}
