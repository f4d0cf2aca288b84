//! The servers under test as child processes: start, find the port they bound, read
//! their memory from `/proc`, and stop them (always, even on an early return).

use std::io::{BufRead as _, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// How long a server may take to print its `listening on` line.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// A server process under test. Dropping it kills the process, so no server outlives
/// the benchmark whatever path the code takes out.
pub(crate) struct ServerProc {
    child: Child,
    addr: SocketAddr,
    name: String,
    /// The last lines the server wrote on stderr after the `listening` line, for
    /// error messages.
    tail: Arc<Mutex<Vec<String>>>,
}

/// A process's memory, from `/proc/PID/status`, in KiB.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Mem {
    /// `VmRSS`: resident now.
    pub(crate) rss_kb: u64,
    /// `VmHWM`: the peak resident size since the process started.
    pub(crate) hwm_kb: u64,
}

impl ServerProc {
    /// Starts `cmd` and waits for the `listening on http://ADDR` line on its stderr
    /// (both `dronehook serve` and the no-op server print one).
    pub(crate) fn start(name: &str, mut cmd: Command) -> anyhow::Result<ServerProc> {
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {name}: {cmd:?}"))?;
        let stderr = child.stderr.take().context("the child's stderr")?;
        let tail = Arc::new(Mutex::new(Vec::new()));
        let (tx, rx) = mpsc::channel();
        let lines = tail.clone();
        // The thread keeps draining stderr for the server's whole life, so a chatty
        // server never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if let Some(addr) = tx.as_ref().and_then(|_| listening_addr(&line)) {
                    let _ = tx.take().map(|tx| tx.send(addr));
                    continue;
                }
                let mut lines = lines
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if lines.len() >= 20 {
                    lines.remove(0);
                }
                lines.push(line);
            }
        });
        let mut proc = ServerProc {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            name: name.to_owned(),
            tail,
        };
        let Ok(addr) = rx.recv_timeout(START_TIMEOUT) else {
            let status = proc.child.try_wait().ok().flatten();
            bail!(
                "{name} did not report a listening address (exit status {status:?}); its stderr:\n{}",
                proc.stderr_tail()
            );
        };
        proc.addr = addr;
        Ok(proc)
    }

    /// The address the server listens on.
    pub(crate) fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The last lines of stderr, for error messages.
    pub(crate) fn stderr_tail(&self) -> String {
        self.tail
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .join("\n")
    }

    /// The process's memory now.
    pub(crate) fn mem(&mut self) -> anyhow::Result<Mem> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited early ({status}); its stderr:\n{}",
                self.name,
                self.stderr_tail()
            );
        }
        read_mem(self.child.id())
    }

    /// Stops the server with SIGTERM (so a journal is flushed and closed as in real
    /// use), and kills it if it has not exited after a grace period.
    pub(crate) fn stop(mut self) {
        self.terminate();
    }

    fn terminate(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        // std has no way to send SIGTERM, and the workspace forbids unsafe code, so
        // kill(1) sends it.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for ServerProc {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Reads `VmRSS` and `VmHWM` of a process.
pub(crate) fn read_mem(pid: u32) -> anyhow::Result<Mem> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let field = |name: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    Ok(Mem {
        rss_kb: field("VmRSS:"),
        hwm_kb: field("VmHWM:"),
    })
}

/// CPU time a process has used so far, all its threads, user and system (from
/// `/proc/PID/stat`; Linux reports it in USER_HZ ticks, 100 per second on every
/// architecture the bench runs on).
pub(crate) fn cpu_time(pid: u32) -> Option<std::time::Duration> {
    stat_cpu(std::path::Path::new(&format!("/proc/{pid}/stat")))
}

/// User + system time from a `stat` file of `/proc` (a process's or a thread's).
fn stat_cpu(path: &std::path::Path) -> Option<std::time::Duration> {
    let text = std::fs::read_to_string(path).ok()?;
    // The command name is in parentheses and may hold spaces: count fields after it.
    let rest = &text[text.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After the name: state (3), ..., utime (14), stime (15).
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some(std::time::Duration::from_millis((utime + stime) * 10))
}

/// What a server process has used so far: its CPU, the CPU of its journal writer
/// thread, and the bytes it caused to be written to storage.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Usage {
    /// User + system time of all its threads.
    pub(crate) cpu: Option<std::time::Duration>,
    /// User + system time of the `dronehook-journal` thread (`serve --journal`).
    pub(crate) journal_cpu: Option<std::time::Duration>,
    /// `write_bytes` of `/proc/PID/io`: what its writes put on the way to the disk
    /// (the WAL and the checkpoints' copies into the database file).
    pub(crate) written: Option<u64>,
    /// The same for the journal thread alone: the WAL (and the rare end of a
    /// checkpoint the writer finishes itself).
    pub(crate) journal_written: Option<u64>,
}

