//! Siphon's load generator (`siphon-loadgen`): SIP calls or OPTIONS at a
//! steady rate through a proxy on loopback, with a UAS in the same process,
//! measured cheaply (batched UDP, fixed buffers, no per-call hash maps) so
//! the generator leaves the CPU to the proxy; and `plot`, which draws a
//! results TSV as an SVG. See loadtest/README.md.

#![forbid(unsafe_code)]

pub mod args;
pub mod cpu;
pub mod msgs;
pub mod net;
pub mod pace;
pub mod plot;
pub mod report;
pub mod uac;
pub mod uas;
