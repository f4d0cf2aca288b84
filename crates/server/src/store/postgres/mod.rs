//! The PostgreSQL store: several receivers share one database, and each accepted
//! request is committed there before it is answered.
//!
//! - Inserts go through one writer task that commits whatever queued up while the last
//!   commit was in flight in one transaction (group commit), as the SQLite writer does.
//! - The replay check is the database's: a batch takes an advisory lock per body
//!   digest, then inserts only the bodies no delivery of the replay window holds, so
//!   receivers racing on copies of one body agree on which copy is new. It reads the
//!   deliveries' digest index: there is no table of keys to write or prune.
//! - Handler runs are claimed with a lease (`FOR UPDATE SKIP LOCKED`), renewed while the
//!   handler runs, and claimed again by any instance once a lease expires (its holder
//!   died). Failed runs are retried after a backoff; after the last attempt a run is
//!   `dead`, kept and visible.
//! - Instances wake on `LISTEN/NOTIFY` when runs are added; polling is the fallback.
//! - Retention (an age and a row bound) prunes off the request path and never removes
//!   a delivery whose runs are pending.

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use dronehook_protocol::BodyDigest;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::task::{JoinHandle, JoinSet};
use tokio_postgres::AsyncMessage;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::error::{Error, Result};
use crate::journal::{
    BatchStats, HandlerRun, Inserted, JournalEntry, NewEntry, RunStatus, decode_headers,
    unpack_body,
};

pub(crate) mod runner;
#[cfg(test)]
mod tests;
mod tls;
mod tool;

/// The schema version this build writes and understands.
pub(crate) const SCHEMA_VERSION: i32 = 5;

/// The oldest schema a read-only tool reads: version 5 only added the function that
/// receivers store with, so a store that no newer receiver has opened yet stays
/// readable by a newer `dronehook events`.
pub(crate) const READ_VERSION: i32 = 4;

/// The schema, one step per version: step `n` takes a database from version `n` to
/// `n + 1`. Steps are only ever appended.
const MIGRATIONS: &[&str] = &[
    "
CREATE TABLE dronehook_deliveries (
    id bigint PRIMARY KEY,
    received_at timestamptz NOT NULL,
    digest bytea NOT NULL,
    event text NOT NULL,
    action text NOT NULL,
    known boolean NOT NULL,
    repo text,
    build bigint,
    headers bytea NOT NULL,
    body bytea NOT NULL
);
CREATE SEQUENCE dronehook_delivery_ids OWNED BY dronehook_deliveries.id;
CREATE INDEX dronehook_deliveries_digest ON dronehook_deliveries (digest);
CREATE INDEX dronehook_deliveries_received ON dronehook_deliveries (received_at);
CREATE TABLE dronehook_dedupe (
    key bytea PRIMARY KEY,
    delivery_id bigint NOT NULL,
    expires_at timestamptz NOT NULL
);
CREATE INDEX dronehook_dedupe_expiry ON dronehook_dedupe (expires_at);
CREATE TABLE dronehook_runs (
    delivery_id bigint NOT NULL REFERENCES dronehook_deliveries (id) ON DELETE CASCADE,
    handler text NOT NULL,
    status text NOT NULL CHECK (status IN ('pending', 'ok', 'dead')),
    attempts integer NOT NULL DEFAULT 0,
    last_error text,
    duration_ms bigint,
    updated_at timestamptz NOT NULL DEFAULT now(),
    next_at timestamptz NOT NULL DEFAULT now(),
    lease_owner text,
    lease_until timestamptz,
    PRIMARY KEY (delivery_id, handler)
);
CREATE INDEX dronehook_runs_due ON dronehook_runs (next_at) WHERE status = 'pending';
",
    // Version 2: what tools read (`Store`), run output, and `attempts_base` (the
    // attempts when a run was last (re)queued, so a redelivery gets a fresh set).
    // `requeue`: a redelivery came while a lease was live; `finish` makes the run due
    // again instead of a second claim running it beside the first.
    // An index per `EventQuery` filter; `text_pattern_ops` serves both `=` and a
    // `LIKE` with a literal prefix.
    "
ALTER TABLE dronehook_deliveries ADD COLUMN build_status text, ADD COLUMN secret_index integer,
    ADD COLUMN erased boolean NOT NULL DEFAULT false;
ALTER TABLE dronehook_runs ADD COLUMN output bytea,
    ADD COLUMN attempts_base integer NOT NULL DEFAULT 0,
    ADD COLUMN requeue boolean NOT NULL DEFAULT false;
-- Row by row: a body that is not UTF-8 JSON (kept by --insecure-no-verify) gets no
-- status instead of aborting the migration, and with it the receiver's start.
CREATE FUNCTION pg_temp.dronehook_build_status(body bytea) RETURNS text
    LANGUAGE plpgsql AS $$
BEGIN
    RETURN convert_from(body, 'UTF8')::json -> 'build' ->> 'status';
EXCEPTION WHEN OTHERS THEN
    RETURN NULL;
END
$$;
UPDATE dronehook_deliveries SET build_status = pg_temp.dronehook_build_status(body)
    WHERE event = 'build';
DROP FUNCTION pg_temp.dronehook_build_status(bytea);
CREATE INDEX dronehook_deliveries_event ON dronehook_deliveries (event, action, id);
CREATE INDEX dronehook_deliveries_repo ON dronehook_deliveries (repo text_pattern_ops, id);
CREATE INDEX dronehook_deliveries_build_status ON dronehook_deliveries (build_status, id);
CREATE INDEX dronehook_deliveries_builds ON dronehook_deliveries (repo, id)
    WHERE event = 'build' AND NOT erased;
CREATE INDEX dronehook_deliveries_erased ON dronehook_deliveries (received_at) WHERE erased;
CREATE INDEX dronehook_runs_status ON dronehook_runs (status, delivery_id);
",
    // Version 3: bodies and headers uncompressed.
    "
-- Bodies and headers are stored as they are, not compressed: a Drone payload of a few
-- KB is over the TOAST threshold (2 KB), and pglz on every insert is CPU on the
-- request's path, for a store whose rows are pruned within days anyway.
ALTER TABLE dronehook_deliveries ALTER COLUMN body SET STORAGE EXTERNAL;
ALTER TABLE dronehook_deliveries ALTER COLUMN headers SET STORAGE EXTERNAL;
",
    // Version 4: less work per insert. The replay check reads the deliveries' digest
    // index under advisory locks instead of writing a key table. Bodies are compressed
    // by the receiver (`codec` as in the SQLite journal: 0 as received, 1 LZ4), and a
    // row stays in its page up to 8160 bytes, where the default (2 KB) moved nearly
    // every body to the TOAST table: a second heap and index insert per request.
    "
DROP TABLE dronehook_dedupe;
ALTER TABLE dronehook_deliveries ADD COLUMN codec smallint NOT NULL DEFAULT 0;
ALTER TABLE dronehook_deliveries SET (toast_tuple_target = 8160);
",
    // Version 5: a batch is one statement, this function, committed on its own (an
    // implicit transaction) instead of BEGIN, the locks, the insert and COMMIT: each
    // statement of a batch was answered on its own, a turn of both processes. A
    // volatile function's statements each take a fresh
    // snapshot, so the insert sees every copy committed by a receiver that held the
    // replay check's locks before this batch took them. Its plans are made once per
    // session, as generic plans with index probes: a plan made while the table was
    // small would otherwise scan it whole for every batch from then on.
    "
CREATE FUNCTION dronehook_store_batch(
    in_received_at timestamptz[], in_digest bytea[], in_event text[], in_action text[],
    in_known boolean[], in_repo text[], in_build bigint[], in_headers bytea[],
    in_body bytea[], in_build_status text[], in_secret_index integer[],
    in_dedupe boolean[], in_codec smallint[], in_window_start timestamptz,
    in_run_rows bigint[], in_run_handlers text[], in_lock_class integer,
    in_lock_keys integer[],
    OUT out_rows bigint[], OUT out_ids bigint[], OUT out_existing bigint[])
LANGUAGE plpgsql VOLATILE
SET enable_seqscan = off
SET plan_cache_mode = force_generic_plan
AS $$
BEGIN
    -- The replay check's locks, in the order the receiver sorted them (so that two
    -- receivers' batches cannot deadlock), held until the commit.
    PERFORM count(pg_advisory_xact_lock(in_lock_class, k)) FROM unnest(in_lock_keys) AS l(k);
    -- Under them, a deduplicated body stored within the window is not inserted again,
    -- and its row says which delivery holds it. A subquery per row, not a join: a join
    -- hashes the whole table when the planner thinks the batch large. Ids come from
    -- the sequence in the batch's order; a replay's id goes unused.
    WITH t AS MATERIALIZED (
        SELECT u.*, nextval('dronehook_delivery_ids') AS id,
            CASE WHEN u.dedupe THEN (
                SELECT d.id FROM dronehook_deliveries d
                WHERE d.digest = u.digest AND d.received_at > in_window_start
                LIMIT 1)
            END AS existing
        FROM unnest(in_received_at, in_digest, in_event, in_action, in_known, in_repo,
            in_build, in_headers, in_body, in_build_status, in_secret_index, in_dedupe,
            in_codec)
            WITH ORDINALITY AS u(received_at, digest, event, action, known, repo,
                build, headers, body, build_status, secret_index, dedupe, codec, n)
    ), stored AS (
        INSERT INTO dronehook_deliveries
            (id, received_at, digest, event, action, known, repo, build, headers,
             body, build_status, secret_index, codec)
        SELECT id, received_at, digest, event, action, known, repo, build, headers,
            body, build_status, secret_index, codec
        FROM t WHERE existing IS NULL
    ), runs AS (
        INSERT INTO dronehook_runs (delivery_id, handler, status)
        SELECT t.id, r.handler, 'pending'
        FROM unnest(in_run_rows, in_run_handlers) AS r(n, handler)
            JOIN t ON t.n = r.n
        WHERE t.existing IS NULL
        ON CONFLICT DO NOTHING
    )
    SELECT array_agg(n), array_agg(id), array_agg(existing)
        INTO out_rows, out_ids, out_existing
        FROM t;
    IF cardinality(in_run_rows) > 0 THEN
        -- Delivered at commit.
        PERFORM pg_notify('dronehook_runs', '');
    END IF;
END
$$;
",
];

