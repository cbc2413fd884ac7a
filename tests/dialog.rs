//! Requests inside a dialog follow its route set (RFC 3261 §12.2, §16.4,
//! §16.12), whatever the routing rules say: rules, destination sets, the
//! location service, ACL replies, drops and Digest challenges decide
//! initial requests only. Also: the ACK for an answer Siphon generated
//! itself ends there (§17.2.1), and in stateful mode with two shards a
//! CANCEL sent from another port than its INVITE still cancels it.
//!
//! Runtimes are started one at a time (see `common`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use siphon::proxy::{call_id_shard, Drop};
use siphon::sip::{HeaderName, Message, Method};
use siphon::testkit::{request, TcpUa, TcpUas, Ua};

mod common;
use common::{method, settled, start_on, status, Proxy};

const T: Duration = Duration::from_secs(3);

fn ua(ip: &str) -> Ua {
    Ua::bind(ip, T).unwrap()
}

/// Rules that would misroute every in-dialog request of the tests if they
/// were applied to it: a source ACL that answers 403 to anyone but the
/// caller (the callee's requests), a header rule that answers 488 (the
/// caller's UPDATE carries `Subject`), a method rule that drops INFO and
/// UPDATE, the location service for `bob…` (the caller's requests to the
/// callee's Contact: 480, he is not registered), and a round-robin set of
/// two trunks that would send the ACK to the trunk that did not answer;
/// and a prefix table that sends `alice…` to the trunks (the callee's
/// requests to the caller's Contact).
fn carrier_rules(caller_ip: &str, trunks: [SocketAddr; 2]) -> String {
    let table = std::env::temp_dir().join(format!(
        "siphon-dialog-{}-{}.csv",
        std::process::id(),
        caller_ip.replace('.', "-")
    ));
    std::fs::write(&table, "prefix,destination\nalice,trunks\n").unwrap();
    format!(
        r#"
[acl]
callers = ["{caller_ip}/32"]

[prefix_table.people]
file = "{table}"

[[route]]
name = "people"
match = {{ prefix_table = "people" }}

[[route]]
name = "foreign"
match = {{ source_not = ["callers"] }}
action = "reply"
code = 403
reason = "Unknown Source"

[[route]]
name = "subject"
match = {{ header = {{ name = "Subject", regex = "." }} }}
action = "reply"
code = 488
reason = "No Subjects"

[[route]]
name = "no-info"
match = {{ method = ["INFO", "UPDATE"] }}
action = "drop"

[[route]]
name = "to-bob"
match = {{ user_prefix = "bob" }}
action = "location"

[[route]]
name = "all"
match = {{ user_prefix = "" }}
destination = "trunks"

[destination.trunks]
algorithm = "round-robin"
targets = [{{ uri = "sip:{}" }}, {{ uri = "sip:{}" }}]
"#,
        trunks[0],
        trunks[1],
        table = table.display()
    )
}

/// One side of a dialog: its UA, its URI, its tag, the remote target
/// and the route set it learned, its next CSeq.
struct Side<'a> {
    ua: &'a Ua,
    me: String,
    tag: String,
    remote: String,
    remote_tag: String,
    route: Vec<String>,
    cseq: u32,
}

impl Side<'_> {
    /// An in-dialog request (§12.2.1.1): Request-URI = the remote target,
    /// Route = the route set, both tags.
    fn request(&mut self, m: &str, call_id: &str, extra: &str) -> Vec<u8> {
        self.cseq += 1;
        let seq = if m == "ACK" { self.cseq - 1 } else { self.cseq };
        if m == "ACK" {
            self.cseq -= 1;
        }
        let routes: String = self
            .route
            .iter()
            .map(|r| format!("Route: {r}\r\n"))
            .collect();
        format!(
            "{m} {remote} SIP/2.0\r\nVia: SIP/2.0/UDP {addr};branch=z9hG4bK{m}{seq}{tag};rport\r\nMax-Forwards: 70\r\n{routes}From: <{me}>;tag={tag}\r\nTo: <{remote}>;tag={rtag}\r\nCall-ID: {call_id}\r\nCSeq: {seq} {m}\r\nContact: <{me}>\r\n{extra}Content-Length: 0\r\n\r\n",
            remote = self.remote,
            addr = self.ua.addr,
            me = self.me,
            tag = self.tag,
            rtag = self.remote_tag,
        )
        .into_bytes()
    }
}

