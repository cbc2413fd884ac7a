//! The proxy core: `cargo bench --bench proxy`. Everything siphon does per
//! datagram except the socket calls: parse, validate, route, branch,
//! edits, output; in stateful mode also the transactions of a whole call.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use siphon::config::{Config, Transport};
use siphon::proxy::{Core, Flow, Hosts, Outcome};
use std::hint::black_box;

const CONFIG: &str = r#"
[[listen]]
transport = "udp"
addr = "192.0.2.1:5060"
[[route]]
name = "carrier"
match = { user_prefix = "+1" }
destination = "carrier"
[destination.carrier]
targets = [{ uri = "sip:203.0.113.20:5060" }]
"#;

const INVITE: &[u8] = include_bytes!("messages/invite.sip");
const OK: &[u8] = include_bytes!("messages/ok.sip");

fn core() -> Core {
    let cfg = Config::parse(CONFIG, Path::new("bench.toml")).unwrap();
    Core::new(Arc::new(cfg), Arc::new(Hosts::default()))
}

fn relay(c: &mut Criterion) {
    let mut g = c.benchmark_group("proxy");
    let from: SocketAddr = "198.51.100.10:5060".parse().unwrap();
    let flow = Flow {
        transport: Transport::Udp,
        local: "192.0.2.1:5060".parse().unwrap(),
        remote: from,
        conn: None,
    };
    g.throughput(Throughput::Bytes(INVITE.len() as u64));
    g.bench_function("stateless_invite", |b| {
        let mut core = core();
        let buf = Bytes::from_static(INVITE);
        b.iter(|| match core.handle(black_box(buf.clone()), flow) {
            Outcome::Forwarded(t) => t.data.len(),
            other => panic!("{other:?}"),
        })
    });
    // The 200 OK's top Via is ours (192.0.2.1:5060 in benches/messages/ok.sip).
    g.throughput(Throughput::Bytes(OK.len() as u64));
    g.bench_function("stateless_response", |b| {
        let mut core = core();
        let buf = Bytes::from_static(OK);
        let from_uas = Flow {
            remote: "203.0.113.20:5060".parse().unwrap(),
            conn: None,
            ..flow
        };
        b.iter(|| match core.handle(black_box(buf.clone()), from_uas) {
            Outcome::Forwarded(t) => t.data.len(),
            other => panic!("{other:?}"),
        })
    });
    g.finish();
}

/// A whole call through the stateful core: INVITE (100 Trying back), 180,
/// 200, ACK, BYE, 200 — 6 messages in, 7 out, two transactions. Only the
/// core's work is timed; building the UA's messages is not. The clock
/// moves 1 ms per call, so contexts end (Timers L, M, J, K) as they would
/// at 1000 cps.
fn stateful_call(c: &mut Criterion) {
    let mut g = c.benchmark_group("proxy");
    let cfg = Config::parse(
        &format!("{CONFIG}[proxy]\nmode = \"stateful\"\nrecord_route = true\n"),
        Path::new("bench.toml"),
    )
    .unwrap();
    let core = Core::new(Arc::new(cfg), Arc::new(Hosts::default()));
    let uas: SocketAddr = "203.0.113.20:5060".parse().unwrap();
    call(
        &mut g,
        "stateful_call",
        core,
        |_| "sip:+15551234567@carrier.example.net".into(),
        uas,
    );
    g.finish();
}

fn flow(remote: SocketAddr) -> Flow {
    Flow {
        transport: Transport::Udp,
        local: "192.0.2.1:5060".parse().unwrap(),
        remote,
        conn: None,
    }
}