/// The channel a commit that adds runs notifies.
const CHANNEL: &str = "dronehook_runs";

/// Serialises migrations between receivers starting at once (an arbitrary constant).
const MIGRATION_LOCK: i64 = 0x0064_726f_6e65_686b;

/// The most inserts one transaction takes; a larger burst is split.
const MAX_BATCH: usize = 512;

/// A commit slower than this is answered as failed (the client retries, and the retry
/// is a replay if the commit did land).
const COMMIT_TIMEOUT: Duration = Duration::from_secs(10);

/// The advisory-lock class of the replay check's locks (an arbitrary constant; the key
/// is 32 bits of the body's digest, so unrelated bodies rarely share a lock, and when
/// they do the second batch only waits for the first's commit).
const DEDUPE_LOCK_CLASS: i32 = 0x6472_6e68;

/// The replay check's lock key for a body.
fn dedupe_lock(digest: &BodyDigest) -> i32 {
    let b = digest.as_bytes();
    i32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

/// Rows deleted per pruning statement, so pruning never holds long locks.
const PRUNE_CHUNK: i64 = 1000;

const SELECT_ENTRY: &str =
    "SELECT id, received_at, digest, event, action, known, repo, build, headers, body, codec
     FROM dronehook_deliveries";
#[cfg_attr(not(test), allow(dead_code))]
const SELECT_RUN: &str = "SELECT delivery_id, handler, status, attempts, last_error, duration_ms,
     next_at, updated_at, output FROM dronehook_runs";

/// How the store behaves; the defaults suit a receiver.
#[derive(Clone, Debug)]
pub(crate) struct Settings {
    /// How far back the replay check looks (the replay window); pruning keeps it.
    pub(crate) dedupe_window: Duration,
    /// Deliveries older than this are pruned (once their runs are finished).
    pub(crate) retain: Option<Duration>,
    /// At most this many deliveries are kept (the oldest finished ones go first).
    pub(crate) max_rows: Option<u64>,
    /// How often pruning runs.
    pub(crate) maintenance_every: Duration,
    /// How often an instance looks for due runs when no notification came.
    pub(crate) poll_every: Duration,
    /// Connections in the pool.
    pub(crate) pool_size: usize,
    /// Whether the writer, the listener and maintenance run (a receiver); a tool's
    /// handle has none of them.
    pub(crate) background: bool,
    /// Every session is read-only (`default_transaction_read_only`): a tool's
    /// read-only handle cannot write even by mistake.
    pub(crate) read_only: bool,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            dedupe_window: Duration::from_secs(300),
            retain: Some(Duration::from_secs(7 * 24 * 3600)),
            max_rows: Some(1_000_000),
            maintenance_every: Duration::from_secs(30),
            poll_every: Duration::from_secs(5),
            pool_size: 8,
            background: true,
            read_only: false,
        }
    }
}

