//! `cargo xtask test`: every check CI runs, in order, continuing after a failure so
//! one run shows everything that is wrong, and ending with one `N passed, N failed`
//! line.
//!
//! The cargo steps share one target directory and never change `RUSTFLAGS`, so clippy,
//! test and doc reuse each other's dependency builds instead of starting over.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, Result, bail};

use dronehook_testkit::browser::Programs;

use crate::{conformance, fixtures, tidy};

/// What a step runs.
enum Action {
    /// `cargo` with these arguments and extra environment variables.
    Cargo(
        &'static [&'static str],
        &'static [(&'static str, &'static str)],
    ),
    /// A check that runs inside this process.
    InProcess(fn(&Path) -> Result<()>),
}

struct Step {
    name: &'static str,
    action: Action,
}

fn steps() -> Vec<Step> {
    vec![
        Step {
            name: "cargo fmt --all --check",
            action: Action::Cargo(&["fmt", "--all", "--check"], &[]),
        },
        Step {
            name: "cargo clippy --workspace --all-targets --locked --features dronehook-server/postgres -- -D warnings",
            action: Action::Cargo(
                &[
                    "clippy",
                    "--workspace",
                    "--all-targets",
                    "--locked",
                    "--features",
                    POSTGRES_FEATURE,
                    "--",
                    "-D",
                    "warnings",
                ],
                &[],
            ),
        },
        Step {
            name: "a PostgreSQL for the store's tests",
            action: Action::InProcess(ensure_postgres),
        },
        Step {
            name: "Chromium and ChromeDriver for the browser tests",
            action: Action::InProcess(ensure_browser),
        },
        Step {
            name: "cargo test --workspace --locked --features dronehook-server/postgres",
            action: Action::Cargo(
                &[
                    "test",
                    "--workspace",
                    "--locked",
                    "--features",
                    POSTGRES_FEATURE,
                ],
                &[],
            ),
        },
        Step {
            name: "RUSTDOCFLAGS='-D warnings' cargo doc --workspace --no-deps --locked --features dronehook-server/postgres",
            action: Action::Cargo(
                &[
                    "doc",
                    "--workspace",
                    "--no-deps",
                    "--locked",
                    "--features",
                    POSTGRES_FEATURE,
                ],
                &[("RUSTDOCFLAGS", "-D warnings")],
            ),
        },
        Step {
            // Each published crate packages and builds from its package alone (a file
            // missing from the package, a path dependency without a version). Publishing
            // itself is a release decision; this only keeps it possible.
            name: "cargo package --workspace --exclude xtask --allow-dirty --locked",
            action: Action::InProcess(package),
        },
        Step {
            name: "cargo xtask fixtures --check",
            action: Action::InProcess(fixtures_check),
        },
        Step {
            name: "cargo xtask conformance",
            action: Action::InProcess(conformance::run),
        },
        Step {
            name: "cargo xtask tidy",
            action: Action::InProcess(tidy::run),
        },
    ]
}

/// The PostgreSQL store is checked, tested and documented with the rest.
const POSTGRES_FEATURE: &str = "dronehook-server/postgres";

/// Where `cargo xtask test` finds apt-get, to install what the tests need.
const APT_GET: &str = "/usr/bin/apt-get";

/// What a step that needs a system package does.
#[derive(Debug, PartialEq, Eq)]
enum Provision {
    /// It is there: nothing to do.
    Found,
    /// It is missing, and this process may install it (root, with apt-get): CI on a
    /// fresh machine.
    Install,
    /// It is missing and cannot be installed from here: the step fails saying how.
    Missing,
}

fn provision(found: bool, root: bool, has_apt: bool) -> Provision {
    match (found, root && has_apt) {
        (true, _) => Provision::Found,
        (false, true) => Provision::Install,
        (false, false) => Provision::Missing,
    }
}

