//! The paths through the real `dronehook` binary: `sign` then `verify`, and `send` to
//! `serve` over real sockets on 127.0.0.1.

use std::io::{BufRead as _, BufReader, Read, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use super::{Case, Row, expected_delivery, paths};
use crate::fixtures::{SECRET, signing_time};

/// How long one command may take before it is killed and its row fails. Generous:
/// the machine may be busy building.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);

/// The built `dronehook` binary and the subcommands its `--help` lists.
#[derive(Debug)]
pub(crate) struct Binary {
    pub(crate) path: PathBuf,
    subcommands: Vec<String>,
    pub(crate) scratch: tempfile::TempDir,
}

impl Binary {
    /// Whether `--help` lists every one of these subcommands; the reason when not.
    pub(crate) fn require(&self, names: &[&str]) -> Result<(), String> {
        let missing: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| !self.subcommands.iter().any(|s| s == n))
            .collect();
        if missing.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "`dronehook --help` lists no `{}`",
                missing.join("`, `")
            ))
        }
    }
}

/// Builds `dronehook` with `cargo build -p dronehook-cli --locked` and reads its
/// subcommands. The error is the reason every CLI row is "not available".
pub(crate) fn build(root: &Path) -> Result<Binary, String> {
    println!("building the dronehook binary: cargo build -p dronehook-cli --locked");
    let output = Command::new(crate::ci::cargo())
        .args([
            "build",
            "-p",
            "dronehook-cli",
            "--locked",
            "--message-format=json-render-diagnostics",
        ])
        .current_dir(root)
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cargo could not run: {e}"))?;
    if !output.status.success() {
        return Err("`cargo build -p dronehook-cli` failed".into());
    }
    // Cargo reports where it put each executable, wherever CARGO_TARGET_DIR points.
    let path = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|msg| msg["reason"] == "compiler-artifact" && msg["target"]["name"] == "dronehook")
        .find_map(|msg| msg["executable"].as_str().map(PathBuf::from))
        .ok_or("cargo built no `dronehook` executable")?;
    let help =
        run(&path, &["--help"], None).map_err(|e| format!("`dronehook --help` failed: {e:#}"))?;
    let subcommands = subcommands(&help.stdout);
    let scratch = tempfile::tempdir().map_err(|e| format!("no temporary directory: {e}"))?;
    Ok(Binary {
        path,
        subcommands,
        scratch,
    })
}

/// The names in the `Commands:` section of clap's help.
fn subcommands(help: &str) -> Vec<String> {
    help.lines()
        .skip_while(|l| !l.trim_end().ends_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

/// A finished command.
pub(crate) struct Output {
    pub(crate) code: Option<i32>,
    /// Standard output, exactly.
    pub(crate) bytes: Vec<u8>,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
}

impl Output {
    /// The first non-empty line of stdout, else of stderr: what a row shows.
    pub(crate) fn first_line(&self) -> String {
        self.stdout
            .lines()
            .chain(self.stderr.lines())
            .find(|l| !l.trim().is_empty())
            .unwrap_or("(no output)")
            .trim()
            .to_owned()
    }
}

fn reader(mut pipe: impl Read + Send + 'static) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut out = Vec::new();
        let _ = pipe.read_to_end(&mut out);
        out
    })
}

/// Runs the binary with a deadline, feeding `stdin` when given.
pub(crate) fn run(binary: &Path, args: &[&str], stdin: Option<&[u8]>) -> Result<Output> {
    let mut child = Command::new(binary)
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", binary.display()))?;
    if let (Some(input), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let _ = pipe.write_all(input);
    }
    let out = reader(child.stdout.take().context("no stdout pipe")?);
    let err = reader(child.stderr.take().context("no stderr pipe")?);
    let deadline = Instant::now() + COMMAND_TIMEOUT;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "`dronehook {}` did not finish within {}s",
                args.join(" "),
                COMMAND_TIMEOUT.as_secs()
            );
        }
        thread::sleep(Duration::from_millis(10));
    };
    let bytes = out.join().unwrap_or_default();
    let stderr = String::from_utf8_lossy(&err.join().unwrap_or_default()).into_owned();
    Ok(Output {
        code: status.code(),
        stdout: String::from_utf8_lossy(&bytes).into_owned(),
        bytes,
        stderr,
    })
}

/// The fixture date as an HTTP date, for `--date` and `--at`.
fn fixture_date() -> String {
    dronehook_protocol::http_date(signing_time())
}

/// The rows of a path that cannot run at all.
fn unavailable(
    cases: &[Case],
    path: &'static str,
    expected: impl Fn(&Case) -> String,
    why: &str,
) -> Vec<Row> {
    cases
        .iter()
        .map(|c| Row::unavailable(&c.name, path, expected(c), why))
        .collect()
}

