//! The stateless proxy over real loopback UDP sockets: a Rust UAC and UAS
//! (`siphon::testkit::Ua`) drive calls through a running `Runtime`.
//!
//! Runtimes are started one at a time (see `common`).

use std::time::Duration;

use siphon::sip::{HeaderName, Method};
use siphon::testkit::Ua;

mod common;
use common::{settled, Proxy};

fn start(shards: usize, ip: &str, extra: &str) -> Proxy {
    common::start_on(shards, ip, &["udp"], extra)
}

fn ua(ip: &str) -> Ua {
    Ua::bind(ip, Duration::from_secs(3)).unwrap()
}

#[test]
fn a_call_through_the_proxy() {
    let p = start(2, "127.0.1.1", "");
    let (uac, uas) = (ua("127.0.1.2"), ua("127.0.1.3"));
    let ruri = format!("sip:bob@{}", uas.addr);

    uac.send(
        p.addr,
        &uac.request("INVITE", &ruri, "call-1", "z9hG4bKc1", 1, ""),
    )
    .unwrap();
    let (inv, from) = uas.expect();
    assert_eq!(from, p.addr, "the proxy sends from its listener");
    assert_eq!(inv.method(), Some(Method::Invite));
    assert_eq!(inv.max_forwards(), Ok(Some(69)));
    let vias: Vec<_> = inv.vias().map(Result::unwrap).collect();
    assert_eq!(vias.len(), 2);
    assert_eq!(vias[1].received(), Some(&b"127.0.1.2"[..]));
    assert_eq!(vias[1].rport(), Some(Some(uac.addr.port())));

    for (code, reason) in [(180, "Ringing"), (200, "OK")] {
        uas.send(p.addr, &uas.response(&inv, code, reason)).unwrap();
        let (r, _) = uac.expect();
        assert_eq!(r.status(), Some(code));
        assert_eq!(r.vias().count(), 1, "the proxy removed its Via");
        assert_eq!(r.call_id(), b"call-1");
    }

    // ACK and BYE go to the proxy (it is the UAC's outbound proxy here).
    uac.send(
        p.addr,
        &uac.request("ACK", &ruri, "call-1", "z9hG4bKc1ack", 1, ""),
    )
    .unwrap();
    assert_eq!(uas.expect().0.method(), Some(Method::Ack));
    uac.send(
        p.addr,
        &uac.request("BYE", &ruri, "call-1", "z9hG4bKc1bye", 2, ""),
    )
    .unwrap();
    let (bye, _) = uas.expect();
    assert_eq!(bye.method(), Some(Method::Bye));
    uas.send(p.addr, &uas.response(&bye, 200, "OK")).unwrap();
    let (ok, _) = uac.expect();
    assert_eq!(
        (ok.status(), ok.cseq().unwrap().method),
        (Some(200), Method::Bye)
    );

    // Counters are bumped after each send completes, so the last one may
    // trail the datagram the UAC already has: wait for them (bounded).
    let s = settled(&p.rt, |s| s.datagrams_out == 6);
    assert_eq!(
        (s.forwarded, s.replied),
        (6, 0),
        "6 messages relayed per call"
    );
    assert_eq!((s.datagrams_in, s.datagrams_out), (6, 6));
}

#[test]
fn a_retransmitted_invite_is_forwarded_with_the_same_branch() {
    let p = start(1, "127.0.1.11", "");
    let (uac, uas) = (ua("127.0.1.12"), ua("127.0.1.13"));
    let invite = uac.request(
        "INVITE",
        &format!("sip:bob@{}", uas.addr),
        "call-2",
        "z9hG4bKc2",
        1,
        "",
    );
    uac.send(p.addr, &invite).unwrap();
    uac.send(p.addr, &invite).unwrap();
    let a = uas.expect().0;
    let b = uas.expect().0;
    assert_eq!(a.top_via().unwrap().branch(), b.top_via().unwrap().branch());
    assert_eq!(a.as_bytes(), b.as_bytes());
}

#[test]
fn max_forwards_zero_and_malformed_requests_are_answered() {
    let p = start(1, "127.0.1.21", "");
    let uac = ua("127.0.1.22");
    let req = uac.request(
        "INVITE",
        "sip:bob@127.0.1.23:5060",
        "call-3",
        "z9hG4bKc3",
        1,
        "",
    );
    let zero = String::from_utf8(req.clone())
        .unwrap()
        .replace("Max-Forwards: 70", "Max-Forwards: 0");
    uac.send(p.addr, zero.as_bytes()).unwrap();
    let (r, from) = uac.expect();
    assert_eq!((r.status(), r.reason()), (Some(483), &b"Too Many Hops"[..]));
    assert_eq!(from, p.addr);

    let dup = uac.request(
        "INVITE",
        "sip:bob@127.0.1.23:5060",
        "call-4",
        "z9hG4bKc4",
        1,
        "Content-Length: 5\r\n",
    );
    uac.send(p.addr, &dup).unwrap();
    let (r, _) = uac.expect();
    assert_eq!(
        (r.status(), r.reason()),
        (Some(400), &b"Duplicate Content-Length"[..])
    );

    // Garbage gets nothing back, and is counted.
    uac.send(p.addr, b"\x16\x03\x01\x00 not sip").unwrap();
    uac.set_timeout(Duration::from_millis(300)).unwrap();
    assert!(uac.recv().is_none());
    let s = settled(&p.rt, |s| {
        s.replied == 2 && s.dropped(siphon::proxy::Drop::Garbage) == 1
    });
    assert_eq!(s.replied, 2);
    assert_eq!(
        s.parse_errors, 1,
        "the 483 is not a parse error, the 400 is"
    );
    assert_eq!(s.dropped(siphon::proxy::Drop::Garbage), 1);
}

