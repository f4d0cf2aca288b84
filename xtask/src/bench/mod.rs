//! `cargo xtask bench`: the receiver's speed, measured against this machine's ceiling
//! in one run.
//!
//! Four servers run one after the other, each as its own release-built process, under
//! the same load from the project's own generator ([`load`]):
//!
//! - (a) a no-op hyper server that reads the body and answers 204: the ceiling;
//! - (b) `dronehook serve`, verifying, without the replay check or a journal;
//! - (c) the same with a SQLite journal;
//! - (d) verifying with the replay check on (the default), without a journal;
//! - (e) verifying with a PostgreSQL store (a fresh database of the PostgreSQL that
//!   crates/testkit finds, as the tests do), one receiver;
//! - (f) two receivers on one fresh PostgreSQL database, the connections split
//!   between them.
//!
//! Then: memory with 1,000 idle keep-alive connections, and the cost by body size.
//! The results are printed and written between markers in `docs/benchmarks.md`.
//!
//! With `--baseline PATH`, a second `dronehook` binary's (b) to (f) run next to
//! this build's in every round, and a table compares the two; the comparison is
//! printed only, since it is not the project's record.
//!
//! `cargo xtask bench overload` ([`overload`]) loads `dronehook serve` with slowloris
//! connections beside legitimate clients and prints what it measured.

mod load;
mod micro;
mod noop;
mod overload;
mod procs;
mod report;
mod store;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use dronehook_protocol::Envelope;

use self::load::{LoadResult, LoadSpec, Pool, Template};
use self::procs::{Mem, ServerProc};

/// `cargo xtask bench`'s options.
#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
// Command-line switches are naturally booleans; an enum would not read better here.
#[allow(clippy::struct_excessive_bools)]
pub(crate) struct BenchArgs {
    #[command(subcommand)]
    server: Option<Inner>,
    /// Seconds each measured run lasts (after the warm-up).
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    duration: u64,
    /// Seconds of load before each measured run, not counted.
    #[arg(long, default_value_t = 2, value_name = "SECS")]
    warmup: u64,
    /// Keep-alive connections the load generator keeps busy.
    #[arg(long, default_value_t = 32, value_name = "N")]
    connections: usize,
    /// How many times to run the servers (interleaved); the median run of each is kept.
    #[arg(long, default_value_t = 1, value_name = "N")]
    rounds: usize,
    /// Idle keep-alive connections for the memory measurement.
    #[arg(long, default_value_t = 1000, value_name = "N")]
    idle: usize,
    /// Also run the criterion benches of the protocol and client crates.
    #[arg(long)]
    micro: bool,
    /// Print the results without rewriting docs/benchmarks.md.
    #[arg(long)]
    no_write: bool,
    /// Skip the idle-connection and body-size runs (for a quick look).
    #[arg(long)]
    quick: bool,
    /// Only these servers of the main comparison: a, av, avc, avd, b, c, d, e, f
    /// (comma-separated; av, avc and avd are the no-op server doing the protocol's
    /// work: verify, verify + check as `serve` does, verify + full decode).
    #[arg(long, value_delimiter = ',', value_name = "LIST")]
    only: Vec<String>,
    /// Record each server with `perf record -g` into this directory while it is
    /// loaded (the sampling costs CPU: use these runs for profiles, not numbers).
    #[arg(long, value_name = "DIR")]
    perf: Option<PathBuf>,
    /// Another `dronehook` binary (say, an older commit's release build) whose (b)
    /// to (f) run beside this build's in every round, then a comparison table;
    /// docs/benchmarks.md is left as it is.
    #[arg(long, value_name = "PATH")]
    baseline: Option<PathBuf>,
    /// Set by the re-executed release build: the binaries are already built.
    #[arg(long, hide = true)]
    inner: bool,
}

#[derive(clap::Subcommand, Debug)]
enum Inner {
    /// Slowloris connections beside legitimate load against `dronehook serve`: latency,
    /// server memory, and whether the server closes every attacker.
    Overload(overload::OverloadArgs),
    /// The no-op ceiling server (run by the benchmark itself).
    #[command(hide = true)]
    NoopServer {
        /// The address to listen on.
        #[arg(long, default_value = "127.0.0.1:0")]
        bind: String,
        /// What to do with each request besides reading it.
        #[arg(long, value_enum, default_value = "none")]
        work: noop::Work,
    },
}

/// The four servers of the main comparison.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Noop,
    NoopVerify,
    NoopVerifyCheck,
    NoopVerifyDecode,
    Verify,
    Journal,
    Replay,
    Postgres,
    PostgresPair,
}

impl Kind {
    const ALL: [Kind; 9] = [
        Kind::Noop,
        Kind::NoopVerify,
        Kind::NoopVerifyCheck,
        Kind::NoopVerifyDecode,
        Kind::Verify,
        Kind::Journal,
        Kind::Replay,
        Kind::Postgres,
        Kind::PostgresPair,
    ];

