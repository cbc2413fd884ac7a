//! Topology hiding over whole calls, in both modes: an internal caller
//! behind an internal proxy calls out through a route with `hide = true`
//! to a carrier behind a proxy of its own; re-INVITEs both ways, BYE
//! both ways. Neither side ever gets a byte of the other's addresses, and
//! every message still reaches where it must.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use super::tests::BASE;
use super::{Core, Flow, Hosts, Outcome, Transmit};
use crate::config::{Config, Transport};
use crate::sip::{Framing, HeaderName, Limits, Message};

const ROUTES: &str = r#"
[[route]]
name = "carrier"
match = { domain = "carrier.example" }
destination = "carrier"
hide = true
[destination.carrier]
targets = [{ uri = "sip:127.0.0.9:5080" }]
"#;

/// Where the internal side's messages reach Siphon from (its proxy P).
const P_SRC: &str = "127.0.0.2:5060";
/// Where the carrier's reach it from (its proxy Q sends from here too).
const Q_SRC: &str = "127.0.0.9:5080";
/// Every address of the internal side: the phone, its proxy, its source.
const INTERNAL: [&str; 4] = ["10.1.1.10", "10.1.1.11", "10.9.9.9", "127.0.0.2"];
/// Every address of the carrier's side.
const EXTERNAL: [&str; 4] = ["192.0.2.77", "192.0.2.88", "192.0.2.89", "127.0.0.9"];

fn core(mode: &str) -> Core {
    let text =
        format!("{BASE}[proxy]\nmode = \"{mode}\"\nrecord_route = true\nnat = \"off\"\n{ROUTES}");
    let cfg = Config::parse(&text, Path::new("t.toml")).unwrap();
    Core::new(Arc::new(cfg), Arc::new(Hosts::default()))
}

pub(super) fn parse(b: &[u8]) -> Message {
    Message::parse(
        Bytes::copy_from_slice(b),
        Framing::Datagram,
        &Limits::default(),
    )
    .unwrap()
}

pub(super) fn flow(from: &str) -> Flow {
    Flow {
        transport: Transport::Udp,
        local: "127.0.0.1:5060".parse().unwrap(),
        remote: from.parse().unwrap(),
        conn: None,
    }
}

/// What Siphon forwards for `data` from `from` (its 100 Trying aside).
pub(super) fn relay(c: &mut Core, from: &str, data: &[u8]) -> (Transmit, Message) {
    let mut out = Vec::new();
    let now = c.now_ms.max(1000);
    c.handle_at(now, Bytes::copy_from_slice(data), flow(from), &mut out);
    let t = out
        .into_iter()
        .find_map(|o| match o {
            Outcome::Forwarded(t) => Some(t),
            _ => None,
        })
        .unwrap_or_else(|| panic!("nothing forwarded for\n{}", String::from_utf8_lossy(data)));
    let m = parse(&t.data);
    (t, m)
}

pub(super) fn values(m: &Message, name: HeaderName) -> Vec<String> {
    m.list_values(name)
        .map(|s| String::from_utf8_lossy(m.slice(s.unwrap())).into_owned())
        .collect()
}

fn assert_hidden(m: &Message, from_side: &[&str], what: &str) {
    let text = String::from_utf8_lossy(m.as_bytes());
    for a in from_side {
        assert!(!text.contains(a), "{what}: {a} leaked in\n{text}");
    }
}

