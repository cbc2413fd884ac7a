//! (being written: see routing/mod.rs)
