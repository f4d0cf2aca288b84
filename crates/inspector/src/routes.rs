//! The listener, and each route: access first (Host, token), then the page or the
//! action (CSRF, then a writable store).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, HOST, LOCATION, REFERRER_POLICY,
    SET_COOKIE, X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use http::{HeaderValue, Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use maud::Markup;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::Settings;
use crate::auth::CSRF_REFUSED;
use crate::data::Data;
use crate::live::{Filters, Hub};
use crate::pages::{self, Actions, Frame};

type Body = UnsyncBoxBody<Bytes, Infallible>;

/// The largest form a POST may send.
const MAX_FORM: usize = 64 * 1024;

/// Connections served at once; more wait in the kernel's backlog.
const MAX_CONNECTIONS: usize = 256;

/// The embedded assets.
const STYLE: &str = include_str!("../assets/style.css");
const SCRIPT: &str = include_str!("../assets/live.js");

/// The CSP: this origin's files only, so no inline script or handler runs even if
/// something escaped the templates.
const CSP: &str = "default-src 'self'";

/// Everything the routes share.
pub(crate) struct App {
    pub(crate) settings: Arc<Settings>,
    pub(crate) hub: Hub,
    pub(crate) data: Option<Data>,
}

impl App {
    pub(crate) fn writable(&self) -> bool {
        self.data.as_ref().is_some_and(Data::writable)
    }

    fn frame<'a>(&self, title: &'a str, nav: &'a str, notice: Option<String>) -> Frame<'a> {
        let store_line = match &self.data {
            None => "no store: live list and refusals only".to_owned(),
            Some(d) if d.writable() => format!("store {}", d.name()),
            Some(d) => format!("store {} (read-only: actions off)", d.name()),
        };
        Frame {
            title,
            nav,
            notice,
            store_line,
        }
    }

    fn actions(&self) -> Option<Actions<'_>> {
        self.writable().then(|| Actions {
            csrf: self.settings.auth.csrf(),
            replay: self.settings.replay_secret.is_some(),
        })
    }
}