/// A run this instance holds the lease of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Claimed {
    /// The delivery's id.
    pub(crate) delivery_id: i64,
    /// The route name.
    pub(crate) handler: String,
    /// This attempt's number, from 1 (attempts interrupted by a dying instance count).
    pub(crate) attempt: u32,
    /// The run's attempts when it was last (re)queued: its attempts count from there.
    pub(crate) base: u32,
}

/// How an attempt ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Outcome {
    /// The handler succeeded.
    Ok,
    /// It failed and is tried again after this delay.
    Retry { error: String, after: Duration },
    /// It failed and has no attempts left: the run is `dead`.
    Dead { error: String },
}

/// What one pruning pass removed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Pruned {
    /// Deliveries (with their finished runs).
    pub(crate) deliveries: u64,
}

/// An insert's answer: the outcome and how long the commit took.
type InsertReply = std::result::Result<(Inserted, Duration), String>;

type Cmd = (Box<NewEntry>, oneshot::Sender<InsertReply>);

/// What the handles, the writer and the background tasks share.
struct Shared {
    /// `host:port/database`, for messages (never the password).
    target: String,
    config: tokio_postgres::Config,
    /// What `sslmode` asks for (the listener connects outside the pool).
    tls: MakeRustlsConnect,
    pool: Pool,
    settings: Settings,
    /// This instance's name in `lease_owner`.
    owner: String,
    available: AtomicBool,
    /// Why the store is unavailable, when it is.
    reason: Mutex<Option<String>>,
    migrated: AtomicBool,
    /// Woken by notifications and by this instance's own commits that add runs.
    wake: Notify,
    stats: BatchStats,
}

/// Stops the background tasks when the last handle goes.
struct Tasks(Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for task in &self.0 {
            task.abort();
        }
    }
}

/// A handle on a PostgreSQL store. Cloning shares it.
#[derive(Clone)]
pub(crate) struct PostgresStore {
    shared: Arc<Shared>,
    tx: mpsc::UnboundedSender<Cmd>,
    _tasks: Arc<Tasks>,
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PostgresStore")
            .field("target", &self.shared.target)
            .finish_non_exhaustive()
    }
}

/// One line: the database's message, or the client's with its causes ("error
/// connecting to server: Connection refused (os error 111)").
fn describe(e: &tokio_postgres::Error) -> String {
    let text = if let Some(db) = e.as_db_error() {
        db.message().to_owned()
    } else {
        let mut text = e.to_string();
        let mut cause = std::error::Error::source(e);
        while let Some(c) = cause {
            text.push_str(": ");
            text.push_str(&c.to_string());
            cause = c.source();
        }
        text
    };
    text.replace('\n', " ")
}

fn describe_pool(e: &PoolError) -> String {
    match e {
        PoolError::Backend(e) => describe(e),
        PoolError::Timeout(_) => "timed out waiting for a database connection".to_owned(),
        other => other.to_string().replace('\n', " "),
    }
}

fn target_of(config: &tokio_postgres::Config) -> String {
    let host = match config.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".to_owned(),
    };
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let db = config
        .get_dbname()
        .or(config.get_user())
        .unwrap_or("postgres");
    format!("{host}:{port}/{db}")
}