/// The Record-Route values of `m`, in order.
fn record_route(m: &Message) -> Vec<String> {
    m.header_values(HeaderName::RecordRoute)
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .collect()
}

/// A message at exactly one of `uas` within `T`: which, and the message.
fn at_one(uas: &[&Ua]) -> Option<(usize, Message)> {
    let deadline = Instant::now() + T;
    let mut found = None;
    for u in uas {
        u.set_timeout(Duration::from_millis(10)).unwrap();
    }
    'poll: while Instant::now() < deadline {
        for (i, u) in uas.iter().enumerate() {
            if let Some(Ok((m, _))) = u.recv() {
                found = Some((i, m));
                break 'poll;
            }
        }
    }
    for u in uas {
        u.set_timeout(T).unwrap();
    }
    found
}

/// Nothing arrives at `ua` for a while.
fn quiet(ua: &Ua) {
    ua.set_timeout(Duration::from_millis(200)).unwrap();
    if let Some(Ok((m, _))) = ua.recv() {
        panic!("unexpected {:?}", String::from_utf8_lossy(m.as_bytes()));
    }
    ua.set_timeout(T).unwrap();
}

/// `from` sends `m` in the dialog through the proxy; `to` gets it and
/// answers 200 (after the proxy's 100 for an INVITE in stateful mode),
/// and for an INVITE the ACK follows.
fn exchange(p: &Proxy, stateful: bool, m: &str, call_id: &str, from: &mut Side, to: &Ua) {
    let extra = if m == "UPDATE" {
        "Subject: in-dialog\r\n"
    } else {
        ""
    };
    from.ua
        .send(p.addr, &from.request(m, call_id, extra))
        .unwrap();
    let want = match m {
        "INVITE" => Method::Invite,
        "UPDATE" => Method::Update,
        "INFO" => Method::Info,
        "BYE" => Method::Bye,
        other => panic!("{other}"),
    };
    let got = method(to, want);
    assert_eq!(got.call_id(), call_id.as_bytes());
    if stateful && m == "INVITE" {
        status(from.ua, 100);
    }
    to.send(p.addr, &to.response(&got, 200, "OK")).unwrap();
    status(from.ua, 200);
    if m == "INVITE" {
        from.ua
            .send(p.addr, &from.request("ACK", call_id, extra))
            .unwrap();
        method(to, Method::Ack);
    }
}

/// A call from the caller (in the ACL) to a round-robin set of two
/// trunks; the callee's and the caller's in-dialog requests must reach
/// the other party, never the other trunk, through every rule.
fn call_through_rules(mode: &str, shards: usize, ip: &str) {
    let caller = ua(&format!("{ip}2"));
    let trunks = [ua(&format!("{ip}3")), ua(&format!("{ip}4"))];
    let rules = carrier_rules(&format!("{ip}2"), [trunks[0].addr, trunks[1].addr]);
    let p = start_on(
        shards,
        &format!("{ip}1"),
        &["udp"],
        &format!("[proxy]\nmode = \"{mode}\"\nrecord_route = true\n[registrar]\ndomains = [\"example.com\"]\n{rules}"),
    );
    let stateful = mode == "stateful";
    for n in 0..2 {
        let cid = format!("dlg-{mode}-{n}");
        let ruri = format!("sip:+15551234@{}", p.addr);
        caller
            .send(
                p.addr,
                &caller.request("INVITE", &ruri, &cid, &format!("z9hG4bKi{n}"), 1, ""),
            )
            .unwrap();
        if stateful {
            status(&caller, 100);
        }
        let (t, invite) = at_one(&[&trunks[0], &trunks[1]]).expect("the INVITE reaches a trunk");
        let (trunk, other) = (&trunks[t], &trunks[1 - t]);
        trunk
            .send(p.addr, &trunk.response(&invite, 200, "OK"))
            .unwrap();
        let ok = status(&caller, 200);
        let rr = record_route(&ok);
        assert_eq!(rr.len(), 1, "one Record-Route: {rr:?}");

        let mut a = Side {
            ua: &caller,
            me: format!("sip:alice@{}", caller.addr),
            tag: format!("uac-{cid}"),
            remote: format!("sip:bob@{}", trunk.addr),
            remote_tag: "uas-tag".into(),
            route: rr.iter().rev().cloned().collect(),
            cseq: 1,
        };
        // The caller's ACK reaches the trunk that answered, not the next
        // one of the round-robin.
        caller
            .send(p.addr, &a.request("ACK", &cid, "Subject: ack\r\n"))
            .unwrap();
        method(trunk, Method::Ack);
        quiet(other);

        let mut b = Side {
            ua: trunk,
            me: format!("sip:bob@{}", trunk.addr),
            tag: "uas-tag".into(),
            remote: format!("sip:alice@{}", caller.addr),
            remote_tag: format!("uac-{cid}"),
            route: rr.clone(),
            cseq: 100,
        };
        for m in ["INFO", "UPDATE", "INVITE"] {
            exchange(&p, stateful, m, &cid, &mut a, trunk);
            exchange(&p, stateful, m, &cid, &mut b, &caller);
        }
        // Call n: the callee hangs up first, then (call n+1) the caller.
        if n == 0 {
            exchange(&p, stateful, "BYE", &cid, &mut b, &caller);
        } else {
            exchange(&p, stateful, "BYE", &cid, &mut a, trunk);
        }
        quiet(other);
    }
    // No rule answered or dropped anything: the only local answers are
    // the 100 Trying of each INVITE in stateful mode (2 calls × 3).
    let s = settled(&p.rt, |_| true);
    assert_eq!(s.replied, if stateful { 6 } else { 0 }, "{s:?}");
    let policy = s.drops.iter().find(|d| d.0 == Drop::Policy).unwrap().1;
    assert_eq!(policy, 0, "{s:?}");
}

