//! pgward: a least-privilege gateway for AI coding agents on PostgreSQL.
//!
//! `wire` and `auth` are pure logic with no sockets; `proxy` drives them over
//! monoio connections, one runtime per worker thread.

pub mod admin;
pub mod approval;
pub mod audit;
pub mod auth;
pub mod config;
pub mod connect_check;
pub mod explain;
pub mod mask;
pub mod policy;
pub mod provision;
pub mod proxy;
pub mod sql;
pub mod wire;
