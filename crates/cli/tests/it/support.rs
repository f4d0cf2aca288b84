//! Shared helpers: running the binary, and a `dronehook serve` child process that is
//! killed when the test ends.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, ChildStderr, Command, Output, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

/// The binary under test.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_dronehook");

/// Generous, for a loaded 2-core machine: only a hang ever waits this long.
pub(crate) const PATIENCE: Duration = Duration::from_secs(60);

/// A `dronehook` command with no DRONE_* variables inherited from the caller.
pub(crate) fn dronehook() -> Command {
    let mut cmd = Command::new(BIN);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("DRONE") {
            cmd.env_remove(key);
        }
    }
    cmd.env("NO_COLOR", "1");
    cmd
}

/// `dronehook serve --bind 127.0.0.1:0`, for more arguments and [`Served::start`].
pub(crate) fn serve_cmd() -> Command {
    let mut cmd = dronehook();
    cmd.args(["serve", "--bind", "127.0.0.1:0"]);
    cmd
}

/// Runs a command to completion.
pub(crate) fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().expect("the binary runs")
}

/// Standard output as text.
pub(crate) fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Standard error as text.
pub(crate) fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A running `dronehook serve`, killed on drop.
pub(crate) struct Served {
    pub(crate) child: Child,
    /// The webhook URL it printed, e.g. `http://127.0.0.1:41234/`.
    pub(crate) url: String,
    /// The whole start-up line.
    pub(crate) banner: String,
    /// The stderr lines before it (warnings).
    pub(crate) preamble: Vec<String>,
    /// Its stderr lines after the start-up line, as they come.
    pub(crate) stderr_lines: mpsc::Receiver<String>,
}

impl Served {
    /// Starts a [`serve_cmd`] and waits for the line that says where it listens.
    pub(crate) fn start(mut cmd: Command) -> Served {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("serve starts");
        let stderr = child.stderr.take().expect("stderr is piped");
        let (tx, rx) = mpsc::channel();
        forward_lines(stderr, tx);
        let mut found = None;
        let mut preamble = Vec::new();
        while let Ok(line) = rx.recv_timeout(PATIENCE) {
            if let Some(rest) = line.split("listening on ").nth(1) {
                found = rest
                    .split_whitespace()
                    .next()
                    .map(|url| (url.to_owned(), line.clone()));
                break;
            }
            preamble.push(line);
        }
        let Some((url, banner)) = found else {
            let _ = child.kill();
            panic!("serve did not say where it listens");
        };
        Served {
            child,
            url,
            banner,
            preamble,
            stderr_lines: rx,
        }
    }

    /// Reads `n` lines of standard output (the event lines), waiting for each.
    pub(crate) fn stdout_lines(&mut self, n: usize) -> Vec<String> {
        let stdout = self.child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut lines = Vec::new();
        while lines.len() < n {
            match rx.recv_timeout(PATIENCE) {
                Ok(line) => lines.push(line),
                Err(_) => break,
            }
        }
        lines
    }

    /// Waits for a stderr line containing `needle`, and returns it.
    pub(crate) fn wait_stderr(&self, needle: &str) -> Option<String> {
        while let Ok(line) = self.stderr_lines.recv_timeout(PATIENCE) {
            if line.contains(needle) {
                return Some(line);
            }
        }
        None
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn forward_lines(stderr: ChildStderr, tx: mpsc::Sender<String>) {
    thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
}
