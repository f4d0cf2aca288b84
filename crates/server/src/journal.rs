//! The journal: an embedded SQLite file (WAL, `synchronous=FULL`) holding every
//! acknowledged request and every handler run, written by one thread that commits
//! concurrent requests together (one fsync for the batch).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use dronehook_protocol::BodyDigest;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use tokio::sync::oneshot;

use crate::error::{Error, Result};
use crate::store::query::millis;

/// The most inserts one transaction takes; a larger burst is split.
const MAX_BATCH: usize = 512;

/// The schema version this build writes and understands (`PRAGMA user_version`).
/// Journals written before versions were kept say 0 and hold version 1's tables.
pub(crate) const SCHEMA_VERSION: i64 = 3;

/// The schema, one step per version: step `n` takes a journal from version `n` to
/// `n + 1`. Steps are only ever appended. Step 0 creates version 1's tables only if
/// they are missing, so it is also right for the journals that predate versions.
const MIGRATIONS: &[&str] = &[
    "
CREATE TABLE IF NOT EXISTS deliveries (
    id INTEGER PRIMARY KEY,
    received_at_ms INTEGER NOT NULL,
    digest BLOB NOT NULL,
    dedupe_key BLOB UNIQUE,
    event TEXT NOT NULL,
    action TEXT NOT NULL,
    known INTEGER NOT NULL,
    repo TEXT,
    build INTEGER,
    headers BLOB NOT NULL,
    body BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
    delivery_id INTEGER NOT NULL REFERENCES deliveries(id),
    handler TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT,
    duration_ms INTEGER,
    updated_at_ms INTEGER,
    PRIMARY KEY (delivery_id, handler)
);
CREATE INDEX IF NOT EXISTS runs_pending ON runs (status) WHERE status = 'pending';
",
    // Version 2: what tools read (`Store`), run output, retries scheduled in the
    // journal. `next_at_ms` is when a pending run is due; NULL while a receiver holds
    // it in memory (queued or running). `attempts_base` is `attempts` when the run was
    // last (re)queued, so a redelivery gets a fresh set of attempts. `requeue` is set
    // by a redelivery of a held run: the attempt in memory is not run twice at once;
    // when it ends, the run is due again with a fresh set. Every `EventQuery` filter
    // has an index (SQLite appends the id to each).
    "
ALTER TABLE deliveries ADD COLUMN build_status TEXT;
ALTER TABLE deliveries ADD COLUMN secret_index INTEGER;
ALTER TABLE deliveries ADD COLUMN erased INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN next_at_ms INTEGER;
ALTER TABLE runs ADD COLUMN output BLOB;
ALTER TABLE runs ADD COLUMN attempts_base INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN requeue INTEGER NOT NULL DEFAULT 0;
UPDATE runs SET status = 'dead' WHERE status = 'failed';
UPDATE runs SET next_at_ms = 0 WHERE status = 'pending';
UPDATE deliveries SET build_status = json_extract(CAST(body AS TEXT), '$.build.status')
    WHERE event = 'build' AND json_valid(CAST(body AS TEXT));
DROP INDEX IF EXISTS runs_pending;
CREATE INDEX deliveries_received ON deliveries (received_at_ms);
CREATE INDEX deliveries_event ON deliveries (event, action);
CREATE INDEX deliveries_repo ON deliveries (repo);
CREATE INDEX deliveries_build_status ON deliveries (build_status);
CREATE INDEX deliveries_builds ON deliveries (repo, id) WHERE event = 'build' AND erased = 0;
CREATE INDEX deliveries_erased ON deliveries (received_at_ms) WHERE erased = 1;
CREATE INDEX runs_status ON runs (status, delivery_id);
CREATE INDEX runs_due ON runs (next_at_ms) WHERE status = 'pending';
",
    // Version 3: bodies compressed. `codec` says how `body` is stored: 0 as received,
    // 1 LZ4 (a block after its length, 4 bytes little-endian). A Drone payload shrinks
    // to about 40%; the bytes a commit writes (its WAL frames, then the checkpoint's
    // copies) are what a journaled request costs most, more than the compression.
    "
ALTER TABLE deliveries ADD COLUMN codec INTEGER NOT NULL DEFAULT 0;
",
];

/// `codec` (both backends): the body as received.
pub(crate) const CODEC_RAW: i64 = 0;
/// `codec` (both backends): an LZ4 block after its length (4 bytes, little-endian).
pub(crate) const CODEC_LZ4: i64 = 1;

/// The largest body a stored length may claim: a damaged row is an error, not an
/// allocation of whatever its first four bytes say.
const MAX_STORED_BODY: usize = 1 << 30;

/// A body's LZ4 form, when that saves at least an eighth (a small or already dense
/// body is stored as it is). Done by the request's task, not by the store's one
/// writer, so that requests compress in parallel.
pub(crate) fn pack_body(body: &[u8]) -> Option<Vec<u8>> {
    if body.len() < 256 {
        return None;
    }
    let packed = lz4_flex::block::compress_prepend_size(body);
    (packed.len() <= body.len() - body.len() / 8).then_some(packed)
}

/// A stored body as it was received.
pub(crate) fn unpack_body(stored: Vec<u8>, codec: i64) -> std::result::Result<Vec<u8>, String> {
    match codec {
        CODEC_RAW => Ok(stored),
        CODEC_LZ4 => {
            let len = stored
                .get(..4)
                .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
                .filter(|&n| n <= MAX_STORED_BODY)
                .ok_or("a stored body is damaged: no valid length")?;
            let mut body = vec![0; len];
            let n = lz4_flex::block::decompress_into(&stored[4..], &mut body)
                .map_err(|e| format!("a stored body is damaged: {e}"))?;
            if n != len {
                return Err(format!(
                    "a stored body is damaged: {n} bytes where {len} were stored"
                ));
            }
            Ok(body)
        }
        other => Err(format!("a stored body is damaged: unknown codec {other}")),
    }
}

/// [`unpack_body`] for a row SQLite read.
pub(crate) fn decode_body(stored: Vec<u8>, codec: i64) -> rusqlite::Result<Vec<u8>> {
    unpack_body(stored, codec).map_err(|why| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Blob, why.into())
    })
}

/// Why a journal's schema cannot be used.
#[derive(Debug)]
pub(crate) enum SchemaError {
    /// Newer than this build (or, read-only, older than it reads): the message says so.
    Version(String),
    /// SQLite failed.
    Sql(String),
}

impl From<rusqlite::Error> for SchemaError {
    fn from(e: rusqlite::Error) -> Self {
        SchemaError::Sql(e.to_string())
    }
}

