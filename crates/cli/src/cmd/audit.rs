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
#[derive(clap::Args)]
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

/// Everything but the secret, which it only says is there.
impl std::fmt::Debug for AuditArgs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AuditArgs")
            .field("url", &self.url)
            .field("secret", &crate::args::redacted(self.secret.as_ref()))
            .field("path", &self.path)
            .field("timeout", &self.timeout)
            .field("ca_cert", &self.ca_cert)
            .field("json", &self.json)
            .finish()
    }
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
    fn exchange(&self, request: &[u8], answers: usize) -> Vec<Answer> {
        self.runtime
            .block_on(exchange_with(&self.parts, request, answers))
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

/// Sends one request (or several, pipelined) on a new connection and reads as many
/// answers.
async fn exchange_with(parts: &Parts, request: &[u8], answers: usize) -> Vec<Answer> {
    let work = async {
        let tcp = TcpStream::connect((parts.host.as_str(), parts.port))
            .await
            .map_err(|e| format!("cannot connect: {}", reason(&e)))?;
        let _ = tcp.set_nodelay(true);
        match &parts.tls {
            None => Ok(talk(tcp, request, answers).await),
            Some(connector) => {
                let name = ServerName::try_from(parts.host.clone())
                    .map_err(|_| format!("{:?} is not a valid TLS server name", parts.host))?;
                let stream = connector
                    .connect(name, tcp)
                    .await
                    .map_err(|e| format!("TLS handshake failed: {}", reason(&e)))?;
                Ok(talk(stream, request, answers).await)
            }
        }
    };
    match tokio::time::timeout(parts.timeout, work).await {
        Ok(Ok(all)) => all,
        Ok(Err(e)) => vec![Answer::Error(e); answers],
        Err(_) => vec![Answer::Error(format!("no answer within {:?}", parts.timeout)); answers],
    }
}

/// Writes the request while reading the answer: a receiver may answer (413, 400)
/// before it has read the whole request, and then stop reading it.
async fn talk<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    request: &[u8],
    answers: usize,
) -> Vec<Answer> {
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
        std::future::pending::<Vec<Answer>>().await
    };
    tokio::select! {
        answer = read_responses(&mut reader, answers) => answer,
        never = write => never,
    }
}

/// Reads `answers` responses as far as their status and code: the audit crate's
/// reader decides, this only feeds it the async stream's reads.
async fn read_responses<R: AsyncRead + Unpin>(reader: &mut R, answers: usize) -> Vec<Answer> {
    let mut answer = raw::ResponseReader::pipelined(answers);
    let mut chunk = [0u8; 4096];
    loop {
        let read = reader.read(&mut chunk).await;
        if let Some(all) = answer.feed_all(read.map(|n| &chunk[..n])) {
            return all.into_iter().map(Answer::from_result).collect();
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
                        Answer::Closed => json!({"closed": true}),
                        Answer::Error(e) => json!({"error": e}),
                    };
                    if expected.is_closed_or_4xx() {
                        // No one status: closed without an answer, or any 4xx.
                        v["expected_closed_or_4xx"] = json!(true);
                    } else {
                        v["expected_status"] = json!(expected.status);
                        v["expected_code"] = json!(expected.code);
                    }
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

    #[tokio::test]
    async fn responses_are_read_to_their_code() {
        let read = |bytes: &'static [u8], answers: usize| async move {
            let mut r = bytes;
            read_responses(&mut r, answers).await
        };
        assert_eq!(
            read(
                b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 16\r\n\r\ndigest.mismatch\n",
                1
            )
            .await,
            [ok(401, "digest.mismatch")]
        );
        assert_eq!(
            read(
                b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n",
                1
            )
            .await,
            [ok(204, "")]
        );
        assert_eq!(
            read(b"HTTP/1.1 400 Bad Request\r\ntransfer-encoding: chunked\r\n\r\n4\r\nbad\n\r\n0\r\n\r\n", 1)
                .await,
            [ok(400, "bad")]
        );
        assert_eq!(
            read(b"HTTP/1.1 400 Bad Request\r\n\r\nInvalid Input\n", 1).await,
            [ok(400, "Invalid Input")]
        );
        assert_eq!(read(b"", 1).await, [Answer::Closed]);
        assert_eq!(
            read(b"SSH-2.0-OpenSSH\r\n", 1).await,
            [Answer::Error(
                "the answer is not HTTP/1.x: invalid HTTP version".into()
            )]
        );
        // Pipelined: the answers in order; one the receiver never sent is `Closed`.
        assert_eq!(
            read(b"HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 401 Unauthorized\r\ncontent-length: 16\r\n\r\ndigest.mismatch\n", 2).await,
            [ok(204, ""), ok(401, "digest.mismatch")]
        );
        assert_eq!(
            read(b"HTTP/1.1 204 No Content\r\n\r\n", 2).await,
            [ok(204, ""), Answer::Closed]
        );
    }
}
