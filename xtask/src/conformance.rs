//! `cargo xtask conformance`: every fixture through every path between the crates and
//! the `dronehook` binary, printed as a table of (case, path, expected, got, verdict).
//!
//! A path that cannot run (its crate or subcommand is not there, or the binary does
//! not build) is reported row by row as "not available" and counts as a failure to
//! run: the matrix passes only when every row ran and passed.

mod cli;
mod hostile;
mod libs;

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};
use dronehook_protocol::samples;
use dronehook_protocol::{Envelope, Policy, RequestParts};

use crate::fixtures::{SECRET, signing_time};

/// One payload the matrix runs.
#[derive(Clone, Debug)]
pub(crate) struct Case {
    /// `payloads/NAME` or `corpus/NAME`.
    pub(crate) name: String,
    /// The file the body was read from.
    pub(crate) file: PathBuf,
    /// The exact body bytes.
    pub(crate) body: Vec<u8>,
    /// The `X-Drone-Event` header that goes with it.
    pub(crate) header_event: String,
    /// Whether the body is Drone's own encoding (so it must re-encode to itself).
    pub(crate) drone: bool,
    /// The signed raw request in `fixtures/requests/`, for samples.
    pub(crate) request: Option<PathBuf>,
}

/// How a row ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// The path ran and gave what was expected.
    Pass,
    /// The path ran and gave something else.
    Fail,
    /// The path could not run.
    NotAvailable,
}

/// One line of the table.
#[derive(Clone, Debug)]
pub(crate) struct Row {
    pub(crate) case: String,
    pub(crate) path: &'static str,
    pub(crate) expected: String,
    pub(crate) got: String,
    pub(crate) verdict: Verdict,
}

impl Row {
    /// A row that ran: it passes when `got` is what was expected.
    pub(crate) fn ran(case: &str, path: &'static str, expected: String, got: String) -> Row {
        let verdict = if got == expected {
            Verdict::Pass
        } else {
            Verdict::Fail
        };
        Row {
            case: case.to_owned(),
            path,
            expected,
            got,
            verdict,
        }
    }

    /// A row whose path could not run, and why.
    pub(crate) fn unavailable(case: &str, path: &'static str, expected: String, why: &str) -> Row {
        Row {
            case: case.to_owned(),
            path,
            expected,
            got: format!("not available: {why}"),
            verdict: Verdict::NotAvailable,
        }
    }
}

/// The paths, named as the table shows them.
pub(crate) mod paths {
    /// Protocol: decode, then encode.
    pub(crate) const DECODE_ENCODE: &str = "protocol decode->encode";
    /// Protocol: the committed signed request verifies and decodes to the payload.
    pub(crate) const REQUEST_VERIFY: &str = "protocol requests/ verify";
    /// The client library signs and sends, the server library verifies and delivers.
    pub(crate) const CLIENT_SERVER: &str = "client->server";
    /// `dronehook fixtures show`: the binary's built-in samples.
    pub(crate) const FIXTURES_SHOW: &str = "dronehook fixtures show";
    /// `dronehook encode`: Drone's bytes for a payload.
    pub(crate) const ENCODE: &str = "dronehook encode";
    /// `dronehook verify` on the committed signed request.
    pub(crate) const VERIFY_REQUEST: &str = "dronehook verify requests/";
    /// `dronehook sign` then `dronehook verify`.
    pub(crate) const SIGN_VERIFY: &str = "dronehook sign->verify";
    /// `dronehook send` to `dronehook serve`.
    pub(crate) const SEND_SERVE: &str = "dronehook send->serve";
    /// A hostile request sent to `dronehook serve`.
    pub(crate) const HOSTILE_SERVER: &str = "hostile->serve";
    /// A hostile request checked by `dronehook verify`.
    pub(crate) const HOSTILE_VERIFY: &str = "hostile->verify";
}

