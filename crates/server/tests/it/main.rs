//! Integration tests of the receiver on real sockets at 127.0.0.1, real SQLite files
//! and a real process for the crash test.

mod crash;
mod dispatch;
mod faults;
mod insecure;
mod journal;
mod keepalive;
mod ops;
mod overload;
mod redeliver;
mod replay;
mod statuses;
#[cfg(feature = "postgres")]
mod store;
mod store_api;
mod timeouts;
mod tls;
mod transport;
mod util;