/// `apt-get update`, then `apt-get install` of `packages`, without questions.
fn apt_install(apt: &Path, packages: &[&str]) -> Result<()> {
    let mut install = vec!["install", "-y", "-q"];
    install.extend_from_slice(packages);
    for args in [&["update", "-q"][..], &install] {
        let status = Command::new(apt)
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .with_context(|| format!("running {}", apt.display()))?;
        if !status.success() {
            bail!("apt-get {} exited with {status}", args.join(" "));
        }
    }
    Ok(())
}

/// The store's tests need a PostgreSQL (they fail, never skip, without one): when
/// none can be found and this runs as root with apt-get, the server is installed.
fn ensure_postgres(_root: &Path) -> Result<()> {
    let apt = Path::new(APT_GET);
    let found = dronehook_testkit::available();
    match provision(found.is_some(), dronehook_testkit::is_root(), apt.exists()) {
        Provision::Found => {}
        Provision::Missing => bail!(
            "no PostgreSQL for the store's tests: set {}, run one on 127.0.0.1:5432, or install the server (apt-get install postgresql)",
            dronehook_testkit::ENV_URL
        ),
        Provision::Install => {
            println!(
                "no PostgreSQL found for the store's tests: installing it (apt-get update && apt-get install -y postgresql)"
            );
            apt_install(apt, &["postgresql"])?;
        }
    }
    match found.or_else(dronehook_testkit::available) {
        Some(found) => {
            println!("PostgreSQL for the store's tests: {found}");
            Ok(())
        }
        None => bail!("postgresql is installed, but its server binaries were not found"),
    }
}

/// The inspector's browser tests need Chromium and ChromeDriver (they fail, never
/// skip, without them): when missing and this runs as root with apt-get, Debian's
/// packages are installed.
fn ensure_browser(_root: &Path) -> Result<()> {
    let found = ensure_browser_with(
        dronehook_testkit::browser::find_programs,
        dronehook_testkit::is_root(),
        Path::new(APT_GET),
    )?;
    println!(
        "Chromium for the browser tests: {}, driven by {}",
        found.chromium.display(),
        found.chromedriver.display()
    );
    Ok(())
}

fn ensure_browser_with(
    find: impl Fn() -> Option<Programs>,
    root: bool,
    apt: &Path,
) -> Result<Programs> {
    use dronehook_testkit::browser::{HOW_TO_GET_THEM, PACKAGES};
    let found = find();
    match provision(found.is_some(), root, apt.exists()) {
        Provision::Found => {}
        Provision::Missing => bail!("{HOW_TO_GET_THEM}"),
        Provision::Install => {
            println!(
                "no Chromium found for the browser tests: installing it (apt-get update && apt-get install -y {})",
                PACKAGES.join(" ")
            );
            apt_install(apt, &PACKAGES).with_context(|| HOW_TO_GET_THEM)?;
        }
    }
    match found.or_else(find) {
        Some(found) => Ok(found),
        None => bail!(
            "{} are installed, but chromium or chromedriver was not found",
            PACKAGES.join(" and ")
        ),
    }
}

