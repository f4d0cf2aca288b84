//! [`Store`]: a store opened by a tool (the CLI's `dronehook events`, the inspector)
//! beside running receivers, over either backend.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::StoreUrl;
use super::query::{EventQuery, EventSummary, Pruned, StoreStats, StoredEvent};
use super::sqlite::SqliteStore;
use crate::error::{Error, Result};

/// A store opened by a tool, beside running receivers: lists, reads, redelivers,
/// prunes, counts and erases what receivers accepted. Cloning shares it.
///
/// Either backend answers the same way. SQLite: the journal file a receiver writes
/// (WAL mode lets this read and write beside it). PostgreSQL (the `postgres`
/// feature): the database receivers share.
///
/// `Debug` shows the store's URL with its password redacted.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// use dronehook_server::{EventQuery, Store, StoreUrl};
///
/// let url: StoreUrl = "sqlite:/nonexistent/journal.db".parse().unwrap();
/// // A tool never creates a store.
/// let err = Store::open(&url).await.unwrap_err();
/// assert!(err.is_not_found());
/// assert_eq!(err.to_string(), "no store at /nonexistent/journal.db");
/// # let _ = EventQuery::new();
/// # }
/// ```
#[derive(Clone)]
pub struct Store {
    url: StoreUrl,
    backend: Backend,
}

#[derive(Clone)]
enum Backend {
    Sqlite(Arc<SqliteStore>),
    #[cfg(feature = "postgres")]
    Postgres(super::postgres::PostgresStore, bool),
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Store({})", self.url)
    }
}

impl Store {
    /// Opens a store to read and change it. An older schema is migrated.
    ///
    /// Errors (one line each): a SQLite path that does not exist, or a file that
    /// holds no journal, is [`Error::is_not_found`] (`no store at PATH`: a tool never
    /// creates a store); a schema newer than this build is [`Error::is_schema`]
    /// (`the store's schema is version N; this dronehook knows up to M: upgrade
    /// dronehook`); an unreachable database or unreadable file is [`Error::is_store`].
    pub async fn open(url: &StoreUrl) -> Result<Store> {
        Store::open_with(url, false).await
    }

    /// Opens a store without ever writing to it: SQLite opens the file read-only,
    /// PostgreSQL's session is read-only. The methods that change the store then fail
    /// with [`Error::is_read_only`]. A schema older than this build reads is
    /// [`Error::is_schema`] (open it read-write once to migrate it).
    pub async fn open_read_only(url: &StoreUrl) -> Result<Store> {
        Store::open_with(url, true).await
    }

    async fn open_with(url: &StoreUrl, read_only: bool) -> Result<Store> {
        let backend = match url {
            StoreUrl::Sqlite(path) => {
                let path = path.clone();
                let store = blocking(move || SqliteStore::open(&path, read_only)).await?;
                Backend::Sqlite(Arc::new(store))
            }
            #[cfg(feature = "postgres")]
            StoreUrl::Postgres(pg) => Backend::Postgres(
                super::postgres::PostgresStore::for_tool(pg, read_only).await?,
                read_only,
            ),
            #[cfg(not(feature = "postgres"))]
            StoreUrl::Postgres(_) => {
                return Err(Error::config(
                    "this dronehook was built without PostgreSQL support (the `postgres` cargo feature)",
                ));
            }
        };
        Ok(Store {
            url: url.clone(),
            backend,
        })
    }

    /// The store's URL (its `Display` hides a password).
    pub fn url(&self) -> &StoreUrl {
        &self.url
    }

    /// Whether this handle was opened with [`Store::open_read_only`].
    pub fn is_read_only(&self) -> bool {
        match &self.backend {
            Backend::Sqlite(s) => s.is_read_only(),
            #[cfg(feature = "postgres")]
            Backend::Postgres(_, read_only) => *read_only,
        }
    }

