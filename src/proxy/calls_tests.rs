//! Concurrent-call limits (`max_calls`) over whole calls, in both modes:
//! a call holds its place from the INVITE until a BYE or a failed answer,
//! a re-INVITE's answers change nothing, retransmissions count once.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use bytes::Bytes;

use super::tests::BASE;
use super::topology_tests::{answer, flow, in_dialog, relay};
use super::{Core, Hosts, Outcome};
use crate::config::Config;

const CALLER: &str = "127.0.0.2:5070";
const CARRIER: &str = "127.0.0.9:5080";

fn core(mode: &str) -> Core {
    let text = format!(
        "{BASE}[proxy]\nmode = \"{mode}\"\nrecord_route = true\n\
         [[route]]\nname = \"out\"\nmatch = {{ domain = \"carrier.example\" }}\n\
         destination = \"carrier\"\nmax_calls = 2\n\
         [destination.carrier]\ntargets = [{{ uri = \"sip:{CARRIER}\" }}]\nmax_calls = 5\n"
    );
    core_from(&text)
}

fn core_from(text: &str) -> Core {
    let cfg = Config::parse(text, Path::new("t.toml")).unwrap();
    Core::new(Arc::new(cfg), Arc::new(Hosts::default()))
}

/// Two trunks in priority order (`first` and `second` are their extra
/// target keys) behind the route for carrier.example.
fn two_trunks(mode: &str, record_route: bool, first: &str, second: &str) -> Core {
    core_from(&format!(
        "{BASE}[proxy]\nmode = \"{mode}\"\nrecord_route = {record_route}\n\
         [[route]]\nname = \"out\"\nmatch = {{ domain = \"carrier.example\" }}\ndestination = \"carrier\"\n\
         [destination.carrier]\nalgorithm = \"priority\"\ntargets = [\
         {{ uri = \"sip:127.0.0.9:5080\", priority = 0{first} }}, \
         {{ uri = \"sip:127.0.0.10:5080\", priority = 1{second} }}]\n"
    ))
}

/// Calls on target `t` of the first set.
fn target_calls(c: &Core, t: usize) -> u32 {
    c.cur.sets[0].targets[t]
        .calls
        .as_ref()
        .unwrap()
        .active
        .load(Ordering::Relaxed)
}

