//! The pages, rendered with maud: every interpolated value is HTML-escaped, and the
//! element ids and classes are the ones docs/inspector.md (and the browser tests)
//! name. No inline script or style: the CSP header allows only this origin's files.

use std::time::{Duration, SystemTime};

use maud::{DOCTYPE, Markup, html};
use serde_json::Value;

use crate::format;
use crate::live::{Accepted, Filters, Refused};

/// What every page's frame needs.
pub(crate) struct Frame<'a> {
    pub(crate) title: &'a str,
    /// Which navigation entry is this page.
    pub(crate) nav: &'a str,
    /// A line above the content (an action's result, a filter's error).
    pub(crate) notice: Option<String>,
    /// Whether to offer the logout form... and show the store's state.
    pub(crate) store_line: String,
}

const NAV: &[(&str, &str)] = &[
    ("/", "Live"),
    ("/refusals", "Refusals"),
    ("/builds", "Builds"),
    ("/failed", "Failed"),
    ("/health", "Health"),
];

pub(crate) fn page(frame: &Frame<'_>, content: &Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (frame.title) " · dronehook" }
                link rel="stylesheet" href="/assets/style.css";
                script src="/assets/live.js" defer {}
            }
            body {
                header {
                    span.brand { "dronehook" }
                    nav {
                        @for (href, label) in NAV {
                            @if *href == frame.nav {
                                a.current href=(href) { (label) }
                            } @else {
                                a href=(href) { (label) }
                            }
                        }
                    }
                    span.store { (frame.store_line) }
                }
                main {
                    @if let Some(notice) = &frame.notice {
                        p #notice .notice { (notice) }
                    }
                    (content)
                }
            }
        }
    }
}

pub(crate) fn login(wrong: bool) -> Markup {
    let frame = Frame {
        title: "Sign in",
        nav: "",
        notice: wrong.then(|| "That is not the token.".to_owned()),
        store_line: String::new(),
    };
    page(
        &frame,
        &html! {
            h1 { "Sign in" }
            form #login method="post" action="/login" {
                label for="token" { "Token (--ui-token)" }
                input #token type="password" name="token" autocomplete="current-password" autofocus;
                button type="submit" { "Sign in" }
            }
        },
    )
}

fn csrf_field(csrf: &str) -> Markup {
    html! { input type="hidden" name="csrf" value=(csrf); }
}

pub(crate) fn event_row(e: &Accepted) -> Markup {
    html! {
        tr.event data-id=[e.id] data-href=[e.id.map(|id| format!("/events/{id}"))] {
            td.received { (format::time(e.received)) }
            td.event {
                @if let Some(id) = e.id {
                    a href={ "/events/" (id) } { (e.event) ":" (e.action) }
                } @else {
                    (e.event) ":" (e.action)
                }
            }
            td.repo { (e.repo.as_deref().unwrap_or("")) }
            td.build { @if let Some(b) = e.build { (b) } }
            td.status { (e.status.as_deref().unwrap_or("")) }
            td.runs { (e.runs_text()) }
        }
    }
}

pub(crate) fn list(
    frame: &Frame<'_>,
    filters: &Filters,
    rows: &[Accepted],
    older: Option<String>,
) -> Markup {
    page(
        frame,
        &html! {
            h1 { "Live" }
            form #filters method="get" action="/" {
                label { "Event " input name="event" value=(filters.event_text) placeholder="build:*,repo:enabled"; }
                label { "Repository " input name="repo" value=(filters.repo) placeholder="octocat/*"; }
                label { "Build status " input name="status" value=(filters.status) placeholder="failure"; }
                label { "Run state "
                    select name="state" {
                        @for s in ["", "pending", "ok", "dead"] {
                            @if filters.state == s {
                                option value=(s) selected { (if s.is_empty() { "any" } else { s }) }
                            } @else {
                                option value=(s) { (if s.is_empty() { "any" } else { s }) }
                            }
                        }
                    }
                }
                button type="submit" { "Filter" }
                " " a href="/" { "clear" }
            }
            table #events {
                thead { tr { th { "Received (UTC)" } th { "Event" } th { "Repository" } th { "Build" } th { "Status" } th { "Runs" } } }
                tbody {
                    @for row in rows { (event_row(row)) }
                }
            }
            @if rows.is_empty() {
                p.empty { "Nothing yet. New events appear here as they arrive." }
            }
            @if let Some(href) = older {
                p { a #older href=(href) { "Older →" } }
            }
        },
    )
}

