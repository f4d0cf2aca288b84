//! [`crate::Store`] on PostgreSQL: a tool's handle (no writer, listener or
//! maintenance of its own) that lists, reads, redelivers, prunes, counts and erases.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use dronehook_protocol::BodyDigest;
use dronehook_protocol::filter::filter_name;
use tokio_postgres::types::ToSql;

use super::{
    BatchStats, CHANNEL, Migration, PRUNE_CHUNK, PostgresStore, READ_VERSION, SCHEMA_VERSION,
    Settings, body_at, decode_headers, describe, run_from_row,
};
use crate::error::{Error, Result};
use crate::journal::{HandlerRun, newer_schema};
use crate::store::query::{
    EventQuery, EventSummary, Pruned, StoreStats, StoredEvent, is_literal, pg_like,
};
use crate::store::sqlite::merge_run_counts;

const SUMMARY_COLUMNS: &str =
    "d.id, d.received_at, d.event, d.action, d.known, d.repo, d.build, d.build_status, d.erased";

/// The runs' columns for [`run_from_row`]; `{output}` is `output` or `NULL::bytea`.
const RUN_COLUMNS: &str = "delivery_id, handler, status, attempts, last_error, duration_ms,
     next_at, updated_at";

type Param = Box<dyn ToSql + Sync + Send>;

fn db(e: &tokio_postgres::Error) -> Error {
    Error::store(describe(e))
}

impl PostgresStore {
    /// A tool's handle: connects, checks the schema (migrating it when read-write);
    /// a database without dronehook's tables is not a store.
    pub(crate) async fn for_tool(url: &str, read_only: bool) -> Result<PostgresStore> {
        let settings = Settings {
            retain: None,
            max_rows: None,
            pool_size: 4,
            background: false,
            read_only,
            ..Settings::default()
        };
        let store = PostgresStore::start(url, settings, BatchStats::default())?;
        let client = store.shared.client().await.map_err(Error::store)?;
        let exists: bool = client
            .query_one("SELECT to_regclass('dronehook_schema') IS NOT NULL", &[])
            .await
            .map_err(|e| db(&e))?
            .get(0);
        let found: i32 = if exists {
            client
                .query_one(
                    "SELECT coalesce(max(version), 0) FROM dronehook_schema",
                    &[],
                )
                .await
                .map_err(|e| db(&e))?
                .get(0)
        } else {
            0
        };
        drop(client);
        let target = store.target().to_owned();
        if found > SCHEMA_VERSION {
            return Err(Error::schema(newer_schema(
                found.into(),
                SCHEMA_VERSION.into(),
            )));
        }
        if found == 0 {
            return Err(Error::not_found(format!(
                "no store at {target}: the database holds no dronehook tables"
            )));
        }
        if read_only {
            if found < READ_VERSION {
                return Err(Error::schema(format!(
                    "the store's schema is version {found}; reading needs version {READ_VERSION}: open it read-write once (or start a receiver on it) to migrate it"
                )));
            }
        } else {
            store.shared.migrate().await.map_err(|e| match e {
                Migration::Newer(m) => Error::schema(m),
                Migration::Failed(m) => Error::store(m),
            })?;
        }
        store.shared.set_available(None);
        Ok(store)
    }

    async fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>> {
        let client = self.shared.client().await.map_err(Error::store)?;
        client.query(sql, params).await.map_err(|e| db(&e))
    }

    /// The distinct `(event, action)` pairs, one index seek each.
    async fn event_pairs(&self) -> Result<Vec<(String, String)>> {
        let client = self.shared.client().await.map_err(Error::store)?;
        let first = client
            .query_opt(
                "SELECT event, action FROM dronehook_deliveries ORDER BY event, action LIMIT 1",
                &[],
            )
            .await
            .map_err(|e| db(&e))?;
        let next = client
            .prepare(
                "SELECT event, action FROM dronehook_deliveries
                 WHERE (event, action) > ($1, $2) ORDER BY event, action LIMIT 1",
            )
            .await
            .map_err(|e| db(&e))?;
        let mut out = Vec::new();
        let mut current: Option<(String, String)> = first.map(|r| (r.get(0), r.get(1)));
        while let Some((e, a)) = current {
            current = client
                .query_opt(&next, &[&e, &a])
                .await
                .map_err(|e| db(&e))?
                .map(|r| (r.get(0), r.get(1)));
            out.push((e, a));
        }
        Ok(out)
    }

