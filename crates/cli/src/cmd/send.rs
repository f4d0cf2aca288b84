//! `dronehook send`: delivers payloads to every endpoint with dronehook-client, then
//! prints a line per event and a result table per endpoint.

use std::fmt::Write as _;
use std::io::IsTerminal as _;

use dronehook_client::{BulkReport, Client, ClientBuilder, Payload};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::{Value, json};

use crate::args::{DeliveryArgs, SendArgs};
use crate::cmd::encode::{decode, drone_action};
use crate::cmd::parse_url;
use crate::output::{self, Painter};
use crate::{Outcome, input, usage};

/// How many deliveries may be in flight per endpoint.
const CONCURRENCY: usize = 8;

/// Sends every input to every endpoint; fails (exit 1) when any delivery failed.
pub(crate) fn run(args: SendArgs) -> anyhow::Result<Outcome> {
    let builder = client_builder(&args.delivery)?;
    let filter = args.events.filter()?;

    let inputs = input::read_many(&args.inputs)?;
    let mut payloads = Vec::with_capacity(inputs.len());
    for item in &inputs {
        let header_event = args.event.as_deref().or(item.header_event.as_deref());
        let payload = if args.raw {
            match Payload::raw_detect(item.body.clone(), header_event) {
                Ok(p) => p,
                // Raw bytes need not be a payload at all; with --event they go as they are.
                Err(_) if header_event.is_some() => {
                    Payload::raw(item.body.clone(), header_event.unwrap_or_default(), "")
                }
                Err(e) => {
                    return Err(usage(format!(
                        "{}: {e}; give --event to send it anyway",
                        item.label
                    )));
                }
            }
        } else {
            let mut envelope = decode(&item.label, &item.body, header_event)?;
            drone_action(&mut envelope);
            Payload::from_envelope(&envelope)
        };
        payloads.push(payload);
    }

    let client = builder
        .events(filter)
        .build()
        .map_err(|e| usage(e.to_string()))?;

    let bar = progress_bar(payloads.len(), 2);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let bulk = runtime.block_on(client.send_all(payloads, CONCURRENCY, |p| {
        if let Some(bar) = &bar {
            bar.set_position(p.completed as u64);
        }
    }));
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }

    let labels: Vec<String> = inputs.iter().map(|i| i.label.clone()).collect();
    if args.json {
        output::out_line(&serde_json::to_string_pretty(&as_json(&labels, &bulk))?)?;
    } else {
        print_results(&labels, &bulk, "--events")?;
    }
    Ok(if bulk.is_success() {
        Outcome::Ok
    } else {
        Outcome::Failed
    })
}

/// The `--endpoint` values, checked: at least one, each an http(s) URL.
fn endpoints(given: &[String]) -> anyhow::Result<Vec<String>> {
    let endpoints: Vec<String> = given
        .iter()
        .map(|e| e.trim().to_owned())
        .filter(|e| !e.is_empty())
        .collect();
    if endpoints.is_empty() {
        return Err(usage(
            "no endpoint: give --endpoint or set DRONE_WEBHOOK_ENDPOINT",
        ));
    }
    for endpoint in &endpoints {
        parse_url(endpoint)?;
    }
    Ok(endpoints)
}

/// A client builder with the delivery flags' settings; the secret, the endpoints and
/// the `--ca-cert` files are checked here (usage errors).
pub(crate) fn client_builder(args: &DeliveryArgs) -> anyhow::Result<ClientBuilder> {
    let secret = args.secret.require()?;
    let endpoints = endpoints(&args.endpoint)?;
    let mut builder = Client::builder()
        .secret(secret)
        .endpoints(&endpoints)
        .timeout(args.timeout)
        .attempts(args.retries.saturating_add(1))
        .skip_verify(args.skip_verify);
    for file in &args.ca_cert {
        let pem = std::fs::read(file).map_err(|e| {
            usage(format!(
                "cannot read {}: {}",
                file.display(),
                input::reason(&e)
            ))
        })?;
        builder = builder.add_root_certificate(pem);
    }
    Ok(builder)
}

/// A progress bar on standard error, when there are at least `min` events and a
/// person watching.
pub(crate) fn progress_bar(count: usize, min: usize) -> Option<ProgressBar> {
    if count < min || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = ProgressBar::with_draw_target(Some(count as u64), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} events  {elapsed}") {
        bar.set_style(style);
    }
    Some(bar)
}

