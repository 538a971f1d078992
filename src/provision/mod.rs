//! `pgward provision`: the second wall. Every login named in
//! `[databases.NAME.logins]` gets exactly the grants its roles imply, so a
//! statement the policy wrongly allows still meets `permission denied`.
//!
//! `catalog` reads the database (rows in, model out), `plan` computes each
//! login's grants from its roles, `render` writes the SQL, `drift` compares
//! the database with the plan. Those are pure; `connection` is the one
//! session (I/O) and `command` the CLI around them.

pub mod catalog;
pub mod command;
pub mod connection;
pub mod drift;
pub mod dsn;
pub mod ident;
pub mod plan;
pub mod privilege;
pub mod render;

pub use command::{run, Mode, Options};
