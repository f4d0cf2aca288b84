//! The command line's grammar: every subcommand, flag and environment variable.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};
use dronehook_protocol::{EventFilter, Secret};

use crate::usage;

/// Receive, verify, send and inspect Drone CI webhooks.
///
/// Exit status: 0 on success, 1 when a verification or a delivery failed (or the
/// server could not run), 2 when the command line or an input is wrong.
#[derive(Parser, Debug)]
#[command(
    name = "dronehook",
    version,
    propagate_version = true,
    max_term_width = 100
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Subcommand, Debug)]
pub(crate) enum Command {
    /// Receive webhooks: verify each request, print it, run a command or relay it.
    Serve(Box<ServeArgs>),
    /// Send payloads to endpoints, signed as Drone signs them.
    Send(SendArgs),
    /// Print the headers Drone would send with a body.
    Sign(SignArgs),
    /// Check the signature of a captured request.
    Verify(VerifyArgs),
    /// Look into a receiver's store: list, show, replay, redeliver, prune, stats, erase.
    Events(crate::cmd::events::EventsArgs),
    /// Send the hostile catalog to a receiver and score its answers.
    Audit(crate::cmd::audit::AuditArgs),
    /// Print the exact bytes Drone would send for a payload.
    Encode(EncodeArgs),
    /// The built-in sample payloads.
    #[command(subcommand)]
    Fixtures(FixturesCommand),
    /// Print a new random secret.
    Secret(SecretArgs),
    /// Make a test CA and a server certificate it issued, for HTTPS in tests.
    Cert(CertArgs),
    /// Print a shell completion script.
    Completions(CompletionsArgs),
}

/// How `serve` prints each event.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OutputFormat {
    /// Pretty lines on a terminal, JSON lines otherwise.
    Auto,
    /// One line per event: `build updated  octocat/hello-world #42  success  2m31s`.
    Pretty,
    /// One JSON object per line.
    Json,
    /// Nothing.
    None,
}