pub(crate) fn refusals(frame: &Frame<'_>, rows: &[std::sync::Arc<Refused>]) -> Markup {
    page(
        frame,
        &html! {
            h1 { "Refusals" }
            p.hint { "The last " (crate::REFUSALS_KEPT) " refused requests, kept in memory only (never their bodies). New ones appear live." }
            table #refusals {
                thead { tr { th { "Time (UTC)" } th { "Peer" } th { "Status" } th { "Code" } th { "keyId" } th { "X-Drone-Event" } th { "Date skew" } th { "Why" } } }
                tbody {
                    @for r in rows {
                        tr.refusal {
                            td.time { (format::time(r.time)) }
                            td.peer { @if let Some(p) = r.peer { (p) } }
                            td.status { (r.status) }
                            td.code { (r.code) }
                            td.key-id { (r.key_id.as_deref().unwrap_or("")) }
                            td.event { (r.event.as_deref().unwrap_or("")) }
                            td.skew { (r.skew_text()) }
                            td.reason { (r.reason) }
                        }
                    }
                }
            }
        },
    )
}

/// One handler run, as the detail and the failed page show it.
#[derive(Debug)]
pub(crate) struct RunView {
    pub(crate) event_id: i64,
    pub(crate) handler: String,
    pub(crate) status: String,
    pub(crate) attempts: u32,
    pub(crate) duration: Option<Duration>,
    pub(crate) next_at: Option<SystemTime>,
    pub(crate) updated_at: Option<SystemTime>,
    pub(crate) error: Option<String>,
    pub(crate) output: Option<String>,
    /// The event's `event:action` and repository (the failed page).
    pub(crate) event: String,
    pub(crate) repo: String,
}

/// An event in full.
#[derive(Debug)]
pub(crate) struct DetailView {
    pub(crate) row: Accepted,
    pub(crate) erased: bool,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) verification: String,
    pub(crate) digest: String,
    pub(crate) size: usize,
    /// The body as JSON, when it is.
    pub(crate) payload: Option<Value>,
    pub(crate) runs: Vec<RunView>,
}

/// What the action forms need: `None` when actions are off.
pub(crate) struct Actions<'a> {
    pub(crate) csrf: &'a str,
    pub(crate) replay: bool,
}

pub(crate) fn detail(frame: &Frame<'_>, d: &DetailView, actions: Option<&Actions<'_>>) -> Markup {
    let id = d.row.id.unwrap_or_default();
    page(
        frame,
        &html! {
            h1 { "Event " (id) ": " (d.row.event) ":" (d.row.action) }
            dl.facts {
                dt { "Received (UTC)" } dd { (format::time(d.row.received)) }
                dt { "Repository" } dd { (d.row.repo.as_deref().unwrap_or("-")) }
                dt { "Build" } dd { @if let Some(b) = d.row.build { (b) } @else { "-" } }
                dt { "Build status" } dd { (d.row.status.as_deref().unwrap_or("-")) }
                dt { "Body" } dd { (d.size) " bytes, " (d.digest) }
            }
            h2 { "Verification" }
            p #verification { (d.verification) }
            @if d.erased {
                p.notice { "This event was erased: its payload, headers and run output are gone." }
            }
            h2 { "Headers" }
            table #headers {
                tbody {
                    @for (name, value) in &d.headers {
                        tr { th { (name) } td { (value) } }
                    }
                }
            }
            h2 { "Payload" }
            div #payload {
                @match &d.payload {
                    Some(v) => (json_tree(None, v, 0)),
                    None if d.erased => p { "(erased)" },
                    None => p { "Not JSON; see the raw bytes." },
                }
            }
            p { a #raw href={ "/events/" (id) "/raw" } { "Raw bytes" } }
            h2 { "Handler runs" }
            table #runs {
                thead { tr { th { "Handler" } th { "State" } th { "Attempts" } th { "Last took" } th { "Next / updated (UTC)" } th { "Output" } } }
                tbody {
                    @for r in &d.runs { (run_row(r, false)) }
                }
            }
            @if d.runs.is_empty() { p.empty { "No handler took this event." } }
            @if let Some(a) = actions {
                h2 { "Actions" }
                form #redeliver method="post" action={ "/events/" (id) "/redeliver" } {
                    (csrf_field(a.csrf))
                    button type="submit" { "Redeliver to every handler" }
                }
                @if a.replay {
                    form #replay method="post" action={ "/events/" (id) "/replay" } {
                        (csrf_field(a.csrf))
                        label { "Endpoint " input name="endpoint" type="url" placeholder="http://127.0.0.1:3000/" required; }
                        button type="submit" { "Replay (signed with the receiver's first secret)" }
                    }
                }
            }
        },
    )
}