/// A whole call through `core` (INVITE, 180, 200, ACK, BYE, 200), the
/// Request-URI of call `n` from `ruri`, the callee at `uas`.
fn call(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    mut core: Core,
    ruri: impl Fn(u64) -> String,
    uas: SocketAddr,
) {
    let uac: SocketAddr = "198.51.100.10:5060".parse().unwrap();
    let mut n: u64 = 0;
    let mut now: u64 = 0;
    let mut out: Vec<Outcome> = Vec::new();
    g.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut spent = std::time::Duration::ZERO;
            for _ in 0..iters {
                n += 1;
                now += 1;
                let ruri = ruri(n);
                let call = format!("bench-{n}");
                let invite = request("INVITE", uac, &ruri, &call, &format!("z9hG4bKi{n}"), 1);
                let t = std::time::Instant::now();
                core.handle_at(now, invite, flow(uac), &mut out);
                core.handle_timeout(now, &mut out);
                spent += t.elapsed();
                let fwd = forwarded(&mut out);
                let ring = response(uas, &fwd, 180);
                let ok = response(uas, &fwd, 200);
                let ack = request("ACK", uac, &ruri, &call, &format!("z9hG4bKa{n}"), 1);
                let bye = request("BYE", uac, &ruri, &call, &format!("z9hG4bKb{n}"), 2);
                let t = std::time::Instant::now();
                core.handle_at(now, ring, flow(uas), &mut out);
                core.handle_at(now, ok, flow(uas), &mut out);
                core.handle_at(now, ack, flow(uac), &mut out);
                core.handle_at(now, bye, flow(uac), &mut out);
                spent += t.elapsed();
                let fwd_bye = forwarded(&mut out);
                let bye_ok = response(uas, &fwd_bye, 200);
                let t = std::time::Instant::now();
                core.handle_at(now, bye_ok, flow(uas), &mut out);
                spent += t.elapsed();
                out.clear();
            }
            spent
        })
    });
}

/// The registrar: a REGISTER refresh of one of 10,000 users (parse,
/// registrar, journal record, 200 with the binding), and a stateful call
/// to a registered user (location lookup and retargeting included).
fn registrar(c: &mut Criterion) {
    const USERS: u64 = 10_000;
    let mut g = c.benchmark_group("proxy");
    let text = format!(
        "{CONFIG}[proxy]\nmode = \"stateful\"\nrecord_route = true\n[registrar]\ndomains = [\"example.com\"]\n"
    );
    let cfg = Arc::new(Config::parse(&text, Path::new("bench.toml")).unwrap());
    let reg = Arc::new(siphon::registrar::Registrar::in_memory(
        cfg.registrar.clone().unwrap(),
    ));
    let mut core = Core::new(cfg.clone(), Arc::new(Hosts::default()));
    core.set_registrar(reg.clone());
    let ua: SocketAddr = "198.51.100.30:5060".parse().unwrap();
    let register = |user: u64, cseq: u64| {
        Bytes::from(format!(
            "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP {ua};branch=z9hG4bKr{user}x{cseq};rport\r\nMax-Forwards: 70\r\nFrom: <sip:u{user}@example.com>;tag=r{user}\r\nTo: <sip:u{user}@example.com>\r\nCall-ID: reg-{user}\r\nCSeq: {cseq} REGISTER\r\nContact: <sip:u{user}@{ua}>\r\nExpires: 3600\r\nContent-Length: 0\r\n\r\n"
        ))
    };
    let mut out = Vec::new();
    let mut journal = Vec::new();
    for u in 0..USERS {
        core.handle_at(0, register(u, 1), flow(ua), &mut out);
    }
    out.clear();
    let mut n: u64 = 0;
    g.bench_function("register_refresh", |b| {
        b.iter_custom(|iters| {
            let mut spent = std::time::Duration::ZERO;
            for _ in 0..iters {
                n += 1;
                let msg = register(n % USERS, 1 + n / USERS + 1);
                let t = std::time::Instant::now();
                core.handle_at(0, msg, flow(ua), &mut out);
                core.take_journal(&mut journal);
                spent += t.elapsed();
                out.clear();
                journal.clear();
            }
            spent
        })
    });
    call(
        &mut g,
        "call_to_registered_user",
        core,
        |n| format!("sip:u{}@example.com", n % USERS),
        ua,
    );
    g.finish();
}

fn request(
    method: &str,
    from: SocketAddr,
    ruri: &str,
    call: &str,
    branch: &str,
    cseq: u32,
) -> Bytes {
    Bytes::from(siphon::testkit::request(
        "UDP", from, method, ruri, call, branch, cseq, "",
    ))
}

/// The last request the core forwarded (the others in `out` are dropped).
fn forwarded(out: &mut Vec<Outcome>) -> siphon::sip::Message {
    let data = out
        .drain(..)
        .filter_map(|o| match o {
            Outcome::Forwarded(t) => Some(t.data),
            _ => None,
        })
        .next_back()
        .expect("the core forwarded the request");
    siphon::sip::Message::parse(
        Bytes::from(data),
        siphon::sip::Framing::Datagram,
        &siphon::sip::Limits::default(),
    )
    .unwrap()
}

fn response(from: SocketAddr, req: &siphon::sip::Message, code: u16) -> Bytes {
    Bytes::from(siphon::testkit::response_to(from, req, code, "X"))
}

criterion_group!(benches, relay, stateful_call, registrar);
criterion_main!(benches);