/// Reads every fixture payload: the samples' payloads, then the corpus.
pub(crate) fn cases(root: &Path) -> Result<(Vec<Case>, Vec<Row>)> {
    let fixtures = root.join("fixtures");
    let mut cases = Vec::new();
    let mut problems = Vec::new();
    for file in json_files(&fixtures.join("payloads"))? {
        let stem = stem(&file);
        let name = format!("payloads/{stem}");
        let body = fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
        let Some(sample) = samples::get(&stem) else {
            problems.push(Row::ran(
                &name,
                paths::DECODE_ENCODE,
                "a sample of this name".into(),
                "no such sample: run `cargo xtask fixtures`".into(),
            ));
            continue;
        };
        let request = fixtures.join("requests").join(format!("{stem}.http"));
        cases.push(Case {
            name,
            file,
            body,
            header_event: sample.header_event.to_owned(),
            drone: sample.drone,
            request: Some(request),
        });
    }
    for file in json_files(&fixtures.join("corpus"))? {
        let body = fs::read(&file).with_context(|| format!("reading {}", file.display()))?;
        // The captures name their event in the body, as real Drone payloads do.
        let header_event = Envelope::decode(&body)
            .map(|e| e.event.as_str().to_owned())
            .unwrap_or_default();
        cases.push(Case {
            name: format!("corpus/{}", stem(&file)),
            file,
            body,
            header_event,
            drone: false,
            request: None,
        });
    }
    if cases.is_empty() {
        bail!(
            "no fixture payloads in {}: run `cargo xtask fixtures`",
            fixtures.display()
        );
    }
    Ok((cases, problems))
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}

