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
    // Two latencies: one fast, one after the 500 ms retransmission.
    assert!(
        r.max_us.unwrap() >= 500_000 && r.p50_us.unwrap() < 100_000,
        "{r:#?}"
    );
    // It stopped by itself soon after the last timeout.
    assert!(
        started.elapsed() < Duration::from_millis(2500),
        "{:?}",
        started.elapsed()
    );
}
