//! [`crate::Store`] on an SQLite journal: one connection of the tool's own beside the
//! receiver's writer (WAL lets both work), used from blocking tasks.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, SystemTime};

use dronehook_protocol::BodyDigest;
use dronehook_protocol::filter::filter_name;
use rusqlite::types::Value;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params, params_from_iter};

use super::query::{
    EventQuery, EventSummary, Pruned, StoreStats, StoredEvent, is_literal, millis, sqlite_glob,
};
use crate::error::{Error, Result};
use crate::journal::{
    HandlerRun, RUN_COLUMNS, RunStatus, SCHEMA_VERSION, SchemaError, decode_body, decode_headers,
    migrate, newer_schema, run_from_row, schema_version, time_of,
};

/// Rows deleted per statement when pruning, so the receiver's writer waits at most
/// one chunk.
const PRUNE_CHUNK: i64 = 1000;

/// Ids per `IN (...)` when loading the runs of a page of events.
const IDS_PER_QUERY: usize = 500;

const SUMMARY_COLUMNS: &str =
    "d.id, d.received_at_ms, d.event, d.action, d.known, d.repo, d.build, d.build_status, d.erased";

pub(crate) struct SqliteStore {
    path: PathBuf,
    conn: Mutex<Connection>,
    read_only: bool,
}

impl SqliteStore {
    /// Opens an existing journal (never creates one); read-write migrates it.
    pub(crate) fn open(path: &Path, read_only: bool) -> Result<SqliteStore> {
        let no_store = || Error::not_found(format!("no store at {}", path.display()));
        if !path.is_file() {
            return Err(no_store());
        }
        let flags = if read_only {
            OpenFlags::SQLITE_OPEN_READ_ONLY
        } else {
            OpenFlags::SQLITE_OPEN_READ_WRITE
        } | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let sql = |e: rusqlite::Error| sql_error(path, &e);
        let conn = Connection::open_with_flags(path, flags).map_err(sql)?;
        conn.busy_timeout(Duration::from_secs(10)).map_err(sql)?;
        let found = schema_version(&conn).map_err(sql)?;
        if found == 0 {
            return Err(Error::not_found(format!(
                "no store at {}: the file holds no dronehook journal",
                path.display()
            )));
        }
        if read_only {
            if found > SCHEMA_VERSION {
                return Err(Error::schema(newer_schema(found, SCHEMA_VERSION)));
            }
            if found < SCHEMA_VERSION {
                return Err(Error::schema(format!(
                    "the store's schema is version {found}; reading needs version {SCHEMA_VERSION}: open it read-write once (or start a receiver on it) to migrate it"
                )));
            }
            conn.execute_batch("PRAGMA query_only = ON").map_err(sql)?;
        } else {
            migrate(&conn).map_err(|e| match e {
                SchemaError::Version(message) => Error::schema(message),
                SchemaError::Sql(message) => Error::store(format!(
                    "sqlite:{}: {}",
                    path.display(),
                    message.replace('\n', " ")
                )),
            })?;
            // Erased payloads are overwritten in the file, not only unlinked.
            conn.execute_batch("PRAGMA secure_delete = ON; PRAGMA foreign_keys = ON")
                .map_err(sql)?;
        }
        Ok(SqliteStore {
            path: path.to_owned(),
            conn: Mutex::new(conn),
            read_only,
        })
    }

    pub(crate) fn is_read_only(&self) -> bool {
        self.read_only
    }

