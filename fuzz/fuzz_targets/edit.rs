//! Edit lists: parse a message, derive edits from the fuzz input, apply
//! them; the output of a sane edit set must parse again.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use siphon::sip::{Edits, Framing, HeaderName, Limits, Message};

fuzz_target!(|data: &[u8]| {
    let Some((&ops, msg)) = data.split_first() else { return };
    let limits = Limits::default();
    let Ok(m) = Message::parse(Bytes::copy_from_slice(msg), Framing::Datagram, &limits) else { return };
    let mut e = Edits::new();
    if ops & 1 != 0 {
        e.insert_via(&m, b"SIP/2.0/UDP 192.0.2.1;branch=z9hG4bKfuzz");
    }
    if ops & 2 != 0 {
        let _ = e.remove_top_via(&m);
    }
    if ops & 4 != 0 {
        e.set_max_forwards(&m, ops);
    }
    if ops & 8 != 0 {
        let _ = e.remove_first_route(&m);
    }
    if ops & 16 != 0 {
        e.insert_record_route(&m, b"<sip:192.0.2.1;lr>");
    }
    if ops & 32 != 0 {
        e.set_request_uri(&m, b"sip:x@192.0.2.9:5070");
    }
    if ops & 64 != 0 {
        e.add_header(&m, "X-Fuzz", b"1");
    }
    if ops & 128 != 0 {
        e.remove_headers(&m, HeaderName::Route);
    }
    let mut out = Vec::new();
    e.apply(&m, &mut out);
    // Removing the only Via leaves a message without Via, and R-URI
    // replacement on a response is a no-op; everything else must re-parse.
    let removed_last_via = ops & 2 != 0 && ops & 1 == 0 && m.vias().count() <= 1;
    if !removed_last_via {
        let f = Message::parse(Bytes::from(out), Framing::Datagram, &limits)
            .expect("an edited valid message parses");
        assert_eq!(f.body(), m.body());
        assert_eq!(f.call_id(), m.call_id());
    }
});