#[test]
fn stateless_in_dialog_requests_follow_the_route_set_through_every_rule() {
    call_through_rules("stateless", 1, "127.0.10.");
}

#[test]
fn stateful_in_dialog_requests_follow_the_route_set_through_every_rule() {
    call_through_rules("stateful", 2, "127.0.10.1");
}

/// An in-dialog request that reached us without our Route (we did not
/// record-route) goes by its Request-URI, or gets 404 when that is us.
#[test]
fn in_dialog_without_our_route_goes_by_the_request_uri() {
    let (caller, callee, spare) = (ua("127.0.10.32"), ua("127.0.10.33"), ua("127.0.10.34"));
    let rules = carrier_rules("127.0.10.32", [spare.addr, callee.addr]);
    let p = start_on(
        1,
        "127.0.10.31",
        &["udp"],
        &format!("[registrar]\ndomains = [\"example.com\"]\n{rules}"),
    );
    let mut a = Side {
        ua: &caller,
        me: format!("sip:alice@{}", caller.addr),
        tag: "a1".into(),
        remote: format!("sip:bob@{}", callee.addr),
        remote_tag: "b1".into(),
        route: Vec::new(),
        cseq: 1,
    };
    caller
        .send(p.addr, &a.request("BYE", "noroute", ""))
        .unwrap();
    let bye = method(&callee, Method::Bye);
    assert_eq!(
        bye.request_uri_bytes().unwrap(),
        format!("sip:bob@{}", callee.addr).as_bytes()
    );
    // Request-URI = the proxy, with no Route: not routable.
    a.remote = format!("sip:bob@{}", p.addr);
    caller
        .send(p.addr, &a.request("BYE", "noroute", ""))
        .unwrap();
    status(&caller, 404);
    // The proxy's address with another port is somebody else (§19.1.4).
    let other = ua("127.0.10.31");
    a.remote = format!("sip:bob@{}", other.addr);
    caller
        .send(p.addr, &a.request("INFO", "noroute", ""))
        .unwrap();
    method(&other, Method::Info);
}

/// Send an INVITE to `ruri`; it must get our own `code`; its ACK
/// (§17.1.1.3: the INVITE's branch, the answer's To with our tag) must
/// go nowhere.
fn absorbed(p: &Proxy, caller: &Ua, ruri: &str, code: u16, cid: &str) {
    let branch = format!("z9hG4bK{cid}");
    caller
        .send(p.addr, &caller.request("INVITE", ruri, cid, &branch, 1, ""))
        .unwrap();
    let answer = loop {
        let (m, _) = caller.expect();
        if m.status() != Some(100) {
            break m;
        }
    };
    assert_eq!(answer.status(), Some(code));
    let to = String::from_utf8_lossy(answer.header(HeaderName::To).unwrap()).into_owned();
    let ack = format!(
        "ACK {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {addr};branch={branch};rport\r\nMax-Forwards: 70\r\nFrom: <sip:alice@{addr}>;tag=uac-{cid}\r\nTo: {to}\r\nCall-ID: {cid}\r\nCSeq: 1 ACK\r\nContent-Length: 0\r\n\r\n",
        addr = caller.addr
    );
    caller.send(p.addr, ack.as_bytes()).unwrap();
}

