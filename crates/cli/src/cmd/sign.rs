//! `dronehook sign`: the headers Drone would send with a body, as header lines, a
//! runnable curl command, or a complete raw request.

use std::fmt::Write as _;
use std::time::SystemTime;

use dronehook_protocol::{SignInput, Signer};
use serde_json::{Map, Value};

use crate::args::{SignArgs, SignFormat};
use crate::cmd::{body_event, parse_moment, parse_url};
use crate::{Outcome, input, output, usage};

/// Signs the input's bytes as they are.
pub(crate) fn run(args: &SignArgs) -> anyhow::Result<Outcome> {
    let secret = args.secret.require()?;
    // The URL is checked before the input is read, so a typo fails fast.
    let uri = parse_url(&args.url)?;
    let payload = input::read_one(&args.input)?;
    let event = args
        .event
        .clone()
        .or_else(|| payload.header_event.clone())
        .or_else(|| body_event(&payload.body))
        .ok_or_else(|| {
            usage(format!(
                "{} does not name its event; give --event",
                payload.label
            ))
        })?;
    let now = match &args.date {
        Some(text) => parse_moment("--date", text)?,
        None => SystemTime::now(),
    };
    let signed = Signer::new(secret)
        .key_id(args.key_id.clone())
        .sign(&SignInput::new(&payload.body, now))?;
    let headers = signed.headers(&event);

    if args.json {
        let map: Map<String, Value> = headers
            .iter()
            .map(|(n, v)| ((*n).to_owned(), Value::from(*v)))
            .collect();
        output::out_line(&serde_json::to_string_pretty(&Value::Object(map))?)?;
        return Ok(Outcome::Ok);
    }
    match args.format {
        SignFormat::Headers => {
            let mut text = String::new();
            for (name, value) in headers {
                let _ = writeln!(text, "{name}: {value}");
            }
            output::out_bytes(text.as_bytes())?;
        }
        SignFormat::Curl => {
            if payload.body.contains(&0) {
                return Err(usage(
                    "the body holds NUL bytes, which a shell argument cannot carry; use --format http",
                ));
            }
            let mut cmd = b"curl -sS --fail-with-body ".to_vec();
            cmd.extend_from_slice(&sh_quote(args.url.as_bytes()));
            for (name, value) in headers {
                cmd.extend_from_slice(b" \\\n  -H ");
                cmd.extend_from_slice(&sh_quote(format!("{name}: {value}").as_bytes()));
            }
            // --data-raw sends the text exactly: unlike --data it gives `@` no meaning.
            cmd.extend_from_slice(b" \\\n  --data-raw ");
            cmd.extend_from_slice(&sh_quote(&payload.body));
            cmd.push(b'\n');
            output::out_bytes(&cmd)?;
        }
        SignFormat::Http => {
            let host = uri.authority().map(ToString::to_string).unwrap_or_default();
            let target = uri.path_and_query().map_or("/", |p| p.as_str());
            let request =
                dronehook_audit::raw::write_request("POST", &host, target, &headers, &payload.body);
            output::out_bytes(&request)?;
        }
    }
    Ok(Outcome::Ok)
}

/// Quotes bytes for a POSIX shell: left bare when every byte is plainly safe, else
/// in single quotes, where only `'` itself needs care (`'\''`).
pub(crate) fn sh_quote(text: &[u8]) -> Vec<u8> {
    let safe = |b: &u8| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(b);
    if !text.is_empty() && text.iter().all(safe) {
        return text.to_vec();
    }
    let mut out = Vec::with_capacity(text.len() + 2);
    out.push(b'\'');
    for &b in text {
        if b == b'\'' {
            out.extend_from_slice(b"'\\''");
        } else {
            out.push(b);
        }
    }
    out.push(b'\'');
    out
}

#[cfg(test)]
mod tests {
    use super::sh_quote;

    #[test]
    fn quoting() {
        assert_eq!(sh_quote(b"http://x:3000/"), b"http://x:3000/");
        assert_eq!(sh_quote(b"it's"), b"'it'\\''s'");
        assert_eq!(sh_quote(b""), b"''");
        assert_eq!(sh_quote(b"$(rm -rf /)"), b"'$(rm -rf /)'");
    }
}
