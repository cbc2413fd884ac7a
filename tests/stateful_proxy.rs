//! The stateful proxy (`mode = "stateful"`) over real loopback sockets:
//! calls, CANCEL, failover, forking, over UDP and TCP, on two shards.
//!
//! Runtimes are started one at a time (see `common`).

use std::net::SocketAddr;
use std::time::Duration;

use siphon::proxy::call_id_shard;
use siphon::sip::{HeaderName, Message, Method};
use siphon::testkit::{TcpUa, TcpUas, Ua};

mod common;
use common::{method, settled, start_on, status, Proxy};

const T: Duration = Duration::from_secs(3);

fn ua(ip: &str) -> Ua {
    Ua::bind(ip, T).unwrap()
}

fn stateful(shards: usize, ip: &str, transports: &[&str], extra: &str) -> Proxy {
    start_on(
        shards,
        ip,
        transports,
        &format!("[proxy]\nmode = \"stateful\"\nrecord_route = true\n{extra}"),
    )
}

/// A destination set of `targets` for every request.
fn destination(targets: &[SocketAddr], more: &str) -> String {
    let list: Vec<String> = targets
        .iter()
        .map(|t| format!("{{ uri = \"sip:{t}\" }}"))
        .collect();
    format!(
        "[[route]]\nname = \"all\"\ndestination = \"d\"\n[destination.d]\ntargets = [{}]\n{more}",
        list.join(", ")
    )
}

/// A response with the UAS's own To tag (for forks: each UAS its own).
fn answer(uas: &Ua, req: &Message, code: u16, tag: &str) -> Vec<u8> {
    let text = String::from_utf8(uas.response(req, code, "X")).unwrap();
    text.replace("uas-tag", tag).into_bytes()
}

#[test]
fn a_call_through_the_stateful_proxy() {
    let p = stateful(2, "127.0.5.1", &["udp"], "");
    let (uac, uas) = (ua("127.0.5.2"), ua("127.0.5.3"));
    let ruri = format!("sip:bob@{}", uas.addr);

    let invite = uac.request("INVITE", &ruri, "sf-1", "z9hG4bKsf1", 1, "");
    uac.send(p.addr, &invite).unwrap();
    let trying = status(&uac, 100);
    assert_eq!(trying.to().unwrap().tag(), None, "a 100 has no To tag");
    let inv = method(&uas, Method::Invite);
    assert!(inv
        .top_via()
        .unwrap()
        .branch()
        .unwrap()
        .starts_with(b"z9hG4bKsf"));
    assert_eq!(
        inv.header(HeaderName::RecordRoute),
        Some(format!("<sip:{};lr>", p.addr).as_bytes())
    );
    // A retransmitted INVITE is absorbed (answered with the 100 again).
    uac.send(p.addr, &invite).unwrap();
    status(&uac, 100);

    for code in [180, 200] {
        uas.send(p.addr, &uas.response(&inv, code, "X")).unwrap();
        let r = status(&uac, code);
        assert_eq!(r.vias().count(), 1, "our Via removed");
    }
    uac.send(
        p.addr,
        &uac.request("ACK", &ruri, "sf-1", "z9hG4bKsf1ack", 1, ""),
    )
    .unwrap();
    method(&uas, Method::Ack);
    uac.send(
        p.addr,
        &uac.request("BYE", &ruri, "sf-1", "z9hG4bKsf1bye", 2, ""),
    )
    .unwrap();
    let bye = method(&uas, Method::Bye);
    uas.send(p.addr, &uas.response(&bye, 200, "OK")).unwrap();
    let ok = status(&uac, 200);
    assert_eq!(ok.cseq().unwrap().method, Method::Bye);
    uas.set_timeout(Duration::from_millis(300)).unwrap();
    assert!(uas.recv().is_none(), "nothing retransmitted downstream");

    let s = settled(&p.rt, |s| s.tx_created == 2 && s.retransmitted == 1);
    assert_eq!(s.tx_created, 2, "INVITE and BYE: {s:?}");
    assert_eq!(s.retransmitted, 1, "the 100 again");
    assert_eq!(s.transactions_active(), 2, "kept for Timers L/M and J");
}

