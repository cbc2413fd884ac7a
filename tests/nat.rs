//! A phone behind a NAT (RFC 3581, RFC 5626 §5): it says it is at a
//! private address (Via sent-by and Contact 192.168.1.5:5060) and is seen
//! at its loopback socket. It registers and is called at the address its
//! REGISTER came from, from the listener it registered on; inside the
//! dialog, requests in both directions reach it through the `alias`
//! Siphon puts in its Contact.
//!
//! Runtimes are started one at a time (see `common`).

use std::time::Duration;

use siphon::sip::{HeaderName, Message, Method};
use siphon::testkit::Ua;

mod common;
use common::{method, start_on, status};

const T: Duration = Duration::from_secs(3);
const PRIVATE: &str = "192.168.1.5:5060";

fn ua(ip: &str) -> Ua {
    Ua::bind(ip, T).unwrap()
}

/// A request from the NATed phone: it believes it is at `PRIVATE`.
#[allow(clippy::too_many_arguments)]
fn natted(
    m: &str,
    ruri: &str,
    cid: &str,
    seq: u32,
    from: &str,
    to: &str,
    route: &str,
    extra: &str,
) -> Vec<u8> {
    format!(
        "{m} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {PRIVATE};branch=z9hG4bK{cid}{seq}{m};rport\r\nMax-Forwards: 70\r\n{route}From: {from}\r\nTo: {to}\r\nCall-ID: {cid}\r\nCSeq: {seq} {m}\r\nContact: <sip:bob@{PRIVATE}>\r\n{extra}Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// bob registers from behind the NAT as sip:bob@example.com.
fn register_natted(bob: &Ua, proxy: std::net::SocketAddr) {
    let aor = "<sip:bob@example.com>";
    let reg = natted(
        "REGISTER",
        "sip:example.com",
        "reg",
        1,
        &format!("{aor};tag=r"),
        aor,
        "",
        "",
    );
    bob.send(proxy, &reg).unwrap();
    status(bob, 200);
}

/// A response from the NATed phone (its Contact private).
fn natted_answer(req: &Message, code: u16) -> Vec<u8> {
    let mut out = Vec::new();
    let contact = format!("<sip:bob@{PRIVATE}>");
    let rr: Vec<&[u8]> = req.header_values(HeaderName::RecordRoute).collect();
    let mut extra: Vec<(&str, &[u8])> = vec![("Contact", contact.as_bytes())];
    for r in &rr {
        extra.push(("Record-Route", r));
    }
    siphon::sip::response::build(req, code, &"OK", b"bob-tag", &extra, &mut out);
    out
}

fn contact(m: &Message) -> String {
    let v = String::from_utf8_lossy(m.header(HeaderName::Contact).unwrap()).into_owned();
    v.trim_start_matches('<')
        .split('>')
        .next()
        .unwrap()
        .to_string()
}

fn rr(m: &Message) -> String {
    m.header_values(HeaderName::RecordRoute)
        .map(|v| format!("Route: {}\r\n", String::from_utf8_lossy(v)))
        .collect()
}

fn nat_flows(mode: &str, ip: &str) {
    let p = start_on(
        1,
        &format!("{ip}1"),
        &["udp"],
        &format!(
            "[proxy]\nmode = \"{mode}\"\nrecord_route = true\n[registrar]\ndomains = [\"example.com\"]\n"
        ),
    );
    let stateful = mode == "stateful";
    let (alice, bob) = (ua(&format!("{ip}2")), ua(&format!("{ip}3")));
    let bob_uri = "<sip:bob@example.com>";

    // bob registers from behind the NAT.
    register_natted(&bob, p.addr);

    // Call 1: alice calls bob. The INVITE reaches bob's NAT address, sent
    // from the listener he registered on.
    let inv = alice.request("INVITE", "sip:bob@example.com", "c1", "z9hG4bKc1", 1, "");
    alice.send(p.addr, &inv).unwrap();
    if stateful {
        status(&alice, 100);
    }
    let (got, from) = bob.expect();
    assert_eq!(got.method(), Some(Method::Invite));
    assert_eq!(from, p.addr, "from the listener bob registered on");
    assert_eq!(
        got.request_uri_bytes().unwrap(),
        format!("sip:bob@{PRIVATE}").as_bytes()
    );
    bob.send(p.addr, &natted_answer(&got, 200)).unwrap();
    let ok = status(&alice, 200);
    let target = contact(&ok);
    assert_eq!(
        target,
        format!(
            "sip:bob@{PRIVATE};alias={}~{}~1",
            bob.addr.ip(),
            bob.addr.port()
        )
    );
    // alice's ACK and INFO go to bob's NAT address; he sees his own
    // Contact as the Request-URI.
    let mut values: Vec<&[u8]> = ok.header_values(HeaderName::RecordRoute).collect();
    values.reverse();
    let route: String = values
        .iter()
        .map(|v| format!("Route: {}\r\n", String::from_utf8_lossy(v)))
        .collect();
    let a_from = format!("<sip:alice@{}>;tag=uac-c1", alice.addr);
    let b_to = format!("{bob_uri};tag=bob-tag");
    for (m, seq) in [("ACK", 1), ("INFO", 2)] {
        let req = format!(
            "{m} {target} SIP/2.0\r\nVia: SIP/2.0/UDP {a};branch=z9hG4bKa{m};rport\r\nMax-Forwards: 70\r\n{route}From: {a_from}\r\nTo: {b_to}\r\nCall-ID: c1\r\nCSeq: {seq} {m}\r\nContent-Length: 0\r\n\r\n",
            a = alice.addr
        );
        alice.send(p.addr, req.as_bytes()).unwrap();
        let (got, from) = bob.expect();
        assert_eq!(
            got.request_uri_bytes().unwrap(),
            format!("sip:bob@{PRIVATE}").as_bytes()
        );
        assert_eq!(from, p.addr);
        if m == "INFO" {
            bob.send(p.addr, &natted_answer(&got, 200)).unwrap();
            status(&alice, 200);
        }
    }
    // bob hangs up: his BYE reaches alice.
    let bye = natted(
        "BYE",
        &format!("sip:alice@{}", alice.addr),
        "c1",
        10,
        &b_to,
        &a_from,
        &rr(&ok),
        "",
    );
    bob.send(p.addr, &bye).unwrap();
    let got = method(&alice, Method::Bye);
    alice
        .send(p.addr, &alice.response(&got, 200, "OK"))
        .unwrap();
    status(&bob, 200);

    // Call 2: bob (behind the NAT) calls alice; alice, the callee, hangs
    // up: her BYE reaches bob through the alias on his Contact.
    let to_alice = format!("<sip:alice@{}>", alice.addr);
    let b_from = format!("{bob_uri};tag=b2");
    let inv = natted(
        "INVITE",
        &format!("sip:alice@{}", alice.addr),
        "c2",
        1,
        &b_from,
        &to_alice,
        "",
        "",
    );
    bob.send(p.addr, &inv).unwrap();
    if stateful {
        status(&bob, 100);
    }
    let got = method(&alice, Method::Invite);
    let target = contact(&got);
    assert_eq!(
        target,
        format!(
            "sip:bob@{PRIVATE};alias={}~{}~1",
            bob.addr.ip(),
            bob.addr.port()
        )
    );
    alice
        .send(p.addr, &alice.response(&got, 200, "OK"))
        .unwrap();
    let ok = status(&bob, 200);
    let ack = natted(
        "ACK",
        &format!("sip:bob@{}", alice.addr),
        "c2",
        1,
        &b_from,
        &format!("{to_alice};tag=uas-tag"),
        &rr(&ok),
        "",
    );
    bob.send(p.addr, &ack).unwrap();
    method(&alice, Method::Ack);
    let route = rr(&got);
    let bye = format!(
        "BYE {target} SIP/2.0\r\nVia: SIP/2.0/UDP {a};branch=z9hG4bKbye2;rport\r\nMax-Forwards: 70\r\n{route}From: {to_alice};tag=uas-tag\r\nTo: {b_from}\r\nCall-ID: c2\r\nCSeq: 1 BYE\r\nContent-Length: 0\r\n\r\n",
        a = alice.addr
    );
    alice.send(p.addr, bye.as_bytes()).unwrap();
    let (got, from) = bob.expect();
    assert_eq!(got.method(), Some(Method::Bye));
    assert_eq!(from, p.addr);
    assert_eq!(
        got.request_uri_bytes().unwrap(),
        format!("sip:bob@{PRIVATE}").as_bytes()
    );
    bob.send(p.addr, &natted_answer(&got, 200)).unwrap();
    status(&alice, 200);
}

#[test]
fn stateless_a_phone_behind_nat_registers_is_called_and_hangs_up() {
    nat_flows("stateless", "127.0.11.");
}

#[test]
fn stateful_a_phone_behind_nat_registers_is_called_and_hangs_up() {
    nat_flows("stateful", "127.0.11.1");
}

/// `nat = "off"`: the binding is used as the Contact says (an
/// unreachable private address here: nothing reaches bob's socket).
#[test]
fn nat_off_uses_the_contact() {
    let p = start_on(
        1,
        "127.0.11.21",
        &["udp"],
        "[proxy]\nnat = \"off\"\nrecord_route = true\n[registrar]\ndomains = [\"example.com\"]\n",
    );
    let (alice, bob) = (ua("127.0.11.22"), ua("127.0.11.23"));
    register_natted(&bob, p.addr);
    let inv = alice.request("MESSAGE", "sip:bob@example.com", "m1", "z9hG4bKm1", 1, "");
    alice.send(p.addr, &inv).unwrap();
    bob.set_timeout(Duration::from_millis(300)).unwrap();
    assert!(
        bob.recv().is_none(),
        "sent to 192.168.1.5, not to bob's socket"
    );
}

/// Keep-alives over real sockets, two shards: bob (behind the NAT) gets
/// an OPTIONS at his NAT address from the listener, answers one; when he
/// falls silent his binding is removed after `nat_ping_misses`.
#[test]
fn natted_bindings_get_keepalives_and_silent_ones_go() {
    let p = start_on(
        2,
        "127.0.11.31",
        &["udp"],
        "[registrar]\ndomains = [\"example.com\"]\nnat_ping_interval_s = 1\nnat_ping_misses = 2\n",
    );
    let bob = ua("127.0.11.33");
    register_natted(&bob, p.addr);
    let (ping, from) = bob.expect();
    assert_eq!(ping.method(), Some(Method::Options));
    assert_eq!(from, p.addr, "from the listener bob registered on");
    assert_eq!(
        ping.request_uri_bytes().unwrap(),
        format!("sip:bob@{PRIVATE}").as_bytes()
    );
    bob.send(p.addr, &bob.response(&ping, 200, "OK")).unwrap();
    // Silent from now on: the binding is removed after two misses.
    let s = common::settled_for(&p.rt, Duration::from_secs(9), |s| s.nat_removed == 1);
    assert_eq!(s.nat_removed, 1, "{s:?}");
    assert!(s.nat_pings >= 3 && s.nat_ping_misses == 2, "{s:?}");
    let replies = s
        .drops
        .iter()
        .find(|d| d.0 == siphon::proxy::Drop::NatPingReply)
        .unwrap()
        .1;
    assert_eq!(replies, 1, "{s:?}");
}

/// A phone registered over TCP (Contact = its connection's address, as
/// baresip writes it) is reached inside a dialog over that connection,
/// whichever shard owns the call: two calls whose Call-IDs belong to
/// different shards, so one is handled by the shard that does not own
/// the connection and hands the request over.
#[test]
fn a_tcp_phone_is_reached_in_dialog_over_its_connection_from_any_shard() {
    use siphon::proxy::call_id_shard;
    use siphon::testkit::TcpUa;
    let p = start_on(
        2,
        "127.0.11.41",
        &["udp", "tcp"],
        "[proxy]\nmode = \"stateful\"\nrecord_route = true\n[registrar]\ndomains = [\"example.com\"]\n",
    );
    let alice = ua("127.0.11.42");
    let mut bob = TcpUa::connect("127.0.11.43", p.addr, T).unwrap();
    let me = bob.addr;
    let reg = format!(
        "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/TCP {me};branch=z9hG4bKtr1\r\nMax-Forwards: 70\r\nFrom: <sip:bob@example.com>;tag=r\r\nTo: <sip:bob@example.com>\r\nCall-ID: treg\r\nCSeq: 1 REGISTER\r\nContact: <sip:bob@{me};transport=tcp>\r\nContent-Length: 0\r\n\r\n"
    );
    bob.send(reg.as_bytes()).unwrap();
    assert_eq!(bob.expect().status(), Some(200));
    let cids = {
        let a = "tcp-call-0".to_string();
        let b = (1..)
            .map(|i| format!("tcp-call-{i}"))
            .find(|c| call_id_shard(c.as_bytes(), 2) != call_id_shard(a.as_bytes(), 2))
            .unwrap();
        [a, b]
    };
    for cid in &cids {
        let inv = alice.request(
            "INVITE",
            "sip:bob@example.com",
            cid,
            &format!("z9hG4bK{cid}"),
            1,
            "",
        );
        alice.send(p.addr, &inv).unwrap();
        status(&alice, 100);
        let got = bob.expect();
        assert_eq!(got.method(), Some(Method::Invite));
        bob.send(&bob.response(&got, 200, "OK")).unwrap();
        let ok = status(&alice, 200);
        let route = rr(&ok);
        // Inside the dialog: Request-URI = bob's Contact, his connection's
        // address, where nobody listens.
        let info = format!(
            "INFO sip:bob@{me};transport=tcp SIP/2.0\r\nVia: SIP/2.0/UDP {a};branch=z9hG4bKi{cid};rport\r\nMax-Forwards: 70\r\n{route}From: <sip:alice@{a}>;tag=uac-{cid}\r\nTo: <sip:bob@example.com>;tag=uas-tag\r\nCall-ID: {cid}\r\nCSeq: 2 INFO\r\nContent-Length: 0\r\n\r\n",
            a = alice.addr
        );
        alice.send(p.addr, info.as_bytes()).unwrap();
        let got = bob.expect();
        assert_eq!(
            got.method(),
            Some(Method::Info),
            "over bob's own connection"
        );
        bob.send(&bob.response(&got, 200, "OK")).unwrap();
        status(&alice, 200);
    }
}
