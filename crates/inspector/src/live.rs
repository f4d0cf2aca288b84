//! What the receiver observes, live: the observer (the only part on the receiver's
//! request path), the keeper task that turns records into rows and keeps the
//! in-memory rings, and the streams each open page reads (Server-Sent Events).

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use dronehook_protocol::EventFilter;
use dronehook_server::{Observation, RequestRecord};
use hyper::body::{Body, Frame, SizeHint};
use serde_json::json;
use tokio::sync::{broadcast, mpsc};

use crate::data::Data;
use crate::format;
use crate::reason::reason;

/// How many refused requests the refusals page keeps (in memory only).
pub const REFUSALS_KEPT: usize = 500;

/// How many accepted requests are kept for the live list when there is no store.
const RECENT_KEPT: usize = 500;

/// Records in flight between the receiver and the keeper. A full channel drops the
/// oldest for the keeper (it is told how many), never blocks the receiver.
const CHANNEL: usize = 1024;

/// How often an idle stream sends a comment, so proxies and browsers keep it open.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// An accepted request, as the live list shows it.
#[derive(Debug)]
pub(crate) struct Accepted {
    pub(crate) id: Option<i64>,
    pub(crate) received: SystemTime,
    pub(crate) event: String,
    pub(crate) action: String,
    pub(crate) repo: Option<String>,
    pub(crate) build: Option<i64>,
    /// The build's status, when the store has the event.
    pub(crate) status: Option<String>,
    /// `handler state` pairs, when the store has the event.
    pub(crate) runs: Vec<(String, String)>,
    /// `ok`, `replay` or `unknown_event`.
    pub(crate) code: &'static str,
}

impl Accepted {
    pub(crate) fn runs_text(&self) -> String {
        self.runs
            .iter()
            .map(|(h, s)| format!("{h} {s}"))
            .collect::<Vec<_>>()
            .join(", ")
    }

    fn json(&self) -> String {
        json!({
            "id": self.id,
            "received": format::time(self.received),
            "event": format!("{}:{}", self.event, self.action),
            "repo": self.repo,
            "build": self.build,
            "status": self.status,
            "runs": self.runs_text(),
            "code": self.code,
        })
        .to_string()
    }
}

/// A refused request, as the refusals page shows it.
#[derive(Debug)]
pub(crate) struct Refused {
    pub(crate) time: SystemTime,
    pub(crate) peer: Option<SocketAddr>,
    pub(crate) status: u16,
    pub(crate) code: &'static str,
    pub(crate) key_id: Option<String>,
    pub(crate) event: Option<String>,
    pub(crate) skew: Option<i64>,
    pub(crate) reason: String,
}

impl Refused {
    fn from_record(r: &RequestRecord, time: SystemTime) -> Refused {
        Refused {
            time,
            peer: r.peer,
            status: r.status,
            code: r.code,
            key_id: r.key_id.clone(),
            event: r.event_header.clone(),
            skew: r.date_skew,
            reason: reason(r.code, r.status, r.key_id.as_deref(), r.date_skew),
        }
    }

    pub(crate) fn skew_text(&self) -> String {
        self.skew.map(format::skew_cell).unwrap_or_default()
    }

    fn json(&self) -> String {
        json!({
            "time": format::time(self.time),
            "peer": self.peer.map(|p| p.to_string()),
            "status": self.status,
            "code": self.code,
            "key_id": self.key_id,
            "event": self.event,
            "skew": self.skew_text(),
            "reason": self.reason,
        })
        .to_string()
    }
}

/// What the keeper publishes to open pages.
#[derive(Clone, Debug)]
pub(crate) enum Live {
    Delivery(Arc<Accepted>),
    Refusal(Arc<Refused>),
    /// A stored event's runs, after one of them ended here: `handler state` pairs.
    Runs(i64, Arc<str>),
}

#[derive(Default)]
struct Rings {
    refused: VecDeque<Arc<Refused>>,
    recent: VecDeque<Arc<Accepted>>,
}

/// What the observer passes to the keeper.
#[derive(Clone, Debug)]
enum Observed {
    /// A request record and when the observer saw it.
    Request(SystemTime, Arc<RequestRecord>),
    /// A handler run of this stored event ended (its outcome is in the store).
    Run(i64),
}

