//! The store, as the pages read it: `dronehook_server::Store` turned into the pages'
//! views, and the actions (redeliver, redrive, replay). Errors are one line.

use std::time::{Duration, SystemTime};

use dronehook_client::{Client, Payload};
use dronehook_protocol::Secret;
use dronehook_server::{EventQuery, EventSummary, HandlerRun, RunStatus, Store, StoreUrl};
use serde_json::Value;

use crate::format;
use crate::live::{Accepted, Filters};
use crate::pages::{BuildView, DetailView, HealthView, RunView, Window};

/// Events per page of the live list.
pub(crate) const PAGE: usize = 50;

/// At most this many runs on the failed page (and redriven by one "all").
const FAILED_MAX: usize = 500;

/// At most this many repositories on the builds board.
const BOARD_MAX: usize = 200;

#[derive(Clone)]
pub(crate) struct Data {
    store: Store,
}

fn one_line(e: impl std::fmt::Display) -> String {
    e.to_string().lines().next().unwrap_or_default().to_owned()
}

impl Data {
    /// Opens the store read-write, or read-only when that fails for another reason
    /// than a missing store (a file without write permission, a read-only replica):
    /// the pages work, the actions are off. `read_only`: never try to write.
    pub(crate) async fn open(url: &StoreUrl, read_only: bool) -> Result<Data, String> {
        if read_only {
            return Store::open_read_only(url)
                .await
                .map(|store| Data { store })
                .map_err(one_line);
        }
        match Store::open(url).await {
            Ok(store) => Ok(Data { store }),
            Err(e) if e.is_not_found() => Err(one_line(e)),
            Err(first) => match Store::open_read_only(url).await {
                Ok(store) => {
                    tracing::warn!(error = %first, "inspector: the store is read-only here; actions are off");
                    Ok(Data { store })
                }
                Err(_) => Err(one_line(first)),
            },
        }
    }

    pub(crate) fn writable(&self) -> bool {
        !self.store.is_read_only()
    }

    /// The store's name without a password.
    pub(crate) fn name(&self) -> String {
        match self.store.url() {
            StoreUrl::Sqlite(path) => path.display().to_string(),
            other => other.to_string(),
        }
    }

    /// Completes a live row from the store (build status, runs). The event's summary
    /// alone is read (the list's query, one row), not its body and headers.
    pub(crate) async fn complete(&self, id: i64, row: &mut Accepted) {
        if let Some(summary) = self.summary(id).await {
            row.status.clone_from(&summary.build_status);
            row.runs = runs_of(&summary.runs);
        }
    }

    /// A stored event's runs as the live list shows them (`handler state, ...`).
    pub(crate) async fn runs_text(&self, id: i64) -> Option<String> {
        Some(row_of(&self.summary(id).await?).runs_text())
    }

    async fn summary(&self, id: i64) -> Option<EventSummary> {
        let query = EventQuery::new().before(id.saturating_add(1)).limit(1);
        let rows = self.store.list(&query).await.ok()?;
        rows.into_iter().find(|s| s.id == id)
    }

    fn query(filters: &Filters) -> Result<EventQuery, String> {
        let mut q = EventQuery::new();
        if let Some(f) = &filters.event {
            q = q.events(f.clone());
        }
        if !filters.repo.is_empty() {
            q = q.repo(filters.repo.clone());
        }
        if !filters.status.is_empty() {
            q = q.build_status(filters.status.clone());
        }
        if !filters.state.is_empty() {
            q = q.run_status(filters.state.parse::<RunStatus>().map_err(one_line)?);
        }
        Ok(q)
    }

    pub(crate) async fn list(
        &self,
        filters: &Filters,
        before: Option<i64>,
    ) -> Result<Vec<Accepted>, String> {
        let mut q = Self::query(filters)?.limit(PAGE);
        if let Some(b) = before {
            q = q.before(b);
        }
        let rows = self.store.list(&q).await.map_err(one_line)?;
        Ok(rows.iter().map(row_of).collect())
    }

    pub(crate) async fn detail(&self, id: i64) -> Result<Option<DetailView>, String> {
        let Some(stored) = self.store.get(id).await.map_err(one_line)? else {
            return Ok(None);
        };
        let verification = match stored.secret_index {
            Some(i) => format!(
                "Verified: signature, Digest and Date checked with the receiver's secret #{} (counting the configured secrets from 1).",
                i + 1
            ),
            None => "Not verified: the receiver ran with verification off (--insecure-no-verify)."
                .to_owned(),
        };
        let payload = serde_json::from_slice::<Value>(&stored.body).ok();
        let runs = stored
            .summary
            .runs
            .iter()
            .map(|r| run_view(r, &stored.summary))
            .collect();
        Ok(Some(DetailView {
            row: row_of(&stored.summary),
            erased: stored.summary.erased,
            headers: stored
                .headers
                .iter()
                .map(|(n, v)| (n.clone(), format::header_value(n, v)))
                .collect(),
            verification,
            digest: format!("SHA-256 {}", stored.digest.to_hex()),
            size: stored.body.len(),
            payload,
            runs,
        }))
    }

