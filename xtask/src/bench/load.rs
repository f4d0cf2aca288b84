//! The load generator: signed requests, each with its own body, sent over N
//! keep-alive connections for a fixed time after a warm-up, with every latency in an
//! HDR histogram.
//!
//! Requests are written as raw HTTP/1.1 bytes and responses parsed with httparse, so
//! the generator spends as little of the machine's two cores as it can: what it
//! costs is the same for every server, but the less it takes, the more the numbers
//! say about the servers.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use super::procs::{PgProcs, StoreCpu, Usage, cpu_time, usage_of};
use anyhow::{Context as _, bail};
use dronehook_protocol::{Envelope, SignInput, Signer};
use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// The secret every server under test is started with.
pub(crate) const SECRET: &str = "bench-secret-not-for-production";

/// The first value of the per-request counter: ten digits, like a Unix time, so
/// every body of a template has the same length.
const SEQ_BASE: u64 = 1_700_000_000;

/// The placeholder written where the counter goes, found once in the encoded body.
const SENTINEL: i64 = 4_242_424_242;

/// A body with a hole for a per-request number: encoded once, then every request
/// writes its own number into the hole, so every body (and so every digest and
/// signature) differs, which the replay check needs to be tested for real.
pub(crate) struct Template {
    prefix: Vec<u8>,
    suffix: Vec<u8>,
    event: String,
}

impl Template {
    /// A template from a build envelope: the counter goes into `build.updated`.
    pub(crate) fn from_build(envelope: &Envelope) -> anyhow::Result<Template> {
        let mut envelope = envelope.clone();
        let build = envelope
            .build
            .as_mut()
            .context("the benchmark payload has no build")?;
        build.updated = SENTINEL;
        let body = envelope.encode();
        let needle = SENTINEL.to_string();
        let at = find(&body, needle.as_bytes()).context("the counter's place in the body")?;
        if find(&body[at + needle.len()..], needle.as_bytes()).is_some() {
            bail!("the counter's placeholder occurs twice in the body");
        }
        Ok(Template {
            prefix: body[..at].to_vec(),
            suffix: body[at + needle.len()..].to_vec(),
            event: envelope.event.as_str().to_owned(),
        })
    }

    /// The length of every body of this template.
    pub(crate) fn body_len(&self) -> usize {
        self.prefix.len() + 10 + self.suffix.len()
    }

