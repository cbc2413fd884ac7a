use std::path::Path;

use super::*;
use crate::sip::{HeaderName, Method};

/// Two listeners on 127.0.0.1:5060 (UDP, TCP); the stateful tests use it too.
pub(super) const BASE: &str = r#"
[server]
user_agent = "Siphon-test"
[[listen]]
transport = "udp"
addr = "127.0.0.1:5060"
[[listen]]
transport = "tcp"
addr = "127.0.0.1:5060"
"#;

fn core(extra: &str) -> Core {
    let cfg = Config::parse(&format!("{BASE}{extra}"), Path::new("t.toml")).unwrap();
    let hosts = Hosts::parse("192.0.2.50 uas.example.net\n");
    Core::new(Arc::new(cfg), Arc::new(hosts))
}

fn udp_from(port: u16) -> Flow {
    Flow {
        transport: Transport::Udp,
        local: "127.0.0.1:5060".parse().unwrap(),
        remote: SocketAddr::from(([127, 0, 0, 2], port)),
        conn: None,
    }
}

fn invite(ruri: &str, extra: &str) -> Bytes {
    Bytes::from(format!(
        "INVITE {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5070;branch=z9hG4bKuac1;rport\r\nMax-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\nCall-ID: call-1@127.0.0.2\r\nCSeq: 1 INVITE\r\n{extra}Content-Length: 0\r\n\r\n"
    ))
}

fn parse(b: &[u8]) -> Message {
    Message::parse(
        Bytes::copy_from_slice(b),
        Framing::Datagram,
        &Limits::default(),
    )
    .unwrap()
}

fn forwarded(o: Outcome) -> (Transmit, Message) {
    match o {
        Outcome::Forwarded(t) => {
            let m = parse(&t.data);
            (t, m)
        }
        other => panic!("expected Forwarded, got {other:?}"),
    }
}

fn replied(o: Outcome) -> (Transmit, Message, u16) {
    match o {
        Outcome::Replied(t, code) | Outcome::Rejected(t, code) => {
            let m = parse(&t.data);
            assert_eq!(m.status(), Some(code));
            (t, m, code)
        }
        other => panic!("expected Replied, got {other:?}"),
    }
}

#[test]
fn forwards_to_the_request_uri_with_via_max_forwards_and_received() {
    let mut c = core("");
    let (t, m) = forwarded(c.handle(invite("sip:bob@127.0.0.3:5080", ""), udp_from(40000)));
    assert_eq!(
        (t.transport, t.dest, t.local),
        (
            Transport::Udp,
            "127.0.0.3:5080".parse().unwrap(),
            "127.0.0.1:5060".parse().unwrap()
        )
    );
    let vias: Vec<_> = m.vias().map(Result::unwrap).collect();
    assert_eq!(vias.len(), 2);
    assert_eq!(
        (vias[0].host, vias[0].port),
        (&b"127.0.0.1"[..], Some(5060))
    );
    assert!(vias[0]
        .branch()
        .unwrap()
        .starts_with(branch::STATELESS_PREFIX.as_bytes()));
    // RFC 3581: the sender asked for rport; received is the source address.
    assert_eq!(vias[1].rport(), Some(Some(40000)));
    assert_eq!(vias[1].received(), Some(&b"127.0.0.2"[..]));
    assert_eq!(m.max_forwards(), Ok(Some(69)));
    assert_eq!(m.request_uri_bytes(), Some(&b"sip:bob@127.0.0.3:5080"[..]));
    assert_eq!(m.record_routes().count(), 0);
}

#[test]
fn a_retransmission_gets_the_same_branch_and_cancel_too() {
    let mut c = core("");
    let (a, _) = forwarded(c.handle(invite("sip:bob@127.0.0.3:5080", ""), udp_from(40000)));
    let (b, _) = forwarded(c.handle(invite("sip:bob@127.0.0.3:5080", ""), udp_from(40000)));
    assert_eq!(a, b, "byte-identical");
    let cancel = String::from_utf8(invite("sip:bob@127.0.0.3:5080", "").to_vec())
        .unwrap()
        .replace("INVITE", "CANCEL");
    let (c_t, c_m) = forwarded(c.handle(Bytes::from(cancel), udp_from(40000)));
    assert_eq!(c_t.dest, a.dest);
    assert_eq!(
        c_m.top_via().unwrap().branch(),
        parse(&a.data).top_via().unwrap().branch()
    );
}