/// The one line for a schema newer than this build.
pub(crate) fn newer_schema(found: i64, known: i64) -> String {
    format!(
        "the store's schema is version {found}; this dronehook knows up to {known}: upgrade dronehook"
    )
}

/// The journal's schema version: `user_version`, where 0 with tables is version 1.
pub(crate) fn schema_version(conn: &Connection) -> rusqlite::Result<i64> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version != 0 {
        return Ok(version);
    }
    let tables: i64 = conn.query_row(
        "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'deliveries'",
        [],
        |r| r.get(0),
    )?;
    Ok(i64::from(tables > 0))
}

/// Brings a journal up to [`SCHEMA_VERSION`] in one transaction; refuses a newer one.
pub(crate) fn migrate(conn: &Connection) -> std::result::Result<(), SchemaError> {
    let found = schema_version(conn)?;
    if found > SCHEMA_VERSION {
        return Err(SchemaError::Version(newer_schema(found, SCHEMA_VERSION)));
    }
    if found == SCHEMA_VERSION {
        return Ok(());
    }
    // IMMEDIATE: two openers racing both see the old version; the second waits for the
    // first's commit (busy timeout) and then reads the new one.
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let result = (|| {
        let found = schema_version(conn)?;
        if found > SCHEMA_VERSION {
            return Err(SchemaError::Version(newer_schema(found, SCHEMA_VERSION)));
        }
        let from = usize::try_from(found).unwrap_or(0);
        for (version, step) in (1..).zip(MIGRATIONS).skip(from) {
            conn.execute_batch(step)?;
            conn.execute_batch(&format!("PRAGMA user_version = {version}"))?;
            tracing::info!(version, "journal schema migrated");
        }
        Ok(())
    })();
    match result {
        Ok(()) => conn.execute_batch("COMMIT").map_err(Into::into),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// One journaled request.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct JournalEntry {
    /// The journal id.
    pub id: i64,
    /// When the request was received.
    pub received_at: SystemTime,
    /// SHA-256 of the body.
    pub digest: BodyDigest,
    /// The event (as sent, also when unknown).
    pub event: String,
    /// The action (as sent, also when unknown).
    pub action: String,
    /// Whether the event and action are known ones.
    pub known: bool,
    /// The repository slug, when the payload has one.
    pub repo: Option<String>,
    /// The build number, when the payload has one.
    pub build: Option<i64>,
    /// The request headers as received, in order.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The exact body.
    pub body: Vec<u8>,
}

/// Where a handler run stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum RunStatus {
    /// Not finished: queued, running, or failed with attempts left (a restart resumes it).
    Pending,
    /// The handler succeeded.
    Ok,
    /// The handler failed on its last attempt (kept, visible, redeliverable).
    Dead,
}

impl RunStatus {
    /// `pending`, `ok` or `dead`: the name both stores keep and tools show.
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Pending => "pending",
            RunStatus::Ok => "ok",
            RunStatus::Dead => "dead",
        }
    }

    /// A stored status; journals before schema 2 said `failed` for `dead`.
    pub(crate) fn parse(s: &str) -> Self {
        match s {
            "ok" => RunStatus::Ok,
            "dead" | "failed" => RunStatus::Dead,
            _ => RunStatus::Pending,
        }
    }
}

impl std::fmt::Display for RunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A run state that is not `pending`, `ok` or `dead` (one line).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadRunStatus(String);

impl std::fmt::Display for BadRunStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "unknown run state `{}`: give pending, ok or dead",
            self.0.escape_debug()
        )
    }
}

impl std::error::Error for BadRunStatus {}

impl std::str::FromStr for RunStatus {
    type Err = BadRunStatus;

    fn from_str(s: &str) -> std::result::Result<Self, Self::Err> {
        match s {
            "pending" => Ok(RunStatus::Pending),
            "ok" => Ok(RunStatus::Ok),
            "dead" => Ok(RunStatus::Dead),
            other => Err(BadRunStatus(other.to_owned())),
        }
    }
}

/// One handler's runs for one delivery.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HandlerRun {
    /// The delivery's journal id.
    pub delivery_id: i64,
    /// The route name.
    pub handler: String,
    /// Where it stands.
    pub status: RunStatus,
    /// Attempts made so far (a redelivery keeps counting).
    pub attempts: u32,
    /// The last error, when the last attempt failed.
    pub last_error: Option<String>,
    /// How long the last attempt took.
    pub last_duration: Option<Duration>,
    /// A pending run's next attempt (`None`: a receiver holds it now, or finished).
    pub next_at: Option<SystemTime>,
    /// When the run last changed.
    pub updated_at: Option<SystemTime>,
    /// The last attempt's output (its last [`MAX_RUN_OUTPUT`] bytes), when the handler
    /// kept one with [`crate::Delivery::set_output`]; `None` in lists.
    pub output: Option<Vec<u8>>,
}

/// Output a handler keeps with its run (the end of it).
pub const MAX_RUN_OUTPUT: usize = 64 * 1024;

/// The last [`MAX_RUN_OUTPUT`] bytes of `output`.
pub(crate) fn tail_output(mut output: Vec<u8>) -> Vec<u8> {
    if output.len() > MAX_RUN_OUTPUT {
        output.drain(..output.len() - MAX_RUN_OUTPUT);
    }
    output
}

/// A pending run claimed for this receiver's queue.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Due {
    pub(crate) delivery_id: i64,
    pub(crate) handler: String,
    /// Attempts made so far.
    pub(crate) attempts: u32,
    /// `attempts` when the run was last (re)queued: its attempts count from there.
    pub(crate) base: u32,
}

/// `s` as the inside of a JSON string.
/// Handler names as a JSON array, for `json_each`.
fn json_names(handlers: &[String]) -> String {
    format!(
        "[{}]",
        handlers
            .iter()
            .map(|h| format!("\"{}\"", json_escape(h)))
            .collect::<Vec<_>>()
            .join(",")
    )
}

fn json_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                use std::fmt::Write as _;
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// What the server asks the journal to keep for one request.
pub(crate) struct NewEntry {
    pub(crate) received_at: SystemTime,
    pub(crate) digest: BodyDigest,
    pub(crate) dedupe: bool,
    pub(crate) event: String,
    pub(crate) action: String,
    pub(crate) known: bool,
    pub(crate) repo: Option<String>,
    pub(crate) build: Option<i64>,
    /// The build's status (`success`, ...) for build events.
    pub(crate) build_status: Option<String>,
    /// Which secret verified it; `None` with verification off.
    pub(crate) secret_index: Option<u32>,
    pub(crate) headers: Vec<u8>,
    pub(crate) body: bytes::Bytes,
    /// The body's LZ4 form ([`pack_body`]), stored instead of it when present.
    pub(crate) packed: Option<Vec<u8>>,
    pub(crate) handlers: Vec<String>,
    /// The runs go straight to this receiver's in-memory queue (SQLite): they are
    /// stored as held (`next_at_ms` NULL) so the poller does not claim them too.
    pub(crate) queued: bool,
}