impl Usage {
    /// What was used between `self` and `later`.
    pub(crate) fn until(self, later: Usage) -> Usage {
        fn since<T: std::ops::Sub<Output = T> + Ord>(
            before: Option<T>,
            after: Option<T>,
        ) -> Option<T> {
            // A counter that went backwards (a thread that was replaced) says nothing.
            after
                .zip(before)
                .filter(|(b, a)| b >= a)
                .map(|(b, a)| b - a)
        }
        Usage {
            cpu: since(self.cpu, later.cpu),
            journal_cpu: since(self.journal_cpu, later.journal_cpu),
            written: since(self.written, later.written),
            journal_written: since(self.journal_written, later.journal_written),
        }
    }
}

impl Usage {
    /// Both processes' use together (a figure only one of them has is kept as it is).
    fn plus(self, other: Usage) -> Usage {
        fn add<T: std::ops::Add<Output = T>>(a: Option<T>, b: Option<T>) -> Option<T> {
            match (a, b) {
                (Some(a), Some(b)) => Some(a + b),
                (a, b) => a.or(b),
            }
        }
        Usage {
            cpu: add(self.cpu, other.cpu),
            journal_cpu: add(self.journal_cpu, other.journal_cpu),
            written: add(self.written, other.written),
            journal_written: add(self.journal_written, other.journal_written),
        }
    }
}

/// A snapshot of [`Usage`] for several processes, summed.
pub(crate) fn usage_of(pids: &[u32]) -> Usage {
    pids.iter()
        .map(|&pid| usage(pid))
        .reduce(Usage::plus)
        .unwrap_or_default()
}

/// A snapshot of [`Usage`] for a process.
pub(crate) fn usage(pid: u32) -> Usage {
    let journal = std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()
        .and_then(|tasks| {
            tasks.flatten().find(|task| {
                // Linux keeps 15 bytes of a thread's name.
                std::fs::read_to_string(task.path().join("comm"))
                    .is_ok_and(|comm| comm.trim_end() == "dronehook-journ")
            })
        })
        .map(|task| task.path());
    Usage {
        cpu: cpu_time(pid),
        journal_cpu: journal.as_ref().and_then(|t| stat_cpu(&t.join("stat"))),
        written: write_bytes(std::path::Path::new(&format!("/proc/{pid}/io"))),
        journal_written: journal.as_ref().and_then(|t| write_bytes(&t.join("io"))),
    }
}

/// The parent of a process (from `/proc/PID/stat`).
pub(crate) fn parent(pid: u32) -> Option<u32> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // After the parenthesised name: state (3), ppid (4).
    text[text.rfind(')')? + 1..]
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The PostgreSQL processes that serve one database, for its CPU time: the backends
/// connected to it (a backend's process title names its database) and the server's
/// background processes (WAL writer, checkpointer, background writer, autovacuum),
/// which do part of every write; backends of other databases on a shared server are
/// left out. Found as the children of the postmaster, from `/proc`.
#[derive(Clone, Debug)]
pub(crate) struct PgProcs {
    postmaster: u32,
    database: String,
}

impl PgProcs {
    /// The processes of `database` under the postmaster `postmaster`.
    pub(crate) fn new(postmaster: u32, database: &str) -> PgProcs {
        PgProcs {
            postmaster,
            database: database.to_owned(),
        }
    }

