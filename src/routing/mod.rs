//! The carrier routing table (DESIGN.md `routing/`): longest-prefix
//! tables, source address lists, selection algorithms over destination
//! sets and target health. Sans-IO: callers pass `now`.

pub mod calls;
pub mod cidr;
pub mod health;
pub mod limit;
pub mod prefix;
pub mod report;
pub mod select;
pub mod stats;
mod table;

pub use table::{CompiledRoute, Decision, Picker, Request, Routing, Set, SetTarget};