/// `dronehook sign --format http` then `dronehook verify --request`, at the fixture date.
pub(crate) fn sign_verify(binary: Result<&Binary, &String>, cases: &[Case]) -> Vec<Row> {
    let expected = |c: &Case| format!("valid, {}", expected_delivery(c));
    let binary = match binary
        .map_err(String::clone)
        .and_then(|b| b.require(&["sign", "verify"]).map(|()| b))
    {
        Ok(b) => b,
        Err(why) => return unavailable(cases, paths::SIGN_VERIFY, expected, &why),
    };
    cases
        .iter()
        .enumerate()
        .map(|(i, case)| {
            let got = sign_then_verify(binary, case, i).unwrap_or_else(|e| format!("error: {e:#}"));
            Row::ran(&case.name, paths::SIGN_VERIFY, expected(case), got)
        })
        .collect()
}

fn sign_then_verify(binary: &Binary, case: &Case, i: usize) -> Result<String> {
    let date = fixture_date();
    let file = case.file.to_string_lossy();
    let signed = run(
        &binary.path,
        &[
            "sign",
            &file,
            "--secret",
            SECRET,
            "--date",
            &date,
            "--event",
            &case.header_event,
            "--format",
            "http",
            "--url",
            "http://127.0.0.1/",
        ],
        None,
    )?;
    if signed.code != Some(0) {
        return Ok(format!(
            "sign exited {:?}: {}",
            signed.code,
            signed.first_line()
        ));
    }
    let request = binary.scratch.path().join(format!("sign-{i}.http"));
    std::fs::write(&request, signed.stdout.as_bytes())?;
    let verified = run(
        &binary.path,
        &[
            "verify",
            "--request",
            &request.to_string_lossy(),
            "--secret",
            SECRET,
            "--at",
            &date,
        ],
        None,
    )?;
    let mut got = verify_verdict(&verified);
    // The same secret, date and body must give the committed request's signature.
    if let Some(committed) = &case.request {
        let committed = std::fs::read(committed).unwrap_or_default();
        let signature = |text: &str| {
            text.lines()
                .find(|l| l.to_ascii_lowercase().starts_with("signature:"))
                .map(|l| l.trim().to_owned())
        };
        if signature(&signed.stdout) != signature(&String::from_utf8_lossy(&committed)) {
            got.push_str(", but its Signature is not the one in fixtures/requests/");
        }
    }
    Ok(got)
}

/// `dronehook verify --request` on each committed `fixtures/requests/` file, at the
/// fixture date: the binary's raw-request reader against the signer's bytes.
pub(crate) fn verify_requests(binary: Result<&Binary, &String>, cases: &[Case]) -> Vec<Row> {
    let cases: Vec<&Case> = cases.iter().filter(|c| c.request.is_some()).collect();
    let expected = |c: &Case| format!("valid, {}", expected_delivery(c));
    let binary = match binary
        .map_err(String::clone)
        .and_then(|b| b.require(&["verify"]).map(|()| b))
    {
        Ok(b) => b,
        Err(why) => {
            return cases
                .iter()
                .map(|c| Row::unavailable(&c.name, paths::VERIFY_REQUEST, expected(c), &why))
                .collect();
        }
    };
    let date = fixture_date();
    cases
        .iter()
        .map(|case| {
            let request = case
                .request
                .as_deref()
                .unwrap_or(Path::new(""))
                .to_string_lossy();
            let got = run(
                &binary.path,
                &[
                    "verify",
                    "--request",
                    &request,
                    "--secret",
                    SECRET,
                    "--at",
                    &date,
                ],
                None,
            )
            .map_or_else(|e| format!("error: {e:#}"), |out| verify_verdict(&out));
            Row::ran(&case.name, paths::VERIFY_REQUEST, expected(case), got)
        })
        .collect()
}

/// `valid, <event> <action>` from `verify`'s `valid  <event> <action>  <repo> #<build>`,
/// or what went wrong.
fn verify_verdict(out: &Output) -> String {
    let line = out.first_line();
    if out.code != Some(0) {
        return format!("verify exited {:?}: {line}", out.code);
    }
    let words: Vec<&str> = line.split_whitespace().collect();
    match words.as_slice() {
        ["valid", event, action, ..] => format!("valid, {event} {action}"),
        _ => format!("verify said {line:?}"),
    }
}