/// A name for this instance that no other holds: host, process and a counter.
fn instance_name() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_default();
    let started = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    format!(
        "{host}/{}/{started}/{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

// The journal's read API (`count`, `entries`, `runs`, ...) is mirrored here for the
// tests and for tools that read a store; the server itself only writes and claims.
impl PostgresStore {
    /// Connects, migrates the schema and starts the writer: fails when the database
    /// cannot be reached or its schema is newer than this build knows.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) async fn open(
        url: &str,
        settings: Settings,
        stats: BatchStats,
    ) -> Result<PostgresStore> {
        let store = PostgresStore::start(url, settings, stats)?;
        store.shared.migrate().await.map_err(|e| match e {
            Migration::Newer(message) => Error::schema(message),
            Migration::Failed(message) => Error::store(message),
        })?;
        store.shared.set_available(None);
        Ok(store)
    }

    /// Starts the store for a server: a schema newer than this build refuses the start;
    /// an unreachable database does not (requests are answered 503 until it answers,
    /// and the schema is brought up to date then).
    pub(crate) async fn for_server(
        url: &str,
        settings: Settings,
        stats: BatchStats,
    ) -> Result<PostgresStore> {
        let store = PostgresStore::start(url, settings, stats)?;
        match store.shared.migrate().await {
            Ok(()) => store.shared.set_available(None),
            Err(Migration::Newer(message)) => return Err(Error::schema(message)),
            Err(Migration::Failed(message)) => {
                tracing::error!(store = %store.shared.target, error = %message, "store unavailable at start; answering 503 until it is back");
                store.shared.set_available(Some(message));
            }
        }
        Ok(store)
    }

    /// Starts the writer and the background tasks without waiting for the database:
    /// while it cannot be reached, inserts fail and the store says why.
    pub(crate) fn start(url: &str, settings: Settings, stats: BatchStats) -> Result<PostgresStore> {
        let (mut config, tls) = tls::configure(url).map_err(Error::store)?;
        if config.get_connect_timeout().is_none() {
            config.connect_timeout(Duration::from_secs(5));
        }
        config.application_name("dronehook");
        if settings.read_only {
            config.options("-c default_transaction_read_only=on");
        }
        let manager = Manager::from_config(
            config.clone(),
            tls.clone(),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(settings.pool_size)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(Duration::from_secs(5)))
            .create_timeout(Some(Duration::from_secs(5)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .build()
            .map_err(|e| Error::store(e.to_string()))?;
        let shared = Arc::new(Shared {
            target: target_of(&config),
            config,
            tls,
            pool,
            settings,
            owner: instance_name(),
            available: AtomicBool::new(false),
            reason: Mutex::new(Some("not connected yet".to_owned())),
            migrated: AtomicBool::new(false),
            wake: Notify::new(),
            stats,
        });
        let (tx, rx) = mpsc::unbounded_channel();
        let tasks = if shared.settings.background {
            vec![
                tokio::spawn(writer(shared.clone(), rx)),
                tokio::spawn(listener(shared.clone())),
                tokio::spawn(maintenance(shared.clone())),
            ]
        } else {
            Vec::new()
        };
        Ok(PostgresStore {
            shared,
            tx,
            _tasks: Arc::new(Tasks(tasks)),
        })
    }

    /// `host:port/database`.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) fn target(&self) -> &str {
        &self.shared.target
    }

    /// Whether the last attempt to reach the database succeeded.
    pub(crate) fn is_available(&self) -> bool {
        self.shared.available.load(Ordering::Acquire)
    }

    /// Why the store is unavailable (one line), when it is.
    pub(crate) fn unavailable_reason(&self) -> Option<String> {
        if self.is_available() {
            return None;
        }
        self.shared
            .reason
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Commits a request, in one transaction with whatever else is waiting.
    pub(crate) async fn insert(&self, entry: NewEntry) -> InsertReply {
        let (reply, rx) = oneshot::channel();
        if self.tx.send((Box::new(entry), reply)).is_err() {
            return Err("the store is closed".into());
        }
        rx.await
            .unwrap_or_else(|_| Err("the store's writer stopped".into()))
    }

    /// Claims up to `limit` due runs of these handlers for `lease`. Runs whose lease
    /// expired with no attempts left are marked `dead` first.
    pub(crate) async fn claim(
        &self,
        handlers: &[String],
        limit: usize,
        lease: Duration,
        max_attempts: u32,
    ) -> Result<Vec<Claimed>> {
        let max = i32::try_from(max_attempts).unwrap_or(i32::MAX);
        let client = self.shared.client().await.map_err(Error::store)?;
        let sweep = client
            .prepare_cached(
                "UPDATE dronehook_runs
                 SET status = 'dead', lease_owner = NULL, lease_until = NULL, updated_at = now(),
                     last_error = 'its last attempt did not finish: the lease expired'
                 WHERE status = 'pending' AND attempts - attempts_base >= $1::int4
                   AND (lease_until IS NULL OR lease_until < now())",
            )
            .await
            .map_err(|e| Error::store(describe(&e)))?;
        let claim = client
            .prepare_cached(
                "WITH due AS (
                    SELECT delivery_id, handler FROM dronehook_runs
                    WHERE status = 'pending' AND next_at <= now()
                      AND (lease_until IS NULL OR lease_until < now())
                      AND attempts - attempts_base < $3::int4 AND handler = ANY($2::text[])
                    ORDER BY next_at, delivery_id
                    LIMIT $4::int8
                    FOR UPDATE SKIP LOCKED
                 )
                 UPDATE dronehook_runs r
                 SET lease_owner = $1::text,
                     lease_until = now() + $5::float8 * interval '1 millisecond',
                     attempts = r.attempts + 1, updated_at = now(), requeue = false
                 FROM due WHERE r.delivery_id = due.delivery_id AND r.handler = due.handler
                 RETURNING r.delivery_id, r.handler, r.attempts, r.attempts_base",
            )
            .await
            .map_err(|e| Error::store(describe(&e)))?;
        let swept = client
            .execute(&sweep, &[&max])
            .await
            .map_err(|e| Error::store(describe(&e)))?;
        if swept > 0 {
            tracing::warn!(
                runs = swept,
                "handler runs are dead: their last attempt's lease expired"
            );
        }
        let rows = client
            .query(
                &claim,
                &[
                    &self.shared.owner,
                    &handlers,
                    &max,
                    &(limit as i64),
                    &(lease.as_secs_f64() * 1000.0),
                ],
            )
            .await
            .map_err(|e| Error::store(describe(&e)))?;
        Ok(rows
            .iter()
            .map(|r| Claimed {
                delivery_id: r.get(0),
                handler: r.get(1),
                attempt: r.get::<_, i32>(2).max(0) as u32,
                base: r.get::<_, i32>(3).max(0) as u32,
            })
            .collect())
    }

    /// Extends a lease this instance holds; `false` when it no longer holds it.
    pub(crate) async fn renew(&self, run: &Claimed, lease: Duration) -> Result<bool> {
        let n = self
            .write(
                "UPDATE dronehook_runs
                 SET lease_until = now() + $4::float8 * interval '1 millisecond'
                 WHERE delivery_id = $1 AND handler = $2 AND lease_owner = $3
                   AND status = 'pending'",
                &[
                    &run.delivery_id,
                    &run.handler,
                    &self.shared.owner,
                    &(lease.as_secs_f64() * 1000.0),
                ],
            )
            .await?;
        Ok(n > 0)
    }

    /// Records how an attempt ended and gives the lease up; `false` when the lease was
    /// lost (another instance claimed the run again), in which case nothing is written.
    pub(crate) async fn finish(
        &self,
        run: &Claimed,
        outcome: &Outcome,
        duration: Duration,
        output: Option<&[u8]>,
    ) -> Result<bool> {
        let (status, error, after) = match outcome {
            Outcome::Ok => ("ok", None, Duration::ZERO),
            Outcome::Retry { error, after } => ("pending", Some(error.as_str()), *after),
            Outcome::Dead { error } => ("dead", Some(error.as_str()), Duration::ZERO),
        };
        let due_now = self
            .read(
                // A redelivery during the attempt (`requeue`) makes the run due now with
                // a fresh set of attempts. An event erased meanwhile keeps no output.
                "UPDATE dronehook_runs
                 SET status = CASE WHEN requeue THEN 'pending' ELSE $4 END,
                     last_error = $5, duration_ms = $6,
                     next_at = CASE WHEN requeue THEN now()
                                    ELSE now() + $7::float8 * interval '1 millisecond' END,
                     attempts_base = CASE WHEN requeue THEN attempts ELSE attempts_base END,
                     requeue = false,
                     lease_owner = NULL, lease_until = NULL, updated_at = now(),
                     output = CASE WHEN (SELECT erased FROM dronehook_deliveries
                                         WHERE id = $1) THEN NULL ELSE $8::bytea END
                 WHERE delivery_id = $1 AND handler = $2 AND lease_owner = $3
                 RETURNING status = 'pending' AND next_at <= now()",
                &[
                    &run.delivery_id,
                    &run.handler,
                    &self.shared.owner,
                    &status,
                    &error,
                    &(duration.as_millis() as i64),
                    &(after.as_secs_f64() * 1000.0),
                    &output,
                ],
                |r| r.get::<_, bool>(0),
            )
            .await?;
        if due_now.first() == Some(&true) {
            // Requeued: every instance polls at once rather than at its next interval.
            self.shared.wake.notify_waiters();
            self.write("SELECT pg_notify('dronehook_runs', '')", &[])
                .await?;
        }
        Ok(!due_now.is_empty())
    }

    /// Waits until runs may be due: a notification, this instance's own commit of new
    /// runs, or the polling interval (at most `timeout`). `true` when woken early.
    pub(crate) async fn wait_for_work(&self, timeout: Duration) -> bool {
        let wait = timeout.min(self.shared.settings.poll_every);
        tokio::time::timeout(wait, self.shared.wake.notified())
            .await
            .is_ok()
    }

    /// Prunes expired dedupe keys and the deliveries retention lets go (never one
    /// with a pending run).
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) async fn prune(&self) -> Result<Pruned> {
        self.shared.prune().await.map_err(Error::store)
    }

    /// Runs one statement (prepared once per connection) and gives the rows it changed.
    async fn write(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<u64> {
        let client = self.shared.client().await.map_err(Error::store)?;
        let stmt = client
            .prepare_cached(sql)
            .await
            .map_err(|e| Error::store(describe(&e)))?;
        client
            .execute(&stmt, params)
            .await
            .map_err(|e| Error::store(describe(&e)))
    }

    async fn read<T>(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
        f: impl Fn(&tokio_postgres::Row) -> T,
    ) -> Result<Vec<T>> {
        let client = self.shared.client().await.map_err(Error::store)?;
        let stmt = client
            .prepare_cached(sql)
            .await
            .map_err(|e| Error::store(describe(&e)))?;
        let rows = client
            .query(&stmt, params)
            .await
            .map_err(|e| Error::store(describe(&e)))?;
        Ok(rows.iter().map(f).collect())
    }

    /// How many requests the store holds.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) async fn count(&self) -> Result<u64> {
        let n = self
            .read("SELECT count(*) FROM dronehook_deliveries", &[], |r| {
                r.get::<_, i64>(0)
            })
            .await?;
        Ok(n.first().copied().unwrap_or(0).max(0) as u64)
    }

    /// The entries with an id greater than `after`, oldest first, at most `limit`.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) async fn entries(&self, after: i64, limit: usize) -> Result<Vec<JournalEntry>> {
        self.read(
            &format!("{SELECT_ENTRY} WHERE id > $1 ORDER BY id LIMIT $2"),
            &[&after, &(limit as i64)],
            entry_from_row,
        )
        .await?
        .into_iter()
        .collect()
    }

    /// One entry by id.
    pub(crate) async fn entry(&self, id: i64) -> Result<Option<JournalEntry>> {
        let mut rows = self
            .read(
                &format!("{SELECT_ENTRY} WHERE id = $1"),
                &[&id],
                entry_from_row,
            )
            .await?;
        rows.pop().transpose()
    }

    /// The entry holding a body with this digest, if any.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) async fn find(&self, digest: &BodyDigest) -> Result<Option<i64>> {
        let rows = self
            .read(
                "SELECT id FROM dronehook_deliveries WHERE digest = $1 ORDER BY id LIMIT 1",
                &[&&digest.as_bytes()[..]],
                |r| r.get::<_, i64>(0),
            )
            .await?;
        Ok(rows.first().copied())
    }

    /// The handler runs of one delivery.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) async fn runs(&self, delivery_id: i64) -> Result<Vec<HandlerRun>> {
        self.read(
            &format!("{SELECT_RUN} WHERE delivery_id = $1 ORDER BY handler"),
            &[&delivery_id],
            run_from_row,
        )
        .await
    }

    /// Every run not finished yet, oldest delivery first.
    #[cfg_attr(not(test), allow(dead_code))]
    pub(crate) async fn pending_runs(&self) -> Result<Vec<HandlerRun>> {
        self.read(
            &format!("{SELECT_RUN} WHERE status = 'pending' ORDER BY delivery_id, handler"),
            &[],
            run_from_row,
        )
        .await
    }
}

