//! What a tool asks a store ([`EventQuery`]) and what it gets back ([`EventSummary`],
//! [`StoredEvent`], [`StoreStats`], [`Pruned`]): the same for either backend.

use std::fmt;
use std::time::SystemTime;

use dronehook_protocol::{BodyDigest, EventFilter};

use crate::journal::{HandlerRun, RunStatus};

/// The most events one [`EventQuery`] returns.
pub(crate) const MAX_LIMIT: usize = 10_000;

/// Which events [`crate::Store::list`] returns, newest first. Builder-style; every
/// filter set is ANDed with the others, and each is served by an index.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use dronehook_server::{EventQuery, RunStatus};
/// use dronehook_server::protocol::EventFilter;
///
/// let query = EventQuery::new()
///     .events(EventFilter::parse("build:*")?)
///     .repo("octocat/*")
///     .build_status("failure")
///     .run_status(RunStatus::Dead)
///     .since(SystemTime::now() - Duration::from_secs(3600))
///     .limit(20);
/// # let _ = query;
/// # Ok::<(), dronehook_server::protocol::BadPattern>(())
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct EventQuery {
    pub(crate) events: Option<EventFilter>,
    pub(crate) repo: Option<String>,
    pub(crate) build_status: Option<String>,
    pub(crate) run_status: Option<RunStatus>,
    pub(crate) since: Option<SystemTime>,
    pub(crate) until: Option<SystemTime>,
    pub(crate) before: Option<i64>,
    pub(crate) limit: usize,
}

impl Default for EventQuery {
    fn default() -> Self {
        EventQuery {
            events: None,
            repo: None,
            build_status: None,
            run_status: None,
            since: None,
            until: None,
            before: None,
            limit: 50,
        }
    }
}

impl EventQuery {
    /// Every event, the newest 50.
    pub fn new() -> Self {
        EventQuery::default()
    }

    /// Events whose `event:action` the filter passes (`DRONE_WEBHOOK_EVENTS` syntax,
    /// e.g. `build:*,repo:enabled`). An empty filter passes every event.
    pub fn events(mut self, filter: EventFilter) -> Self {
        self.events = (!filter.is_all()).then_some(filter);
        self
    }

    /// Events of the repositories matching `glob` (`namespace/name`; `*` any run of
    /// characters, `/` included, `?` one character; case-sensitive; no other
    /// special characters). Events without a repository never match.
    pub fn repo(mut self, glob: impl Into<String>) -> Self {
        self.repo = Some(glob.into());
        self
    }

    /// Build events whose build had this status (`success`, `failure`, `running`, ...).
    pub fn build_status(mut self, status: impl Into<String>) -> Self {
        self.build_status = Some(status.into());
        self
    }

    /// Events with at least one handler run in this state.
    pub fn run_status(mut self, status: RunStatus) -> Self {
        self.run_status = Some(status);
        self
    }

    /// Events received at or after `t`.
    pub fn since(mut self, t: SystemTime) -> Self {
        self.since = Some(t);
        self
    }

    /// Events received before `t`.
    pub fn until(mut self, t: SystemTime) -> Self {
        self.until = Some(t);
        self
    }

    /// Events with an id below `id`: the next page after one whose last id is `id`.
    pub fn before(mut self, id: i64) -> Self {
        self.before = Some(id);
        self
    }

    /// At most `n` events; `n` is held to 1..=10 000.
    pub fn limit(mut self, n: usize) -> Self {
        self.limit = n.clamp(1, MAX_LIMIT);
        self
    }

    pub(crate) fn effective_limit(&self) -> usize {
        self.limit.clamp(1, MAX_LIMIT)
    }
}

/// One stored event, as a list shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct EventSummary {
    /// The store's id (ids grow with time).
    pub id: i64,
    /// When the receiver accepted it.
    pub received_at: SystemTime,
    /// The event (as sent, also when unknown).
    pub event: String,
    /// The action (as sent, also when unknown).
    pub action: String,
    /// Whether the event and action are ones this dronehook knows.
    pub known: bool,
    /// The repository slug, when the payload has one.
    pub repo: Option<String>,
    /// The build number, when the payload has one.
    pub build: Option<i64>,
    /// The build's status, for build events.
    pub build_status: Option<String>,
    /// Whether [`crate::Store::erase`] removed its payload and headers.
    pub erased: bool,
    /// Its handler runs by name (their `output` is `None` here; [`crate::Store::get`]
    /// has it).
    pub runs: Vec<HandlerRun>,
}