    fn with<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let conn = self
            .conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&conn).map_err(|e| sql_error(&self.path, &e))
    }

    fn writable(&self) -> Result<()> {
        if self.read_only {
            return Err(Error::read_only(format!(
                "sqlite:{} was opened read-only: nothing is changed",
                self.path.display()
            )));
        }
        Ok(())
    }

    pub(crate) fn list(&self, query: &EventQuery) -> Result<Vec<EventSummary>> {
        self.with(|c| {
            let Some((sql, args)) = list_sql(c, query)? else {
                return Ok(Vec::new());
            };
            let mut stmt = c.prepare(&sql)?;
            let mut events: Vec<EventSummary> = stmt
                .query_map(params_from_iter(args), summary_from_row)?
                .collect::<rusqlite::Result<_>>()?;
            attach_runs(c, &mut events, false)?;
            Ok(events)
        })
    }

    pub(crate) fn get(&self, id: i64) -> Result<Option<StoredEvent>> {
        self.with(|c| get(c, id))
    }

    pub(crate) fn redeliver(&self, id: i64, handler: Option<&str>) -> Result<Vec<String>> {
        self.writable()?;
        if handler.is_some_and(str::is_empty) {
            return Err(Error::store("an empty handler name"));
        }
        let conn = self
            .conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let sql = |e: rusqlite::Error| sql_error(&self.path, &e);
        // IMMEDIATE: the write lock is taken at once, so the read below cannot turn
        // into a lock upgrade that fails against the receiver's writer.
        let tx =
            rusqlite::Transaction::new_unchecked(&conn, rusqlite::TransactionBehavior::Immediate)
                .map_err(sql)?;
        let erased: Option<bool> = tx
            .query_row("SELECT erased FROM deliveries WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(sql)?;
        match erased {
            None => return Err(Error::not_found(format!("no event {id}"))),
            Some(true) => {
                return Err(Error::store(format!(
                    "event {id} was erased: there is nothing to redeliver"
                )));
            }
            Some(false) => {}
        }
        let now = millis(SystemTime::now());
        if let Some(handler) = handler {
            tx.execute(
                "INSERT OR IGNORE INTO runs (delivery_id, handler, status, updated_at_ms, next_at_ms)
                 VALUES (?1, ?2, 'pending', ?3, ?3)",
                params![id, handler, now],
            )
            .map_err(sql)?;
        }
        // A run the receiver holds (pending, no due time: queued or running) is only
        // flagged: made due now, the poller would start it again beside the attempt in
        // memory. The attempt's end makes a flagged run due with a fresh set.
        let mut names: Vec<String> = {
            let mut stmt = tx
                .prepare(
                    "UPDATE runs SET
                         requeue = (status = 'pending' AND next_at_ms IS NULL),
                         status = 'pending',
                         next_at_ms = CASE WHEN status = 'pending' AND next_at_ms IS NULL
                                           THEN NULL ELSE ?3 END,
                         attempts_base = CASE WHEN status = 'pending' AND next_at_ms IS NULL
                                              THEN attempts_base ELSE attempts END,
                         updated_at_ms = ?3
                     WHERE delivery_id = ?1 AND (?2 IS NULL OR handler = ?2)
                     RETURNING handler",
                )
                .map_err(sql)?;
            stmt.query_map(params![id, handler, now], |r| r.get(0))
                .map_err(sql)?
                .collect::<rusqlite::Result<_>>()
                .map_err(sql)?
        };
        tx.commit().map_err(sql)?;
        names.sort();
        Ok(names)
    }

    pub(crate) fn prune(&self, older_than: Duration, dry_run: bool) -> Result<Pruned> {
        const CHOSEN: &str = "SELECT d.id FROM deliveries d
             WHERE d.received_at_ms < ?1
               AND NOT EXISTS (SELECT 1 FROM runs r
                               WHERE r.delivery_id = d.id AND r.status = 'pending')";
        let cutoff = millis(SystemTime::now())
            .saturating_sub(i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX));
        if dry_run {
            let n: i64 = self.with(|c| {
                c.query_row(&format!("SELECT count(*) FROM ({CHOSEN})"), [cutoff], |r| {
                    r.get(0)
                })
            })?;
            return Ok(Pruned { events: n as u64 });
        }
        self.writable()?;
        let mut total = 0;
        loop {
            let removed = self.with(|c| {
                let chunk = format!("{CHOSEN} ORDER BY d.id LIMIT ?2");
                let tx = rusqlite::Transaction::new_unchecked(
                    c,
                    rusqlite::TransactionBehavior::Immediate,
                )?;
                tx.execute(
                    &format!("DELETE FROM runs WHERE delivery_id IN ({chunk})"),
                    params![cutoff, PRUNE_CHUNK],
                )?;
                let n = tx.execute(
                    &format!("DELETE FROM deliveries WHERE id IN ({chunk})"),
                    params![cutoff, PRUNE_CHUNK],
                )?;
                tx.commit()?;
                Ok(n as u64)
            })?;
            total += removed;
            if removed < PRUNE_CHUNK as u64 {
                return Ok(Pruned { events: total });
            }
        }
    }

    pub(crate) fn stats(&self, since: Option<SystemTime>) -> Result<StoreStats> {
        let from = since.map_or(i64::MIN, millis);
        let mut stats = self.with(|c| {
            let mut stats = StoreStats::default();
            // Each count from an index alone, never the rows (their bodies).
            let (events, oldest, newest): (i64, Option<i64>, Option<i64>) = c.query_row(
                "SELECT count(*), min(received_at_ms), max(received_at_ms)
                 FROM deliveries INDEXED BY deliveries_received WHERE received_at_ms >= ?1",
                [from],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )?;
            let erased: i64 = c.query_row(
                "SELECT count(*) FROM deliveries
                 WHERE erased = 1 AND received_at_ms >= ?1",
                [from],
                |r| r.get(0),
            )?;
            stats.events = events as u64;
            stats.erased = erased as u64;
            stats.oldest = oldest.map(time_of);
            stats.newest = newest.map(time_of);
            // Without `since`, the groups come from their indexes alone; with it, from
            // the rows in range.
            let in_range = if since.is_some() {
                "received_at_ms >= ?1"
            } else {
                "?1 IS NOT NULL"
            };
            let mut stmt = c.prepare(&format!(
                "SELECT event, action, count(*) FROM deliveries WHERE {in_range}
                 GROUP BY event, action"
            ))?;
            stats.by_event = stmt
                .query_map([from], |r| {
                    Ok((
                        filter_name(&r.get::<_, String>(0)?, &r.get::<_, String>(1)?),
                        r.get::<_, i64>(2)? as u64,
                    ))
                })?
                .collect::<rusqlite::Result<_>>()?;
            stats.by_event.sort();
            let mut stmt = c.prepare(&format!(
                "SELECT build_status, count(*) FROM deliveries
                 WHERE build_status IS NOT NULL AND {in_range}
                 GROUP BY build_status ORDER BY build_status"
            ))?;
            stats.by_build_status = stmt
                .query_map([from], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?
                .collect::<rusqlite::Result<_>>()?;
            let runs_sql = if since.is_some() {
                "SELECT r.status, count(*) FROM runs r JOIN deliveries d ON d.id = r.delivery_id
                 WHERE d.received_at_ms >= ?1 GROUP BY r.status"
            } else {
                "SELECT status, count(*) FROM runs WHERE ?1 IS NOT NULL GROUP BY status"
            };
            let mut stmt = c.prepare(runs_sql)?;
            let by_run: Vec<(String, i64)> = stmt
                .query_map([from], |r| Ok((r.get(0)?, r.get(1)?)))?
                .collect::<rusqlite::Result<_>>()?;
            stats.by_run_status = merge_run_counts(by_run);
            let oldest_pending: Option<i64> = c.query_row(
                "SELECT min(d.received_at_ms) FROM deliveries d
                 WHERE d.id IN (SELECT delivery_id FROM runs WHERE status = 'pending')
                   AND d.received_at_ms >= ?1",
                [from],
                |r| r.get(0),
            )?;
            stats.oldest_pending = oldest_pending.map(time_of);
            Ok(stats)
        })?;
        let mut wal = self.path.as_os_str().to_owned();
        wal.push("-wal");
        let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
        stats.size_bytes = Some(size(&self.path) + size(Path::new(&wal)));
        Ok(stats)
    }

    pub(crate) fn erase(&self, id: i64) -> Result<bool> {
        self.writable()?;
        let erased = self.with(|c| {
            let tx =
                rusqlite::Transaction::new_unchecked(c, rusqlite::TransactionBehavior::Immediate)?;
            let erased: Option<bool> = tx
                .query_row("SELECT erased FROM deliveries WHERE id = ?1", [id], |r| {
                    r.get(0)
                })
                .optional()?;
            match erased {
                None => return Ok(None),
                Some(true) => return Ok(Some(false)),
                Some(false) => {}
            }
            tx.execute(
                "UPDATE deliveries SET headers = x'', body = x'', codec = 0, erased = 1 WHERE id = ?1",
                [id],
            )?;
            tx.execute("UPDATE runs SET output = NULL WHERE delivery_id = ?1", [id])?;
            tx.commit()?;
            // secure_delete zeroes the old bytes in the database file, but the WAL
            // still holds the pages as they were: a TRUNCATE checkpoint copies it
            // back and empties it. It waits for readers (the busy timeout) and can
            // still be refused; then the old copy stays until a later full checkpoint.
            let busy = c
                .query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |r| r.get::<_, i64>(0))
                .unwrap_or(1);
            if busy != 0 {
                tracing::warn!(
                    event = id,
                    "the journal is busy: the erased payload stays in its write-ahead log until the next full checkpoint"
                );
            }
            Ok(Some(true))
        })?;
        erased.ok_or_else(|| Error::not_found(format!("no event {id}")))
    }

    pub(crate) fn latest_builds(&self, limit: usize) -> Result<Vec<StoredEvent>> {
        self.with(|c| {
            // Each repository's newest build: skipping along the partial index of builds
            // (two seeks per repository), not reading every build.
            let mut first = c.prepare_cached(
                "SELECT repo FROM deliveries INDEXED BY deliveries_builds
                 WHERE event = 'build' AND erased = 0 AND repo IS NOT NULL
                 ORDER BY repo LIMIT 1",
            )?;
            let mut next = c.prepare_cached(
                "SELECT repo FROM deliveries INDEXED BY deliveries_builds
                 WHERE event = 'build' AND erased = 0 AND repo > ?1 ORDER BY repo LIMIT 1",
            )?;
            let mut newest = c.prepare_cached(
                "SELECT max(id) FROM deliveries INDEXED BY deliveries_builds
                 WHERE event = 'build' AND erased = 0 AND repo = ?1",
            )?;
            let mut ids: Vec<i64> = Vec::new();
            let mut current: Option<String> = first.query_row([], |r| r.get(0)).optional()?;
            while let Some(repo) = current {
                if let Some(id) = newest.query_row([&repo], |r| r.get::<_, Option<i64>>(0))? {
                    ids.push(id);
                }
                current = next.query_row([&repo], |r| r.get(0)).optional()?;
            }
            ids.sort_unstable_by(|a, b| b.cmp(a));
            ids.truncate(limit);
            let mut out = Vec::with_capacity(ids.len());
            for id in ids {
                if let Some(event) = get(c, id)? {
                    out.push(event);
                }
            }
            Ok(out)
        })
    }
}