/// The body a row holds as received: its stored bytes in column `at`, their `codec`
/// in the next column (as both selects of a body list them).
fn body_at(r: &tokio_postgres::Row, at: usize) -> Result<Vec<u8>> {
    unpack_body(r.get(at), r.get::<_, i16>(at + 1).into()).map_err(Error::store)
}

fn entry_from_row(r: &tokio_postgres::Row) -> Result<JournalEntry> {
    let digest: &[u8] = r.get(2);
    let digest = <[u8; 32]>::try_from(digest).unwrap_or([0; 32]);
    let headers: &[u8] = r.get(8);
    Ok(JournalEntry {
        id: r.get(0),
        received_at: r.get(1),
        digest: BodyDigest::from_bytes(digest),
        event: r.get(3),
        action: r.get(4),
        known: r.get(5),
        repo: r.get(6),
        build: r.get(7),
        headers: decode_headers(headers),
        body: body_at(r, 9)?,
    })
}

/// A run from [`SELECT_RUN`]'s columns (the output may be selected as NULL).
pub(crate) fn run_from_row(r: &tokio_postgres::Row) -> HandlerRun {
    let status = RunStatus::parse(r.get::<_, &str>(2));
    // A pending run under a live lease is held by a receiver: it has no next time.
    HandlerRun {
        delivery_id: r.get(0),
        handler: r.get(1),
        status,
        attempts: r.get::<_, i32>(3).max(0) as u32,
        last_error: r.get(4),
        last_duration: r
            .get::<_, Option<i64>>(5)
            .map(|ms| Duration::from_millis(ms.max(0) as u64)),
        next_at: if status == RunStatus::Pending {
            r.get(6)
        } else {
            None
        },
        updated_at: r.get(7),
        output: r.get(8),
    }
}

