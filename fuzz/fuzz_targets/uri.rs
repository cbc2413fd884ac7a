//! URI parsing: no panic; a parsed URI serializes to text that parses back
//! to an equal URI, and equivalence is reflexive.
#![no_main]

use libfuzzer_sys::fuzz_target;
use siphon::sip::uri::Uri;

fuzz_target!(|data: &[u8]| {
    if let Ok(u) = Uri::parse(data) {
        let mut out = Vec::new();
        u.write_to(&mut out);
        let again = Uri::parse(&out).expect("a serialized URI parses");
        assert_eq!(u, again);
        assert!(u.equivalent(&again));
        let _ = u.user_decoded();
    }
});
