//! Siphon: a thread-per-core SIP edge proxy, registrar and load balancer.
//!
//! The protocol modules are sans-IO (no sockets, no clock): they take bytes
//! and `now` and return what to do. See `DESIGN.md`-level notes in the README.

// Unsafe code is confined to one module, the shard's io_uring backend
// (`rt/ring.rs`); everything else forbids it.
#![deny(unsafe_code)]

#[forbid(unsafe_code)]
pub mod auth;
#[forbid(unsafe_code)]
pub mod config;
#[forbid(unsafe_code)]
pub mod guard;
#[forbid(unsafe_code)]
pub mod metrics;
#[forbid(unsafe_code)]
pub mod proxy;
#[forbid(unsafe_code)]
pub mod registrar;
#[forbid(unsafe_code)]
pub mod routing;
pub mod rt;
#[forbid(unsafe_code)]
pub mod secret;
#[forbid(unsafe_code)]
pub mod sip;
#[forbid(unsafe_code)]
pub mod testkit;
#[forbid(unsafe_code)]
pub mod transaction;