#[derive(Args, Debug)]
#[command(mut_arg("events", |a| a.help(
    "Only handle these events: comma-separated `event:action` globs such as `build:*`"
)))]
pub(crate) struct ServeArgs {
    /// The address to listen on (`:3000` means every interface).
    #[arg(
        long,
        env = "DRONE_BIND",
        default_value = "0.0.0.0:3000",
        value_name = "ADDR"
    )]
    pub(crate) bind: String,
    #[command(flatten)]
    pub(crate) secrets: ReceiverSecrets,
    /// The path that receives webhooks.
    #[arg(long, default_value = "/")]
    pub(crate) path: String,
    /// How far a request's Date may be from now, either way.
    #[arg(long, default_value = "5m", value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) max_skew: Duration,
    /// Deliver a request again when it is sent again (no replay protection).
    #[arg(long)]
    pub(crate) no_replay_check: bool,
    /// How many accepted requests the replay check remembers at most (115 to 165 bytes
    /// each). When full, a new request is answered 503 `replay.full` with Retry-After
    /// (with --journal, the journal checks it instead) [default: --max-skew times 1000
    /// requests a second: 300000 for 5m]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    pub(crate) replay_capacity: Option<u64>,
    /// The largest body accepted (bytes; `k`, `KiB`, `M`, `MiB` suffixes allowed).
    #[arg(long, default_value = "1MiB", value_parser = parse_size, value_name = "SIZE")]
    pub(crate) max_body: u64,
    /// How long a kept-alive connection may stay idle before the server closes it. Keep
    /// it above the clients' own idle timeout (Drone's Go client: 90s), so that they
    /// close first and never send into a closing connection.
    #[arg(long, default_value = "120s", value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) idle_timeout: Duration,
    /// Record every accepted request before answering it: in a SQLite file
    /// (`sqlite:PATH` or a PATH), or in a PostgreSQL database several receivers share
    /// (`postgres://USER@HOST/DB`; TLS by `?sslmode=`, `sslrootcert=`, `sslcert=` and
    /// `sslkey=`, as with psql).
    /// Off unless given
    #[arg(
        long,
        visible_alias = "journal",
        env = "DRONEHOOK_STORE",
        hide_env_values = true,
        value_name = "STORE"
    )]
    // Parsed by `serve` rather than clap, whose refusal would echo the value (and a
    // password in it).
    pub(crate) store: Option<String>,
    /// How long the store keeps a request once its handler runs are finished (`off`: no
    /// age limit)
    #[arg(long, default_value = "7d", value_parser = parse_retain, value_name = "DURATION")]
    pub(crate) retain: Retain,
    /// How many requests the store keeps at most, the newest (`off`: no bound); one
    /// whose handler runs are pending is never pruned
    #[arg(long, default_value = "1000000", value_parser = parse_retain_rows, value_name = "N")]
    pub(crate) retain_rows: RetainRows,
    /// How long a receiver's claim on a handler run in a PostgreSQL store lasts
    /// unrenewed: how soon another receiver runs the handlers of one that died
    #[arg(long, default_value = "30s", value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) lease: Duration,
    #[command(flatten)]
    pub(crate) events: Events,
    /// Run this shell command for each event, with the payload on stdin and DRONE_*
    /// variables in its environment. A non-zero exit is a handler error.
    #[arg(long, value_name = "CMD")]
    pub(crate) exec: Option<String>,
    /// How long a `--exec` command may run before it is killed.
    #[arg(long, default_value = "60s", value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) exec_timeout: Duration,
    /// How many `--exec` commands may run at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u32).range(1..=1024), value_name = "N")]
    pub(crate) exec_concurrency: u32,
    /// How many times a handler (`--exec`, `--forward`) is tried before its run is
    /// `dead`, with a store; retries wait 1s, 2s, 4s... (at most 5m). Without a store a
    /// handler runs once, before the answer.
    #[arg(
        long,
        default_value_t = dronehook_server::DEFAULT_MAX_ATTEMPTS,
        value_parser = clap::value_parser!(u32).range(1..=100),
        value_name = "N"
    )]
    pub(crate) attempts: u32,
    /// Relay each verified event to this URL, re-signed with --forward-secret; repeatable.
    #[arg(long, value_name = "URL")]
    pub(crate) forward: Vec<String>,
    /// The secret that signs forwarded events (default: the first --secret).
    #[arg(
        long,
        env = "DRONE_FORWARD_SECRET",
        hide_env_values = true,
        value_name = "SECRET"
    )]
    pub(crate) forward_secret: Option<Secret>,
    /// How to print each event.
    #[arg(long, value_enum, default_value = "auto")]
    pub(crate) output: OutputFormat,
    /// A PEM certificate chain: serve HTTPS (needs --tls-key).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub(crate) tls_cert: Option<PathBuf>,
    /// The PEM private key for --tls-cert.
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub(crate) tls_key: Option<PathBuf>,
    /// Log every request in detail on stderr.
    #[arg(long, env = "DRONE_DEBUG")]
    pub(crate) debug: bool,
    /// Accept requests without checking their signature. Only for local experiments.
    #[arg(long)]
    pub(crate) insecure_no_verify: bool,
    /// Serve the web inspector on this address (a port alone, or `:PORT`, means
    /// 127.0.0.1). Off unless given. Beyond loopback it needs --ui-token.
    #[arg(long, value_name = "ADDR")]
    pub(crate) ui: Option<String>,
    /// The token the inspector asks for, at least 16 characters (required when --ui is
    /// not a loopback address).
    #[arg(
        long,
        env = "DRONEHOOK_UI_TOKEN",
        hide_env_values = true,
        value_name = "TOKEN"
    )]
    pub(crate) ui_token: Option<Secret>,
}

#[derive(Args, Debug)]
// Drone's sender reads its filter from DRONE_WEBHOOK_EVENTS, and so does `send`.
#[command(mut_arg("events", |a| a
    .env("DRONE_WEBHOOK_EVENTS")
    .help("Only send these events: comma-separated `event:action` globs (Drone's syntax)")))]