/// A UA's answer to `req`: Via, Record-Route (`rr_above` on top of
/// what came), From, To (with `tag`), Call-ID and CSeq copied.
pub(super) fn answer(
    req: &Message,
    code: u16,
    tag: &str,
    contact: &str,
    rr_above: &[&str],
) -> Vec<u8> {
    let mut s = format!("SIP/2.0 {code} OK\r\n");
    for v in values(req, HeaderName::Via) {
        s += &format!("Via: {v}\r\n");
    }
    for r in rr_above
        .iter()
        .map(|r| r.to_string())
        .chain(values(req, HeaderName::RecordRoute))
    {
        s += &format!("Record-Route: {r}\r\n");
    }
    let to = String::from_utf8_lossy(req.header(HeaderName::To).unwrap()).into_owned();
    let to = if to.contains("tag=") {
        to
    } else {
        format!("{to};tag={tag}")
    };
    s += &format!(
        "From: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\nContact: {contact}\r\nContent-Length: 0\r\n\r\n",
        String::from_utf8_lossy(req.header(HeaderName::From).unwrap()),
        String::from_utf8_lossy(req.call_id()),
        String::from_utf8_lossy(req.header(HeaderName::CSeq).unwrap()),
    );
    s.into_bytes()
}

/// A request in the dialog: `vias` top first, `routes` as sent.
#[allow(clippy::too_many_arguments)]
pub(super) fn in_dialog(
    method: &str,
    ruri: &str,
    routes: &[String],
    vias: &[&str],
    from: &str,
    to: &str,
    cseq: u32,
    contact: Option<&str>,
) -> Vec<u8> {
    let mut s = format!("{method} {ruri} SIP/2.0\r\n");
    for v in vias {
        s += &format!("Via: {v}\r\n");
    }
    s += "Max-Forwards: 69\r\n";
    for r in routes {
        s += &format!("Route: {r}\r\n");
    }
    s += &format!(
        "From: {from}\r\nTo: {to}\r\nCall-ID: c1@hidden-test\r\nCSeq: {cseq} {method}\r\n"
    );
    if let Some(c) = contact {
        s += &format!("Contact: {c}\r\n");
    }
    s += "Content-Length: 0\r\n\r\n";
    s.into_bytes()
}

/// The URI of a message's Contact (a remote target).
fn contact_uri(m: &Message) -> String {
    let v = String::from_utf8_lossy(m.header(HeaderName::Contact).unwrap()).into_owned();
    v[v.find('<').unwrap() + 1..v.find('>').unwrap()].to_string()
}

