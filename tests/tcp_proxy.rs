//! The stateless proxy over real loopback TCP (and TCP meeting UDP): Rust
//! user agents (`siphon::testkit`) drive calls through a running
//! `Runtime`. Runtimes are started one at a time (see `common`).

use std::net::SocketAddr;
use std::time::Duration;

use siphon::sip::{HeaderName, Message, Method};
use siphon::testkit::{Received, TcpUa, TcpUas, Ua};

mod common;
use common::{settled, start_on};

const T: Duration = Duration::from_secs(3);

fn connect(ip: &str, to: SocketAddr) -> TcpUa {
    TcpUa::connect(ip, to, T).unwrap()
}

fn content_length(m: &Message) -> Option<u32> {
    m.content_length()
}

#[test]
fn a_call_over_tcp_on_both_sides() {
    let p = start_on(2, "127.0.4.1", &["tcp"], "[proxy]\nrecord_route = true\n");
    let uas = TcpUas::bind("127.0.4.3", 0, T).unwrap();
    let mut uac = connect("127.0.4.2", p.addr);
    let ruri = format!("sip:bob@{};transport=tcp", uas.addr);

    uac.send(&uac.request("INVITE", &ruri, "tcp-1", "z9hG4bKt1", 1, ""))
        .unwrap();
    let mut down = uas.accept().unwrap();
    let inv = down.expect();
    assert_eq!(inv.method(), Some(Method::Invite));
    assert_eq!(inv.max_forwards(), Ok(Some(69)));
    let vias: Vec<_> = inv.vias().map(Result::unwrap).collect();
    assert_eq!(vias.len(), 2);
    assert_eq!(vias[0].transport.as_str(), "TCP");
    assert_eq!(vias[1].received(), Some(&b"127.0.4.2"[..]));
    let rr = inv.header(HeaderName::RecordRoute).unwrap();
    assert_eq!(
        rr,
        format!("<sip:{};transport=tcp;lr>", p.addr).as_bytes(),
        "one Record-Route: in and out by the same listener"
    );

    for (code, reason) in [(180, "Ringing"), (200, "OK")] {
        down.send(&down.response(&inv, code, reason)).unwrap();
        let r = uac.expect();
        assert_eq!(r.status(), Some(code), "back on the inbound connection");
        assert_eq!(r.vias().count(), 1, "the proxy removed its Via");
        assert_eq!(content_length(&r), Some(0));
    }

    // ACK and BYE reuse the proxy's connection to the UAS.
    uac.send(&uac.request("ACK", &ruri, "tcp-1", "z9hG4bKt1ack", 1, ""))
        .unwrap();
    assert_eq!(down.expect().method(), Some(Method::Ack));
    uac.send(&uac.request("BYE", &ruri, "tcp-1", "z9hG4bKt1bye", 2, ""))
        .unwrap();
    let bye = down.expect();
    assert_eq!(bye.method(), Some(Method::Bye));
    down.send(&down.response(&bye, 200, "OK")).unwrap();
    let ok = uac.expect();
    assert_eq!(
        (ok.status(), ok.cseq().unwrap().method),
        (Some(200), Method::Bye)
    );
    assert!(
        uas.accept().is_err(),
        "the proxy opened one connection to the UAS and reused it"
    );

    let s = settled(&p.rt, |s| s.tcp_out == 6);
    assert_eq!((s.forwarded, s.replied), (6, 0));
    assert_eq!((s.tcp_in, s.tcp_out), (6, 6));
    assert_eq!((s.tcp_accepted, s.tcp_connected), (1, 1));
    assert_eq!(s.datagrams_in + s.datagrams_out, 0);
}