pub(crate) struct SendArgs {
    /// Payloads: files, directories (their *.json files), `-` for stdin, or
    /// `fixture:NAME` for a built-in sample.
    #[arg(required = true, value_name = "INPUT")]
    pub(crate) inputs: Vec<String>,
    #[command(flatten)]
    pub(crate) delivery: DeliveryArgs,
    #[command(flatten)]
    pub(crate) events: Events,
    /// Send the bytes as given instead of Drone's encoding of them.
    #[arg(long)]
    pub(crate) raw: bool,
    /// The event of payloads without `event`, as in Drone's documentation examples.
    #[arg(long, value_name = "EVENT")]
    pub(crate) event: Option<String>,
    /// Print the results as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

/// Where and how events are delivered (`send`, `events replay`): one set of flags
/// for both, so they read and behave the same.
#[derive(Args, Debug)]
pub(crate) struct DeliveryArgs {
    /// An endpoint URL; repeat it or separate values with commas.
    #[arg(
        long,
        env = "DRONE_WEBHOOK_ENDPOINT",
        value_delimiter = ',',
        value_name = "URL"
    )]
    pub(crate) endpoint: Vec<String>,
    #[command(flatten)]
    pub(crate) secret: SenderSecret,
    /// Do not verify the endpoints' TLS certificates.
    #[arg(long, env = "DRONE_WEBHOOK_SKIP_VERIFY")]
    pub(crate) skip_verify: bool,
    /// Also trust the CA certificates in this PEM file (a private CA, a self-signed
    /// receiver); repeatable.
    #[arg(long, value_name = "FILE")]
    pub(crate) ca_cert: Vec<PathBuf>,
    /// How many times a failed delivery is retried (0: Drone's single attempt).
    #[arg(long, default_value_t = 4, value_name = "N")]
    pub(crate) retries: u32,
    /// How long one attempt may take.
    #[arg(long, default_value = "60s", value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) timeout: Duration,
}

/// The secrets a receiver checks signatures with (`serve`, `verify`).
#[derive(Args)]
pub(crate) struct ReceiverSecrets {
    /// A shared secret; repeat it or separate values with commas for several (key
    /// rotation). Falls back to DRONE_WEBHOOK_SECRET.
    #[arg(
        long,
        env = "DRONE_SECRET",
        hide_env_values = true,
        value_delimiter = ','
    )]
    pub(crate) secret: Vec<String>,
    /// A file holding secrets, one per line.
    #[arg(long, value_name = "FILE")]
    pub(crate) secret_file: Vec<PathBuf>,
}

/// Counts the secrets, never shows them.
impl std::fmt::Debug for ReceiverSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiverSecrets")
            .field("secret", &format_args!("<{} redacted>", self.secret.len()))
            .field("secret_file", &self.secret_file)
            .finish()
    }
}

impl ReceiverSecrets {
    /// Every secret given (see [`crate::secrets::gather`]); none is not an error here.
    pub(crate) fn gather(&self) -> anyhow::Result<Vec<Secret>> {
        crate::secrets::gather(&self.secret, &self.secret_file)
    }
}

/// The one secret a sender signs with (`send`, `sign`), as Drone's sender takes it.
#[derive(Args)]
pub(crate) struct SenderSecret {
    /// The shared secret.
    #[arg(long, env = "DRONE_WEBHOOK_SECRET", hide_env_values = true)]
    pub(crate) secret: Option<String>,
}

/// Says whether there is a secret, never shows it.
impl std::fmt::Debug for SenderSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SenderSecret")
            .field("secret", &redacted(self.secret.as_ref()))
            .finish()
    }
}

/// How a `Debug` impl shows an optional secret: whether it is there, not what it is.
pub(crate) fn redacted<T>(secret: Option<&T>) -> std::fmt::Arguments<'static> {
    match secret {
        Some(_) => format_args!("Some(<redacted>)"),
        None => format_args!("None"),
    }
}

impl SenderSecret {
    /// The secret, or a usage error when none (or an empty one) was given.
    pub(crate) fn require(&self) -> anyhow::Result<&str> {
        self.secret
            .as_deref()
            .filter(|s| !s.is_empty())
            .ok_or_else(|| usage("no secret: give --secret or set DRONE_WEBHOOK_SECRET"))
    }
}

/// Drone's event filter (`serve`, `send`); each command words its help for what it
/// does with the events left out.
#[derive(Args, Debug)]
pub(crate) struct Events {
    /// Only these events: comma-separated `event:action` globs such as `build:*`.
    #[arg(long, value_name = "FILTERS")]
    pub(crate) events: Option<String>,
}

impl Events {
    /// The filter; everything when the flag is absent or blank.
    pub(crate) fn filter(&self) -> anyhow::Result<EventFilter> {
        match self
            .events
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty())
        {
            Some(list) => {
                EventFilter::parse(list).map_err(|e| usage(format!("invalid --events: {e}")))
            }
            None => Ok(EventFilter::all()),
        }
    }
}

