//! Just-in-time approval of single statements: requests, the book the
//! workers and the admin listener share, and the store that keeps it across
//! restarts. Which statements need approval is the policy's call
//! (`policy::approval`); holding one inside a live session is the relay's.

pub mod book;
pub mod request;
pub mod store;

pub use book::{Ask, AskError, Asked, Book, DecideError};
pub use request::{Request, State};
