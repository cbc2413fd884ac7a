//! Framing + parse of raw bytes, as datagram and as stream, then every
//! typed accessor and the error answer: nothing may panic or hang.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use siphon::sip::{frame_stream, response, Framing, HeaderName, Limits, Message, Status};

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_message_size: 8192, max_headers: 64 };
    let mut out = Vec::new();
    match Message::parse(Bytes::copy_from_slice(data), Framing::Datagram, &limits) {
        Ok(m) => {
            siphon_fuzz_support::touch(&m);
            response::build(&m, 200, &"OK", b"tag", &[], &mut out);
            let r = Message::parse(Bytes::from(out.clone()), Framing::Datagram, &limits);
            assert!(r.is_ok() || !m.is_request(), "a response we build must parse: {r:?}");
        }
        Err(e) => {
            if let Some(m) = e.message() {
                siphon_fuzz_support::touch(m);
            }
            response::build_error(&e, b"tag", &[], &mut out);
        }
    }
    // Stream framing: consume keepalives and frames until stuck, bounded.
    let mut rest = data;
    for _ in 0..64 {
        match frame_stream(rest, &limits) {
            Ok(Status::Keepalive(n)) | Ok(Status::Complete(n)) => {
                assert!(n > 0 && n <= rest.len());
                let (frame, tail) = rest.split_at(n);
                let _ = Message::parse(Bytes::copy_from_slice(frame), Framing::Stream, &limits);
                rest = tail;
            }
            Ok(Status::Partial) | Err(_) => break,
        }
    }
    let _ = HeaderName::from_bytes(data);
});

mod siphon_fuzz_support {
    use siphon::sip::{HeaderName, Message};

    pub fn touch(m: &Message) {
        let _ = m.request_uri();
        for v in m.vias() {
            if let Ok(v) = v {
                let _ = (v.branch(), v.rport(), v.received(), v.ttl());
            }
        }
        let _ = (m.from().map(|a| a.tag()), m.to().map(|a| a.uri()));
        for c in m.contacts().flatten() {
            if let siphon::sip::Contact::Addr(a) = c {
                let _ = (a.q(), a.expires(), a.uri());
            }
        }
        let _ = m.routes().count() + m.record_routes().count();
        let _ = (m.max_forwards(), m.expires(), m.content_type());
        let _ = m.tokens(HeaderName::Supported).count() + m.proxy_require().count();
        let _ = m.validate();
    }
}