#[test]
fn max_forwards_zero_gets_483_and_absent_gets_70() {
    let mut c = core("");
    let zero = String::from_utf8(invite("sip:bob@127.0.0.3", "").to_vec())
        .unwrap()
        .replace("Max-Forwards: 70", "Max-Forwards: 0");
    let (t, m, _) = replied(c.handle(Bytes::from(zero), udp_from(40000)));
    assert_eq!((m.status(), m.reason()), (Some(483), &b"Too Many Hops"[..]));
    assert_eq!(
        t.dest,
        "127.0.0.2:40000".parse().unwrap(),
        "rport: back to the source port"
    );
    assert!(m.to().unwrap().tag().is_some());

    let none = String::from_utf8(invite("sip:bob@127.0.0.3", "").to_vec())
        .unwrap()
        .replace("Max-Forwards: 70\r\n", "");
    let (_, m) = forwarded(c.handle(Bytes::from(none), udp_from(40000)));
    assert_eq!(m.max_forwards(), Ok(Some(70)));
}

#[test]
fn replies_without_rport_go_to_the_via_port() {
    let mut c = core("");
    let s = String::from_utf8(invite("sip:bob@127.0.0.3", "").to_vec())
        .unwrap()
        .replace(";rport", "")
        .replace("Max-Forwards: 70", "Max-Forwards: 0");
    let (t, _, _) = replied(c.handle(Bytes::from(s), udp_from(40000)));
    assert_eq!(t.dest, "127.0.0.2:5070".parse().unwrap());
}

#[test]
fn bad_requests_get_400_with_the_reason_and_garbage_is_dropped() {
    let mut c = core("");
    let dup = invite("sip:bob@127.0.0.3", "Content-Length: 0\r\n");
    let (_, m, code) = replied(c.handle(dup, udp_from(40000)));
    assert_eq!((code, m.reason()), (400, &b"Duplicate Content-Length"[..]));
    let bad_via = String::from_utf8(invite("sip:bob@127.0.0.3", "").to_vec())
        .unwrap()
        .replace("Max-Forwards", "Via: SIP/2.0/UDP ;;\r\nMax-Forwards");
    let (_, m, _) = replied(c.handle(Bytes::from(bad_via), udp_from(40000)));
    assert_eq!(m.reason(), b"Bad Via");
    // RFC 3261 §8.1.1.5: a CSeq number must be below 2^31.
    let big_cseq = String::from_utf8(invite("sip:bob@127.0.0.3", "").to_vec())
        .unwrap()
        .replace("CSeq: 1 INVITE", "CSeq: 2147483648 INVITE");
    let (t, code) = match c.handle(Bytes::from(big_cseq), udp_from(40000)) {
        Outcome::Rejected(t, code) => (t, code),
        other => panic!("expected a 400, got {other:?}"),
    };
    let line = t.data.split(|&b| b == b'\r').next().unwrap();
    assert_eq!(
        (code, line),
        (400, &b"SIP/2.0 400 CSeq Number Too Large"[..])
    );
    // A NUL in the method: a bad request, answered, not garbage.
    let nul = String::from_utf8(invite("sip:bob@127.0.0.3", "").to_vec())
        .unwrap()
        .replacen("INVITE", "INV\0ITE", 1);
    match c.handle(Bytes::from(nul), udp_from(40000)) {
        Outcome::Rejected(t, 400) => {
            assert!(t.data.starts_with(b"SIP/2.0 400 Bad Method\r\n"));
            assert_eq!(t.dest, "127.0.0.2:40000".parse().unwrap());
        }
        other => panic!("expected a 400, got {other:?}"),
    }
    assert_eq!(
        c.handle(Bytes::from_static(b"\x16\x03\x01 hello"), udp_from(1)),
        Outcome::Dropped(Drop::Garbage)
    );
    assert_eq!(
        c.handle(Bytes::from_static(b"\r\n\r\n"), udp_from(1)),
        Outcome::Dropped(Drop::Keepalive)
    );
    // The retransmitted bad request gets the same To tag (RFC 3261 §8.2.7).
    let again = invite("sip:bob@127.0.0.3", "Content-Length: 0\r\n");
    let (_, m2, _) = replied(c.handle(again, udp_from(40000)));
    let first = replied(c.handle(
        invite("sip:bob@127.0.0.3", "Content-Length: 0\r\n"),
        udp_from(40000),
    ))
    .1;
    assert_eq!(m2.to().unwrap().tag(), first.to().unwrap().tag());
}