impl NewEntry {
    /// The bytes to store for the body, and their `codec`.
    pub(crate) fn stored_body(&self) -> (&[u8], i64) {
        match &self.packed {
            Some(packed) => (packed, CODEC_LZ4),
            None => (&self.body, CODEC_RAW),
        }
    }
}

/// The result of an insert.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Inserted {
    /// A new delivery with this id.
    New(i64),
    /// The dedupe key was already there, under this id.
    Duplicate(i64),
}

/// How one handler attempt ended, for the journal.
pub(crate) struct Attempt {
    pub(crate) delivery_id: i64,
    pub(crate) handler: String,
    pub(crate) status: RunStatus,
    pub(crate) error: Option<String>,
    pub(crate) duration: Duration,
    /// A pending run's next attempt.
    pub(crate) next_at: Option<SystemTime>,
    /// What the handler kept (already cut to [`MAX_RUN_OUTPUT`]).
    pub(crate) output: Option<Vec<u8>>,
}

/// An insert's answer: the outcome and how long the commit took.
type InsertReply = std::result::Result<(Inserted, Duration), String>;

enum Cmd {
    Insert(Box<NewEntry>, oneshot::Sender<InsertReply>),
    Attempt(Box<Attempt>),
    Flush(oneshot::Sender<std::result::Result<(), String>>),
}

struct Inner {
    path: PathBuf,
    tx: Mutex<Option<mpsc::Sender<Cmd>>>,
    available: Arc<AtomicBool>,
    reader: Mutex<Option<Connection>>,
    writer: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// A handle on a journal file. Cloning shares it.
///
/// The server opens its own from [`crate::Config::journal`]; a tool that inspects a
/// journal opens one with [`Journal::open`] and reads it with [`Journal::entries`] and
/// [`Journal::runs`]. SQLite's WAL mode lets readers work beside a running server.
#[derive(Clone)]
pub struct Journal {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Journal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Journal")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

impl Journal {
    /// Opens (creating if needed) a journal file, failing if it cannot be written.
    pub fn open(path: impl AsRef<Path>) -> Result<Journal> {
        let journal = Journal::start(path.as_ref(), BatchStats::default());
        if journal.is_available() {
            Ok(journal)
        } else if let Some(e) = journal.schema_error() {
            journal.close();
            Err(e)
        } else {
            let message = open_writer(path.as_ref())
                .err()
                .unwrap_or_else(|| "unavailable".into());
            Err(Error::journal(path.as_ref(), message))
        }
    }

    /// Starts the writer for a journal file. The server starts even when the file
    /// cannot be opened: it then answers 503 until a later attempt succeeds.
    pub(crate) fn start(path: &Path, stats: BatchStats) -> Journal {
        let (tx, rx) = mpsc::channel();
        let available = Arc::new(AtomicBool::new(false));
        let mut writer = Writer {
            path: path.to_owned(),
            conn: None,
            available: available.clone(),
            stats,
            wake: None,
            checkpoint: Arc::default(),
            woken_at: 0,
            retained: Vec::new(),
        };
        available.store(writer.ensure_open(), Ordering::Release);
        let handle = std::thread::Builder::new()
            .name("dronehook-journal".into())
            .spawn(move || writer.run(&rx))
            .ok();
        Journal {
            inner: Arc::new(Inner {
                path: path.to_owned(),
                tx: Mutex::new(Some(tx)),
                available,
                reader: Mutex::new(None),
                writer: Mutex::new(handle),
            }),
        }
    }

    /// When the journal's schema is newer than this build knows: the one-line error
    /// a receiver refuses to start with (a retry cannot fix that).
    pub(crate) fn schema_error(&self) -> Option<Error> {
        if self.is_available() {
            return None;
        }
        let conn =
            Connection::open_with_flags(&self.inner.path, OpenFlags::SQLITE_OPEN_READ_ONLY).ok()?;
        let found = schema_version(&conn).ok()?;
        (found > SCHEMA_VERSION).then(|| Error::schema(newer_schema(found, SCHEMA_VERSION)))
    }

    /// The journal file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// Whether the last attempt to open or write the journal succeeded.
    pub fn is_available(&self) -> bool {
        self.inner.available.load(Ordering::Acquire)
    }

    fn send(&self, cmd: Cmd) -> bool {
        let guard = self
            .inner
            .tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        guard.as_ref().is_some_and(|tx| tx.send(cmd).is_ok())
    }

    /// Commits a request (in a batch with whatever else is waiting).
    pub(crate) async fn insert(&self, entry: NewEntry) -> InsertReply {
        let (reply, rx) = oneshot::channel();
        if !self.send(Cmd::Insert(Box::new(entry), reply)) {
            return Err("the journal is closed".into());
        }
        rx.await
            .unwrap_or_else(|_| Err("the journal writer stopped".into()))
    }

    /// Records one handler attempt (written in order with the inserts, not awaited).
    pub(crate) fn record_attempt(&self, attempt: Attempt) {
        self.send(Cmd::Attempt(Box::new(attempt)));
    }

    /// Waits until everything sent so far is committed.
    pub async fn flush(&self) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        if !self.send(Cmd::Flush(reply)) {
            return Ok(());
        }
        rx.await
            .unwrap_or_else(|_| Err("the journal writer stopped".into()))
            .map_err(|m| Error::journal(self.path(), m))
    }

    /// Flushes, stops the writer thread and waits for it. Further writes are refused.
    pub(crate) fn close(&self) {
        let tx = self
            .inner
            .tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        drop(tx);
        let handle = self
            .inner
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(handle) = handle {
            let _ = handle.join();
        }
    }

    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let mut guard = self
            .inner
            .reader
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if guard.is_none() {
            let conn = Connection::open_with_flags(
                &self.inner.path,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(|e| Error::journal(&self.inner.path, e))?;
            conn.busy_timeout(Duration::from_secs(10))
                .map_err(|e| Error::journal(&self.inner.path, e))?;
            *guard = Some(conn);
        }
        let conn = guard.as_ref().unwrap_or_else(|| unreachable!());
        f(conn).map_err(|e| Error::journal(&self.inner.path, e))
    }

    /// How many requests the journal holds.
    pub fn count(&self) -> Result<u64> {
        self.read(|c| {
            c.query_row("SELECT COUNT(*) FROM deliveries", [], |r| {
                r.get::<_, i64>(0)
            })
        })
        .map(|n| n as u64)
    }