/// Accepts connections until `shutdown`; then drops every connection (open live
/// streams included).
pub(crate) async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()> + Send,
) {
    app.hub.start_keeper(app.data.clone());
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut conns = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            () = &mut shutdown => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "inspector: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Reap finished connections so the set does not grow.
        while conns.try_join_next().is_some() {}
        let app = app.clone();
        conns.spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |req| {
                let app = app.clone();
                async move { Ok::<_, Infallible>(secured(handle(&app, req).await)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(10))
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
    conns.abort_all();
}

/// The headers every answer carries.
fn secured(mut resp: Response<Body>) -> Response<Body> {
    let h = resp.headers_mut();
    h.insert(CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    h.entry(CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    resp
}

fn full(status: StatusCode, content_type: &'static str, body: impl Into<Bytes>) -> Response<Body> {
    let mut resp = Response::new(Full::new(body.into()).boxed_unsync());
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp
}

fn html(status: StatusCode, markup: &Markup) -> Response<Body> {
    full(status, "text/html; charset=utf-8", markup.0.clone())
}

fn text(status: StatusCode, line: &str) -> Response<Body> {
    full(status, "text/plain; charset=utf-8", format!("{line}\n"))
}

fn see_other(to: &str) -> Response<Body> {
    let mut resp = full(StatusCode::SEE_OTHER, "text/plain; charset=utf-8", "");
    if let Ok(v) = HeaderValue::from_str(to) {
        resp.headers_mut().insert(LOCATION, v);
    }
    resp
}

/// Whether the Host is a loopback name: without a token, only those are answered,
/// so a web page cannot reach the inspector through a DNS name rebound to 127.0.0.1.
fn host_is_loopback(req: &Request<Incoming>) -> bool {
    let Some(host) = req.headers().get(HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let name = match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name.eq_ignore_ascii_case("localhost")
        || name
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

async fn handle(app: &App, req: Request<Incoming>) -> Response<Body> {
    let auth = &app.settings.auth;
    if !auth.has_token() && !host_is_loopback(&req) {
        return text(
            StatusCode::MISDIRECTED_REQUEST,
            "this inspector answers to a loopback Host only (give it --ui-token to serve other names)",
        );
    }
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    if let Some(asset) = path.strip_prefix("/assets/") {
        return match asset {
            "style.css" => full(StatusCode::OK, "text/css; charset=utf-8", STYLE),
            "live.js" => full(StatusCode::OK, "text/javascript; charset=utf-8", SCRIPT),
            _ => text(StatusCode::NOT_FOUND, "no such asset"),
        };
    }
    if path == "/login" {
        return login(app, req).await;
    }
    if !auth.allows(req.headers()) {
        return see_other("/login");
    }
    let segments: Vec<&str> = path.trim_matches('/').split('/').collect();
    let query = req.uri().query().map(str::to_owned);
    match (&method, segments.as_slice()) {
        (&Method::GET | &Method::HEAD, [""]) => list(app, query.as_deref()).await,
        (&Method::GET, ["stream"]) => stream(app, query.as_deref()),
        (&Method::GET | &Method::HEAD, ["refusals"]) => {
            let frame = app.frame("Refusals", "/refusals", None);
            html(
                StatusCode::OK,
                &pages::refusals(&frame, &app.hub.refusals()),
            )
        }
        (&Method::GET | &Method::HEAD, ["events", id]) => match id.parse() {
            Ok(id) => detail(app, id, query.as_deref()).await,
            Err(_) => not_found(app),
        },
        (&Method::GET | &Method::HEAD, ["events", id, "raw"]) => match id.parse() {
            Ok(id) => raw(app, id).await,
            Err(_) => not_found(app),
        },
        (&Method::GET | &Method::HEAD, ["builds"]) => builds(app).await,
        (&Method::GET | &Method::HEAD, ["failed"]) => failed(app, query.as_deref()).await,
        (&Method::GET | &Method::HEAD, ["health"]) => health(app).await,
        (&Method::POST, ["events", _, "redeliver" | "replay"] | ["failed", "redrive"]) => {
            post(app, req, &segments).await
        }
        (
            _,
            ["" | "stream" | "refusals" | "builds" | "failed" | "health"]
            | ["events", _]
            | ["events", _, "raw"],
        ) => {
            let mut resp = text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed");
            resp.headers_mut()
                .insert(http::header::ALLOW, HeaderValue::from_static("GET, HEAD"));
            resp
        }
        _ => not_found(app),
    }
}

fn not_found(app: &App) -> Response<Body> {
    let frame = app.frame("Not found", "", None);
    html(
        StatusCode::NOT_FOUND,
        &pages::error(&frame, "There is no such page or event."),
    )
}

/// Reads a form body (`application/x-www-form-urlencoded`), at most [`MAX_FORM`].
async fn read_form(body: Incoming) -> Result<Vec<(String, String)>, Response<Body>> {
    match Limited::new(body, MAX_FORM).collect().await {
        Ok(b) => {
            let bytes = b.to_bytes();
            let text = String::from_utf8_lossy(&bytes);
            Ok(form_pairs(&text))
        }
        Err(_) => Err(text(StatusCode::PAYLOAD_TOO_LARGE, "form too large")),
    }
}

fn field<'a>(form: &'a [(String, String)], name: &str) -> Option<&'a str> {
    form.iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
}

/// `a=1&b=x+y%21` to pairs, percent- and plus-decoded (invalid escapes kept as is).
pub(crate) fn form_pairs(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (n, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(n), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn login(app: &App, req: Request<Incoming>) -> Response<Body> {
    let auth = &app.settings.auth;
    if !auth.has_token() {
        return see_other("/");
    }
    match *req.method() {
        Method::GET | Method::HEAD => html(StatusCode::OK, &pages::login(false)),
        // The login form carries no CSRF field: it holds nothing to forge (a forged
        // login needs the token, and only signs the browser in).
        Method::POST => {
            let form = match read_form(req.into_body()).await {
                Ok(f) => f,
                Err(resp) => return resp,
            };
            if field(&form, "token").is_some_and(|t| auth.token_ok(t)) {
                let mut resp = see_other("/");
                if let Ok(v) = HeaderValue::from_str(&auth.set_cookie()) {
                    resp.headers_mut().insert(SET_COOKIE, v);
                }
                resp
            } else {
                html(StatusCode::UNAUTHORIZED, &pages::login(true))
            }
        }
        _ => text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed"),
    }
}

fn filter_error(app: &App, title: &str, nav: &str, e: &str) -> Response<Body> {
    let frame = app.frame(title, nav, None);
    html(StatusCode::BAD_REQUEST, &pages::error(&frame, e))
}

async fn list(app: &App, query: Option<&str>) -> Response<Body> {
    let filters = match Filters::parse(query) {
        Ok(f) => f,
        Err(e) => return filter_error(app, "Live", "/", &e),
    };
    let before = query
        .map(form_pairs)
        .unwrap_or_default()
        .into_iter()
        .find(|(n, _)| n == "before")
        .and_then(|(_, v)| v.parse::<i64>().ok());
    let (rows, notice) = match &app.data {
        Some(data) => match data.list(&filters, before).await {
            Ok(rows) => (rows, None),
            Err(e) => (Vec::new(), Some(e)),
        },
        None => (
            app.hub
                .recent()
                .iter()
                .filter(|r| filters.matches(r))
                .map(|r| crate::live::Accepted {
                    id: r.id,
                    received: r.received,
                    event: r.event.clone(),
                    action: r.action.clone(),
                    repo: r.repo.clone(),
                    build: r.build,
                    status: r.status.clone(),
                    runs: r.runs.clone(),
                    code: r.code,
                })
                .collect(),
            None,
        ),
    };
    let older = match (&app.data, rows.last().and_then(|r| r.id)) {
        (Some(_), Some(last)) if rows.len() >= crate::data::PAGE => {
            let mut q: Vec<String> = query
                .map(form_pairs)
                .unwrap_or_default()
                .into_iter()
                .filter(|(n, _)| n != "before")
                .map(|(n, v)| format!("{}={}", encode(&n), encode(&v)))
                .collect();
            q.push(format!("before={last}"));
            Some(format!("/?{}", q.join("&")))
        }
        _ => None,
    };
    let frame = app.frame("Live", "/", notice);
    html(StatusCode::OK, &pages::list(&frame, &filters, &rows, older))
}

/// Percent-encodes a query value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z'
            | b'a'..=b'z'
            | b'0'..=b'9'
            | b'-'
            | b'_'
            | b'.'
            | b'~'
            | b'*'
            | b':'
            | b',' => (b as char).to_string(),
            b => format!("%{b:02X}"),
        })
        .collect()
}

fn stream(app: &App, query: Option<&str>) -> Response<Body> {
    let filters = match Filters::parse(query) {
        Ok(f) => f,
        Err(e) => return text(StatusCode::BAD_REQUEST, &e),
    };
    let mut resp = Response::new(app.hub.stream(filters).boxed_unsync());
    let h = resp.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    resp
}

fn no_store(app: &App, title: &str, nav: &str) -> Response<Body> {
    let frame = app.frame(title, nav, None);
    html(
        StatusCode::OK,
        &pages::error(
            &frame,
            "This page reads the store: start the receiver with --store to see it.",
        ),
    )
}

async fn detail(app: &App, id: i64, query: Option<&str>) -> Response<Body> {
    let Some(data) = &app.data else {
        return no_store(app, "Event", "");
    };
    match data.detail(id).await {
        Ok(Some(view)) => {
            let notice = queued_notice(query, &view);
            let frame = app.frame("Event", "", notice);
            let actions = app.actions().filter(|_| !view.erased);
            html(
                StatusCode::OK,
                &pages::detail(&frame, &view, actions.as_ref()),
            )
        }
        Ok(None) => not_found(app),
        Err(e) => {
            let frame = app.frame("Event", "", None);
            html(StatusCode::SERVICE_UNAVAILABLE, &pages::error(&frame, &e))
        }
    }
}

/// The notice after a redeliver (`?queued=NAME&queued=NAME`, or `?queued=` for
/// none). Only names among the event's runs are shown, so a crafted link cannot put
/// words of its own on the page.
fn queued_notice(query: Option<&str>, view: &pages::DetailView) -> Option<String> {
    let given: Vec<String> = query
        .map(form_pairs)
        .unwrap_or_default()
        .into_iter()
        .filter(|(n, _)| n == "queued")
        .map(|(_, v)| v)
        .collect();
    if given.is_empty() {
        return None;
    }
    let mut names: Vec<&str> = Vec::new();
    for run in &view.runs {
        if given.contains(&run.handler) && !names.contains(&run.handler.as_str()) {
            names.push(&run.handler);
        }
    }
    if !names.is_empty() {
        Some(format!(
            "Queued again: {}. The receiver picks the runs up within a second or so.",
            names.join(", ")
        ))
    } else if given.iter().all(String::is_empty) {
        Some("No handler run was queued.".to_owned())
    } else {
        None
    }
}

async fn raw(app: &App, id: i64) -> Response<Body> {
    let Some(data) = &app.data else {
        return not_found(app);
    };
    match data.raw(id).await {
        Ok(Some(bytes)) => {
            let mut resp = full(StatusCode::OK, "application/octet-stream", bytes);
            if let Ok(v) =
                HeaderValue::from_str(&format!("attachment; filename=\"event-{id}.json\""))
            {
                resp.headers_mut()
                    .insert(http::header::CONTENT_DISPOSITION, v);
            }
            resp
        }
        Ok(None) => not_found(app),
        Err(e) => text(StatusCode::SERVICE_UNAVAILABLE, &e),
    }
}

async fn builds(app: &App) -> Response<Body> {
    let Some(data) = &app.data else {
        return no_store(app, "Builds", "/builds");
    };
    let (rows, notice) = match data.builds(app.settings.drone_url.as_deref()).await {
        Ok(rows) => (rows, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    let frame = app.frame("Builds", "/builds", notice);
    html(StatusCode::OK, &pages::builds(&frame, &rows))
}

async fn failed(app: &App, query: Option<&str>) -> Response<Body> {
    let Some(data) = &app.data else {
        return no_store(app, "Failed", "/failed");
    };
    let filters = match Filters::parse(query) {
        Ok(f) => f,
        Err(e) => return filter_error(app, "Failed", "/failed", &e),
    };
    let notice = query
        .map(form_pairs)
        .unwrap_or_default()
        .into_iter()
        .find(|(n, _)| n == "redriven")
        // A count, so digits only: a crafted link puts no words of its own here.
        .and_then(|(_, v)| {
            v.parse::<usize>()
                .ok()
                .filter(|_| v.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(|n| format!("Queued again: {n} run(s)."));
    let (rows, notice) = match data.failed(&filters).await {
        Ok(rows) => (rows, notice),
        Err(e) => (Vec::new(), Some(e)),
    };
    let frame = app.frame("Failed", "/failed", notice);
    let csrf = app.writable().then(|| app.settings.auth.csrf());
    html(
        StatusCode::OK,
        &pages::failed(&frame, &filters, &rows, csrf),
    )
}

async fn health(app: &App) -> Response<Body> {
    let Some(data) = &app.data else {
        return no_store(app, "Health", "/health");
    };
    let frame_err = |e: String| {
        let frame = app.frame("Health", "/health", None);
        html(StatusCode::SERVICE_UNAVAILABLE, &pages::error(&frame, &e))
    };
    match data.health().await {
        Ok(mut view) => {
            view.retention = app.settings.retention;
            view.refusals_kept = app.hub.refusals().len();
            let frame = app.frame("Health", "/health", None);
            html(StatusCode::OK, &pages::health(&frame, &view))
        }
        Err(e) => frame_err(e),
    }
}

/// Every action: a writable store (409 otherwise: nothing can change, so there is
/// nothing to forge, and such pages carry no CSRF token), then CSRF, then the action.
async fn post(app: &App, req: Request<Incoming>, segments: &[&str]) -> Response<Body> {
    let data = match &app.data {
        Some(d) if d.writable() => d,
        Some(_) => {
            return text(
                StatusCode::CONFLICT,
                "the store is read-only: actions are off",
            );
        }
        None => return text(StatusCode::CONFLICT, "no store: actions are off"),
    };
    let form = match read_form(req.into_body()).await {
        Ok(f) => f,
        Err(resp) => return resp,
    };
    if !app.settings.auth.csrf_ok(field(&form, "csrf")) {
        return text(StatusCode::FORBIDDEN, CSRF_REFUSED);
    }
    // An erased event has nothing left to send or run (its page shows no actions).
    let mut event_runs = Vec::new();
    if let ["events", id, _] = segments
        && let Ok(id) = id.parse::<i64>()
    {
        match data.runs(id).await {
            Ok(Some((true, _))) => {
                return text(
                    StatusCode::CONFLICT,
                    &format!("event {id} was erased: there is nothing to send again"),
                );
            }
            Ok(Some((false, names))) => event_runs = names,
            Ok(None) => return not_found(app),
            Err(e) => return text(StatusCode::SERVICE_UNAVAILABLE, &e),
        }
    }
    match segments {
        ["events", id, "redeliver"] => {
            let Ok(id) = id.parse::<i64>() else {
                return not_found(app);
            };
            let handler = field(&form, "handler").filter(|h| !h.is_empty());
            if let Some(refused) = unknown_handler(id, handler, &event_runs) {
                return refused;
            }
            match data.redeliver(id, handler).await {
                Ok(Some(names)) => see_other(&queued_location(id, &names)),
                Ok(None) => not_found(app),
                Err(e) => text(StatusCode::SERVICE_UNAVAILABLE, &e),
            }
        }
        ["events", id, "replay"] => {
            let Ok(id) = id.parse::<i64>() else {
                return not_found(app);
            };
            let Some(secret) = &app.settings.replay_secret else {
                return text(
                    StatusCode::CONFLICT,
                    "no secret to sign a replay with: the receiver runs without verification",
                );
            };
            let endpoint = field(&form, "endpoint").unwrap_or("").trim();
            match data.replay(id, endpoint, secret).await {
                Ok(Some(lines)) => {
                    let frame = app.frame("Replay", "", None);
                    html(
                        StatusCode::OK,
                        &pages::message(
                            &frame,
                            &format!("Replay of event {id}"),
                            &lines,
                            &format!("/events/{id}"),
                        ),
                    )
                }
                Ok(None) => not_found(app),
                Err(e) => text(StatusCode::BAD_REQUEST, &e),
            }
        }
        ["failed", "redrive"] => {
            let one = field(&form, "id").filter(|v| !v.is_empty());
            let result = if let Some(id) = one {
                let Ok(id) = id.parse::<i64>() else {
                    return text(StatusCode::BAD_REQUEST, "id: not a number");
                };
                let handler = field(&form, "handler").filter(|h| !h.is_empty());
                match data.runs(id).await {
                    Ok(Some((_, names))) => {
                        if let Some(refused) = unknown_handler(id, handler, &names) {
                            return refused;
                        }
                    }
                    Ok(None) => return not_found(app),
                    Err(e) => return text(StatusCode::SERVICE_UNAVAILABLE, &e),
                }
                data.redeliver(id, handler)
                    .await
                    .map(|q| q.map_or(0, |names| names.len()))
            } else {
                {
                    let query: Vec<String> = ["event", "repo", "state"]
                        .iter()
                        .filter_map(|n| field(&form, n).map(|v| format!("{n}={}", encode(v))))
                        .collect();
                    let filters = match Filters::parse(Some(&query.join("&"))) {
                        Ok(f) => f,
                        Err(e) => return text(StatusCode::BAD_REQUEST, &e),
                    };
                    data.redrive_all(&filters).await
                }
            };
            match result {
                Ok(n) => see_other(&format!("/failed?redriven={n}")),
                Err(e) => text(StatusCode::SERVICE_UNAVAILABLE, &e),
            }
        }
        _ => not_found(app),
    }
}

/// A redeliver names a handler the event has no run of: `400`. A run of a name no
/// receiver has would stay pending for ever, so only the event's own runs are taken.
/// The name given is not echoed; the event's run names are.
fn unknown_handler(id: i64, handler: Option<&str>, runs: &[String]) -> Option<Response<Body>> {
    let handler = handler?;
    if runs.iter().any(|r| r == handler) {
        return None;
    }
    let line = if runs.is_empty() {
        format!("event {id} has no handler runs to redeliver")
    } else {
        format!(
            "event {id} has no run of that handler: give one of {}",
            runs.join(", ")
        )
    };
    Some(text(StatusCode::BAD_REQUEST, &line))
}

/// `/events/ID?queued=NAME&queued=NAME` (or `?queued=` when nothing was queued): one
/// parameter per name, so a name holding a comma stays whole.
fn queued_location(id: i64, names: &[String]) -> String {
    if names.is_empty() {
        return format!("/events/{id}?queued=");
    }
    let q: Vec<String> = names
        .iter()
        .map(|n| format!("queued={}", encode(n)))
        .collect();
    format!("/events/{id}?{}", q.join("&"))
}

#[cfg(test)]
mod tests {
    use super::{decode, form_pairs};

    #[test]
    fn forms_decode() {
        assert_eq!(
            form_pairs("csrf=ab&endpoint=http%3A%2F%2Fx%3A1%2F&q=a+b&bad=%zz&t=%4"),
            vec![
                ("csrf".to_owned(), "ab".to_owned()),
                ("endpoint".to_owned(), "http://x:1/".to_owned()),
                ("q".to_owned(), "a b".to_owned()),
                ("bad".to_owned(), "%zz".to_owned()),
                ("t".to_owned(), "%4".to_owned()),
            ]
        );
        assert_eq!(decode("%E2%9C%93"), "✓");
    }
}
