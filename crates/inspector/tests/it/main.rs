//! The inspector over real sockets: a real receiver (dronehook-server) observed by
//! the inspector, requests sent with dronehook-client or written by hand, pages read
//! over raw HTTP/1.1.

mod access;
mod exposure;
mod live;
mod store;
mod support;