/// `cargo package` of every crate but xtask, with verification.
///
/// Cargo verifies a crate that depends on a sibling against the sibling's package,
/// served from a temporary registry in `target/package/`, unpacked into
/// `$CARGO_HOME/registry/src/-<hash>/` and built like any registry crate. A later run
/// from the same checkout finds all three already there and uses them although the
/// package changed (its version did not, and a registry crate is never rebuilt), so the
/// dependents would be checked against the previous run's siblings. All three are
/// removed first: `target/package/`, this workspace's unpacked `dronehook-*`
/// directories in the nameless (local) registries, and, by `cargo clean -p`, the
/// workspace crates' build artifacts (the later steps build them again).
fn package(root: &Path) -> Result<()> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root.join("target"), |dir| root.join(dir));
    let packages = target.join("package");
    if packages.exists() {
        std::fs::remove_dir_all(&packages)
            .with_context(|| format!("removing {}", packages.display()))?;
    }
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")));
    if let Some(src) = cargo_home.map(|home| home.join("registry/src")) {
        for registry in std::fs::read_dir(&src).into_iter().flatten().flatten() {
            if !registry.file_name().to_string_lossy().starts_with('-') {
                continue;
            }
            for unpacked in std::fs::read_dir(registry.path())
                .into_iter()
                .flatten()
                .flatten()
            {
                if unpacked
                    .file_name()
                    .to_string_lossy()
                    .starts_with("dronehook-")
                {
                    std::fs::remove_dir_all(unpacked.path()).with_context(|| {
                        format!("removing the stale package {}", unpacked.path().display())
                    })?;
                }
            }
        }
    }
    let mut clean = vec!["clean".to_owned()];
    for name in crate_names(root)? {
        clean.push("-p".to_owned());
        clean.push(name);
    }
    let clean: Vec<&str> = clean.iter().map(String::as_str).collect();
    run_cargo(root, &clean, &[])?;
    run_cargo(
        root,
        &[
            "package",
            "--workspace",
            "--exclude",
            "xtask",
            "--allow-dirty",
            "--locked",
        ],
        &[],
    )
}

/// The package names of the crates under `crates/` (each manifest's first `name`).
fn crate_names(root: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    let crates = root.join("crates");
    for entry in
        std::fs::read_dir(&crates).with_context(|| format!("reading {}", crates.display()))?
    {
        let manifest = entry?.path().join("Cargo.toml");
        let Ok(text) = std::fs::read_to_string(&manifest) else {
            continue;
        };
        let name = text
            .lines()
            .find_map(|line| line.trim().strip_prefix("name = \""))
            .and_then(|rest| rest.strip_suffix('"'))
            .with_context(|| format!("no package name in {}", manifest.display()))?;
        names.push(name.to_owned());
    }
    names.sort();
    Ok(names)
}

fn fixtures_check(root: &Path) -> Result<()> {
    fixtures::run(root, true)
}

/// The cargo that runs this xtask (cargo sets `CARGO` for `cargo run`), so nested
/// builds use the same toolchain.
pub(crate) fn cargo() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// Colour is cargo's business (it detects a terminal per stream); this only makes
/// `NO_COLOR` reach the child cargos, which do not read it themselves.
fn color_env() -> Option<&'static str> {
    let set = |name| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    (!set("CARGO_TERM_COLOR") && set("NO_COLOR")).then_some("never")
}

fn run_cargo(root: &Path, args: &[&str], env: &[(&str, &str)]) -> Result<()> {
    let mut cmd = Command::new(cargo());
    cmd.args(args).current_dir(root);
    for (name, value) in env {
        // A value the caller already has is kept and extended, not replaced.
        let value = match std::env::var(name) {
            Ok(old) if !old.trim().is_empty() => format!("{old} {value}"),
            _ => (*value).to_owned(),
        };
        cmd.env(name, value);
    }
    if let Some(color) = color_env() {
        cmd.env("CARGO_TERM_COLOR", color);
    }
    let status = cmd
        .status()
        .with_context(|| format!("running {}", cmd.get_program().display()))?;
    if !status.success() {
        bail!("cargo {} exited with {status}", args.join(" "));
    }
    Ok(())
}