    pub(crate) fn letter(self) -> &'static str {
        match self {
            Kind::Noop => "a",
            Kind::NoopVerify => "av",
            Kind::NoopVerifyCheck => "avc",
            Kind::NoopVerifyDecode => "avd",
            Kind::Verify => "b",
            Kind::Journal => "c",
            Kind::Replay => "d",
            Kind::Postgres => "e",
            Kind::PostgresPair => "f",
        }
    }

    pub(crate) fn label(self) -> &'static str {
        match self {
            Kind::Noop => "(a) no-op hyper (ceiling)",
            Kind::NoopVerify => "(a) + protocol verify only",
            Kind::NoopVerifyCheck => "(a) + protocol verify + check",
            Kind::NoopVerifyDecode => "(a) + protocol verify + decode",
            Kind::Verify => "(b) serve: verify",
            Kind::Journal => "(c) serve: verify + journal",
            Kind::Replay => "(d) serve: verify + replay check",
            Kind::Postgres => "(e) serve: verify + PostgreSQL store",
            Kind::PostgresPair => "(f) two serve on one PostgreSQL store",
        }
    }

    /// The label of the baseline binary's run of this server.
    pub(crate) fn baseline_label(self) -> &'static str {
        match self {
            Kind::Verify => "(b') baseline serve: verify",
            Kind::Journal => "(c') baseline serve: verify + journal",
            Kind::Replay => "(d') baseline serve: verify + replay check",
            Kind::Postgres => "(e') baseline serve: verify + PostgreSQL store",
            Kind::PostgresPair => "(f') baseline two serve on one PostgreSQL store",
            _ => self.label(),
        }
    }

    /// Whether this server is `dronehook serve` (the rows a baseline binary adds; it
    /// has `/metrics` to read).
    fn serves(self) -> bool {
        matches!(
            self,
            Kind::Verify | Kind::Journal | Kind::Replay | Kind::Postgres | Kind::PostgresPair
        )
    }

    /// Whether every request of the run must be new: the replay check is on (with
    /// PostgreSQL it is the database's, and always on: it is what lets several
    /// receivers share the store).
    fn replay_check(self) -> bool {
        matches!(self, Kind::Replay | Kind::Postgres | Kind::PostgresPair)
    }

    /// Whether the store is PostgreSQL.
    fn postgres(self) -> bool {
        matches!(self, Kind::Postgres | Kind::PostgresPair)
    }

    /// How many receivers share the load.
    fn receivers(self) -> usize {
        if self == Kind::PostgresPair { 2 } else { 1 }
    }
}

/// One server's measured run.
pub(crate) struct Run {
    pub(crate) kind: Kind,
    /// Whether the `--baseline` binary served it.
    pub(crate) baseline: bool,
    pub(crate) load: LoadResult,
    pub(crate) mem: Mem,
    /// For (c), (e) and (f): the store's own metrics (summed over the receivers).
    pub(crate) commit: Option<Commits>,
    /// For `dronehook serve`: the requests it counted as `ok` and as `replay`
    /// (warm-up included).
    pub(crate) counted: Option<(u64, u64)>,
}

/// Memory with idle connections open.
pub(crate) struct Idle {
    pub(crate) kind: Kind,
    pub(crate) before: Mem,
    pub(crate) loaded: Mem,
    pub(crate) count: usize,
    pub(crate) errors: u64,
}

/// One body size's runs.
pub(crate) struct SizeRun {
    pub(crate) size: usize,
    pub(crate) noop: LoadResult,
    pub(crate) verify: LoadResult,
}

/// Everything one `cargo xtask bench` measured.
pub(crate) struct Results {
    pub(crate) spec: LoadSpec,
    pub(crate) rounds: usize,
    pub(crate) body_len: usize,
    pub(crate) runs: Vec<Run>,
    pub(crate) p99_at_32: Option<LoadResult>,
    pub(crate) idle: Vec<Idle>,
    pub(crate) sizes: Vec<SizeRun>,
    pub(crate) estimates: Vec<micro::Estimate>,
    /// What a synchronous write costs where the journal lives.
    pub(crate) fsync: Option<SyncCost>,
    pub(crate) load_before: String,
    pub(crate) load_after: String,
    pub(crate) started: String,
    /// The `--baseline` binary and the round-by-round comparison with it.
    pub(crate) baseline: Option<Baseline>,
    /// Why rows (e) and (f) were not measured (no PostgreSQL), when they were not.
    pub(crate) no_store: Option<String>,
    /// (c)'s ratio to (a) in the results this run replaces (docs/benchmarks.md),
    /// for the target that (c) does not fall below it.
    pub(crate) previous_journal: Option<(f64, String)>,
}

impl Results {
    /// The kept run of a server (of the build under test).
    pub(crate) fn run(&self, kind: Kind) -> Option<&Run> {
        self.runs.iter().find(|r| r.kind == kind && !r.baseline)
    }

    /// The kept run of a server by the `--baseline` binary.
    pub(crate) fn baseline_run(&self, kind: Kind) -> Option<&Run> {
        self.runs.iter().find(|r| r.kind == kind && r.baseline)
    }
}

