//! Integration tests of dronehook-protocol: one binary, one module per area.

mod check;
mod corpus;
mod decode;
mod fuzz_regressions;
mod props;
mod vectors;
mod verify;

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The repository root, where `fixtures/` lives.
fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// 2020-01-01T00:00:00Z, the reference vector's date.
fn vector_time() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_577_836_800)
}

/// The reference's 256-byte vector body.
const VECTOR_BODY: &[u8] = br#"{"event":"user","action":"created","user":{"id":1,"login":"octocat","email":"octocat@github.com","machine":false,"admin":false,"active":true,"avatar":"","syncing":false,"synced":1564096971,"created":1564096971,"updated":1564096971,"last_login":1564096971}}"#;

/// The reference vector's secret.
const VECTOR_SECRET: &str = "correct-horse-battery-staple";
