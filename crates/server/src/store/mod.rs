//! Where a receiver keeps what it acknowledged: the embedded SQLite journal, or (with
//! the `postgres` feature) a PostgreSQL database that several receivers share.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

mod handle;
#[cfg(feature = "postgres")]
pub(crate) mod postgres;
pub(crate) mod query;
mod sqlite;

pub use handle::Store;
pub use query::{EventQuery, EventSummary, Pruned, StoreStats, StoredEvent};

use std::sync::Arc;
use std::time::Duration;

use crate::config::Config;
use crate::error::Result;
use crate::handler::Router;
use crate::journal::{Inserted, NewEntry};
use crate::metrics::Metrics;

/// A server's shared store (PostgreSQL) and the runner claiming its handler runs.
#[cfg(feature = "postgres")]
#[derive(Debug)]
pub(crate) struct SharedStore {
    store: postgres::PostgresStore,
    runner: postgres::runner::Runner,
}

/// Without the `postgres` feature there is no shared store: this has no values.
#[cfg(not(feature = "postgres"))]
#[derive(Debug)]
pub(crate) enum SharedStore {}

impl SharedStore {
    /// Opens the store `url` names for a server and starts claiming handler runs.
    #[cfg(feature = "postgres")]
    pub(crate) async fn open(
        url: &str,
        config: &Config,
        router: Arc<Router>,
        metrics: &Metrics,
    ) -> Result<SharedStore> {
        let settings = postgres::Settings {
            dedupe_window: config.replay_window(),
            retain: config.retain,
            max_rows: config.max_rows,
            maintenance_every: config.prune_interval,
            ..postgres::Settings::default()
        };
        let store =
            postgres::PostgresStore::for_server(url, settings, metrics.batches.clone()).await?;
        let runner = postgres::runner::Runner::start(
            store.clone(),
            router,
            metrics.clone(),
            postgres::runner::RunnerSettings {
                workers: config.workers,
                max_attempts: config.max_attempts,
                retry_base: config.retry_base,
                retry_max: config.retry_max,
                lease: config.lease,
            },
        );
        Ok(SharedStore { store, runner })
    }

    /// Without the `postgres` feature, a PostgreSQL store is refused.
    #[cfg(not(feature = "postgres"))]
    #[allow(clippy::unused_async)]
    pub(crate) async fn open(
        _url: &str,
        _config: &Config,
        _router: Arc<Router>,
        _metrics: &Metrics,
    ) -> Result<SharedStore> {
        Err(crate::error::Error::config(
            "this dronehook was built without PostgreSQL support (the `postgres` cargo feature)",
        ))
    }

    /// Commits a request; the answer waits for this.
    #[cfg_attr(not(feature = "postgres"), allow(clippy::unused_async))]
    pub(crate) async fn insert(
        &self,
        entry: NewEntry,
    ) -> std::result::Result<(Inserted, Duration), String> {
        #[cfg(feature = "postgres")]
        {
            self.store.insert(entry).await
        }
        #[cfg(not(feature = "postgres"))]
        {
            let _ = entry;
            match *self {}
        }
    }

    /// Why the store cannot be used right now (one line), or `None` when it can.
    pub(crate) fn unavailable_reason(&self) -> Option<String> {
        #[cfg(feature = "postgres")]
        {
            self.store.unavailable_reason()
        }
        #[cfg(not(feature = "postgres"))]
        {
            match *self {}
        }
    }

    /// Stops claiming handler runs and waits up to `grace` for those under way.
    #[cfg_attr(not(feature = "postgres"), allow(clippy::unused_async))]
    pub(crate) async fn stop(&self, grace: Duration) {
        #[cfg(feature = "postgres")]
        {
            self.runner.stop(grace).await;
        }
        #[cfg(not(feature = "postgres"))]
        {
            let _ = grace;
            match *self {}
        }
    }
}

/// A store, as named on a command line or in `DRONEHOOK_STORE`:
/// `sqlite:PATH`, a bare path (SQLite), or `postgres://...` (`postgresql://...`).
///
/// `Display` and `Debug` never show a password in a URL.
///
/// ```
/// use dronehook_server::StoreUrl;
///
/// let store: StoreUrl = "postgres://hook:s3cr3t@db:5432/hooks".parse()?;
/// assert_eq!(store.to_string(), "postgres://hook:***@db:5432/hooks");
/// assert_eq!("sqlite:journal.db".parse::<StoreUrl>()?, StoreUrl::Sqlite("journal.db".into()));
/// assert_eq!("journal.db".parse::<StoreUrl>()?, StoreUrl::Sqlite("journal.db".into()));
/// # Ok::<(), dronehook_server::BadStoreUrl>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoreUrl {
    /// The embedded SQLite journal in this file.
    Sqlite(PathBuf),
    /// A PostgreSQL database, by its connection URL (needs the `postgres` feature).
    Postgres(String),
}

/// Why a store name was refused (one line, without the name's password).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadStoreUrl(String);

impl fmt::Display for BadStoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadStoreUrl {}

impl FromStr for StoreUrl {
    type Err = BadStoreUrl;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.is_empty() {
            return Err(BadStoreUrl(
                "an empty store: give sqlite:PATH, a path, or postgres://...".into(),
            ));
        }
        if let Some(path) = s.strip_prefix("sqlite:") {
            // `sqlite://PATH` is a common spelling of the same thing.
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(BadStoreUrl("sqlite: needs a path (sqlite:PATH)".into()));
            }
            return Ok(StoreUrl::Sqlite(path.into()));
        }
        if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            return Ok(StoreUrl::Postgres(s.to_owned()));
        }
        // A libpq `key=value` string (`host=h password=x`) is not a path: refused
        // without being echoed, since it may hold a password.
        if s.contains('=') && s.contains(' ') {
            return Err(BadStoreUrl(
                "a key=value connection string is not supported: give postgres://... (the string is not shown: it may hold a password)".into(),
            ));
        }
        if let Some((scheme, _)) = s.split_once("://") {
            return Err(BadStoreUrl(format!(
                "unknown store scheme `{scheme}`: give sqlite:PATH, a path, or postgres://..."
            )));
        }
        Ok(StoreUrl::Sqlite(s.into()))
    }
}

