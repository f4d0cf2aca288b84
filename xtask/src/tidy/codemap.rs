//! ARCHITECTURE.md's code map names every source file and folder of every crate, so a
//! newcomer who reads it finds every place, and a new module cannot arrive unexplained.
//!
//! An entry counts as named when ARCHITECTURE.md holds it in backticks: `` `name.rs` ``
//! for a file, `` `name/` `` for a folder. `lib.rs` and `main.rs` are the crates' front
//! doors and need no entry of their own.

use std::fs;
use std::path::Path;

use anyhow::{Context as _, Result};

/// The folders whose entries the code map must name, relative to the workspace root:
/// every crate's `src/`, and xtask's.
fn source_dirs(root: &Path) -> Result<Vec<String>> {
    let mut dirs = Vec::new();
    let crates = root.join("crates");
    for entry in fs::read_dir(&crates).with_context(|| format!("reading {}", crates.display()))? {
        let entry = entry?;
        if entry.path().join("src").is_dir() {
            dirs.push(format!(
                "crates/{}/src",
                entry.file_name().to_string_lossy()
            ));
        }
    }
    dirs.push("xtask/src".to_owned());
    dirs.sort();
    Ok(dirs)
}

/// The entries of `dirs` (under `root`) that `map` does not name, as paths.
pub(crate) fn unnamed(root: &Path, dirs: &[String], map: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for dir in dirs {
        let full = root.join(dir);
        let mut entries: Vec<_> = fs::read_dir(&full)
            .with_context(|| format!("reading {}", full.display()))?
            .collect::<Result<_, _>>()?;
        entries.sort_by_key(std::fs::DirEntry::file_name);
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name == "lib.rs" || name == "main.rs" {
                continue;
            }
            let named = if entry.file_type()?.is_dir() {
                format!("`{name}/")
            } else {
                format!("`{name}`")
            };
            if !map.contains(&named) {
                out.push(format!("{dir}/{name}"));
            }
        }
    }
    Ok(out)
}

/// One line per source file or folder that ARCHITECTURE.md does not name.
pub(crate) fn check(root: &Path) -> Result<Vec<String>> {
    let path = root.join("ARCHITECTURE.md");
    let map = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let dirs = source_dirs(root)?;
    Ok(unnamed(root, &dirs, &map)?
        .into_iter()
        .map(|p| format!("{p} is not named in ARCHITECTURE.md's code map"))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("a temp dir");
        let src = dir.path().join("crates/demo/src");
        fs::create_dir_all(src.join("signature")).expect("mkdir");
        for file in ["lib.rs", "model.rs", "signature/mod.rs"] {
            fs::write(src.join(file), "//! x\n").expect("write");
        }
        fs::create_dir_all(dir.path().join("xtask/src")).expect("mkdir");
        fs::write(dir.path().join("xtask/src/main.rs"), "//! x\n").expect("write");
        dir
    }

    #[test]
    fn every_file_and_folder_named_passes() {
        let dir = tree();
        let dirs = source_dirs(dir.path()).expect("dirs");
        assert_eq!(dirs, ["crates/demo/src", "xtask/src"]);
        let map = "`model.rs` is the payloads; `signature/` the headers.";
        assert_eq!(
            unnamed(dir.path(), &dirs, map).expect("checked"),
            Vec::<String>::new()
        );
    }

    #[test]
    fn an_unnamed_file_or_folder_is_reported() {
        let dir = tree();
        let dirs = source_dirs(dir.path()).expect("dirs");
        // Named without backticks, or a folder named as a file: neither counts.
        let map = "model.rs is the payloads; `signature` the headers.";
        assert_eq!(
            unnamed(dir.path(), &dirs, map).expect("checked"),
            ["crates/demo/src/model.rs", "crates/demo/src/signature"]
        );
    }
}