impl Run {
    /// The run's name in the tables.
    pub(crate) fn label(&self) -> &'static str {
        if self.baseline {
            self.kind.baseline_label()
        } else {
            self.kind.label()
        }
    }

    /// The run's short name: the server's letter, with a `'` for the baseline's.
    pub(crate) fn letter(&self) -> String {
        format!(
            "{}{}",
            self.kind.letter(),
            if self.baseline { "'" } else { "" }
        )
    }
}

/// The `--baseline` binary and how this build compared with it round by round.
pub(crate) struct Baseline {
    /// The binary, as given.
    pub(crate) path: PathBuf,
    /// What it answers to `--version`.
    pub(crate) version: String,
    /// Whether it is the very file under test (an A/A run: the differences are noise).
    pub(crate) same_binary: bool,
    /// For each `dronehook serve` server, each round's pair of runs.
    pub(crate) pairs: Vec<(Kind, Vec<Pair>)>,
}

/// One round's runs of one server by both binaries, back to back.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Pair {
    /// This build's requests/s over the baseline's.
    pub(crate) rps: f64,
    /// This build's server CPU per request over the baseline's.
    pub(crate) server_cpu: Option<f64>,
}

impl Pair {
    fn of(new: &Run, old: &Run) -> Pair {
        let cpu = |r: &Run| LoadResult::cpu_per_request_us(r.load.server_usage.cpu, r.load.ok);
        Pair {
            rps: new.load.rps() / old.load.rps(),
            server_cpu: cpu(new).zip(cpu(old)).map(|(n, o)| n / o),
        }
    }
}

