//! `dronehook events show ID`: one event as received (signatures and credentials
//! shortened), its verification, its payload, and every handler run.

use std::fmt::Write as _;

use clap::Args;
use dronehook_protocol::BodyDigest;
use dronehook_server::{HandlerRun, StoredEvent};
use serde_json::{Value, json};

use super::list::{run_json, summary_json};
use super::{StoreArg, filter_name, moment, short};
use crate::Outcome;
use crate::output::{self, Painter};

#[derive(Args, Debug)]
pub(crate) struct ShowArgs {
    #[command(flatten)]
    pub(crate) store: StoreArg,
    /// The event's ID (the first column of `events list`).
    #[arg(value_name = "ID", value_parser = super::parse_id)]
    pub(crate) id: i64,
    /// Print it as one JSON object.
    #[arg(long, conflicts_with = "raw")]
    pub(crate) json: bool,
    /// Print only the body, exactly the bytes received.
    #[arg(long)]
    pub(crate) raw: bool,
}

pub(crate) async fn run(args: ShowArgs) -> anyhow::Result<Outcome> {
    let store = args.store.open(false).await?;
    let event = fetch(&store, args.id).await?;
    if args.raw {
        if event.summary.erased {
            anyhow::bail!("event {} was erased: its body is gone", args.id);
        }
        output::out_bytes(&event.body)?;
    } else if args.json {
        output::out_line(&serde_json::to_string_pretty(&event_json(&event))?)?;
    } else {
        output::out_bytes(text(&event, Painter::stdout()).as_bytes())?;
    }
    Ok(Outcome::Ok)
}

/// The event, or a failure (exit 1) naming the ID when the store has none.
pub(crate) async fn fetch(store: &dronehook_server::Store, id: i64) -> anyhow::Result<StoredEvent> {
    store
        .get(id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("no event {id} in the store"))
}

/// What the receiver found when it verified the request, as far as the store knows.
fn verification(e: &StoredEvent) -> String {
    let signature = match e.secret_index {
        Some(i) => format!("signature valid (secret #{} of the receiver's)", i + 1),
        None => "not verified: the receiver ran with --insecure-no-verify".to_owned(),
    };
    let body = if e.summary.erased {
        "body erased"
    } else if BodyDigest::of(&e.body) == e.digest {
        "body matches its digest"
    } else {
        "body does NOT match its digest"
    };
    format!("{signature}; {body}")
}

fn text(e: &StoredEvent, paint: Painter) -> String {
    let s = &e.summary;
    let mut text = String::new();
    let name = filter_name(&s.event, &s.action);
    let known = if s.known {
        ""
    } else {
        " (unknown to this dronehook)"
    };
    let _ = writeln!(
        text,
        "{}",
        paint.bold(&format!("event {}  {name}{known}", s.id))
    );
    let field = |text: &mut String, label: &str, value: &str| {
        let _ = writeln!(text, "{:10} {value}", paint.dim(label));
    };
    field(&mut text, "received", &moment(s.received_at));
    if let Some(repo) = &s.repo {
        field(&mut text, "repo", repo);
    }
    match (s.build, &s.build_status) {
        (Some(n), Some(status)) => field(&mut text, "build", &format!("#{n} {status}")),
        (Some(n), None) => field(&mut text, "build", &format!("#{n}")),
        _ => {}
    }
    field(&mut text, "digest", &e.digest.header_value());
    field(&mut text, "verified", &verification(e));
    if s.erased {
        field(&mut text, "erased", "payload and headers removed for good");
    }

    let _ = writeln!(text, "\n{}", paint.bold("headers"));
    if e.headers.is_empty() {
        let _ = writeln!(text, "  (none kept)");
    }
    for (name, value) in &e.headers {
        let _ = writeln!(text, "  {name}: {}", shown_header(name, value));
    }

    let _ = writeln!(text, "\n{}", paint.bold("runs"));
    if s.runs.is_empty() {
        let _ = writeln!(text, "  (no handler)");
    }
    let width = s.runs.iter().map(|r| r.handler.len()).max().unwrap_or(0);
    for run in &s.runs {
        let _ = writeln!(text, "  {}", run_line(run, width, paint));
        if let Some(output) = run.output.as_deref().filter(|o| !o.is_empty()) {
            let _ = writeln!(text, "    output (its end, at most 64 KiB):");
            for line in String::from_utf8_lossy(output).lines() {
                let _ = writeln!(text, "    | {line}");
            }
        }
    }

    let _ = writeln!(text, "\n{}", paint.bold("payload"));
    if s.erased {
        let _ = writeln!(text, "  (erased)");
    } else {
        match serde_json::from_slice::<Value>(&e.body) {
            Ok(value) => {
                let pretty = serde_json::to_string_pretty(&value).unwrap_or_default();
                let _ = writeln!(text, "{pretty}");
            }
            Err(_) => {
                let _ = writeln!(
                    text,
                    "  (not JSON, {} bytes; `--raw` prints them)",
                    e.body.len()
                );
            }
        }
    }
    text
}