    /// Appends body number `seq`.
    fn write_body(&self, seq: u64, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.prefix);
        out.extend_from_slice((SEQ_BASE + seq).to_string().as_bytes());
        out.extend_from_slice(&self.suffix);
    }

    /// Body number `seq`, whole (for tests and checks).
    pub(crate) fn body(&self, seq: u64) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.body_len());
        self.write_body(seq, &mut out);
        out
    }

    /// The request head for body number `seq`, signed now.
    fn head(&self, signer: &Signer, seq: u64, now: SystemTime, scratch: &mut Vec<u8>) -> Vec<u8> {
        scratch.clear();
        self.write_body(seq, scratch);
        // Signing cannot fail with Drone's header list (date and digest only).
        let signed = signer
            .sign(&SignInput::new(scratch, now))
            .expect("date and digest are always available");
        let mut head = Vec::with_capacity(384);
        head.extend_from_slice(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        for (name, value) in signed.headers(&self.event) {
            head.extend_from_slice(name.as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(value.as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(format!("Content-Length: {}\r\n\r\n", scratch.len()).as_bytes());
        head
    }
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Pre-signed request heads (each body is rebuilt from the template as it is sent:
/// a copy is cheap next to the hash that signing it needs). Signing ahead keeps the
/// generator's SHA-256 and HMAC work out of the measured window.
pub(crate) struct Pool {
    template: Arc<Template>,
    heads: Vec<Vec<u8>>,
    signer: Signer,
    /// Whether request `i` past the end may reuse head `i % len` (a replay). Only for
    /// servers that do not check replays; the others get fresh signatures instead.
    wrap: bool,
}

impl Pool {
    /// Signs `len` requests now, on two threads.
    pub(crate) fn new(template: Arc<Template>, len: usize, wrap: bool) -> Pool {
        let signer = Signer::new(SECRET);
        let now = SystemTime::now();
        let threads = 2;
        let per = len.div_ceil(threads);
        let mut heads = Vec::with_capacity(len);
        std::thread::scope(|s| {
            let jobs: Vec<_> = (0..threads)
                .map(|t| {
                    let template = &template;
                    let signer = &signer;
                    s.spawn(move || {
                        let start = t * per;
                        let end = ((t + 1) * per).min(len);
                        let mut scratch = Vec::with_capacity(template.body_len());
                        (start..end)
                            .map(|i| template.head(signer, i as u64, now, &mut scratch))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            for job in jobs {
                heads.extend(job.join().expect("signing does not panic"));
            }
        });
        Pool {
            template,
            heads,
            signer,
            wrap,
        }
    }

    /// The length of every body in the pool.
    pub(crate) fn body_len(&self) -> usize {
        self.template.body_len()
    }

    /// [`Pool::write`], for the tests.
    #[cfg(test)]
    pub(crate) fn write_for_test(
        &self,
        seq: u64,
        out: &mut Vec<u8>,
        scratch: &mut Vec<u8>,
    ) -> bool {
        self.write(seq, out, scratch)
    }

    /// Writes request `seq` (head and body) into `out`. Returns whether it had to be
    /// signed now because the pool ran out.
    fn write(&self, seq: u64, out: &mut Vec<u8>, scratch: &mut Vec<u8>) -> bool {
        out.clear();
        let len = self.heads.len() as u64;
        let (head_seq, inline) = if seq < len {
            (seq, false)
        } else if self.wrap && len > 0 {
            (seq % len, false)
        } else {
            (seq, true)
        };
        if inline {
            let head = self
                .template
                .head(&self.signer, seq, SystemTime::now(), scratch);
            out.extend_from_slice(&head);
        } else {
            out.extend_from_slice(&self.heads[head_seq as usize]);
        }
        self.template.write_body(head_seq, out);
        inline
    }
}

/// One load run's settings.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LoadSpec {
    pub(crate) connections: usize,
    pub(crate) warmup: Duration,
    pub(crate) duration: Duration,
    /// Tokio worker threads for the generator (1 = a current-thread runtime).
    pub(crate) threads: usize,
}

/// What a load run measured.
#[derive(Clone, Debug)]
pub(crate) struct LoadResult {
    /// Responses with a 2xx status completed in the measured window.
    pub(crate) ok: u64,
    /// Non-2xx responses and I/O errors in the measured window.
    pub(crate) errors: u64,
    /// The first few error descriptions.
    pub(crate) error_samples: Vec<String>,
    /// Requests that had to be signed inside the window because the pool ran out.
    pub(crate) signed_inline: u64,
    /// The measured window.
    pub(crate) elapsed: Duration,
    /// Latency of each measured 2xx request, in nanoseconds.
    pub(crate) latency: Histogram<u64>,
    /// What the server processes used in the measured window (their CPU, the journal
    /// thread's CPU, the bytes they wrote), when they were watched; summed over the
    /// servers when the load went to several.
    pub(crate) server_usage: Usage,
    /// CPU time the PostgreSQL server processes serving the store used in the
    /// measured window, when the store is PostgreSQL on this machine.
    pub(crate) store_cpu: Option<StoreCpu>,
    /// CPU time the load generator's process used in the measured window.
    pub(crate) generator_cpu: Option<Duration>,
}

impl LoadResult {
    /// Successful requests per second.
    pub(crate) fn rps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }

    /// Microseconds of a process's CPU time per successful request.
    pub(crate) fn cpu_per_request_us(cpu: Option<Duration>, ok: u64) -> Option<f64> {
        cpu.filter(|_| ok > 0)
            .map(|c| c.as_secs_f64() * 1e6 / ok as f64)
    }

    /// A latency percentile, in microseconds.
    pub(crate) fn pct_us(&self, q: f64) -> f64 {
        self.latency.value_at_quantile(q) as f64 / 1_000.0
    }
}

/// Shared by the connection tasks of one run.
struct RunState {
    pool: Pool,
    next: AtomicU64,
    warm_end: Instant,
    end: Instant,
}

struct ConnResult {
    ok: u64,
    errors: u64,
    error_samples: Vec<String>,
    signed_inline: u64,
    latency: Histogram<u64>,
}

fn histogram() -> Histogram<u64> {
    // 1 ns to 60 s at three significant digits.
    Histogram::new_with_bounds(1, 60_000_000_000, 3).expect("valid histogram bounds")
}

/// What a load run watches besides itself: the servers' processes, whose CPU time over
/// the measured window is reported beside the generator's own (a measure of cost per
/// request that the other load on a shared machine does not move), and the
/// PostgreSQL processes of the store, when there is one.
#[derive(Clone, Debug, Default)]
pub(crate) struct Watch {
    pub(crate) servers: Vec<u32>,
    pub(crate) store: Option<PgProcs>,
}

/// Runs the load against `addrs` (connection `i` goes to `addrs[i % len]`, so the
/// load is split evenly across several receivers) and returns what it measured.
pub(crate) fn run(
    addrs: &[SocketAddr],
    pool: Pool,
    spec: LoadSpec,
    watch: Watch,
) -> anyhow::Result<LoadResult> {
    if addrs.is_empty() {
        bail!("no server to load");
    }
    let runtime = if spec.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(spec.threads)
            .enable_all()
            .build()?
    };
    runtime.block_on(async move {
        // Connect every connection before the clock starts.
        let mut streams = Vec::with_capacity(spec.connections);
        for i in 0..spec.connections {
            let addr = addrs[i % addrs.len()];
            streams.push((addr, connect(addr).await?));
        }
        let start = Instant::now();
        let state = Arc::new(RunState {
            pool,
            next: AtomicU64::new(0),
            warm_end: start + spec.warmup,
            end: start + spec.warmup + spec.duration,
        });
        let warm_end = state.warm_end;
        let end = state.end;
        let cpu = tokio::spawn(async move {
            let me = std::process::id();
            tokio::time::sleep_until(warm_end.into()).await;
            let store_before = watch.store.as_ref().map(PgProcs::snapshot);
            let before = (usage_of(&watch.servers), cpu_time(me));
            tokio::time::sleep_until(end.into()).await;
            let after = (usage_of(&watch.servers), cpu_time(me));
            let store = watch
                .store
                .as_ref()
                .zip(store_before)
                .and_then(|(pg, before)| pg.used_since(&before));
            let delta = |a: Option<Duration>, b: Option<Duration>| Some(b?.saturating_sub(a?));
            (before.0.until(after.0), delta(before.1, after.1), store)
        });
        let tasks: Vec<_> = streams
            .into_iter()
            .map(|(addr, stream)| tokio::spawn(connection(addr, stream, state.clone())))
            .collect();
        let mut total = ConnResult {
            ok: 0,
            errors: 0,
            error_samples: Vec::new(),
            signed_inline: 0,
            latency: histogram(),
        };
        for task in tasks {
            let r = task.await.context("a load task failed")?;
            total.ok += r.ok;
            total.errors += r.errors;
            total.signed_inline += r.signed_inline;
            total
                .latency
                .add(&r.latency)
                .context("merging histograms")?;
            for s in r.error_samples {
                if total.error_samples.len() < 5 {
                    total.error_samples.push(s);
                }
            }
        }
        let (server_usage, generator_cpu, store_cpu) = cpu.await.unwrap_or_default();
        Ok(LoadResult {
            server_usage,
            store_cpu,
            generator_cpu,
            ok: total.ok,
            errors: total.errors,
            error_samples: total.error_samples,
            signed_inline: total.signed_inline,
            elapsed: spec.duration,
            latency: total.latency,
        })
    })
}

async fn connect(addr: SocketAddr) -> anyhow::Result<TcpStream> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to {addr}"))?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// One keep-alive connection: request, response, repeat until the end time.
async fn connection(addr: SocketAddr, stream: TcpStream, state: Arc<RunState>) -> ConnResult {
    let mut r = ConnResult {
        ok: 0,
        errors: 0,
        error_samples: Vec::new(),
        signed_inline: 0,
        latency: histogram(),
    };
    let mut stream = Some(stream);
    let mut out = Vec::with_capacity(state.pool.template.body_len() + 512);
    let mut scratch = Vec::new();
    let mut resp = Response::default();
    loop {
        let now = Instant::now();
        if now >= state.end {
            break;
        }
        let conn = match stream.as_mut() {
            Some(s) => s,
            None => match connect(addr).await {
                Ok(s) => stream.insert(s),
                Err(e) => {
                    if now >= state.warm_end {
                        r.errors += 1;
                        sample(&mut r.error_samples, format!("{e:#}"));
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            },
        };
        let seq = state.next.fetch_add(1, Ordering::Relaxed);
        let inline = state.pool.write(seq, &mut out, &mut scratch);
        let sent = Instant::now();
        let outcome = exchange(conn, &out, &mut resp).await;
        let done = Instant::now();
        let measured = sent >= state.warm_end && done < state.end;
        match outcome {
            Ok(()) => {
                if resp.close {
                    stream = None;
                }
                if !measured {
                    continue;
                }
                r.signed_inline += u64::from(inline);
                if (200..300).contains(&resp.status) {
                    r.ok += 1;
                    let ns =
                        u64::try_from(done.duration_since(sent).as_nanos()).unwrap_or(u64::MAX);
                    let _ = r.latency.record(ns.max(1));
                } else {
                    r.errors += 1;
                    sample(
                        &mut r.error_samples,
                        format!(
                            "HTTP {} {}",
                            resp.status,
                            String::from_utf8_lossy(&resp.body).trim()
                        ),
                    );
                }
            }
            Err(e) => {
                stream = None;
                if measured {
                    r.errors += 1;
                    sample(&mut r.error_samples, format!("{e:#}"));
                }
            }
        }
    }
    r
}

fn sample(samples: &mut Vec<String>, s: String) {
    if samples.len() < 5 {
        samples.push(s);
    }
}

/// A parsed response: what the load loop needs of it.
#[derive(Default)]
pub(super) struct Response {
    /// The status code.
    pub(super) status: u16,
    /// Whether the server said `Connection: close`.
    pub(super) close: bool,
    body: Vec<u8>,
    buf: Vec<u8>,
}

/// Writes one request and reads its response.
pub(super) async fn exchange(
    stream: &mut TcpStream,
    request: &[u8],
    resp: &mut Response,
) -> anyhow::Result<()> {
    stream.write_all(request).await.context("writing")?;
    read_response(stream, resp).await
}

/// Reads one HTTP/1.1 response with a Content-Length (or no) body. The servers under
/// test never chunk their small answers; a chunked one is reported as an error.
async fn read_response(stream: &mut TcpStream, resp: &mut Response) -> anyhow::Result<()> {
    resp.buf.clear();
    resp.body.clear();
    let mut chunk = [0u8; 4096];
    loop {
        let n = stream.read(&mut chunk).await.context("reading")?;
        if n == 0 {
            bail!("the server closed the connection");
        }
        resp.buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut parsed = httparse::Response::new(&mut headers);
        let httparse::Status::Complete(head_len) =
            parsed.parse(&resp.buf).context("parsing the response")?
        else {
            continue;
        };
        resp.status = parsed.code.unwrap_or(0);
        let mut length = 0usize;
        resp.close = false;
        for h in parsed.headers.iter() {
            if h.name.eq_ignore_ascii_case("content-length") {
                length = std::str::from_utf8(h.value)
                    .ok()
                    .and_then(|v| v.trim().parse().ok())
                    .context("a bad Content-Length")?;
            } else if h.name.eq_ignore_ascii_case("connection")
                && h.value.eq_ignore_ascii_case(b"close")
            {
                resp.close = true;
            } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
                bail!("a chunked response");
            }
        }
        resp.body.extend_from_slice(&resp.buf[head_len..]);
        while resp.body.len() < length {
            let n = stream.read(&mut chunk).await.context("reading the body")?;
            if n == 0 {
                bail!("the server closed the connection mid-body");
            }
            resp.body.extend_from_slice(&chunk[..n]);
        }
        return Ok(());
    }
}

/// Opens `count` connections, sends one signed request on each, keeps them all open
/// and idle, and calls `measure` while they are; then closes them.
pub(crate) fn idle<T>(
    addr: SocketAddr,
    pool: &Pool,
    count: usize,
    measure: impl FnOnce() -> T,
) -> anyhow::Result<(T, u64)> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let mut streams = Vec::with_capacity(count);
        let mut out = Vec::new();
        let mut scratch = Vec::new();
        let mut resp = Response::default();
        let mut errors = 0u64;
        for seq in 0..count {
            let mut stream = connect(addr).await?;
            pool.write(seq as u64, &mut out, &mut scratch);
            match exchange(&mut stream, &out, &mut resp).await {
                Ok(()) if (200..300).contains(&resp.status) && !resp.close => {}
                _ => errors += 1,
            }
            streams.push(stream);
        }
        // Let the server settle (its tasks park, buffers shrink) before reading.
        tokio::time::sleep(Duration::from_secs(1)).await;
        let measured = measure();
        drop(streams);
        Ok((measured, errors))
    })
}