/// `dronehook fixtures show NAME` (the samples built into the binary) must print the
/// committed payload exactly, and `dronehook encode` must print what the protocol
/// crate encodes: a Drone sample's own bytes, and for the others the Go-identical
/// encoding of what they decode to (documentation action names kept, to compare like with like).
pub(crate) fn show_and_encode(binary: Result<&Binary, &String>, cases: &[Case]) -> Vec<Row> {
    let samples: Vec<&Case> = cases.iter().filter(|c| c.request.is_some()).collect();
    let show_expected = || "the bytes of fixtures/payloads/".to_owned();
    let encode_expected = |c: &Case| {
        if c.drone {
            "the payload's own bytes"
        } else {
            "the protocol's encoding"
        }
        .to_owned()
    };
    let binary = match binary
        .map_err(String::clone)
        .and_then(|b| b.require(&["fixtures", "encode"]).map(|()| b))
    {
        Ok(b) => b,
        Err(why) => {
            let mut rows: Vec<Row> = samples
                .iter()
                .map(|c| Row::unavailable(&c.name, paths::FIXTURES_SHOW, show_expected(), &why))
                .collect();
            rows.extend(
                cases
                    .iter()
                    .map(|c| Row::unavailable(&c.name, paths::ENCODE, encode_expected(c), &why)),
            );
            return rows;
        }
    };
    let mut rows = Vec::new();
    for case in &samples {
        let name = case.name.trim_start_matches("payloads/");
        let got = match run(&binary.path, &["fixtures", "show", name], None) {
            Err(e) => format!("error: {e:#}"),
            Ok(out) if out.code != Some(0) => {
                format!("exited {:?}: {}", out.code, out.first_line())
            }
            Ok(out) => same_bytes(&out.bytes, &case.body, &show_expected()),
        };
        rows.push(Row::ran(
            &case.name,
            paths::FIXTURES_SHOW,
            show_expected(),
            got,
        ));
    }
    for case in cases {
        let want = match dronehook_protocol::Envelope::decode_with_header(
            &case.body,
            Some(&case.header_event),
        ) {
            Ok(envelope) => envelope.encode(),
            Err(err) => format!("(does not decode: {})", err.code()).into_bytes(),
        };
        let file = case.file.to_string_lossy();
        let args = [
            "encode",
            &*file,
            "--event",
            &case.header_event,
            "--keep-action",
        ];
        let got = match run(&binary.path, &args, None) {
            Err(e) => format!("error: {e:#}"),
            Ok(out) if out.code != Some(0) => {
                format!("exited {:?}: {}", out.code, out.first_line())
            }
            Ok(out) => same_bytes(&out.bytes, &want, &encode_expected(case)),
        };
        rows.push(Row::ran(
            &case.name,
            paths::ENCODE,
            encode_expected(case),
            got,
        ));
    }
    rows
}

/// `same` when the bytes are equal, else where they first differ.
fn same_bytes(got: &[u8], want: &[u8], same: &str) -> String {
    if got == want {
        return same.to_owned();
    }
    let at = got.iter().zip(want).take_while(|(a, b)| a == b).count();
    format!(
        "differs from byte {at} ({} bytes, {} expected)",
        got.len(),
        want.len()
    )
}

