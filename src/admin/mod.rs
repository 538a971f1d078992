//! The admin side of pgward: a small HTTP API and the metrics it serves.
//!
//! `http` parses requests and writes replies with no I/O; `server` runs them
//! over monoio sockets; `client` is the blocking caller the CLI and webhooks
//! use. `metrics` counts per worker and renders Prometheus text, which
//! `prometheus` reads back strictly for tests. `api` holds the routes and
//! who may call them, `thread` runs the admin side, `cli` calls it from a
//! terminal.

pub mod api;
pub mod cli;
pub mod client;
pub mod http;
pub mod metrics;
pub mod prometheus;
pub mod server;
pub mod thread;
