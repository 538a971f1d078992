//! SQL analysis, free of I/O and of policy: statement fingerprints for the
//! decision cache, and a classification of what a statement does (operations,
//! relations read and written, functions called, settings changed, columns
//! used and how), computed from PostgreSQL's own parse tree (libpg_query).

pub mod cache;
pub mod census;
pub mod classification;
pub mod classify;
pub mod encoding;
pub mod fingerprint;
mod functions;
pub mod names;
mod nodes;
mod queries;
pub mod settings;
mod utility;
mod walker;

pub use classification::{Classification, CursorChange, Name, Operation};
pub use classify::{classify, classify_with};