/// Runs `cargo xtask bench`.
pub(crate) fn run(root: &Path, args: &BenchArgs) -> anyhow::Result<()> {
    let mut bins = Bins::new(root);
    match &args.server {
        Some(Inner::NoopServer { bind, work }) => return noop::run(bind, *work),
        Some(Inner::Overload(o)) => {
            if o.inner || in_release(root, &bins)? {
                overload::run(&bins, o)?;
            }
            return Ok(());
        }
        None => {}
    }
    if !args.inner && !in_release(root, &bins)? {
        return Ok(());
    }
    if args.connections == 0 || args.duration == 0 {
        bail!("--connections and --duration must be at least 1");
    }
    for bin in [&bins.xtask, &bins.dronehook] {
        if !bin.is_file() {
            bail!(
                "{} is missing: run `cargo build --release -p dronehook-cli -p xtask`",
                bin.display()
            );
        }
    }
    let mut baseline_store = true;
    let baseline = match &args.baseline {
        Some(path) => {
            let (version, bounded, store) = baseline_version(path)?;
            bins.baseline_bounded = bounded;
            baseline_store = store;
            let same_binary = same_file(path, &bins.dronehook);
            eprintln!(
                "bench: baseline {} ({version}){}",
                path.display(),
                if same_binary {
                    ": the build under test itself, so every difference is noise"
                } else {
                    ""
                }
            );
            bins.baseline = Some(path.clone());
            Some(Baseline {
                path: path.clone(),
                version,
                same_binary,
                pairs: Vec::new(),
            })
        }
        None => None,
    };

    let scratch = tempfile::tempdir().context("a scratch directory for journals")?;
    let mut kinds: Vec<Kind> = if args.only.is_empty() {
        Kind::ALL.to_vec()
    } else {
        for name in &args.only {
            if !Kind::ALL.iter().any(|k| k.letter() == name.trim()) {
                bail!("--only takes a, av, avc, avd, b, c, d, e and f, not {name:?}");
            }
        }
        Kind::ALL
            .into_iter()
            .filter(|k| args.only.iter().any(|n| n.trim() == k.letter()))
            .collect()
    };
    if !baseline_store && kinds.iter().any(|k| k.postgres()) {
        bail!(
            "the baseline's `serve` has no --store: leave (e) and (f) out with --only \
             (for example --only a,b,c,d)"
        );
    }
    // Rows (e) and (f) need a PostgreSQL; without one they are left out, and the
    // report says why, rather than the whole run failing.
    let mut no_store = None;
    if kinds.iter().any(|k| k.postgres())
        && let Err(why) = store::check()
    {
        eprintln!("bench: rows (e) and (f) left out: {why}");
        kinds.retain(|k| !k.postgres());
        no_store = Some(why);
    }
    if let Some(dir) = &args.perf {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let ctx = Ctx {
        bins: &bins,
        scratch: scratch.path(),
        perf: args.perf.as_deref(),
    };
    let spec = LoadSpec {
        connections: args.connections,
        warmup: Duration::from_secs(args.warmup),
        duration: Duration::from_secs(args.duration),
        threads: 1,
    };
    let corpus = root.join("fixtures/corpus/build_success.json");
    let raw = std::fs::read(&corpus).with_context(|| format!("reading {}", corpus.display()))?;
    let envelope = Envelope::decode(&raw).context("decoding the corpus build payload")?;
    let template = Arc::new(Template::from_build(&envelope)?);

    let mut results = Results {
        spec,
        rounds: args.rounds.max(1),
        body_len: template.body_len(),
        runs: Vec::new(),
        p99_at_32: None,
        idle: Vec::new(),
        sizes: Vec::new(),
        estimates: Vec::new(),
        fsync: None,
        load_before: loadavg(),
        load_after: String::new(),
        started: now_utc(),
        baseline,
        no_store,
        previous_journal: report::previous_ratio(&root.join("docs/benchmarks.md"), Kind::Journal),
    };
    eprintln!(
        "bench: {} connections, {}s warm-up + {}s per run, body {} bytes, {} round(s); load average {}",
        spec.connections,
        args.warmup,
        args.duration,
        template.body_len(),
        results.rounds,
        results.load_before
    );

    // The main comparison, the servers interleaved round by round so that a burst of
    // someone else's work on the machine spreads over all of them.
    let mut all: Vec<Run> = Vec::new();
    let mut ceiling_rps = 50_000.0_f64;
    for round in 0..results.rounds {
        let mut this_round: Vec<Run> = Vec::new();
        for (kind, baseline) in round_order(&kinds, results.baseline.is_some(), round) {
            let pool = pool_for(&template, kind, ceiling_rps, spec);
            let run = measure(&ctx, kind, baseline, round, pool, spec, &[])?;
            if kind == Kind::Noop {
                ceiling_rps = ceiling_rps.max(run.load.rps());
            }
            let ceiling = this_round
                .iter()
                .chain(all.iter().rev())
                .find(|r| r.kind == Kind::Noop)
                .or((kind == Kind::Noop).then_some(&run));
            eprintln!("{}", report::line(&run, ceiling));
            this_round.push(run);
        }
        if let Some(b) = results.baseline.as_mut() {
            record_pairs(b, &kinds, &this_round);
        }
        all.extend(this_round);
    }
    let kept: Vec<(Kind, bool)> = round_order(&kinds, results.baseline.is_some(), 0);
    for (kind, baseline) in kept {
        let mut mine: Vec<Run> = Vec::new();
        let mut rest = Vec::new();
        for r in all {
            if r.kind == kind && r.baseline == baseline {
                mine.push(r);
            } else {
                rest.push(r);
            }
        }
        all = rest;
        let peak = mine.iter().map(|r| r.mem.hwm_kb).max().unwrap_or(0);
        mine.sort_by(|a, b| a.load.rps().total_cmp(&b.load.rps()));
        let mid = mine.len() / 2;
        let mut kept = mine.swap_remove(mid);
        kept.mem.hwm_kb = peak;
        results.runs.push(kept);
    }

    if spec.connections != 32 {
        let at32 = LoadSpec {
            connections: 32,
            ..spec
        };
        let pool = pool_for(&template, Kind::Verify, ceiling_rps, at32);
        let run = measure(&ctx, Kind::Verify, false, 0, pool, at32, &[])?;
        eprintln!("{} (32 connections)", report::line(&run, None));
        results.p99_at_32 = Some(run.load);
    }

    if !args.quick {
        for kind in [Kind::Noop, Kind::Replay] {
            let idle = measure_idle(&ctx, kind, &template, args.idle)?;
            eprintln!(
                "{}: RSS {} KiB idle, {} KiB with {} idle connections ({} errors)",
                kind.label(),
                idle.before.rss_kb,
                idle.loaded.rss_kb,
                idle.count,
                idle.errors
            );
            results.idle.push(idle);
        }
        for size in [1024, 64 * 1024, 1_000_000] {
            let sized = Arc::new(sized_template(&envelope, size)?);
            let extra = ["--max-body", "4MiB"];
            let noop = measure(&ctx, Kind::Noop, false, 0, sized_pool(&sized), spec, &extra)?;
            let verify = measure(
                &ctx,
                Kind::Verify,
                false,
                0,
                sized_pool(&sized),
                spec,
                &extra,
            )?;
            eprintln!(
                "body {size} B: no-op {:.0} req/s, verify {:.0} req/s ({:.1} MB/s)",
                noop.load.rps(),
                verify.load.rps(),
                verify.load.rps() * size as f64 / 1e6
            );
            results.sizes.push(SizeRun {
                size,
                noop: noop.load,
                verify: verify.load,
            });
        }
    }

    if kinds.contains(&Kind::Journal) {
        results.fsync = Some(fsync_probe(scratch.path())?);
    }
    if args.micro {
        micro::run(root)?;
    }
    results.estimates = micro::read_estimates(&micro::target_dir(root));
    results.load_after = loadavg();

    let markdown = report::markdown(&results);
    println!("{markdown}");
    if results.baseline.is_some() {
        eprintln!("bench: with --baseline, docs/benchmarks.md is left as it is");
    } else if !args.no_write {
        let doc = root.join("docs/benchmarks.md");
        report::write_doc(&doc, &markdown)?;
        eprintln!("bench: wrote {}", doc.display());
    }
    Ok(())
}

/// What every measurement needs.
struct Ctx<'a> {
    bins: &'a Bins,
    scratch: &'a Path,
    perf: Option<&'a Path>,
}

/// The binaries under test.
struct Bins {
    xtask: PathBuf,
    dronehook: PathBuf,
    /// `--baseline`: another `dronehook` to compare with.
    baseline: Option<PathBuf>,
    /// Whether the baseline's `serve` takes `--replay-capacity` (older builds have an
    /// unbounded replay map and no such flag).
    baseline_bounded: bool,
}

