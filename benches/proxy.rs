//! The stateless proxy core on one message: `cargo bench --bench proxy`.
//! Everything siphon does per datagram except the socket calls: parse,
//! validate, route, branch, edits, output.

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

criterion_group!(benches, relay);
criterion_main!(benches);
