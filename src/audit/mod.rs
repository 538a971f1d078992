//! The audit log: one chained JSON line per statement pgward sees and per
//! session start and end, written to append-only segment files before the
//! statement reaches the server, and the tools that read them back.
//!
//! `record`, `chain`, `segment` and `time` are the format (pure, no I/O of
//! pgward's own); `writer` appends to a worker's stream; `reader`, `verify`,
//! `show` and `replay` are the `pgward audit` commands.

pub mod chain;
pub mod event;
pub mod merge;
pub mod reader;
pub mod record;
pub mod replay;
pub mod sample;
pub mod segment;
pub mod show;
pub mod time;
pub mod verify;
pub mod writer;
