//! `dronehook verify`: checks a captured request the way `dronehook serve` would.

use std::time::SystemTime;

use dronehook_protocol::http::{HeaderMap, HeaderName, HeaderValue};
use dronehook_protocol::{Policy, RequestParts};
use serde_json::{Value, json};

use crate::args::VerifyArgs;
use crate::cmd::parse_moment;
use crate::input::{self, reason};
use crate::output::{self, Painter};
use crate::{Outcome, summary, usage};

/// Verifies and decodes; prints `valid  ...` or the error's code and explanation.
pub(crate) fn run(args: &VerifyArgs) -> anyhow::Result<Outcome> {
    let secrets = args.secrets.gather()?;
    if secrets.is_empty() {
        return Err(usage(
            "no secret: give --secret or --secret-file, or set DRONE_SECRET or DRONE_WEBHOOK_SECRET",
        ));
    }
    let at = match &args.at {
        Some(text) => parse_moment("--at", text)?,
        None => SystemTime::now(),
    };

    let (method, target, headers, body) = if let Some(file) = &args.request {
        let bytes = if file == "-" {
            input::read_stdin()?
        } else {
            std::fs::read(file).map_err(|e| usage(format!("cannot read {file}: {}", reason(&e))))?
        };
        let req = dronehook_audit::raw::Request::parse(&bytes)
            .map_err(|e| usage(format!("{file}: {e}")))?;
        (req.method, req.target, req.headers, req.body)
    } else {
        if args.headers.is_empty() {
            return Err(usage(
                "nothing to verify: give --request FILE, or the headers with -H",
            ));
        }
        let headers = parse_headers(&args.headers)?;
        let body = input::read_one(args.body.as_deref().unwrap_or("-"))?.body;
        (args.method.clone(), args.target.clone(), headers, body)
    };

    let policy = Policy::with_secrets(secrets).max_skew(args.max_skew);
    let request = RequestParts::new(&method, &target, &headers, &body);
    let paint = Painter::stdout();
    match policy.verify_and_decode(&request, at) {
        Ok((verified, envelope)) => {
            if args.json {
                let mut map = summary::json_fields(&envelope);
                map.insert("valid".into(), json!(true));
                map.insert("secret_index".into(), json!(verified.secret_index));
                map.insert("key_id".into(), json!(verified.key_id));
                map.insert(
                    "date".into(),
                    json!(dronehook_protocol::http_date(verified.date)),
                );
                output::out_line(&Value::Object(map).to_string())?;
            } else {
                output::out_line(&format!(
                    "{}  {}",
                    paint.good("valid"),
                    summary::headline(&envelope)
                ))?;
            }
            Ok(Outcome::Ok)
        }
        Err(err) => {
            if args.json {
                let text = err.to_string();
                let message = text.split_once(": ").map_or(text.as_str(), |(_, m)| m);
                output::out_line(
                    &json!({"valid": false, "code": err.code(), "message": message}).to_string(),
                )?;
            } else {
                let text = err.to_string();
                let line = match text.split_once(": ") {
                    Some((code, rest)) => format!("{}: {rest}", paint.bad(code)),
                    None => text,
                };
                output::out_line(&line)?;
            }
            Ok(Outcome::Failed)
        }
    }
}

/// Reads `-H 'Name: value'` arguments; a name given twice keeps both values, as a
/// request would.
fn parse_headers(lines: &[String]) -> anyhow::Result<HeaderMap> {
    let mut headers = HeaderMap::new();
    for line in lines {
        let (name, value) = line.split_once(':').ok_or_else(|| {
            usage(format!(
                "invalid header {line:?}: write it as 'Name: value'"
            ))
        })?;
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| usage(format!("invalid header name {:?}", name.trim())))?;
        let value = HeaderValue::from_str(value.trim())
            .map_err(|_| usage(format!("invalid value in header {name}")))?;
        headers.append(name, value);
    }
    Ok(headers)
}
