//! Siphon: a thread-per-core SIP edge proxy, registrar and load balancer.
//!
//! The protocol modules are sans-IO (no sockets, no clock): they take bytes
//! and `now` and return what to do. See `DESIGN.md`-level notes in the README.

#![forbid(unsafe_code)]

pub mod auth;
pub mod config;
pub mod metrics;
pub mod proxy;
pub mod registrar;
pub mod routing;
pub mod rt;
pub mod sip;
pub mod testkit;
pub mod transaction;
