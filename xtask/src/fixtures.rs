//! `cargo xtask fixtures`: writes `fixtures/` from the protocol crate's samples, and
//! `--check` tells whether the committed files are what the generator would write.
//!
//! Generated: `payloads/` (one body per sample), `requests/` (each body as a signed
//! raw HTTP request), `corpus/NOTICE`, and the corpus captures when `../shared` is
//! there to copy them from. Without `../shared` (a fresh clone) the committed corpus
//! is the source and only its NOTICE is checked. `hostile/` is written from the
//! hostile-input catalog; `README.md` is written by hand and never touched.

use std::collections::BTreeMap;
use std::fmt::{self, Write as _};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context as _, Result, bail};
use dronehook_protocol::samples::{self, Sample};
use dronehook_protocol::{SignInput, Signer};

/// The secret every fixture request is signed with. It is public on purpose: the
/// fixtures are test data, and anyone can re-verify them with it.
pub(crate) const SECRET: &str = "dronehook-fixture-secret";

/// The time every fixture request is signed at: 2020-01-01T00:00:00Z.
pub(crate) fn signing_time() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_577_836_800)
}

/// The message `--check` fails with; the test and CI logs grep for it.
pub(crate) const STALE_MESSAGE: &str = "fixtures are stale: run `cargo xtask fixtures` and commit";

const NOTICE: &str = "\
The JSON files in this directory are webhook payloads captured from a Drone 2.4.0
server. They come from the test data of the project Diesel-Net/drone-discord
(https://github.com/Diesel-Net/drone-discord), which is distributed under the MIT
license:

  Permission is hereby granted, free of charge, to any person obtaining a copy of
  this software and associated documentation files (the \"Software\"), to deal in the
  Software without restriction, including without limitation the rights to use,
  copy, modify, merge, publish, distribute, sublicense, and/or sell copies of the
  Software, and to permit persons to whom the Software is furnished to do so,
  subject to the following conditions:

  The above copyright notice and this permission notice shall be included in all
  copies or substantial portions of the Software.

  THE SOFTWARE IS PROVIDED \"AS IS\", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
  IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY, FITNESS
  FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE AUTHORS OR
  COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER LIABILITY, WHETHER IN
  AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM, OUT OF OR IN CONNECTION
  WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE SOFTWARE.

The files are copied byte for byte (pretty-printed, as captured; they are not the
exact bytes Drone signed). `cargo xtask fixtures` copies them from
../shared/corpus/drone-2.4/ when that directory exists; otherwise the committed
copies here are the source.
";

/// Where the corpus is copied from, relative to the workspace root.
fn shared_corpus(root: &Path) -> PathBuf {
    root.join("../shared/corpus/drone-2.4")
}

/// What is wrong with one generated file.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Problem {
    /// The file should exist and does not.
    Missing,
    /// The file exists with other content.
    Differs,
    /// The file is in a generated directory but the generator does not write it.
    Stale,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Problem::Missing => "missing",
            Problem::Differs => "differs from the generator's output",
            Problem::Stale => "no longer generated",
        })
    }
}

/// What the generator writes: the files by path relative to `fixtures/`, and the
/// directories it owns entirely (a file there that it does not write is stale).
struct Plan {
    files: BTreeMap<PathBuf, Vec<u8>>,
    owned_dirs: Vec<PathBuf>,
}

