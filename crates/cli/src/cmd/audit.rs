//! `dronehook audit`: sends the hostile catalog ([`dronehook_protocol::hostile`]) to a
//! receiver, each request signed at send time with the receiver's secret, and
//! compares every answer with what the catalog expects.
//!
//! Requests are written as raw bytes on a fresh connection each (TLS with rustls for
//! `https` URLs), because many cases are requests an HTTP client library would
//! refuse to send: duplicated headers, two framings, a length with no body.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use dronehook_protocol::hostile::{self, Case, RenderContext, ServerOutcome};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::ServerName;

use crate::cmd::parse_url;
use crate::output::{self, Painter};
use crate::{Outcome, usage};

/// The most response bytes read: a code is one short line, and a hostile receiver
/// must not make the audit buffer without end.
const MAX_RESPONSE: usize = 64 * 1024;

/// `dronehook audit URL --secret S`.
#[derive(clap::Args, Debug)]
pub(crate) struct AuditArgs {
    /// The receiver's URL (http or https); its path is the webhook path.
    #[arg(value_name = "URL")]
    pub(crate) url: String,
    /// The receiver's shared secret: every case is signed with it when sent.
    #[arg(long, env = "DRONE_WEBHOOK_SECRET", hide_env_values = true)]
    pub(crate) secret: Option<String>,
    /// The webhook path, when it differs from the URL's.
    #[arg(long, value_name = "PATH")]
    pub(crate) path: Option<String>,
    /// How long one request may take, from connecting to the end of the answer.
    #[arg(long, default_value = "10s", value_parser = parse_timeout, value_name = "DURATION")]
    pub(crate) timeout: Duration,
    /// Trust this PEM certificate (or bundle) for https, besides the public roots.
    #[arg(long, value_name = "FILE")]
    pub(crate) ca_cert: Option<PathBuf>,
    /// Print the results as one JSON object.
    #[arg(long)]
    pub(crate) json: bool,
}

fn parse_timeout(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s.trim())
        .map_err(|e| format!("{e} (durations look like 30s, 5m or 1h30m)"))?;
    if d.is_zero() {
        return Err("the timeout must be more than zero".into());
    }
    Ok(d)
}

/// Where the requests go.
struct Target {
    host: String,
    port: u16,
    /// `host[:port]` as the URL gives it, for the `Host` header.
    authority: String,
    path: String,
    tls: Option<TlsConnector>,
    timeout: Duration,
}

/// What one copy of a request was answered.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Answer {
    Response { status: u16, code: String },
    Error(String),
}

impl Answer {
    fn matches(&self, expected: &ServerOutcome) -> bool {
        match self {
            Answer::Response { status, code } => {
                *status == expected.status && code == expected.code
            }
            Answer::Error(_) => false,
        }
    }
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Response { status, code } if code.is_empty() => write!(f, "{status}"),
            Answer::Response { status, code } => write!(f, "{status} {code}"),
            Answer::Error(e) => write!(f, "error: {e}"),
        }
    }
}

/// One case's result.
struct Run {
    case: Case,
    answers: Vec<Answer>,
}

impl Run {
    fn passed(&self) -> bool {
        self.answers
            .iter()
            .enumerate()
            .all(|(i, a)| a.matches(&self.case.expected_for_copy(i)))
    }

    /// The expected outcome in one cell: `401 digest.mismatch`, `204 x50`,
    /// `204, then 404 not_found`.
    fn expected(&self) -> String {
        let copies = self.answers.len();
        let first = self.case.expected_for_copy(0);
        if copies <= 1 {
            return first.to_string();
        }
        let later = self.case.expected_for_copy(1);
        if later == first {
            format!("{first} x{copies}")
        } else if copies == 2 {
            format!("{first}, then {later}")
        } else {
            format!("{first}, then {later} x{}", copies - 1)
        }
    }

    /// What was answered, runs of equal answers counted: `204 x49, 500 x1`.
    fn got(&self) -> String {
        summarize(&self.answers)
    }
}

