//! The filters that select events: `list`'s flags, and the same filters written as one
//! `--filter` value for `replay` and `redeliver`.

use std::time::{Duration, SystemTime};

use clap::{Args, ValueEnum};
use dronehook_protocol::EventFilter;
use dronehook_server::{EventQuery, RunStatus};

use crate::cmd::parse_moment;
use crate::usage;

/// The default number of events a listing shows.
pub(crate) const DEFAULT_LIMIT: usize = 50;
/// The most events one query returns (the store's own bound).
pub(crate) const MAX_LIMIT: usize = 10_000;

/// A handler run's state, as `--state` takes it.
#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum State {
    /// Not finished: waiting for its first or next attempt.
    Pending,
    /// The handler succeeded.
    Ok,
    /// The handler failed on its last attempt.
    Dead,
}

impl State {
    fn run_status(self) -> RunStatus {
        match self {
            State::Pending => RunStatus::Pending,
            State::Ok => RunStatus::Ok,
            State::Dead => RunStatus::Dead,
        }
    }
}

/// The filters; they all hold together (AND).
#[derive(Args, Debug, Default, Clone)]
pub(crate) struct QueryArgs {
    /// Only these events: comma-separated `event:action` globs such as `build:*`.
    #[arg(long, value_name = "PATTERNS")]
    pub(crate) event: Option<String>,
    /// Only this repository: a slug or a glob with `*` and `?` (`octocat/*`).
    #[arg(long, value_name = "GLOB")]
    pub(crate) repo: Option<String>,
    /// Only builds with this status (`success`, `failure`, `running`, ...).
    #[arg(long, value_name = "STATUS")]
    pub(crate) status: Option<String>,
    /// Only events with a handler run in this state.
    #[arg(long, value_enum, value_name = "STATE")]
    pub(crate) state: Option<State>,
    /// Only events received since then: a duration back from now (`1h`, `2d`) or a
    /// moment (RFC 3339 `2026-01-01T00:00:00Z`, or an HTTP date).
    #[arg(long, value_name = "DURATION|TIME")]
    pub(crate) since: Option<String>,
    /// Only events received before then (as --since).
    #[arg(long, value_name = "DURATION|TIME")]
    pub(crate) until: Option<String>,
}

impl QueryArgs {
    /// The store query, with no limit set yet.
    pub(crate) fn query(&self, now: SystemTime) -> anyhow::Result<EventQuery> {
        let mut query = EventQuery::new();
        if let Some(list) = self.event.as_deref().map(str::trim) {
            if list.is_empty() {
                return Err(usage(
                    "invalid --event \"\": give `event:action` globs such as build:*",
                ));
            }
            let filter = EventFilter::parse(list)
                .map_err(|e| usage(format!("invalid --event {list:?}: {e}")))?;
            query = query.events(filter);
        }
        if let Some(repo) = &self.repo {
            check_glob("--repo", repo)?;
            query = query.repo(repo.clone());
        }
        if let Some(status) = &self.status {
            if status.trim().is_empty() || status.contains(char::is_whitespace) {
                return Err(usage(format!(
                    "invalid --status {status:?}: give a build status such as success or failure"
                )));
            }
            query = query.build_status(status.clone());
        }
        if let Some(state) = self.state {
            query = query.run_status(state.run_status());
        }
        if let Some(since) = &self.since {
            query = query.since(when("--since", since, now)?);
        }
        if let Some(until) = &self.until {
            query = query.until(when("--until", until, now)?);
        }
        Ok(query)
    }

    /// Reads the one-value form: space-separated `key=value` terms, the keys being
    /// the flags' names (`event=build:* repo=octocat/* state=dead since=1h`).
    pub(crate) fn parse_filter(text: &str) -> anyhow::Result<QueryArgs> {
        let mut args = QueryArgs::default();
        let mut any = false;
        for term in text.split_whitespace() {
            any = true;
            let Some((key, value)) = term.split_once('=') else {
                return Err(usage(format!(
                    "invalid --filter term {term:?}: write key=value (event, repo, status, state, since, until)"
                )));
            };
            let slot = match key {
                "event" => &mut args.event,
                "repo" => &mut args.repo,
                "status" => &mut args.status,
                "since" => &mut args.since,
                "until" => &mut args.until,
                "state" => {
                    let state = State::from_str(value, false).map_err(|_| {
                        usage(format!(
                            "invalid --filter term {term:?}: the state is pending, ok or dead"
                        ))
                    })?;
                    args.state = Some(state);
                    continue;
                }
                _ => {
                    return Err(usage(format!(
                        "invalid --filter term {term:?}: the keys are event, repo, status, state, since, until"
                    )));
                }
            };
            if value.is_empty() {
                return Err(usage(format!("invalid --filter term {term:?}: no value")));
            }
            *slot = Some(value.to_owned());
        }
        if !any {
            return Err(usage(
                "invalid --filter \"\": give key=value terms such as state=dead since=1h",
            ));
        }
        Ok(args)
    }
}

/// Checks a `*`/`?` glob: the store matches it as it is, so only the empty one and
/// control characters are refused here.
fn check_glob(flag: &str, glob: &str) -> anyhow::Result<()> {
    if glob.is_empty() || glob.chars().any(char::is_control) {
        return Err(usage(format!(
            "invalid {flag} {glob:?}: give a slug or a glob such as octocat/*"
        )));
    }
    Ok(())
}

/// Reads `--since`/`--until`: a duration back from `now`, or a moment.
pub(crate) fn when(flag: &str, text: &str, now: SystemTime) -> anyhow::Result<SystemTime> {
    let text = text.trim();
    if let Ok(ago) = humantime::parse_duration(text) {
        return Ok(now.checked_sub(ago).unwrap_or(SystemTime::UNIX_EPOCH));
    }
    parse_moment(flag, text).map_err(|_| {
        usage(format!(
            "invalid {flag} {text:?}: give a duration back from now (30m, 2h, 7d) or a moment (2026-01-01T00:00:00Z)"
        ))
    })
}

/// Reads a duration flag (`--older-than`).
pub(crate) fn duration(flag: &str, text: &str) -> anyhow::Result<Duration> {
    humantime::parse_duration(text.trim()).map_err(|_| {
        usage(format!(
            "invalid {flag} {text:?}: durations look like 30m, 12h or 7d"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_filter_value_reads_as_the_flags() {
        let args =
            QueryArgs::parse_filter("event=build:* repo=octocat/* state=dead since=1h").unwrap();
        assert_eq!(args.event.as_deref(), Some("build:*"));
        assert_eq!(args.repo.as_deref(), Some("octocat/*"));
        assert_eq!(args.state, Some(State::Dead));
        assert_eq!(args.since.as_deref(), Some("1h"));
        for bad in ["", "event", "colour=red", "state=gone", "repo="] {
            let err = QueryArgs::parse_filter(bad).unwrap_err().to_string();
            assert!(err.starts_with("invalid --filter"), "{bad:?}: {err}");
        }
    }

    #[test]
    fn since_takes_a_duration_or_a_moment() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(10_000);
        assert_eq!(
            when("--since", "1h", now).unwrap(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(6_400)
        );
        assert_eq!(
            when("--since", "1970-01-01T00:00:05Z", now).unwrap(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(5)
        );
        assert!(when("--since", "yesterday-ish", now).is_err());
    }
}
