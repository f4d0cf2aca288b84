//! What a send reports: an [`EndpointReport`] per endpoint and event, a [`Report`] per
//! event, a [`Summary`] per endpoint for bulk sends.

use std::time::Duration;

use dronehook_protocol::BodyDigest;
use http::StatusCode;

use crate::Error;

/// The outcome of one event at one endpoint, after all its attempts.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct EndpointReport {
    /// The endpoint's URL, as configured.
    pub endpoint: String,
    /// The endpoint's index in the client's endpoint list.
    pub endpoint_index: usize,
    /// The status of the last response, if any attempt got one.
    pub status: Option<StatusCode>,
    /// How many attempts were made (at least 1).
    pub attempts: u32,
    /// Time from the first attempt's start to the end of the last one, waits included.
    pub elapsed: Duration,
    /// Why the delivery failed; `None` when the last attempt got a 2xx.
    pub error: Option<Error>,
    /// Whether the receiver answered 2xx with `Dronehook-Duplicate: true`: it had
    /// accepted this body before (a replay), and did not handle it again.
    pub duplicate: bool,
}

impl EndpointReport {
    /// Whether the receiver answered 2xx.
    pub fn is_success(&self) -> bool {
        self.error.is_none()
    }

    /// Whether the receiver said it had this body already (see
    /// [`duplicate`](Self::duplicate)). A duplicate is also a success.
    pub fn is_duplicate(&self) -> bool {
        self.error.is_none() && self.duplicate
    }

    /// The error's class (see [`Error::class`]), or `ok`.
    pub fn class(&self) -> &'static str {
        self.error.as_ref().map_or("ok", Error::class)
    }
}

/// The outcome of one event: a report per endpoint, in the client's endpoint order.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct Report {
    /// The `X-Drone-Event` value.
    pub event: String,
    /// The action (may be empty).
    pub action: String,
    /// The body's SHA-256: the receiver's dedupe key.
    pub digest: BodyDigest,
    /// Whether the event filter let the event through. When it did not, nothing was
    /// sent and [`endpoints`](Self::endpoints) is empty.
    pub sent: bool,
    /// One entry per endpoint, in the client's endpoint order.
    pub endpoints: Vec<EndpointReport>,
}

impl Report {
    /// Whether every endpoint answered 2xx (true for a filtered-out event too).
    pub fn is_success(&self) -> bool {
        self.endpoints.iter().all(EndpointReport::is_success)
    }

    /// Whether the event filter dropped the event.
    pub fn is_filtered(&self) -> bool {
        !self.sent
    }

    /// The endpoints that answered 2xx but said they had this body already.
    pub fn duplicates(&self) -> impl Iterator<Item = &EndpointReport> {
        self.endpoints.iter().filter(|d| d.is_duplicate())
    }

    /// The endpoints that failed.
    pub fn failures(&self) -> impl Iterator<Item = &EndpointReport> {
        self.endpoints.iter().filter(|d| !d.is_success())
    }
}

/// Progress of a bulk send, given to its callback after each event completes.
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct Progress<'a> {
    /// The event's position in the input.
    pub index: usize,
    /// How many events have completed so far, this one included.
    pub completed: usize,
    /// How many events there are, when the input's size is known.
    pub total: Option<usize>,
    /// The event's report.
    pub report: &'a Report,
}

/// The results of a bulk send: one report per input event, in input order.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct BulkReport {
    /// The reports, in input order.
    pub reports: Vec<Report>,
}

impl BulkReport {
    /// Whether every event reached every endpoint.
    pub fn is_success(&self) -> bool {
        self.reports.iter().all(Report::is_success)
    }

    /// Per-endpoint totals, in the client's endpoint order.
    pub fn summary(&self) -> Summary {
        Summary::of(&self.reports)
    }
}

/// Per-endpoint totals over many reports (the CLI's result table).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Summary {
    /// Events the filter dropped.
    pub filtered: usize,
    /// One row per endpoint, in the client's endpoint order.
    pub endpoints: Vec<EndpointSummary>,
}

/// Totals for one endpoint.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EndpointSummary {
    /// The endpoint's URL.
    pub endpoint: String,
    /// Events answered with 2xx, duplicates not included.
    pub delivered: usize,
    /// Events answered with 2xx that the receiver said it had already (see
    /// [`EndpointReport::is_duplicate`]).
    pub duplicates: usize,
    /// Events that failed after all their attempts.
    pub failed: usize,
    /// Attempts made, retries included.
    pub attempts: u64,
    /// Failures counted by error class (see [`Error::class`]), sorted by class.
    pub failures_by_class: Vec<(&'static str, usize)>,
    /// The last failure's message, to show why.
    pub last_error: Option<String>,
    /// The longest delivery, waits included.
    pub max_elapsed: Duration,
}

impl Summary {
    /// Totals over these reports.
    pub fn of<'a>(reports: impl IntoIterator<Item = &'a Report>) -> Summary {
        let mut summary = Summary::default();
        for report in reports {
            if !report.sent {
                summary.filtered += 1;
                continue;
            }
            for d in &report.endpoints {
                if summary.endpoints.len() <= d.endpoint_index {
                    summary
                        .endpoints
                        .resize_with(d.endpoint_index + 1, EndpointSummary::default);
                }
                let row = &mut summary.endpoints[d.endpoint_index];
                if row.endpoint.is_empty() {
                    row.endpoint.clone_from(&d.endpoint);
                }
                row.attempts += u64::from(d.attempts);
                row.max_elapsed = row.max_elapsed.max(d.elapsed);
                match &d.error {
                    None if d.duplicate => row.duplicates += 1,
                    None => row.delivered += 1,
                    Some(e) => {
                        row.failed += 1;
                        let class = e.class();
                        if let Some((_, n)) =
                            row.failures_by_class.iter_mut().find(|(c, _)| *c == class)
                        {
                            *n += 1;
                        } else {
                            row.failures_by_class.push((class, 1));
                            row.failures_by_class.sort_unstable();
                        }
                        row.last_error = Some(e.to_string());
                    }
                }
            }
        }
        summary
    }
}