impl Shared {
    fn set_available(&self, reason: Option<String>) {
        let up = reason.is_none();
        let was = self.available.swap(up, Ordering::AcqRel);
        if was && !up {
            tracing::error!(store = %self.target, reason = reason.as_deref().unwrap_or(""), "store unavailable");
        } else if !was && up {
            tracing::info!(store = %self.target, "store available");
        }
        *self
            .reason
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = reason;
    }

    async fn client(&self) -> std::result::Result<deadpool_postgres::Object, String> {
        match self.pool.get().await {
            Ok(client) => Ok(client),
            Err(e) => {
                let reason = describe_pool(&e);
                self.set_available(Some(reason.clone()));
                Err(reason)
            }
        }
    }

    /// Brings the schema up to this build's version once per process.
    async fn ensure_migrated(&self) -> std::result::Result<(), String> {
        self.migrate().await.map_err(|e| match e {
            Migration::Newer(m) | Migration::Failed(m) => m,
        })
    }

    async fn migrate(&self) -> std::result::Result<(), Migration> {
        if self.migrated.load(Ordering::Acquire) {
            return Ok(());
        }
        let mut client = self.client().await.map_err(Migration::Failed)?;
        migrate(&mut client).await?;
        self.migrated.store(true, Ordering::Release);
        Ok(())
    }

    /// The writer's connection: the one it holds, or a new one from the pool when it
    /// holds none or the one it held is poisoned.
    async fn writer_conn(
        &self,
        held: &mut Option<Arc<WriterConn>>,
    ) -> std::result::Result<Arc<WriterConn>, String> {
        self.ensure_migrated().await?;
        if let Some(conn) = held
            .as_ref()
            .filter(|c| !c.poisoned.load(Ordering::Acquire))
        {
            return Ok(conn.clone());
        }
        // A poisoned connection is closed once the batches still on it are done.
        *held = None;
        let conn = Arc::new(WriterConn {
            client: Some(self.client().await?),
            poisoned: AtomicBool::new(false),
        });
        *held = Some(conn.clone());
        Ok(conn)
    }

    async fn prune(&self) -> std::result::Result<Pruned, String> {
        self.ensure_migrated().await?;
        let client = self.client().await?;
        let db = |e: tokio_postgres::Error| describe(&e);
        let mut pruned = Pruned::default();
        // The newest id beyond the row bound: it and older ones may go.
        let bound: Option<i64> = match self.settings.max_rows {
            Some(max) => client
                .query_opt(
                    "SELECT id FROM dronehook_deliveries ORDER BY id DESC OFFSET $1 LIMIT 1",
                    &[&i64::try_from(max).unwrap_or(i64::MAX)],
                )
                .await
                .map_err(db)?
                .map(|r| r.get(0)),
            None => None,
        };
        let age_ms: Option<f64> = self.settings.retain.map(|d| d.as_secs_f64() * 1000.0);
        // The replay check reads the deliveries of the window: none of them goes.
        let window_ms = self.settings.dedupe_window.as_secs_f64() * 1000.0;
        if bound.is_none() && age_ms.is_none() {
            return Ok(pruned);
        }
        let deliveries = client
            .prepare_cached(
                "DELETE FROM dronehook_deliveries WHERE id IN (
                    SELECT d.id FROM dronehook_deliveries d
                    WHERE (d.received_at < now() - $1::float8 * interval '1 millisecond'
                           OR d.id <= $2::int8)
                      AND d.received_at < now() - $4::float8 * interval '1 millisecond'
                      AND NOT EXISTS (SELECT 1 FROM dronehook_runs r
                                      WHERE r.delivery_id = d.id AND r.status = 'pending')
                    ORDER BY d.id LIMIT $3)",
            )
            .await
            .map_err(db)?;
        loop {
            let n = client
                .execute(&deliveries, &[&age_ms, &bound, &PRUNE_CHUNK, &window_ms])
                .await
                .map_err(db)?;
            pruned.deliveries += n;
            if n < PRUNE_CHUNK as u64 {
                break;
            }
        }
        Ok(pruned)
    }
}

/// Stores a batch with one statement, `dronehook_store_batch` (schema version 5),
/// which takes the replay check's locks, inserts the deliveries and their runs, and
/// commits when it returns (an implicit transaction): one answer to wait for, where
/// BEGIN, the locks, the insert and COMMIT were each answered on their own.
async fn write_batch(
    client: &deadpool_postgres::Object,
    entries: &[&NewEntry],
    window: Duration,
) -> std::result::Result<Vec<Inserted>, String> {
    let db = |e: tokio_postgres::Error| describe(&e);
    // The first copy of a dedupe key in the batch is checked; later copies in the
    // batch are replays of it.
    let mut first_of: HashMap<[u8; 32], usize> = HashMap::new();
    let mut copies = Vec::new();
    let mut rows = Vec::new();
    let mut locks: Vec<i32> = Vec::new();
    for (i, e) in entries.iter().enumerate() {
        if !e.dedupe {
            rows.push(i);
            continue;
        }
        match first_of.entry(*e.digest.as_bytes()) {
            Entry::Occupied(first) => copies.push((i, *first.get())),
            Entry::Vacant(slot) => {
                slot.insert(i);
                rows.push(i);
                locks.push(dedupe_lock(&e.digest));
            }
        }
    }
    // In one order everywhere, so two receivers' batches cannot deadlock.
    locks.sort_unstable();
    locks.dedup();
    let mut cols = Columns::default();
    for (n, &i) in (1_i64..).zip(&rows) {
        cols.push(n, entries[i]);
    }
    let window_start = SystemTime::now().checked_sub(window).unwrap_or(UNIX_EPOCH);

    let stmt = client
        .prepare_cached(
            "SELECT out_rows, out_ids, out_existing FROM dronehook_store_batch(
                 $1::timestamptz[], $2::bytea[], $3::text[], $4::text[], $5::bool[],
                 $6::text[], $7::int8[], $8::bytea[], $9::bytea[], $10::text[],
                 $11::int4[], $12::bool[], $13::int2[], $14::timestamptz, $15::int8[],
                 $16::text[], $17::int4, $18::int4[])",
        )
        .await
        .map_err(db)?;
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 18] = [
        &cols.received,
        &cols.digests,
        &cols.events,
        &cols.actions,
        &cols.known,
        &cols.repos,
        &cols.builds,
        &cols.headers,
        &cols.bodies,
        &cols.build_statuses,
        &cols.secret_indexes,
        &cols.dedupe,
        &cols.codecs,
        &window_start,
        &cols.run_rows,
        &cols.run_handlers,
        &DEDUPE_LOCK_CLASS,
        &locks,
    ];
    // Outside a transaction block, the statement is its own transaction, committed
    // at the Sync that follows it; the answer is read up to the ReadyForQuery after
    // that commit (an error in the commit comes before it), so a batch is answered
    // only once it is durable. An error rolls the whole batch back.
    let row = client.query_one(&stmt, &params).await.map_err(db)?;
    let (ns, ids, existing): (Vec<i64>, Vec<i64>, Vec<Option<i64>>) = (
        row.try_get::<_, Option<Vec<i64>>>(0)
            .map_err(db)?
            .unwrap_or_default(),
        row.try_get::<_, Option<Vec<i64>>>(1)
            .map_err(db)?
            .unwrap_or_default(),
        row.try_get::<_, Option<Vec<Option<i64>>>>(2)
            .map_err(db)?
            .unwrap_or_default(),
    );
    if ns.len() != ids.len() || ns.len() != existing.len() {
        return Err("the database answered with columns of different lengths".to_owned());
    }

    let mut outcome: Vec<Option<Inserted>> = vec![None; entries.len()];
    for ((n, id), existing) in ns.into_iter().zip(ids).zip(existing) {
        let Some(&i) = usize::try_from(n - 1).ok().and_then(|n| rows.get(n)) else {
            return Err("the database answered for a row it was not sent".to_owned());
        };
        outcome[i] = Some(match existing {
            None => Inserted::New(id),
            Some(first) => Inserted::Duplicate(first),
        });
    }
    for (i, first) in copies {
        outcome[i] = match outcome[first] {
            Some(Inserted::New(id) | Inserted::Duplicate(id)) => Some(Inserted::Duplicate(id)),
            None => None,
        };
    }
    outcome
        .into_iter()
        .collect::<Option<_>>()
        .ok_or_else(|| "the database answered for fewer rows than it was sent".to_owned())
}