#[test]
fn port_zero_in_the_request_uri_gets_400_not_a_send_to_port_0() {
    // A port names a transport endpoint: 1–65535. Port 0 was forwarded to
    // and the send failed in the runtime, so the caller heard nothing.
    let mut c = core("");
    for ruri in [
        "sip:x@127.0.0.1:0",
        "sip:x@127.0.0.3:00",
        "sip:x@uas.example.net:0;transport=tcp",
        "sips:x@[2001:db8::1]:0",
    ] {
        let (t, m, code) = replied(c.handle(invite(ruri, ""), udp_from(40000)));
        assert_eq!(
            (code, m.reason()),
            (400, &b"Bad Request-URI Port"[..]),
            "{ruri}"
        );
        assert_eq!(t.dest, "127.0.0.2:40000".parse().unwrap());
    }
    // Port 1 and 65535 are ports like any other.
    for (ruri, dest) in [
        ("sip:x@127.0.0.3:1", "127.0.0.3:1"),
        ("sip:x@127.0.0.3:65535", "127.0.0.3:65535"),
    ] {
        let (t, _) = forwarded(c.handle(invite(ruri, ""), udp_from(40000)));
        assert_eq!(t.dest, dest.parse().unwrap());
    }
}

/// RFC 3261 §17.2.3, §9.2: the next hop matches an INVITE's CANCEL and
/// its non-2xx ACK to the INVITE by the top Via branch, so a stateless
/// proxy must give all three the same one (§16.11). The ACK carries the
/// To tag of the answer; neither needs the INVITE's credentials.
#[test]
fn an_invite_its_cancel_and_its_non_2xx_ack_share_a_branch_stateless() {
    let mut c = core("");
    let ruri = "sip:bob@127.0.0.3:5080";
    let text = String::from_utf8(
        invite(ruri, "Proxy-Authorization: Digest username=\"alice\"\r\n").to_vec(),
    )
    .unwrap();
    let (_, inv) = forwarded(c.handle(Bytes::from(text.clone()), udp_from(40000)));
    let bare = text.replace("Proxy-Authorization: Digest username=\"alice\"\r\n", "");
    let cancel = bare
        .replace("INVITE sip", "CANCEL sip")
        .replace("1 INVITE", "1 CANCEL");
    let (_, can) = forwarded(c.handle(Bytes::from(cancel), udp_from(40000)));
    let ack = bare
        .replace("INVITE sip", "ACK sip")
        .replace("1 INVITE", "1 ACK")
        .replace(
            "To: <sip:bob@example.com>",
            "To: <sip:bob@example.com>;tag=b1",
        );
    let (_, ack) = forwarded(c.handle(Bytes::from(ack), udp_from(40000)));
    let branch = |m: &Message| m.top_via().unwrap().branch().unwrap().to_vec();
    assert_eq!(branch(&can), branch(&inv), "CANCEL");
    assert_eq!(branch(&ack), branch(&inv), "ACK");
}

#[test]
fn acks_are_never_answered() {
    let mut c = core("");
    let ack = String::from_utf8(invite("sip:bob@127.0.0.3", "").to_vec())
        .unwrap()
        .replace("INVITE", "ACK")
        .replace("Max-Forwards: 70", "Max-Forwards: 0");
    assert_eq!(
        c.handle(Bytes::from(ack), udp_from(40000)),
        Outcome::Dropped(Drop::Ack)
    );
    let ack = String::from_utf8(invite("sip:bob@127.0.0.3", "").to_vec())
        .unwrap()
        .replace("INVITE", "ACK");
    let (_, m) = forwarded(c.handle(Bytes::from(ack), udp_from(40000)));
    assert_eq!(m.method(), Some(Method::Ack));
}

#[test]
fn options_to_the_proxy_is_answered_locally() {
    let mut c = core("");
    let s = String::from_utf8(invite("sip:127.0.0.1:5060", "").to_vec())
        .unwrap()
        .replace("INVITE", "OPTIONS");
    let (_, m, _) = replied(c.handle(Bytes::from(s), udp_from(40000)));
    assert!(m
        .header(HeaderName::Allow)
        .unwrap()
        .starts_with(b"INVITE, ACK, CANCEL"));
    assert_eq!(m.header(HeaderName::Accept), Some(&b"application/sdp"[..]));
    assert_eq!(m.header(HeaderName::Server), Some(&b"Siphon-test"[..]));
    // Other requests to us with nowhere to go: 404.
    let (_, m, _) = replied(c.handle(invite("sip:bob@127.0.0.1", ""), udp_from(40000)));
    assert_eq!(m.status(), Some(404));
}