    pub(crate) async fn list(&self, query: &EventQuery) -> Result<Vec<EventSummary>> {
        let mut sql = format!("SELECT {SUMMARY_COLUMNS} FROM dronehook_deliveries d WHERE true");
        let mut params: Vec<Param> = Vec::new();
        let mut add = |sql: &mut String, clause: &str, p: Param| {
            params.push(p);
            *sql += &clause.replace('#', &format!("${}", params.len()));
        };
        if let Some(filter) = &query.events {
            let (events, actions): (Vec<String>, Vec<String>) = self
                .event_pairs()
                .await?
                .into_iter()
                .filter(|(e, a)| filter.matches(e, a))
                .unzip();
            if events.is_empty() {
                return Ok(Vec::new());
            }
            add(
                &mut sql,
                " AND (d.event, d.action) IN (SELECT * FROM unnest(#::text[]",
                Box::new(events),
            );
            add(&mut sql, ", #::text[]))", Box::new(actions));
        }
        if let Some(glob) = &query.repo {
            if is_literal(glob) {
                add(&mut sql, " AND d.repo = #", Box::new(glob.clone()));
            } else {
                add(&mut sql, " AND d.repo LIKE #", Box::new(pg_like(glob)));
            }
        }
        if let Some(status) = &query.build_status {
            add(
                &mut sql,
                " AND d.build_status = #",
                Box::new(status.clone()),
            );
        }
        if let Some(status) = query.run_status {
            add(
                &mut sql,
                " AND d.id IN (SELECT delivery_id FROM dronehook_runs WHERE status = #)",
                Box::new(status.as_str().to_owned()),
            );
        }
        if let Some(t) = query.since {
            add(&mut sql, " AND d.received_at >= #", Box::new(t));
        }
        if let Some(t) = query.until {
            add(&mut sql, " AND d.received_at < #", Box::new(t));
        }
        if let Some(id) = query.before {
            add(&mut sql, " AND d.id < #", Box::new(id));
        }
        add(
            &mut sql,
            " ORDER BY d.id DESC LIMIT #",
            Box::new(query.effective_limit() as i64),
        );
        let refs: Vec<&(dyn ToSql + Sync)> =
            params.iter().map(|p| &**p as &(dyn ToSql + Sync)).collect();
        let rows = self.query(&sql, &refs).await?;
        let mut events: Vec<EventSummary> = rows.iter().map(summary_from_row).collect();
        self.attach_runs(&mut events, false).await?;
        Ok(events)
    }

    async fn attach_runs(&self, events: &mut [EventSummary], output: bool) -> Result<()> {
        let ids: Vec<i64> = events.iter().map(|e| e.id).collect();
        let out = if output { "output" } else { "NULL::bytea" };
        let rows = self
            .query(
                &format!(
                    "SELECT {RUN_COLUMNS}, {out} FROM dronehook_runs WHERE delivery_id = ANY($1)
                     ORDER BY delivery_id, handler"
                ),
                &[&ids],
            )
            .await?;
        let mut by_id: HashMap<i64, Vec<HandlerRun>> = HashMap::new();
        for row in &rows {
            let run = run_from_row(row);
            by_id.entry(run.delivery_id).or_default().push(run);
        }
        for event in events {
            event.runs = by_id.remove(&event.id).unwrap_or_default();
        }
        Ok(())
    }

    pub(crate) async fn get(&self, id: i64) -> Result<Option<StoredEvent>> {
        let rows = self
            .query(
                &format!(
                    "SELECT {SUMMARY_COLUMNS}, d.digest, d.secret_index, d.headers, d.body, d.codec
                     FROM dronehook_deliveries d WHERE d.id = $1"
                ),
                &[&id],
            )
            .await?;
        let Some(r) = rows.first() else {
            return Ok(None);
        };
        let digest: &[u8] = r.get(9);
        let headers: &[u8] = r.get(11);
        let mut event = StoredEvent {
            summary: summary_from_row(r),
            digest: BodyDigest::from_bytes(<[u8; 32]>::try_from(digest).unwrap_or([0; 32])),
            secret_index: r
                .get::<_, Option<i32>>(10)
                .and_then(|i| u32::try_from(i).ok()),
            headers: decode_headers(headers),
            body: body_at(r, 12)?,
        };
        self.attach_runs(std::slice::from_mut(&mut event.summary), true)
            .await?;
        Ok(Some(event))
    }