/// A batch's new deliveries, column by column, for `unnest`.
#[derive(Default)]
struct Columns<'a> {
    received: Vec<SystemTime>,
    digests: Vec<&'a [u8]>,
    events: Vec<&'a str>,
    actions: Vec<&'a str>,
    known: Vec<bool>,
    repos: Vec<Option<&'a str>>,
    builds: Vec<Option<i64>>,
    headers: Vec<&'a [u8]>,
    bodies: Vec<&'a [u8]>,
    build_statuses: Vec<Option<&'a str>>,
    secret_indexes: Vec<Option<i32>>,
    dedupe: Vec<bool>,
    codecs: Vec<i16>,
    /// For each run, its delivery's place in the batch (from 1).
    run_rows: Vec<i64>,
    run_handlers: Vec<&'a str>,
}

impl<'a> Columns<'a> {
    fn push(&mut self, n: i64, e: &'a NewEntry) {
        self.received.push(e.received_at);
        self.digests.push(&e.digest.as_bytes()[..]);
        self.events.push(&e.event);
        self.actions.push(&e.action);
        self.known.push(e.known);
        self.repos.push(e.repo.as_deref());
        self.builds.push(e.build);
        self.headers.push(&e.headers);
        let (body, codec) = e.stored_body();
        self.bodies.push(body);
        self.codecs.push(i16::try_from(codec).unwrap_or(i16::MAX));
        self.build_statuses.push(e.build_status.as_deref());
        self.secret_indexes
            .push(e.secret_index.map(|i| i32::try_from(i).unwrap_or(i32::MAX)));
        self.dedupe.push(e.dedupe);
        for handler in &e.handlers {
            self.run_rows.push(n);
            self.run_handlers.push(handler);
        }
    }
}

/// Why the schema could not be brought up to date.
enum Migration {
    /// The database's schema is newer than this build: not something a retry fixes.
    Newer(String),
    /// The database could not be reached or refused a step.
    Failed(String),
}

/// Runs the missing migration steps in one transaction, under a lock that receivers
/// starting together share; refuses a schema newer than this build.
async fn migrate(client: &mut deadpool_postgres::Object) -> std::result::Result<(), Migration> {
    let db = |e: tokio_postgres::Error| Migration::Failed(describe(&e));
    let tx = client.transaction().await.map_err(db)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(db)?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS dronehook_schema (
             version integer PRIMARY KEY,
             applied_at timestamptz NOT NULL DEFAULT now()
         )",
    )
    .await
    .map_err(db)?;
    let found: i32 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM dronehook_schema",
            &[],
        )
        .await
        .map_err(db)?
        .get(0);
    if found > SCHEMA_VERSION {
        return Err(Migration::Newer(crate::journal::newer_schema(
            found.into(),
            SCHEMA_VERSION.into(),
        )));
    }
    for (version, step) in (1..).zip(MIGRATIONS).skip(found.max(0) as usize) {
        tx.batch_execute(step).await.map_err(db)?;
        tx.execute(
            "INSERT INTO dronehook_schema (version) VALUES ($1)",
            &[&version],
        )
        .await
        .map_err(db)?;
        tracing::info!(version, "store schema migrated");
    }
    tx.commit().await.map_err(db)
}

/// How many batches may be in flight on the writer's connection. The next batch is
/// sent while the one before it commits, so the backend starts it as soon as that
/// commit is done, instead of after the answer has reached the writer and the writer
/// has woken its requests and gathered what queued up meanwhile (about a third of a
/// commit's cycle when there was one batch at a time). Both run in one backend, one
/// after the other, so they never contend for locks or index pages.
const PIPELINE: usize = 2;

/// The writer's connection, shared by the batches in flight on it.
struct WriterConn {
    client: Option<deadpool_postgres::Object>,
    /// A batch on it failed. One that timed out may still be running, with its answer
    /// unread: the connection is closed (PostgreSQL rolls back what did not commit)
    /// when the last batch on it is done, never handed back to the pool.
    poisoned: AtomicBool,
}

impl Drop for WriterConn {
    fn drop(&mut self) {
        if let Some(client) = self.client.take()
            && *self.poisoned.get_mut()
        {
            drop(deadpool_postgres::Object::take(client));
        }
    }
}

