//! Integration tests of the `dronehook` binary: snapshot tests of every subcommand
//! (`tests/cmd/*.md`, run by trycmd), and tests that run `serve`, `send` and `curl`
//! as real processes talking over 127.0.0.1.
//!
//! To update the snapshots after a deliberate change of output:
//! `TRYCMD=overwrite cargo test -p dronehook-cli --test it snapshots`.

mod audit;
mod bad_input;
mod browser;
mod colour;
mod env;
mod events;
mod events_store;
mod exec;
mod serve_send;
mod snapshots;
mod store;
mod support;
mod tls;
mod ui;