    /// The entries with an id greater than `after`, oldest first, at most `limit`.
    pub fn entries(&self, after: i64, limit: usize) -> Result<Vec<JournalEntry>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, received_at_ms, digest, event, action, known, repo, build, headers, body,
                        codec
                 FROM deliveries WHERE id > ?1 ORDER BY id LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![after, limit as i64], entry_from_row)?;
            rows.collect()
        })
    }

    /// One entry by id.
    pub fn entry(&self, id: i64) -> Result<Option<JournalEntry>> {
        self.read(|c| {
            c.query_row(
                "SELECT id, received_at_ms, digest, event, action, known, repo, build, headers, body,
                        codec
                 FROM deliveries WHERE id = ?1",
                [id],
                entry_from_row,
            )
            .optional()
        })
    }

    /// The entry holding a body with this digest, if any.
    pub fn find(&self, digest: &BodyDigest) -> Result<Option<i64>> {
        self.read(|c| {
            c.query_row(
                "SELECT id FROM deliveries WHERE digest = ?1 ORDER BY id LIMIT 1",
                [&digest.as_bytes()[..]],
                |r| r.get(0),
            )
            .optional()
        })
    }

    /// The handler runs of one delivery.
    pub fn runs(&self, delivery_id: i64) -> Result<Vec<HandlerRun>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {RUN_COLUMNS}, output FROM runs WHERE delivery_id = ?1 ORDER BY handler"
            ))?;
            let rows = stmt.query_map([delivery_id], run_from_row)?;
            rows.collect()
        })
    }

    /// Removes the requests retention lets go, oldest first, with their runs: those
    /// received more than `retain` ago, and those beyond the newest `max_rows`. A
    /// request with a pending run is never removed. Works in chunks on a connection of
    /// its own, so the writer waits at most one chunk's delete. Returns how many
    /// requests were removed.
    pub fn prune(&self, retain: Option<Duration>, max_rows: Option<u64>) -> Result<u64> {
        const CHUNK: i64 = 1000;
        let cutoff = retain.map(|d| {
            millis(SystemTime::now())
                .saturating_sub(i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        });
        let mut total = 0;
        loop {
            let removed = self.read(|c| {
                // The newest id beyond the row bound: it and older ones may go.
                let bound: Option<i64> = match max_rows {
                    Some(max) => c
                        .query_row(
                            "SELECT id FROM deliveries ORDER BY id DESC LIMIT 1 OFFSET ?1",
                            [i64::try_from(max).unwrap_or(i64::MAX)],
                            |r| r.get(0),
                        )
                        .optional()?,
                    None => None,
                };
                if cutoff.is_none() && bound.is_none() {
                    return Ok(0);
                }
                let chosen = "SELECT d.id FROM deliveries d
                     WHERE (d.received_at_ms < ?1 OR d.id <= ?2)
                       AND NOT EXISTS (SELECT 1 FROM runs r
                                       WHERE r.delivery_id = d.id AND r.status = 'pending')
                     ORDER BY d.id LIMIT ?3";
                let tx = c.unchecked_transaction()?;
                tx.execute(
                    &format!("DELETE FROM runs WHERE delivery_id IN ({chosen})"),
                    params![cutoff, bound, CHUNK],
                )?;
                let n = tx.execute(
                    &format!("DELETE FROM deliveries WHERE id IN ({chosen})"),
                    params![cutoff, bound, CHUNK],
                )?;
                tx.commit()?;
                Ok(n as u64)
            })?;
            total += removed;
            if removed < CHUNK as u64 {
                return Ok(total);
            }
        }
    }

    /// Claims up to `limit` due pending runs of these handlers for this process's
    /// queue: they are marked held (`next_at_ms` NULL) and returned, oldest due first.
    pub(crate) fn claim_due(&self, handlers: &[String], limit: usize) -> Result<Vec<Due>> {
        let names = json_names(handlers);
        let now = millis(SystemTime::now());
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                // A claim starts an attempt after any redelivery asked so far.
                "UPDATE runs SET next_at_ms = NULL, requeue = 0
                 WHERE rowid IN (
                     SELECT rowid FROM runs INDEXED BY runs_due
                     WHERE status = 'pending' AND next_at_ms <= ?1
                       AND handler IN (SELECT value FROM json_each(?2))
                     ORDER BY next_at_ms LIMIT ?3)
                 RETURNING delivery_id, handler, attempts, attempts_base",
            )?;
            let rows = stmt.query_map(params![now, names, limit as i64], |r| {
                Ok(Due {
                    delivery_id: r.get(0)?,
                    handler: r.get(1)?,
                    attempts: r.get(2)?,
                    base: r.get(3)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Gives claimed runs back (due now) when their jobs could not be made: a claim
    /// that is never run would hold its run until a restart.
    pub(crate) fn release_claimed(&self, runs: &[Due]) -> Result<()> {
        let now = millis(SystemTime::now());
        self.read(|c| {
            let tx =
                rusqlite::Transaction::new_unchecked(c, rusqlite::TransactionBehavior::Immediate)?;
            {
                let mut stmt = tx.prepare_cached(
                    "UPDATE runs SET next_at_ms = ?3
                     WHERE delivery_id = ?1 AND handler = ?2
                       AND status = 'pending' AND next_at_ms IS NULL",
                )?;
                for run in runs {
                    stmt.execute(params![run.delivery_id, run.handler, now])?;
                }
            }
            tx.commit()
        })
    }

    /// Marks dead the due runs of handlers this receiver does not have (a redelivery
    /// to a name no route has): nothing would ever run them. A SQLite journal has one
    /// receiver, so its handlers are all there are. Gives the runs it marked.
    pub(crate) fn bury_unknown(&self, handlers: &[String]) -> Result<Vec<(i64, String)>> {
        let names = json_names(handlers);
        let now = millis(SystemTime::now());
        self.read(|c| {
            let mut stmt = c.prepare_cached(
                "UPDATE runs SET status = 'dead', next_at_ms = NULL, updated_at_ms = ?1,
                     requeue = 0, last_error = 'no handler ' || handler || ' on this receiver'
                 WHERE rowid IN (
                     SELECT rowid FROM runs INDEXED BY runs_due
                     WHERE status = 'pending' AND next_at_ms <= ?1
                       AND handler NOT IN (SELECT value FROM json_each(?2)))
                 RETURNING delivery_id, handler",
            )?;
            let rows = stmt.query_map(params![now, names], |r| Ok((r.get(0)?, r.get(1)?)))?;
            rows.collect()
        })
    }

    /// An entry for a run to be dispatched, with whether it was erased.
    pub(crate) fn entry_to_run(&self, id: i64) -> Result<Option<(JournalEntry, bool)>> {
        self.read(|c| {
            c.query_row(
                "SELECT id, received_at_ms, digest, event, action, known, repo, build, headers, body,
                        codec, erased
                 FROM deliveries WHERE id = ?1",
                [id],
                |r| Ok((entry_from_row(r)?, r.get(11)?)),
            )
            .optional()
        })
    }

    /// At start, every pending run is due now: those a stopped receiver held in memory
    /// (queued or running), and those waiting for a retry (a restart, often after a
    /// fix, retries at once, as it always has).
    pub(crate) fn release_pending(&self) -> Result<u64> {
        let now = millis(SystemTime::now());
        self.read(|c| {
            c.execute(
                "UPDATE runs SET next_at_ms = ?1
                 WHERE status = 'pending' AND (next_at_ms IS NULL OR next_at_ms > ?1)",
                [now],
            )
        })
        .map(|n| n as u64)
    }

    /// Every run not finished yet (what a restart resumes), oldest delivery first.
    pub fn pending_runs(&self) -> Result<Vec<HandlerRun>> {
        self.read(|c| {
            let mut stmt = c.prepare_cached(&format!(
                "SELECT {RUN_COLUMNS}, NULL FROM runs WHERE status = 'pending'
                     ORDER BY delivery_id, handler"
            ))?;
            let rows = stmt.query_map([], run_from_row)?;
            rows.collect()
        })
    }
}

fn entry_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<JournalEntry> {
    let digest: Vec<u8> = r.get(2)?;
    let digest = <[u8; 32]>::try_from(digest.as_slice()).unwrap_or([0; 32]);
    let headers: Vec<u8> = r.get(8)?;
    Ok(JournalEntry {
        id: r.get(0)?,
        received_at: UNIX_EPOCH + Duration::from_millis(r.get::<_, i64>(1)?.max(0) as u64),
        digest: BodyDigest::from_bytes(digest),
        event: r.get(3)?,
        action: r.get(4)?,
        known: r.get(5)?,
        repo: r.get(6)?,
        build: r.get(7)?,
        headers: decode_headers(&headers),
        body: decode_body(r.get(9)?, r.get(10)?)?,
    })
}

/// The columns [`run_from_row`] reads; `{output}` is `output` or `NULL` (lists).
pub(crate) const RUN_COLUMNS: &str =
    "delivery_id, handler, status, attempts, last_error, duration_ms,
     next_at_ms, updated_at_ms";

pub(crate) fn time_of(ms: i64) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(ms.max(0) as u64)
}

/// A run from [`RUN_COLUMNS`] and then its output (or NULL).
pub(crate) fn run_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<HandlerRun> {
    let status = RunStatus::parse(&r.get::<_, String>(2)?);
    Ok(HandlerRun {
        delivery_id: r.get(0)?,
        handler: r.get(1)?,
        status,
        attempts: r.get(3)?,
        last_error: r.get(4)?,
        last_duration: r
            .get::<_, Option<i64>>(5)?
            .map(|ms| Duration::from_millis(ms.max(0) as u64)),
        next_at: if status == RunStatus::Pending {
            r.get::<_, Option<i64>>(6)?.map(time_of)
        } else {
            None
        },
        updated_at: r.get::<_, Option<i64>>(7)?.map(time_of),
        output: r.get(8)?,
    })
}

/// Headers are kept as `name: value\r\n` lines, the way they came over the wire.
pub(crate) fn encode_headers(headers: &http::HeaderMap) -> Vec<u8> {
    let mut out = Vec::with_capacity(512);
    for (name, value) in headers {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out
}

pub(crate) fn decode_headers(raw: &[u8]) -> Vec<(String, Vec<u8>)> {
    raw.split(|b| *b == b'\n')
        .filter_map(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let colon = line.iter().position(|b| *b == b':')?;
            let name = String::from_utf8_lossy(&line[..colon]).into_owned();
            let value = line[colon + 1..]
                .strip_prefix(b" ")
                .unwrap_or(&line[colon + 1..]);
            Some((name, value.to_vec()))
        })
        .collect()
}

/// Rebuilds a header map from a journal entry.
pub(crate) fn header_map(headers: &[(String, Vec<u8>)]) -> http::HeaderMap {
    let mut map = http::HeaderMap::with_capacity(headers.len());
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_bytes(value),
        ) {
            map.append(name, value);
        }
    }
    map
}

fn open_writer(path: &Path) -> std::result::Result<Connection, String> {
    let conn = Connection::open(path).map_err(|e| e.to_string())?;
    conn.busy_timeout(Duration::from_secs(10))
        .map_err(|e| e.to_string())?;
    let mode: String = conn
        .query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))
        .map_err(|e| e.to_string())?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(format!("cannot switch to WAL mode (got {mode})"));
    }
    // FULL makes every commit fsync the WAL, so an acknowledged request is on disk.
    // The size limit truncates a WAL that once grew long (say, while a reader held an
    // old snapshot) back to 64 MiB when it starts again from its beginning.
    conn.execute_batch(
        "PRAGMA synchronous=FULL; PRAGMA foreign_keys=ON; PRAGMA journal_size_limit=67108864;",
    )
    .map_err(|e| e.to_string())?;
    migrate(&conn).map_err(|e| match e {
        SchemaError::Version(message) | SchemaError::Sql(message) => message,
    })?;
    // The hook replaces SQLite's automatic checkpoint, which would run in this
    // connection, right after a commit and before its answers: the checkpointer
    // thread does that work instead (see `checkpoint_loop`).
    // SQLite calls the hook after each commit with the WAL's length in frames.
    conn.wal_hook(Some(|_wal, frames| {
        WAL_FRAMES.with(|f| f.set(u32::try_from(frames).unwrap_or(0)));
        Ok(())
    }));
    Ok(conn)
}