/// TCP callers, a UDP callee, two shards: the UAS's UDP responses all land
/// on one shard (SO_REUSEPORT hashes its one address pair), while the
/// callers' connections are spread over both; a response for a connection
/// of the other shard is handed over the mesh.
#[test]
fn tcp_callers_udp_callee_responses_cross_shards() {
    let p = start_on(2, "127.0.4.11", &["udp", "tcp"], "");
    let uas = Ua::bind("127.0.4.12", T).unwrap();
    let mut uacs: Vec<TcpUa> = (0..24).map(|_| connect("127.0.4.13", p.addr)).collect();
    for (i, uac) in uacs.iter_mut().enumerate() {
        let req = uac.request(
            "INVITE",
            &format!("sip:bob@{}", uas.addr),
            &format!("x-{i}"),
            &format!("z9hG4bKx{i}"),
            1,
            "",
        );
        uac.send(&req).unwrap();
    }
    for _ in 0..uacs.len() {
        let (inv, from) = uas.expect();
        assert_eq!(from, p.addr);
        let top = inv.top_via().unwrap();
        assert_eq!(top.transport.as_str(), "UDP");
        uas.send(p.addr, &uas.response(&inv, 486, "Busy Here"))
            .unwrap();
    }
    for (i, uac) in uacs.iter_mut().enumerate() {
        let r = uac.expect();
        assert_eq!(r.status(), Some(486));
        assert_eq!(r.call_id(), format!("x-{i}").as_bytes());
    }
    let shards = p.rt.per_shard();
    assert!(
        shards.iter().all(|s| s.tcp_accepted > 0),
        "24 connections spread over both shards: {shards:?}"
    );
    let s = settled(&p.rt, |s| s.tcp_out == 24);
    assert!(s.mesh_out > 0, "{s:?}");
    assert_eq!(s.tcp_out, 24);
}

#[test]
fn udp_caller_tcp_callee() {
    let p = start_on(2, "127.0.4.21", &["udp", "tcp"], "");
    let uac = Ua::bind("127.0.4.22", T).unwrap();
    let uas = TcpUas::bind("127.0.4.23", 0, T).unwrap();
    let ruri = format!("sip:bob@{};transport=tcp", uas.addr);
    uac.send(
        p.addr,
        &uac.request("INVITE", &ruri, "u-1", "z9hG4bKu1", 1, ""),
    )
    .unwrap();
    let mut down = uas.accept().unwrap();
    let inv = down.expect();
    assert_eq!(content_length(&inv), Some(0));
    down.send(&down.response(&inv, 200, "OK")).unwrap();
    let (ok, from) = uac.expect();
    assert_eq!((ok.status(), from), (Some(200), p.addr));
}

/// RFC 3261 §18.1.1: a request over the UDP size limit bound for a UDP
/// next hop goes over TCP to the same address.
#[test]
fn a_large_request_moves_from_udp_to_tcp() {
    let p = start_on(1, "127.0.4.31", &["udp", "tcp"], "");
    let uac = Ua::bind("127.0.4.32", T).unwrap();
    let uas_tcp = TcpUas::bind("127.0.4.33", 0, T).unwrap();
    let uas_udp = std::net::UdpSocket::bind(uas_tcp.addr).unwrap();
    uas_udp
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let big = format!("X-Padding: {}\r\n", "p".repeat(1400));
    let ruri = format!("sip:bob@{}", uas_tcp.addr);
    uac.send(
        p.addr,
        &uac.request("INVITE", &ruri, "big-1", "z9hG4bKb1", 1, &big),
    )
    .unwrap();
    let mut down = uas_tcp.accept().unwrap();
    let inv = down.expect();
    assert_eq!(inv.top_via().unwrap().transport.as_str(), "TCP");
    assert!(inv.as_bytes().len() > 1300);
    assert!(uas_udp.recv(&mut [0u8; 100]).is_err(), "nothing over UDP");
    down.send(&down.response(&inv, 200, "OK")).unwrap();
    assert_eq!(uac.expect().0.status(), Some(200));
}

