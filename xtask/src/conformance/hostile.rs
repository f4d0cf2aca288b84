//! The hostile catalog, `fixtures/hostile/`: each case `NAME.http` (a raw request
//! template) with `NAME.expect` (its expected outcomes), run against `dronehook serve`
//! and `dronehook verify`.
//!
//! Templates are signed at run time, so the `Date` is fresh: `{{date}}` becomes the
//! current HTTP date, `{{digest}}` the body's `SHA-256=` digest, `{{signature}}` the
//! `Signature` value Drone would send for the body at that date with the fixture
//! secret, and `{{content-length}}` the body's length. The body is everything after
//! the first blank line, taken as is.
//!
//! `NAME.expect` has `key: value` lines (`#` starts a comment):
//! `server: STATUS CODE` (such as `server: 401 digest.mismatch`; `CODE` is the
//! response body's first line, `-` for an empty body) and `verify: CODE` (the code
//! `dronehook verify` reports, `valid` when it accepts, `-` when the case is about
//! the transport and `verify` has nothing to say).

use std::fs;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::{Context as _, Result, bail};
use dronehook_protocol::{SignInput, Signer};

use super::cli::{Binary, Serve, run};
use super::{Row, paths, raw};
use crate::fixtures::SECRET;

/// One catalog case.
#[derive(Debug, Clone)]
pub(crate) struct Case {
    pub(crate) name: String,
    template: Vec<u8>,
    /// `STATUS CODE` expected from the server.
    server: Option<String>,
    /// The code expected from `dronehook verify`; `None` when it does not apply.
    verify: Option<String>,
}

/// Reads the catalog; an empty or missing directory is an empty catalog.
pub(crate) fn load(dir: &Path) -> Result<Vec<Case>> {
    let mut templates: Vec<PathBuf> = match fs::read_dir(dir) {
        Ok(entries) => entries
            .map(|e| e.map(|e| e.path()))
            .collect::<std::io::Result<Vec<_>>>()?
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "http"))
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    templates.sort();
    templates
        .into_iter()
        .map(|path| {
            let name = path
                .file_stem()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let template =
                fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
            let expect_path = path.with_extension("expect");
            let expect = fs::read_to_string(&expect_path).with_context(|| {
                format!("reading {} (every case needs one)", expect_path.display())
            })?;
            let (server, verify) =
                parse_expect(&expect).with_context(|| format!("in {}", expect_path.display()))?;
            Ok(Case {
                name: format!("hostile/{name}"),
                template,
                server,
                verify,
            })
        })
        .collect()
}

fn parse_expect(text: &str) -> Result<(Option<String>, Option<String>)> {
    let (mut server, mut verify) = (None, None);
    for line in text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (key, value) = line
            .split_once(':')
            .with_context(|| format!("{line:?} is not `key: value`"))?;
        let value = value.split_whitespace().collect::<Vec<_>>().join(" ");
        match key.trim() {
            "server" => server = Some(value),
            "verify" => verify = (value != "-").then_some(value),
            other => bail!("unknown key {other:?} (expected `server` or `verify`)"),
        }
    }
    if server.is_none() {
        bail!("no `server:` line");
    }
    Ok((server, verify))
}

/// Fills a template's placeholders for a request sent at `now`.
pub(crate) fn render(template: &[u8], now: SystemTime) -> Result<Vec<u8>> {
    let at = template
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("the template has no blank line after its head")?;
    let (head, body) = (&template[..at + 4], &template[at + 4..]);
    let signed = Signer::new(SECRET).sign(&SignInput::new(body, now))?;
    let head = String::from_utf8_lossy(head)
        .replace("{{date}}", &signed.date)
        .replace("{{digest}}", &signed.digest)
        .replace("{{signature}}", &signed.signature)
        .replace("{{content-length}}", &body.len().to_string());
    let mut out = head.into_bytes();
    out.extend_from_slice(body);
    Ok(out)
}