    /// Each process's CPU time so far, and whether it is a backend of this database
    /// (else a background process), by process id.
    pub(crate) fn snapshot(&self) -> std::collections::BTreeMap<u32, (Duration, bool)> {
        let mut out = std::collections::BTreeMap::new();
        if let Some(cpu) = cpu_time(self.postmaster) {
            out.insert(self.postmaster, (cpu, false));
        }
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return out;
        };
        for entry in entries.flatten() {
            let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            if parent(pid) != Some(self.postmaster) {
                continue;
            }
            let title = std::fs::read(entry.path().join("cmdline"))
                .map(|b| String::from_utf8_lossy(&b).replace('\0', " "))
                .unwrap_or_default();
            if self.counts(&title)
                && let Some(cpu) = cpu_time(pid)
            {
                out.insert(pid, (cpu, self.is_ours(&title)));
            }
        }
        out
    }

    /// Whether a child of the postmaster with this process title is counted: a
    /// backend of this database, or a background process. A client backend's title
    /// holds its client's address (`HOST(PORT)` or `[local]`); a background
    /// process's does not.
    fn counts(&self, title: &str) -> bool {
        let client = title.contains('(') || title.contains("[local]");
        self.is_ours(title) || !client
    }

    /// Whether the title names this database (its backends, its autovacuum worker).
    fn is_ours(&self, title: &str) -> bool {
        title.split_whitespace().any(|w| w == self.database)
    }

    /// The CPU time used since `before`: all of it, and the database's own backends'
    /// share (a process that started since counts from zero; one that ended since is
    /// lost, which the receivers' connection pools make rare). `None` when no process
    /// was found.
    pub(crate) fn used_since(
        &self,
        before: &std::collections::BTreeMap<u32, (Duration, bool)>,
    ) -> Option<StoreCpu> {
        let after = self.snapshot();
        if after.is_empty() {
            return None;
        }
        let mut used = StoreCpu::default();
        for (pid, (cpu, ours)) in &after {
            let since = cpu.saturating_sub(before.get(pid).map(|b| b.0).unwrap_or_default());
            used.all += since;
            if *ours {
                used.backends += since;
            }
        }
        Some(used)
    }
}

/// The CPU time PostgreSQL used over a run.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct StoreCpu {
    /// Every counted process: the database's backends and the background processes.
    pub(crate) all: Duration,
    /// The database's own backends alone (the background processes also work for
    /// the other databases of a shared server).
    pub(crate) backends: Duration,
}

/// `write_bytes` from an `io` file of `/proc` (a process's or a thread's).
fn write_bytes(path: &std::path::Path) -> Option<u64> {
    std::fs::read_to_string(path).ok().and_then(|text| {
        text.lines()
            .find_map(|l| l.strip_prefix("write_bytes:"))
            .and_then(|v| v.trim().parse().ok())
    })
}

/// The address in a `listening on http://127.0.0.1:PORT/...` line.
fn listening_addr(line: &str) -> Option<SocketAddr> {
    let rest = &line[line.find("listening on http://")? + "listening on http://".len()..];
    let end = rest.find(['/', ' ']).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

/// `perf record -g` attached to a running process.
pub(crate) struct Perf {
    child: Child,
}

impl Perf {
    /// Starts recording `pid` into `file`.
    pub(crate) fn attach(pid: u32, file: &std::path::Path) -> anyhow::Result<Perf> {
        let child = Command::new("perf")
            .args([
                "record",
                "-F",
                "999",
                "-g",
                "-q",
                "-p",
                &pid.to_string(),
                "-o",
            ])
            .arg(file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting perf record (is perf installed?)")?;
        // perf needs a moment to attach before the load starts.
        std::thread::sleep(Duration::from_millis(300));
        eprintln!("bench: perf record -p {pid} -o {}", file.display());
        Ok(Perf { child })
    }

    /// Stops recording (SIGINT, as perf expects) and waits for the file.
    pub(crate) fn finish(mut self) {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Perf {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(Some(_))) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{PgProcs, listening_addr};

    #[test]
    fn the_databases_backends_and_the_background_processes_count() {
        let pg = PgProcs::new(1, "dronehook_test_7_0_12");
        for title in [
            "postgres: 15/main: postgres dronehook_test_7_0_12 127.0.0.1(40312) idle ",
            "postgres: postgres dronehook_test_7_0_12 [local] INSERT",
            "postgres: 15/main: walwriter ",
            "postgres: checkpointer ",
            "postgres: 15/main: background writer ",
            "postgres: autovacuum worker dronehook_test_7_0_12",
        ] {
            assert!(pg.counts(title), "{title}");
        }
        for title in [
            "postgres: 15/main: postgres dronehook_test_7_0_13 127.0.0.1(40313) idle ",
            "postgres: postgres test [local] idle",
            // A database whose name only starts like this one's is another database.
            "postgres: postgres dronehook_test_7_0_123 127.0.0.1(1) idle",
        ] {
            assert!(!pg.counts(title), "{title}");
        }
    }

    #[test]
    fn finds_the_address_in_both_servers_lines() {
        assert_eq!(
            listening_addr(
                "listening on http://127.0.0.1:4321/  (1 secret, journal off, replay check on)"
            ),
            Some("127.0.0.1:4321".parse().expect("addr"))
        );
        assert_eq!(
            listening_addr("listening on http://127.0.0.1:80/"),
            Some("127.0.0.1:80".parse().expect("addr"))
        );
        assert_eq!(listening_addr("warning: something"), None);
    }
}