    /// The events `query` selects, newest first (id descending), with their runs.
    /// The next page: `query.before(last.id)`.
    ///
    /// Each filter is served by an index: on a 1,000,000-event SQLite journal a page
    /// of 50 took 0.2 to 15 ms, whatever the filters (docs/server.md, "Reading the
    /// store"; `examples/store_scale.rs` measures it).
    pub async fn list(&self, query: &EventQuery) -> Result<Vec<EventSummary>> {
        match &self.backend {
            Backend::Sqlite(s) => {
                let (s, query) = (s.clone(), query.clone());
                blocking(move || s.list(&query)).await
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(p, _) => p.list(query).await,
        }
    }

    /// One event in full (headers, body, runs with their output); `None` when there is
    /// no event with this id.
    pub async fn get(&self, id: i64) -> Result<Option<StoredEvent>> {
        match &self.backend {
            Backend::Sqlite(s) => {
                let s = s.clone();
                blocking(move || s.get(id)).await
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(p, _) => p.get(id).await,
        }
    }

    /// Queues an event's handler runs again: every run it has (`handler` `None`), or
    /// the one named (created when the event has no run of that name). Each run is
    /// pending, due now, with a fresh set of attempts (attempt numbers keep counting
    /// up). Running receivers pick them up within about a second (SQLite: their
    /// poller; PostgreSQL: a notification). Returns the handler names queued, sorted.
    ///
    /// Errors: no such event, [`Error::is_not_found`]; an erased event (there is
    /// nothing to deliver) or an empty handler name, [`Error::is_store`]; a read-only
    /// handle, [`Error::is_read_only`].
    pub async fn redeliver(&self, id: i64, handler: Option<&str>) -> Result<Vec<String>> {
        match &self.backend {
            Backend::Sqlite(s) => {
                let s = s.clone();
                let handler = handler.map(str::to_owned);
                blocking(move || s.redeliver(id, handler.as_deref())).await
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(p, read_only) => {
                if *read_only {
                    return Err(read_only_error(&self.url));
                }
                p.redeliver(id, handler).await
            }
        }
    }

    /// Removes the events received more than `older_than` ago whose runs are all
    /// finished (ok or dead), with their runs; `dry_run` only counts them (allowed on
    /// a read-only handle).
    pub async fn prune(&self, older_than: Duration, dry_run: bool) -> Result<Pruned> {
        match &self.backend {
            Backend::Sqlite(s) => {
                let s = s.clone();
                blocking(move || s.prune(older_than, dry_run)).await
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(p, read_only) => {
                if *read_only && !dry_run {
                    return Err(read_only_error(&self.url));
                }
                p.prune_older(older_than, dry_run).await
            }
        }
    }

    /// Counts over the events received at or after `since` (`None`: all of them).
    pub async fn stats(&self, since: Option<SystemTime>) -> Result<StoreStats> {
        match &self.backend {
            Backend::Sqlite(s) => {
                let s = s.clone();
                blocking(move || s.stats(since)).await
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(p, _) => p.stats(since).await,
        }
    }

    /// Removes an event's payload, headers and run output for good; keeps its id,
    /// reception time, digest (so a copy is still recognised as a replay), event,
    /// action, repository, build, build status and run states. `Ok(false)` when it was
    /// already erased. Errors: no such event, [`Error::is_not_found`]; a read-only
    /// handle, [`Error::is_read_only`].
    pub async fn erase(&self, id: i64) -> Result<bool> {
        match &self.backend {
            Backend::Sqlite(s) => {
                let s = s.clone();
                blocking(move || s.erase(id)).await
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(p, read_only) => {
                if *read_only {
                    return Err(read_only_error(&self.url));
                }
                p.erase(id).await
            }
        }
    }

    /// Per repository, its newest `build` event that is not erased, newest first, at
    /// most `limit` of them (a board of builds).
    pub async fn latest_builds(&self, limit: usize) -> Result<Vec<StoredEvent>> {
        match &self.backend {
            Backend::Sqlite(s) => {
                let s = s.clone();
                blocking(move || s.latest_builds(limit)).await
            }
            #[cfg(feature = "postgres")]
            Backend::Postgres(p, _) => p.latest_builds(limit).await,
        }
    }
}

#[cfg(feature = "postgres")]
fn read_only_error(url: &StoreUrl) -> Error {
    Error::read_only(format!("{url} was opened read-only: nothing is changed"))
}

/// Runs SQLite work off the async threads.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|_| Err(Error::store("a store task stopped unexpectedly")))
}