#[test]
fn rport_is_honoured_and_without_it_the_via_port_is_used() {
    let p = start(1, "127.0.1.31", "");
    let uac = ua("127.0.1.32");
    let other = ua("127.0.1.32");
    // The Via names another port; with rport the answer comes to the real one.
    let req = uac.request(
        "OPTIONS",
        &format!("sip:{}", p.addr),
        "call-5",
        "z9hG4bKc5",
        1,
        "",
    );
    let lying = String::from_utf8(req)
        .unwrap()
        .replace(&uac.addr.to_string(), &other.addr.to_string());
    uac.send(p.addr, lying.as_bytes()).unwrap();
    let (r, _) = uac.expect();
    assert_eq!(r.status(), Some(200));
    // Without rport it goes to the sent-by port.
    uac.send(p.addr, lying.replace(";rport", "").as_bytes())
        .unwrap();
    let (r, _) = other.expect();
    assert_eq!(r.status(), Some(200));
    assert_eq!(
        r.header(HeaderName::Allow)
            .map(|a| a.starts_with(b"INVITE")),
        Some(true)
    );
}

#[test]
fn two_shards_share_the_load_and_every_response_reaches_its_caller() {
    let p = start(2, "127.0.1.41", "");
    let uas = ua("127.0.1.42");
    let uacs: Vec<Ua> = (0..40).map(|_| ua("127.0.1.43")).collect();
    for (i, uac) in uacs.iter().enumerate() {
        let req = uac.request(
            "INVITE",
            &format!("sip:bob@{}", uas.addr),
            &format!("spread-{i}"),
            &format!("z9hG4bKs{i}"),
            1,
            "",
        );
        uac.send(p.addr, &req).unwrap();
    }
    for _ in 0..uacs.len() {
        let (inv, _) = uas.expect();
        uas.send(p.addr, &uas.response(&inv, 486, "Busy Here"))
            .unwrap();
    }
    for (i, uac) in uacs.iter().enumerate() {
        let (r, _) = uac.expect();
        assert_eq!(r.status(), Some(486));
        assert_eq!(r.call_id(), format!("spread-{i}").as_bytes());
    }
    // SO_REUSEPORT spread the 40 source ports over both shards.
    let shards = p.rt.per_shard();
    assert!(shards.iter().all(|s| s.datagrams_in > 0), "{shards:?}");
    assert_eq!(settled(&p.rt, |s| s.forwarded == 80).forwarded, 80);
}

#[test]
fn spread_puts_one_peers_requests_on_every_shard() {
    // One UA, one socket, one 4-tuple: without `spread` every datagram
    // lands on the shard its hash picks.
    for (spread, both) in [(false, false), (true, true)] {
        let p = common::start_with(
            2,
            &format!("spread = {spread}\n"),
            "127.0.1.71",
            &["udp"],
            "",
        );
        let uac = ua("127.0.1.72");
        for i in 0..80 {
            let req = uac.request(
                "OPTIONS",
                &format!("sip:{}", p.addr),
                &format!("one-peer-{i}"),
                &format!("z9hG4bKop{i}"),
                1,
                "",
            );
            uac.send(p.addr, &req).unwrap();
            let (r, _) = uac.expect();
            assert_eq!(r.status(), Some(200));
        }
        let shards = p.rt.per_shard();
        let got: Vec<u64> = shards.iter().map(|s| s.datagrams_in).collect();
        assert_eq!(got.iter().sum::<u64>(), 80);
        assert_eq!(
            got.iter().all(|&n| n >= 15),
            both,
            "spread = {spread}: {got:?}"
        );
        drop(p);
    }
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    // A socket without SO_REUSEPORT holds the port.
    let holder = std::net::UdpSocket::bind("127.0.1.51:0").unwrap();
    common::assert_port_in_use("udp", holder.local_addr().unwrap());
}

#[test]
fn metrics_and_health_over_http() {
    use std::io::{Read, Write};
    let p = start(2, "127.0.1.61", "");
    let m =
        siphon::metrics::Metrics::start("127.0.0.1:0".parse().unwrap(), p.rt.counters()).unwrap();
    let uac = ua("127.0.1.62");
    uac.send(
        p.addr,
        &uac.request(
            "OPTIONS",
            &format!("sip:{}", p.addr),
            "m-1",
            "z9hG4bKm1",
            1,
            "",
        ),
    )
    .unwrap();
    assert_eq!(uac.expect().0.status(), Some(200));
    settled(&p.rt, |s| s.datagrams_out == 1);
    let get = |path: &str| -> String {
        let mut c = std::net::TcpStream::connect(m.addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        c.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .unwrap();
        let mut s = String::new();
        c.read_to_string(&mut s).unwrap();
        s
    };
    let metrics = get("/metrics");
    assert!(metrics.starts_with("HTTP/1.1 200 OK\r\n"), "{metrics}");
    let replies: u64 = metrics
        .lines()
        .filter(|l| l.starts_with("siphon_replies_total{"))
        .map(|l| l.rsplit_once(' ').unwrap().1.parse::<u64>().unwrap())
        .sum();
    assert_eq!(replies, 1, "{metrics}");
    assert!(get("/health").ends_with("\r\n\r\nok\n"));
    assert!(get("/nope").starts_with("HTTP/1.1 404"));
}