#[test]
fn crlf_ping_gets_a_pong_and_a_bad_stream_a_400_then_close() {
    let p = start_on(1, "127.0.4.41", &["tcp"], "");
    let mut c = connect("127.0.4.42", p.addr);
    c.send(b"\r\n\r\n").unwrap();
    assert!(
        matches!(c.read(), Ok(Received::Keepalive(2))),
        "CRLFCRLF answered with one CRLF (RFC 5626 §3.5.1)"
    );
    // Two pings in one segment: two pongs.
    c.send(b"\r\n\r\n\r\n\r\n").unwrap();
    let mut pong = 0;
    while pong < 4 {
        match c.read() {
            Ok(Received::Keepalive(n)) => pong += n,
            other => panic!("expected pongs, got {other:?}"),
        }
    }
    assert_eq!(pong, 4);
    // OPTIONS to the proxy itself is answered on the connection.
    let options = c.request(
        "OPTIONS",
        &format!("sip:{}", p.addr),
        "o-1",
        "z9hG4bKo1",
        1,
        "",
    );
    c.send(&options).unwrap();
    assert_eq!(c.expect().status(), Some(200));
    // Over a stream Content-Length is mandatory (§18.3): 400, then close.
    let text = String::from_utf8(options).unwrap();
    let no_length = text.replace("Content-Length: 0\r\n", "");
    c.send(no_length.as_bytes()).unwrap();
    let r = c.expect();
    assert_eq!(r.status(), Some(400));
    assert!(matches!(c.read(), Ok(Received::Closed)));
    let s = settled(&p.rt, |s| s.tcp_closed == 1);
    assert_eq!((s.tcp_pongs, s.tcp_framing_errors, s.tcp_closed), (3, 1, 1));
}

#[test]
fn idle_connections_close_and_the_cap_holds() {
    let p = start_on(
        1,
        "127.0.4.51",
        &["tcp"],
        "[tcp]\nidle_timeout = 1\nmax_connections = 2\n",
    );
    let mut a = connect("127.0.4.52", p.addr);
    let mut b = connect("127.0.4.52", p.addr);
    settled(&p.rt, |s| s.tcp_accepted == 2);
    let mut c = connect("127.0.4.52", p.addr);
    assert!(
        matches!(c.read(), Ok(Received::Closed)),
        "the third connection is over the cap"
    );
    // b keeps talking; a says nothing and is closed after about a second.
    for _ in 0..3 {
        std::thread::sleep(Duration::from_millis(400));
        b.send(b"\r\n").unwrap();
    }
    assert!(matches!(a.read(), Ok(Received::Closed)));
    let s = p.rt.snapshot();
    assert_eq!((s.tcp_rejected, s.tcp_idle_closed), (1, 1), "{s:?}");
    assert_eq!(s.tcp_open(), 1, "b is still open");
}

#[test]
fn a_tcp_port_in_use_is_a_clear_error() {
    let holder = std::net::TcpListener::bind("127.0.4.61:0").unwrap();
    common::assert_port_in_use("tcp", holder.local_addr().unwrap());
}

/// A stop lets queued writes out and closes every connection.
#[test]
fn shutdown_closes_connections() {
    let mut p = start_on(2, "127.0.4.71", &["tcp"], "");
    let mut c = connect("127.0.4.72", p.addr);
    c.send(&c.request(
        "OPTIONS",
        &format!("sip:{}", p.addr),
        "s-1",
        "z9hG4bKs1",
        1,
        "",
    ))
    .unwrap();
    assert_eq!(c.expect().status(), Some(200));
    let t = std::time::Instant::now();
    p.rt.shutdown();
    assert!(t.elapsed() < Duration::from_secs(3));
    assert!(matches!(c.read(), Ok(Received::Closed)));
}

/// IPv6 loopback end to end: a UDP caller and a TCP callee on ::1, the
/// proxy's Via and Record-Route with a bracketed IPv6 reference (RFC 5118).
#[test]
fn ipv6_udp_caller_tcp_callee() {
    if std::net::UdpSocket::bind("[::1]:0").is_err() {
        eprintln!("no IPv6 loopback here; skipped");
        return;
    }
    let p = start_on(2, "::1", &["udp", "tcp"], "[proxy]\nrecord_route = true\n");
    let uac = Ua::bind("::1", T).unwrap();
    let uas = TcpUas::bind("::1", 0, T).unwrap();
    let ruri = format!("sip:bob@{};transport=tcp", uas.addr);
    assert!(ruri.starts_with("sip:bob@[::1]:"));
    uac.send(
        p.addr,
        &uac.request("INVITE", &ruri, "v6-1", "z9hG4bKv61", 1, ""),
    )
    .unwrap();
    let mut down = uas.accept().unwrap();
    let inv = down.expect();
    let top = inv.top_via().unwrap();
    assert_eq!(
        (top.host, top.port),
        (&b"[::1]"[..], Some(p.addr.port())),
        "our Via names the IPv6 listener"
    );
    let rr = inv.header(HeaderName::RecordRoute).unwrap();
    assert!(
        rr.starts_with(b"<sip:[::1]:"),
        "{}",
        String::from_utf8_lossy(rr)
    );
    down.send(&down.response(&inv, 200, "OK")).unwrap();
    let (ok, from) = uac.expect();
    assert_eq!((ok.status(), from), (Some(200), p.addr));
    assert_eq!(ok.vias().count(), 1);
}