/// What `sign` prints.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SignFormat {
    /// `Name: value` lines.
    Headers,
    /// A curl command that sends the request.
    Curl,
    /// The complete raw HTTP/1.1 request.
    Http,
}

#[derive(Args, Debug)]
pub(crate) struct SignArgs {
    /// The body: a file, `-` for stdin, or `fixture:NAME`. Signed as is.
    #[arg(default_value = "-", value_name = "INPUT")]
    pub(crate) input: String,
    #[command(flatten)]
    pub(crate) secret: SenderSecret,
    /// The Date to sign (an HTTP date or RFC 3339; default now).
    #[arg(long, value_name = "DATE")]
    pub(crate) date: Option<String>,
    /// The signature's keyId.
    #[arg(long, default_value = dronehook_protocol::DRONE_KEY_ID, value_name = "ID")]
    pub(crate) key_id: String,
    /// The X-Drone-Event header (default: the body's `event`).
    #[arg(long, value_name = "EVENT")]
    pub(crate) event: Option<String>,
    /// What to print.
    #[arg(long, value_enum, default_value = "headers")]
    pub(crate) format: SignFormat,
    /// The receiver's URL, for `--format curl` and `--format http`.
    #[arg(long, default_value = "http://127.0.0.1:3000/")]
    pub(crate) url: String,
    /// Print the headers as a JSON object.
    #[arg(long, conflicts_with = "format")]
    pub(crate) json: bool,
}

#[derive(Args, Debug)]
pub(crate) struct VerifyArgs {
    /// The body, with -H: a file or `-` for stdin.
    #[arg(value_name = "BODY", conflicts_with = "request")]
    pub(crate) body: Option<String>,
    /// A raw HTTP/1.1 request, as captured (`-` for stdin).
    #[arg(long, value_name = "FILE")]
    pub(crate) request: Option<String>,
    /// A request header, `Name: value`; repeatable.
    #[arg(
        short = 'H',
        long = "header",
        value_name = "HEADER",
        conflicts_with = "request"
    )]
    pub(crate) headers: Vec<String>,
    #[command(flatten)]
    pub(crate) secrets: ReceiverSecrets,
    /// Verify as of this moment (an HTTP date or RFC 3339; default now).
    #[arg(long, value_name = "DATE")]
    pub(crate) at: Option<String>,
    /// How far the Date may be from the moment of verification, either way.
    #[arg(long, default_value = "5m", value_parser = parse_duration, value_name = "DURATION")]
    pub(crate) max_skew: Duration,
    /// The method, for a signature over `(request-target)` (with -H).
    #[arg(long, default_value = "POST", conflicts_with = "request")]
    pub(crate) method: String,
    /// The path and query, for a signature over `(request-target)` (with -H).
    #[arg(long, default_value = "/", conflicts_with = "request")]
    pub(crate) target: String,
    /// Print the outcome as JSON.
    #[arg(long)]
    pub(crate) json: bool,
}

#[derive(Args, Debug)]
pub(crate) struct EncodeArgs {
    /// The payload: a file, `-` for stdin, or `fixture:NAME`.
    #[arg(default_value = "-", value_name = "INPUT")]
    pub(crate) input: String,
    /// The event of a payload without `event`, as in Drone's documentation examples.
    #[arg(long, value_name = "EVENT")]
    pub(crate) event: Option<String>,
    /// Keep the action names of Drone's documentation examples (`activated`,
    /// `deactivated`, `completed`) instead of writing the ones Drone sends.
    #[arg(long)]
    pub(crate) keep_action: bool,
}

