//! The gateway at run time: worker threads and their listeners, the session
//! from login to close, both connection legs, and the relay between them.

pub mod approvals;
pub mod audit_trail;
pub mod buffer;
pub mod cancel;
pub mod catalog;
pub mod client_login;
pub mod denial;
pub mod guard;
pub mod jwks;
pub mod masker;
pub mod pipeline;
pub mod registry;
pub mod relay;
pub mod reload;
pub mod row_cap;
pub mod session;
pub mod session_policy;
pub mod shutdown;
pub mod startup_options;
pub mod stream;
pub mod tls;
pub mod upstream;
pub mod worker;