#[test]
fn configured_routes_match_domain_prefix_and_method_and_round_robin() {
    let cfg = r#"
[[route]]
name = "uk"
match = { user_prefix = "+44", method = "INVITE" }
destination = "uk"
[[route]]
name = "example"
match = { domain = "example.com" }
destination = "ex"
[destination.uk]
targets = [{ uri = "sip:127.0.0.10:5080" }, { uri = "sip:127.0.0.11:5080;transport=tcp" }]
[destination.ex]
targets = [{ uri = "sip:uas.example.net:5090" }]
"#;
    let mut c = core(cfg);
    let dests: Vec<_> = (0..4)
        .map(|_| forwarded(c.handle(invite("sip:+441234@127.0.0.1", ""), udp_from(40000))).0)
        .map(|t| (t.dest.to_string(), t.transport))
        .collect();
    assert_eq!(dests[0], ("127.0.0.10:5080".into(), Transport::Udp));
    assert_eq!(dests[1], ("127.0.0.11:5080".into(), Transport::Tcp));
    assert_eq!(dests[2], dests[0]);
    assert_eq!(dests[3], dests[1]);
    // The method does not match: falls to the next route? Only if its domain does.
    let opt = String::from_utf8(invite("sip:+441234@Example.COM", "").to_vec())
        .unwrap()
        .replace("INVITE", "MESSAGE");
    let (t, m) = forwarded(c.handle(Bytes::from(opt), udp_from(40000)));
    assert_eq!(
        t.dest,
        "192.0.2.50:5090".parse().unwrap(),
        "resolved from the hosts table"
    );
    assert_eq!(
        m.request_uri_bytes(),
        Some(&b"sip:+441234@Example.COM"[..]),
        "R-URI unchanged"
    );
}

#[test]
fn unresolvable_names_and_unknown_schemes() {
    let mut c = core("");
    let (_, m, _) = replied(c.handle(invite("sip:bob@nowhere.invalid", ""), udp_from(40000)));
    assert_eq!(
        (m.status(), m.reason()),
        (Some(503), &b"Unresolvable Destination"[..])
    );
    let (_, m, _) = replied(c.handle(invite("mailto:bob@example.com", ""), udp_from(40000)));
    assert_eq!(m.status(), Some(416));
    let (_, m, _) = replied(c.handle(invite("sip:bob@255.255.255.255", ""), udp_from(40000)));
    assert_eq!(m.status(), Some(403));
}

#[test]
fn record_route_single_and_double() {
    let mut c = core("[proxy]\nrecord_route = true\n");
    let (_, m) = forwarded(c.handle(invite("sip:bob@127.0.0.3:5080", ""), udp_from(40000)));
    let rr: Vec<_> = m.record_routes().map(|r| r.unwrap().uri.to_vec()).collect();
    assert_eq!(rr, [b"sip:127.0.0.1:5060;lr".to_vec()]);
    // In over TCP, out over UDP: two values, the outbound side on top.
    let tcp = Flow {
        transport: Transport::Tcp,
        ..udp_from(40000)
    };
    let (t, m) = forwarded(c.handle(invite("sip:bob@127.0.0.3:5080", ""), tcp));
    assert_eq!(t.transport, Transport::Udp);
    let rr: Vec<_> = m.record_routes().map(|r| r.unwrap().uri.to_vec()).collect();
    assert_eq!(
        rr,
        [
            b"sip:127.0.0.1:5060;lr".to_vec(),
            b"sip:127.0.0.1:5060;transport=tcp;lr".to_vec()
        ]
    );
}

#[test]
fn loose_routing_pops_our_route_and_follows_the_next() {
    let mut c = core("");
    let (t, m) = forwarded(c.handle(
        invite(
            "sip:bob@192.0.2.99",
            "Route: <sip:127.0.0.1:5060;lr>, <sip:127.0.0.7:5099;lr>\r\n",
        ),
        udp_from(40000),
    ));
    assert_eq!(t.dest, "127.0.0.7:5099".parse().unwrap());
    let routes: Vec<_> = m.routes().map(|r| r.unwrap().uri.to_vec()).collect();
    assert_eq!(routes, [b"sip:127.0.0.7:5099;lr".to_vec()]);
    assert_eq!(m.request_uri_bytes(), Some(&b"sip:bob@192.0.2.99"[..]));
    // Only our own Route: it goes, and the Request-URI is the target.
    let (t, m) = forwarded(c.handle(
        invite("sip:bob@127.0.0.3:5080", "Route: <sip:127.0.0.1;lr>\r\n"),
        udp_from(40000),
    ));
    assert_eq!(t.dest, "127.0.0.3:5080".parse().unwrap());
    assert_eq!(m.header(HeaderName::Route), None);
}

