//! `dronehook serve`: the receiver, built on dronehook-server. Each verified event is
//! printed, and can be handed to a shell command (`--exec`) and relayed (`--forward`).

use std::future::Future;
use std::net::{SocketAddr, ToSocketAddrs as _};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use dronehook_client::{Client, Payload};
use dronehook_inspector::Inspector;
use dronehook_protocol::{Policy, Secret};
use dronehook_server::{
    Config, Delivery, Handler, HandlerError, Observation, Router, Server, StoreUrl,
};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt as _;
use tokio::sync::{Notify, Semaphore};

use crate::args::{OutputFormat, ServeArgs};
use crate::cmd::parse_url;
use crate::output::{self, Painter};
use crate::{Outcome, summary, usage};

/// Runs the receiver until SIGTERM or Ctrl-C (or until standard output is closed).
pub(crate) fn run(args: ServeArgs) -> anyhow::Result<Outcome> {
    let secrets = args.secrets.gather()?;
    if secrets.is_empty() && !args.insecure_no_verify {
        return Err(usage(
            "no secret: give --secret or --secret-file, or set DRONE_SECRET or DRONE_WEBHOOK_SECRET (--insecure-no-verify accepts unsigned requests)",
        ));
    }
    let addr = parse_bind(&args.bind)?;
    let filter = args.events.filter()?;
    let max_body = usize::try_from(args.max_body).unwrap_or(usize::MAX);
    let forward = forward_client(&args, secrets.first())?;
    let format = match args.output {
        OutputFormat::Auto if output::stdout_is_terminal() => OutputFormat::Pretty,
        OutputFormat::Auto => OutputFormat::Json,
        other => other,
    };
    init_logging(args.debug);

    // A closed standard output (`dronehook serve | head -3`) stops the server quietly.
    let stdout_closed = Arc::new(Notify::new());
    let mut handlers: Vec<(&'static str, Arc<dyn Handler>)> = Vec::new();
    if format != OutputFormat::None {
        let printer = Printer {
            format,
            paint: Painter::stdout(),
            closed: stdout_closed.clone(),
        };
        handlers.push((
            "print",
            Arc::new(move |d: Delivery| {
                printer.print(&d);
                std::future::ready(Ok::<(), HandlerError>(()))
            }),
        ));
    }
    if let Some(command) = &args.exec {
        let exec = Exec {
            command: Arc::from(command.as_str()),
            timeout: args.exec_timeout,
            debug: args.debug,
            slots: Arc::new(Semaphore::new(args.exec_concurrency as usize)),
        };
        handlers.push((
            "exec",
            Arc::new(move |d: Delivery| {
                let exec = exec.clone();
                async move { exec.run(d).await }
            }),
        ));
    }
    if let Some(client) = forward {
        handlers.push((
            "forward",
            Arc::new(move |d: Delivery| {
                let client = client.clone();
                async move { forward_one(&client, d).await }
            }),
        ));
    }

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let paint = Painter::stderr();
    let insecure = args.insecure_no_verify && secrets.is_empty();
    let store = match args.store.as_deref().map(str::parse::<StoreUrl>) {
        Some(Ok(store)) => Some(store),
        Some(Err(e)) => return Err(usage(format!("--store: {e}"))),
        None => None,
    };
    let mut router = Router::new().unknown_events(true);
    for (name, handler) in handlers {
        router = router.route_filter(name, filter.clone(), handler);
    }
    let debug = args.debug;
    let inspector = inspector(&args, store.clone(), secrets.first())?;
    router = match &inspector {
        Some(ui) => {
            let ui = ui.observer();
            router.observe(move |observation| {
                observe(observation, paint, debug);
                ui(observation);
            })
        }
        None => router.observe(move |observation| observe(observation, paint, debug)),
    };

    let mut config = if insecure {
        output::err_line(&paint.bad(
            "WARNING: --insecure-no-verify: requests are NOT verified; anyone who can reach this port can send events",
        ));
        // Without verification there is no Date to bound a replay window by, and the
        // replay check would only drop equal bodies: this mode has none.
        Config::insecure_no_verification().replay_protection(false)
    } else {
        if args.insecure_no_verify {
            // With secrets given, the flag has nothing to turn off: say so rather than
            // silently verifying (or silently not).
            output::err_line(&paint.warn(
                "warning: --insecure-no-verify is ignored because secrets are configured; requests are verified",
            ));
        }
        let policy = Policy::with_secrets(secrets).max_skew(args.max_skew);
        Config::builder(policy).replay_protection(!args.no_replay_check)
    };
    config = config
        .addr(addr)
        .path(args.path.clone())
        .max_body(max_body)
        .idle_timeout(args.idle_timeout);
    if let Some(entries) = args.replay_capacity {
        config = config.replay_capacity(usize::try_from(entries).unwrap_or(usize::MAX));
    }
    if let Some(store) = store {
        config = config.store(store);
    }
    config = config
        .max_attempts(args.attempts)
        .retain(args.retain.0)
        .max_rows(args.retain_rows.0)
        .lease(args.lease);
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        config = config.tls(cert, key);
    }
    let config = config.build();

    runtime.block_on(async move {
        let signal = shutdown_signal(stdout_closed);
        let server = Server::bind(config, router).await.map_err(|e| {
            if e.is_tls() || e.is_config() {
                usage(e.to_string())
            } else {
                anyhow::Error::new(e)
            }
        })?;
        let config = server.config();
        let scheme = if config.tls().is_some() {
            "https"
        } else {
            "http"
        };
        let local = server.local_addr();
        let path = config.path();
        // The store's URL is shown without its password.
        let journal = match config.store() {
            Some(StoreUrl::Sqlite(path)) => format!("journal {}", path.display()),
            Some(store) => format!("store {store}"),
            None => "journal off".to_owned(),
        };
        let count = config.secret_count();
        output::err_line(&format!(
            "listening on {scheme}://{local}{path}  ({count} secret{}, {journal}, replay check {})",
            if count == 1 { "" } else { "s" },
            if config.replay_protection() {
                "on"
            } else {
                "off"
            },
        ));
        // The inspector opens the store the receiver has just opened (and created).
        let ui = match inspector {
            Some(ui) => {
                let bound = ui.bind().await?;
                output::err_line(&format!(
                    "inspector on http://{}/{}",
                    bound.local_addr(),
                    if bound.actions() {
                        ""
                    } else {
                        "  (actions off)"
                    }
                ));
                let (stop, mut stopped) = tokio::sync::watch::channel(false);
                let task = tokio::spawn(bound.run_until(async move {
                    let _ = stopped.changed().await;
                }));
                Some((stop, task))
            }
            None => None,
        };
        let result = server.run_until(signal).await;
        if let Some((stop, task)) = ui {
            let _ = stop.send(true);
            let _ = task.await;
        }
        result?;
        Ok(Outcome::Ok)
    })
}