thread_local! {
    /// The WAL's length in frames after the last commit on this thread's connection.
    static WAL_FRAMES: std::cell::Cell<u32> = const { std::cell::Cell::new(0) };
}

/// The checkpointer runs a pass once this many frames were added since the last one
/// (4 MiB at SQLite's default page size): small passes keep each fsync of the
/// database file short, which matters because the WAL's fsyncs queue behind it.
const PASS_FRAMES: u32 = 1024;

/// Once the WAL is this long (16 MiB), the writer finishes the checkpointer's work
/// after a commit (copying only the frames added since the last pass), so that the
/// next transaction starts the WAL again from its beginning.
const RESTART_FRAMES: u32 = 4096;

/// The writer finishes a checkpoint only when at most this many frames are left to
/// copy (2 MiB): more would stall its next batch.
const FINISH_FRAMES: u32 = 512;

/// The WAL never grows past this (64 MiB): beyond it the writer checkpoints by
/// itself, as SQLite's automatic checkpoint would (a stall, but a bounded file).
const HARD_LIMIT_FRAMES: u32 = 16384;

/// How often the checkpointer looks at the WAL when no pass was asked for.
const CHECKPOINT_EVERY: Duration = Duration::from_millis(500);

/// What the writer and the checkpointer share.
#[derive(Default)]
struct CheckpointState {
    /// How many frames of the WAL the checkpointer's last pass copied: when that is
    /// nearly all of a long WAL, the writer finishes the checkpoint cheaply.
    backfilled: AtomicU32,
}

