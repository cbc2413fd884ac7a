//! Parser and forwarding benchmarks: `cargo bench --bench parse`.
//!
//! Inputs are `benches/messages/*.sip`: a 1 KB carrier INVITE with SDP, a
//! 200 OK with Record-Route, and a REGISTER. `Bytes::from_static` keeps the
//! receive buffer allocation out of the figure, as on the real receive path
//! where the datagram is already in a `Bytes`.

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use siphon::sip::{Edits, Framing, HeaderName, Limits, Message};
use std::hint::black_box;

const INVITE: &[u8] = include_bytes!("messages/invite.sip");
const OK: &[u8] = include_bytes!("messages/ok.sip");
const REGISTER: &[u8] = include_bytes!("messages/register.sip");

fn parse(c: &mut Criterion) {
    let limits = Limits::default();
    let mut g = c.benchmark_group("parse");
    for (name, msg) in [
        ("invite_sdp", INVITE),
        ("ok_200", OK),
        ("register", REGISTER),
    ] {
        g.throughput(Throughput::Bytes(msg.len() as u64));
        g.bench_function(name, |b| {
            let buf = Bytes::from_static(msg);
            b.iter(|| {
                Message::parse(black_box(buf.clone()), Framing::Datagram, &limits)
                    .map(|m| m.fields().len())
            })
        });
    }
    // Parse plus every typed accessor a stateful proxy reads on an INVITE.
    g.throughput(Throughput::Bytes(INVITE.len() as u64));
    g.bench_function("invite_sdp_typed", |b| {
        let buf = Bytes::from_static(INVITE);
        b.iter(|| {
            let m = Message::parse(black_box(buf.clone()), Framing::Datagram, &limits).unwrap();
            let uri = m.request_uri().unwrap();
            let via = m.top_via().unwrap();
            let from = m.from().unwrap();
            let to = m.to().unwrap();
            (
                uri.port,
                via.branch().map(<[u8]>::len),
                from.tag().map(<[u8]>::len),
                to.tag().map(<[u8]>::len),
                m.max_forwards(),
            )
        })
    });
    g.finish();
}

fn lookup(c: &mut Criterion) {
    let m = Message::parse(
        Bytes::from_static(INVITE),
        Framing::Datagram,
        &Limits::default(),
    )
    .unwrap();
    let mut g = c.benchmark_group("lookup");
    g.bench_function("header_call_id", |b| {
        b.iter(|| black_box(&m).header(HeaderName::CallId).map(<[u8]>::len))
    });
    g.bench_function("header_content_type", |b| {
        b.iter(|| {
            black_box(&m)
                .header(HeaderName::ContentType)
                .map(<[u8]>::len)
        })
    });
    g.bench_function("header_by_name_unknown", |b| {
        b.iter(|| {
            black_box(&m)
                .header_by_name(black_box("P-Asserted-Identity"))
                .map(<[u8]>::len)
        })
    });
    g.bench_function("top_via_branch", |b| {
        b.iter(|| {
            black_box(&m)
                .top_via()
                .ok()
                .and_then(|v| v.branch())
                .map(<[u8]>::len)
        })
    });
    g.finish();
}

fn forward(c: &mut Criterion) {
    let limits = Limits::default();
    let m = Message::parse(Bytes::from_static(INVITE), Framing::Datagram, &limits).unwrap();
    let mut g = c.benchmark_group("forward");
    g.throughput(Throughput::Bytes(INVITE.len() as u64));
    // Via + Max-Forwards + Record-Route into a reused buffer.
    g.bench_function("invite_edits_apply", |b| {
        let mut edits = Edits::new();
        let mut out = Vec::with_capacity(2048);
        b.iter(|| {
            let m = black_box(&m);
            edits.clear();
            edits.insert_via(
                m,
                b"SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK.siphon.0a1b2c3d4e5f",
            );
            edits.set_max_forwards(m, 69);
            edits.insert_record_route(m, b"<sip:192.0.2.1;lr>");
            edits.apply(m, &mut out);
            out.len()
        })
    });
    // The whole stateless relay step for one datagram: parse and rebuild.
    g.bench_function("invite_parse_and_forward", |b| {
        let buf = Bytes::from_static(INVITE);
        let mut edits = Edits::new();
        let mut out = Vec::with_capacity(2048);
        b.iter(|| {
            let m = Message::parse(black_box(buf.clone()), Framing::Datagram, &limits).unwrap();
            edits.clear();
            edits.insert_via(
                &m,
                b"SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK.siphon.0a1b2c3d4e5f",
            );
            edits.set_max_forwards(&m, 69);
            edits.insert_record_route(&m, b"<sip:192.0.2.1;lr>");
            edits.apply(&m, &mut out);
            out.len()
        })
    });
    let ok = Message::parse(Bytes::from_static(OK), Framing::Datagram, &limits).unwrap();
    g.throughput(Throughput::Bytes(OK.len() as u64));
    g.bench_function("response_pop_via", |b| {
        let mut edits = Edits::new();
        let mut out = Vec::with_capacity(1024);
        b.iter(|| {
            let ok = black_box(&ok);
            edits.clear();
            let _ = edits.remove_top_via(ok);
            edits.apply(ok, &mut out);
            out.len()
        })
    });
    g.finish();
}

criterion_group!(benches, parse, lookup, forward);
criterion_main!(benches);
