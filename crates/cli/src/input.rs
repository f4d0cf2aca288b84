//! Reading payloads: files, directories, standard input and built-in fixtures.

use std::io::{self, IsTerminal as _, Read as _};
use std::path::Path;

use dronehook_protocol::samples::{self, Sample};

use crate::usage;

/// One payload as read, before any decoding.
#[derive(Clone, Debug)]
pub(crate) struct Payload {
    /// Where it came from: a path, `-` or `fixture:NAME`.
    pub(crate) label: String,
    /// The bytes.
    pub(crate) body: Vec<u8>,
    /// The event a fixture is sent with (Drone's documentation examples lack `event`).
    pub(crate) header_event: Option<String>,
}

/// An I/O error's reason without Rust's ` (os error N)` suffix, which users do not need.
pub(crate) fn reason(err: &io::Error) -> String {
    let text = err.to_string();
    match text.find(" (os error ") {
        Some(i) => text[..i].to_owned(),
        None => text,
    }
}

/// Looks up a built-in fixture.
pub(crate) fn fixture(name: &str) -> anyhow::Result<Sample> {
    samples::get(name).ok_or_else(|| {
        usage(format!(
            "unknown fixture {name:?}; `dronehook fixtures list` shows the names"
        ))
    })
}

/// Reads one input: a file, `-` for standard input, or `fixture:NAME`.
pub(crate) fn read_one(spec: &str) -> anyhow::Result<Payload> {
    if let Some(name) = spec.strip_prefix("fixture:") {
        let sample = fixture(name)?;
        return Ok(Payload {
            label: spec.to_owned(),
            body: sample.body,
            header_event: Some(sample.header_event.to_owned()).filter(|e| !e.is_empty()),
        });
    }
    if spec == "-" {
        return Ok(Payload {
            label: "-".into(),
            body: read_stdin()?,
            header_event: None,
        });
    }
    let body =
        std::fs::read(spec).map_err(|e| usage(format!("cannot read {spec}: {}", reason(&e))))?;
    Ok(Payload {
        label: spec.to_owned(),
        body,
        header_event: None,
    })
}

/// Reads standard input whole. A terminal on stdin means the user forgot the input,
/// so that is an error rather than a silent wait.
pub(crate) fn read_stdin() -> anyhow::Result<Vec<u8>> {
    let mut stdin = io::stdin().lock();
    if stdin.is_terminal() {
        return Err(usage(
            "no input: give a file, `fixture:NAME`, or pipe the data into `-` (standard input)",
        ));
    }
    let mut body = Vec::new();
    stdin
        .read_to_end(&mut body)
        .map_err(|e| usage(format!("cannot read standard input: {}", reason(&e))))?;
    Ok(body)
}

/// Reads every input; a directory stands for its `*.json` files in name order.
pub(crate) fn read_many(specs: &[String]) -> anyhow::Result<Vec<Payload>> {
    let mut out = Vec::new();
    for spec in specs {
        let path = Path::new(spec);
        if !spec.starts_with("fixture:") && spec != "-" && path.is_dir() {
            let entries = std::fs::read_dir(path)
                .map_err(|e| usage(format!("cannot read {spec}: {}", reason(&e))))?;
            let mut files = Vec::new();
            for entry in entries {
                let entry =
                    entry.map_err(|e| usage(format!("cannot read {spec}: {}", reason(&e))))?;
                let file = entry.path();
                if file.extension().is_some_and(|x| x == "json") && file.is_file() {
                    files.push(file);
                }
            }
            files.sort();
            if files.is_empty() {
                return Err(usage(format!("{spec} holds no *.json files")));
            }
            for file in files {
                out.push(read_one(&file.to_string_lossy())?);
            }
        } else {
            out.push(read_one(spec)?);
        }
    }
    Ok(out)
}