/// `cargo xtask test`. Returns whether every step passed; the summary line is the last
/// thing printed, so nothing else is reported on failure.
pub(crate) fn run(root: &Path) -> bool {
    let steps = steps();
    let total = steps.len();
    let (mut passed, mut failed) = (0usize, Vec::new());
    for (i, step) in steps.iter().enumerate() {
        println!("\n==> [{}/{total}] {}", i + 1, step.name);
        let started = Instant::now();
        let result = match &step.action {
            Action::Cargo(args, env) => run_cargo(root, args, env),
            Action::InProcess(f) => f(root),
        };
        let took = started.elapsed().as_secs_f64();
        match result {
            Ok(()) => {
                passed += 1;
                println!("<== [{}/{total}] ok: {} ({took:.1}s)", i + 1, step.name);
            }
            Err(err) => {
                println!(
                    "<== [{}/{total}] FAILED: {} ({took:.1}s)\n{err:#}",
                    i + 1,
                    step.name
                );
                failed.push(step.name);
            }
        }
    }
    println!();
    for name in &failed {
        println!("failed: {name}");
    }
    println!("{passed} passed, {} failed", failed.len());
    failed.is_empty()
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    #[test]
    fn a_package_is_installed_only_when_missing_and_installable() {
        assert_eq!(provision(true, false, false), Provision::Found);
        assert_eq!(provision(true, true, true), Provision::Found);
        assert_eq!(provision(false, true, true), Provision::Install);
        assert_eq!(
            provision(false, false, true),
            Provision::Missing,
            "not root"
        );
        assert_eq!(
            provision(false, true, false),
            Provision::Missing,
            "no apt-get"
        );
    }

    fn programs() -> Programs {
        Programs {
            chromium: "/usr/bin/chromium".into(),
            chromedriver: "/usr/bin/chromedriver".into(),
        }
    }

    /// An `apt-get` that notes its arguments in `log` and exits with `code`.
    fn fake_apt(dir: &Path, code: u8) -> PathBuf {
        let apt = dir.join("apt-get");
        let log = dir.join("log");
        std::fs::write(
            &apt,
            format!(
                "#!/bin/sh\necho \"$DEBIAN_FRONTEND $*\" >>'{}'\nexit {code}\n",
                log.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&apt, std::fs::Permissions::from_mode(0o755)).unwrap();
        apt
    }

    #[test]
    fn a_browser_found_is_used_as_it_is() {
        let dir = tempfile::tempdir().unwrap();
        let apt = fake_apt(dir.path(), 0);
        let found = ensure_browser_with(|| Some(programs()), true, &apt).unwrap();
        assert_eq!(found, programs());
        assert!(!dir.path().join("log").exists(), "apt-get did not run");
    }

    #[test]
    fn a_missing_browser_fails_with_one_line_when_it_cannot_be_installed() {
        let dir = tempfile::tempdir().unwrap();
        let apt = fake_apt(dir.path(), 0);
        for (root, apt) in [(false, apt.as_path()), (true, &dir.path().join("none"))] {
            let err = ensure_browser_with(|| None, root, apt).unwrap_err();
            assert_eq!(
                format!("{err:#}"),
                "the browser tests need Chromium and ChromeDriver: apt-get install chromium chromium-driver"
            );
        }
        assert!(!dir.path().join("log").exists(), "apt-get did not run");
    }

    #[test]
    fn a_missing_browser_is_installed_as_root_after_an_update() {
        let dir = tempfile::tempdir().unwrap();
        let apt = fake_apt(dir.path(), 0);
        let calls = Cell::new(0);
        let found = ensure_browser_with(
            || {
                calls.set(calls.get() + 1);
                (calls.get() > 1).then(programs)
            },
            true,
            &apt,
        )
        .unwrap();
        assert_eq!(found, programs());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("log")).unwrap(),
            "noninteractive update -q\nnoninteractive install -y -q chromium chromium-driver\n"
        );
    }

    #[test]
    fn a_failed_install_says_so_and_how_to_get_them() {
        let dir = tempfile::tempdir().unwrap();
        let apt = fake_apt(dir.path(), 100);
        let err = ensure_browser_with(|| None, true, &apt).unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            "the browser tests need Chromium and ChromeDriver: apt-get install chromium chromium-driver: apt-get update -q exited with exit status: 100"
        );
    }

    #[test]
    fn an_install_that_brings_no_programs_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let apt = fake_apt(dir.path(), 0);
        let err = ensure_browser_with(|| None, true, &apt).unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            "chromium and chromium-driver are installed, but chromium or chromedriver was not found"
        );
    }
}
