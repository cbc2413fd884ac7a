//! See `siphon::testkit::fuzz::stateful` for what this target checks.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| siphon::testkit::fuzz::stateful(data));
