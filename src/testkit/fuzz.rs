//! The fuzz targets' bodies, in the library so that `fuzz/` (cargo-fuzz)
//! and `tests/fuzz_regressions.rs` (replaying every kept crash input) run
//! exactly the same checks. Each panics if an invariant breaks.

use bytes::Bytes;

use crate::proxy::{Core, Flow, Hosts, Outcome};
use crate::sip::uri::Uri;
use crate::sip::{
    frame_stream, response, Contact, Edits, Framing, HeaderName, Limits, Message, Status,
};

/// Framing + parse of raw bytes, as a datagram and as a stream, then every
/// typed accessor and the error answer. Nothing may panic or hang; a
/// response we build for a parsed request must itself parse.
pub fn parse(data: &[u8]) {
    let limits = Limits {
        max_message_size: 8192,
        max_headers: 64,
    };
    let mut out = Vec::new();
    match Message::parse(Bytes::copy_from_slice(data), Framing::Datagram, &limits) {
        Ok(m) => {
            touch(&m);
            response::build(&m, 200, &"OK", b"tag", &[], &mut out);
            // Our copy of the request's headers plus Content-Length may
            // exceed the request's own header count by one.
            let roomy = Limits {
                max_headers: limits.max_headers + 1,
                ..limits
            };
            let r = Message::parse(Bytes::from(out.clone()), Framing::Datagram, &roomy);
            assert!(
                r.is_ok() || !m.is_request(),
                "a response we build must parse: {r:?}"
            );
        }
        Err(e) => {
            if let Some(m) = e.message() {
                touch(m);
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
            Ok(Status::Body(n)) => {
                assert!(n > rest.len());
                break;
            }
            Ok(Status::Partial) | Err(_) => break,
        }
    }
    let _ = HeaderName::from_bytes(data);
}

/// A parsed URI serializes to text that parses back to an equal URI, and
/// equivalence is reflexive.
pub fn uri(data: &[u8]) {
    if let Ok(u) = Uri::parse(data) {
        let mut out = Vec::new();
        u.write_to(&mut out);
        let again = Uri::parse(&out).expect("a serialized URI parses");
        assert_eq!(u, again);
        assert!(u.equivalent(&again));
        let _ = u.user_decoded();
    }
}

/// The first byte picks edits; the rest is a message. The edited output of
/// a parsed message parses again (with room for the fields the edits add:
/// the input may sit exactly at the header limit), keeps its body and
/// Call-ID — unless the edits removed its only Via.
pub fn edit(data: &[u8]) {
    let Some((&ops, msg)) = data.split_first() else {
        return;
    };
    let limits = Limits::default();
    let Ok(m) = Message::parse(Bytes::copy_from_slice(msg), Framing::Datagram, &limits) else {
        return;
    };
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
    let removed_last_via = ops & 2 != 0 && ops & 1 == 0 && m.vias().count() <= 1;
    if !removed_last_via {
        let roomy = Limits {
            max_headers: limits.max_headers + 8,
            ..limits
        };
        let f = Message::parse(Bytes::from(out), Framing::Datagram, &roomy)
            .expect("an edited valid message parses");
        assert_eq!(f.body(), m.body());
        assert_eq!(f.call_id(), m.call_id());
    }
}

/// Raw bytes into the stateless proxy core, as a UDP datagram and as a TCP
/// frame, with a config that has a route, Record-Route and two listeners.
/// Nothing may panic, and whatever the core would send must parse.
pub fn proxy(data: &[u8]) {
    thread_local! {
        static CORE: std::cell::RefCell<Core> = std::cell::RefCell::new(fuzz_core());
    }
    let udp = Flow {
        transport: crate::config::Transport::Udp,
        local: std::net::SocketAddr::from(([127, 0, 0, 1], 5060)),
        remote: std::net::SocketAddr::from(([127, 0, 0, 2], 40000)),
        conn: None,
    };
    let tcp = Flow {
        transport: crate::config::Transport::Tcp,
        ..udp
    };
    CORE.with(|c| {
        for flow in [udp, tcp] {
            let out = c.borrow_mut().handle(Bytes::copy_from_slice(data), flow);
            let (t, replied) = match out {
                Outcome::Forwarded(t) | Outcome::Resent(t) => (t, false),
                Outcome::Replied(t, _) | Outcome::Rejected(t, _) => (t, true),
                Outcome::Dropped(_) | Outcome::ToShard(..) => continue,
            };
            let roomy = Limits {
                max_headers: Limits::default().max_headers + 8,
                ..Limits::default()
            };
            let framing = match t.transport {
                crate::config::Transport::Udp => Framing::Datagram,
                crate::config::Transport::Tcp => Framing::Stream,
            };
            match Message::parse(Bytes::from(t.data.clone()), framing, &roomy) {
                Ok(_) => {}
                // A reply copies what the request has (RFC 3261 §8.2.6):
                // if the request lacked a mandatory header or carried a bad
                // CSeq, so does the 400 (RFC 4475 §3.3.1 and §3.1.2.4 still
                // ask for that 400).
                Err(e) if replied && reply_fault_is_the_requests(data, &t.data, e.error()) => {}
                Err(e) => panic!("the proxy sent something unparsable: {e:?}"),
            }
        }
    });
}

/// True if `fault` (why a reply did not parse) is inherited from the
/// request in `data`: it concerns a header the reply copies (RFC 3261
/// §8.2.6), and the reply's value is the request's, byte for byte (or both
/// lack it).
fn reply_fault_is_the_requests(data: &[u8], reply: &[u8], fault: crate::sip::Error) -> bool {
    use crate::sip::Error::{BadHeader, CSeqTooLarge, MissingHeader};
    let h = match fault {
        MissingHeader(h) | BadHeader(h) => h,
        CSeqTooLarge => HeaderName::CSeq,
        _ => return false,
    };
    if !matches!(
        h,
        HeaderName::Via | HeaderName::From | HeaderName::To | HeaderName::CallId | HeaderName::CSeq
    ) {
        return false;
    }
    let value = |bytes: &[u8]| -> Option<Vec<u8>> {
        match Message::parse(
            Bytes::copy_from_slice(bytes),
            Framing::Datagram,
            &Limits::default(),
        ) {
            Ok(m) => m.header(h).map(<[u8]>::to_vec),
            Err(e) => e.message().and_then(|m| m.header(h)).map(<[u8]>::to_vec),
        }
    };
    value(data) == value(reply)
}

fn fuzz_core() -> Core {
    fuzz_core_with("[proxy]\nrecord_route = true\n", "")
}

/// The fuzz config: two listeners, `proxy` as its [proxy] table, a route
/// for `+1…` to a destination of two targets with `dest` as more keys.
fn fuzz_core_with(proxy: &str, dest: &str) -> Core {
    let text = format!(
        r#"[[listen]]
transport = "udp"
addr = "127.0.0.1:5060"
[[listen]]
transport = "tcp"
addr = "127.0.0.1:5060"
{proxy}
[[route]]
name = "r"
match = {{ user_prefix = "+1" }}
destination = "d"
[destination.d]
targets = [{{ uri = "sip:127.0.0.9:5080" }}, {{ uri = "sip:gw.example.net;transport=tcp" }}]
{dest}
[[route]]
name = "scanner"
match = {{ header = {{ name = "User-Agent", regex = "^(?i)friendly-scanner" }} }}
action = "drop"
[[route]]
name = "denied"
match = {{ source = ["10.0.0.0/8", "2001:db8::/32"] }}
action = "reply"
code = 403
[[route]]
name = "uk"
match = {{ user_prefix = ["+44", "0044"], method = ["INVITE", "MESSAGE"] }}
destination = "h"
rewrite = {{ strip = 3, prepend = "0" }}
[destination.h]
algorithm = "hash"
hash_key = "from-user"
targets = [{{ uri = "sip:127.0.0.9:5090", weight = 3 }}, {{ uri = "sip:127.0.0.10:5090" }}]
[registrar]
domains = ["example.com"]
max_contacts = 4
max_bindings = 64
partitions = 16
[auth]
realm = "example.com"
register = false
requests = ["MESSAGE"]
users = {{ alice = "a" }}
"#
    );
    let cfg = match crate::config::Config::parse(&text, std::path::Path::new("fuzz.toml")) {
        Ok(c) => c,
        Err(e) => panic!("the fuzz config must load: {e}"),
    };
    // The registrar (REGISTER, location routing) and digest challenges
    // are part of what is fuzzed: a small table, a fixed nonce key.
    let reg = crate::registrar::Registrar::in_memory(cfg.registrar.clone().expect("[registrar]"));
    let users = {
        let mut u = crate::auth::Users::new();
        u.insert("alice".into(), crate::auth::Credential::password("a"));
        u
    };
    let auth = crate::auth::Auth::new("example.com".into(), [7; 32], 300, users, 64);
    let mut core = Core::new(
        std::sync::Arc::new(cfg),
        std::sync::Arc::new(Hosts::parse("192.0.2.7 gw.example.net\n")),
    );
    core.set_registrar(std::sync::Arc::new(reg));
    core.set_auth(std::sync::Arc::new(auth));
    core
}

fn touch(m: &Message) {
    let _ = m.request_uri();
    for v in m.vias().flatten() {
        let _ = (v.branch(), v.rport(), v.received(), v.ttl());
    }
    let _ = (m.from().map(|a| a.tag()), m.to().map(|a| a.uri()));
    for c in m.contacts().flatten() {
        if let Contact::Addr(a) = c {
            let _ = (a.q(), a.expires(), a.uri());
        }
    }
    let _ = m.routes().count() + m.record_routes().count();
    let _ = (m.max_forwards(), m.expires(), m.content_type());
    let _ = m.tokens(HeaderName::Supported).count() + m.proxy_require().count();
    let _ = m.validate();
}

/// The stateful proxy driven by a script: the input is a sequence of
/// operations `[op][len][payload]`; op % 4 is
/// 0: `payload` arrives from the caller (UDP), as raw bytes;
/// 1: the callee answers the last request siphon sent it, with status
///    `100 + payload[0..2] % 600`;
/// 2: time advances by `payload[0] * 100` ms;
/// 3: the caller sends a well-formed INVITE, CANCEL or ACK (payload[0])
///    for one of a few transactions (payload[1]).
///
/// Nothing may panic; whatever siphon sends must parse; and once the
/// script ends and the clock runs on until no timer is left, every
/// transaction must be gone (no context leaks, whatever happened).
pub fn stateful(data: &[u8]) {
    let mut core = fuzz_core_with("[proxy]\nmode = \"stateful\"\nrecord_route = true\nbranch_timeout_ms = 2000\nmax_transactions = 64\n", "fork = \"parallel\"\n");
    let caller: std::net::SocketAddr = ([127, 0, 0, 2], 40000).into();
    let callee: std::net::SocketAddr = ([127, 0, 0, 9], 5080).into();
    let flow = |remote| Flow {
        transport: crate::config::Transport::Udp,
        local: std::net::SocketAddr::from(([127, 0, 0, 1], 5060)),
        remote,
        conn: None,
    };
    let mut now = 1000u64;
    let mut out = Vec::new();
    let mut last_down: Option<Message> = None;
    // `raw`: the bytes the caller just sent, if the operation sent raw bytes.
    let check = |out: &mut Vec<Outcome>, last_down: &mut Option<Message>, raw: &[u8]| {
        for o in out.drain(..) {
            let (t, replied) = match o {
                Outcome::Forwarded(t) | Outcome::Resent(t) => (t, false),
                Outcome::Replied(t, _) | Outcome::Rejected(t, _) => (t, true),
                Outcome::Dropped(_) | Outcome::ToShard(..) => continue,
            };
            let m = Message::parse(
                Bytes::from(t.data.clone()),
                Framing::Datagram,
                &Limits {
                    max_headers: Limits::default().max_headers + 8,
                    ..Limits::default()
                },
            );
            match m {
                Ok(m) if m.is_request() && t.dest == callee => *last_down = Some(m),
                Ok(_) => {}
                // A reply to raw bytes may copy their faults, as RFC 3261
                // §8.2.6 says (see `proxy`).
                Err(e) if replied && reply_fault_is_the_requests(raw, &t.data, e.error()) => {}
                Err(e) => panic!(
                    "the stateful proxy sent something unparsable to {}: {e:?}\n{}",
                    t.dest,
                    String::from_utf8_lossy(&t.data)
                ),
            }
        }
    };
    let mut rest = data;
    let mut steps = 0;
    while let [op, len, tail @ ..] = rest {
        steps += 1;
        if steps > 64 {
            break;
        }
        let n = (*len as usize).min(tail.len());
        let (payload, next) = tail.split_at(n);
        rest = next;
        let byte = |i: usize| payload.get(i).copied().unwrap_or(0);
        match op % 4 {
            0 => core.handle_at(now, Bytes::copy_from_slice(payload), flow(caller), &mut out),
            1 => {
                if let Some(req) = &last_down {
                    let code = 100 + (u16::from(byte(0)) << 8 | u16::from(byte(1))) % 600;
                    let resp = super::response_to(callee, req, code, "Fuzz");
                    core.handle_at(now, Bytes::from(resp), flow(callee), &mut out);
                }
            }
            2 => {
                now += u64::from(byte(0)) * 100;
                core.handle_timeout(now, &mut out);
            }
            _ => {
                let method = ["INVITE", "CANCEL", "ACK", "BYE"][byte(0) as usize % 4];
                let tx = byte(1) % 4;
                let req = super::request(
                    "UDP",
                    caller,
                    method,
                    "sip:+15551234@carrier.example",
                    &format!("fuzz-{tx}"),
                    &format!("z9hG4bKfz{tx}"),
                    1,
                    "",
                );
                core.handle_at(now, Bytes::from(req), flow(caller), &mut out);
            }
        }
        let raw = if op % 4 == 0 { payload } else { &[] };
        check(&mut out, &mut last_down, raw);
    }
    // Run the clock from deadline to deadline (bounded; a context lives
    // minutes at most): then nothing may be left.
    for _ in 0..10_000 {
        let Some(next) = core.poll_timeout() else {
            break;
        };
        now = now.max(next);
        core.handle_timeout(now, &mut out);
        check(&mut out, &mut last_down, &[]);
    }
    assert_eq!(
        core.tx_stats().active,
        0,
        "a response context outlived every timer: {:?}",
        core.tx_stats()
    );
}
