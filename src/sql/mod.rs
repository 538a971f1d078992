//! SQL analysis, free of I/O and of policy: statement fingerprints for the
//! decision cache, and a classification of what a statement does (operations,
//! relations read and written, functions called, settings changed), computed
//! from sqlparser's PostgreSQL AST.

pub mod cache;
pub mod classification;
pub mod classify;
pub mod fallback;
pub mod fingerprint;

pub use classification::{Classification, Name, Operation};
pub use classify::classify;