#[test]
fn cancel_while_ringing() {
    let p = stateful(1, "127.0.5.11", &["udp"], "");
    let (uac, uas) = (ua("127.0.5.12"), ua("127.0.5.13"));
    let ruri = format!("sip:bob@{}", uas.addr);
    uac.send(
        p.addr,
        &uac.request("INVITE", &ruri, "c-1", "z9hG4bKc1", 1, ""),
    )
    .unwrap();
    status(&uac, 100);
    let inv = method(&uas, Method::Invite);
    uas.send(p.addr, &uas.response(&inv, 180, "Ringing"))
        .unwrap();
    status(&uac, 180);

    uac.send(
        p.addr,
        &uac.request("CANCEL", &ruri, "c-1", "z9hG4bKc1", 1, ""),
    )
    .unwrap();
    let ok = status(&uac, 200);
    assert_eq!(ok.cseq().unwrap().method, Method::Cancel);
    let cancel = method(&uas, Method::Cancel);
    assert_eq!(
        cancel.top_via().unwrap().branch(),
        inv.top_via().unwrap().branch()
    );
    uas.send(p.addr, &uas.response(&cancel, 200, "OK")).unwrap();
    uas.send(p.addr, &uas.response(&inv, 487, "Request Terminated"))
        .unwrap();
    let ack = method(&uas, Method::Ack);
    assert_eq!(
        ack.top_via().unwrap().branch(),
        inv.top_via().unwrap().branch()
    );
    let r = status(&uac, 487);
    assert_eq!(r.cseq().unwrap().method, Method::Invite);
    // The caller's ACK for the 487 stops at the proxy.
    uac.send(
        p.addr,
        &uac.request("ACK", &ruri, "c-1", "z9hG4bKc1", 1, ""),
    )
    .unwrap();
    uas.set_timeout(Duration::from_millis(300)).unwrap();
    assert!(uas.recv().is_none(), "the ACK was absorbed");
    let s = settled(&p.rt, |s| s.tx_absorbed == 1);
    assert_eq!((s.tx_cancels, s.tx_absorbed), (1, 1));
}

#[test]
fn failover_to_the_next_target_on_503() {
    let (uac, bad, good) = (ua("127.0.5.22"), ua("127.0.5.23"), ua("127.0.5.24"));
    let p = stateful(
        1,
        "127.0.5.21",
        &["udp"],
        &destination(&[bad.addr, good.addr], ""),
    );
    uac.send(
        p.addr,
        &uac.request(
            "INVITE",
            "sip:+15551234@carrier.example",
            "f-1",
            "z9hG4bKf1",
            1,
            "",
        ),
    )
    .unwrap();
    status(&uac, 100);
    let first = method(&bad, Method::Invite);
    bad.send(p.addr, &bad.response(&first, 503, "Service Unavailable"))
        .unwrap();
    method(&bad, Method::Ack);
    let second = method(&good, Method::Invite);
    good.send(p.addr, &good.response(&second, 200, "OK"))
        .unwrap();
    let ok = status(&uac, 200);
    assert_eq!(ok.to().unwrap().tag(), Some(&b"uas-tag"[..]));
    let s = settled(&p.rt, |s| s.tx_failovers == 1);
    assert_eq!(s.tx_failovers, 1);
}

/// A TCP target that refuses the connection: the next target at once, not
/// after the branch timeout.
#[test]
fn a_refused_connection_fails_over_at_once() {
    let (uac, good) = (ua("127.0.5.82"), ua("127.0.5.84"));
    // A port nobody listens on: bind, note it, release.
    let dead = std::net::TcpListener::bind("127.0.5.83:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let p = stateful(
        1,
        "127.0.5.81",
        &["udp", "tcp"],
        &format!(
            r#"branch_timeout_ms = 60000
[[route]]
name = "all"
destination = "d"
[destination.d]
targets = [{{ uri = "sip:{dead};transport=tcp" }}, {{ uri = "sip:{}" }}]
"#,
            good.addr
        ),
    );
    let started = std::time::Instant::now();
    uac.send(
        p.addr,
        &uac.request("INVITE", "sip:x@carrier.example", "r-1", "z9hG4bKr1", 1, ""),
    )
    .unwrap();
    status(&uac, 100);
    let inv = method(&good, Method::Invite);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "failed over on the refused connect, not on the 60 s branch timeout"
    );
    good.send(p.addr, &good.response(&inv, 200, "OK")).unwrap();
    status(&uac, 200);
    let s = settled(&p.rt, |s| s.tx_transport_errors == 1);
    assert_eq!((s.tx_transport_errors, s.tx_failovers), (1, 1));
}