fn own_acks(p: &Proxy, n: u64) {
    let s = settled(&p.rt, |s| {
        s.drops
            .iter()
            .any(|&(d, c)| d == Drop::OwnAnswerAck && c == n)
    });
    let own = s
        .drops
        .iter()
        .find(|d| d.0 == Drop::OwnAnswerAck)
        .unwrap()
        .1;
    assert_eq!(own, n, "{s:?}");
    assert_eq!(s.forwarded, 0, "{s:?}");
}

/// The ACK for a 407, a 403 or a 480 Siphon generated goes nowhere: not
/// to the location service, not to a destination (§17.2.1). Counted.
fn own_answers_absorb_their_ack(mode: &str, ip: &str) {
    let caller = ua(&format!("{ip}2"));
    let trunk = ua(&format!("{ip}3"));
    let routes = format!(
        r#"[proxy]
mode = "{mode}"
record_route = true

[registrar]
domains = ["example.com"]

[[route]]
name = "blocked"
match = {{ user_prefix = "+999" }}
action = "reply"
code = 403

[[route]]
name = "trunk"
match = {{ user_prefix = "+1" }}
destination = "trunk"

[destination.trunk]
targets = [{{ uri = "sip:{}" }}]
"#,
        trunk.addr
    );
    // Digest on INVITE: the caller's INVITE gets our 407.
    let auth = "[auth]\nrealm = \"example.com\"\nregister = false\nrequests = [\"INVITE\"]\n[auth.users]\nalice = \"secret\"\n";
    {
        let p = start_on(1, &format!("{ip}1"), &["udp"], &format!("{routes}{auth}"));
        absorbed(
            &p,
            &caller,
            &format!("sip:+15551234@{}", p.addr),
            407,
            &format!("{mode}-407"),
        );
        quiet(&trunk);
        own_acks(&p, 1);
    }
    // A route's 403 and the location service's 480.
    let p = start_on(1, &format!("{ip}1"), &["udp"], &routes);
    absorbed(
        &p,
        &caller,
        &format!("sip:+99912@{}", p.addr),
        403,
        &format!("{mode}-403"),
    );
    absorbed(
        &p,
        &caller,
        "sip:nobody@example.com",
        480,
        &format!("{mode}-480"),
    );
    quiet(&trunk);
    quiet(&caller);
    own_acks(&p, 2);
}

#[test]
fn stateless_the_ack_for_our_own_answer_ends_here() {
    own_answers_absorb_their_ack("stateless", "127.0.10.4");
}

#[test]
fn stateful_the_ack_for_our_own_answer_ends_here() {
    own_answers_absorb_their_ack("stateful", "127.0.10.5");
}

/// Two shards: each CANCEL is sent from another socket (another source
/// port) than its INVITE, so SO_REUSEPORT may deliver it to the other
/// shard; every callee still gets a CANCEL for the branch it knows, and
/// every caller its 487 — through the directory of live INVITEs
/// (`dispatch = "socket"`, the default) or by Call-ID (`"call-id"`).
fn cancel_from_another_port(dispatch: &str, ip: &str) {
    let p = start_on(
        2,
        &format!("{ip}1"),
        &["udp"],
        &format!("[proxy]\nmode = \"stateful\"\nrecord_route = true\ndispatch = \"{dispatch}\"\n"),
    );
    let uas = ua(&format!("{ip}3"));
    let ruri = format!("sip:bob@{}", uas.addr);
    let n = 16;
    let callers: Vec<Ua> = (0..n).map(|_| ua(&format!("{ip}2"))).collect();
    let cancellers: Vec<Ua> = (0..n).map(|_| ua(&format!("{ip}2"))).collect();
    let mut invites = Vec::new();
    for (i, c) in callers.iter().enumerate() {
        let req = c.request(
            "INVITE",
            &ruri,
            &format!("cx-{i}"),
            &format!("z9hG4bKcx{i}"),
            1,
            "",
        );
        c.send(p.addr, &req).unwrap();
        status(c, 100);
        let inv = method(&uas, Method::Invite);
        uas.send(p.addr, &uas.response(&inv, 180, "Ringing"))
            .unwrap();
        status(c, 180);
        invites.push(inv);
    }
    for (i, c) in callers.iter().enumerate() {
        // The INVITE's Via (sent-by and branch), sent from another port.
        let cancel = request(
            "UDP",
            c.addr,
            "CANCEL",
            &ruri,
            &format!("cx-{i}"),
            &format!("z9hG4bKcx{i}"),
            1,
            "",
        );
        cancellers[i].send(p.addr, &cancel).unwrap();
        let ok = status(&cancellers[i], 200);
        assert_eq!(ok.cseq().unwrap().method, Method::Cancel);
        let got = method(&uas, Method::Cancel);
        let inv = invites
            .iter()
            .find(|m| m.call_id() == got.call_id())
            .unwrap();
        assert_eq!(
            got.top_via().unwrap().branch(),
            inv.top_via().unwrap().branch(),
            "the CANCEL is for the branch the callee knows"
        );
        uas.send(p.addr, &uas.response(&got, 200, "OK")).unwrap();
        uas.send(p.addr, &uas.response(inv, 487, "Request Terminated"))
            .unwrap();
        method(&uas, Method::Ack);
        status(c, 487);
    }
    let s = settled(&p.rt, |s| s.tx_cancels == n as u64);
    assert_eq!(s.tx_cancels, n as u64, "{s:?}");
    assert!(s.mesh_out > 0, "some requests were handed over: {s:?}");
}

