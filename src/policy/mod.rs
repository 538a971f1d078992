//! The statement policy: roles made of grants (operations, relations read and
//! written, functions, columns never readable), and the decision for one
//! classified statement. Pure logic over `sql::Classification`; it knows
//! nothing of the wire.

pub mod approval;
pub mod builtins;
pub mod catalog;
pub mod decide;
pub mod glob;
pub mod limits;
pub mod masks;
pub mod role;

pub use decide::{Decision, Denial, SessionView};
pub use role::{Policy, RoleConfig};