#[test]
fn a_silent_target_is_left_for_the_next_after_the_branch_timeout() {
    let (uac, silent, good) = (ua("127.0.5.32"), ua("127.0.5.33"), ua("127.0.5.34"));
    let p = stateful(
        1,
        "127.0.5.31",
        &["udp"],
        &format!(
            "branch_timeout_ms = 300\n{}",
            destination(&[silent.addr, good.addr], "")
        ),
    );
    uac.send(
        p.addr,
        &uac.request("INVITE", "sip:x@carrier.example", "s-1", "z9hG4bKs1", 1, ""),
    )
    .unwrap();
    status(&uac, 100);
    method(&silent, Method::Invite);
    let second = method(&good, Method::Invite);
    good.send(p.addr, &good.response(&second, 200, "OK"))
        .unwrap();
    status(&uac, 200);
    let s = settled(&p.rt, |s| s.tx_timeouts == 1);
    assert_eq!((s.tx_timeouts, s.tx_failovers), (1, 1));
}

#[test]
fn parallel_fork_one_answers_the_other_is_cancelled() {
    let (uac, a, b) = (ua("127.0.5.42"), ua("127.0.5.43"), ua("127.0.5.44"));
    let p = stateful(
        1,
        "127.0.5.41",
        &["udp"],
        &destination(&[a.addr, b.addr], "fork = \"parallel\"\n"),
    );
    uac.send(
        p.addr,
        &uac.request("INVITE", "sip:x@carrier.example", "p-1", "z9hG4bKp1", 1, ""),
    )
    .unwrap();
    status(&uac, 100);
    let (inv_a, inv_b) = (method(&a, Method::Invite), method(&b, Method::Invite));
    a.send(p.addr, &answer(&a, &inv_a, 180, "ta")).unwrap();
    status(&uac, 180);
    b.send(p.addr, &answer(&b, &inv_b, 180, "tb")).unwrap();
    status(&uac, 180);
    b.send(p.addr, &answer(&b, &inv_b, 200, "tb")).unwrap();
    let ok = status(&uac, 200);
    assert_eq!(ok.to().unwrap().tag(), Some(&b"tb"[..]));
    let cancel = method(&a, Method::Cancel);
    a.send(p.addr, &answer(&a, &cancel, 200, "ta")).unwrap();
    a.send(p.addr, &answer(&a, &inv_a, 487, "ta")).unwrap();
    method(&a, Method::Ack);
    uac.set_timeout(Duration::from_millis(300)).unwrap();
    assert!(uac.recv().is_none(), "the cancelled leg's 487 stays here");
}

#[test]
fn a_6xx_ends_the_search() {
    let (uac, a, b) = (ua("127.0.5.52"), ua("127.0.5.53"), ua("127.0.5.54"));
    let p = stateful(
        1,
        "127.0.5.51",
        &["udp"],
        &destination(&[a.addr, b.addr], "fork = \"parallel\"\n"),
    );
    uac.send(
        p.addr,
        &uac.request("INVITE", "sip:x@carrier.example", "d-1", "z9hG4bKd1", 1, ""),
    )
    .unwrap();
    status(&uac, 100);
    let (inv_a, inv_b) = (method(&a, Method::Invite), method(&b, Method::Invite));
    b.send(p.addr, &answer(&b, &inv_b, 180, "tb")).unwrap();
    status(&uac, 180);
    a.send(p.addr, &answer(&a, &inv_a, 603, "ta")).unwrap();
    method(&a, Method::Ack);
    let cancel = method(&b, Method::Cancel);
    b.send(p.addr, &answer(&b, &cancel, 200, "tb")).unwrap();
    b.send(p.addr, &answer(&b, &inv_b, 487, "tb")).unwrap();
    method(&b, Method::Ack);
    let r = status(&uac, 603);
    assert_eq!(r.to().unwrap().tag(), Some(&b"ta"[..]));
}