/// A line per event (labelled), then a table per endpoint; `filter_flag` names the
/// flag that leaves events out.
pub(crate) fn print_results(
    labels: &[String],
    bulk: &BulkReport,
    filter_flag: &str,
) -> anyhow::Result<()> {
    let paint = Painter::stdout();
    let mut text = String::new();
    let label_width = labels.iter().map(String::len).max().unwrap_or(0);
    for (label, report) in labels.iter().zip(&bulk.reports) {
        let kind = format!("{} {}", report.event, report.action);
        let outcome = if !report.sent {
            paint.dim("filtered")
        } else if report.is_success() {
            // A receiver that had the body already answers 2xx (Drone needs that) and
            // says so: the event was not delivered again.
            let duplicates = report.duplicates().count();
            if duplicates == 0 {
                paint.good("delivered")
            } else if duplicates == report.endpoints.len() {
                paint.warn("duplicate")
            } else {
                paint.good(&format!(
                    "delivered (duplicate at {duplicates} of {} endpoints)",
                    report.endpoints.len()
                ))
            }
        } else {
            let failed = report.failures().count();
            paint.bad(&format!(
                "failed at {failed} of {} endpoints",
                report.endpoints.len()
            ))
        };
        let _ = writeln!(text, "{label:label_width$}  {kind:16}  {outcome}");
    }
    let summary = bulk.summary();
    let width = summary
        .endpoints
        .iter()
        .map(|e| e.endpoint.len())
        .max()
        .unwrap_or(0)
        .max(8);
    // The duplicate column is there only when a receiver reported one, so the usual
    // table stays as it was.
    let any_duplicate = summary.endpoints.iter().any(|e| e.duplicates > 0);
    let duplicate_head = if any_duplicate { "  duplicate" } else { "" };
    text.push('\n');
    text.push_str(&paint.bold(&format!(
        "{:width$}  {:>9}{duplicate_head}  {:>6}  {:>8}  last error",
        "endpoint", "delivered", "failed", "attempts"
    )));
    text.push('\n');
    for row in &summary.endpoints {
        let duplicates = if any_duplicate {
            format!("  {:>9}", row.duplicates)
        } else {
            String::new()
        };
        let failed = format!("{:>6}", row.failed);
        let failed = if row.failed > 0 {
            paint.bad(&failed)
        } else {
            failed
        };
        let _ = writeln!(
            text,
            "{:width$}  {:>9}{duplicates}  {failed}  {:>8}  {}",
            row.endpoint,
            row.delivered,
            row.attempts,
            row.last_error.as_deref().map_or_else(|| "-".into(), hinted)
        );
    }
    if summary.filtered > 0 {
        let _ = writeln!(
            text,
            "{} event(s) left out by {filter_flag}",
            summary.filtered
        );
    }
    output::out_bytes(text.as_bytes())?;
    Ok(())
}

/// The results as one JSON object.
pub(crate) fn as_json(labels: &[String], bulk: &BulkReport) -> Value {
    let events: Vec<Value> = labels
        .iter()
        .zip(&bulk.reports)
        .map(|(label, report)| {
            let deliveries: Vec<Value> = report
                .endpoints
                .iter()
                .map(|d| {
                    json!({
                        "endpoint": d.endpoint,
                        "status": d.status.map(|s| s.as_u16()),
                        "attempts": d.attempts,
                        "elapsed_ms": d.elapsed.as_millis() as u64,
                        "class": d.class(),
                        "duplicate": d.is_duplicate(),
                        "error": d.error.as_ref().map(|e| hinted(&e.to_string())),
                    })
                })
                .collect();
            json!({
                "input": label,
                "event": report.event,
                "action": report.action,
                "digest": report.digest.to_string(),
                "sent": report.sent,
                "ok": report.is_success(),
                "deliveries": deliveries,
            })
        })
        .collect();
    let summary = bulk.summary();
    let endpoints: Vec<Value> = summary
        .endpoints
        .iter()
        .map(|e| {
            json!({
                "endpoint": e.endpoint,
                "delivered": e.delivered,
                "duplicates": e.duplicates,
                "failed": e.failed,
                "attempts": e.attempts,
                "last_error": e.last_error.as_deref().map(hinted),
            })
        })
        .collect();
    json!({
        "ok": bulk.is_success(),
        "filtered": summary.filtered,
        "events": events,
        "endpoints": endpoints,
    })
}

/// A client error's message, with what to do in this CLI's terms where the library
/// (which names no command) says what is wrong: a CA certificate served as the
/// server's own gets `dronehook cert`, which makes a CA and a server certificate.
pub(crate) fn hinted(message: &str) -> String {
    if message.starts_with("TLS handshake failed: the server's certificate is a CA certificate") {
        format!("{message} (`dronehook cert --out DIR` makes both)")
    } else {
        message.to_owned()
    }
}