fn sql_error(path: &Path, e: &rusqlite::Error) -> Error {
    Error::store(format!(
        "sqlite:{}: {}",
        path.display(),
        e.to_string().replace('\n', " ")
    ))
}

/// Most single-index walks one list unions (event pairs times repositories); a
/// filter that would need more is applied to the rows instead (it is broad then, and
/// rows in id order meet it soon).
const MAX_WALKS: usize = 64;

/// Most repositories a glob is expanded to before it is treated as broad.
const MAX_GLOB_REPOS: usize = 32;

/// Most distinct repositories looked at to expand a glob (one index seek each).
const MAX_GLOB_EXAMINED: usize = 2000;

/// The statement and arguments of a list; `None` when no stored event can match.
///
/// A page is the newest `limit` events, so the cheap plan walks an index in id order
/// and stops after `limit` matches: an equality on an indexed column gives exactly
/// that (SQLite appends the id to each index). Filters with several values (an event
/// filter's pairs, a repository glob's repositories) become one such walk per value,
/// each limited, merged by the outer `ORDER BY`; the time range becomes a list of
/// ids from its index; a run state is checked per row, as a list for the rare states.
pub(crate) fn list_sql(
    c: &Connection,
    query: &EventQuery,
) -> rusqlite::Result<Option<(String, Vec<Value>)>> {
    // The rest of the filters, ANDed into each walk.
    let mut rest = String::new();
    let mut rest_args: Vec<Value> = Vec::new();
    // Equalities with several values: one walk per combination.
    let mut pairs: Option<Vec<(String, String)>> = None;
    let mut repos: Option<Vec<String>> = None;
    if let Some(filter) = &query.events {
        // The filter is Go's `filepath.Match`, which SQL cannot say: it is applied to
        // the few distinct pairs stored.
        let matched: Vec<(String, String)> = event_pairs(c)?
            .into_iter()
            .filter(|(e, a)| filter.matches(e, a))
            .collect();
        if matched.is_empty() {
            return Ok(None);
        }
        pairs = Some(matched);
    }
    if let Some(glob) = &query.repo {
        if is_literal(glob) {
            repos = Some(vec![glob.clone()]);
        } else {
            match glob_repos(c, glob)? {
                Some(found) if found.is_empty() => return Ok(None),
                Some(found) => repos = Some(found),
                None => {
                    // Broad: checked on the rows (`+` keeps SQLite off the index).
                    rest += " AND +d.repo GLOB ?";
                    rest_args.push(Value::Text(sqlite_glob(glob)));
                }
            }
        }
    }
    if let Some(status) = &query.build_status {
        rest += " AND d.build_status = ?";
        rest_args.push(Value::Text(status.clone()));
    }
    match query.run_status {
        // Most runs are ok: checked per row through the runs' primary key.
        Some(RunStatus::Ok) => {
            rest +=
                " AND EXISTS (SELECT 1 FROM runs r WHERE r.delivery_id = d.id AND r.status = 'ok')";
        }
        // Dead and pending runs are few: the list of their events, from `runs_status`.
        Some(status) => {
            rest += " AND d.id IN (SELECT delivery_id FROM runs WHERE status = ?)";
            rest_args.push(Value::Text(status.as_str().to_owned()));
        }
        None => {}
    }
    // A time range becomes an id range (found on the time index) and the exact check
    // on each row: walks in id order then start and stop where the range does.
    if let Some(t) = query.since {
        let Some(lo) = time_bound(c, millis(t), true)? else {
            return Ok(None);
        };
        rest += " AND d.id >= ? AND +d.received_at_ms >= ?";
        rest_args.push(Value::Integer(lo));
        rest_args.push(Value::Integer(millis(t)));
    }
    if let Some(t) = query.until {
        let Some(hi) = time_bound(c, millis(t), false)? else {
            return Ok(None);
        };
        rest += " AND d.id <= ? AND +d.received_at_ms < ?";
        rest_args.push(Value::Integer(hi));
        rest_args.push(Value::Integer(millis(t)));
    }
    if let Some(id) = query.before {
        rest += " AND d.id < ?";
        rest_args.push(Value::Integer(id));
    }
    let limit = Value::Integer(query.effective_limit() as i64);
    // The walks: every combination of the multi-valued equalities. Too many, and the
    // larger dimension is applied to the rows instead.
    let walks = pairs.as_ref().map_or(1, Vec::len) * repos.as_ref().map_or(1, Vec::len);
    if walks > MAX_WALKS {
        let repo_count = repos.as_ref().map_or(0, Vec::len);
        if repo_count >= pairs.as_ref().map_or(0, Vec::len) {
            if let Some(glob) = &query.repo {
                rest += " AND +d.repo GLOB ?";
                rest_args.push(Value::Text(sqlite_glob(glob)));
            }
            repos = None;
        } else if let Some(filter_pairs) = pairs.take() {
            let terms = vec!["(+d.event = ? AND +d.action = ?)"; filter_pairs.len()];
            rest += " AND (";
            rest += &terms.join(" OR ");
            rest += ")";
            for (e, a) in filter_pairs {
                rest_args.push(Value::Text(e));
                rest_args.push(Value::Text(a));
            }
        }
    }
    let pair_list: Vec<Option<(String, String)>> = match pairs {
        Some(p) => p.into_iter().map(Some).collect(),
        None => vec![None],
    };
    let repo_list: Vec<Option<String>> = match repos {
        Some(r) => r.into_iter().map(Some).collect(),
        None => vec![None],
    };
    let mut selects = Vec::new();
    let mut args: Vec<Value> = Vec::new();
    for pair in &pair_list {
        for repo in &repo_list {
            let mut walk = format!("SELECT {SUMMARY_COLUMNS} FROM deliveries d WHERE 1");
            if let Some((e, a)) = pair {
                walk += " AND d.event = ? AND d.action = ?";
                args.push(Value::Text(e.clone()));
                args.push(Value::Text(a.clone()));
            }
            if let Some(r) = repo {
                walk += " AND d.repo = ?";
                args.push(Value::Text(r.clone()));
            }
            walk += &rest;
            args.extend(rest_args.iter().cloned());
            walk += " ORDER BY d.id DESC LIMIT ?";
            args.push(limit.clone());
            selects.push(walk);
        }
    }
    let sql = if selects.len() == 1 {
        selects.pop().unwrap_or_default()
    } else {
        // Each walk in a subquery of its own keeps its ORDER BY and LIMIT.
        let parts: Vec<String> = selects
            .into_iter()
            .map(|s| format!("SELECT * FROM ({s})"))
            .collect();
        args.push(limit);
        format!("{} ORDER BY 1 DESC LIMIT ?", parts.join(" UNION ALL "))
    };
    Ok(Some((sql, args)))
}