/// The observer's channel, the rings, and the pages' channel.
pub(crate) struct Hub {
    records: broadcast::Sender<Observed>,
    /// The keeper's end, subscribed at once so that what is observed before the
    /// inspector listens is kept; taken when the keeper starts.
    keeper: Mutex<Option<broadcast::Receiver<Observed>>>,
    pages: broadcast::Sender<Live>,
    rings: Arc<Mutex<Rings>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves plain data: still usable.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Hub {
    pub(crate) fn new() -> Hub {
        let (records, keeper) = broadcast::channel(CHANNEL);
        let (pages, _) = broadcast::channel(CHANNEL);
        Hub {
            records,
            keeper: Mutex::new(Some(keeper)),
            pages,
            rings: Arc::default(),
        }
    }

    pub(crate) fn observer(&self) -> impl Fn(&Observation) + Send + Sync + 'static {
        let records = self.records.clone();
        move |observation| {
            let observed = match observation {
                Observation::Request(record) => {
                    Observed::Request(SystemTime::now(), Arc::new(record.clone()))
                }
                Observation::Handler(run) => match run.delivery_id {
                    Some(id) => Observed::Run(id),
                    // Without a store, runs are part of the request's answer.
                    None => return,
                },
                _ => return,
            };
            // `send` fails only when no one listens (the inspector stopped): fine.
            let _ = records.send(observed);
        }
    }

    /// Starts the keeper: records become rows, refusals go to the ring, and both go
    /// to the open pages. With a store, an accepted row is completed from it (build
    /// status, runs), here and not on the receiver's path; and when a run ends, the
    /// event's runs are read again and go to the open pages.
    pub(crate) fn start_keeper(&self, data: Option<Data>) {
        let Some(mut rx) = lock(&self.keeper).take() else {
            return;
        };
        let rings = self.rings.clone();
        let pages = self.pages.clone();
        tokio::spawn(async move {
            loop {
                let (time, record) = match rx.recv().await {
                    Ok(Observed::Request(time, record)) => (time, record),
                    Ok(Observed::Run(id)) => {
                        if let Some(data) = &data
                            && let Some(runs) = data.runs_text(id).await
                        {
                            let _ = pages.send(Live::Runs(id, runs.into()));
                        }
                        continue;
                    }
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(skipped = n, "inspector: fell behind the receiver");
                        continue;
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                };
                let live = if record.status >= 400 {
                    let refused = Arc::new(Refused::from_record(&record, time));
                    let mut r = lock(&rings);
                    if r.refused.len() == REFUSALS_KEPT {
                        r.refused.pop_back();
                    }
                    r.refused.push_front(refused.clone());
                    Live::Refusal(refused)
                } else {
                    let mut accepted = Accepted {
                        id: record.delivery_id,
                        received: time,
                        event: record
                            .event
                            .as_ref()
                            .map(|e| e.as_str().to_owned())
                            .unwrap_or_default(),
                        action: record
                            .action
                            .as_ref()
                            .map(|a| a.as_str().to_owned())
                            .unwrap_or_default(),
                        repo: record.repo.clone(),
                        build: record.build,
                        status: None,
                        runs: Vec::new(),
                        code: record.code,
                    };
                    if let (Some(data), Some(id)) = (&data, record.delivery_id) {
                        data.complete(id, &mut accepted).await;
                    }
                    let accepted = Arc::new(accepted);
                    let mut r = lock(&rings);
                    if r.recent.len() == RECENT_KEPT {
                        r.recent.pop_back();
                    }
                    r.recent.push_front(accepted.clone());
                    Live::Delivery(accepted)
                };
                let _ = pages.send(live);
            }
        });
    }

    /// The refusals kept, newest first.
    pub(crate) fn refusals(&self) -> Vec<Arc<Refused>> {
        lock(&self.rings).refused.iter().cloned().collect()
    }

    /// The accepted requests kept (the live list without a store), newest first.
    pub(crate) fn recent(&self) -> Vec<Arc<Accepted>> {
        lock(&self.rings).recent.iter().cloned().collect()
    }

