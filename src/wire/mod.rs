//! The PostgreSQL wire protocol, version 3: frame splitting over a read buffer,
//! zero-copy views of the messages pgward reads, and builders for the messages it
//! writes. No I/O happens here.

pub mod backend;
pub mod build;
pub mod error;
pub mod error_response;
pub mod frame;
pub mod frontend;
pub mod startup;

pub use error::WireError;
pub use frame::{check_frame, Frame, FrameHeader};