/// Runs passive checkpoints on a connection of its own, so the writer's commits never
/// pay for copying WAL pages into the database. A pass starts when the writer says
/// the WAL grew by [`PASS_FRAMES`] or every [`CHECKPOINT_EVERY`].
fn checkpoint_loop(path: &Path, wake: &mpsc::Receiver<()>, state: &CheckpointState) {
    let mut conn = None;
    loop {
        match wake.recv_timeout(CHECKPOINT_EVERY) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => return,
        }
        if conn.is_none() {
            conn = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_WRITE).ok();
        }
        let Some(c) = &conn else { continue };
        // A second and third pass copy what the writer added during the one before,
        // so that what is left for the writer to finish is small.
        for _ in 0..3 {
            match c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
                Ok((r.get::<_, i64>(1)?, r.get::<_, i64>(2)?))
            }) {
                Ok((log, done)) => {
                    state
                        .backfilled
                        .store(u32::try_from(done).unwrap_or(0), Ordering::Release);
                    if log - done <= 64 || log < i64::from(RESTART_FRAMES) {
                        break;
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "checkpoint failed");
                    conn = None;
                    break;
                }
            }
        }
    }
}

/// What the writer reports about its transactions (shared with the metrics).
#[derive(Clone, Default)]
pub(crate) struct BatchStats {
    /// Transactions committed.
    pub(crate) commits: prometheus_client::metrics::counter::Counter,
    /// Requests per committed transaction.
    pub(crate) batch_size: Option<prometheus_client::metrics::histogram::Histogram>,
}

struct Writer {
    path: PathBuf,
    conn: Option<Connection>,
    available: Arc<AtomicBool>,
    stats: BatchStats,
    /// Wakes the checkpointer (a full channel means a pass is already asked for).
    wake: Option<mpsc::SyncSender<()>>,
    checkpoint: Arc<CheckpointState>,
    /// The WAL's length when the checkpointer was last woken.
    woken_at: u32,
    /// Attempt outcomes whose commit failed. Their runs are held (no due time), so
    /// nothing else would ever make them due again: they are written before the next
    /// batch, in a transaction of their own (one that keeps failing does not take the
    /// inserts down with it), and retried every [`RETAIN_RETRY`] while nothing comes.
    retained: Vec<Cmd>,
}

/// How often retained attempt outcomes are written again while no command comes.
const RETAIN_RETRY: Duration = Duration::from_secs(1);

impl Writer {
    /// Opens the writing connection if there is none. Only a failure changes
    /// availability here: reopening after a failed commit proves nothing (a full disk
    /// still lets the file open), so the journal is available again only once a
    /// commit succeeds, and `/healthz` does not flap to 200 between failing batches.
    fn ensure_open(&mut self) -> bool {
        if self.conn.is_none() {
            match open_writer(&self.path) {
                Ok(conn) => self.conn = Some(conn),
                Err(message) => {
                    tracing::error!(path = %self.path.display(), error = %message, "journal unavailable");
                    self.available.store(false, Ordering::Release);
                }
            }
        }
        self.conn.is_some()
    }

    fn run(&mut self, rx: &mpsc::Receiver<Cmd>) {
        let (wake, woken) = mpsc::sync_channel::<()>(1);
        let path = self.path.clone();
        let state = self.checkpoint.clone();
        let checkpointer = std::thread::Builder::new()
            .name("dronehook-checkpoint".into())
            .spawn(move || checkpoint_loop(&path, &woken, &state))
            .ok();
        self.wake = Some(wake);
        self.serve(rx);
        // Dropping the sender stops the checkpointer.
        self.wake = None;
        if let Some(handle) = checkpointer {
            let _ = handle.join();
        }
        // A clean stop leaves the WAL folded into the database file.
        if let Some(conn) = &self.conn {
            let _ = conn.execute_batch("PRAGMA wal_checkpoint(TRUNCATE);");
        }
    }

    fn serve(&mut self, rx: &mpsc::Receiver<Cmd>) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
            let first = if self.retained.is_empty() {
                rx.recv().ok()
            } else {
                match rx.recv_timeout(RETAIN_RETRY) {
                    Ok(cmd) => Some(cmd),
                    Err(mpsc::RecvTimeoutError::Timeout) => {
                        self.commit_retained();
                        continue;
                    }
                    Err(mpsc::RecvTimeoutError::Disconnected) => None,
                }
            };
            if !self.retained.is_empty() {
                self.commit_retained();
            }
            let Some(first) = first else { break };
            batch.push(first);
            // Everything that queued up while the last commit was syncing goes into
            // this one: that is the group commit.
            while batch.len() < MAX_BATCH {
                match rx.try_recv() {
                    Ok(cmd) => batch.push(cmd),
                    Err(_) => break,
                }
            }
            self.commit(&mut batch);
            self.after_commit();
        }
    }

    /// Keeps the WAL short, after the batch's answers are sent: wakes the
    /// checkpointer when the WAL grew, and finishes a checkpoint it has nearly done.
    fn after_commit(&mut self) {
        let Some(conn) = &self.conn else { return };
        let frames = WAL_FRAMES.with(std::cell::Cell::get);
        if frames < self.woken_at {
            // The WAL started again from its beginning.
            self.woken_at = 0;
            self.checkpoint.backfilled.store(0, Ordering::Release);
        }
        if frames - self.woken_at >= PASS_FRAMES
            && let Some(wake) = &self.wake
        {
            let _ = wake.try_send(());
            self.woken_at = frames;
        }
        let backfilled = self.checkpoint.backfilled.load(Ordering::Acquire);
        let finish = frames >= RESTART_FRAMES && frames.saturating_sub(backfilled) <= FINISH_FRAMES;
        if finish || frames >= HARD_LIMIT_FRAMES {
            // What the checkpointer reported belongs to this WAL; the next one starts
            // from nothing copied.
            self.checkpoint.backfilled.store(0, Ordering::Release);
        }
        if (finish || frames >= HARD_LIMIT_FRAMES)
            && let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
        {
            tracing::debug!(error = %e, "checkpoint failed");
        }
    }

    /// Writes the retained attempt outcomes; keeps them when that fails.
    fn commit_retained(&mut self) {
        if !self.ensure_open() {
            return;
        }
        let conn = self.conn.as_mut().unwrap_or_else(|| unreachable!());
        match write_batch(conn, &self.retained) {
            Ok(_) => {
                tracing::info!(
                    runs = self.retained.len(),
                    "attempt outcomes written after a failed commit"
                );
                self.retained.clear();
            }
            Err(message) => {
                tracing::debug!(error = %message, "attempt outcomes still cannot be written");
                self.conn = None;
            }
        }
    }

    fn commit(&mut self, batch: &mut Vec<Cmd>) {
        let started = Instant::now();
        let result = if self.ensure_open() {
            let conn = self.conn.as_mut().unwrap_or_else(|| unreachable!());
            write_batch(conn, batch)
        } else {
            Err("the journal cannot be opened".to_owned())
        };
        let elapsed = started.elapsed();
        match result {
            Ok(ids) => {
                self.available.store(true, Ordering::Release);
                self.stats.commits.inc();
                if let Some(sizes) = &self.stats.batch_size
                    && !ids.is_empty()
                {
                    sizes.observe(ids.len() as f64);
                }
                let mut ids = ids.into_iter();
                for cmd in batch.drain(..) {
                    match cmd {
                        Cmd::Insert(_, reply) => {
                            let id = ids.next().unwrap_or(Inserted::Duplicate(0));
                            let _ = reply.send(Ok((id, elapsed)));
                        }
                        Cmd::Flush(reply) => {
                            let _ = reply.send(Ok(()));
                        }
                        Cmd::Attempt(_) => {}
                    }
                }
            }
            Err(message) => {
                tracing::error!(path = %self.path.display(), error = %message, "journal commit failed");
                self.available.store(false, Ordering::Release);
                // A failed connection is reopened at the next batch.
                self.conn = None;
                for cmd in batch.drain(..) {
                    match cmd {
                        Cmd::Insert(_, reply) => {
                            let _ = reply.send(Err(message.clone()));
                        }
                        Cmd::Flush(reply) => {
                            let _ = reply.send(Err(message.clone()));
                        }
                        attempt @ Cmd::Attempt(_) => self.retained.push(attempt),
                    }
                }
            }
        }
    }
}