#[test]
fn strict_routers_before_and_after_us() {
    let mut c = core("");
    // The previous hop was a strict router: our RR URI is the R-URI and the
    // real target is the last Route (RFC 3261 §16.4).
    let (t, m) = forwarded(c.handle(
        invite(
            "sip:127.0.0.1:5060;lr",
            "Route: <sip:bob@127.0.0.3:5080>\r\n",
        ),
        udp_from(40000),
    ));
    assert_eq!(t.dest, "127.0.0.3:5080".parse().unwrap());
    assert_eq!(m.request_uri_bytes(), Some(&b"sip:bob@127.0.0.3:5080"[..]));
    assert_eq!(m.routes().count(), 0);
    // The next hop is a strict router: it becomes the R-URI, the old R-URI
    // goes to the end of Route (§16.6 step 6).
    let (t, m) = forwarded(c.handle(
        invite("sip:bob@192.0.2.99", "Route: <sip:127.0.0.8:5098>\r\n"),
        udp_from(40000),
    ));
    assert_eq!(t.dest, "127.0.0.8:5098".parse().unwrap());
    assert_eq!(m.request_uri_bytes(), Some(&b"sip:127.0.0.8:5098"[..]));
    let routes: Vec<_> = m.routes().map(|r| r.unwrap().uri.to_vec()).collect();
    assert_eq!(routes, [b"sip:bob@192.0.2.99".to_vec()]);
}

#[test]
fn loops_are_detected_spirals_are_not() {
    let mut c = core("");
    let (first, _) = forwarded(c.handle(invite("sip:bob@127.0.0.3:5080", ""), udp_from(40000)));
    // The request comes back unchanged through another element that added
    // its own Via on top: a loop (RFC 3261 §16.3 step 4).
    let text = String::from_utf8(first.data.clone()).unwrap();
    let looped = text.replacen(
        "Via: ",
        "Via: SIP/2.0/UDP 127.0.0.3:5080;branch=z9hG4bKother\r\nVia: ",
        1,
    );
    let (_, m, _) = replied(c.handle(
        Bytes::from(looped),
        Flow {
            remote: "127.0.0.3:5080".parse().unwrap(),
            conn: None,
            ..udp_from(0)
        },
    ));
    assert_eq!((m.status(), m.reason()), (Some(482), &b"Loop Detected"[..]));
    // A spiral: the same request back with another Request-URI is forwarded.
    let spiral = text
        .replacen(
            "Via: ",
            "Via: SIP/2.0/UDP 127.0.0.3:5080;branch=z9hG4bKother\r\nVia: ",
            1,
        )
        .replace(
            "INVITE sip:bob@127.0.0.3:5080",
            "INVITE sip:bob@127.0.0.4:5080",
        );
    let (t, _) = forwarded(c.handle(
        Bytes::from(spiral),
        Flow {
            remote: "127.0.0.3:5080".parse().unwrap(),
            conn: None,
            ..udp_from(0)
        },
    ));
    assert_eq!(t.dest, "127.0.0.4:5080".parse().unwrap());
}

#[test]
fn proxy_require_gets_420_with_unsupported() {
    let mut c = core("");
    let (_, m, _) = replied(c.handle(
        invite("sip:bob@127.0.0.3", "Proxy-Require: foo, bar\r\n"),
        udp_from(40000),
    ));
    assert_eq!(m.status(), Some(420));
    assert_eq!(m.header(HeaderName::Unsupported), Some(&b"foo, bar"[..]));
}

#[test]
fn large_requests_move_to_tcp() {
    let mut c = core("");
    let big = invite(
        "sip:bob@127.0.0.3:5080",
        &format!("X-Pad: {}\r\n", "x".repeat(1300)),
    );
    let (t, m) = forwarded(c.handle(big, udp_from(40000)));
    assert_eq!(t.transport, Transport::Tcp);
    assert_eq!(m.top_via().unwrap().transport, crate::sip::Transport::Tcp);
    // A UDP request without Content-Length gets one when it moves to a
    // stream (RFC 3261 §18.3); found by the proxy fuzz target.
    let no_cl = String::from_utf8(
        invite(
            "sip:bob@127.0.0.3:5080",
            &format!("X-Pad: {}\r\n", "x".repeat(1300)),
        )
        .to_vec(),
    )
    .unwrap()
    .replace("Content-Length: 0\r\n", "");
    let (t, _) = forwarded(c.handle(Bytes::from(no_cl), udp_from(40000)));
    assert_eq!(t.transport, Transport::Tcp);
    let m = Message::parse(Bytes::from(t.data), Framing::Stream, &Limits::default()).unwrap();
    assert_eq!(m.content_length(), Some(0));
    let mut off = core("[proxy]\nudp_max_size = 0\n");
    let big = invite(
        "sip:bob@127.0.0.3:5080",
        &format!("X-Pad: {}\r\n", "x".repeat(1300)),
    );
    assert_eq!(
        forwarded(off.handle(big, udp_from(40000))).0.transport,
        Transport::Udp
    );
}