    /// A stream for one open page: deliveries that pass `filters`, refusals, and the
    /// runs of stored events as they end.
    pub(crate) fn stream(&self, filters: Filters) -> SseBody {
        let mut rx = self.pages.subscribe();
        let (tx, out) = mpsc::channel::<Bytes>(16);
        tokio::spawn(async move {
            // The first bytes tell the browser the stream is open, and how soon to
            // reconnect after it drops.
            if tx
                .send(Bytes::from_static(b"retry: 2000\n\n"))
                .await
                .is_err()
            {
                return;
            }
            let mut keepalive = tokio::time::interval(KEEPALIVE);
            keepalive.tick().await;
            loop {
                let frame = tokio::select! {
                    live = rx.recv() => match live {
                        Ok(Live::Delivery(d)) if filters.matches(&d) => {
                            format!("event: delivery\ndata: {}\n\n", d.json())
                        }
                        Ok(Live::Refusal(r)) => format!("event: refusal\ndata: {}\n\n", r.json()),
                        Ok(Live::Runs(id, runs)) => {
                            let data = json!({ "id": id, "runs": &*runs });
                            format!("event: runs\ndata: {data}\n\n")
                        }
                        // A row the filters keep off, or rows this page fell behind on.
                        Ok(Live::Delivery(_)) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                        Err(broadcast::error::RecvError::Closed) => break,
                    },
                    _ = keepalive.tick() => ": keepalive\n\n".to_owned(),
                    () = tx.closed() => break,
                };
                if tx.send(Bytes::from(frame)).await.is_err() {
                    break;
                }
            }
        });
        SseBody { rx: out }
    }
}

/// A `text/event-stream` body fed by the page's task; it ends when the task does.
pub(crate) struct SseBody {
    rx: mpsc::Receiver<Bytes>,
}

impl Body for SseBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        self.rx.poll_recv(cx).map(|b| b.map(|b| Ok(Frame::data(b))))
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::default()
    }
}

/// The live list's filters (query `?event=&repo=&status=&state=`).
#[derive(Clone, Debug, Default)]
pub(crate) struct Filters {
    /// The raw values, to put back in the form.
    pub(crate) event_text: String,
    pub(crate) repo: String,
    pub(crate) status: String,
    pub(crate) state: String,
    pub(crate) event: Option<EventFilter>,
}

impl Filters {
    /// Reads the query string. A malformed event pattern is an error (one line).
    pub(crate) fn parse(query: Option<&str>) -> Result<Filters, String> {
        let mut f = Filters::default();
        for (name, value) in crate::routes::form_pairs(query.unwrap_or("")) {
            let value = value.trim().to_owned();
            match name.as_str() {
                "event" => f.event_text = value,
                "repo" => f.repo = value,
                "status" => f.status = value,
                "state" => f.state = value,
                _ => {}
            }
        }
        if !f.event_text.is_empty() {
            f.event =
                Some(EventFilter::parse(&f.event_text).map_err(|e| format!("event filter: {e}"))?);
        }
        if !f.state.is_empty() && !matches!(f.state.as_str(), "pending" | "ok" | "dead") {
            return Err(format!(
                "state filter: {:?} is not one of pending, ok, dead",
                f.state
            ));
        }
        Ok(f)
    }

    /// Whether a live row passes. A filter on something the row does not know yet
    /// (a run state, without a store) does not let it through.
    pub(crate) fn matches(&self, d: &Accepted) -> bool {
        if let Some(filter) = &self.event
            && !filter.matches(&d.event, &d.action)
        {
            return false;
        }
        if !self.repo.is_empty() && !d.repo.as_deref().is_some_and(|r| glob(&self.repo, r)) {
            return false;
        }
        if !self.status.is_empty() && d.status.as_deref() != Some(self.status.as_str()) {
            return false;
        }
        if !self.state.is_empty() && !d.runs.iter().any(|(_, s)| *s == self.state) {
            return false;
        }
        true
    }
}

/// `*` (any run) and `?` (one character) globs, case-sensitive, as the store's repo
/// filter reads them.
pub(crate) fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::glob;

    #[test]
    fn globs() {
        assert!(glob("octocat/*", "octocat/hello-world"));
        assert!(glob("*/hello-?orld", "octocat/hello-world"));
        assert!(!glob("octocat/*", "Octocat/x"));
        assert!(glob("*", ""));
        assert!(!glob("a?", "a"));
    }
}