fn json_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    for entry in entries {
        let path = entry?.path();
        if path.extension().is_some_and(|e| e == "json") {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

/// The event a case decodes to, as `event action`, the way every path reports it.
pub(crate) fn event_action(envelope: &Envelope) -> String {
    format!("{} {}", envelope.event.as_str(), envelope.action.as_str())
}

/// What every delivery path must deliver for a case: the decoded event and action.
pub(crate) fn expected_delivery(case: &Case) -> String {
    match Envelope::decode_with_header(&case.body, Some(&case.header_event)) {
        Ok(envelope) => event_action(&envelope),
        Err(err) => format!("(the payload does not decode: {})", err.code()),
    }
}

/// Protocol: decode, then encode.
fn decode_encode(case: &Case) -> Row {
    let expected = if case.drone {
        "re-encodes to the same bytes".to_owned()
    } else {
        "decodes; encoding is a fixed point".to_owned()
    };
    let got = match Envelope::decode_with_header(&case.body, Some(&case.header_event)) {
        Err(err) => format!("decode failed: {err}"),
        Ok(envelope) => {
            let encoded = envelope.encode();
            if case.drone {
                if encoded == case.body {
                    expected.clone()
                } else {
                    let at = encoded
                        .iter()
                        .zip(&case.body)
                        .take_while(|(a, b)| a == b)
                        .count();
                    format!("differs from byte {at}")
                }
            } else {
                // A documentation example or pretty-printed body cannot re-encode to itself; its
                // encoding must decode to the same envelope and encode to itself.
                match Envelope::decode(&encoded) {
                    Ok(again) if again == envelope && again.encode() == encoded => expected.clone(),
                    Ok(_) => "the re-encoded body decodes to something else".to_owned(),
                    Err(err) => format!("the re-encoded body does not decode: {err}"),
                }
            }
        }
    };
    Row::ran(&case.name, paths::DECODE_ENCODE, expected, got)
}

/// Protocol: the committed request verifies with the fixture secret at the fixture
/// date, and carries exactly the payload.
fn request_verify(case: &Case, request: &Path) -> Row {
    let expected = format!("valid, {}", expected_delivery(case));
    let got = (|| -> Result<String> {
        let bytes = fs::read(request).with_context(|| format!("reading {}", request.display()))?;
        let req = dronehook_audit::raw::Request::parse(&bytes)?;
        if req.body != case.body {
            return Ok("the request's body is not the payload".into());
        }
        let parts = RequestParts::new(&req.method, &req.target, &req.headers, &req.body);
        Ok(
            match Policy::new(SECRET).verify_and_decode(&parts, signing_time()) {
                Ok((_, envelope)) => format!("valid, {}", event_action(&envelope)),
                Err(err) => format!("invalid: {}", err.code()),
            },
        )
    })()
    .unwrap_or_else(|e| format!("error: {e:#}"));
    Row::ran(&case.name, paths::REQUEST_VERIFY, expected, got)
}

/// `cargo xtask conformance`.
pub(crate) fn run(root: &Path) -> Result<()> {
    let (cases, mut rows) = cases(root)?;
    for case in &cases {
        rows.push(decode_encode(case));
        if let Some(request) = &case.request {
            rows.push(request_verify(case, request));
        }
    }
    rows.extend(libs::client_server(&cases));

    let binary = cli::build(root);
    rows.extend(cli::show_and_encode(binary.as_ref(), &cases));
    rows.extend(cli::verify_requests(binary.as_ref(), &cases));
    rows.extend(cli::sign_verify(binary.as_ref(), &cases));
    rows.extend(cli::send_serve(binary.as_ref(), &cases));

    let catalog = dronehook_audit::all();
    rows.extend(hostile::run_all(binary.as_ref(), &catalog));

    print!("{}", table(&rows));
    let count = |v| rows.iter().filter(|r| r.verdict == v).count();
    let (pass, fail, unavailable) = (
        count(Verdict::Pass),
        count(Verdict::Fail),
        count(Verdict::NotAvailable),
    );
    println!(
        "conformance: {} rows: {pass} ok, {fail} wrong, {unavailable} not available (failed to run)",
        rows.len()
    );
    if fail + unavailable > 0 {
        bail!("conformance: {fail} rows gave the wrong result and {unavailable} could not run");
    }
    Ok(())
}

/// Renders the rows as an aligned table.
pub(crate) fn table(rows: &[Row]) -> String {
    let head = ["case", "path", "expected", "got", "verdict"];
    let cells: Vec<[String; 5]> = rows
        .iter()
        .map(|r| {
            let verdict = match r.verdict {
                Verdict::Pass => "ok",
                Verdict::Fail => "FAIL",
                Verdict::NotAvailable => "NOT RUN",
            };
            [
                r.case.clone(),
                r.path.to_owned(),
                r.expected.clone(),
                r.got.clone(),
                verdict.to_owned(),
            ]
        })
        .collect();
    let mut widths = head.map(str::len);
    for row in &cells {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cols: [&str; 5]| {
        let mut text = String::new();
        for (i, (cell, w)) in cols.iter().zip(widths).enumerate() {
            if i + 1 == cols.len() {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<w$}  ");
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(head);
    for row in &cells {
        line([&row[0], &row[1], &row[2], &row[3], &row[4]]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_pass_only_when_got_is_expected_and_the_table_aligns() {
        let rows = vec![
            Row::ran("payloads/a", paths::DECODE_ENCODE, "x".into(), "x".into()),
            Row::ran(
                "corpus/bb",
                paths::SEND_SERVE,
                "delivered: user created".into(),
                "nothing".into(),
            ),
            Row::unavailable(
                "hostile/c",
                paths::HOSTILE_VERIFY,
                "date.stale".into(),
                "no verify",
            ),
        ];
        let verdicts: Vec<Verdict> = rows.iter().map(|r| r.verdict).collect();
        assert_eq!(
            verdicts,
            [Verdict::Pass, Verdict::Fail, Verdict::NotAvailable]
        );
        assert_eq!(
            table(&rows),
            "\
case        path                     expected                 got                       verdict
payloads/a  protocol decode->encode  x                        x                         ok
corpus/bb   dronehook send->serve    delivered: user created  nothing                   FAIL
hostile/c   hostile->verify          date.stale               not available: no verify  NOT RUN
"
        );
    }
}