/// `url` with its passwords shown as `***`: the user part's, and the `password` and
/// `sslpassword` query parameters (tokio-postgres takes any option there).
fn redacted(url: &str) -> String {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return url.to_owned();
    };
    let rest = &url[start..];
    // The user part ends at the last `@` before the path: an unencoded password may
    // hold `@`, `:` or `?`, so only `/` ends the search.
    let authority_end = rest.find('/').unwrap_or(rest.len());
    let (head, tail) = match rest[..authority_end].rfind('@') {
        Some(at) => match rest[..at].find(':') {
            Some(colon) => (
                format!("{}{}:***", &url[..start], &rest[..colon]),
                &rest[at..],
            ),
            None => (url[..start + at].to_owned(), &rest[at..]),
        },
        None => (url[..start].to_owned(), rest),
    };
    let Some((before, query)) = tail.split_once('?') else {
        return head + tail;
    };
    let query: Vec<String> = query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _))
                if key.eq_ignore_ascii_case("password")
                    || key.eq_ignore_ascii_case("sslpassword") =>
            {
                format!("{key}=***")
            }
            _ => pair.to_owned(),
        })
        .collect();
    format!("{head}{before}?{}", query.join("&"))
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreUrl::Sqlite(path) => write!(f, "sqlite:{}", path.display()),
            StoreUrl::Postgres(url) => f.write_str(&redacted(url)),
        }
    }
}

impl fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreUrl({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<StoreUrl, String> {
        s.parse::<StoreUrl>().map_err(|e| e.to_string())
    }

    #[test]
    fn each_spelling_names_its_store() {
        let sqlite = |p: &str| Ok(StoreUrl::Sqlite(p.into()));
        assert_eq!(parse("sqlite:j.db"), sqlite("j.db"));
        assert_eq!(parse("sqlite:///var/lib/j.db"), sqlite("/var/lib/j.db"));
        assert_eq!(parse("/var/lib/j.db"), sqlite("/var/lib/j.db"));
        assert_eq!(parse("./j.db"), sqlite("./j.db"));
        assert_eq!(
            parse("postgres://h/db"),
            Ok(StoreUrl::Postgres("postgres://h/db".into()))
        );
        assert_eq!(
            parse("postgresql://u@h:5433/db?connect_timeout=3"),
            Ok(StoreUrl::Postgres(
                "postgresql://u@h:5433/db?connect_timeout=3".into()
            ))
        );
    }

    #[test]
    fn a_bad_name_is_refused_with_one_line() {
        assert_eq!(
            parse(""),
            Err("an empty store: give sqlite:PATH, a path, or postgres://...".into())
        );
        assert_eq!(
            parse("sqlite:"),
            Err("sqlite: needs a path (sqlite:PATH)".into())
        );
        assert_eq!(
            parse("mysql://u:p@h/db"),
            Err("unknown store scheme `mysql`: give sqlite:PATH, a path, or postgres://...".into())
        );
    }

    #[test]
    fn a_password_is_never_shown() {
        let url: StoreUrl = "postgres://hook:s3cr3t@db:5432/hooks?sslmode=disable"
            .parse()
            .unwrap();
        assert_eq!(
            url.to_string(),
            "postgres://hook:***@db:5432/hooks?sslmode=disable"
        );
        assert_eq!(
            format!("{url:?}"),
            "StoreUrl(postgres://hook:***@db:5432/hooks?sslmode=disable)"
        );
        // A password holding `@` or `:` is hidden whole.
        let url: StoreUrl = "postgres://u:p@ss:w@h/db".parse().unwrap();
        assert_eq!(url.to_string(), "postgres://u:***@h/db");
        let plain: StoreUrl = "postgres://u@h/db".parse().unwrap();
        assert_eq!(plain.to_string(), "postgres://u@h/db");
        assert_eq!(StoreUrl::Sqlite("j.db".into()).to_string(), "sqlite:j.db");
        // Passwords given as query parameters, and one holding `?`.
        let url: StoreUrl =
            "postgres://u@h/db?sslmode=require&password=s3cret&PASSWORD=x&sslpassword=k"
                .parse()
                .unwrap();
        assert_eq!(
            url.to_string(),
            "postgres://u@h/db?sslmode=require&password=***&PASSWORD=***&sslpassword=***"
        );
        let url: StoreUrl = "postgres://u:p?ss@h/db".parse().unwrap();
        assert_eq!(url.to_string(), "postgres://u:***@h/db");
        let url: StoreUrl = "postgres://h?password=s3cret".parse().unwrap();
        assert_eq!(url.to_string(), "postgres://h?password=***");
    }

    #[test]
    fn a_key_value_string_is_refused_without_being_shown() {
        let e = parse("host=h user=u password=s3cret dbname=hooks").unwrap_err();
        assert_eq!(
            e,
            "a key=value connection string is not supported: give postgres://... (the string is not shown: it may hold a password)"
        );
        assert!(!e.contains("s3cret"));
        // A path with a space or an `=` alone is still a path.
        assert_eq!(
            parse("/var/lib/my hooks/j.db"),
            Ok(StoreUrl::Sqlite("/var/lib/my hooks/j.db".into()))
        );
        assert_eq!(parse("j=1.db"), Ok(StoreUrl::Sqlite("j=1.db".into())));
    }
}