impl Bins {
    fn new(root: &Path) -> Bins {
        let release = micro::target_dir(root).join("release");
        Bins {
            xtask: release.join(format!("xtask{}", std::env::consts::EXE_SUFFIX)),
            dronehook: release.join(format!("dronehook{}", std::env::consts::EXE_SUFFIX)),
            baseline: None,
            baseline_bounded: false,
        }
    }
}

/// The servers of one round, in order: with a baseline, each `dronehook serve` server
/// is run by both binaries back to back, which one first alternating by round, so that
/// neither always follows the other (a journal's writeback, a warm cache).
fn round_order(kinds: &[Kind], baseline: bool, round: usize) -> Vec<(Kind, bool)> {
    let mut order = Vec::new();
    for &kind in kinds {
        if baseline && kind.serves() {
            let first = round % 2 == 1;
            order.push((kind, first));
            order.push((kind, !first));
        } else {
            order.push((kind, false));
        }
    }
    order
}

/// Adds each `dronehook serve` server's pair of runs from one round.
fn record_pairs(baseline: &mut Baseline, kinds: &[Kind], round: &[Run]) {
    for &kind in kinds.iter().filter(|k| k.serves()) {
        let find = |b: bool| round.iter().find(|r| r.kind == kind && r.baseline == b);
        let (Some(new), Some(old)) = (find(false), find(true)) else {
            continue;
        };
        let pair = Pair::of(new, old);
        match baseline.pairs.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, pairs)) => pairs.push(pair),
            None => baseline.pairs.push((kind, vec![pair])),
        }
    }
}