fn write_batch(conn: &mut Connection, batch: &[Cmd]) -> std::result::Result<Vec<Inserted>, String> {
    let tx = conn.transaction().map_err(|e| e.to_string())?;
    let mut ids = Vec::new();
    {
        let mut insert = tx
            .prepare_cached(
                "INSERT INTO deliveries
                 (received_at_ms, digest, dedupe_key, event, action, known, repo, build, headers, body,
                  build_status, secret_index, codec)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)
                 ON CONFLICT (dedupe_key) DO NOTHING",
            )
            .map_err(|e| e.to_string())?;
        let mut existing = tx
            .prepare_cached("SELECT id FROM deliveries WHERE dedupe_key = ?1")
            .map_err(|e| e.to_string())?;
        let mut run = tx
            .prepare_cached(
                "INSERT OR IGNORE INTO runs (delivery_id, handler, status, updated_at_ms, next_at_ms)
                 VALUES (?1, ?2, 'pending', ?3, ?4)",
            )
            .map_err(|e| e.to_string())?;
        let mut attempt = tx
            .prepare_cached(
                // A run is held (`next_at_ms` NULL) while it runs. A redelivery meanwhile
                // set `requeue`: the attempt is counted, and the run is due now with a
                // fresh set of attempts. (A run no longer held was made due by an older
                // build's redelivery: it stays pending, due when that said.) An event
                // erased while its run was in memory keeps no output.
                "UPDATE runs SET
                     status = CASE WHEN requeue OR next_at_ms IS NOT NULL THEN 'pending'
                                   ELSE ?3 END,
                     attempts = attempts + 1,
                     attempts_base = CASE WHEN requeue THEN attempts + 1
                                          ELSE attempts_base + (next_at_ms IS NOT NULL) END,
                     last_error = ?4, duration_ms = ?5, updated_at_ms = ?6,
                     next_at_ms = CASE WHEN requeue THEN coalesce(next_at_ms, ?6)
                                       ELSE coalesce(next_at_ms, ?7) END,
                     requeue = 0,
                     output = CASE WHEN (SELECT erased FROM deliveries WHERE id = ?1) THEN NULL
                                   ELSE ?8 END
                 WHERE delivery_id = ?1 AND handler = ?2",
            )
            .map_err(|e| e.to_string())?;
        let now = millis(SystemTime::now());
        for cmd in batch {
            match cmd {
                Cmd::Insert(e, _) => {
                    let digest = &e.digest.as_bytes()[..];
                    let dedupe = e.dedupe.then_some(digest);
                    let (body, codec) = e.stored_body();
                    let n = insert
                        .execute(params![
                            millis(e.received_at),
                            digest,
                            dedupe,
                            e.event,
                            e.action,
                            e.known,
                            e.repo,
                            e.build,
                            e.headers,
                            body,
                            e.build_status,
                            e.secret_index,
                            codec,
                        ])
                        .map_err(|e| e.to_string())?;
                    if n == 0 {
                        let id: i64 = existing
                            .query_row([digest], |r| r.get(0))
                            .map_err(|e| e.to_string())?;
                        ids.push(Inserted::Duplicate(id));
                    } else {
                        let id = tx.last_insert_rowid();
                        let next_at = (!e.queued).then_some(now);
                        for handler in &e.handlers {
                            run.execute(params![id, handler, now, next_at])
                                .map_err(|e| e.to_string())?;
                        }
                        ids.push(Inserted::New(id));
                    }
                }
                Cmd::Attempt(a) => {
                    attempt
                        .execute(params![
                            a.delivery_id,
                            a.handler,
                            a.status.as_str(),
                            a.error,
                            a.duration.as_millis() as i64,
                            now,
                            a.next_at.map(millis),
                            a.output,
                        ])
                        .map_err(|e| e.to_string())?;
                }
                Cmd::Flush(_) => {}
            }
        }
    }
    tx.commit().map_err(|e| e.to_string())?;
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_are_stored_compressed_when_that_pays_and_read_back_exactly() {
        let payload = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../fixtures/corpus/build_success.json"
        ))
        .unwrap();
        let packed = pack_body(&payload).unwrap();
        assert!(packed.len() < payload.len() / 2, "{} bytes", packed.len());
        assert_eq!(unpack_body(packed, CODEC_LZ4).unwrap(), payload);
        // Small or incompressible bodies are kept as they are.
        let mut x = 0x9e37_79b9_7f4a_7c15_u64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        assert_eq!(pack_body(b"{}"), None);
        assert_eq!(pack_body(&noise), None);
        assert_eq!(unpack_body(noise.clone(), CODEC_RAW).unwrap(), noise);
    }

    #[test]
    fn a_damaged_stored_body_is_an_error_not_a_panic_or_a_huge_allocation() {
        let stored = pack_body(&[b'a'; 1000]).unwrap();
        let message = |stored: Vec<u8>, codec| unpack_body(stored, codec).unwrap_err();
        assert_eq!(
            message(vec![1, 2], CODEC_LZ4),
            "a stored body is damaged: no valid length"
        );
        let mut huge = stored.clone();
        huge[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            message(huge, CODEC_LZ4),
            "a stored body is damaged: no valid length"
        );
        let mut short = stored.clone();
        short[..4].copy_from_slice(&2000u32.to_le_bytes());
        assert_eq!(
            message(short, CODEC_LZ4),
            "a stored body is damaged: 1000 bytes where 2000 were stored"
        );
        assert_eq!(
            message(b"x".to_vec(), 9),
            "a stored body is damaged: unknown codec 9"
        );
    }

    fn entry(n: u32, body_len: usize) -> NewEntry {
        let mut body = format!("{{\"n\":{n},\"pad\":\"").into_bytes();
        body.resize(body_len - 2, b'x');
        body.extend_from_slice(b"\"}");
        NewEntry {
            received_at: SystemTime::now(),
            digest: BodyDigest::of(&body),
            dedupe: true,
            event: "user".into(),
            action: "created".into(),
            known: true,
            repo: None,
            build: None,
            build_status: None,
            secret_index: Some(0),
            headers: b"x-drone-event: user\r\n".to_vec(),
            packed: pack_body(&body),
            body: body.into(),
            handlers: Vec::new(),
            // As the server stores a run it queues at once: held until recorded.
            queued: true,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn retention_prunes_old_and_surplus_requests_but_never_pending_ones() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        let journal = Journal::start(&path, BatchStats::default());
        let mut ids = Vec::new();
        for n in 0..6 {
            let mut e = entry(n, 64);
            if n == 0 || n == 4 {
                e.handlers = vec!["h".to_owned()];
            }
            let (Inserted::New(id), _) = journal.insert(e).await.unwrap() else {
                panic!("not new")
            };
            ids.push(id);
        }
        // Run 4 finished; run 0 is pending.
        journal.record_attempt(Attempt {
            delivery_id: ids[4],
            handler: "h".to_owned(),
            status: RunStatus::Ok,
            error: None,
            duration: Duration::ZERO,
            next_at: None,
            output: None,
        });
        journal.flush().await.unwrap();
        // Nothing is old, and the bound is not reached.
        let retain = Some(Duration::from_secs(3600));
        assert_eq!(journal.prune(retain, Some(10)).unwrap(), 0);
        assert_eq!(journal.prune(None, None).unwrap(), 0);
        // The first three are two hours old: 1 and 2 go, 0 (pending) stays.
        journal
            .read(|c| {
                c.execute(
                    "UPDATE deliveries SET received_at_ms = received_at_ms - 7200000 WHERE id <= ?1",
                    [ids[2]],
                )
            })
            .unwrap();
        assert_eq!(journal.prune(retain, None).unwrap(), 2);
        // The bound keeps the newest two (5 and 4, its run finished, with it), and 0.
        assert_eq!(journal.prune(None, Some(2)).unwrap(), 1);
        let left: Vec<i64> = journal
            .entries(0, 10)
            .unwrap()
            .iter()
            .map(|e| e.id)
            .collect();
        assert_eq!(left, vec![ids[0], ids[4], ids[5]]);
        assert_eq!(journal.runs(ids[0]).unwrap()[0].status, RunStatus::Pending);
        // Once its run finishes, the old pending one goes too, with its run.
        journal.record_attempt(Attempt {
            delivery_id: ids[0],
            handler: "h".to_owned(),
            status: RunStatus::Ok,
            error: None,
            duration: Duration::ZERO,
            next_at: None,
            output: None,
        });
        journal.flush().await.unwrap();
        assert_eq!(journal.prune(retain, None).unwrap(), 1);
        assert!(journal.runs(ids[0]).unwrap().is_empty());
        assert_eq!(journal.count().unwrap(), 2);
        journal.close();
    }

    /// 96 MiB through the journal, one and a half times the WAL's hard limit and six
    /// times the length at which it starts again: the WAL file stays bounded, and every
    /// row is kept across the checkpoints and restarts. (With the checkpointer keeping
    /// up, the WAL peaks near 19 MB here; the assertion is the hard bound, which holds
    /// however slow the checkpointer is.)
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_wal_stays_bounded_and_nothing_is_lost_across_checkpoints() {
        const ROWS: u32 = 1_536;
        const BODY: usize = 64 * 1024;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        let mut wal_path = path.as_os_str().to_owned();
        wal_path.push("-wal");
        let journal = Journal::start(&path, BatchStats::default());
        assert!(journal.is_available());
        // The limit in bytes: the hard limit in frames (4 KiB pages and a 24-byte
        // frame header) plus one batch of 64 rows that may cross it.
        let bound = u64::from(HARD_LIMIT_FRAMES + 64 * 17) * (4096 + 24) + 32;
        let mut largest = 0;
        for chunk in 0..ROWS / 64 {
            let inserts: Vec<_> = (0..64)
                .map(|i| {
                    let journal = journal.clone();
                    tokio::spawn(async move { journal.insert(entry(chunk * 64 + i, BODY)).await })
                })
                .collect();
            for insert in inserts {
                let (inserted, _) = insert.await.unwrap().unwrap();
                assert!(matches!(inserted, Inserted::New(_)), "{inserted:?}");
            }
            largest = largest.max(std::fs::metadata(&wal_path).map_or(0, |m| m.len()));
        }
        assert!(
            largest <= bound,
            "the WAL grew to {largest} bytes (bound {bound})"
        );
        // A copy of an early body is still recognised by the UNIQUE dedupe index.
        let again = journal.insert(entry(7, BODY)).await.unwrap().0;
        assert!(matches!(again, Inserted::Duplicate(_)), "{again:?}");
        journal.close();

        let reopened = Journal::open(&path).unwrap();
        assert_eq!(reopened.count().unwrap(), u64::from(ROWS));
        // Rows from before and after the restarts read back whole.
        for n in [0, ROWS / 2, ROWS - 1] {
            let expected = entry(n, BODY);
            let id = reopened.find(&expected.digest).unwrap().expect("the row");
            let row = reopened.entry(id).unwrap().expect("the row");
            assert!(row.body == expected.body[..], "row {n}'s body differs");
        }
    }
}