    pub(crate) async fn redeliver(&self, id: i64, handler: Option<&str>) -> Result<Vec<String>> {
        if handler.is_some_and(str::is_empty) {
            return Err(Error::store("an empty handler name"));
        }
        let mut client = self.shared.client().await.map_err(Error::store)?;
        let tx = client.transaction().await.map_err(|e| db(&e))?;
        let erased = tx
            .query_opt(
                "SELECT erased FROM dronehook_deliveries WHERE id = $1 FOR UPDATE",
                &[&id],
            )
            .await
            .map_err(|e| db(&e))?
            .map(|r| r.get::<_, bool>(0));
        match erased {
            None => return Err(Error::not_found(format!("no event {id}"))),
            Some(true) => {
                return Err(Error::store(format!(
                    "event {id} was erased: there is nothing to redeliver"
                )));
            }
            Some(false) => {}
        }
        if let Some(handler) = handler {
            tx.execute(
                "INSERT INTO dronehook_runs (delivery_id, handler, status) VALUES ($1, $2, 'pending')
                 ON CONFLICT DO NOTHING",
                &[&id, &handler],
            )
            .await
            .map_err(|e| db(&e))?;
        }
        // A run under a live lease is only flagged: freed now, another claim would run
        // it beside the attempt in progress. Its holder's `finish` makes it due again.
        // An expired lease goes: its holder no longer records anything.
        let rows = tx
            .query(
                "UPDATE dronehook_runs
                 SET requeue = coalesce(status = 'pending' AND lease_until >= now(), false),
                     status = 'pending',
                     next_at = CASE WHEN status = 'pending' AND lease_until >= now()
                                    THEN next_at ELSE now() END,
                     attempts_base = CASE WHEN status = 'pending' AND lease_until >= now()
                                          THEN attempts_base ELSE attempts END,
                     lease_owner = CASE WHEN status = 'pending' AND lease_until >= now()
                                        THEN lease_owner END,
                     lease_until = CASE WHEN status = 'pending' AND lease_until >= now()
                                        THEN lease_until END,
                     updated_at = now()
                 WHERE delivery_id = $1 AND ($2::text IS NULL OR handler = $2)
                 RETURNING handler",
                &[&id, &handler],
            )
            .await
            .map_err(|e| db(&e))?;
        if !rows.is_empty() {
            tx.batch_execute(&format!("NOTIFY {CHANNEL}"))
                .await
                .map_err(|e| db(&e))?;
        }
        tx.commit().await.map_err(|e| db(&e))?;
        let mut names: Vec<String> = rows.iter().map(|r| r.get(0)).collect();
        names.sort();
        Ok(names)
    }

    pub(crate) async fn prune_older(&self, older_than: Duration, dry_run: bool) -> Result<Pruned> {
        const CHOSEN: &str = "SELECT d.id FROM dronehook_deliveries d
             WHERE d.received_at < now() - $1::float8 * interval '1 millisecond'
               AND NOT EXISTS (SELECT 1 FROM dronehook_runs r
                               WHERE r.delivery_id = d.id AND r.status = 'pending')";
        let age_ms = older_than.as_secs_f64() * 1000.0;
        if dry_run {
            let rows = self
                .query(&format!("SELECT count(*) FROM ({CHOSEN}) AS c"), &[&age_ms])
                .await?;
            let n: i64 = rows.first().map_or(0, |r| r.get(0));
            return Ok(Pruned { events: n as u64 });
        }
        let client = self.shared.client().await.map_err(Error::store)?;
        let delete = client
            .prepare(&format!(
                "DELETE FROM dronehook_deliveries WHERE id IN ({CHOSEN} ORDER BY d.id LIMIT $2)"
            ))
            .await
            .map_err(|e| db(&e))?;
        let mut total = 0;
        loop {
            let n = client
                .execute(&delete, &[&age_ms, &PRUNE_CHUNK])
                .await
                .map_err(|e| db(&e))?;
            total += n;
            if n < PRUNE_CHUNK as u64 {
                return Ok(Pruned { events: total });
            }
        }
    }

