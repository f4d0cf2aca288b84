//! `cargo xtask tidy`: project rules that neither rustfmt nor clippy enforce.
//!
//! Every `.rs` file under `crates/` and `xtask/` starts with a `//!` line, and no
//! source holds an ignored test, a `should_panic` test, or a debugging or placeholder
//! macro. The patterns are assembled from pieces so that this file does not contain
//! them literally and does not flag itself.
//!
//! The crates depend on each other in one direction only ([`deps`]): the protocol
//! reaches no async runtime, HTTP implementation or sibling crate, the server and the
//! client never reach each other, and no library reaches the command line.
//!
//! ARCHITECTURE.md's code map names every source file and folder ([`codemap`]).

mod codemap;
mod deps;

use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};

/// The forbidden patterns, built at run time so this file never spells them out.
fn forbidden() -> Vec<String> {
    let hash = '#';
    let bang = '!';
    vec![
        format!("{hash}[{}]", "ignore"),
        format!("{hash}[{}", "ignore ="),
        format!("{hash}[{}", "should_panic"),
        format!("{}{bang}(", "dbg"),
        format!("{}{bang}(", "todo"),
        format!("{}{bang}(", "unimplemented"),
        format!("{hash}{bang}[deny({})]", "warnings"),
    ]
}

/// One rule broken at one place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Violation {
    /// The file, relative to the workspace root.
    pub(crate) path: PathBuf,
    /// The 1-based line (1 for the missing `//!` line).
    pub(crate) line: usize,
    /// What is wrong.
    pub(crate) message: String,
}

/// Checks one file's text.
pub(crate) fn check_source(path: &Path, text: &str) -> Vec<Violation> {
    let mut out = Vec::new();
    let first = text.lines().next().unwrap_or("");
    if !first.starts_with("//!") {
        out.push(Violation {
            path: path.to_path_buf(),
            line: 1,
            message: "the file does not start with a `//!` doc line".into(),
        });
    }
    let patterns = forbidden();
    for (i, line) in text.lines().enumerate() {
        for pattern in &patterns {
            if line.contains(pattern.as_str()) {
                out.push(Violation {
                    path: path.to_path_buf(),
                    line: i + 1,
                    message: format!("`{pattern}` is not allowed"),
                });
            }
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("reading {}", dir.display())),
    };
    for entry in entries {
        let entry = entry?;
        let path = entry.path();
        let name = entry.file_name();
        if entry.file_type()?.is_dir() {
            // Build output and cargo-fuzz's generated corpora are not sources.
            if name != "target" && name != "corpus" && name != "artifacts" {
                rust_files(&path, out)?;
            }
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    Ok(())
}

/// Every violation in the workspace's sources.
pub(crate) fn violations(root: &Path) -> Result<Vec<Violation>> {
    let mut files = Vec::new();
    for dir in ["crates", "xtask"] {
        rust_files(&root.join(dir), &mut files)?;
    }
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let text =
            fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
        let rel = file.strip_prefix(root).unwrap_or(&file);
        out.extend(check_source(rel, &text));
    }
    Ok(out)
}

/// `cargo xtask tidy`.
pub(crate) fn run(root: &Path) -> Result<()> {
    let found = violations(root)?;
    let mut direction = deps::check(root)?;
    direction.extend(codemap::check(root)?);
    if found.is_empty() && direction.is_empty() {
        println!(
            "tidy: every source starts with `//!` and holds no forbidden pattern; \
             the crates depend on each other in the allowed direction; \
             ARCHITECTURE.md names every source file"
        );
        return Ok(());
    }
    let mut message = format!("tidy found {} problem(s):", found.len() + direction.len());
    for v in &found {
        let _ = write!(
            message,
            "\n  {}:{}: {}",
            v.path.display(),
            v.line,
            v.message
        );
    }
    for line in &direction {
        let _ = write!(message, "\n  {line}");
    }
    bail!(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(text: &str) -> Vec<(usize, String)> {
        check_source(Path::new("x.rs"), text)
            .into_iter()
            .map(|v| (v.line, v.message))
            .collect()
    }

    #[test]
    fn a_clean_file_passes() {
        assert_eq!(check("//! Docs.\nfn main() {}\n"), vec![]);
    }

    #[test]
    fn a_missing_doc_line_is_reported() {
        assert_eq!(
            check("// Not a doc line.\n"),
            vec![(
                1,
                "the file does not start with a `//!` doc line".to_owned()
            )]
        );
        assert_eq!(
            check(""),
            vec![(
                1,
                "the file does not start with a `//!` doc line".to_owned()
            )]
        );
    }

    #[test]
    fn each_forbidden_pattern_is_reported_with_its_line() {
        for pattern in forbidden() {
            let text = format!("//! Docs.\n\n    {pattern}x\n");
            assert_eq!(
                check(&text),
                vec![(3, format!("`{pattern}` is not allowed"))],
                "{pattern}"
            );
        }
    }

    #[test]
    fn this_file_does_not_flag_itself() {
        let text = include_str!("tidy.rs");
        assert_eq!(check_source(Path::new("xtask/src/tidy.rs"), text), vec![]);
    }
}