    pub(crate) async fn raw(&self, id: i64) -> Result<Option<Vec<u8>>, String> {
        Ok(self.store.get(id).await.map_err(one_line)?.map(|s| s.body))
    }

    pub(crate) async fn builds(&self, drone: Option<&str>) -> Result<Vec<BuildView>, String> {
        let latest = self
            .store
            .latest_builds(BOARD_MAX)
            .await
            .map_err(one_line)?;
        Ok(latest
            .iter()
            .map(|stored| {
                let body: Value = serde_json::from_slice(&stored.body).unwrap_or(Value::Null);
                let build = &body["build"];
                let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
                let repo = stored.summary.repo.clone().unwrap_or_default();
                let number = build["number"].as_i64().or(stored.summary.build);
                let (started, finished) = (build["started"].as_i64(), build["finished"].as_i64());
                let duration = match (started, finished) {
                    (Some(s), Some(f)) if s > 0 && f >= s => {
                        Some(Duration::from_secs((f - s) as u64))
                    }
                    _ => None,
                };
                let author = match text(&build["author_login"]) {
                    a if a.is_empty() => text(&build["author_name"]),
                    a => a,
                };
                // Drone's own page for the build: the configured address, else the
                // one the payload's `system.link` names.
                let system = text(&body["system"]["link"]);
                let drone = drone.map(str::to_owned).or_else(|| {
                    // Only a web address becomes a link (never `javascript:` and the like).
                    Some(system.trim_end_matches('/').to_owned())
                        .filter(|l| l.starts_with("https://") || l.starts_with("http://"))
                });
                let link = match (drone, number) {
                    (Some(d), Some(n)) if !repo.is_empty() => Some(format!("{d}/{repo}/{n}")),
                    _ => None,
                };
                BuildView {
                    event_id: stored.summary.id,
                    repo,
                    number,
                    status: stored
                        .summary
                        .build_status
                        .clone()
                        .unwrap_or_else(|| text(&build["status"])),
                    branch: text(&build["target"]),
                    author,
                    duration,
                    link,
                }
            })
            .collect())
    }

    /// Runs that failed at least once and wait (pending) or gave up (dead), newest
    /// event first.
    pub(crate) async fn failed(&self, filters: &Filters) -> Result<Vec<RunView>, String> {
        let states: &[RunStatus] = match filters.state.as_str() {
            "pending" => &[RunStatus::Pending],
            "dead" => &[RunStatus::Dead],
            // A run that succeeded is not a failed one.
            "ok" => &[],
            _ => &[RunStatus::Pending, RunStatus::Dead],
        };
        let mut base = filters.clone();
        base.state.clear();
        let mut out = Vec::new();
        for state in states {
            let q = Self::query(&base)?.run_status(*state).limit(FAILED_MAX);
            for summary in self.store.list(&q).await.map_err(one_line)? {
                for run in &summary.runs {
                    let failed = run.status == *state
                        && (run.status == RunStatus::Dead
                            || (run.attempts > 0 && run.last_error.is_some()));
                    if failed {
                        out.push(run_view(run, &summary));
                    }
                }
            }
        }
        out.sort_by(|a, b| b.event_id.cmp(&a.event_id).then(a.handler.cmp(&b.handler)));
        out.truncate(FAILED_MAX);
        Ok(out)
    }

    pub(crate) async fn health(&self) -> Result<HealthView, String> {
        let now = SystemTime::now();
        let window = |stats: &dronehook_server::StoreStats| {
            let count = |s: RunStatus| {
                stats
                    .by_run_status
                    .iter()
                    .filter(|(st, _)| *st == s)
                    .map(|(_, n)| *n)
                    .sum()
            };
            Window {
                events: stats.events,
                ok: count(RunStatus::Ok),
                pending: count(RunStatus::Pending),
                dead: count(RunStatus::Dead),
            }
        };
        let hour = self
            .store
            .stats(now.checked_sub(Duration::from_secs(3600)))
            .await
            .map_err(one_line)?;
        let day = self
            .store
            .stats(now.checked_sub(Duration::from_secs(86_400)))
            .await
            .map_err(one_line)?;
        let all = self.store.stats(None).await.map_err(one_line)?;
        Ok(HealthView {
            hour: window(&hour),
            day: window(&day),
            all: window(&all),
            erased: all.erased,
            size_bytes: all.size_bytes,
            retention: None,
            oldest: all.oldest,
            oldest_pending: all.oldest_pending,
            refusals_kept: 0,
            store: self.name(),
        })
    }