/// One stored event in full: what the receiver accepted, byte for byte.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoredEvent {
    /// The list's view of it; its runs carry their output.
    pub summary: EventSummary,
    /// SHA-256 of the body (kept after erasing).
    pub digest: BodyDigest,
    /// Which configured secret verified it; `None`: the receiver ran with
    /// verification off (or the event predates schema 2).
    pub secret_index: Option<u32>,
    /// The request headers as received, in order; empty when erased.
    pub headers: Vec<(String, Vec<u8>)>,
    /// The exact body; empty when erased.
    pub body: Vec<u8>,
}

/// Headers a `Debug` line may show the value of; the others are redacted (a
/// `Signature`, a proxy's `Authorization`, cookies...).
const SHOWN_HEADERS: &[&str] = &[
    "content-type",
    "content-length",
    "date",
    "x-drone-event",
    "user-agent",
];

impl fmt::Debug for StoredEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let headers: Vec<String> = self
            .headers
            .iter()
            .map(|(name, value)| {
                if SHOWN_HEADERS.iter().any(|h| name.eq_ignore_ascii_case(h)) {
                    format!("{name}: {}", String::from_utf8_lossy(value))
                } else {
                    format!("{name}: ***")
                }
            })
            .collect();
        f.debug_struct("StoredEvent")
            .field("summary", &self.summary)
            .field("digest", &self.digest)
            .field("secret_index", &self.secret_index)
            .field("headers", &headers)
            .field("body_len", &self.body.len())
            .finish()
    }
}

/// Counts over a store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreStats {
    /// Events.
    pub events: u64,
    /// Of those, erased ones.
    pub erased: u64,
    /// Events by `event:action` (`event` when the action is empty), sorted by name.
    pub by_event: Vec<(String, u64)>,
    /// Build events by their build's status, sorted by status.
    pub by_build_status: Vec<(String, u64)>,
    /// Handler runs by state (pending, ok, dead; states with none left out).
    pub by_run_status: Vec<(RunStatus, u64)>,
    /// The oldest event's reception.
    pub oldest: Option<SystemTime>,
    /// The newest event's reception.
    pub newest: Option<SystemTime>,
    /// When the oldest event with a pending run was received (how far behind the
    /// handlers are).
    pub oldest_pending: Option<SystemTime>,
    /// The store's size on disk: SQLite the file and its WAL; PostgreSQL the tables
    /// and their indexes.
    pub size_bytes: Option<u64>,
}

/// What [`crate::Store::prune`] removed (or, dry, would remove).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Pruned {
    /// Events, with their runs.
    pub events: u64,
}

/// `glob` without wildcards: compared with `=`.
pub(crate) fn is_literal(glob: &str) -> bool {
    !glob.contains(['*', '?'])
}

/// A repository glob as an SQLite `GLOB` pattern: `*` and `?` as they are, `[` made
/// literal (SQLite's `GLOB` would read a class).
pub(crate) fn sqlite_glob(glob: &str) -> String {
    glob.replace('[', "[[]")
}

/// A repository glob as a PostgreSQL `LIKE` pattern (escape `\`): `*` to `%`, `?` to
/// `_`, and `%`, `_`, `\` made literal.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) fn pg_like(glob: &str) -> String {
    let mut out = String::with_capacity(glob.len() + 4);
    for c in glob.chars() {
        match c {
            '*' => out.push('%'),
            '?' => out.push('_'),
            '%' | '_' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}

/// Milliseconds since the epoch (0 before it), as both stores keep times.
pub(crate) fn millis(t: SystemTime) -> i64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_become_each_stores_pattern() {
        assert!(is_literal("octocat/hello"));
        assert!(!is_literal("octocat/*"));
        assert!(!is_literal("octo?at/x"));
        assert_eq!(sqlite_glob("a[b]/*"), "a[[]b]/*");
        assert_eq!(pg_like("a_b%c\\d/*?"), "a\\_b\\%c\\\\d/%_");
    }

    #[test]
    fn the_limit_is_held_to_its_range() {
        assert_eq!(EventQuery::new().effective_limit(), 50);
        assert_eq!(EventQuery::new().limit(0).effective_limit(), 1);
        assert_eq!(EventQuery::new().limit(1_000_000).effective_limit(), 10_000);
        assert!(
            EventQuery::new()
                .events(EventFilter::all())
                .events
                .is_none()
        );
    }
}