fn call(mode: &str) {
    let mut c = core(mode);
    let alice = "<sip:alice@pbx.internal>;tag=a1";
    let bob = "<sip:+15551234@carrier.example>";
    // 1. The INVITE, through the internal proxy P (its Via and
    // Record-Route above the phone's).
    let invite = format!(
        "INVITE sip:+15551234@carrier.example SIP/2.0\r\n\
         Via: SIP/2.0/UDP 10.9.9.9;branch=z9hG4bKp1\r\n\
         Via: SIP/2.0/UDP 10.1.1.10:5070;branch=z9hG4bKa1;rport=5070\r\n\
         Max-Forwards: 69\r\nRecord-Route: <sip:10.9.9.9;lr>\r\n\
         From: {alice}\r\nTo: {bob}\r\nCall-ID: c1@hidden-test\r\nCSeq: 1 INVITE\r\n\
         Contact: \"Alice\" <sip:alice@10.1.1.10:5070>;expires=3600\r\nContent-Length: 0\r\n\r\n"
    );
    let (t, at_b) = relay(&mut c, P_SRC, invite.as_bytes());
    assert_eq!(t.dest, "127.0.0.9:5080".parse::<SocketAddr>().unwrap());
    assert_hidden(&at_b, &INTERNAL, "INVITE at the carrier");
    let vias = values(&at_b, HeaderName::Via);
    assert_eq!(vias.len(), 1, "only our Via: {vias:?}");
    assert!(
        vias[0].starts_with("SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK")
            && vias[0].contains(";th=")
    );
    let rr = values(&at_b, HeaderName::RecordRoute);
    assert_eq!(rr.len(), 1);
    assert!(rr[0].starts_with("<sip:127.0.0.1:5060;lr;th="), "{rr:?}");
    let alice_target = contact_uri(&at_b);
    assert!(alice_target.ends_with("@127.0.0.1:5060"), "{alice_target}");
    let contact = String::from_utf8_lossy(at_b.header(HeaderName::Contact).unwrap()).into_owned();
    assert!(
        contact.starts_with("\"Alice\" <sip:") && contact.ends_with(">;expires=3600"),
        "{contact}"
    );

    // 2. The carrier answers through its proxy Q (Q's Record-Route above
    // ours); the answer reaches P with P's and the phone's Vias back.
    let ok = answer(
        &at_b,
        200,
        "b1",
        "<sip:bob@192.0.2.88:5080>",
        &["<sip:192.0.2.77;lr>"],
    );
    let (t, at_a) = relay(&mut c, Q_SRC, &ok);
    assert_eq!(t.dest, "127.0.0.2:5060".parse::<SocketAddr>().unwrap());
    assert_hidden(&at_a, &EXTERNAL, "200 at the caller");
    assert_eq!(
        values(&at_a, HeaderName::Via),
        [
            "SIP/2.0/UDP 10.9.9.9;branch=z9hG4bKp1;received=127.0.0.2",
            "SIP/2.0/UDP 10.1.1.10:5070;branch=z9hG4bKa1;rport=5070"
        ]
    );
    let rr = values(&at_a, HeaderName::RecordRoute);
    assert_eq!(rr.len(), 2, "{rr:?}");
    assert!(rr[0].starts_with("<sip:127.0.0.1:5060;lr;th="));
    assert_eq!(rr[1], "<sip:10.9.9.9;lr>");
    let bob_target = contact_uri(&at_a);
    assert!(bob_target.ends_with("@127.0.0.1:5060"));
    // The caller's route set: the Record-Route reversed; P pops its own.
    let a_routes: Vec<String> = rr.iter().rev().skip(1).cloned().collect();
    // The callee's: as the INVITE brought it.
    let b_routes = values(&at_b, HeaderName::RecordRoute);
    let bob_tagged = format!("{bob};tag=b1");

    // 3. The ACK goes to the carrier through Q, to Bob's real contact.
    let ack = in_dialog(
        "ACK",
        &bob_target,
        &a_routes,
        &[
            "SIP/2.0/UDP 10.9.9.9;branch=z9hG4bKp2",
            "SIP/2.0/UDP 10.1.1.10:5070;branch=z9hG4bKa2;rport",
        ],
        alice,
        &bob_tagged,
        1,
        None,
    );
    let (t, m) = relay(&mut c, P_SRC, &ack);
    assert_eq!(
        t.dest,
        "192.0.2.77:5060".parse::<SocketAddr>().unwrap(),
        "through Q"
    );
    assert_eq!(m.request_uri_bytes(), Some(&b"sip:bob@192.0.2.88:5080"[..]));
    assert_eq!(values(&m, HeaderName::Route), ["<sip:192.0.2.77;lr>"]);
    assert_hidden(&m, &INTERNAL, "ACK at the carrier");

    // 4. A re-INVITE from the caller with a new contact, and its 200.
    let reinvite = in_dialog(
        "INVITE",
        &bob_target,
        &a_routes,
        &[
            "SIP/2.0/UDP 10.9.9.9;branch=z9hG4bKp3",
            "SIP/2.0/UDP 10.1.1.11:5070;branch=z9hG4bKa3;rport",
        ],
        alice,
        &bob_tagged,
        2,
        Some("<sip:alice@10.1.1.11:5070>"),
    );
    let (t, m) = relay(&mut c, P_SRC, &reinvite);
    assert_eq!(t.dest, "192.0.2.77:5060".parse::<SocketAddr>().unwrap());
    assert_hidden(&m, &INTERNAL, "re-INVITE at the carrier");
    assert_eq!(values(&m, HeaderName::Via).len(), 1);
    let new_alice = contact_uri(&m);
    assert_ne!(new_alice, alice_target, "a new contact, a new token");
    let ok = answer(&m, 200, "b1", "<sip:bob@192.0.2.88:5080>", &[]);
    let (t, m) = relay(&mut c, Q_SRC, &ok);
    assert_eq!(t.dest, "127.0.0.2:5060".parse::<SocketAddr>().unwrap());
    assert_hidden(&m, &EXTERNAL, "200 to the re-INVITE at the caller");
    assert_eq!(values(&m, HeaderName::Via).len(), 2);

    // 5. A re-INVITE from the carrier (through Q: its Via on top), and
    // its 200; the request reaches the caller's new contact through P.
    let reinvite = in_dialog(
        "INVITE",
        &new_alice,
        &b_routes,
        &[
            "SIP/2.0/UDP 192.0.2.77;branch=z9hG4bKq4",
            "SIP/2.0/UDP 192.0.2.88:5080;branch=z9hG4bKb4",
        ],
        &bob_tagged,
        alice,
        7,
        Some("<sip:bob@192.0.2.89:5080>"),
    );
    let (t, m) = relay(&mut c, Q_SRC, &reinvite);
    assert_eq!(
        t.dest,
        "10.9.9.9:5060".parse::<SocketAddr>().unwrap(),
        "through P"
    );
    assert_eq!(
        m.request_uri_bytes(),
        Some(&b"sip:alice@10.1.1.11:5070"[..])
    );
    assert_eq!(values(&m, HeaderName::Route), ["<sip:10.9.9.9;lr>"]);
    assert_hidden(&m, &EXTERNAL, "re-INVITE at the caller");
    let bob_target = contact_uri(&m);
    let ok = answer(&m, 200, "a1", "<sip:alice@10.1.1.11:5070>", &[]);
    let (t, m) = relay(&mut c, P_SRC, &ok);
    assert_eq!(
        t.dest,
        "127.0.0.9:5060".parse::<SocketAddr>().unwrap(),
        "Q's Via, stamped"
    );
    assert_hidden(&m, &INTERNAL, "200 to the re-INVITE at the carrier");
    assert_eq!(
        values(&m, HeaderName::Via),
        [
            "SIP/2.0/UDP 192.0.2.77;branch=z9hG4bKq4;received=127.0.0.9",
            "SIP/2.0/UDP 192.0.2.88:5080;branch=z9hG4bKb4"
        ]
    );

    // 6. BYE from the carrier, its 200; then BYE from the caller, its 200.
    let bye = in_dialog(
        "BYE",
        &new_alice,
        &b_routes,
        &[
            "SIP/2.0/UDP 192.0.2.77;branch=z9hG4bKq5",
            "SIP/2.0/UDP 192.0.2.88:5080;branch=z9hG4bKb5",
        ],
        &bob_tagged,
        alice,
        8,
        None,
    );
    let (t, m) = relay(&mut c, Q_SRC, &bye);
    assert_eq!(t.dest, "10.9.9.9:5060".parse::<SocketAddr>().unwrap());
    assert_hidden(&m, &EXTERNAL, "BYE at the caller");
    let ok = answer(&m, 200, "a1", "<sip:alice@10.1.1.11:5070>", &[]);
    let (_, m) = relay(&mut c, P_SRC, &ok);
    assert_hidden(&m, &INTERNAL, "200 to BYE at the carrier");
    let bye = in_dialog(
        "BYE",
        &bob_target,
        &a_routes,
        &[
            "SIP/2.0/UDP 10.9.9.9;branch=z9hG4bKp6",
            "SIP/2.0/UDP 10.1.1.11:5070;branch=z9hG4bKa6;rport",
        ],
        alice,
        &bob_tagged,
        3,
        None,
    );
    let (t, m) = relay(&mut c, P_SRC, &bye);
    assert_eq!(t.dest, "192.0.2.77:5060".parse::<SocketAddr>().unwrap());
    assert_eq!(m.request_uri_bytes(), Some(&b"sip:bob@192.0.2.89:5080"[..]));
    assert_hidden(&m, &INTERNAL, "BYE at the carrier");
    let ok = answer(&m, 200, "b1", "<sip:bob@192.0.2.89:5080>", &[]);
    let (t, m) = relay(&mut c, Q_SRC, &ok);
    assert_eq!(t.dest, "127.0.0.2:5060".parse::<SocketAddr>().unwrap());
    assert_hidden(&m, &EXTERNAL, "200 to BYE at the caller");
}