/// How far out of order ids and reception times may be: a request's time is read
/// before it is verified and committed, so a later id can carry an earlier time, by
/// the time a verification and a commit take (milliseconds; this allows for ten
/// minutes). A clock stepped back by more than this can make a time filter miss the
/// events received around the step.
const TIME_SKEW_MS: i64 = 10 * 60 * 1000;

/// The smallest id received at or after `t` (`lower`), or the largest received
/// before `t`; `None` when there is none. Two short walks of the time index: the
/// first (or last) time in range, then the ids within [`TIME_SKEW_MS`] of it, where
/// (ids following times to within that skew) the extreme id must be.
fn time_bound(c: &Connection, t: i64, lower: bool) -> rusqlite::Result<Option<i64>> {
    if lower {
        let first: Option<i64> = c
            .query_row(
                "SELECT received_at_ms FROM deliveries INDEXED BY deliveries_received
                 WHERE received_at_ms >= ?1 ORDER BY received_at_ms LIMIT 1",
                [t],
                |r| r.get(0),
            )
            .optional()?;
        let Some(first) = first else { return Ok(None) };
        c.query_row(
            "SELECT min(id) FROM deliveries INDEXED BY deliveries_received
             WHERE received_at_ms >= ?1 AND received_at_ms <= ?2",
            [first, first.saturating_add(TIME_SKEW_MS)],
            |r| r.get(0),
        )
    } else {
        let last: Option<i64> = c
            .query_row(
                "SELECT received_at_ms FROM deliveries INDEXED BY deliveries_received
                 WHERE received_at_ms < ?1 ORDER BY received_at_ms DESC LIMIT 1",
                [t],
                |r| r.get(0),
            )
            .optional()?;
        let Some(last) = last else { return Ok(None) };
        c.query_row(
            "SELECT max(id) FROM deliveries INDEXED BY deliveries_received
             WHERE received_at_ms >= ?1 AND received_at_ms < ?2",
            [last.saturating_sub(TIME_SKEW_MS), t],
            |r| r.get(0),
        )
    }
}