    /// Whether the event was erased, and its runs' handler names (`None`: no such
    /// event).
    pub(crate) async fn runs(&self, id: i64) -> Result<Option<(bool, Vec<String>)>, String> {
        let query = EventQuery::new().before(id.saturating_add(1)).limit(1);
        let rows = self.store.list(&query).await.map_err(one_line)?;
        Ok(rows
            .iter()
            .find(|s| s.id == id)
            .map(|s| (s.erased, s.runs.iter().map(|r| r.handler.clone()).collect())))
    }

    /// Queues the event's runs (or the one named) again. `None`: no such event.
    pub(crate) async fn redeliver(
        &self,
        id: i64,
        handler: Option<&str>,
    ) -> Result<Option<Vec<String>>, String> {
        match self.store.redeliver(id, handler).await {
            Ok(names) => Ok(Some(names)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) => Err(one_line(e)),
        }
    }

    /// Redrives every failed or dead run the filters match (at most [`FAILED_MAX`]).
    pub(crate) async fn redrive_all(&self, filters: &Filters) -> Result<usize, String> {
        let mut n = 0;
        for run in self.failed(filters).await? {
            if self
                .redeliver(run.event_id, Some(&run.handler))
                .await?
                .is_some()
            {
                n += 1;
            }
        }
        Ok(n)
    }

    /// Sends the event's exact bytes to `endpoint`, signed anew with `secret` (a fresh
    /// Date and signature; one attempt). `None`: no such event.
    pub(crate) async fn replay(
        &self,
        id: i64,
        endpoint: &str,
        secret: &Secret,
    ) -> Result<Option<Vec<String>>, String> {
        if endpoint.is_empty() {
            return Err("endpoint: give the URL to send the event to".to_owned());
        }
        let Some(stored) = self.store.get(id).await.map_err(one_line)? else {
            return Ok(None);
        };
        if stored.summary.erased {
            return Err("the event was erased: there is nothing to replay".to_owned());
        }
        let event = stored
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("x-drone-event"))
            .map_or_else(
                || stored.summary.event.clone(),
                |(_, v)| String::from_utf8_lossy(v).into_owned(),
            );
        let client = Client::builder()
            .secret(secret.clone())
            .endpoint(endpoint)
            .attempts(1)
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| format!("endpoint: {}", one_line(e)))?;
        let report = client.send(Payload::captured(stored.body, event)).await;
        // The status line only, never the response body nor an error that holds it:
        // the endpoint is typed by whoever uses the inspector, and the answer of an
        // internal service must not be read through it.
        Ok(Some(
            report
                .endpoints
                .iter()
                .map(|e| match (e.status, &e.error) {
                    (Some(s), _) => format!("{}: answered {s}", e.endpoint),
                    (None, Some(err)) if !err.is_status() => {
                        format!("{}: failed: {}", e.endpoint, one_line(err))
                    }
                    (None, _) => format!("{}: no answer", e.endpoint),
                })
                .collect(),
        ))
    }
}

fn runs_of(runs: &[HandlerRun]) -> Vec<(String, String)> {
    runs.iter()
        .map(|r| (r.handler.clone(), r.status.as_str().to_owned()))
        .collect()
}

fn row_of(s: &EventSummary) -> Accepted {
    Accepted {
        id: Some(s.id),
        received: s.received_at,
        event: s.event.clone(),
        action: s.action.clone(),
        repo: s.repo.clone(),
        build: s.build,
        status: s.build_status.clone(),
        runs: runs_of(&s.runs),
        code: if s.known { "ok" } else { "unknown_event" },
    }
}

fn run_view(r: &HandlerRun, s: &EventSummary) -> RunView {
    RunView {
        event_id: s.id,
        handler: r.handler.clone(),
        status: r.status.as_str().to_owned(),
        attempts: r.attempts,
        duration: r.last_duration,
        next_at: r.next_at.filter(|_| r.status == RunStatus::Pending),
        updated_at: r.updated_at,
        error: r.last_error.clone(),
        output: r
            .output
            .as_ref()
            .map(|o| String::from_utf8_lossy(o).into_owned()),
        event: format!("{}:{}", s.event, s.action),
        repo: s.repo.clone().unwrap_or_default(),
    }
}