fn run_row(r: &RunView, failed_page: bool) -> Markup {
    html! {
        tr.run data-handler=(r.handler) data-id=(r.event_id) {
            @if failed_page {
                td.id { a href={ "/events/" (r.event_id) } { (r.event_id) } }
                td.event { (r.event) }
                td.repo { (r.repo) }
            }
            td.handler { (r.handler) }
            td class={ "status state-" (r.status) } { (r.status) }
            td.attempts { (r.attempts) }
            td.duration { @if let Some(d) = r.duration { (format::span(d)) } }
            td.next {
                @if let Some(t) = r.next_at { "next " (format::time(t)) }
                @else if let Some(t) = r.updated_at { (format::time(t)) }
            }
            td.output {
                @if let Some(e) = &r.error { div.error { (e) } }
                @if let Some(o) = &r.output {
                    details { summary { (o.len()) " bytes" } pre { (o) } }
                }
            }
        }
    }
}

/// A JSON value as nested `<details>`: objects and arrays fold, the first two levels
/// open.
fn json_tree(key: Option<&str>, v: &Value, depth: usize) -> Markup {
    let label = html! { @if let Some(k) = key { span.key { (k) } ": " } };
    match v {
        Value::Object(map) => html! {
            details open[depth < 2] {
                summary { (label) "{" (map.len()) "}" }
                ul { @for (k, v) in map { li { (json_tree(Some(k), v, depth + 1)) } } }
            }
        },
        Value::Array(items) => html! {
            details open[depth < 2] {
                summary { (label) "[" (items.len()) "]" }
                ul { @for (i, v) in items.iter().enumerate() { li { (json_tree(Some(&i.to_string()), v, depth + 1)) } } }
            }
        },
        Value::String(s) => html! { (label) span.string { "\"" (s) "\"" } },
        other => html! { (label) span.scalar { (other.to_string()) } },
    }
}

/// A repository's latest build.
#[derive(Debug)]
pub(crate) struct BuildView {
    pub(crate) event_id: i64,
    pub(crate) repo: String,
    pub(crate) number: Option<i64>,
    pub(crate) status: String,
    pub(crate) branch: String,
    pub(crate) author: String,
    pub(crate) duration: Option<Duration>,
    pub(crate) link: Option<String>,
}

/// The class a status is coloured by: `status-success`, `status-failure`, ...
fn status_class(status: &str) -> String {
    let known = [
        "success",
        "failure",
        "error",
        "killed",
        "running",
        "pending",
        "skipped",
        "blocked",
        "declined",
        "waiting_on_dependencies",
    ];
    let s = if known.contains(&status) {
        status
    } else {
        "other"
    };
    format!("status status-{s}")
}

pub(crate) fn builds(frame: &Frame<'_>, rows: &[BuildView]) -> Markup {
    page(
        frame,
        &html! {
            h1 { "Builds" }
            p.hint { "Each repository's latest build event." }
            table #builds {
                thead { tr { th { "Repository" } th { "Build" } th { "Status" } th { "Branch" } th { "Author" } th { "Took" } th { "Drone" } } }
                tbody {
                    @for b in rows {
                        tr.build data-repo=(b.repo) {
                            td.repo { a href={ "/events/" (b.event_id) } { (b.repo) } }
                            td.number { @if let Some(n) = b.number { (n) } }
                            td class=(status_class(&b.status)) { (b.status) }
                            td.branch { (b.branch) }
                            td.author { (b.author) }
                            td.duration { @if let Some(d) = b.duration { (format::span(d)) } }
                            td.link { @if let Some(l) = &b.link { a href=(l) rel="noreferrer" { "open" } } }
                        }
                    }
                }
            }
            @if rows.is_empty() { p.empty { "No build events in the store yet." } }
        },
    )
}