#[test]
fn over_tcp_a_call_and_a_cancel() {
    let p = stateful(2, "127.0.5.61", &["tcp"], "dispatch = \"call-id\"\n");
    let uas = TcpUas::bind("127.0.5.63", 0, T).unwrap();
    let mut uac = TcpUa::connect("127.0.5.62", p.addr, T).unwrap();
    let ruri = format!("sip:bob@{};transport=tcp", uas.addr);

    uac.send(&uac.request("INVITE", &ruri, "t-1", "z9hG4bKt1", 1, ""))
        .unwrap();
    assert_eq!(uac.expect().status(), Some(100));
    let mut down = uas.accept().unwrap();
    let inv = down.expect();
    assert_eq!(inv.top_via().unwrap().transport.as_str(), "TCP");
    for code in [180, 200] {
        down.send(&down.response(&inv, code, "X")).unwrap();
        assert_eq!(uac.expect().status(), Some(code));
    }
    uac.send(&uac.request("ACK", &ruri, "t-1", "z9hG4bKt1ack", 1, ""))
        .unwrap();
    assert_eq!(down.expect().method(), Some(Method::Ack));

    // A second call on the same inbound connection, cancelled while
    // ringing. Its Call-ID is owned by the other shard (dispatch by
    // Call-ID), which reaches the callee over the same connection (the
    // shard that opened it writes it).
    let cid = (2..)
        .map(|i| format!("t-{i}"))
        .find(|c| call_id_shard(c.as_bytes(), 2) != call_id_shard(b"t-1", 2))
        .unwrap();
    uac.send(&uac.request("INVITE", &ruri, &cid, "z9hG4bKt2", 1, ""))
        .unwrap();
    assert_eq!(uac.expect().status(), Some(100));
    let inv = down.expect();
    down.send(&down.response(&inv, 180, "Ringing")).unwrap();
    assert_eq!(uac.expect().status(), Some(180));
    uac.send(&uac.request("CANCEL", &ruri, &cid, "z9hG4bKt2", 1, ""))
        .unwrap();
    let ok = uac.expect();
    assert_eq!(
        (ok.status(), ok.cseq().unwrap().method),
        (Some(200), Method::Cancel)
    );
    let cancel = down.expect();
    assert_eq!(cancel.method(), Some(Method::Cancel));
    down.send(&down.response(&cancel, 200, "OK")).unwrap();
    down.send(&down.response(&inv, 487, "Request Terminated"))
        .unwrap();
    assert_eq!(down.expect().method(), Some(Method::Ack));
    assert_eq!(uac.expect().status(), Some(487));
    let s = settled(&p.rt, |s| s.tx_cancels == 1);
    assert_eq!(s.retransmitted, 0, "nothing is retransmitted over TCP");
}