/// A running `dronehook serve`, killed when dropped.
pub(crate) struct Serve {
    child: Child,
    pub(crate) addr: SocketAddr,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

fn line_reader(pipe: impl Read + Send + 'static, sink: Arc<Mutex<Vec<String>>>) {
    thread::spawn(move || {
        for line in BufReader::new(pipe).lines() {
            let Ok(line) = line else { break };
            if let Ok(mut lines) = sink.lock() {
                lines.push(line);
            }
        }
    });
}

/// Finds `127.0.0.1:PORT` with a non-zero port in a line.
fn announced_addr(line: &str) -> Option<SocketAddr> {
    let at = line.find("127.0.0.1:")?;
    let digits: String = line[at + 10..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let port: u16 = digits.parse().ok()?;
    (port != 0).then(|| SocketAddr::from(([127, 0, 0, 1], port)))
}

impl Serve {
    /// Starts `dronehook serve` on a free port of 127.0.0.1 and waits until it says where.
    pub(crate) fn start(binary: &Binary, extra: &[&str]) -> Result<Serve> {
        let mut args = vec![
            "serve",
            "--bind",
            "127.0.0.1:0",
            "--secret",
            SECRET,
            "--output",
            "json",
        ];
        args.extend_from_slice(extra);
        let mut child = Command::new(&binary.path)
            .args(&args)
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting dronehook serve")?;
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        line_reader(
            child.stdout.take().context("no stdout pipe")?,
            Arc::clone(&stdout),
        );
        line_reader(
            child.stderr.take().context("no stderr pipe")?,
            Arc::clone(&stderr),
        );
        let deadline = Instant::now() + COMMAND_TIMEOUT;
        loop {
            let lines: Vec<String> = [&stdout, &stderr]
                .iter()
                .flat_map(|s| s.lock().map(|l| l.clone()).unwrap_or_default())
                .collect();
            if let Some(addr) = lines.iter().find_map(|l| announced_addr(l)) {
                return Ok(Serve {
                    child,
                    addr,
                    stdout,
                    stderr,
                });
            }
            if let Some(status) = child.try_wait()? {
                bail!(
                    "`dronehook serve` exited with {status}: {}",
                    lines.join(" / ")
                );
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!(
                    "`dronehook serve` did not print a 127.0.0.1 address: {}",
                    lines.join(" / ")
                );
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// The JSON objects `serve` has printed on stdout so far.
    fn events(&self) -> Vec<Value> {
        let lines = self.stdout.lock().map(|l| l.clone()).unwrap_or_default();
        lines
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(Value::is_object)
            .collect()
    }

    /// Waits until `serve` has printed more than `seen` events and returns the next one.
    fn next_event(&self, seen: usize) -> Option<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(event) = self.events().into_iter().nth(seen) {
                return Some(event);
            }
            if Instant::now() > deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// The last lines `serve` wrote on stderr, for a failing row.
    fn stderr_tail(&self) -> String {
        let lines = self.stderr.lock().map(|l| l.clone()).unwrap_or_default();
        lines
            .iter()
            .rev()
            .take(2)
            .rev()
            .cloned()
            .collect::<Vec<_>>()
            .join(" / ")
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The first `event` and `action` strings found breadth-first: the envelope's own,
/// before a nested build's `event` (`push`) and `action`.
fn find_event_action(value: &Value) -> Option<String> {
    let mut queue = std::collections::VecDeque::from([value]);
    while let Some(v) = queue.pop_front() {
        if let Value::Object(map) = v {
            if let (Some(Value::String(e)), Some(Value::String(a))) =
                (map.get("event"), map.get("action"))
            {
                return Some(format!("{e} {a}"));
            }
            queue.extend(map.values());
        }
    }
    None
}

/// `dronehook send --raw` each payload to one `dronehook serve`, which must print it.
pub(crate) fn send_serve(binary: Result<&Binary, &String>, cases: &[Case]) -> Vec<Row> {
    let expected = |c: &Case| format!("delivered: {}", expected_delivery(c));
    let binary = match binary
        .map_err(String::clone)
        .and_then(|b| b.require(&["send", "serve"]).map(|()| b))
    {
        Ok(b) => b,
        Err(why) => return unavailable(cases, paths::SEND_SERVE, expected, &why),
    };
    // Replay protection is off so that two fixtures with equal bytes would both be
    // delivered; the hostile catalog tests replays.
    let serve = match Serve::start(binary, &["--no-replay-check"]) {
        Ok(serve) => serve,
        Err(e) => return unavailable(cases, paths::SEND_SERVE, expected, &format!("{e:#}")),
    };
    let endpoint = format!("http://{}/", serve.addr);
    let mut seen = serve.events().len();
    cases
        .iter()
        .map(|case| {
            let file = case.file.to_string_lossy();
            let mut args = vec![
                "send",
                &*file,
                "--endpoint",
                &endpoint,
                "--secret",
                SECRET,
                "--retries",
                "0",
                "--timeout",
                "60s",
                "--raw",
            ];
            args.extend(["--event", &case.header_event]);
            let got = match run(&binary.path, &args, None) {
                Err(e) => format!("error: {e:#}"),
                Ok(out) if out.code != Some(0) => {
                    format!(
                        "send exited {:?}: {} {}",
                        out.code,
                        out.first_line(),
                        serve.stderr_tail()
                    )
                }
                Ok(_) => match serve.next_event(seen) {
                    None => "serve printed no event within 30s".to_owned(),
                    Some(event) => {
                        seen += 1;
                        find_event_action(&event).map_or_else(
                            || format!("serve printed {event}"),
                            |ea| format!("delivered: {ea}"),
                        )
                    }
                },
            };
            Row::ran(&case.name, paths::SEND_SERVE, expected(case), got)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subcommands_are_read_from_clap_help() {
        let help = "Usage: dronehook <COMMAND>\n\nCommands:\n  serve  Receive\n  sign   Sign\n  help   Print\n\nOptions:\n  -h, --help\n";
        assert_eq!(subcommands(help), vec!["serve", "sign", "help"]);
    }

    #[test]
    fn the_announced_address_is_found_in_a_line() {
        assert_eq!(
            announced_addr("listening on http://127.0.0.1:41234/ (path /)"),
            Some(SocketAddr::from(([127, 0, 0, 1], 41234)))
        );
        assert_eq!(announced_addr("binding 127.0.0.1:0"), None);
        assert_eq!(announced_addr("no address"), None);
    }

    #[test]
    fn the_envelope_event_wins_over_the_build_event() {
        let v: Value = serde_json::from_str(
            r#"{"x":{"build":{"event":"push","action":""}},"event":"build","action":"updated"}"#,
        )
        .unwrap();
        assert_eq!(find_event_action(&v).as_deref(), Some("build updated"));
    }
}