    pub(crate) async fn stats(&self, since: Option<SystemTime>) -> Result<StoreStats> {
        const FROM: &str = "d.received_at >= coalesce($1::timestamptz, '-infinity')";
        let mut stats = StoreStats::default();
        let rows = self
            .query(
                &format!(
                    "SELECT count(*), count(*) FILTER (WHERE d.erased), min(d.received_at),
                            max(d.received_at)
                     FROM dronehook_deliveries d WHERE {FROM}"
                ),
                &[&since],
            )
            .await?;
        if let Some(r) = rows.first() {
            stats.events = r.get::<_, i64>(0) as u64;
            stats.erased = r.get::<_, i64>(1) as u64;
            stats.oldest = r.get(2);
            stats.newest = r.get(3);
        }
        let rows = self
            .query(
                &format!(
                    "SELECT d.event, d.action, count(*) FROM dronehook_deliveries d WHERE {FROM}
                     GROUP BY d.event, d.action"
                ),
                &[&since],
            )
            .await?;
        stats.by_event = rows
            .iter()
            .map(|r| (filter_name(r.get(0), r.get(1)), r.get::<_, i64>(2) as u64))
            .collect();
        stats.by_event.sort();
        let rows = self
            .query(
                &format!(
                    "SELECT d.build_status, count(*) FROM dronehook_deliveries d
                     WHERE d.build_status IS NOT NULL AND {FROM}
                     GROUP BY d.build_status ORDER BY d.build_status COLLATE \"C\""
                ),
                &[&since],
            )
            .await?;
        stats.by_build_status = rows
            .iter()
            .map(|r| (r.get(0), r.get::<_, i64>(1) as u64))
            .collect();
        let rows = self
            .query(
                &format!(
                    "SELECT r.status, count(*) FROM dronehook_runs r
                     JOIN dronehook_deliveries d ON d.id = r.delivery_id
                     WHERE $1::timestamptz IS NULL OR {FROM} GROUP BY r.status"
                ),
                &[&since],
            )
            .await?;
        stats.by_run_status = merge_run_counts(
            rows.iter()
                .map(|r| (r.get::<_, String>(0), r.get::<_, i64>(1)))
                .collect(),
        );
        let rows = self
            .query(
                &format!(
                    "SELECT min(d.received_at) FROM dronehook_deliveries d
                     WHERE d.id IN (SELECT delivery_id FROM dronehook_runs WHERE status = 'pending')
                       AND {FROM}"
                ),
                &[&since],
            )
            .await?;
        stats.oldest_pending = rows.first().and_then(|r| r.get(0));
        let rows = self
            .query(
                "SELECT sum(pg_total_relation_size(t))::int8 FROM unnest(ARRAY[
                     'dronehook_deliveries', 'dronehook_runs',
                     'dronehook_schema']::regclass[]) AS t",
                &[],
            )
            .await?;
        stats.size_bytes = rows
            .first()
            .and_then(|r| r.get::<_, Option<i64>>(0))
            .map(|n| n.max(0) as u64);
        Ok(stats)
    }

    pub(crate) async fn erase(&self, id: i64) -> Result<bool> {
        let mut client = self.shared.client().await.map_err(Error::store)?;
        let tx = client.transaction().await.map_err(|e| db(&e))?;
        let erased = tx
            .query_opt(
                "SELECT erased FROM dronehook_deliveries WHERE id = $1 FOR UPDATE",
                &[&id],
            )
            .await
            .map_err(|e| db(&e))?
            .map(|r| r.get::<_, bool>(0));
        match erased {
            None => return Err(Error::not_found(format!("no event {id}"))),
            Some(true) => return Ok(false),
            Some(false) => {}
        }
        tx.execute(
            "UPDATE dronehook_deliveries SET headers = '', body = '', codec = 0, erased = true
             WHERE id = $1",
            &[&id],
        )
        .await
        .map_err(|e| db(&e))?;
        tx.execute(
            "UPDATE dronehook_runs SET output = NULL WHERE delivery_id = $1",
            &[&id],
        )
        .await
        .map_err(|e| db(&e))?;
        tx.commit().await.map_err(|e| db(&e))?;
        Ok(true)
    }

    pub(crate) async fn latest_builds(&self, limit: usize) -> Result<Vec<StoredEvent>> {
        let rows = self
            .query(
                "SELECT max(id) FROM dronehook_deliveries
                 WHERE event = 'build' AND NOT erased AND repo IS NOT NULL
                 GROUP BY repo ORDER BY 1 DESC LIMIT $1",
                &[&i64::try_from(limit).unwrap_or(i64::MAX)],
            )
            .await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            if let Some(event) = self.get(row.get(0)).await? {
                out.push(event);
            }
        }
        Ok(out)
    }
}

fn summary_from_row(r: &tokio_postgres::Row) -> EventSummary {
    EventSummary {
        id: r.get(0),
        received_at: r.get(1),
        event: r.get(2),
        action: r.get(3),
        known: r.get(4),
        repo: r.get(5),
        build: r.get(6),
        build_status: r.get(7),
        erased: r.get(8),
        runs: Vec::new(),
    }
}