#[test]
fn a_cancel_from_another_port_cancels_on_two_shards_over_udp() {
    cancel_from_another_port("socket", "127.0.10.6");
}

#[test]
fn a_cancel_from_another_port_cancels_on_two_shards_dispatched_by_call_id() {
    cancel_from_another_port("call-id", "127.0.10.8");
}

/// The same over TCP: the CANCEL comes over a second connection; the two
/// calls belong to different shards.
#[test]
fn a_cancel_over_another_connection_cancels_on_two_shards_over_tcp() {
    let p = start_on(
        2,
        "127.0.10.71",
        &["tcp"],
        "[proxy]\nmode = \"stateful\"\nrecord_route = true\n",
    );
    let uas = TcpUas::bind("127.0.10.73", 0, T).unwrap();
    let ruri = format!("sip:bob@{};transport=tcp", uas.addr);
    // One connection to the callee: the shard that opened it writes it
    // for the other shard's call too.
    let mut conn: Option<TcpUa> = None;
    // Two calls whose Call-IDs belong to different shards.
    let cids: Vec<String> = {
        let a = "tx-0".to_string();
        let b = (1..)
            .map(|i| format!("tx-{i}"))
            .find(|c| call_id_shard(c.as_bytes(), 2) != call_id_shard(a.as_bytes(), 2))
            .unwrap();
        vec![a, b]
    };
    for cid in &cids {
        let mut uac = TcpUa::connect("127.0.10.72", p.addr, T).unwrap();
        uac.send(&uac.request("INVITE", &ruri, cid, &format!("z9hG4bK{cid}"), 1, ""))
            .unwrap();
        assert_eq!(uac.expect().status(), Some(100));
        let conn = conn.get_or_insert_with(|| uas.accept().unwrap());
        let inv = conn.expect();
        conn.send(&conn.response(&inv, 180, "Ringing")).unwrap();
        assert_eq!(uac.expect().status(), Some(180));
        // The CANCEL over a new connection, with the INVITE's Via.
        let mut other = TcpUa::connect("127.0.10.72", p.addr, T).unwrap();
        let cancel = request(
            "TCP",
            uac.addr,
            "CANCEL",
            &ruri,
            cid,
            &format!("z9hG4bK{cid}"),
            1,
            "",
        );
        other.send(&cancel).unwrap();
        let ok = other.expect();
        assert_eq!(
            (ok.status(), ok.cseq().unwrap().method),
            (Some(200), Method::Cancel)
        );
        let got = conn.expect();
        assert_eq!(got.method(), Some(Method::Cancel));
        assert_eq!(
            got.top_via().unwrap().branch(),
            inv.top_via().unwrap().branch()
        );
        conn.send(&conn.response(&got, 200, "OK")).unwrap();
        conn.send(&conn.response(&inv, 487, "Request Terminated"))
            .unwrap();
        assert_eq!(conn.expect().method(), Some(Method::Ack));
        assert_eq!(uac.expect().status(), Some(487));
    }
    let s = settled(&p.rt, |s| s.tx_cancels == 2);
    assert_eq!(s.tx_cancels, 2, "{s:?}");
}