#[derive(Subcommand, Debug)]
pub(crate) enum FixturesCommand {
    /// List the samples.
    List {
        /// Print the list as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Print one sample's body, exactly.
    Show {
        /// The sample's name (see `dronehook fixtures list`).
        name: String,
    },
    /// Write every sample to a directory as NAME.json.
    Write {
        /// The directory (created when missing).
        dir: PathBuf,
        /// Replace files that exist.
        #[arg(long)]
        force: bool,
        /// Only what Drone itself sends (the documentation examples lack `event`, so a
        /// directory of them needs `send --event`).
        #[arg(long)]
        drone: bool,
    },
}

#[derive(Args, Debug)]
pub(crate) struct SecretArgs {
    /// How many random bytes (the secret has twice as many hex characters).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u16).range(8..=256), value_name = "N")]
    pub(crate) bytes: u16,
}

/// `dronehook cert`: a CA and a server certificate for test setups.
#[derive(Args, Debug)]
#[command(after_help = "\
Writes DIR/ca.pem (the CA's certificate: give it to `send --ca-cert`), DIR/server.pem (the
server's certificate followed by the CA's) and DIR/server-key.pem (the server's key, mode
0600): give both to `serve --tls-cert/--tls-key`. The CA's key is not kept, so the CA can
certify nothing else. For tests only: a public receiver needs a certificate from a real CA.")]
pub(crate) struct CertArgs {
    /// The directory to write the files to (created when missing).
    #[arg(long, value_name = "DIR")]
    pub(crate) out: PathBuf,
    /// A host name or IP address the server is reached by; repeat it or separate values
    /// with commas [default: localhost, 127.0.0.1, ::1].
    #[arg(long, value_name = "HOST", value_delimiter = ',')]
    pub(crate) name: Vec<String>,
    /// How long the certificates are valid, in days.
    #[arg(long, default_value_t = 365, value_parser = clap::value_parser!(u16).range(1..), value_name = "N")]
    pub(crate) days: u16,
    /// Replace files that exist.
    #[arg(long)]
    pub(crate) force: bool,
}

#[derive(Args, Debug)]
pub(crate) struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub(crate) shell: clap_complete::Shell,
}

/// Parses durations such as `5m`, `90s`, `1h 30m`.
/// `--retain`: a duration, or `off`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Retain(pub(crate) Option<Duration>);

/// `--retain-rows`: a count, or `off`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RetainRows(pub(crate) Option<u64>);

fn parse_retain(s: &str) -> Result<Retain, String> {
    if s.trim() == "off" {
        return Ok(Retain(None));
    }
    parse_duration(s).map(|d| Retain(Some(d)))
}

fn parse_retain_rows(s: &str) -> Result<RetainRows, String> {
    if s.trim() == "off" {
        return Ok(RetainRows(None));
    }
    match s.trim().parse::<u64>() {
        Ok(n) if n > 0 => Ok(RetainRows(Some(n))),
        _ => Err("a number of rows above 0, or off".to_owned()),
    }
}

pub(crate) fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim())
        .map_err(|e| format!("{e} (durations look like 30s, 5m or 1h30m)"))
}

/// Parses sizes such as `1048576`, `512k`, `512KiB`, `1M`, `1MiB`.
fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let digits = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(digits);
    let number: u64 = number
        .parse()
        .map_err(|_| "sizes look like 1048576, 512KiB or 1MiB".to_owned())?;
    let factor: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "kib" => 1024,
        "m" | "mb" => 1_000_000,
        "mib" => 1024 * 1024,
        "g" | "gb" => 1_000_000_000,
        "gib" => 1024 * 1024 * 1024,
        _ => return Err("sizes look like 1048576, 512KiB or 1MiB".to_owned()),
    };
    number
        .checked_mul(factor)
        .ok_or_else(|| "the size is too large".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1MiB"), Ok(1_048_576));
        assert_eq!(parse_size("512k"), Ok(512_000));
        assert_eq!(parse_size("17"), Ok(17));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5 parsecs").is_err());
    }

    #[test]
    fn debug_output_holds_no_secret() {
        const SECRET: &str = "sekrit-one";
        const OTHER: &str = "sekrit-two";
        for line in [
            vec!["serve", "--secret", SECRET, "--secret", OTHER],
            vec![
                "serve",
                "--secret",
                SECRET,
                "--forward",
                "http://x/",
                "--forward-secret",
                OTHER,
            ],
            vec![
                "verify",
                "--secret",
                &format!("{SECRET},{OTHER}"),
                "request.http",
            ],
            vec!["send", "--secret", SECRET, "http://x/"],
            vec!["sign", "--secret", SECRET],
            vec!["audit", "http://x/", "--secret", SECRET],
        ] {
            let cli = Cli::try_parse_from(std::iter::once("dronehook").chain(line.iter().copied()))
                .unwrap_or_else(|e| panic!("{line:?}: {e}"));
            let debug = format!("{cli:?}");
            assert!(
                !debug.contains("sekrit"),
                "{line:?} shows a secret: {debug}"
            );
            assert!(debug.contains("redacted"), "{line:?}: {debug}");
        }
    }

    #[test]
    fn the_grammar_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