fn invite(call: &str) -> Vec<u8> {
    format!(
        "INVITE sip:+1555@carrier.example SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.2:5070;branch=z9hG4bK{call}\r\n\
         Max-Forwards: 70\r\nFrom: <sip:alice@example.com>;tag=a-{call}\r\nTo: <sip:+1555@carrier.example>\r\n\
         Call-ID: {call}\r\nCSeq: 1 INVITE\r\nContact: <sip:alice@127.0.0.2:5070>\r\nContent-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

fn send(c: &mut Core, from: &str, data: &[u8]) -> Vec<Outcome> {
    let mut out = Vec::new();
    c.handle_at(c.now_ms, Bytes::copy_from_slice(data), flow(from), &mut out);
    out
}

fn refused(out: &[Outcome]) -> bool {
    out.iter().any(|o| matches!(o, Outcome::Replied(_, 503)))
        && !out.iter().any(|o| matches!(o, Outcome::Forwarded(_)))
}

fn active(c: &Core) -> (u32, u32) {
    let r = c.cur.routes[0].calls.as_ref().unwrap();
    let s = c.cur.sets[0].calls.as_ref().unwrap();
    (
        r.active.load(Ordering::Relaxed),
        s.active.load(Ordering::Relaxed),
    )
}

fn calls(mode: &str) {
    let mut c = core(mode);
    let (_, c1) = relay(&mut c, CALLER, &invite("c1"));
    let (_, c2) = relay(&mut c, CALLER, &invite("c2"));
    assert_eq!(active(&c), (2, 2));
    assert!(
        refused(&send(&mut c, CALLER, &invite("c3"))),
        "the route is full"
    );
    // A retransmission is the same call, not a third.
    send(&mut c, CALLER, &invite("c1"));
    assert_eq!(active(&c), (2, 2));
    // c2 is declined: its place is free.
    relay(
        &mut c,
        CARRIER,
        &answer(&c2, 486, "b2", "<sip:b@127.0.0.9:5080>", &[]),
    );
    assert_eq!(active(&c), (1, 1));
    relay(&mut c, CALLER, &invite("c3"));
    // c1 is answered; a re-INVITE in it declined with 491 ends nothing.
    let (_, ok) = relay(
        &mut c,
        CARRIER,
        &answer(&c1, 200, "b1", "<sip:b@127.0.0.9:5080>", &[]),
    );
    let routes: Vec<String> =
        super::topology_tests::values(&ok, crate::sip::HeaderName::RecordRoute)
            .into_iter()
            .rev()
            .collect();
    let dialog = |method: &str, cseq: u32| {
        String::from_utf8(in_dialog(
            method,
            "sip:b@127.0.0.9:5080",
            &routes,
            &[&format!(
                "SIP/2.0/UDP 127.0.0.2:5070;branch=z9hG4bKc1{method}{cseq}"
            )],
            "<sip:alice@example.com>;tag=a-c1",
            "<sip:+1555@carrier.example>;tag=b1",
            cseq,
            None,
        ))
        .unwrap()
        .replace("c1@hidden-test", "c1")
    };
    let (_, re) = relay(&mut c, CALLER, dialog("INVITE", 2).as_bytes());
    relay(
        &mut c,
        CARRIER,
        &answer(&re, 491, "b1", "<sip:b@127.0.0.9:5080>", &[]),
    );
    assert_eq!(active(&c), (2, 2));
    assert!(refused(&send(&mut c, CALLER, &invite("c4"))));
    // The BYE ends c1 (either side's would): room for c4.
    relay(&mut c, CALLER, dialog("BYE", 3).as_bytes());
    assert_eq!(active(&c), (1, 1));
    relay(&mut c, CALLER, &invite("c4"));
    assert_eq!(active(&c), (2, 2));
    assert_eq!(
        c.cur.routes[0]
            .calls
            .as_ref()
            .unwrap()
            .limited
            .load(Ordering::Relaxed),
        2
    );
    let metrics = {
        let mut m = String::new();
        crate::routing::report::metrics(&c.cur, 0, &mut m);
        m
    };
    assert!(
        metrics.contains("siphon_route_calls{route=\"out\"} 2"),
        "{metrics}"
    );
    assert!(metrics.contains("siphon_route_calls_limited_total{route=\"out\"} 2"));
    assert!(metrics.contains("siphon_set_calls{set=\"carrier\"} 2"));
}

#[test]
fn concurrent_calls_are_limited_per_route_and_set_stateless() {
    calls("stateless");
}

#[test]
fn concurrent_calls_are_limited_per_route_and_set_stateful() {
    calls("stateful");
}

#[test]
fn an_unanswered_call_frees_its_place_at_timer_c_or_the_setup_bound() {
    // Stateful: Siphon's own 408 ends the attempt.
    let mut c = core("stateful");
    relay(&mut c, CALLER, &invite("c1"));
    relay(&mut c, CALLER, &invite("c2"));
    let mut sent_408 = false;
    for _ in 0..400 {
        c.now_ms += 1000;
        let mut out = Vec::new();
        if c.poll_timeout().is_some_and(|t| t <= c.now_ms) {
            c.handle_timeout(c.now_ms, &mut out);
        }
        sent_408 |= out.iter().any(|o| match o {
            Outcome::Forwarded(t) | Outcome::Replied(t, _) => t.data.starts_with(b"SIP/2.0 408"),
            _ => false,
        });
        if active(&c) == (0, 0) {
            break;
        }
    }
    assert!(sent_408);
    assert_eq!(active(&c), (0, 0));
    // Stateless: nothing answers; the setup bound (call_setup_s) frees it.
    let mut c = core("stateless");
    relay(&mut c, CALLER, &invite("c1"));
    for _ in 0..16 {
        c.sweep_bans(299_000);
    }
    assert_eq!(active(&c), (1, 1));
    for _ in 0..16 {
        c.sweep_bans(302_000);
    }
    assert_eq!(active(&c), (0, 0));
}

#[test]
fn max_calls_without_record_route_is_refused_at_load() {
    let text = format!(
        "{BASE}[[route]]\nname = \"out\"\ndestination = \"d\"\nmax_calls = 2\n\
         [destination.d]\ntargets = [{{ uri = \"sip:{CARRIER}\" }}]\n"
    );
    let e = Config::parse(&text, Path::new("t.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("route.out.max_calls") && e.contains("record_route"),
        "{e}"
    );
}

#[test]
fn a_target_over_its_cps_is_passed_over_for_new_calls_only() {
    for mode in ["stateless", "stateful"] {
        let mut c = two_trunks(mode, false, ", cps = 1, burst = 2", "");
        let dest = |c: &mut Core, call: &str| relay(c, CALLER, &invite(call)).0.dest.to_string();
        // The burst of 2 goes to the preferred trunk, the third call to the
        // next one; a second later the preferred one has room again.
        assert_eq!(dest(&mut c, "c1"), "127.0.0.9:5080", "{mode}");
        assert_eq!(dest(&mut c, "c2"), "127.0.0.9:5080");
        assert_eq!(dest(&mut c, "c3"), "127.0.0.10:5080");
        // Not a new call: an OPTIONS is not charged and takes the first.
        let options = String::from_utf8(invite("o1"))
            .unwrap()
            .replace("INVITE", "OPTIONS");
        assert_eq!(
            relay(&mut c, CALLER, options.as_bytes()).0.dest.to_string(),
            "127.0.0.9:5080"
        );
        c.now_ms += 1000;
        assert_eq!(dest(&mut c, "c4"), "127.0.0.9:5080");
    }
}

#[test]
fn a_target_with_its_calls_full_is_passed_over_until_one_ends() {
    for mode in ["stateless", "stateful"] {
        let mut c = two_trunks(mode, true, ", max_calls = 1", ", max_calls = 1");
        let (t1, m1) = relay(&mut c, CALLER, &invite("c1"));
        assert_eq!(t1.dest.to_string(), "127.0.0.9:5080", "{mode}");
        let (t2, _) = relay(&mut c, CALLER, &invite("c2"));
        assert_eq!(t2.dest.to_string(), "127.0.0.10:5080");
        // Both full: no target for a third call.
        let out = send(&mut c, CALLER, &invite("c3"));
        assert!(refused(&out), "{mode}: {out:?}");
        // c1 answered, then hung up: its target takes c4.
        relay(
            &mut c,
            "127.0.0.9:5080",
            &answer(&m1, 200, "b1", "<sip:b@127.0.0.9:5080>", &[]),
        );
        assert_eq!(
            (target_calls(&c, 0), target_calls(&c, 1)),
            (1, 1),
            "an answered call holds its target"
        );
        let bye = String::from_utf8(invite("c1"))
            .unwrap()
            .replace(
                "INVITE sip:+1555@carrier.example",
                "BYE sip:b@127.0.0.9:5080",
            )
            .replace("CSeq: 1 INVITE", "CSeq: 2 BYE")
            .replace(
                "To: <sip:+1555@carrier.example>",
                "To: <sip:+1555@carrier.example>;tag=b1",
            );
        relay(&mut c, CALLER, bye.as_bytes());
        let (t4, _) = relay(&mut c, CALLER, &invite("c4"));
        assert_eq!(t4.dest.to_string(), "127.0.0.9:5080");
    }
}

/// An answered call `call` (through `c`), and a BYE in it from the caller
/// built by `bye(extra headers)`.
fn answered_call(c: &mut Core, call: &str) -> impl Fn(&str) -> Vec<u8> {
    let (_, m) = relay(c, CALLER, &invite(call));
    relay(
        c,
        CARRIER,
        &answer(&m, 200, "b1", "<sip:b@127.0.0.9:5080>", &[]),
    );
    let call = call.to_string();
    move |extra: &str| {
        String::from_utf8(invite(&call))
            .unwrap()
            .replace(
                "INVITE sip:+1555@carrier.example",
                "BYE sip:b@127.0.0.9:5080",
            )
            .replace("CSeq: 1 INVITE", &format!("{extra}CSeq: 2 BYE"))
            .replace(
                "To: <sip:+1555@carrier.example>",
                "To: <sip:+1555@carrier.example>;tag=b1",
            )
            .into_bytes()
    }
}

#[test]
fn a_bye_that_is_not_forwarded_ends_nothing() {
    for mode in ["stateless", "stateful"] {
        let mut c = core(mode);
        let bye = answered_call(&mut c, "c1");
        assert_eq!(active(&c), (1, 1));
        // A BYE Siphon answers itself (483, 420) never reaches the callee:
        // the call goes on, and so does its place.
        for (extra, code) in [("", 483), ("Proxy-Require: x\r\n", 420)] {
            let mut b = String::from_utf8(bye(extra)).unwrap();
            if code == 483 {
                b = b.replace("Max-Forwards: 70", "Max-Forwards: 0");
            }
            let out = send(&mut c, CALLER, b.as_bytes());
            assert!(
                matches!(&out[..], [Outcome::Replied(_, c)] if *c == code),
                "{mode}: {out:?}"
            );
            assert_eq!(active(&c), (1, 1), "{mode}: a {code} ended the call");
        }
        // The real BYE does.
        relay(&mut c, CALLER, &bye(""));
        assert_eq!(active(&c), (0, 0), "{mode}");
    }
}

#[test]
fn a_retransmission_goes_to_the_target_its_call_fills_stateless() {
    let mut c = two_trunks("stateless", true, ", max_calls = 1", ", max_calls = 1");
    let (t1, _) = relay(&mut c, CALLER, &invite("c1"));
    assert_eq!(t1.dest.to_string(), "127.0.0.9:5080");
    let (t2, _) = relay(&mut c, CALLER, &invite("c2"));
    assert_eq!(t2.dest.to_string(), "127.0.0.10:5080");
    // Both targets are full, each with its own call: the retransmissions
    // (no 100 Trying from a stateless proxy) go where the first copies
    // went, and the calls keep their places.
    for _ in 0..2 {
        let (r1, _) = relay(&mut c, CALLER, &invite("c1"));
        assert_eq!(r1.dest.to_string(), "127.0.0.9:5080");
        let (r2, _) = relay(&mut c, CALLER, &invite("c2"));
        assert_eq!(r2.dest.to_string(), "127.0.0.10:5080");
    }
    assert_eq!((target_calls(&c, 0), target_calls(&c, 1)), (1, 1));
    assert!(refused(&send(&mut c, CALLER, &invite("c3"))));
}

#[test]
fn calls_that_share_a_call_id_are_counted_apart() {
    for mode in ["stateless", "stateful"] {
        let mut c = core(mode);
        // Three INVITEs with one Call-ID and three From tags are three
        // calls: the route's two places take two, the third is refused.
        let reuse = |tag: &str| {
            String::from_utf8(invite("c1"))
                .unwrap()
                .replace("tag=a-c1", &format!("tag={tag}"))
                .replace("branch=z9hG4bKc1", &format!("branch=z9hG4bK{tag}"))
                .into_bytes()
        };
        relay(&mut c, CALLER, &reuse("t1"));
        relay(&mut c, CALLER, &reuse("t2"));
        assert_eq!(active(&c), (2, 2), "{mode}");
        assert!(refused(&send(&mut c, CALLER, &reuse("t3"))), "{mode}");
        // A BYE of the second (from the callee: its From tag is the To
        // tag of the INVITE) ends that one only.
        let bye = String::from_utf8(reuse("b2"))
            .unwrap()
            .replace(
                "INVITE sip:+1555@carrier.example",
                "BYE sip:alice@127.0.0.2:5070",
            )
            .replace("CSeq: 1 INVITE", "CSeq: 9 BYE")
            .replace(
                "To: <sip:+1555@carrier.example>",
                "To: <sip:+1555@carrier.example>;tag=t2",
            );
        relay(&mut c, CARRIER, bye.as_bytes());
        assert_eq!(active(&c), (1, 1), "{mode}");
        relay(&mut c, CALLER, &reuse("t3"));
        assert_eq!(active(&c), (2, 2), "{mode}");
    }
}

#[test]
fn a_call_refused_for_a_full_transaction_table_frees_its_place() {
    // Occupancy overload off (100): a full table is what refuses the call,
    // after the route admitted it.
    let text = format!(
        "{}[proxy]\nmode = \"stateful\"\nrecord_route = true\nmax_transactions = 1\n\
         [[route]]\nname = \"out\"\nmatch = {{ domain = \"carrier.example\" }}\n\
         destination = \"carrier\"\nmax_calls = 2\n\
         [destination.carrier]\ntargets = [{{ uri = \"sip:{CARRIER}\" }}]\nmax_calls = 5\n",
        BASE.replace("[server]\n", "[server]\noverload_occupancy = 100\n")
    );
    let mut c = core_from(&text);
    relay(&mut c, CALLER, &invite("c1"));
    assert_eq!(active(&c), (1, 1));
    let out = send(&mut c, CALLER, &invite("c2"));
    assert!(refused(&out), "{out:?}");
    assert_eq!(active(&c), (1, 1), "the refused call holds no place");
}