pub(crate) fn failed(
    frame: &Frame<'_>,
    filters: &Filters,
    rows: &[RunView],
    actions: Option<&str>,
) -> Markup {
    page(
        frame,
        &html! {
            h1 { "Failed and dead runs" }
            p.hint { "Runs that failed and wait for their next attempt, and runs that gave up (dead)." }
            form #failed-filters method="get" action="/failed" {
                label { "Event " input name="event" value=(filters.event_text) placeholder="build:*"; }
                label { "Repository " input name="repo" value=(filters.repo) placeholder="octocat/*"; }
                label { "Run state "
                    select name="state" {
                        @for s in ["", "pending", "dead"] {
                            @if filters.state == s {
                                option value=(s) selected { (if s.is_empty() { "failed or dead" } else { s }) }
                            } @else {
                                option value=(s) { (if s.is_empty() { "failed or dead" } else { s }) }
                            }
                        }
                    }
                }
                button type="submit" { "Filter" }
            }
            table #failed {
                thead { tr { th { "Event" } th { "" } th { "Repository" } th { "Handler" } th { "State" } th { "Attempts" } th { "Last took" } th { "Next retry / updated (UTC)" } th { "Last error" } @if actions.is_some() { th {} } } }
                tbody {
                    @for r in rows {
                        tr.run data-handler=(r.handler) data-id=(r.event_id) {
                            td.id { a href={ "/events/" (r.event_id) } { (r.event_id) } }
                            td.event { (r.event) }
                            td.repo { (r.repo) }
                            td.handler { (r.handler) }
                            td class={ "status state-" (r.status) } { (r.status) }
                            td.attempts { (r.attempts) }
                            td.duration { @if let Some(d) = r.duration { (format::span(d)) } }
                            td.next {
                                @if let Some(t) = r.next_at { "next " (format::time(t)) }
                                @else if let Some(t) = r.updated_at { (format::time(t)) }
                            }
                            td.output { @if let Some(e) = &r.error { (e) } }
                            @if let Some(csrf) = actions {
                                td.action {
                                    form.redrive-one method="post" action="/failed/redrive" {
                                        (csrf_field(csrf))
                                        input type="hidden" name="id" value=(r.event_id);
                                        input type="hidden" name="handler" value=(r.handler);
                                        button type="submit" { "Redrive" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            @if rows.is_empty() { p.empty { "No failed or dead runs." } }
            @if let (Some(csrf), false) = (actions, rows.is_empty()) {
                form #redrive-all method="post" action="/failed/redrive" {
                    (csrf_field(csrf))
                    input type="hidden" name="event" value=(filters.event_text);
                    input type="hidden" name="repo" value=(filters.repo);
                    input type="hidden" name="state" value=(filters.state);
                    button type="submit" { "Redrive all " (rows.len()) " shown" }
                }
            }
        },
    )
}

/// Counts over a window.
#[derive(Debug, Default)]
pub(crate) struct Window {
    pub(crate) events: u64,
    pub(crate) ok: u64,
    pub(crate) pending: u64,
    pub(crate) dead: u64,
}

impl Window {
    fn failure_rate(&self) -> String {
        let finished = self.ok + self.dead;
        if finished == 0 {
            "-".to_owned()
        } else {
            format!("{:.1} %", self.dead as f64 * 100.0 / finished as f64)
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct HealthView {
    pub(crate) hour: Window,
    pub(crate) day: Window,
    pub(crate) all: Window,
    pub(crate) erased: u64,
    pub(crate) size_bytes: Option<u64>,
    pub(crate) retention: Option<Duration>,
    pub(crate) oldest: Option<SystemTime>,
    pub(crate) oldest_pending: Option<SystemTime>,
    pub(crate) refusals_kept: usize,
    pub(crate) store: String,
}

pub(crate) fn health(frame: &Frame<'_>, h: &HealthView) -> Markup {
    let now = SystemTime::now();
    let ago = |t: SystemTime| format::span(now.duration_since(t).unwrap_or_default());
    page(
        frame,
        &html! {
            h1 { "Health" }
            div #health {
                table.counts {
                    thead { tr { th {} th { "Events" } th { "Runs ok" } th { "Runs pending" } th { "Runs dead" } th { "Failure rate" } } }
                    tbody {
                        @for (name, w) in [("Last hour", &h.hour), ("Last day", &h.day), ("All kept", &h.all)] {
                            tr {
                                th { (name) }
                                td.events { (w.events) }
                                td.ok { (w.ok) }
                                td.pending { (w.pending) }
                                td.dead { (w.dead) }
                                td.rate { (w.failure_rate()) }
                            }
                        }
                    }
                }
                dl.facts {
                    dt { "Store" } dd #store { (h.store) }
                    dt { "Store size" } dd #size { @if let Some(s) = h.size_bytes { (format_bytes(s)) } @else { "-" } }
                    dt { "Retention" } dd #retention { @if let Some(r) = h.retention { (format::span(r)) } @else { "not set here" } }
                    dt { "Oldest event kept" } dd { @if let Some(t) = h.oldest { (format::time(t)) " (" (ago(t)) " ago)" } @else { "-" } }
                    dt { "Oldest pending run" } dd #oldest-pending { @if let Some(t) = h.oldest_pending { "received " (format::time(t)) " (" (ago(t)) " ago)" } @else { "none" } }
                    dt { "Erased events" } dd { (h.erased) }
                    dt { "Refusals kept" } dd { (h.refusals_kept) }
                }
            }
        },
    )
}

fn format_bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / f64::from(1u32 << 30)),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / f64::from(1u32 << 20)),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

/// An action's result page (a replay's report).
pub(crate) fn message(frame: &Frame<'_>, heading: &str, lines: &[String], back: &str) -> Markup {
    page(
        frame,
        &html! {
            h1 { (heading) }
            ul #result { @for l in lines { li { (l) } } }
            p { a href=(back) { "Back" } }
        },
    )
}

/// A plain page for an error (not found, a bad filter).
pub(crate) fn error(frame: &Frame<'_>, text: &str) -> Markup {
    page(frame, &html! { h1 { (frame.title) } p #error { (text) } })
}
