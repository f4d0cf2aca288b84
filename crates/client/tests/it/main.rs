//! Integration tests of the sender against real receivers on 127.0.0.1: a bare hyper
//! receiver written here (verifying with the protocol crate), TLS receivers with rcgen
//! certificates, and the `dronehook-server` receiver.

mod builder;
mod bulk;
mod delivery;
mod filter;
mod retry_after;
mod server;
mod signing;
mod support;
mod tls;
