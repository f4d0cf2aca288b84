//! `cargo xtask bench overload`: slowloris connections beside a saturating legitimate
//! load, against `dronehook serve` as its own process.
//!
//! The attackers: each slowloris connection connects and then sends nothing, half a
//! request head, or half a head and one more byte a second, and connects again
//! whenever the server closes it. The legitimate clients: each keep-alive connection
//! sends a signed `user:created` event (a distinct body each time, signed just before
//! sending, as Drone does) and waits for the answer, over and over. Latency is from
//! writing the request to reading the answer, in an HDR histogram. Memory is the
//! server process's own (`/proc/PID/status`), open connections the server's
//! `dronehook_open_connections` gauge. After the run the attackers stop reconnecting,
//! and the command waits for the server to close their last connections by its header
//! timeout, then compares the server's open connections and memory with those before.

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, bail};
use dronehook_protocol::{SignInput, Signer};
use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use super::load::{self, Response};
use super::procs::{self, ServerProc};
use super::{Bins, metric, metrics_text};

/// `cargo xtask bench overload`'s options.
#[derive(clap::Args, Debug)]
pub(crate) struct OverloadArgs {
    /// Seconds of load.
    #[arg(long, default_value_t = 30, value_name = "SECS")]
    seconds: u64,
    /// Slowloris connections held open (each opened again when the server closes it).
    #[arg(long, default_value_t = 500, value_name = "N")]
    slowloris: usize,
    /// Legitimate keep-alive connections sending signed events.
    #[arg(long, default_value_t = 32, value_name = "N")]
    connections: usize,
    /// Journal to a fresh SQLite file (off by default: the fsync then sets the latency).
    #[arg(long)]
    journal: bool,
    /// Serve with `--no-replay-check` (the replay check keeps every accepted body's
    /// digest for the skew window, so with it on memory grows with the accepted rate).
    #[arg(long)]
    no_replay_check: bool,
    /// Set by the re-executed release build: the binaries are already built.
    #[arg(long, hide = true)]
    pub(crate) inner: bool,
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

/// The server's open connections (its gauge; the connection that asks is one of them),
/// or -1 when `/metrics` did not answer.
fn open_connections(addr: SocketAddr) -> i64 {
    metrics_text(addr)
        .and_then(|text| metric(&text, "dronehook_open_connections"))
        .map_or(-1, |v| v as i64)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

/// Runs the overload measurement.
pub(super) fn run(bins: &Bins, o: &OverloadArgs) -> anyhow::Result<()> {
    if o.seconds == 0 || o.connections == 0 {
        bail!("--seconds and --connections must be at least 1");
    }
    if !bins.dronehook.is_file() {
        bail!(
            "{} is missing: run `cargo build --release -p dronehook-cli`",
            bins.dronehook.display()
        );
    }
    let scratch = tempfile::tempdir().context("a scratch directory for the journal")?;
    let mut cmd: Command = super::serve_command(&bins.dronehook);
    if o.no_replay_check {
        cmd.arg("--no-replay-check");
    }
    if o.journal {
        cmd.arg("--journal").arg(scratch.path().join("journal.db"));
    }
    let mut server = ServerProc::start("dronehook serve", cmd)?;
    let addr = server.addr();
    let pid = server.pid();
    // `dronehook serve` has no option for it: the server's default applies.
    let header_timeout = dronehook_server::DEFAULT_HEADER_TIMEOUT;

    println!(
        "dronehook serve on {addr}: {} slowloris connections, {} legitimate connections, {} s, \
         header timeout {header_timeout:?}, journal {}, replay check {}",
        o.slowloris,
        o.connections,
        o.seconds,
        if o.journal { "on" } else { "off" },
        if o.no_replay_check { "off" } else { "on" }
    );
    let open_before = open_connections(addr);
    let mem_before = server.mem()?;

    let counts = Arc::new(Counts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let load = {
        let (counts, stop) = (counts.clone(), stop.clone());
        let (slowloris, connections) = (o.slowloris, o.connections);
        std::thread::spawn(move || -> anyhow::Result<Histogram<u64>> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            Ok(rt.block_on(run_load(
                addr,
                slowloris,
                connections,
                header_timeout,
                &counts,
                &stop,
            )))
        })
    };

    // Sample once a second while the load runs.
    let started = Instant::now();
    let mut peak_rss = mem_before.rss_kb;
    let mut peak_open = open_before;
    let mut last_served = 0;
    while started.elapsed() < Duration::from_secs(o.seconds) {
        std::thread::sleep(Duration::from_secs(1));
        let rss = server.mem()?.rss_kb;
        let now_open = open_connections(addr);
        peak_rss = peak_rss.max(rss);
        peak_open = peak_open.max(now_open);
        let served = counts.served.load(Ordering::Relaxed);
        println!(
            "t={:>3}s server RSS {:>7.1} MiB  open connections {now_open:>5}  served {:>6}/s  \
             slowloris connections so far {}",
            started.elapsed().as_secs(),
            mib(rss),
            served - last_served,
            counts.slow_opened.load(Ordering::Relaxed),
        );
        last_served = served;
    }
    let elapsed = started.elapsed();
    let open_during = open_connections(addr);
    stop.store(true, Ordering::SeqCst);
    let histogram = load
        .join()
        .map_err(|_| anyhow::anyhow!("the load thread panicked"))??;

    // The attackers' last connections end by the header timeout; wait for that.
    let deadline = Instant::now() + header_timeout + Duration::from_secs(10);
    let mut open_after = open_connections(addr);
    while open_after > open_before && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        open_after = open_connections(addr);
    }
    let mem_after = procs::read_mem(pid)?;
    let served = counts.served.load(Ordering::Relaxed);
    server.stop();

    println!();
    println!(
        "legitimate requests: {served} served (2xx), {} errored, {:.0} req/s",
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
        "slowloris: {} connections opened, {} closed by the server, {} not closed within \
         the header timeout + 10 s",
        counts.slow_opened.load(Ordering::Relaxed),
        counts.slow_closed_by_server.load(Ordering::Relaxed),
        counts.slow_not_closed.load(Ordering::Relaxed),
    );
    println!(
        "server memory (RSS): before {:.1} MiB, peak sampled {:.1} MiB, peak (VmHWM) {:.1} MiB, \
         after {:.1} MiB",
        mib(mem_before.rss_kb),
        mib(peak_rss),
        mib(mem_after.hwm_kb),
        mib(mem_after.rss_kb)
    );
    println!(
        "open connections (the server's gauge, counting the one that reads it): before \
         {open_before}, during {open_during} (peak {peak_open}), after {open_after}"
    );
    Ok(())
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
    let mut histogram = micros_histogram();
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

fn micros_histogram() -> Histogram<u64> {
    // 1 µs to 60 s at three significant digits.
    Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
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
    let mut histogram = micros_histogram();
    let signer = Signer::new(load::SECRET);
    let mut stream: Option<TcpStream> = None;
    let mut resp = Response::default();
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
        let request = signed_request(&signer, next.fetch_add(1, Ordering::Relaxed));
        let sent = Instant::now();
        let ok = load::exchange(conn, &request, &mut resp).await.is_ok();
        let took = sent.elapsed();
        if ok && (200..300).contains(&resp.status) {
            counts.served.fetch_add(1, Ordering::Relaxed);
            let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX).max(1);
            let _ = histogram.record(micros.min(60_000_000));
            if resp.close {
                stream = None;
            }
        } else {
            counts.errored.fetch_add(1, Ordering::Relaxed);
            stream = None;
        }
    }
    histogram
}

