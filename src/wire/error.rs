//! Errors raised while decoding frames and message bodies.

use thiserror::Error;

/// Why a byte sequence is not a valid protocol message.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum WireError {
    /// A length field is below the minimum the protocol allows.
    #[error("invalid length {len} in message of type {}", tag_name(*.tag))]
    BadLength { tag: u8, len: u32 },
    /// A message is longer than the configured maximum.
    #[error("message of type {} is {len} bytes, over the limit of {max} bytes", tag_name(*.tag))]
    TooLarge { tag: u8, len: usize, max: usize },
    /// A message body does not match its declared layout.
    #[error("malformed {message} message: {what}")]
    Malformed {
        message: &'static str,
        what: &'static str,
    },
}

impl WireError {
    /// Shorthand for a malformed body.
    pub fn malformed(message: &'static str, what: &'static str) -> Self {
        WireError::Malformed { message, what }
    }
}

/// A printable name for a message tag; startup packets have tag 0.
pub fn tag_name(tag: u8) -> String {
    if tag == 0 {
        "startup packet".to_string()
    } else if tag.is_ascii_graphic() {
        format!("'{}'", tag as char)
    } else {
        format!("0x{tag:02x}")
    }
}