/// What the baseline binary says it is; fails early, and clearly, when it is not a
/// `dronehook` whose `serve` takes the flags the bench passes; also whether it takes
/// `--replay-capacity`, and `--store` (for (e) and (f)).
fn baseline_version(path: &Path) -> anyhow::Result<(String, bool, bool)> {
    let run = |args: &[&str]| -> anyhow::Result<String> {
        let out = Command::new(path)
            .args(args)
            .output()
            .with_context(|| format!("running the baseline {}", path.display()))?;
        if !out.status.success() {
            bail!(
                "`{} {}` failed ({})",
                path.display(),
                args.join(" "),
                out.status
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    };
    let help = run(&["serve", "--help"])?;
    let missing: Vec<&str> = ["--bind", "--output", "--no-replay-check", "--journal"]
        .into_iter()
        .filter(|flag| !help.contains(flag))
        .collect();
    if !missing.is_empty() {
        bail!(
            "the baseline {} is not a `dronehook` whose `serve` takes {}",
            path.display(),
            missing.join(", ")
        );
    }
    Ok((
        run(&["--version"])?,
        help.contains("--replay-capacity"),
        help.contains("--store"),
    ))
}

fn build(root: &Path) -> anyhow::Result<()> {
    eprintln!("bench: cargo build --release -p dronehook-cli -p xtask");
    let status = Command::new(micro::cargo())
        .current_dir(root)
        .args(["build", "--release", "-p", "dronehook-cli", "-p", "xtask"])
        .status()
        .context("running cargo build --release")?;
    if !status.success() {
        bail!("cargo build --release failed ({status})");
    }
    Ok(())
}

/// Builds the release binaries and, unless this process is the release build of xtask,
/// re-runs the same command from it with `--inner` (the load generator must be an
/// optimised build too). Returns whether this process is to do the work.
fn in_release(root: &Path, bins: &Bins) -> anyhow::Result<bool> {
    build(root)?;
    let me = std::env::current_exe().context("the current executable")?;
    if same_file(&me, &bins.xtask) {
        return Ok(true);
    }
    let mut cmd = Command::new(&bins.xtask);
    cmd.args(std::env::args_os().skip(1)).arg("--inner");
    let status = cmd.status().context("running the release build of xtask")?;
    if !status.success() {
        bail!("the release benchmark failed ({status})");
    }
    Ok(false)
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

/// The command that starts a server of `kind` (by the baseline binary if `baseline`),
/// with the PostgreSQL store `store` for (e) and (f).
fn command(
    bins: &Bins,
    kind: Kind,
    baseline: bool,
    scratch: &Path,
    round: usize,
    store: Option<&str>,
    extra: &[&str],
) -> Command {
    let work = match kind {
        Kind::Noop => Some("none"),
        Kind::NoopVerify => Some("verify"),
        Kind::NoopVerifyCheck => Some("verify-check"),
        Kind::NoopVerifyDecode => Some("verify-decode"),
        _ => None,
    };
    if let Some(work) = work {
        let mut cmd = Command::new(&bins.xtask);
        cmd.args([
            "bench",
            "noop-server",
            "--bind",
            "127.0.0.1:0",
            "--work",
            work,
        ]);
        return cmd;
    }
    let bin = match (&bins.baseline, baseline) {
        (Some(path), true) => path,
        _ => &bins.dronehook,
    };
    let mut cmd = serve_command(bin);
    if let Some(url) = store {
        // The replay check is the database's: on, with no in-memory map to size.
        cmd.args(["--store", url]);
    } else if !kind.replay_check() {
        cmd.arg("--no-replay-check");
    } else if !baseline || bins.baseline_bounded {
        // Every request of a replay-check run is new (`pool_for`), so the default bound
        // (the window times 1,000 a second) would fill within seconds at the bench's
        // rates and turn the rest of the run into 503s: room for the largest pool.
        cmd.args(["--replay-capacity", &MAX_REPLAY_POOL.to_string()]);
    }
    if kind == Kind::Journal {
        let which = if baseline { "-baseline" } else { "" };
        let file = scratch.join(format!("journal-{round}{which}-{}.db", std::process::id()));
        let _ = std::fs::remove_file(&file);
        cmd.arg("--journal").arg(file);
    }
    cmd.args(extra);
    cmd
}

/// `dronehook serve` on a free port of 127.0.0.1 with the bench's secret, printing
/// nothing per event, whatever the environment says.
fn serve_command(dronehook: &Path) -> Command {
    let mut cmd = Command::new(dronehook);
    cmd.args(["serve", "--bind", "127.0.0.1:0", "--output", "none"])
        .env("DRONE_SECRET", load::SECRET)
        .env_remove("DRONE_WEBHOOK_SECRET")
        .env_remove("DRONE_BIND")
        .env_remove("DRONE_DEBUG")
        .env_remove("DRONEHOOK_LOG")
        .env_remove("DRONEHOOK_STORE");
    cmd
}

/// The most requests signed ahead for one replay-check run.
const MAX_REPLAY_POOL: usize = 4_000_000;

/// Requests signed ahead for one run. Servers that do not check replays may be sent
/// a request again when the pool runs out; for the replay check every request of the
/// run must be new, so its pool is sized from the ceiling's rate (and the generator
/// signs inline, and says so, if even that runs out).
fn pool_for(template: &Arc<Template>, kind: Kind, ceiling_rps: f64, spec: LoadSpec) -> Pool {
    let window = (spec.warmup + spec.duration).as_secs_f64();
    let len = if kind.postgres() {
        // The store's rows run at a fraction of the ceiling (the target is a quarter):
        // half its rate is room enough, and saves signing (and holding) a million
        // heads per run. A run that outruns it signs inline and says so.
        (ceiling_rps * window * 0.5).clamp(50_000.0, MAX_REPLAY_POOL as f64) as usize
    } else if kind.replay_check() {
        (ceiling_rps * window * 1.25).clamp(50_000.0, MAX_REPLAY_POOL as f64) as usize
    } else {
        50_000
    };
    Pool::new(template.clone(), len, !kind.replay_check())
}

/// A pool for the body-size runs: about 256 MB of bodies hashed at most.
fn sized_pool(template: &Arc<Template>) -> Pool {
    let len = (256_000_000 / template.body_len()).clamp(64, 50_000);
    Pool::new(template.clone(), len, true)
}

/// A build envelope whose encoding is exactly `size` bytes: without its stages and,
/// when that is still too big, without the repository, with the commit message padded.
fn sized_template(envelope: &Envelope, size: usize) -> anyhow::Result<Template> {
    let mut e = envelope.clone();
    if let Some(build) = e.build.as_mut() {
        build.stages.clear();
        build.message = dronehook_protocol::Text::default();
    }
    let mut base = Template::from_build(&e)?.body_len();
    if base > size {
        e.repo = None;
        base = Template::from_build(&e)?.body_len();
    }
    if base > size {
        bail!("no build payload as small as {size} bytes");
    }
    if let Some(build) = e.build.as_mut() {
        build.message = "x".repeat(size - base).into();
    }
    let t = Template::from_build(&e)?;
    if t.body_len() != size {
        bail!("a {size}-byte body came out {} bytes", t.body_len());
    }
    Envelope::decode(&t.body(0)).context("the sized body does not decode")?;
    Ok(t)
}

/// Starts a server (two for (f), on a fresh database for (e) and (f)), loads it,
/// reads its peak memory, stops it.
fn measure(
    ctx: &Ctx<'_>,
    kind: Kind,
    baseline: bool,
    round: usize,
    pool: Pool,
    spec: LoadSpec,
    extra: &[&str],
) -> anyhow::Result<Run> {
    let label = if baseline {
        kind.baseline_label()
    } else {
        kind.label()
    };
    // A database of its own for every run: none inherits another's rows, dead tuples
    // or dedupe keys.
    let db = if kind.postgres() {
        Some(store::Database::create()?)
    } else {
        None
    };
    let mut servers = Vec::with_capacity(kind.receivers());
    for i in 0..kind.receivers() {
        let name = if kind.receivers() > 1 {
            format!("{label}, receiver {}", i + 1)
        } else {
            label.to_owned()
        };
        let url = db.as_ref().map(store::Database::url);
        servers.push(ServerProc::start(
            &name,
            command(ctx.bins, kind, baseline, ctx.scratch, round, url, extra),
        )?);
    }
    let perf = match ctx.perf {
        Some(dir) => {
            let which = if baseline { "-baseline" } else { "" };
            let file = dir.join(format!("{}{which}-{}.data", kind.letter(), pool.body_len()));
            Some(procs::Perf::attach(servers[0].pid(), &file)?)
        }
        None => None,
    };
    let addrs: Vec<_> = servers.iter().map(ServerProc::addr).collect();
    let watch = load::Watch {
        servers: servers.iter().map(ServerProc::pid).collect(),
        store: db.as_ref().and_then(store::Database::procs),
    };
    let load = load::run(&addrs, pool, spec, watch).with_context(|| format!("loading {label}"))?;
    if let Some(perf) = perf {
        perf.finish();
    }
    // With two receivers, the larger one's: the table's memory is per process.
    let mut mem = Mem::default();
    for server in &mut servers {
        let m = server.mem()?;
        mem.rss_kb = mem.rss_kb.max(m.rss_kb);
        mem.hwm_kb = mem.hwm_kb.max(m.hwm_kb);
    }
    let metrics: Vec<String> = if kind.serves() {
        addrs.iter().filter_map(|a| metrics_text(*a)).collect()
    } else {
        Vec::new()
    };
    let commit = (kind == Kind::Journal || kind.postgres())
        .then(|| store_commits(&metrics))
        .flatten();
    // What the servers themselves counted: every request new (`ok`), none a replay,
    // or the replay check would have had less to do than it does for Drone.
    let counted = (!metrics.is_empty()).then(|| {
        let code = |c: &str| {
            metrics
                .iter()
                .filter_map(|text| {
                    metric(text, &format!("dronehook_requests_total{{code=\"{c}\"}}"))
                })
                .sum::<f64>() as u64
        };
        (code("ok"), code("replay"))
    });
    if load.ok == 0 {
        bail!(
            "{label} answered no request successfully: {:?}; its stderr:\n{}",
            load.error_samples,
            servers
                .iter()
                .map(ServerProc::stderr_tail)
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    for server in servers {
        server.stop();
    }
    drop(db);
    Ok(Run {
        kind,
        baseline,
        load,
        mem,
        commit,
        counted,
    })
}

/// The journal's group commits, from the server's `/metrics` (warm-up included).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Commits {
    /// Mean seconds a request waited for its commit.
    pub(crate) mean_wait: f64,
    /// Requests committed.
    pub(crate) requests: u64,
    /// Mean requests per transaction, when the server reports batch sizes.
    pub(crate) mean_batch: Option<f64>,
}

/// The server's `/metrics` text.
fn metrics_text(addr: std::net::SocketAddr) -> Option<String> {
    use std::io::{Read as _, Write as _};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    Some(text)
}

/// One sample's value, by its exact name and labels.
fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// The store's commit metrics from the servers' `/metrics` (the SQLite journal's and
/// the PostgreSQL store's share their names), summed over the servers.
fn store_commits(texts: &[String]) -> Option<Commits> {
    let value = |name: &str| -> Option<f64> {
        texts
            .iter()
            .map(|text| metric(text, name))
            .reduce(|a, b| Some(a? + b?))
            .flatten()
    };
    let sum = value("dronehook_journal_commit_duration_seconds_sum")?;
    let count = value("dronehook_journal_commit_duration_seconds_count")?;
    let mean_batch = match (
        value("dronehook_journal_batch_size_sum"),
        value("dronehook_journal_batch_size_count"),
    ) {
        (Some(s), Some(n)) if n > 0.0 => Some(s / n),
        _ => None,
    };
    (count > 0.0).then(|| Commits {
        mean_wait: sum / count,
        requests: count as u64,
        mean_batch,
    })
}

/// Memory of a fresh server before and with `count` idle keep-alive connections.
fn measure_idle(
    ctx: &Ctx<'_>,
    kind: Kind,
    template: &Arc<Template>,
    count: usize,
) -> anyhow::Result<Idle> {
    let pool = Pool::new(template.clone(), count.max(1), false);
    let mut server = ServerProc::start(
        kind.label(),
        command(ctx.bins, kind, false, ctx.scratch, 0, None, &[]),
    )?;
    std::thread::sleep(Duration::from_millis(500));
    let before = server.mem()?;
    let pid = server.pid();
    let (loaded, errors) = load::idle(server.addr(), &pool, count, || procs::read_mem(pid))?;
    let loaded = loaded?;
    server.stop();
    Ok(Idle {
        kind,
        before,
        loaded,
        count,
        errors,
    })
}

/// What a synchronous write costs where the journal lives: medians of 50 appends of
/// one 4 KiB page and of 16 pages (64 KiB), each followed by `fdatasync`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SyncCost {
    /// One page: what one journal commit costs at least (SQLite's WAL commit with
    /// `synchronous=FULL` is a write and an fsync).
    pub(crate) page: SyncTime,
    /// 16 pages: about what a group commit of a dozen Drone requests writes.
    pub(crate) sixteen: SyncTime,
}

/// One size's median write + sync.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SyncTime {
    /// From the write to the sync's return.
    pub(crate) wall: Duration,
    /// Of `wall`, the time the writing thread was off the CPU (waiting for the disk).
    pub(crate) waiting: Duration,
}

impl SyncCost {
    /// What each KiB written beyond the first page adds to the wait for a sync (the
    /// device's write rate, seen through the page cache and the file system). The
    /// CPU the kernel spends on the writes is not in it: a writer's CPU time counts it.
    pub(crate) fn waiting_per_kib(&self) -> Duration {
        self.sixteen.waiting.saturating_sub(self.page.waiting) / 60
    }
}

/// Measures [`SyncCost`] in `dir`.
fn fsync_probe(dir: &Path) -> anyhow::Result<SyncCost> {
    use std::io::Write as _;
    // The calling thread's time on the CPU, in nanoseconds (the first field of
    // `schedstat`, exact where `stat`'s ticks are 10 ms).
    let on_cpu = || -> Option<u64> {
        std::fs::read_to_string("/proc/thread-self/schedstat")
            .ok()?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    };
    let median = |pages: usize| -> anyhow::Result<SyncTime> {
        let path = dir.join("fsync-probe");
        let mut file = std::fs::File::create(&path).context("creating the fsync probe file")?;
        let chunk = vec![0x5a_u8; 4096 * pages];
        let mut walls = Vec::with_capacity(50);
        let mut waits = Vec::with_capacity(50);
        for _ in 0..50 {
            let cpu = on_cpu();
            let started = std::time::Instant::now();
            file.write_all(&chunk)?;
            file.sync_data()?;
            let wall = started.elapsed();
            let used = on_cpu()
                .zip(cpu)
                .map_or(0, |(after, before)| after.saturating_sub(before));
            walls.push(wall);
            waits.push(wall.saturating_sub(Duration::from_nanos(used)));
        }
        drop(file);
        let _ = std::fs::remove_file(&path);
        walls.sort();
        waits.sort();
        Ok(SyncTime {
            wall: walls[walls.len() / 2],
            waiting: waits[waits.len() / 2],
        })
    };
    Ok(SyncCost {
        page: median(1)?,
        sixteen: median(16)?,
    })
}

/// The 1, 5 and 15 minute load averages.
fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").ok().map_or_else(
        || "unknown".to_owned(),
        |s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "),
    )
}