#[test]
fn a_hidden_call_shows_neither_side_the_other_stateless() {
    call("stateless");
}

#[test]
fn a_hidden_call_shows_neither_side_the_other_stateful() {
    call("stateful");
}

#[test]
fn a_forged_or_foreign_token_routes_nowhere() {
    let mut c = core("stateless");
    // A request to a made-up token: 404, nothing forwarded.
    let bye = in_dialog(
        "BYE",
        "sip:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA@127.0.0.1:5060",
        &[],
        &["SIP/2.0/UDP 192.0.2.77;branch=z9hG4bKx"],
        "<sip:a@b>;tag=1",
        "<sip:c@d>;tag=2",
        1,
        None,
    );
    let mut out = Vec::new();
    c.handle_at(1000, Bytes::from(bye), flow(Q_SRC), &mut out);
    assert!(matches!(&out[..], [Outcome::Replied(_, 404)]), "{out:?}");
    // A response whose Via token another key made: dropped and counted.
    let mut other = core("stateless");
    let invite = "INVITE sip:+1@carrier.example SIP/2.0\r\nVia: SIP/2.0/UDP 10.1.1.10;branch=z9hG4bKa1\r\nMax-Forwards: 70\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:+1@carrier.example>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContact: <sip:a@10.1.1.10>\r\nContent-Length: 0\r\n\r\n";
    let (_, at_b) = relay(&mut other, P_SRC, invite.as_bytes());
    let ok = answer(&at_b, 200, "b", "<sip:b@192.0.2.88>", &[]);
    let mut fresh = Core::new(
        Arc::new(
            Config::parse(
                &format!("{BASE}[proxy]\ntopology_secret = \"another secret of 16+\"\n{ROUTES}"),
                Path::new("t.toml"),
            )
            .unwrap(),
        ),
        Arc::new(Hosts::default()),
    );
    let mut out = Vec::new();
    fresh.handle_at(1000, Bytes::from(ok), flow(Q_SRC), &mut out);
    assert!(
        matches!(&out[..], [Outcome::Dropped(super::Drop::TopologyToken)]),
        "{out:?}"
    );
}