fn response(vias: &str) -> Bytes {
    Bytes::from(format!(
        "SIP/2.0 180 Ringing\r\n{vias}From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>;tag=b1\r\nCall-ID: call-1@127.0.0.2\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    ))
}

/// Our Via (`top`, with `{b}` where the branch goes) above `next`, with the
/// branch a forwarded request with `next` as its top Via got.
fn ours(top: &str, next: &str, conn: Option<ConnId>) -> Bytes {
    let req = format!(
        "INVITE sip:bob@example.com SIP/2.0\r\n{next}From: <sip:alice@example.com>;tag=a1\r\nTo: <sip:bob@example.com>\r\nCall-ID: call-1@127.0.0.2\r\nCSeq: 1 INVITE\r\nContent-Length: 0\r\n\r\n"
    );
    let req = parse(req.as_bytes());
    let mut b = String::new();
    branch::stateless_branch(&req, branch::loop_hash(&req), &mut b, conn);
    response(&format!("{}{next}", top.replace("{b}", &b)))
}

#[test]
fn forged_responses_are_dropped() {
    let mut c = core("");
    let next = "Via: SIP/2.0/UDP 127.0.0.2:5070;branch=z9hG4bKuac1\r\n";
    let genuine = ours("Via: SIP/2.0/UDP 127.0.0.1;branch={b}\r\n", next, None);
    assert!(matches!(
        c.handle(genuine.clone(), udp_from(0)),
        Outcome::Forwarded(_)
    ));
    let text = String::from_utf8(genuine.to_vec()).unwrap();
    // Every field an off-path sender can guess, and one it cannot.
    let mut tag = text.clone();
    let at = tag.find("branch=z9hG4bKsl").unwrap() + "branch=z9hG4bKsl".len() + 17;
    tag.replace_range(at..at + 16, "0000000000000000");
    for forged in [
        response(&format!("Via: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKslx\r\n{next}")),
        response(&format!("Via: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKsf0000000000000000.0.0.0.0.0000000000000000\r\n{next}")),
        Bytes::from(text.replace("call-1@", "call-2@")),
        Bytes::from(text.replace("CSeq: 1 ", "CSeq: 2 ")),
        Bytes::from(text.replace("z9hG4bKuac1", "z9hG4bKuac2")),
        Bytes::from(tag),
    ] {
        assert_eq!(
            c.handle(forged, udp_from(0)),
            Outcome::Dropped(Drop::ForgedResponse)
        );
    }
}

#[test]
fn responses_pop_our_via_and_follow_the_next() {
    let mut c = core("");
    let r = ours(
        "Via: SIP/2.0/UDP 127.0.0.1:5060;branch={b}\r\n",
        "Via: SIP/2.0/UDP 127.0.0.2:5070;branch=z9hG4bKuac1;rport=40000;received=127.0.0.2\r\n",
        None,
    );
    let (t, m) = forwarded(c.handle(
        r,
        Flow {
            remote: "127.0.0.3:5080".parse().unwrap(),
            conn: None,
            ..udp_from(0)
        },
    ));
    assert_eq!(t.dest, "127.0.0.2:40000".parse().unwrap());
    assert_eq!(m.vias().count(), 1);
    assert_eq!(m.top_via().unwrap().branch(), Some(&b"z9hG4bKuac1"[..]));
    // No rport: the sent-by port; a TCP Via: over TCP.
    let r = ours(
        "Via: SIP/2.0/UDP 127.0.0.1;branch={b}\r\n",
        "Via: SIP/2.0/TCP 127.0.0.2:5070;branch=z9hG4bKuac1\r\n",
        None,
    );
    let (t, _) = forwarded(c.handle(r, udp_from(0)));
    assert_eq!(
        (t.transport, t.dest),
        (Transport::Tcp, "127.0.0.2:5070".parse().unwrap())
    );
    // Over TCP, rport is not used (RFC 3581 is for unreliable transports):
    // the connection named in our branch, else received + sent-by port.
    let r = ours(
        "Via: SIP/2.0/UDP 127.0.0.1;branch={b}\r\n",
        "Via: SIP/2.0/TCP 127.0.0.2:5070;branch=z9hG4bKuac1;rport=40001;received=127.0.0.9\r\n",
        Some(crate::proxy::ConnId(0x3000000000002a)),
    );
    let (t, _) = forwarded(c.handle(r, udp_from(0)));
    assert_eq!(
        (t.dest, t.conn),
        (
            "127.0.0.9:5070".parse().unwrap(),
            Some(crate::proxy::ConnId(0x3000000000002a))
        )
    );
}

#[test]
fn responses_not_for_us_or_to_nowhere_are_dropped() {
    let mut c = core("");
    let r = response("Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bKx\r\nVia: SIP/2.0/UDP 127.0.0.2;branch=z9hG4bKy\r\n");
    assert_eq!(c.handle(r, udp_from(0)), Outcome::Dropped(Drop::NotOurVia));
    let r = response("Via: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKx\r\n");
    assert_eq!(c.handle(r, udp_from(0)), Outcome::Dropped(Drop::NoNextVia));
    // RFC 4475 §3.3.10: never towards a broadcast address.
    let r = ours(
        "Via: SIP/2.0/UDP 127.0.0.1;branch={b}\r\n",
        "Via: SIP/2.0/UDP 255.255.255.255;branch=z9hG4bK1saber23\r\n",
        None,
    );
    assert_eq!(
        c.handle(r, udp_from(0)),
        Outcome::Dropped(Drop::BadDestination)
    );
    let r = ours(
        "Via: SIP/2.0/UDP 127.0.0.1;branch={b}\r\n",
        "Via: SIP/2.0/UDP unknown.invalid;branch=z9hG4bK1\r\n",
        None,
    );
    assert_eq!(
        c.handle(r, udp_from(0)),
        Outcome::Dropped(Drop::Unresolvable)
    );
    let bad = Bytes::from_static(
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1\r\nCSeq: 1 INVITE\r\n\r\n",
    );
    assert_eq!(
        c.handle(bad, udp_from(0)),
        Outcome::Dropped(Drop::BadResponse)
    );
}

#[test]
fn replies_over_tcp_go_back_to_the_peer() {
    let mut c = core("");
    let tcp = Flow {
        transport: Transport::Tcp,
        ..udp_from(40001)
    };
    let zero = String::from_utf8(invite("sip:bob@127.0.0.3", "").to_vec())
        .unwrap()
        .replace("Max-Forwards: 70", "Max-Forwards: 0");
    let (t, _, _) = replied(c.handle(Bytes::from(zero), tcp));
    assert_eq!(
        (t.transport, t.dest),
        (Transport::Tcp, "127.0.0.2:40001".parse().unwrap())
    );
}

#[test]
fn a_response_moving_to_tcp_gets_content_length() {
    let mut c = core("");
    let r = ours(
        "Via: SIP/2.0/UDP 127.0.0.1;branch={b}\r\n",
        "Via: SIP/2.0/TCP 127.0.0.2:5070;branch=z9hG4bKuac1\r\n",
        None,
    );
    // Without Content-Length (legal over UDP) it gets one for the stream.
    let r = String::from_utf8(r.to_vec())
        .unwrap()
        .replace("Content-Length: 0\r\n", "");
    let (t, _) = forwarded(c.handle(Bytes::from(r), udp_from(0)));
    assert_eq!(t.transport, Transport::Tcp);
    let m = Message::parse(Bytes::from(t.data), Framing::Stream, &Limits::default()).unwrap();
    assert_eq!(m.content_length(), Some(0));
}

#[test]
fn a_forged_answer_to_a_probe_is_dropped() {
    let mut c = core(
        r#"
[[route]]
name = "all"
destination = "trunks"
[destination.trunks]
targets = [{ uri = "sip:192.0.2.60:5060" }]
probe = { mode = "all", interval_ms = 200, timeout_ms = 100 }
"#,
    );
    let mut out = Vec::new();
    c.poll_probes(1_000, &mut out);
    let Some(Outcome::Forwarded(probe)) = out.pop() else {
        panic!("a probe is due: {out:?}")
    };
    let probe = parse(&probe.data);
    let from: SocketAddr = "192.0.2.60:5060".parse().unwrap();
    let genuine = crate::testkit::response_to(from, &probe, 200, "OK");
    let branch = String::from_utf8(probe.top_via().unwrap().branch().unwrap().to_vec()).unwrap();
    let flow = Flow {
        remote: from,
        ..udp_from(0)
    };
    let text = String::from_utf8(genuine.clone()).unwrap();
    // The id without its tag (what a sender guessing set, target and
    // sequence number can make), and with a wrong tag.
    let untagged = text.replace(&branch, &branch[..branch.len() - 17]);
    let zero = text.replace(&branch[branch.len() - 16..], "0000000000000000");
    for forged in [untagged, zero] {
        assert_eq!(
            c.handle(Bytes::from(forged), flow),
            Outcome::Dropped(Drop::ForgedResponse)
        );
    }
    assert_eq!(
        c.handle(Bytes::from(genuine), flow),
        Outcome::Dropped(Drop::ProbeReply)
    );
}

#[test]
fn new_calls_over_a_cps_limit_get_503_in_dialog_requests_never() {
    let mut c = core(
        r#"
[[route]]
name = "all"
destination = "d"
cps = 2
burst = 2
[destination.d]
targets = [{ uri = "sip:192.0.2.60:5060" }]
"#,
    );
    let call = |i: u32| {
        String::from_utf8(invite("sip:bob@192.0.2.61", "").to_vec())
            .unwrap()
            .replace("call-1@", &format!("call-{i}@"))
    };
    for i in 0..2 {
        assert!(matches!(
            c.handle(Bytes::from(call(i)), udp_from(0)),
            Outcome::Forwarded(_)
        ));
    }
    let (_, m, code) = replied(c.handle(Bytes::from(call(2)), udp_from(0)));
    assert_eq!(code, 503);
    assert_eq!(m.header(HeaderName::RetryAfter), Some(&b"1"[..]));
    // Not limited: other methods, and anything inside a dialog.
    let options = call(3).replace("INVITE", "OPTIONS");
    assert!(matches!(
        c.handle(Bytes::from(options), udp_from(0)),
        Outcome::Forwarded(_)
    ));
    let reinvite = call(4).replace(
        "To: <sip:bob@example.com>",
        "To: <sip:bob@example.com>;tag=b1",
    );
    assert!(matches!(
        c.handle(Bytes::from(reinvite), udp_from(0)),
        Outcome::Forwarded(_)
    ));
    assert_eq!(
        c.cur.routes[0]
            .limit
            .as_ref()
            .unwrap()
            .limited
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    // A second later, there is room for one more.
    c.now_ms = 1000;
    assert!(matches!(
        c.handle(Bytes::from(call(5)), udp_from(0)),
        Outcome::Forwarded(_)
    ));
}

#[test]
fn a_forger_is_charged_like_a_flood() {
    let mut c = core("[guard]\nmax_requests = 3\nwindow_ms = 60000\n");
    let next = "Via: SIP/2.0/UDP 127.0.0.2:5070;branch=z9hG4bKuac1\r\n";
    let forged = response(&format!(
        "Via: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKsl0000000000000000.0000000000000000\r\n{next}"
    ));
    let from = Flow {
        remote: "198.51.100.7:5060".parse().unwrap(),
        ..udp_from(0)
    };
    for _ in 0..4 {
        assert_eq!(
            c.handle(forged.clone(), from),
            Outcome::Dropped(Drop::ForgedResponse)
        );
    }
    assert_eq!(c.handle(forged, from), Outcome::Dropped(Drop::Banned));
    // Another sender is not.
    let genuine = ours("Via: SIP/2.0/UDP 127.0.0.1;branch={b}\r\n", next, None);
    assert!(matches!(
        c.handle(genuine, udp_from(0)),
        Outcome::Forwarded(_)
    ));
}

#[test]
fn header_rules_of_the_route_and_the_set_apply_to_initial_requests() {
    let mut c = core(
        r#"
[[route]]
name = "all"
destination = "d"
headers = { remove = ["X-Internal-*"], set = { "P-Asserted-Identity" = "<sip:{from.user}@carrier.example>" }, add = { "X-Source" = "{source.ip}" } }
[destination.d]
targets = [{ uri = "sip:192.0.2.60:5060" }]
headers = { add = { "X-Carrier" = "acme {ruri.user}" } }
"#,
    );
    let extra = "P-Asserted-Identity: <sip:evil@x>\r\nX-Internal-Id: 7\r\nx-internal-zone: a\r\nX-Keep: 1\r\n";
    let (_, m) = forwarded(c.handle(invite("sip:bob@192.0.2.61", extra), udp_from(0)));
    let all = |n: &str| -> Vec<String> {
        m.headers()
            .filter(|h| h.name_bytes.eq_ignore_ascii_case(n.as_bytes()))
            .map(|h| String::from_utf8_lossy(h.value).into_owned())
            .collect()
    };
    assert_eq!(all("P-Asserted-Identity"), ["<sip:alice@carrier.example>"]);
    assert!(all("X-Internal-Id").is_empty() && all("X-Internal-Zone").is_empty());
    assert_eq!(all("X-Keep"), ["1"]);
    assert_eq!(all("X-Source"), ["127.0.0.2"]);
    assert_eq!(all("X-Carrier"), ["acme bob"]);
    // Inside a dialog no route applies: the headers pass as they are.
    let bye = String::from_utf8(invite("sip:bob@192.0.2.61", extra).to_vec())
        .unwrap()
        .replace("INVITE", "BYE")
        .replace(
            "To: <sip:bob@example.com>",
            "To: <sip:bob@example.com>;tag=b1",
        );
    let (_, m) = forwarded(c.handle(Bytes::from(bye), udp_from(0)));
    assert!(m.headers().any(|h| h.name_bytes == b"X-Internal-Id"));
    assert!(!m.headers().any(|h| h.name_bytes == b"X-Source"));
}