/// The web inspector, when `--ui` is given: its settings checked before anything
/// listens (a non-loopback address without a token, or a token shorter than
/// `MIN_TOKEN_CHARS`, is a usage error: exit status 2, one line, the token unsaid).
fn inspector(
    args: &ServeArgs,
    store: Option<StoreUrl>,
    first: Option<&Secret>,
) -> anyhow::Result<Option<Inspector>> {
    let Some(text) = &args.ui else {
        return Ok(None);
    };
    let addr = parse_ui_addr(text)?;
    Inspector::builder(store)
        .addr(addr)
        .token(args.ui_token.clone())
        // A replay is signed with the receiver's first secret: the one its senders
        // are given, so the replay verifies where the original did.
        .replay_secret(first.cloned())
        .retention(args.retain.0)
        .build()
        .map(Some)
        .map_err(|e| usage(e.to_string()))
}

/// Reads `--ui`: `host:port`, or a port alone (`8081` or `:8081`), which means
/// 127.0.0.1: the inspector stays on loopback unless an address says otherwise.
fn parse_ui_addr(text: &str) -> anyhow::Result<SocketAddr> {
    let text = text.trim();
    let port = text.strip_prefix(':').unwrap_or(text);
    if let Ok(port) = port.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    text.to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| {
            usage(format!(
                "invalid --ui address {text:?}: give a port (8081, for 127.0.0.1) or host:port"
            ))
        })
}

/// Completes on Ctrl-C, SIGTERM, or when standard output is found closed. The signal
/// handlers are installed at the call (inside the runtime), not at the first poll, so
/// a signal that comes while the server is still starting is not lost.
fn shutdown_signal(stdout_closed: Arc<Notify>) -> impl Future<Output = ()> {
    #[cfg(unix)]
    let mut signals = {
        use tokio::signal::unix::{SignalKind, signal};
        [SignalKind::terminate(), SignalKind::interrupt()].map(|kind| signal(kind).ok())
    };
    async move {
        #[cfg(unix)]
        {
            let [term, int] = &mut signals;
            tokio::select! {
                () = recv(term.as_mut()) => {}
                () = recv(int.as_mut()) => {}
                () = stdout_closed.notified() => {}
            }
        }
        #[cfg(not(unix))]
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            () = stdout_closed.notified() => {}
        }
    }
}

