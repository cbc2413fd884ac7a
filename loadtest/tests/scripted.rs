//! The generator against a scripted peer on loopback that plays the proxy
//! for OPTIONS: it answers some requests, refuses one, ignores one first
//! transmission and never answers another, so retransmissions, failures,
//! timeouts and unexpected datagrams are counted as they should be.
//! Bounded: 4 requests, about 1.5 s.

use std::net::UdpSocket;
use std::time::{Duration, Instant};

use bytes::Bytes;
use siphon::sip::{response, Framing, Limits, Message};
use siphon_loadtest::args::{Mode, RunConfig};
use siphon_loadtest::uac;

/// The call number: the Call-ID up to its first dot.
fn number(m: &Message) -> u64 {
    let id = std::str::from_utf8(m.call_id()).unwrap();
    id.split('.').next().unwrap().parse().unwrap()
}

#[test]
fn retransmissions_failures_and_timeouts_are_counted() {
    let peer = UdpSocket::bind("127.0.5.21:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let addr = peer.local_addr().unwrap();
    let script = std::thread::spawn(move || {
        let mut seen = [0u32; 4];
        let mut buf = vec![0u8; 65_536];
        let mut out = Vec::new();
        let mut garbage_sent = false;
        let end = Instant::now() + Duration::from_secs(4);
        while Instant::now() < end {
            let Ok((len, from)) = peer.recv_from(&mut buf) else {
                continue;
            };
            let m = Message::parse(
                Bytes::copy_from_slice(&buf[..len]),
                Framing::Datagram,
                &Limits::default(),
            )
            .unwrap();
            let n = number(&m) as usize;
            seen[n] += 1;
            let answer = match (n, seen[n]) {
                (0, _) => Some((200, "OK")),
                (1, _) => Some((486, "Busy Here")),
                (2, 1) => None, // lost: the retransmission gets the answer
                (2, _) => Some((200, "OK")),
                _ => None, // never answered: a timeout
            };
            if let Some((code, reason)) = answer {
                response::build(&m, code, &reason, b"peer", &[], &mut out);
                peer.send_to(&out, from).unwrap();
            }
            if !garbage_sent {
                peer.send_to(b"not SIP at all\r\n\r\n", from).unwrap();
                garbage_sent = true;
            }
            if seen == [1, 1, 2, 2] {
                break;
            }
        }
        seen
    });

    let cfg = RunConfig {
        mode: Mode::Options,
        proxy: addr,
        uac: "127.0.5.22".parse().unwrap(),
        uas: None,
        rate: 10,
        duration: Duration::from_millis(400),
        sockets: 2,
        hold: Duration::ZERO,
        timeout: Duration::from_millis(1200),
        tick: None,
        tsv: None,
        label: "scripted".into(),
        aor: Default::default(),
        threads: 1,
    };
    let started = Instant::now();
    let r = uac::run(&cfg).unwrap();
    let seen = script.join().unwrap();
    // 0 and 2 complete, 1 is refused, 3 times out after one
    // retransmission (the next would be at 1.5 s, past the timeout).
    assert_eq!(seen, [1, 1, 2, 2]);
    assert_eq!(
        (r.attempted, r.completed, r.failed, r.timeouts),
        (4, 2, 2, 1),
        "{r:#?}"
    );
    assert_eq!(r.retransmissions, 2, "{r:#?}");
    assert_eq!(r.unexpected, 1, "{r:#?}");
    assert!(!r.passed());
    // Two latencies: one fast, one after the 500 ms retransmission (the
    // retransmission timer runs on ticks: its answer may come a few µs
    // before 500 ms after the send was stamped).
    assert!(
        r.max_us.unwrap() >= 450_000 && r.p50_us.unwrap() < 100_000,
        "{r:#?}"
    );
    // It stopped by itself after the last timeout (2 s here), not after a
    // transaction's 32 s: a liveness bound, loose for a busy machine.
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}

/// REGISTER against a scripted registrar: four users, two rounds. user0
/// is answered 200; user1 403; user2's first REGISTER is lost once (so
/// its retransmission at 500 ms is still pending when its second round is
/// due: that refresh is skipped, RFC 3261 §10.2); user3's first 200 does
/// not list its contact. Bounded: 8 REGISTERs, about 1.5 s.
#[test]
fn register_failures_retransmissions_and_overlaps_are_counted() {
    let peer = UdpSocket::bind("127.0.5.23:0").unwrap();
    peer.set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let addr = peer.local_addr().unwrap();
    let script = std::thread::spawn(move || {
        // (user, cseq) -> times seen
        let mut seen = std::collections::BTreeMap::new();
        let mut buf = vec![0u8; 65_536];
        let mut out = Vec::new();
        let end = Instant::now() + Duration::from_secs(4);
        while Instant::now() < end {
            let Ok((len, from)) = peer.recv_from(&mut buf) else {
                if seen.values().sum::<u32>() >= 8 {
                    break;
                }
                continue;
            };
            let m = Message::parse(
                Bytes::copy_from_slice(&buf[..len]),
                Framing::Datagram,
                &Limits::default(),
            )
            .unwrap();
            let (user, cseq) = (number(&m), m.cseq().unwrap().seq);
            let k = seen.entry((user, cseq)).or_insert(0u32);
            *k += 1;
            let contact = m.header(siphon::sip::HeaderName::Contact).unwrap().to_vec();
            let mut listed = contact.clone();
            listed.extend_from_slice(b";expires=3600");
            let (code, reason, extra): (u16, &str, Vec<(&str, &[u8])>) = match (user, cseq, *k) {
                (1, _, _) => (403, "Forbidden", vec![]),
                (2, 1, 1) => continue,
                (3, 1, _) => (
                    200,
                    "OK",
                    vec![("Contact", b"<sip:someone@else>;expires=60")],
                ),
                _ => (200, "OK", vec![("Contact", &listed[..])]),
            };
            response::build(&m, code, &reason, b"reg", &extra, &mut out);
            peer.send_to(&out, from).unwrap();
        }
        seen
    });

    let cfg = RunConfig {
        mode: Mode::Register,
        proxy: addr,
        uac: "127.0.5.24".parse().unwrap(),
        uas: None,
        rate: 10,
        duration: Duration::from_millis(800),
        sockets: 2,
        hold: Duration::ZERO,
        timeout: Duration::from_millis(1200),
        tick: None,
        tsv: None,
        label: "scripted".into(),
        aor: siphon_loadtest::args::Aor {
            users: Some(4),
            contact: Some("127.0.5.25:5080".parse().unwrap()),
            ..Default::default()
        },
        threads: 1,
    };
    let started = Instant::now();
    let r = uac::run(&cfg).unwrap();
    let seen = script.join().unwrap();
    // user2's second round was never sent; every other REGISTER once,
    // user2's first twice.
    let want: Vec<((u64, u32), u32)> = vec![
        ((0, 1), 1),
        ((0, 2), 1),
        ((1, 1), 1),
        ((1, 2), 1),
        ((2, 1), 2),
        ((3, 1), 1),
        ((3, 2), 1),
    ];
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), want);
    assert_eq!(
        (r.attempted, r.completed, r.failed, r.timeouts),
        (8, 4, 4, 0),
        "{r:#?}"
    );
    assert_eq!(
        (r.retransmissions, r.bad_answers, r.overlaps, r.unexpected),
        (1, 1, 1, 0),
        "{r:#?}"
    );
    assert!(!r.passed());
    assert!(r.max_us.unwrap() >= 450_000, "{r:#?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
}