#[test]
fn a_shared_secret_lets_another_run_follow_the_dialog() {
    let with = |s: &str| {
        Core::new(
            Arc::new(
                Config::parse(
                    &format!(
                        "{BASE}[proxy]\nrecord_route = true\ntopology_secret = \"{s}\"\n{ROUTES}"
                    ),
                    Path::new("t.toml"),
                )
                .unwrap(),
            ),
            Arc::new(Hosts::default()),
        )
    };
    let invite = "INVITE sip:+1@carrier.example SIP/2.0\r\nVia: SIP/2.0/UDP 10.1.1.10;branch=z9hG4bKa1\r\nMax-Forwards: 70\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:+1@carrier.example>\r\nCall-ID: x\r\nCSeq: 1 INVITE\r\nContact: <sip:a@10.1.1.10:5070>\r\nContent-Length: 0\r\n\r\n";
    let (_, at_b) = relay(&mut with("one secret of sixteen"), P_SRC, invite.as_bytes());
    // A restarted node with the same secret routes the carrier's BYE (to
    // the phone's NAT binding: the alias sealed with its contact).
    let bye = in_dialog(
        "BYE",
        &contact_uri(&at_b),
        &values(&at_b, HeaderName::RecordRoute),
        &["SIP/2.0/UDP 192.0.2.88;branch=z9hG4bKb9"],
        "<sip:+1@carrier.example>;tag=b",
        "<sip:a@b>;tag=1",
        9,
        None,
    );
    let (t, m) = relay(&mut with("one secret of sixteen"), Q_SRC, &bye);
    assert_eq!(t.dest, "127.0.0.2:5060".parse::<SocketAddr>().unwrap());
    assert_eq!(m.request_uri_bytes(), Some(&b"sip:a@10.1.1.10:5070"[..]));
    // Another secret cannot open it.
    let mut out = Vec::new();
    with("a different secret!").handle_at(1000, Bytes::from(bye), flow(Q_SRC), &mut out);
    assert!(matches!(&out[..], [Outcome::Replied(_, 404)]), "{out:?}");
}