/// Waits for a signal, or forever when its handler could not be installed.
#[cfg(unix)]
async fn recv(signal: Option<&mut tokio::signal::unix::Signal>) {
    match signal {
        Some(signal) => {
            signal.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}

/// Reads `--bind`: `host:port`, or `:port` for every interface (Drone's `:3000`).
fn parse_bind(text: &str) -> anyhow::Result<SocketAddr> {
    let text = text.trim();
    let full = if text.starts_with(':') {
        format!("0.0.0.0{text}")
    } else {
        text.to_owned()
    };
    full.to_socket_addrs()
        .ok()
        .and_then(|mut addrs| addrs.next())
        .ok_or_else(|| {
            usage(format!(
                "invalid --bind address {text:?}: give host:port, such as 127.0.0.1:3000 or :3000"
            ))
        })
}

/// The client that relays events, when `--forward` is given.
fn forward_client(args: &ServeArgs, first: Option<&Secret>) -> anyhow::Result<Option<Client>> {
    if args.forward.is_empty() {
        return Ok(None);
    }
    for url in &args.forward {
        parse_url(url)?;
    }
    let secret = match (&args.forward_secret, first) {
        (Some(s), _) if !s.expose().is_empty() => s.clone(),
        (_, Some(first)) => first.clone(),
        _ => {
            return Err(usage(
                "--forward needs --forward-secret to sign what it relays",
            ));
        }
    };
    let client = Client::builder()
        .secret(secret)
        .endpoints(&args.forward)
        .attempts(3)
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| usage(e.to_string()))?;
    Ok(Some(client))
}

/// Relays one event byte for byte, signed afresh.
async fn forward_one(client: &Client, d: Delivery) -> Result<(), HandlerError> {
    let report = client
        .send(Payload::captured(d.body.clone(), d.envelope.event.as_str()))
        .await;
    match report.failures().next() {
        None => Ok(()),
        Some(failed) => Err(HandlerError::new(format!(
            "forward to {}: {}",
            failed.endpoint,
            failed
                .error
                .as_ref()
                .map_or_else(String::new, |e| super::send::hinted(&e.to_string()))
        ))),
    }
}

/// Installs the log output on stderr: the server's warnings, or everything with `--debug`.
fn init_logging(debug: bool) {
    let filter = if debug {
        tracing_subscriber::EnvFilter::new(
            "debug,hyper=info,hyper_util=info,rustls=info,dronehook_server::insecure=off",
        )
    } else {
        tracing_subscriber::EnvFilter::try_from_env("DRONEHOOK_LOG")
            // The server's own warning for a failed handler run repeats the line
            // `observe` prints, so only its errors are shown from that module.
            .unwrap_or_else(|_| {
                tracing_subscriber::EnvFilter::new(
                    "warn,dronehook_server::dispatch=error,dronehook_server::insecure=off",
                )
            })
    };
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(Painter::stderr().enabled())
        .try_init();
}

/// Reports rejected requests and failed handler runs on stderr; with `--debug`,
/// every request and run.
fn observe(observation: &Observation, paint: Painter, debug: bool) {
    match observation {
        Observation::Request(r) if debug || r.status >= 400 => {
            let what = match (&r.event, &r.action) {
                (Some(e), Some(a)) => format!("  {e} {a}"),
                _ => String::new(),
            };
            let word = if r.status >= 400 {
                paint.bad("rejected")
            } else {
                paint.dim("request")
            };
            output::err_line(&format!(
                "{word}  {} {}{what}  {}ms",
                r.status,
                r.code,
                r.latency.as_millis()
            ));
        }
        Observation::Handler(h) => match &h.result {
            Err(e) => output::err_line(&format!(
                "{}  {}  {}  attempt {}{}: {e}",
                paint.bad("handler failed"),
                h.handler,
                h.event,
                h.attempt,
                if h.will_retry { ", will retry" } else { "" }
            )),
            Ok(()) if debug => output::err_line(&format!(
                "{}  {}  {}  {}ms",
                paint.dim("handler ok"),
                h.handler,
                h.event,
                h.duration.as_millis()
            )),
            Ok(()) => {}
        },
        _ => {}
    }
}

/// Prints each event as a line.
#[derive(Clone)]
pub(crate) struct Printer {
    pub(crate) format: OutputFormat,
    pub(crate) paint: Painter,
    pub(crate) closed: Arc<Notify>,
}

impl Printer {
    pub(crate) fn print(&self, d: &Delivery) {
        let line = match self.format {
            OutputFormat::Json => json_line(d),
            OutputFormat::None => return,
            _ => summary::line(&d.envelope, self.paint),
        };
        if output::out_line(&line).is_err() {
            // Nobody reads the output any more: stop, as any filter in a pipe would.
            self.closed.notify_one();
        }
    }
}

/// One JSON object per event: the summary fields, the delivery's facts and the payload.
fn json_line(d: &Delivery) -> String {
    let mut map = summary::json_fields(&d.envelope);
    let received = humantime::format_rfc3339_millis(d.received_at).to_string();
    map.insert("received".into(), json!(received));
    map.insert("digest".into(), json!(d.digest.to_string()));
    if let Some(id) = d.id {
        map.insert("delivery_id".into(), json!(id));
    }
    let payload: Value = serde_json::from_slice(&d.body).unwrap_or(Value::Null);
    map.insert("payload".into(), payload);
    Value::Object(map).to_string()
}

/// Runs `--exec` commands, a bounded number at a time.
#[derive(Clone)]
struct Exec {
    command: Arc<str>,
    timeout: Duration,
    slots: Arc<Semaphore>,
    /// With `--debug`, a command's captured output is also shown on stderr.
    debug: bool,
}

/// How long the output of a command that has ended is still read: a background
/// process it left behind may hold the pipe open, and must not hold the run.
const OUTPUT_GRACE: Duration = Duration::from_secs(1);

impl Exec {
    async fn run(&self, d: Delivery) -> Result<(), HandlerError> {
        let _slot = self
            .slots
            .acquire()
            .await
            .map_err(|_| HandlerError::new("shutting down"))?;
        let (reader, writer) =
            std::io::pipe().map_err(|e| HandlerError::new(format!("cannot make a pipe: {e}")))?;
        let writer_too = writer
            .try_clone()
            .map_err(|e| HandlerError::new(format!("cannot make a pipe: {e}")))?;
        let mut command = tokio::process::Command::new("sh");
        command
            .arg("-c")
            .arg(&*self.command)
            // The command gets the event, never the receiver's secrets.
            .env_remove("DRONE_SECRET")
            .env_remove("DRONE_WEBHOOK_SECRET")
            .env_remove("DRONE_FORWARD_SECRET")
            .envs(summary::exec_env(&d.envelope))
            .env("DRONE_WEBHOOK_DIGEST", d.digest.to_string())
            .env("DRONE_DELIVERY_ATTEMPT", d.attempt.to_string())
            .env(
                "DRONE_DELIVERY_RECEIVED",
                d.received_at
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .map_or(0, |t| t.as_secs())
                    .to_string(),
            )
            .stdin(Stdio::piped())
            // stdout and stderr share one pipe, so the kept tail has them in the order
            // they were written; stdout of the receiver carries only the event lines.
            .stdout(Stdio::from(writer))
            .stderr(Stdio::from(writer_too))
            .kill_on_drop(true);
        // Its own process group: at the timeout the whole group is killed, so that a
        // `sleep` or a `curl` the shell started does not outlive the run.
        #[cfg(unix)]
        command.process_group(0);
        if let Some(id) = d.id {
            command.env("DRONE_DELIVERY_ID", id.to_string());
        }
        let spawned = command.spawn();
        // The parent's copies of the pipe's write end are gone with `command`: the
        // reader sees the end of the output when the group's last writer exits.
        drop(command);
        let mut child = spawned.map_err(|e| HandlerError::new(format!("cannot start sh: {e}")))?;
        let mut group = ProcessGroup::of(&child);
        let tail = Arc::new(std::sync::Mutex::new(Vec::new()));
        let output = tokio::task::spawn_blocking({
            let tail = tail.clone();
            move || read_tail(reader, &tail, MAX_OUTPUT)
        });
        // The body is written beside the wait, not before it: a command that never
        // reads a body larger than the pipe's buffer would otherwise block the write,
        // and the timeout would never start. One that does not read its input closes
        // the pipe early; that is its business, not an error.
        let writer = child.stdin.take().map(|mut stdin| {
            let body = d.body.clone();
            tokio::spawn(async move {
                let _ = stdin.write_all(&body).await;
            })
        });
        let waited = tokio::time::timeout(self.timeout, child.wait()).await;
        if let Some(writer) = writer {
            writer.abort();
        }
        let result = match waited {
            Ok(Ok(status)) if status.success() => Ok(()),
            Ok(Ok(status)) => Err(HandlerError::new(match status.code() {
                Some(code) => format!("--exec exited with status {code}"),
                None => "--exec was killed by a signal".to_owned(),
            })),
            Ok(Err(e)) => Err(HandlerError::new(format!(
                "--exec could not be waited for: {e}"
            ))),
            Err(_) => {
                group.kill();
                let _ = child.start_kill();
                let _ = child.wait().await;
                Err(HandlerError::new(format!(
                    "--exec timed out after {} and was killed",
                    humantime::format_duration(self.timeout)
                )))
            }
        };
        group.disarm();
        // A background process the command left behind may still hold the pipe: what
        // was read until then is kept, with a note.
        let open = tokio::time::timeout(OUTPUT_GRACE, output).await.is_err();
        let mut tail = std::mem::take(
            &mut *tail
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        if tail.len() > MAX_OUTPUT {
            tail.drain(..tail.len() - MAX_OUTPUT);
        }
        if open {
            tail.extend_from_slice(b"[the output was still open after the command ended]\n");
        }
        if self.debug && !tail.is_empty() {
            let text = String::from_utf8_lossy(&tail);
            for line in text.lines() {
                output::err_line(&format!("exec output  {}: {line}", d.filter_name()));
            }
        }
        // Kept with this attempt's run record (with a store; without one, dropped).
        d.set_output(tail);
        result
    }
}

/// How much of a command's output is kept with its run: the end of it.
const MAX_OUTPUT: usize = dronehook_server::MAX_RUN_OUTPUT;

/// Reads a pipe to its end into `tail`, keeping (about) its last `max` bytes there: at
/// most `2 * max`, trimmed to `max` at the end.
fn read_tail(mut reader: impl std::io::Read, tail: &std::sync::Mutex<Vec<u8>>, max: usize) {
    let mut chunk = [0u8; 8192];
    loop {
        match reader.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => {
                let mut tail = tail
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                tail.extend_from_slice(&chunk[..n]);
                // Trimmed in batches, not per read: the copy is paid once per `max`.
                if tail.len() > 2 * max {
                    let excess = tail.len() - max;
                    tail.drain(..excess);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    let mut tail = tail
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if tail.len() > max {
        let excess = tail.len() - max;
        tail.drain(..excess);
    }
}

/// A command's process group, killed (SIGKILL) when the run is dropped before the
/// command was reaped: at shutdown, a run cut short leaves no process behind.
struct ProcessGroup {
    #[cfg(unix)]
    id: Option<rustix::process::Pid>,
    armed: bool,
}

impl ProcessGroup {
    fn of(child: &tokio::process::Child) -> Self {
        #[cfg(not(unix))]
        let _ = child;
        ProcessGroup {
            #[cfg(unix)]
            id: child
                .id()
                .and_then(|id| rustix::process::Pid::from_raw(id as i32)),
            armed: true,
        }
    }

    /// Kills every process of the group.
    fn kill(&self) {
        #[cfg(unix)]
        if let Some(id) = self.id {
            // ESRCH (the group is gone already) is what we want anyway.
            let _ = rustix::process::kill_process_group(id, rustix::process::Signal::KILL);
        }
    }

    /// The command has been reaped: its id may be reused, so the group is no longer
    /// killed by id. (Its leftover background processes, if any, are left alone.)
    fn disarm(&mut self) {
        self.armed = false;
    }
}

impl Drop for ProcessGroup {
    fn drop(&mut self) {
        if self.armed {
            self.kill();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::read_tail;

    #[test]
    fn the_tail_keeps_the_last_bytes() {
        let input: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let tail = std::sync::Mutex::new(Vec::new());
        read_tail(&input[..], &tail, 1000);
        assert_eq!(*tail.lock().unwrap(), &input[input.len() - 1000..]);
        let tail = std::sync::Mutex::new(Vec::new());
        read_tail(&b"short"[..], &tail, 1000);
        assert_eq!(*tail.lock().unwrap(), b"short");
    }
}