/// The raw HTTP request Drone would send for a sample, signed with [`SECRET`] at
/// [`signing_time`].
pub(crate) fn raw_request(sample: &Sample) -> Result<Vec<u8>> {
    let signed = Signer::new(SECRET)
        .sign(&SignInput::new(&sample.body, signing_time()))
        .with_context(|| format!("signing sample {}", sample.name))?;
    let mut out = Vec::with_capacity(sample.body.len() + 512);
    out.extend_from_slice(b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for (name, value) in signed.headers(sample.header_event) {
        out.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    out.extend_from_slice(format!("Content-Length: {}\r\n\r\n", sample.body.len()).as_bytes());
    out.extend_from_slice(&sample.body);
    Ok(out)
}

fn plan(root: &Path) -> Result<Plan> {
    let mut files = BTreeMap::new();
    let mut owned_dirs = vec![PathBuf::from("payloads"), PathBuf::from("requests")];
    for sample in samples::all() {
        check_name(sample.name)?;
        let payload = PathBuf::from("payloads").join(format!("{}.json", sample.name));
        let request = PathBuf::from("requests").join(format!("{}.http", sample.name));
        files.insert(request, raw_request(&sample)?);
        if files.insert(payload, sample.body).is_some() {
            bail!("two samples are named {:?}", sample.name);
        }
    }
    owned_dirs.push(PathBuf::from("hostile"));
    files.insert(
        PathBuf::from("hostile/README.md"),
        HOSTILE_README.as_bytes().to_vec(),
    );
    for case in dronehook_audit::all() {
        check_name(case.name)?;
        let http = PathBuf::from("hostile").join(format!("{}.http", case.name));
        let expect = PathBuf::from("hostile").join(format!("{}.expect", case.name));
        files.insert(http, case.template_text());
        if files
            .insert(expect, hostile_expect(&case).into_bytes())
            .is_some()
        {
            bail!("two hostile cases are named {:?}", case.name);
        }
    }
    files.insert(PathBuf::from("corpus/NOTICE"), NOTICE.as_bytes().to_vec());
    let shared = shared_corpus(root);
    if shared.is_dir() {
        owned_dirs.push(PathBuf::from("corpus"));
        for entry in
            fs::read_dir(&shared).with_context(|| format!("reading {}", shared.display()))?
        {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "json") {
                let name = path.file_name().unwrap_or_default();
                let bytes =
                    fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
                files.insert(Path::new("corpus").join(name), bytes);
            }
        }
    }
    Ok(Plan { files, owned_dirs })
}

/// `fixtures/hostile/README.md`, kept beside the generator because it documents the
/// files the generator writes.
const HOSTILE_README: &str = include_str!("hostile_readme.md");

/// A hostile case's `NAME.expect`: its summary as comments, then `server:`,
/// `verify:` and, for pipelined cases and replays, `pipelined:` and `replay:` lines
/// (format in the README above).
fn hostile_expect(case: &dronehook_audit::Case) -> String {
    use std::fmt::Write as _;

    use dronehook_audit::VerifyOutcome;
    let code = |c: &str| {
        if c.is_empty() {
            "-".to_owned()
        } else {
            c.to_owned()
        }
    };
    let verify = match case.verify {
        VerifyOutcome::NotApplicable => "-".to_owned(),
        other => other.to_string(),
    };
    let outcome = |o: &dronehook_audit::ServerOutcome| {
        if o.is_closed_or_4xx() {
            "closed or 4xx".to_owned()
        } else {
            format!("{} {}", o.status, code(o.code))
        }
    };
    let mut out = format!(
        "# {}\n# group: {}\nserver: {}\nverify: {verify}\n",
        case.summary,
        case.group,
        outcome(&case.server),
    );
    if let dronehook_audit::Connection::Pipelined(more) = &case.connection {
        for next in more {
            // Writing to a String cannot fail.
            let _ = writeln!(out, "pipelined: {}", outcome(&next.server));
        }
    }
    if let Some(r) = &case.replay {
        // Writing to a String cannot fail.
        let _ = writeln!(
            out,
            "replay: {} copies{}{}{}, later copies {} {}, handler calls {}",
            r.copies,
            if r.concurrent {
                " at once"
            } else {
                " one after another"
            },
            r.retarget
                .map(|t| format!(" (later ones to {t})"))
                .unwrap_or_default(),
            if r.later_damage.is_empty() {
                String::new()
            } else {
                format!(" (later ones changed: {:?})", r.later_damage)
            },
            r.later.status,
            code(r.later.code),
            r.handler_calls,
        );
    }
    out
}

/// Sample names become file names, so they must be plain.
fn check_name(name: &str) -> Result<()> {
    let plain = !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if !plain {
        bail!("sample name {name:?} is not a plain file stem");
    }
    Ok(())
}

/// Compares `fixtures/` with the plan: every problem, by path relative to the root.
fn diff(root: &Path, plan: &Plan) -> Result<Vec<(PathBuf, Problem)>> {
    let dir = root.join("fixtures");
    let mut problems = Vec::new();
    for (rel, want) in &plan.files {
        let path = dir.join(rel);
        match fs::read(&path) {
            Ok(have) if have == *want => {}
            Ok(_) => problems.push((Path::new("fixtures").join(rel), Problem::Differs)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                problems.push((Path::new("fixtures").join(rel), Problem::Missing));
            }
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        }
    }
    for owned in &plan.owned_dirs {
        let path = dir.join(owned);
        let entries = match fs::read_dir(&path) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        for entry in entries {
            let name = entry?.file_name();
            let rel = owned.join(&name);
            if !plan.files.contains_key(&rel) {
                problems.push((Path::new("fixtures").join(rel), Problem::Stale));
            }
        }
    }
    problems.sort();
    Ok(problems)
}

/// The error `--check` returns for these problems.
pub(crate) fn stale_error(problems: &[(PathBuf, Problem)]) -> anyhow::Error {
    let mut message = String::from(STALE_MESSAGE);
    for (path, problem) in problems {
        let _ = write!(message, "\n  {}: {problem}", path.display());
    }
    anyhow::anyhow!(message)
}

/// `cargo xtask fixtures [--check]`.
pub(crate) fn run(root: &Path, check: bool) -> Result<()> {
    let plan = plan(root)?;
    let problems = diff(root, &plan)?;
    if check {
        if problems.is_empty() {
            println!(
                "fixtures are up to date ({} generated files)",
                plan.files.len()
            );
            return Ok(());
        }
        return Err(stale_error(&problems));
    }
    let dir = root.join("fixtures");
    for (path, problem) in &problems {
        let rel = path.strip_prefix("fixtures").unwrap_or(path);
        let full = dir.join(rel);
        if *problem == Problem::Stale {
            if full.is_dir() {
                fs::remove_dir_all(&full)
            } else {
                fs::remove_file(&full)
            }
            .with_context(|| format!("removing {}", full.display()))?;
            println!("removed {}", path.display());
        } else {
            if let Some(parent) = full.parent() {
                fs::create_dir_all(parent)
                    .with_context(|| format!("creating {}", parent.display()))?;
            }
            fs::write(&full, &plan.files[rel])
                .with_context(|| format!("writing {}", full.display()))?;
            println!("wrote {}", path.display());
        }
    }
    if !shared_corpus(root).is_dir() {
        println!(
            "note: {} is absent, so fixtures/corpus/ was kept as committed",
            shared_corpus(root).display()
        );
    }
    println!(
        "fixtures: {} generated files, {} changed",
        plan.files.len(),
        problems.len()
    );
    Ok(())
}