/// The current UTC time, as `date -u` prints it (without a dependency for it).
fn now_utc() -> String {
    Command::new("date")
        .args(["-u", "+%Y-%m-%d %H:%M UTC"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use dronehook_protocol::{Envelope, Policy, RequestParts};

    use super::load::{Pool, Template};
    use super::{Kind, round_order, sized_template};

    #[test]
    fn each_build_runs_first_in_every_other_round() {
        let kinds = [Kind::Noop, Kind::Verify, Kind::Replay];
        assert_eq!(
            round_order(&kinds, false, 1),
            [
                (Kind::Noop, false),
                (Kind::Verify, false),
                (Kind::Replay, false)
            ]
        );
        assert_eq!(
            round_order(&kinds, true, 0),
            [
                (Kind::Noop, false),
                (Kind::Verify, false),
                (Kind::Verify, true),
                (Kind::Replay, false),
                (Kind::Replay, true)
            ]
        );
        assert_eq!(
            round_order(&kinds, true, 1),
            [
                (Kind::Noop, false),
                (Kind::Verify, true),
                (Kind::Verify, false),
                (Kind::Replay, true),
                (Kind::Replay, false)
            ]
        );
    }

    fn corpus() -> Envelope {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../fixtures/corpus/build_success.json"
        );
        let raw = std::fs::read(path).expect("the corpus build payload");
        Envelope::decode(&raw).expect("it decodes")
    }

    #[test]
    fn every_body_differs_has_the_same_length_and_decodes() {
        let t = Template::from_build(&corpus()).expect("template");
        let (a, b) = (t.body(0), t.body(1));
        assert_ne!(a, b);
        assert_eq!(a.len(), t.body_len());
        assert_eq!(b.len(), t.body_len());
        let decoded = Envelope::decode(&b).expect("decodes");
        assert_eq!(decoded.build.expect("build").updated, 1_700_000_001);
    }

    #[test]
    fn pooled_requests_verify_under_the_bench_secret() {
        let t = Arc::new(Template::from_build(&corpus()).expect("template"));
        let pool = Pool::new(t, 3, false);
        let (mut out, mut scratch) = (Vec::new(), Vec::new());
        // Request 5 is past the pool's end: it is signed on the spot, and says so.
        for (seq, inline) in [(0, false), (2, false), (5, true)] {
            assert_eq!(pool.write_for_test(seq, &mut out, &mut scratch), inline);
            let parsed = dronehook_audit::raw::Request::parse(&out).expect("a whole request");
            // Content-Length frames exactly the body, with nothing after it.
            assert_eq!(
                parsed.headers["content-length"],
                parsed.body.len().to_string().as_str()
            );
            assert!(out.ends_with(&parsed.body));
            let req = RequestParts::new("POST", "/", &parsed.headers, &parsed.body);
            Policy::new(super::load::SECRET)
                .verify_and_decode(&req, std::time::SystemTime::now())
                .expect("a valid signed request");
        }
    }

    #[test]
    fn sized_bodies_are_exactly_the_asked_size() {
        for size in [1024, 64 * 1024, 1_000_000] {
            let t = sized_template(&corpus(), size).expect("sized template");
            assert_eq!(t.body(7).len(), size);
        }
    }
}