/// Runs every case against one `dronehook serve` and against `dronehook verify`.
pub(crate) fn run_all(binary: Result<&Binary, &String>, catalog: &[Case]) -> Vec<Row> {
    if catalog.is_empty() {
        return Vec::new();
    }
    let mut rows = Vec::new();
    let server_rows = catalog
        .iter()
        .filter_map(|c| c.server.clone().map(|s| (c, s)));
    let serve = binary
        .map_err(String::clone)
        .and_then(|b| b.require(&["serve"]).map(|()| b))
        .and_then(|b| Serve::start(b, &[]).map_err(|e| format!("{e:#}")));
    for (case, expected) in server_rows {
        rows.push(match &serve {
            Err(why) => Row::unavailable(&case.name, paths::HOSTILE_SERVER, expected, why),
            Ok(serve) => {
                let got = render(&case.template, SystemTime::now())
                    .and_then(|req| raw::exchange(serve.addr, &req))
                    .map_or_else(
                        |e| format!("error: {e:#}"),
                        |resp| {
                            let text = String::from_utf8_lossy(&resp.body);
                            let code = text.lines().next().map_or("-", str::trim);
                            format!(
                                "{} {}",
                                resp.status,
                                if code.is_empty() { "-" } else { code }
                            )
                        },
                    );
                Row::ran(&case.name, paths::HOSTILE_SERVER, expected, got)
            }
        });
    }
    drop(serve);
    let verifier = binary
        .map_err(String::clone)
        .and_then(|b| b.require(&["verify"]).map(|()| b));
    for (i, case) in catalog.iter().enumerate() {
        let Some(expected) = case.verify.clone() else {
            continue;
        };
        rows.push(match verifier {
            Err(ref why) => Row::unavailable(&case.name, paths::HOSTILE_VERIFY, expected, why),
            Ok(binary) => {
                let got = verify(binary, case, i).unwrap_or_else(|e| format!("error: {e:#}"));
                Row::ran(&case.name, paths::HOSTILE_VERIFY, expected, got)
            }
        });
    }
    rows
}

/// What `dronehook verify` says: `valid`, or the code before the first `:` of its
/// first line (`digest.mismatch: the body is not the one that was signed`).
fn verify(binary: &Binary, case: &Case, i: usize) -> Result<String> {
    let request = render(&case.template, SystemTime::now())?;
    let file = binary.scratch.path().join(format!("hostile-{i}.http"));
    fs::write(&file, request)?;
    let out = run(
        &binary.path,
        &[
            "verify",
            "--request",
            &file.to_string_lossy(),
            "--secret",
            SECRET,
        ],
        None,
    )?;
    let line = out.first_line();
    Ok(match out.code {
        Some(0) => "valid".to_owned(),
        Some(1) => {
            let line = line.strip_prefix("error: ").unwrap_or(&line);
            line.split([':', ' ']).next().unwrap_or_default().to_owned()
        }
        code => format!("exit {code:?}: {line}"),
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn expectations_are_read_from_key_value_lines() {
        let (server, verify) =
            parse_expect("# A comment.\nserver: 401   digest.mismatch\nverify: digest.mismatch\n")
                .unwrap();
        assert_eq!(server.as_deref(), Some("401 digest.mismatch"));
        assert_eq!(verify.as_deref(), Some("digest.mismatch"));
        let (_, verify) = parse_expect("server: 405 -\nverify: -\n").unwrap();
        assert_eq!(verify, None);
        assert_eq!(
            parse_expect("verify: x\n").unwrap_err().to_string(),
            "no `server:` line"
        );
        assert_eq!(
            parse_expect("server: 1\nclient: 2\n")
                .unwrap_err()
                .to_string(),
            "unknown key \"client\" (expected `server` or `verify`)"
        );
    }

    #[test]
    fn a_template_is_signed_at_the_given_time() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_577_836_800);
        let template = b"POST / HTTP/1.1\r\nDate: {{date}}\r\nDigest: {{digest}}\r\nSignature: {{signature}}\r\nContent-Length: {{content-length}}\r\n\r\n{}";
        let text = String::from_utf8(render(template, now).unwrap()).unwrap();
        let signed = Signer::new(SECRET)
            .sign(&SignInput::new(b"{}", now))
            .unwrap();
        assert_eq!(
            text,
            format!(
                "POST / HTTP/1.1\r\nDate: Wed, 01 Jan 2020 00:00:00 GMT\r\nDigest: {}\r\nSignature: {}\r\nContent-Length: 2\r\n\r\n{{}}",
                signed.digest, signed.signature
            )
        );
    }

    #[test]
    fn an_empty_catalog_runs_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let catalog = load(dir.path()).unwrap();
        assert!(catalog.is_empty());
        let why = "unused".to_owned();
        assert!(run_all(Err(&why), &catalog).is_empty());
    }
}