/// `exec  dead  3 attempts  1.2s  --exec exited with status 3  (next ...)`.
fn run_line(r: &HandlerRun, width: usize, paint: Painter) -> String {
    let state = r.status.as_str();
    let painted = match state {
        "ok" => paint.good(&format!("{state:7}")),
        "dead" => paint.bad(&format!("{state:7}")),
        _ => paint.warn(&format!("{state:7}")),
    };
    let attempts = match r.attempts {
        1 => "1 attempt".to_owned(),
        n => format!("{n} attempts"),
    };
    let mut line = format!("{:width$}  {painted}  {attempts:11}", r.handler);
    if let Some(d) = r.last_duration {
        let _ = write!(line, "  {:>7}", short(d));
    }
    if let Some(error) = &r.last_error {
        let _ = write!(line, "  {error}");
    }
    if let (Some(next), "pending") = (r.next_at, state) {
        let _ = write!(line, "  (next attempt {})", moment(next));
    }
    line
}

fn event_json(e: &StoredEvent) -> Value {
    let mut value = summary_json(&e.summary);
    value["runs"] = json!(e.summary.runs.iter().map(run_json).collect::<Vec<_>>());
    value["digest"] = json!(e.digest.header_value());
    value["secret_index"] = json!(e.secret_index);
    value["verification"] = json!(verification(e));
    value["headers"] = json!(
        e.headers
            .iter()
            .map(|(n, v)| json!([n, shown_header(n, v)]))
            .collect::<Vec<_>>()
    );
    value["payload"] = if e.summary.erased {
        Value::Null
    } else {
        serde_json::from_slice(&e.body).unwrap_or(Value::Null)
    };
    value["body_bytes"] = json!(e.body.len());
    value
}

/// A header's value as shown: signatures shortened, credentials hidden, the rest as
/// received (bytes that are not UTF-8 escaped).
pub(crate) fn shown_header(name: &str, value: &[u8]) -> String {
    let text = String::from_utf8_lossy(value);
    let lower = name.to_ascii_lowercase();
    if lower == "signature" || (lower == "authorization" && starts_with_ci(&text, "signature ")) {
        return shorten_signature(&text);
    }
    if matches!(
        lower.as_str(),
        "authorization" | "proxy-authorization" | "cookie" | "set-cookie"
    ) || lower.contains("secret")
        || lower.contains("token")
        || lower.contains("api-key")
    {
        // The scheme (`Basic`, `Bearer`) says what it was without giving it away.
        return match text.split_once(' ') {
            Some((scheme, _)) if lower.ends_with("authorization") => {
                format!("{scheme} [redacted]")
            }
            _ => "[redacted]".to_owned(),
        };
    }
    printable(&text)
}

/// The text with control characters (a terminal's escape sequences among them) shown
/// as `\u{1b}`; everything else, quotes included, as it is.
fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}

fn starts_with_ci(text: &str, prefix: &str) -> bool {
    text.len() >= prefix.len()
        && text.as_bytes()[..prefix.len()].eq_ignore_ascii_case(prefix.as_bytes())
}

/// Keeps a `Signature` header's parameters but only the first characters of its
/// `signature="..."` value: enough to tell two apart, never enough to reuse one.
fn shorten_signature(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut rest_start = 0;
    let mut search = 0;
    while let Some(found) = lower[search..].find("signature=\"") {
        let at = search + found;
        // Only the parameter named exactly `signature` (not `xsignature`).
        let starts_param = at == 0 || matches!(lower.as_bytes()[at - 1], b',' | b' ' | b'\t');
        let value_start = at + "signature=\"".len();
        let Some(len) = text[value_start..].find('"') else {
            break;
        };
        if starts_param {
            let value = &text[value_start..value_start + len];
            out.push_str(&text[rest_start..value_start]);
            let keep: String = value.chars().take(6).collect();
            let _ = write!(out, "{keep}...({} chars)", value.chars().count());
            rest_start = value_start + len;
        }
        search = value_start + len;
    }
    out.push_str(&text[rest_start..]);
    printable(&out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_shortened_and_credentials_hidden() {
        let sig = r#"keyId="hmac-key",algorithm="hmac-sha256",signature="AbCdEfGhIjKlMnOpQrStUvWxYz0123456789abcdefg=",headers="date digest""#;
        assert_eq!(
            shown_header("Signature", sig.as_bytes()),
            r#"keyId="hmac-key",algorithm="hmac-sha256",signature="AbCdEf...(44 chars)",headers="date digest""#
        );
        assert_eq!(
            shown_header("Authorization", b"Basic dXNlcjpwYXNz"),
            "Basic [redacted]"
        );
        assert_eq!(shown_header("X-Api-Token", b"abc"), "[redacted]");
        assert_eq!(
            shown_header("Content-Type", b"application/json"),
            "application/json"
        );
        assert_eq!(shown_header("X-Note", b"a\x1b[31mred"), "a\\u{1b}[31mred");
        assert!(
            shown_header("Authorization", format!("Signature {sig}").as_bytes())
                .contains("signature=\"AbCdEf...(44 chars)\"")
        );
    }
}