fn summarize(answers: &[Answer]) -> String {
    if let [only] = answers {
        return only.to_string();
    }
    let mut runs: Vec<(&Answer, usize)> = Vec::new();
    for a in answers {
        match runs.last_mut() {
            Some((last, n)) if *last == a => *n += 1,
            _ => runs.push((a, 1)),
        }
    }
    if let [(first, n)] = runs.as_slice() {
        return format!("{first} x{n}");
    }
    runs.iter()
        .map(|(a, n)| {
            if *n == 1 {
                a.to_string()
            } else {
                format!("{a} x{n}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs the catalog and prints the table (or JSON) and the score.
pub(crate) fn run(args: &AuditArgs) -> anyhow::Result<Outcome> {
    let secret = match args.secret.as_deref() {
        Some(s) if !s.is_empty() => s.to_owned(),
        _ => {
            return Err(usage(
                "no secret: give --secret or set DRONE_WEBHOOK_SECRET (the receiver's secret, so that the cases are signed as it expects)",
            ));
        }
    };
    let uri = parse_url(&args.url)?;
    let https = uri.scheme_str() == Some("https");
    let host = uri
        .host()
        .unwrap_or_default()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let authority = uri
        .authority()
        .map_or_else(|| host.clone(), |a| a.as_str().to_owned());
    let path = match &args.path {
        Some(p) if p.starts_with('/') => p.clone(),
        Some(p) => return Err(usage(format!("invalid --path {p:?}: it must start with /"))),
        None => uri.path().to_owned(),
    };
    let tls = if https {
        Some(connector(args.ca_cert.as_ref())?)
    } else {
        if args.ca_cert.is_some() {
            return Err(usage("--ca-cert needs an https URL"));
        }
        None
    };
    let target = Target {
        host,
        port,
        authority,
        path,
        tls,
        timeout: args.timeout,
    };

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let runs = runtime.block_on(run_all(&target, &secret))?;

    let passed = runs.iter().filter(|r| r.passed()).count();
    if args.json {
        print_json(&args.url, &target, &runs, passed)?;
    } else {
        print_table(&runs, passed)?;
    }
    Ok(if passed == runs.len() {
        Outcome::Ok
    } else {
        Outcome::Failed
    })
}

async fn run_all(target: &Target, secret: &str) -> anyhow::Result<Vec<Run>> {
    // A receiver that is not there, or whose certificate is not trusted, gives one
    // clear error rather than a table of failures.
    preflight(&target_parts(target))
        .await
        .map_err(|e| anyhow::anyhow!("cannot reach {}:{}: {e}", target.host, target.port))?;

    // The nonce makes this run's bodies new to the receiver, so a receiver that
    // remembers accepted bodies answers this run as it answered the first.
    let nonce = format!(
        "{}-{:08x}",
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs(),
        rand::random::<u32>()
    );
    let mut runs = Vec::new();
    for case in hostile::all() {
        // Each case is signed just before it is sent, so its Date is fresh.
        let ctx = RenderContext::new(secret, SystemTime::now())
            .host(target.authority.clone())
            .base_path(target.path.clone())
            .nonce(nonce.clone());
        let copies = case.render_copies(&ctx);
        let concurrent = case.replay.as_ref().is_some_and(|r| r.concurrent);
        let answers = if concurrent {
            let mut set = tokio::task::JoinSet::new();
            let shared = Arc::new(target_parts(target));
            for (i, bytes) in copies.into_iter().enumerate() {
                let shared = shared.clone();
                set.spawn(async move { (i, exchange_with(&shared, &bytes).await) });
            }
            let mut answers = vec![Answer::Error("not sent".into()); set.len()];
            while let Some(joined) = set.join_next().await {
                if let Ok((i, answer)) = joined {
                    answers[i] = answer;
                }
            }
            answers
        } else {
            let parts = target_parts(target);
            let mut answers = Vec::with_capacity(copies.len());
            for bytes in &copies {
                answers.push(exchange_with(&parts, bytes).await);
            }
            answers
        };
        runs.push(Run { case, answers });
    }
    Ok(runs)
}

/// What a spawned exchange needs, owned.
struct Parts {
    host: String,
    port: u16,
    tls: Option<TlsConnector>,
    timeout: Duration,
}

fn target_parts(t: &Target) -> Parts {
    Parts {
        host: t.host.clone(),
        port: t.port,
        tls: t.tls.clone(),
        timeout: t.timeout,
    }
}

/// Connects (and shakes hands, for https) once, sending nothing.
async fn preflight(parts: &Parts) -> Result<(), String> {
    let work = async {
        let tcp = TcpStream::connect((parts.host.as_str(), parts.port))
            .await
            .map_err(|e| reason(&e))?;
        if let Some(connector) = &parts.tls {
            let name = ServerName::try_from(parts.host.clone())
                .map_err(|_| format!("{:?} is not a valid TLS server name", parts.host))?;
            connector
                .connect(name, tcp)
                .await
                .map_err(|e| format!("TLS handshake failed: {}", reason(&e)))?;
        }
        Ok(())
    };
    tokio::time::timeout(parts.timeout, work)
        .await
        .unwrap_or_else(|_| Err(format!("no connection within {:?}", parts.timeout)))
}

/// Sends one request on a new connection and reads the answer.
async fn exchange_with(parts: &Parts, request: &[u8]) -> Answer {
    let work = async {
        let tcp = TcpStream::connect((parts.host.as_str(), parts.port))
            .await
            .map_err(|e| format!("cannot connect: {}", reason(&e)))?;
        let _ = tcp.set_nodelay(true);
        match &parts.tls {
            None => talk(tcp, request).await,
            Some(connector) => {
                let name = ServerName::try_from(parts.host.clone())
                    .map_err(|_| format!("{:?} is not a valid TLS server name", parts.host))?;
                let stream = connector
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS handshake failed: {}", reason(&e)))?;
                talk(stream, request).await
            }
        }
    };
    match tokio::time::timeout(parts.timeout, work).await {
        Ok(Ok((status, code))) => Answer::Response { status, code },
        Ok(Err(e)) => Answer::Error(e),
        Err(_) => Answer::Error(format!("no answer within {:?}", parts.timeout)),
    }
}

/// Writes the request while reading the answer: a receiver may answer (413, 400)
/// before it has read the whole request, and then stop reading it.
async fn talk<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    request: &[u8],
) -> Result<(u16, String), String> {
    let (mut reader, mut writer) = tokio::io::split(stream);
    let write = async move {
        // A write error is not the outcome: the receiver may have answered and
        // closed, and that answer is what counts.
        if writer.write_all(request).await.is_ok() {
            let _ = writer.flush().await;
        }
        // The writer half is kept open until the answer is read: some servers treat
        // a half-closed connection as an abandoned request. So this never ends, and
        // the answer below decides.
        std::future::pending::<Result<(u16, String), String>>().await
    };
    tokio::select! {
        answer = read_response(&mut reader) => answer,
        never = write => never,
    }
}

/// Reads a response: the status, and the first line of the body (its code).
async fn read_response<R: AsyncRead + Unpin>(reader: &mut R) -> Result<(u16, String), String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let mut headers = [httparse::EMPTY_HEADER; 64];
        let mut response = httparse::Response::new(&mut headers);
        match response.parse(&buf) {
            Ok(httparse::Status::Complete(head_len)) => {
                let status = response.code.unwrap_or_default();
                if (100..200).contains(&status) {
                    // An interim response (100 Continue): the real one follows.
                    buf.drain(..head_len);
                    continue;
                }
                let header = |name: &str| {
                    response
                        .headers
                        .iter()
                        .find(|h| h.name.eq_ignore_ascii_case(name))
                        .map(|h| String::from_utf8_lossy(h.value).trim().to_owned())
                };
                let length = header("content-length").and_then(|v| v.parse::<usize>().ok());
                let chunked = header("transfer-encoding")
                    .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
                let body = if status == 204 || status == 304 {
                    Vec::new()
                } else {
                    read_body(reader, buf.split_off(head_len), length, chunked).await?
                };
                return Ok((status, hostile::response_code(&body).to_owned()));
            }
            Ok(httparse::Status::Partial) => {}
            Err(e) => return Err(format!("the answer is not HTTP/1.x: {e}")),
        }
        if buf.len() > MAX_RESPONSE {
            return Err("the answer's head is over 64 KiB".into());
        }
        let n = reader
            .read(&mut chunk)
            .await
            .map_err(|e| format!("the connection failed before an answer: {}", reason(&e)))?;
        if n == 0 {
            return Err(if buf.is_empty() {
                "the connection closed without an answer".into()
            } else {
                "the connection closed in the middle of the answer".into()
            });
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Reads as much of the body as gives its first line: up to its length, the end of
/// its chunks, or the end of the connection, and never more than [`MAX_RESPONSE`].
async fn read_body<R: AsyncRead + Unpin>(
    reader: &mut R,
    mut body: Vec<u8>,
    length: Option<usize>,
    chunked: bool,
) -> Result<Vec<u8>, String> {
    let mut chunk = [0u8; 4096];
    loop {
        let complete = match (length, chunked) {
            (_, true) => dechunk(&body).is_some(),
            (Some(n), false) => body.len() >= n,
            (None, false) => false,
        };
        if complete || body.len() > MAX_RESPONSE || (!chunked && body.contains(&b'\n')) {
            break;
        }
        match reader.read(&mut chunk).await {
            Ok(n) if n > 0 => body.extend_from_slice(&chunk[..n]),
            // The end of the connection, or a reset after the answer's head: what
            // arrived is the answer.
            _ => break,
        }
    }
    if chunked {
        return Ok(dechunk(&body).unwrap_or_default());
    }
    if let Some(n) = length {
        body.truncate(n);
    }
    Ok(body)
}

/// A complete chunked body, decoded; `None` while it is incomplete.
fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let Ok(httparse::Status::Complete((used, size))) = httparse::parse_chunk_size(rest) else {
            return None;
        };
        rest = &rest[used..];
        let size = usize::try_from(size).ok()?;
        if size == 0 {
            return Some(out);
        }
        if rest.len() < size + 2 {
            return None;
        }
        out.extend_from_slice(&rest[..size]);
        rest = &rest[size + 2..];
    }
}

fn reason(e: &io::Error) -> String {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "connection refused".into(),
        io::ErrorKind::ConnectionReset => "connection reset".into(),
        _ => e.to_string(),
    }
}

/// A TLS connector trusting the public roots and, if given, the `--ca-cert` file.
fn connector(ca_cert: Option<&PathBuf>) -> anyhow::Result<TlsConnector> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;

    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_cert {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .and_then(Iterator::collect)
            .map_err(|e| usage(format!("cannot read {}: {e}", path.display())))?;
        if certs.is_empty() {
            return Err(usage(format!(
                "{} holds no PEM certificate",
                path.display()
            )));
        }
        for cert in certs {
            roots
                .add(cert)
                .map_err(|e| usage(format!("{}: {e}", path.display())))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("cannot set up TLS")?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsConnector::from(Arc::new(config)))
}

fn print_table(runs: &[Run], passed: usize) -> io::Result<()> {
    let paint = Painter::stdout();
    let rows: Vec<(String, String, String, bool)> = runs
        .iter()
        .map(|r| (r.case.name.to_owned(), r.expected(), r.got(), r.passed()))
        .collect();
    let width = |f: fn(&(String, String, String, bool)) -> usize, title: &str| {
        rows.iter().map(f).max().unwrap_or(0).max(title.len())
    };
    let (w_case, w_expected, w_got) = (
        width(|r| r.0.len(), "case"),
        width(|r| r.1.len(), "expected"),
        width(|r| r.2.len(), "got"),
    );
    output::out_line(&format!(
        "{:<w_case$}  {:<w_expected$}  {:<w_got$}  verdict",
        "case", "expected", "got"
    ))?;
    for (case, expected, got, ok) in &rows {
        let verdict = if *ok {
            paint.good("pass")
        } else {
            paint.bad("FAIL")
        };
        output::out_line(&format!(
            "{case:<w_case$}  {expected:<w_expected$}  {got:<w_got$}  {verdict}"
        ))?;
    }
    output::out_line("")?;
    let replays: Vec<&str> = runs
        .iter()
        .filter(|r| r.case.replay.is_some())
        .map(|r| r.case.name)
        .collect();
    if !replays.is_empty() {
        output::out_line(&paint.dim(&format!(
            "note: {} also expect the receiver's handler to run once for all the copies; that is not observable over HTTP",
            replays.join(", ")
        )))?;
    }
    let score = format!("{passed}/{} cases passed", runs.len());
    output::out_line(&if passed == runs.len() {
        paint.good(&score)
    } else {
        paint.bad(&score)
    })
}

fn print_json(url: &str, target: &Target, runs: &[Run], passed: usize) -> io::Result<()> {
    let cases: Vec<Value> = runs
        .iter()
        .map(|r| {
            let copies: Vec<Value> = r
                .answers
                .iter()
                .enumerate()
                .map(|(i, a)| {
                    let expected = r.case.expected_for_copy(i);
                    let mut v = match a {
                        Answer::Response { status, code } => {
                            json!({"status": status, "code": code})
                        }
                        Answer::Error(e) => json!({"error": e}),
                    };
                    v["expected_status"] = json!(expected.status);
                    v["expected_code"] = json!(expected.code);
                    v["pass"] = json!(a.matches(&expected));
                    v
                })
                .collect();
            let mut v = json!({
                "name": r.case.name,
                "group": r.case.group.as_str(),
                "summary": r.case.summary,
                "expected": r.expected(),
                "got": r.got(),
                "pass": r.passed(),
                "copies": copies,
            });
            if let Some(replay) = &r.case.replay {
                v["concurrent"] = json!(replay.concurrent);
                v["expected_handler_calls"] = json!(replay.handler_calls);
                v["handler_calls_observable"] = json!(false);
            }
            v
        })
        .collect();
    let out = json!({
        "url": url,
        "path": target.path,
        "total": runs.len(),
        "passed": passed,
        "failed": runs.len() - passed,
        "cases": cases,
    });
    output::out_line(&out.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(status: u16, code: &str) -> Answer {
        Answer::Response {
            status,
            code: code.into(),
        }
    }

    #[test]
    fn answers_are_summarized_in_runs() {
        assert_eq!(
            summarize(&[ok(401, "digest.mismatch")]),
            "401 digest.mismatch"
        );
        assert_eq!(summarize(&[ok(204, ""), ok(204, "")]), "204 x2");
        assert_eq!(
            summarize(&[ok(204, ""), ok(204, ""), ok(500, "handler.failed")]),
            "204 x2, 500 handler.failed"
        );
        assert_eq!(
            summarize(&[Answer::Error("connection reset".into())]),
            "error: connection reset"
        );
    }

    #[test]
    fn expectations_read_as_cells() {
        let run = |name: &str, copies: usize| Run {
            case: hostile::get(name).unwrap(),
            answers: vec![ok(204, ""); copies],
        };
        assert_eq!(run("digest_md5", 1).expected(), "401 digest.weak");
        assert_eq!(run("replay_50_at_once", 50).expected(), "204 x50");
        assert_eq!(
            run("replay_other_path", 2).expected(),
            "204, then 404 not_found"
        );
        assert!(run("replay_exact", 2).passed());
        assert!(!run("replay_other_path", 2).passed());
    }

    #[tokio::test]
    async fn responses_are_read_to_their_code() {
        let read = |bytes: &'static [u8]| async move {
            let mut r = bytes;
            read_response(&mut r).await
        };
        assert_eq!(
            read(b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 16\r\n\r\ndigest.mismatch\n").await,
            Ok((401, "digest.mismatch".into()))
        );
        assert_eq!(
            read(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n").await,
            Ok((204, String::new()))
        );
        assert_eq!(
            read(b"HTTP/1.1 400 Bad Request\r\ntransfer-encoding: chunked\r\n\r\n4\r\nbad\n\r\n0\r\n\r\n")
                .await,
            Ok((400, "bad".into()))
        );
        assert_eq!(
            read(b"HTTP/1.1 400 Bad Request\r\n\r\nInvalid Input\n").await,
            Ok((400, "Invalid Input".into()))
        );
        assert_eq!(
            read(b"").await,
            Err("the connection closed without an answer".into())
        );
        assert_eq!(
            read(b"SSH-2.0-OpenSSH\r\n").await,
            Err("the answer is not HTTP/1.x: invalid HTTP version".into())
        );
    }
}
