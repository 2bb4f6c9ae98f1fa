//! Running conversations: the executor shared by `hookbench test` and the load engine, the
//! checks, and the result data every report is built from.

pub mod assertions;
pub mod conversation;
pub mod load;
/// The reply decoder lives with the protocol; checks and the executor read its `Reply`.
pub use crate::protocol::reply;
pub mod results;
pub mod suite;