/// A raw request with Drone's headers for a distinct `user:created` event.
fn signed_request(signer: &Signer, n: u64) -> Vec<u8> {
    let body = format!(
        r#"{{"event":"user","action":"created","user":{{"id":{n},"login":"user{n}","email":"u{n}@example.com","machine":false,"admin":false,"active":true,"avatar":"","syncing":false,"synced":0,"created":1636759997,"updated":1636759997,"last_login":0}}}}"#
    );
    // Signing cannot fail with Drone's header list (date and digest only).
    let signed = signer
        .sign(&SignInput::new(body.as_bytes(), SystemTime::now()))
        .expect("date and digest are always available");
    let mut out =
        b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: Go-http-client/1.1\r\n".to_vec();
    for (name, value) in signed.headers("user") {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    out.extend_from_slice(body.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use dronehook_protocol::{Envelope, Policy, RequestParts, Signer};

    use super::signed_request;

    #[test]
    fn every_legitimate_request_is_a_distinct_verified_user_event() {
        let signer = Signer::new(super::load::SECRET);
        let mut digests = Vec::new();
        for n in [0, 1, 12_345] {
            let raw = signed_request(&signer, n);
            let text = String::from_utf8(raw).expect("ascii request");
            let (head, body) = text.split_once("\r\n\r\n").expect("head and body");
            let mut headers = dronehook_protocol::http::HeaderMap::new();
            for line in head.lines().skip(1) {
                let (name, value) = line.split_once(": ").expect("header line");
                let name: dronehook_protocol::http::HeaderName = name.parse().expect("name");
                headers.insert(name, value.parse().expect("value"));
            }
            assert_eq!(headers["content-length"], body.len().to_string().as_str());
            let req = RequestParts::new("POST", "/", &headers, body.as_bytes());
            let (_, envelope): (_, Envelope) = Policy::new(super::load::SECRET)
                .verify_and_decode(&req, std::time::SystemTime::now())
                .expect("a valid signed request");
            let login = envelope.user.expect("a user").login;
            assert_eq!(login.as_str(), format!("user{n}"));
            digests.push(headers["digest"].clone());
        }
        digests.dedup();
        assert_eq!(digests.len(), 3);
    }
}
