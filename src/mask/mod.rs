//! Column masking, free of I/O: the strategies that turn a sensitive value
//! into a safe one, and the DataRow rewriter that applies a column plan to a
//! row in place, writing straight into the outgoing buffer.

pub mod row;
pub mod scan;
pub mod strategy;

pub use row::{rewrite_row, ColumnMask, RowStats};
pub use strategy::{HashKey, Strategy};
