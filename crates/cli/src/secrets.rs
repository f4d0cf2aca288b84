//! Gathering the receiver's secrets from flags, files and the environment.

use std::path::PathBuf;

use dronehook_protocol::Secret;

use crate::input::reason;
use crate::usage;

/// The receiver's fallback variable, read when neither `--secret`, `DRONE_SECRET` nor
/// `--secret-file` gave a secret: Drone's own sender is configured with it.
pub(crate) const FALLBACK_ENV: &str = "DRONE_WEBHOOK_SECRET";

/// Collects secrets: `--secret` values (clap already read `DRONE_SECRET` when the flag
/// is absent and split commas), then each `--secret-file`'s lines; when that gives
/// none, `DRONE_WEBHOOK_SECRET` split on commas. Blank values are skipped, so a
/// trailing comma does not add an empty (and so guessable) secret.
pub(crate) fn gather(flags: &[String], files: &[PathBuf]) -> anyhow::Result<Vec<Secret>> {
    let mut out: Vec<Secret> = flags
        .iter()
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .map(Secret::from)
        .collect();
    for file in files {
        let text = std::fs::read_to_string(file)
            .map_err(|e| usage(format!("cannot read {}: {}", file.display(), reason(&e))))?;
        let before = out.len();
        out.extend(
            text.lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(Secret::from),
        );
        if out.len() == before {
            return Err(usage(format!("{} holds no secret", file.display())));
        }
    }
    if out.is_empty()
        && let Ok(value) = std::env::var(FALLBACK_ENV)
    {
        out.extend(
            value
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(Secret::from),
        );
    }
    Ok(out)
}