/// In stateful mode our Via names this shard's own UDP socket (so that
/// the answer comes back to the shard that holds the transaction), and a
/// UA may send its requests in the dialog there, where its INVITE came
/// from, rather than to the listener its route set names (SIPp does).
/// Such a request is forwarded; its answer must come back hidden, with
/// our Contact and Record-Route naming the listener, not be lost.
#[test]
fn a_request_to_our_own_socket_gets_its_answer_stateful() {
    let listener: SocketAddr = "127.0.0.1:5060".parse().unwrap();
    let own: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let mut c = core("stateful");
    c.set_outbound(&[own], &[(listener, own)]);
    let at = |from: &str, local: SocketAddr| Flow {
        local,
        ..flow(from)
    };
    let send = |c: &mut Core, f: Flow, data: &[u8]| {
        let mut out = Vec::new();
        c.handle_at(1000, Bytes::copy_from_slice(data), f, &mut out);
        out.into_iter()
            .find_map(|o| match o {
                Outcome::Forwarded(t) => Some(t),
                _ => None,
            })
            .map(|t| (parse(&t.data), t))
    };
    let invite = "INVITE sip:+1@carrier.example SIP/2.0\r\nVia: SIP/2.0/UDP 10.9.9.9;branch=z9hG4bKp1\r\nVia: SIP/2.0/UDP 10.1.1.10:5070;branch=z9hG4bKa1\r\nMax-Forwards: 70\r\nRecord-Route: <sip:10.9.9.9;lr>\r\nFrom: <sip:a@pbx.internal>;tag=a1\r\nTo: <sip:+1@carrier.example>\r\nCall-ID: c2@hidden-test\r\nCSeq: 1 INVITE\r\nContact: <sip:a@10.1.1.10:5070>\r\nContent-Length: 0\r\n\r\n";
    let (at_b, _) = send(&mut c, at(P_SRC, listener), invite.as_bytes()).unwrap();
    let via = values(&at_b, HeaderName::Via);
    assert!(
        via[0].starts_with("SIP/2.0/UDP 127.0.0.1:40000;"),
        "{via:?}"
    );
    let ok = answer(&at_b, 200, "b1", "<sip:b@192.0.2.88:5080>", &[]);
    send(&mut c, at(Q_SRC, own), &ok).unwrap();
    // The carrier's BYE, sent where its INVITE came from: our own socket.
    let bye = in_dialog(
        "BYE",
        &contact_uri(&at_b),
        &values(&at_b, HeaderName::RecordRoute),
        &["SIP/2.0/UDP 192.0.2.88:5080;branch=z9hG4bKb9"],
        "<sip:+1@carrier.example>;tag=b1",
        "<sip:a@pbx.internal>;tag=a1",
        9,
        None,
    );
    let (m, t) = send(&mut c, at(Q_SRC, own), &bye).unwrap();
    assert_eq!(t.dest, "10.9.9.9:5060".parse::<SocketAddr>().unwrap());
    assert_hidden(&m, &EXTERNAL, "BYE at the caller");
    // P answers (to our Via: our own socket); the 200 reaches the carrier.
    let ok = answer(&m, 200, "a1", "<sip:a@10.1.1.10:5070>", &[]);
    let Some((m, t)) = send(&mut c, at(P_SRC, own), &ok) else {
        panic!("the 200 to the carrier's BYE was not forwarded");
    };
    assert_eq!(t.dest, Q_SRC.parse::<SocketAddr>().unwrap());
    assert_eq!(t.local, own, "from the socket the BYE came to");
    assert_hidden(&m, &INTERNAL, "200 to BYE at the carrier");
    assert_eq!(
        values(&m, HeaderName::Via),
        ["SIP/2.0/UDP 192.0.2.88:5080;branch=z9hG4bKb9;received=127.0.0.9"]
    );
    assert!(contact_uri(&m).ends_with("@127.0.0.1:5060"), "the listener");
}