/// Each shard sends its requests from a UDP socket of its own and names it
/// in its Via, so a callee that answers where the Via says (§18.2.2) —
/// or to the request's source, the same address — reaches the shard that
/// owns the transaction: no hand-off (requests stay on the shard that
/// received them with `dispatch = "socket"`).
#[test]
fn requests_leave_from_the_shards_own_socket_and_responses_come_straight_back() {
    let p = stateful(2, "127.0.5.91", &["udp"], "dispatch = \"socket\"\n");
    let uas = ua("127.0.5.93");
    let uacs: Vec<Ua> = (0..24).map(|_| ua("127.0.5.92")).collect();
    let ruri = format!("sip:bob@{}", uas.addr);
    for (i, uac) in uacs.iter().enumerate() {
        let req = uac.request(
            "INVITE",
            &ruri,
            &format!("y-{i}"),
            &format!("z9hG4bKy{i}"),
            1,
            "",
        );
        uac.send(p.addr, &req).unwrap();
    }
    let mut sources = std::collections::HashSet::new();
    let (mut invites, mut acks) = (0, 0);
    while acks < uacs.len() {
        let (m, from) = uas.expect();
        match m.method() {
            Some(Method::Invite) => {
                invites += 1;
                let top = m.top_via().unwrap();
                let via_addr: SocketAddr = format!(
                    "{}:{}",
                    String::from_utf8_lossy(top.host),
                    top.port.unwrap()
                )
                .parse()
                .unwrap();
                assert_eq!(via_addr, from, "the Via names the socket it left from");
                assert_ne!(from, p.addr, "not the listener");
                sources.insert(from);
                uas.send(via_addr, &uas.response(&m, 486, "Busy Here"))
                    .unwrap();
            }
            Some(Method::Ack) => acks += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(invites, uacs.len());
    for uac in &uacs {
        status(uac, 100);
        status(uac, 486);
    }
    let s = settled(&p.rt, |s| s.tx_created == 24);
    assert_eq!(s.mesh_out, 0, "no hand-off: {s:?}");
    assert!(sources.len() <= 2, "one socket per shard: {sources:?}");
}

/// Callers on many source ports are spread over two shards; a callee that
/// sends every response to the listener (not where the Via says) lands
/// them all on one shard: those for the other shard's transactions are
/// handed over the mesh.
#[test]
fn responses_find_their_transaction_across_shards() {
    let p = stateful(2, "127.0.5.71", &["udp"], "");
    let uas = ua("127.0.5.73");
    let uacs: Vec<Ua> = (0..24).map(|_| ua("127.0.5.72")).collect();
    let ruri = format!("sip:bob@{}", uas.addr);
    for (i, uac) in uacs.iter().enumerate() {
        let req = uac.request(
            "INVITE",
            &ruri,
            &format!("x-{i}"),
            &format!("z9hG4bKx{i}"),
            1,
            "",
        );
        uac.send(p.addr, &req).unwrap();
    }
    // INVITEs and our ACKs for the 486s interleave.
    let (mut invites, mut acks) = (0, 0);
    while acks < uacs.len() {
        let (m, _) = uas.expect();
        match m.method() {
            Some(Method::Invite) => {
                invites += 1;
                uas.send(p.addr, &uas.response(&m, 486, "Busy Here"))
                    .unwrap();
            }
            Some(Method::Ack) => acks += 1,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(invites, uacs.len());
    for (i, uac) in uacs.iter().enumerate() {
        status(uac, 100);
        let r = status(uac, 486);
        assert_eq!(r.call_id(), format!("x-{i}").as_bytes());
    }
    // Transaction counters are published on the shards' 10 ms tick.
    let s = settled(&p.rt, |s| s.tx_created == 24);
    assert!(s.mesh_in > 0 && s.mesh_out == s.mesh_in, "{s:?}");
    let per = p.rt.per_shard();
    assert!(
        per.iter().all(|s| s.tx_created > 0),
        "transactions on both shards: {per:?}"
    );
}

/// RFC 3261 §17.1.3 relies on branches nobody else can guess: a sender
/// that did not see the INVITE but knows everything else about it (Call-ID,
/// CSeq, our Via's shard, slot, generation, leg and loop part — all but the
/// keyed tag) lands no response; the UAS's answers still go through.
#[test]
fn an_off_path_injector_cannot_land_a_response() {
    let p = stateful(2, "127.0.12.1", &["udp"], "");
    let (uac, uas, attacker) = (ua("127.0.12.2"), ua("127.0.12.3"), ua("127.0.12.4"));
    let ruri = format!("sip:bob@{}", uas.addr);
    uac.send(
        p.addr,
        &uac.request("INVITE", &ruri, "inj-1", "z9hG4bKinj1", 1, ""),
    )
    .unwrap();
    status(&uac, 100);
    let inv = method(&uas, Method::Invite);
    let real = String::from_utf8(inv.top_via().unwrap().branch().unwrap().to_vec()).unwrap();
    let genuine = String::from_utf8(answer(&uas, &inv, 200, "t1")).unwrap();
    let keyless = &real[..real.len() - 16];
    let mut guesses = 0;
    // Every guessable field as the issue's injector tried them, with and
    // without the loop part, and with the real one but a made-up tag.
    for shard in 0..2 {
        for slot in 0..4 {
            for gen in 0..3 {
                let loop_part = &real["z9hG4bKsf".len()..][..16];
                for tag in ["0000000000000000", "ffffffffffffffff", "0123456789abcdef"] {
                    for lp in [loop_part, "0000000000000000"] {
                        let b = format!("z9hG4bKsf{lp}.{shard:x}.{slot:x}.{gen:x}.0.{tag}");
                        let forged = genuine
                            .replace(&real, &b)
                            .replace(&format!("{}", uas.addr), &format!("{}", attacker.addr));
                        attacker.send(p.addr, forged.as_bytes()).unwrap();
                        guesses += 1;
                    }
                }
            }
        }
    }
    for tag in ["0000000000000000", "1111111111111111"] {
        let forged = genuine.replace(&real, &format!("{keyless}{tag}"));
        attacker.send(p.addr, forged.as_bytes()).unwrap();
        guesses += 1;
    }
    let s = settled(&p.rt, |s| {
        s.drops
            .iter()
            .any(|&(d, n)| d == siphon::proxy::Drop::ForgedResponse && n >= guesses)
    });
    let forged = s
        .drops
        .iter()
        .find(|(d, _)| *d == siphon::proxy::Drop::ForgedResponse)
        .map(|d| d.1);
    assert_eq!(forged, Some(guesses), "{s:?}");
    uac.set_timeout(Duration::from_millis(300)).unwrap();
    assert!(uac.recv().is_none(), "nothing reached the caller");
    uac.set_timeout(T).unwrap();
    uas.send(p.addr, genuine.as_bytes()).unwrap();
    let ok = status(&uac, 200);
    assert_eq!(ok.call_id(), inv.call_id());
}