/// A batch's requests, what became of them, and how long its commit took.
type Committed = (
    Vec<Cmd>,
    std::result::Result<Vec<Inserted>, String>,
    Duration,
);

/// Commits inserts in batches: everything that queued up while the last batch was
/// being sent goes into the next one, with at most [`PIPELINE`] in flight.
async fn writer(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Cmd>) {
    let mut in_flight: JoinSet<Committed> = JoinSet::new();
    let mut conn: Option<Arc<WriterConn>> = None;
    let mut open = true;
    let mut pending: Vec<Cmd> = Vec::with_capacity(MAX_BATCH);
    // The size of the batch last sent: a batch is sent behind another only once it is
    // as large, so batches do not shrink to whatever arrived since the last one left.
    let mut last_size = 0;
    loop {
        let ready = !pending.is_empty()
            && (in_flight.is_empty() || (in_flight.len() < PIPELINE && pending.len() >= last_size));
        if ready {
            let take = pending.len().min(MAX_BATCH);
            let batch: Vec<Cmd> = pending.drain(..take).collect();
            last_size = batch.len();
            let started = std::time::Instant::now();
            let client =
                match tokio::time::timeout(COMMIT_TIMEOUT, shared.writer_conn(&mut conn)).await {
                    Ok(Ok(client)) => client,
                    Ok(Err(message)) => {
                        answer(&shared, (batch, Err(message), started.elapsed()));
                        continue;
                    }
                    Err(_) => {
                        let message = "the commit timed out".to_owned();
                        answer(&shared, (batch, Err(message), started.elapsed()));
                        continue;
                    }
                };
            let window = shared.settings.dedupe_window;
            in_flight.spawn(async move {
                let entries: Vec<&NewEntry> = batch.iter().map(|(e, _)| &**e).collect();
                let result = match &client.client {
                    Some(c) => {
                        tokio::time::timeout(COMMIT_TIMEOUT, write_batch(c, &entries, window))
                            .await
                            .unwrap_or_else(|_| Err("the commit timed out".to_owned()))
                    }
                    None => Err("the store's connection is closed".to_owned()),
                };
                if result.is_err() {
                    client.poisoned.store(true, Ordering::Release);
                }
                (batch, result, started.elapsed())
            });
            continue;
        }
        tokio::select! {
            // Answers first: a request waits no longer than its commit.
            biased;
            Some(done) = in_flight.join_next(), if !in_flight.is_empty() => {
                // A batch task that panicked dropped its requests' reply channels:
                // they are answered as failed by the channel closing.
                if let Ok(done) = done {
                    answer(&shared, done);
                }
                if in_flight.is_empty() && pending.is_empty() {
                    // Idle: the connection goes back to the pool, for the other tasks.
                    conn = None;
                }
            }
            cmd = rx.recv(), if open => {
                let Some(first) = cmd else {
                    open = false;
                    continue;
                };
                pending.push(first);
                while pending.len() < MAX_BATCH {
                    match rx.try_recv() {
                        Ok(cmd) => pending.push(cmd),
                        Err(_) => break,
                    }
                }
            }
            else => break,
        }
    }
}

/// Answers a batch's requests and counts its commit.
fn answer(shared: &Shared, (mut batch, result, elapsed): Committed) {
    match result {
        Ok(outcome) => {
            shared.set_available(None);
            shared.stats.commits.inc();
            if let Some(sizes) = &shared.stats.batch_size {
                sizes.observe(batch.len() as f64);
            }
            if batch.iter().any(|(e, _)| !e.handlers.is_empty()) {
                shared.wake.notify_waiters();
            }
            for ((_, reply), inserted) in batch.drain(..).zip(outcome) {
                let _ = reply.send(Ok((inserted, elapsed)));
            }
        }
        Err(message) => {
            tracing::error!(store = %shared.target, error = %message, "store commit failed");
            shared.set_available(Some(message.clone()));
            for (_, reply) in batch.drain(..) {
                let _ = reply.send(Err(message.clone()));
            }
        }
    }
}

/// Keeps a connection listening for new runs, connecting again after a failure.
async fn listener(shared: Arc<Shared>) {
    loop {
        let error = listen_once(&shared).await;
        tracing::debug!(store = %shared.target, %error, "not listening for new runs; polling");
        // Whatever was notified while not listening is found by the next poll.
        tokio::time::sleep(shared.settings.poll_every).await;
    }
}

async fn listen_once(shared: &Shared) -> String {
    let (client, mut connection) = match shared.config.connect(shared.tls.clone()).await {
        Ok(pair) => pair,
        Err(e) => return describe(&e),
    };
    let wake = &shared.wake;
    let mut drive = std::pin::pin!(async move {
        loop {
            match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                Some(Ok(AsyncMessage::Notification(_))) => wake.notify_waiters(),
                Some(Ok(_)) => {}
                Some(Err(e)) => return describe(&e),
                None => return "the connection closed".to_owned(),
            }
        }
    });
    let listen = format!("LISTEN {CHANNEL}");
    tokio::select! {
        listening = client.batch_execute(&listen) => {
            if let Err(e) = listening {
                return describe(&e);
            }
        }
        error = &mut drive => return error,
    }
    // Runs added while this was not listening are due now.
    wake.notify_waiters();
    let error = drive.await;
    drop(client);
    error
}

/// Prunes on a timer, and checks an unavailable database more often so the store says
/// it is back without waiting for a request.
async fn maintenance(shared: Arc<Shared>) {
    let mut last_prune = tokio::time::Instant::now();
    loop {
        let wait = if shared.available.load(Ordering::Acquire) {
            shared.settings.maintenance_every
        } else {
            shared.settings.poll_every
        };
        tokio::time::sleep(wait).await;
        if !shared.available.load(Ordering::Acquire) {
            match shared.client().await {
                Ok(client) => match client.simple_query("SELECT 1").await {
                    Ok(_) => shared.set_available(None),
                    Err(e) => shared.set_available(Some(describe(&e))),
                },
                Err(_) => continue,
            }
        }
        if last_prune.elapsed() < shared.settings.maintenance_every {
            continue;
        }
        last_prune = tokio::time::Instant::now();
        match shared.prune().await {
            Ok(p) if p.deliveries > 0 => {
                tracing::info!(deliveries = p.deliveries, "store pruned");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(store = %shared.target, error = %e, "store pruning failed"),
        }
    }
}