/// REGISTER keeps its Contact through a hiding route (a registrar must see
/// what it binds), and so does its 200: the bindings listed there are the
/// UA's own, which it looks for to learn its expiry.
#[test]
fn a_register_and_its_answer_keep_the_binding() {
    for mode in ["stateless", "stateful"] {
        let mut c = core(mode);
        let reg = "REGISTER sip:carrier.example SIP/2.0\r\nVia: SIP/2.0/UDP 10.1.1.10:5070;branch=z9hG4bKr1\r\nMax-Forwards: 70\r\nFrom: <sip:a@carrier.example>;tag=1\r\nTo: <sip:a@carrier.example>\r\nCall-ID: r1\r\nCSeq: 1 REGISTER\r\nContact: <sip:a@10.1.1.10:5070>;expires=3600\r\nContent-Length: 0\r\n\r\n";
        let binding = "<sip:a@10.1.1.10:5070>;expires=3600";
        let (_, at_b) = relay(&mut c, P_SRC, reg.as_bytes());
        assert_eq!(values(&at_b, HeaderName::Contact), [binding], "{mode}");
        let ok = answer(&at_b, 200, "b", binding, &[]);
        let (t, at_a) = relay(&mut c, Q_SRC, &ok);
        assert_eq!(t.dest, "127.0.0.2:5070".parse::<SocketAddr>().unwrap());
        assert_eq!(values(&at_a, HeaderName::Contact), [binding], "{mode}");
    }
}

/// The ACK for a failed INVITE (stateless mode: no transaction absorbs
/// it) has the answer's To tag but neither our Route nor a token: it goes
/// where its INVITE went, hidden, with the INVITE's branch, so the carrier
/// matches it to its INVITE (RFC 3261 §17.2.3) and stops resending.
#[test]
fn a_failed_invites_ack_goes_where_the_invite_went_hidden_stateless() {
    let mut c = core("stateless");
    let invite = "INVITE sip:+1@carrier.example SIP/2.0\r\nVia: SIP/2.0/UDP 10.9.9.9;branch=z9hG4bKp1\r\nVia: SIP/2.0/UDP 10.1.1.10:5070;branch=z9hG4bKa1\r\nMax-Forwards: 70\r\nRecord-Route: <sip:10.9.9.9;lr>\r\nFrom: <sip:a@pbx.internal>;tag=a1\r\nTo: <sip:+1@carrier.example>\r\nCall-ID: c3@hidden-test\r\nCSeq: 1 INVITE\r\nContact: <sip:a@10.1.1.10:5070>\r\nContent-Length: 0\r\n\r\n";
    let (t, at_b) = relay(&mut c, P_SRC, invite.as_bytes());
    let busy = answer(&at_b, 486, "b1", "<sip:b@192.0.2.88:5080>", &[]);
    relay(&mut c, Q_SRC, &busy);
    // P is stateless too: the phone's ACK with P's Via on top.
    let ack = invite
        .replace("INVITE sip:", "ACK sip:")
        .replace("CSeq: 1 INVITE", "CSeq: 1 ACK")
        .replace(
            "To: <sip:+1@carrier.example>",
            "To: <sip:+1@carrier.example>;tag=b1",
        )
        .replace("Record-Route: <sip:10.9.9.9;lr>\r\n", "")
        .replace("Contact: <sip:a@10.1.1.10:5070>\r\n", "");
    let (a, m) = relay(&mut c, P_SRC, ack.as_bytes());
    assert_eq!(a.dest, t.dest, "where the INVITE went");
    assert_hidden(&m, &INTERNAL, "ACK at the carrier");
    let branch = |m: &Message| m.top_via().unwrap().branch().unwrap().to_vec();
    assert_eq!(branch(&m), branch(&at_b));
    assert_eq!(values(&m, HeaderName::Via).len(), 1);
}