/// The stored repositories a glob matches, found by skipping along the `repo` index
/// from the glob's literal prefix; `None` when there are more than
/// [`MAX_GLOB_REPOS`] (a broad glob).
fn glob_repos(c: &Connection, glob: &str) -> rusqlite::Result<Option<Vec<String>>> {
    let prefix: String = glob
        .chars()
        .take_while(|ch| !matches!(ch, '*' | '?'))
        .collect();
    let pattern = sqlite_glob(glob);
    let mut next = c.prepare_cached(
        "SELECT repo FROM deliveries INDEXED BY deliveries_repo
         WHERE repo > ?1 ORDER BY repo LIMIT 1",
    )?;
    let mut matches = c.prepare_cached("SELECT ?1 GLOB ?2")?;
    let mut out = Vec::new();
    let mut current: Option<String> = if prefix.is_empty() {
        c.query_row(
            "SELECT repo FROM deliveries INDEXED BY deliveries_repo WHERE repo IS NOT NULL
             ORDER BY repo LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()?
    } else {
        c.query_row(
            "SELECT repo FROM deliveries INDEXED BY deliveries_repo WHERE repo >= ?1
             ORDER BY repo LIMIT 1",
            [&prefix],
            |r| r.get(0),
        )
        .optional()?
    };
    let mut examined = 0;
    while let Some(repo) = current {
        if !repo.starts_with(&prefix) {
            break;
        }
        examined += 1;
        if examined > MAX_GLOB_EXAMINED {
            return Ok(None);
        }
        if matches.query_row(params![repo, pattern], |r| r.get::<_, bool>(0))? {
            if out.len() == MAX_GLOB_REPOS {
                return Ok(None);
            }
            out.push(repo.clone());
        }
        current = next.query_row([&repo], |r| r.get(0)).optional()?;
    }
    Ok(Some(out))
}

/// The distinct `(event, action)` pairs stored, found by skipping along the
/// `(event, action)` index: one seek per pair, however many events there are.
fn event_pairs(c: &Connection) -> rusqlite::Result<Vec<(String, String)>> {
    let mut first = c.prepare_cached(
        "SELECT event, action FROM deliveries INDEXED BY deliveries_event
         ORDER BY event, action LIMIT 1",
    )?;
    // Two seeks, not a row-value comparison (which SQLite would not seek with).
    let mut next_action = c.prepare_cached(
        "SELECT event, action FROM deliveries INDEXED BY deliveries_event
         WHERE event = ?1 AND action > ?2 ORDER BY event, action LIMIT 1",
    )?;
    let mut next_event = c.prepare_cached(
        "SELECT event, action FROM deliveries INDEXED BY deliveries_event
         WHERE event > ?1 ORDER BY event, action LIMIT 1",
    )?;
    let mut out = Vec::new();
    let mut current: Option<(String, String)> = first
        .query_row([], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    while let Some((e, a)) = current {
        current = match next_action
            .query_row(params![e, a], |r| Ok((r.get(0)?, r.get(1)?)))
            .optional()?
        {
            Some(pair) => Some(pair),
            None => next_event
                .query_row([&e], |r| Ok((r.get(0)?, r.get(1)?)))
                .optional()?,
        };
        out.push((e, a));
    }
    Ok(out)
}

fn summary_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<EventSummary> {
    Ok(EventSummary {
        id: r.get(0)?,
        received_at: time_of(r.get(1)?),
        event: r.get(2)?,
        action: r.get(3)?,
        known: r.get(4)?,
        repo: r.get(5)?,
        build: r.get(6)?,
        build_status: r.get(7)?,
        erased: r.get(8)?,
        runs: Vec::new(),
    })
}

/// Fills each event's runs (with their output or without).
fn attach_runs(c: &Connection, events: &mut [EventSummary], output: bool) -> rusqlite::Result<()> {
    let mut by_id: HashMap<i64, Vec<HandlerRun>> = HashMap::new();
    let ids: Vec<i64> = events.iter().map(|e| e.id).collect();
    for chunk in ids.chunks(IDS_PER_QUERY) {
        let marks = vec!["?"; chunk.len()].join(",");
        let out = if output { "output" } else { "NULL" };
        let mut stmt = c.prepare(&format!(
            "SELECT {RUN_COLUMNS}, {out} FROM runs WHERE delivery_id IN ({marks})
             ORDER BY delivery_id, handler"
        ))?;
        for run in stmt.query_map(params_from_iter(chunk), run_from_row)? {
            let run = run?;
            by_id.entry(run.delivery_id).or_default().push(run);
        }
    }
    for event in events {
        event.runs = by_id.remove(&event.id).unwrap_or_default();
    }
    Ok(())
}

fn get(c: &Connection, id: i64) -> rusqlite::Result<Option<StoredEvent>> {
    let row = c
        .query_row(
            &format!(
                "SELECT {SUMMARY_COLUMNS}, d.digest, d.secret_index, d.headers, d.body, d.codec
                 FROM deliveries d WHERE d.id = ?1"
            ),
            [id],
            |r| {
                let summary = summary_from_row(r)?;
                let digest: Vec<u8> = r.get(9)?;
                let headers: Vec<u8> = r.get(11)?;
                Ok(StoredEvent {
                    summary,
                    digest: BodyDigest::from_bytes(
                        <[u8; 32]>::try_from(digest.as_slice()).unwrap_or([0; 32]),
                    ),
                    secret_index: r
                        .get::<_, Option<i64>>(10)?
                        .and_then(|i| u32::try_from(i).ok()),
                    headers: decode_headers(&headers),
                    body: decode_body(r.get(12)?, r.get(13)?)?,
                })
            },
        )
        .optional()?;
    let Some(mut event) = row else {
        return Ok(None);
    };
    attach_runs(c, std::slice::from_mut(&mut event.summary), true)?;
    Ok(Some(event))
}

/// Run counts by stored status, `failed` counted as `dead`, in state order.
pub(crate) fn merge_run_counts(counts: Vec<(String, i64)>) -> Vec<(RunStatus, u64)> {
    let mut merged: Vec<(RunStatus, u64)> = Vec::new();
    for (status, n) in counts {
        let status = RunStatus::parse(&status);
        match merged.iter_mut().find(|(s, _)| *s == status) {
            Some((_, total)) => *total += n as u64,
            None => merged.push((status, n as u64)),
        }
    }
    merged.sort();
    merged
}

#[cfg(test)]
mod tests {
    use dronehook_protocol::EventFilter;

    use super::*;
    use crate::journal::Journal;

    const STATUSES: &[&str] = &["success", "failure", "running", "killed", "error"];

    /// A journal of `n` events as a busy Drone sends them: 70% builds of 200
    /// repositories (each with a `notify` run: nearly all ok, 1% dead, 0.1% pending),
    /// the rest repository and user events, one every 100 ms.
    fn build_store(path: &Path, n: i64) {
        let journal = Journal::open(path).unwrap();
        journal.close();
        let mut c = Connection::open(path).unwrap();
        c.execute_batch("PRAGMA synchronous = OFF").unwrap();
        let tx = c.transaction().unwrap();
        {
            let mut delivery = tx
                .prepare(
                    "INSERT INTO deliveries (id, received_at_ms, digest, event, action, known, repo,
                     build, headers, body, build_status, secret_index)
                     VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6, ?7, ?8, ?9, ?10, 0)",
                )
                .unwrap();
            let mut run = tx
                .prepare(
                    "INSERT INTO runs (delivery_id, handler, status, attempts, updated_at_ms, next_at_ms)
                     VALUES (?1, 'notify', ?2, 1, ?3, ?4)",
                )
                .unwrap();
            let body = vec![b'x'; 300];
            let start = 1_700_000_000_000_i64;
            for id in 1..=n {
                let at = start + id * 100;
                let (event, action) = match id % 20 {
                    0..=13 => ("build", if id % 2 == 0 { "updated" } else { "created" }),
                    14..=16 => ("repo", "enabled"),
                    _ => ("user", "created"),
                };
                let build = event == "build";
                let repo = (event != "user").then(|| format!("org{}/repo{}", id % 7, id % 200));
                let status = build.then(|| STATUSES[(id / 20 % 5) as usize]);
                let mut digest = [0u8; 32];
                digest[..8].copy_from_slice(&id.to_le_bytes());
                delivery
                    .execute(params![
                        id,
                        at,
                        &digest[..],
                        event,
                        action,
                        repo,
                        build.then_some(id),
                        &b"x-drone-event: build\r\n"[..],
                        &body,
                        status,
                    ])
                    .unwrap();
                if build {
                    let state = match id % 1000 {
                        7 => "pending",
                        100..=109 => "dead",
                        _ => "ok",
                    };
                    let next = (state == "pending").then_some(at);
                    run.execute(params![id, state, at, next]).unwrap();
                }
            }
        }
        tx.commit().unwrap();
    }

    /// Every filter's query, as `list` builds it (the same as `examples/store_scale.rs`
    /// times on a million events).
    fn queries(newest: i64) -> Vec<(&'static str, EventQuery)> {
        let at = |id: i64| time_of(1_700_000_000_000 + id * 100);
        vec![
            ("no filter", EventQuery::new()),
            (
                "events build:*",
                EventQuery::new().events(EventFilter::parse("build:*").unwrap()),
            ),
            (
                "events user:*",
                EventQuery::new().events(EventFilter::parse("user:*").unwrap()),
            ),
            ("repo = ", EventQuery::new().repo("org3/repo13")),
            ("repo broad glob", EventQuery::new().repo("org*")),
            ("repo glob", EventQuery::new().repo("org3/repo19?")),
            ("build_status", EventQuery::new().build_status("killed")),
            (
                "run_status dead",
                EventQuery::new().run_status(RunStatus::Dead),
            ),
            (
                "run_status pending",
                EventQuery::new().run_status(RunStatus::Pending),
            ),
            ("since", EventQuery::new().since(at(newest - 50_000))),
            ("until (old)", EventQuery::new().until(at(newest / 10))),
            (
                "since+until",
                EventQuery::new()
                    .since(at(newest / 2))
                    .until(at(newest / 2 + 3000)),
            ),
            ("before (deep page)", EventQuery::new().before(newest / 3)),
            (
                "all together",
                EventQuery::new()
                    .events(EventFilter::parse("build:*").unwrap())
                    .repo("org3/*")
                    .build_status("failure")
                    .run_status(RunStatus::Ok)
                    .since(at(newest / 4))
                    .before(newest - 10),
            ),
        ]
    }

    fn plan(c: &Connection, query: &EventQuery) -> String {
        let Some((sql, args)) = list_sql(c, query).unwrap() else {
            return "nothing can match".into();
        };
        let mut stmt = c.prepare(&format!("EXPLAIN QUERY PLAN {sql}")).unwrap();
        let rows: Vec<String> = stmt
            .query_map(params_from_iter(args), |r| r.get(3))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        rows.join("; ")
    }

    /// Each filter is answered from an index, never by reading the whole table: a
    /// plan that scans `deliveries` (other than in id order, which a page's LIMIT
    /// stops) fails this, so the index cannot silently go.
    #[test]
    fn every_filter_is_served_by_an_index() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        build_store(&path, 10_000);
        let store = SqliteStore::open(&path, true).unwrap();
        let conn = store.conn.lock().unwrap();
        let plans: Vec<(&str, String)> = queries(10_000)
            .into_iter()
            .map(|(name, query)| (name, plan(&conn, &query)))
            .collect();
        println!("{plans:#?}");
        for (name, plan) in plans {
            let uses_index = plan.contains("USING INDEX")
                || plan.contains("USING COVERING INDEX")
                || plan.contains("USING INTEGER PRIMARY KEY");
            let full_scan = plan.split("; ").any(|step| step == "SCAN d");
            match name {
                // In id order from the newest (or from `before`): the LIMIT ends it. A
                // glob matching more than MAX_GLOB_REPOS repositories is broad, and
                // checked on the rows in id order, which meet it soon.
                "no filter" | "repo broad glob" => assert_eq!(plan, "SCAN d", "{name}"),
                "before (deep page)" => {
                    assert!(
                        plan.contains("INTEGER PRIMARY KEY (rowid<?)"),
                        "{name}: {plan}"
                    );
                }
                _ => assert!(uses_index && !full_scan, "{name}: {plan}"),
            }
        }
    }
}