/// Slowloris: connections that dribble a message a byte at a time are
/// closed once `message_timeout_ms` has passed since its first byte (the
/// dribble keeps them from ever being idle); a connection that sends
/// whole messages stays; one address holds at most `max_per_source`
/// connections while another connects as usual.
#[test]
fn slow_messages_are_cut_and_one_address_is_capped() {
    let p = start_on(
        1,
        "127.0.4.71",
        &["tcp"],
        "[tcp]\nidle_timeout = 60\nmessage_timeout_ms = 600\nmax_per_source = 3\n",
    );
    let mut slow: Vec<TcpUa> = (0..3).map(|_| connect("127.0.4.72", p.addr)).collect();
    settled(&p.rt, |s| s.tcp_accepted == 3);
    let mut fourth = connect("127.0.4.72", p.addr);
    assert!(
        matches!(fourth.read(), Ok(Received::Closed)),
        "over max_per_source"
    );
    let mut other = connect("127.0.4.73", p.addr);
    settled(&p.rt, |s| s.tcp_accepted == 4);
    let started = std::time::Instant::now();
    let text =
        b"OPTIONS sip:x@127.0.4.74 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.4.72;branch=z9hG4bKslow\r\n";
    let mut i = 0;
    while started.elapsed() < Duration::from_millis(1500) {
        for s in &mut slow {
            // A failed write: the proxy has closed it.
            let _ = s.send(&text[i % text.len()..][..1]);
        }
        other.send(b"\r\n\r\n").unwrap();
        i += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    for s in &mut slow {
        let r = s.read();
        assert!(matches!(r, Ok(Received::Closed) | Err(_)), "{r:?}");
    }
    let s = settled(&p.rt, |s| s.tcp_slow_closed == 3);
    assert_eq!(
        (s.tcp_slow_closed, s.tcp_source_rejected, s.tcp_idle_closed),
        (3, 1, 0),
        "{s:?}"
    );
    assert_eq!(s.tcp_open(), 1, "the other address is still connected");
    // The address has room again.
    let mut again = connect("127.0.4.72", p.addr);
    again.send(b"\r\n\r\n").unwrap();
    assert!(matches!(again.read(), Ok(Received::Keepalive(2))));
}

/// SO_REUSEADDR on the TCP listeners: after Siphon itself closed a
/// connection (its side in TIME_WAIT), a restart binds the same address at
/// once instead of failing with "Address already in use" for a minute.
#[test]
fn a_restart_binds_at_once_after_closing_connections() {
    let mut p = start_on(1, "127.0.4.81", &["tcp"], "");
    let addr = p.addr;
    let mut c = connect("127.0.4.82", addr);
    c.send(&c.request("OPTIONS", &format!("sip:{addr}"), "r-1", "z9hG4bKr1", 1, ""))
        .unwrap();
    assert_eq!(c.expect().status(), Some(200));
    // Siphon closes first: its end of the connection waits in TIME_WAIT.
    p.rt.shutdown();
    assert!(matches!(c.read(), Ok(Received::Closed)));
    drop(p);
    let _one = common::lock();
    let text =
        format!("[server]\nshards = 1\n[[listen]]\ntransport = \"tcp\"\naddr = \"{addr}\"\n");
    let cfg = siphon::config::Config::parse(&text, std::path::Path::new("t.toml")).unwrap();
    let again = siphon::rt::Runtime::start(
        std::sync::Arc::new(cfg),
        std::sync::Arc::new(siphon::proxy::Hosts::default()),
    );
    assert!(again.is_ok(), "{:?}", again.err());
    let mut c = connect("127.0.4.82", addr);
    c.send(&c.request("OPTIONS", &format!("sip:{addr}"), "r-2", "z9hG4bKr2", 1, ""))
        .unwrap();
    assert_eq!(c.expect().status(), Some(200));
}
