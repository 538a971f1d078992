//! Authentication logic, free of I/O: the SCRAM-SHA-256 exchange as a server
//! (agents logging in to pgward) and as a client (pgward logging in upstream),
//! stored verifiers, and PostgreSQL's md5 response.

pub mod jwt;
pub mod keygen;
pub mod md5;
pub mod scram;
pub mod scram_client;
pub mod scram_server;
pub mod token;

use thiserror::Error;

/// Why an authentication exchange failed.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum AuthError {
    /// The peer sent a message that does not follow the mechanism.
    #[error("malformed SCRAM message: {0}")]
    Malformed(&'static str),
    /// The peer asked for something pgward does not support.
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
    /// The proof or the server signature did not match.
    #[error("authentication failed: wrong password")]
    WrongPassword,
    /// A stored verifier is not in `SCRAM-SHA-256$iter:salt$stored:server` form.
    #[error("invalid SCRAM verifier: {0}")]
    BadVerifier(&'static str),
}
