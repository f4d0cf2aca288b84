//! `dronehook audit`: sends the hostile catalog ([`dronehook_audit`]) to a receiver,
//! each request signed at send time with the receiver's secret, and prints how every
//! answer compares with what the catalog expects.
//!
//! The catalog, the judging of answers and the reading of responses are the audit
//! crate's; this module holds the arguments, the connections (raw bytes on a fresh
//! connection each, TLS with rustls for `https` URLs) and the printing.

use std::io;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use dronehook_audit::raw::{self, io_reason as reason};
use dronehook_audit::{Answer, Exchange, RenderContext, Run, run_case};
use serde_json::{Value, json};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::ServerName;

use crate::cmd::parse_url;
use crate::output::{self, Painter};
use crate::{Outcome, usage};

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
    let runs = run_all(&runtime, &target, &secret)?;

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

fn run_all(
    runtime: &tokio::runtime::Runtime,
    target: &Target,
    secret: &str,
) -> anyhow::Result<Vec<Run>> {
    let parts = Arc::new(target_parts(target));
    // A receiver that is not there, or whose certificate is not trusted, gives one
    // clear error rather than a table of failures.
    runtime
        .block_on(preflight(&parts))
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
    let remote = Remote {
        parts,
        runtime: runtime.handle().clone(),
    };
    let mut runs = Vec::new();
    for case in dronehook_audit::all() {
        // Each case is signed just before it is sent, so its Date is fresh.
        let ctx = RenderContext::new(secret, SystemTime::now())
            .host(target.authority.clone())
            .base_path(target.path.clone())
            .nonce(nonce.clone());
        runs.push(run_case(case, &ctx, &remote));
    }
    Ok(runs)
}

/// The receiver as the catalog's runner sees it: each exchange runs on the async
/// runtime (which holds the TLS connections), called from the runner's threads.
struct Remote {
    parts: Arc<Parts>,
    runtime: tokio::runtime::Handle,
}

impl Exchange for Remote {
    fn exchange(&self, request: &[u8]) -> Answer {
        self.runtime.block_on(exchange_with(&self.parts, request))
    }
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

/// Reads a response as far as its status and code, with the audit crate's reader.
async fn read_response<R: AsyncRead + Unpin>(reader: &mut R) -> Result<(u16, String), String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    loop {
        let (closed, failure) = match reader.read(&mut chunk).await {
            Ok(0) => (true, None),
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                (false, None)
            }
            // A reset after a complete answer still counts as that answer.
            Err(e) => (true, Some(e)),
        };
        match raw::read_response(&buf, closed) {
            Ok(Some(response)) => return Ok((response.status, response.code().to_owned())),
            Ok(None) => {}
            Err(_) if failure.is_some() => {
                let e = failure.unwrap_or_else(|| io::Error::other("the connection failed"));
                return Err(format!(
                    "the connection failed before an answer: {}",
                    reason(&e)
                ));
            }
            Err(e) => return Err(e.to_string()),
        }
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
