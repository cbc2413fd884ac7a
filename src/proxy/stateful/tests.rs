//! The stateful proxy with a virtual clock: messages in, what it sends
//! out, and time advanced by hand, so 32 s of Timer B take microseconds.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;

use crate::config::{Config, Transport};
use crate::proxy::tests::BASE;
use crate::proxy::{Core, Flow, Hosts, Outcome, Transmit};
use crate::sip::{Framing, HeaderName, Limits, Message};
use crate::testkit;
const TWO_TARGETS: &str = r#"
[[route]]
name = "all"
destination = "d"
[destination.d]
targets = [{ uri = "sip:127.0.0.3:5080" }, { uri = "sip:127.0.0.4:5080" }]
"#;

const CALLER: &str = "127.0.0.2:5070";
const UAS1: &str = "127.0.0.3:5080";
const UAS2: &str = "127.0.0.4:5080";

/// A stateful core and a virtual clock.
struct H {
    core: Core,
    now: u64,
}

impl H {
    fn new(extra: &str) -> H {
        let text = format!("{BASE}[proxy]\nmode = \"stateful\"\n{extra}");
        let cfg = Config::parse(&text, Path::new("t.toml")).unwrap();
        H {
            core: Core::new(Arc::new(cfg), Arc::new(Hosts::default())),
            now: 1000,
        }
    }

    fn flow(transport: Transport, from: &str) -> Flow {
        Flow {
            transport,
            local: "127.0.0.1:5060".parse().unwrap(),
            remote: from.parse().unwrap(),
            conn: None,
        }
    }

    /// A message from `from` over UDP; what the proxy sends.
    fn recv(&mut self, from: &str, data: &[u8]) -> Vec<Sent> {
        self.recv_on(Transport::Udp, from, data)
    }

    fn recv_on(&mut self, t: Transport, from: &str, data: &[u8]) -> Vec<Sent> {
        let mut out = Vec::new();
        self.core.handle_at(
            self.now,
            Bytes::copy_from_slice(data),
            H::flow(t, from),
            &mut out,
        );
        out.into_iter().map(Sent::of).collect()
    }

    /// Advance the clock by `ms` in 10 ms ticks (the runtime's tick);
    /// what the timers sent, with the time they sent it.
    fn advance(&mut self, ms: u64) -> Vec<(u64, Sent)> {
        let mut all = Vec::new();
        let end = self.now + ms;
        while self.now < end {
            self.now = (self.now + 10).min(end);
            let mut out = Vec::new();
            if self.core.poll_timeout().is_some_and(|t| t <= self.now) {
                self.core.handle_timeout(self.now, &mut out);
            }
            all.extend(out.into_iter().map(|o| (self.now, Sent::of(o))));
        }
        all
    }

    fn active(&self) -> u64 {
        self.core.tx_stats().active
    }
}

/// One thing the proxy sent (or decided).
#[derive(Debug)]
enum Sent {
    Fwd(Transmit, Message),
    Reply(Transmit, Message),
    Resent(Transmit, Message),
    Other(Outcome),
}

impl Sent {
    fn of(o: Outcome) -> Sent {
        match o {
            Outcome::Forwarded(t) => {
                let m = parse(&t.data);
                Sent::Fwd(t, m)
            }
            Outcome::Replied(t, _) | Outcome::Rejected(t, _) => {
                let m = parse(&t.data);
                Sent::Reply(t, m)
            }
            Outcome::Resent(t) => {
                let m = parse(&t.data);
                Sent::Resent(t, m)
            }
            other => Sent::Other(other),
        }
    }

    fn transmit(&self) -> &Transmit {
        match self {
            Sent::Fwd(t, _) | Sent::Reply(t, _) | Sent::Resent(t, _) => t,
            Sent::Other(o) => panic!("not a send: {o:?}"),
        }
    }

    fn msg(&self) -> &Message {
        match self {
            Sent::Fwd(_, m) | Sent::Reply(_, m) | Sent::Resent(_, m) => m,
            Sent::Other(o) => panic!("not a send: {o:?}"),
        }
    }

    fn dest(&self) -> String {
        self.transmit().dest.to_string()
    }

    /// `"INVITE"` / `"487"` and where it went: a compact description.
    fn what(&self) -> String {
        let m = self.msg();
        let kind = match (m.status(), m.method()) {
            (Some(c), _) => format!("{c} {}", String::from_utf8_lossy(m.cseq_method_bytes())),
            (None, _) => String::from_utf8_lossy(m.method_bytes()).into_owned(),
        };
        let how = match self {
            Sent::Resent(..) => "again ",
            _ => "",
        };
        format!("{how}{kind} -> {}", self.dest())
    }
}

fn whats(s: &[Sent]) -> Vec<String> {
    s.iter().map(Sent::what).collect()
}

fn parse(b: &[u8]) -> Message {
    Message::parse(
        Bytes::copy_from_slice(b),
        Framing::Datagram,
        &Limits::default(),
    )
    .unwrap()
}

fn invite_to(ruri: &str, branch: &str) -> Vec<u8> {
    let a: SocketAddr = CALLER.parse().unwrap();
    testkit::request("UDP", a, "INVITE", ruri, "call-1", branch, 1, "")
}

fn caller_req(method: &str, ruri: &str, branch: &str, cseq: u32) -> Vec<u8> {
    let a: SocketAddr = CALLER.parse().unwrap();
    testkit::request("UDP", a, method, ruri, "call-1", branch, cseq, "")
}

/// A UAS answer to `req` (with its own To tag).
fn answer(req: &Message, code: u16, tag: &str, extra: &str) -> Vec<u8> {
    let from: SocketAddr = UAS1.parse().unwrap();
    let text = String::from_utf8(testkit::response_to(from, req, code, "X")).unwrap();
    let text = text.replace("uas-tag", tag);
    text.replacen(
        "Content-Length: 0\r\n",
        &format!("{extra}Content-Length: 0\r\n"),
        1,
    )
    .into_bytes()
}

#[test]
fn an_invite_gets_100_then_is_relayed_statefully() {
    let mut h = H::new("");
    let out = h.recv(CALLER, &invite_to(&format!("sip:bob@{UAS1}"), "z9hG4bKc1"));
    assert_eq!(
        whats(&out),
        [
            format!("100 INVITE -> {CALLER}"),
            format!("INVITE -> {UAS1}")
        ]
    );
    let inv = out[1].msg().clone();
    let top = inv.top_via().unwrap();
    assert!(
        top.branch().unwrap().starts_with(b"z9hG4bKsf"),
        "a stateful branch: {:?}",
        String::from_utf8_lossy(top.branch().unwrap())
    );
    assert_eq!(inv.max_forwards(), Ok(Some(69)));
    // The caller retransmits: the 100 again, nothing downstream.
    let again = h.recv(CALLER, &invite_to(&format!("sip:bob@{UAS1}"), "z9hG4bKc1"));
    assert_eq!(whats(&again), [format!("again 100 INVITE -> {CALLER}")]);

    let ring = h.recv(UAS1, &answer(&inv, 180, "t1", ""));
    assert_eq!(whats(&ring), [format!("180 INVITE -> {CALLER}")]);
    assert_eq!(ring[0].msg().vias().count(), 1, "our Via removed");
    // Now a retransmitted INVITE gets the 180.
    let again = h.recv(CALLER, &invite_to(&format!("sip:bob@{UAS1}"), "z9hG4bKc1"));
    assert_eq!(whats(&again), [format!("again 180 INVITE -> {CALLER}")]);

    let ok = answer(&inv, 200, "t1", "");
    assert_eq!(
        whats(&h.recv(UAS1, &ok)),
        [format!("200 INVITE -> {CALLER}")]
    );
    // RFC 6026: 2xx retransmissions are forwarded too.
    assert_eq!(
        whats(&h.recv(UAS1, &ok)),
        [format!("200 INVITE -> {CALLER}")]
    );
    // The 2xx ACK is a new transaction: relayed (statelessly).
    let ack = caller_req("ACK", &format!("sip:bob@{UAS1}"), "z9hG4bKc1ack", 1);
    assert_eq!(whats(&h.recv(CALLER, &ack)), [format!("ACK -> {UAS1}")]);
    assert_eq!(h.active(), 1);
    // RFC 6026 Timers L and M (64*T1) end the context; nothing is sent.
    assert!(h.advance(32_000).is_empty());
    assert_eq!(h.active(), 0);
}

#[test]
fn udp_retransmissions_double_until_timer_b_then_408() {
    let mut h = H::new("branch_timeout_ms = 300000\n");
    let out = h.recv(CALLER, &invite_to(&format!("sip:bob@{UAS1}"), "z9hG4bKc1"));
    let start = h.now;
    assert_eq!(out.len(), 2);
    let sent = h.advance(40_000);
    let times: Vec<(u64, String)> = sent.iter().map(|(t, s)| (t - start, s.what())).collect();
    let inv = format!("again INVITE -> {UAS1}");
    assert_eq!(
        times,
        [
            (500, inv.clone()),
            (1500, inv.clone()),
            (3500, inv.clone()),
            (7500, inv.clone()),
            (15500, inv.clone()),
            (31500, inv.clone()),
            (32000, format!("408 INVITE -> {CALLER}")),
            // Timer G resends our 408 until the caller ACKs.
            (32500, format!("again 408 INVITE -> {CALLER}")),
            (33500, format!("again 408 INVITE -> {CALLER}")),
            (35500, format!("again 408 INVITE -> {CALLER}")),
            (39500, format!("again 408 INVITE -> {CALLER}")),
        ]
    );
    assert_eq!(h.core.tx_stats().timeouts, 1);
    let ack = caller_req("ACK", &format!("sip:bob@{UAS1}"), "z9hG4bKc1", 1);
    assert!(
        h.recv(CALLER, &ack).is_empty(),
        "the ACK for our 408 is absorbed"
    );
    assert_eq!(h.core.tx_stats().absorbed, 1);
    assert!(
        h.advance(10_000).is_empty(),
        "no more resends after the ACK"
    );
    assert_eq!(h.active(), 0, "Timer I and Timer D ended everything");
}

#[test]
fn over_tcp_nothing_is_retransmitted() {
    let mut h = H::new("branch_timeout_ms = 300000\n");
    let ruri = "sip:bob@127.0.0.3:5080;transport=tcp";
    let inv = testkit::request(
        "TCP",
        CALLER.parse().unwrap(),
        "INVITE",
        ruri,
        "c",
        "z9hG4bKt",
        1,
        "",
    );
    let out = h.recv_on(Transport::Tcp, CALLER, &inv);
    assert_eq!(out[1].transmit().transport, Transport::Tcp);
    let sent = h.advance(40_000);
    assert_eq!(
        sent.iter().map(|(t, s)| (*t, s.what())).collect::<Vec<_>>(),
        [(h.now - 8000, format!("408 INVITE -> {CALLER}"))],
        "Timer B only, then our 408 once (no Timer G on TCP)"
    );
}

#[test]
fn cancel_while_ringing() {
    let mut h = H::new("");
    let ruri = format!("sip:bob@{UAS1}");
    let out = h.recv(CALLER, &invite_to(&ruri, "z9hG4bKc1"));
    let inv = out[1].msg().clone();
    h.recv(UAS1, &answer(&inv, 180, "t1", ""));

    let cancel = caller_req("CANCEL", &ruri, "z9hG4bKc1", 1);
    let out = h.recv(CALLER, &cancel);
    assert_eq!(
        whats(&out),
        [
            format!("200 CANCEL -> {CALLER}"),
            format!("CANCEL -> {UAS1}")
        ]
    );
    let down = out[1].msg();
    assert_eq!(
        down.top_via().unwrap().branch(),
        inv.top_via().unwrap().branch(),
        "the CANCEL has the INVITE's branch (§9.1)"
    );
    assert_eq!(down.vias().count(), 1);
    assert_eq!(down.cseq().unwrap().seq, 1);
    assert_eq!(h.core.tx_stats().cancels, 1);

    // The UAS: 200 for the CANCEL (absorbed), 487 for the INVITE.
    assert!(h.recv(UAS1, &answer(down, 200, "t1", "")).is_empty());
    let out = h.recv(UAS1, &answer(&inv, 487, "t1", ""));
    assert_eq!(
        whats(&out),
        [format!("ACK -> {UAS1}"), format!("487 INVITE -> {CALLER}")]
    );
    let ack_down = out[0].msg();
    assert_eq!(ack_down.to().unwrap().tag(), Some(&b"t1"[..]));
    assert_eq!(
        ack_down.top_via().unwrap().branch(),
        inv.top_via().unwrap().branch()
    );
    // The UAS retransmits the 487: our ACK again, nothing up.
    let out = h.recv(UAS1, &answer(&inv, 487, "t1", ""));
    assert_eq!(whats(&out), [format!("again ACK -> {UAS1}")]);
    // The caller's ACK for the 487 is absorbed.
    assert!(h
        .recv(CALLER, &caller_req("ACK", &ruri, "z9hG4bKc1", 1))
        .is_empty());
    h.advance(40_000);
    assert_eq!(h.active(), 0);
}

#[test]
fn cancel_before_any_provisional_waits_for_one() {
    let mut h = H::new("");
    let ruri = format!("sip:bob@{UAS1}");
    let inv = h.recv(CALLER, &invite_to(&ruri, "z9hG4bKc1"))[1]
        .msg()
        .clone();
    let out = h.recv(CALLER, &caller_req("CANCEL", &ruri, "z9hG4bKc1", 1));
    assert_eq!(
        whats(&out),
        [format!("200 CANCEL -> {CALLER}")],
        "§9.1: not yet"
    );
    let out = h.recv(UAS1, &answer(&inv, 100, "", ""));
    assert_eq!(whats(&out), [format!("CANCEL -> {UAS1}")]);
}

#[test]
fn a_cancel_without_a_context_is_relayed_statelessly() {
    let mut h = H::new("");
    let ruri = format!("sip:bob@{UAS1}");
    let out = h.recv(CALLER, &caller_req("CANCEL", &ruri, "z9hG4bKnone", 1));
    assert_eq!(whats(&out), [format!("CANCEL -> {UAS1}")]);
    assert_eq!(h.active(), 0);
}

#[test]
fn failover_on_503_and_retry_after_takes_the_target_out() {
    let mut h = H::new(TWO_TARGETS);
    let out = h.recv(CALLER, &invite_to("sip:+15551234@carrier", "z9hG4bKc1"));
    assert_eq!(whats(&out)[1], format!("INVITE -> {UAS1}"));
    let first = out[1].msg().clone();
    let out = h.recv(UAS1, &answer(&first, 503, "t1", "Retry-After: 60\r\n"));
    assert_eq!(
        whats(&out),
        [format!("ACK -> {UAS1}"), format!("INVITE -> {UAS2}")],
        "the next target, before anything goes up"
    );
    let second = out[1].msg().clone();
    assert_ne!(
        first.top_via().unwrap().branch(),
        second.top_via().unwrap().branch(),
        "a new leg, a new branch"
    );
    let out = h.recv(UAS2, &answer(&second, 200, "t2", ""));
    assert_eq!(whats(&out), [format!("200 INVITE -> {CALLER}")]);
    assert_eq!(h.core.tx_stats().failovers, 1);

    // UAS1 said Retry-After: 60: the next call goes to UAS2 at once.
    let out = h.recv(CALLER, &invite_to("sip:+15551234@carrier", "z9hG4bKc2"));
    assert_eq!(whats(&out)[1], format!("INVITE -> {UAS2}"));
    // After a minute UAS1 is back (round-robin from its position).
    h.advance(61_000);
    let seen: Vec<String> = (3..5)
        .map(|i| {
            whats(&h.recv(
                CALLER,
                &invite_to("sip:+1555@carrier", &format!("z9hG4bKc{i}")),
            ))[1]
                .clone()
        })
        .collect();
    assert!(seen.contains(&format!("INVITE -> {UAS1}")), "{seen:?}");
}

#[test]
fn every_target_failing_gives_the_best_answer_and_503_becomes_500() {
    let mut h = H::new(TWO_TARGETS);
    let first = h.recv(CALLER, &invite_to("sip:x@carrier", "z9hG4bKc1"))[1]
        .msg()
        .clone();
    let second = h.recv(UAS1, &answer(&first, 503, "t1", ""))[1]
        .msg()
        .clone();
    let out = h.recv(UAS2, &answer(&second, 503, "t2", ""));
    assert_eq!(
        whats(&out),
        [format!("ACK -> {UAS2}"), format!("500 INVITE -> {CALLER}")],
        "§16.7 step 6: a 503 goes up as 500"
    );
}

#[test]
fn a_code_that_is_not_a_failover_code_goes_up_at_once() {
    let mut h = H::new(TWO_TARGETS);
    let first = h.recv(CALLER, &invite_to("sip:x@carrier", "z9hG4bKc1"))[1]
        .msg()
        .clone();
    let out = h.recv(UAS1, &answer(&first, 486, "t1", ""));
    assert_eq!(
        whats(&out),
        [format!("ACK -> {UAS1}"), format!("486 INVITE -> {CALLER}")]
    );
}

#[test]
fn a_silent_target_is_left_after_the_branch_timeout() {
    let mut h = H::new(&format!("branch_timeout_ms = 2000\n{TWO_TARGETS}"));
    let out = h.recv(CALLER, &invite_to("sip:x@carrier", "z9hG4bKc1"));
    let start = h.now;
    assert_eq!(whats(&out)[1], format!("INVITE -> {UAS1}"));
    let sent = h.advance(2000);
    let times: Vec<(u64, String)> = sent.iter().map(|(t, s)| (t - start, s.what())).collect();
    assert_eq!(
        times,
        [
            (500, format!("again INVITE -> {UAS1}")),
            (1500, format!("again INVITE -> {UAS1}")),
            (2000, format!("INVITE -> {UAS2}")),
        ]
    );
    let second = sent[2].1.msg().clone();
    let out = h.recv(UAS2, &answer(&second, 200, "t2", ""));
    assert_eq!(whats(&out), [format!("200 INVITE -> {CALLER}")]);
    // The silent leg is no longer retransmitted.
    assert!(
        h.advance(5000).iter().all(|(_, s)| s.dest() != UAS1),
        "nothing more to UAS1"
    );
}

#[test]
fn parallel_fork_first_2xx_wins_and_the_other_leg_is_cancelled() {
    let mut h = H::new(&format!("{TWO_TARGETS}fork = \"parallel\"\n"));
    let out = h.recv(CALLER, &invite_to("sip:x@carrier", "z9hG4bKc1"));
    assert_eq!(
        whats(&out),
        [
            format!("100 INVITE -> {CALLER}"),
            format!("INVITE -> {UAS1}"),
            format!("INVITE -> {UAS2}")
        ]
    );
    let (a, b) = (out[1].msg().clone(), out[2].msg().clone());
    assert_eq!(
        whats(&h.recv(UAS1, &answer(&a, 180, "ta", ""))),
        [format!("180 INVITE -> {CALLER}")]
    );
    assert_eq!(
        whats(&h.recv(UAS2, &answer(&b, 180, "tb", ""))),
        [format!("180 INVITE -> {CALLER}")]
    );
    let out = h.recv(UAS2, &answer(&b, 200, "tb", ""));
    assert_eq!(
        whats(&out),
        [
            format!("200 INVITE -> {CALLER}"),
            format!("CANCEL -> {UAS1}")
        ]
    );
    assert_eq!(
        out[1].msg().header_by_name("Reason"),
        Some(&b"SIP;cause=200;text=\"Call completed elsewhere\""[..])
    );
    // The cancelled leg's 487 is ACKed and goes no further.
    let out = h.recv(UAS1, &answer(&a, 487, "ta", ""));
    assert_eq!(whats(&out), [format!("ACK -> {UAS1}")]);
}

#[test]
fn a_6xx_ends_the_fork() {
    let mut h = H::new(&format!("{TWO_TARGETS}fork = \"parallel\"\n"));
    let out = h.recv(CALLER, &invite_to("sip:x@carrier", "z9hG4bKc1"));
    let (a, b) = (out[1].msg().clone(), out[2].msg().clone());
    h.recv(UAS2, &answer(&b, 180, "tb", ""));
    let out = h.recv(UAS1, &answer(&a, 603, "ta", ""));
    assert_eq!(
        whats(&out),
        [format!("ACK -> {UAS1}"), format!("CANCEL -> {UAS2}")],
        "the 6xx waits; the other leg is cancelled"
    );
    let out = h.recv(UAS2, &answer(&b, 487, "tb", ""));
    assert_eq!(
        whats(&out),
        [format!("ACK -> {UAS2}"), format!("603 INVITE -> {CALLER}")],
        "the 6xx beats the 487"
    );
}

#[test]
fn challenges_from_every_branch_are_aggregated() {
    let mut h = H::new(&format!("{TWO_TARGETS}fork = \"parallel\"\n"));
    let out = h.recv(CALLER, &invite_to("sip:x@carrier", "z9hG4bKc1"));
    let (a, b) = (out[1].msg().clone(), out[2].msg().clone());
    let out = h.recv(
        UAS1,
        &answer(
            &a,
            401,
            "ta",
            "WWW-Authenticate: Digest realm=\"a\", nonce=\"1\"\r\n",
        ),
    );
    assert_eq!(whats(&out), [format!("ACK -> {UAS1}")]);
    let out = h.recv(
        UAS2,
        &answer(
            &b,
            407,
            "tb",
            "Proxy-Authenticate: Digest realm=\"b\", nonce=\"2\"\r\n",
        ),
    );
    assert_eq!(
        whats(&out),
        [format!("ACK -> {UAS2}"), format!("401 INVITE -> {CALLER}")]
    );
    let up = out[1].msg();
    assert_eq!(
        up.header(HeaderName::WwwAuthenticate),
        Some(&b"Digest realm=\"a\", nonce=\"1\""[..])
    );
    assert_eq!(
        up.header(HeaderName::ProxyAuthenticate),
        Some(&b"Digest realm=\"b\", nonce=\"2\""[..]),
        "§16.7 step 7"
    );
}

#[test]
fn timer_c_cancels_a_ringing_leg_and_answers_408() {
    let mut h = H::new("timer_c_ms = 60000\n");
    let ruri = format!("sip:bob@{UAS1}");
    let inv = h.recv(CALLER, &invite_to(&ruri, "z9hG4bKc1"))[1]
        .msg()
        .clone();
    h.recv(UAS1, &answer(&inv, 180, "t1", ""));
    let start = h.now;
    let sent = h.advance(60_000);
    let times: Vec<(u64, String)> = sent.iter().map(|(t, s)| (t - start, s.what())).collect();
    assert_eq!(
        times,
        [
            (60_000, format!("CANCEL -> {UAS1}")),
            (60_000, format!("408 INVITE -> {CALLER}"))
        ]
    );
}

#[test]
fn a_non_invite_that_times_out_gets_no_408() {
    let mut h = H::new("branch_timeout_ms = 300000\n");
    let ruri = format!("sip:bob@{UAS1}");
    let out = h.recv(CALLER, &caller_req("OPTIONS", &ruri, "z9hG4bKo1", 1));
    assert_eq!(
        whats(&out),
        [format!("OPTIONS -> {UAS1}")],
        "no 100 for a non-INVITE"
    );
    let sent = h.advance(40_000);
    assert!(
        sent.iter().all(|(_, s)| s.dest() == UAS1),
        "RFC 4320: nothing to the caller: {:?}",
        sent.iter().map(|(_, s)| s.what()).collect::<Vec<_>>()
    );
    // Timer E: 500, 1500, 3500, 7500, then every T2 (4 s) until F at 32 s.
    assert_eq!(sent.len(), 10);
    assert_eq!(h.active(), 0);
}

#[test]
fn a_non_invite_retransmission_after_the_final_gets_the_final_again() {
    let mut h = H::new("");
    let ruri = format!("sip:bob@{UAS1}");
    let bye = caller_req("BYE", &ruri, "z9hG4bKb1", 2);
    let fwd = h.recv(CALLER, &bye)[0].msg().clone();
    assert!(h.recv(CALLER, &bye).is_empty(), "Trying: absorbed");
    assert_eq!(
        whats(&h.recv(UAS1, &answer(&fwd, 200, "t1", ""))),
        [format!("200 BYE -> {CALLER}")]
    );
    assert_eq!(
        whats(&h.recv(CALLER, &bye)),
        [format!("again 200 BYE -> {CALLER}")]
    );
    h.advance(32_000);
    assert_eq!(h.active(), 0, "Timer J");
}

#[test]
fn a_full_table_answers_503_with_retry_after() {
    let mut h = H::new("max_transactions = 1\n");
    let ruri = format!("sip:bob@{UAS1}");
    h.recv(CALLER, &invite_to(&ruri, "z9hG4bKc1"));
    // A new call is refused by overload control first (the table is over
    // server.overload_occupancy, 90 % by default).
    let out = h.recv(CALLER, &invite_to(&ruri, "z9hG4bKc2"));
    assert_eq!(whats(&out), [format!("503 INVITE -> {CALLER}")]);
    assert_eq!(out[0].msg().header(HeaderName::RetryAfter), Some(&b"2"[..]));
    assert_eq!(h.core.overload_rejected, 1);
    // Other requests need a context too: the full table refuses them.
    let out = h.recv(CALLER, &caller_req("MESSAGE", &ruri, "z9hG4bKc3", 1));
    assert_eq!(whats(&out), [format!("503 MESSAGE -> {CALLER}")]);
    assert_eq!(out[0].msg().header(HeaderName::RetryAfter), Some(&b"5"[..]));
    assert_eq!(h.core.tx_stats().table_full, 1);
}

#[test]
fn a_response_for_another_shard_is_handed_over() {
    let mut h = H::new("");
    let ruri = format!("sip:bob@{UAS1}");
    let inv = h.recv(CALLER, &invite_to(&ruri, "z9hG4bKc1"))[1]
        .msg()
        .clone();
    let resp = String::from_utf8(answer(&inv, 180, "t1", "")).unwrap();
    let branch = String::from_utf8(inv.top_via().unwrap().branch().unwrap().to_vec()).unwrap();
    // A genuine branch naming shard 1 (as that shard would have made it).
    let mine = crate::proxy::LegRef::fields_of(branch.as_bytes()).unwrap();
    let mut other_branch = String::new();
    crate::proxy::LegRef { shard: 1, ..mine.0 }.write_branch(mine.1, &inv, &mut other_branch);
    let other = resp.replace(&branch, &other_branch);
    let out = h.recv(UAS1, other.as_bytes());
    assert!(
        matches!(&out[..], [Sent::Other(Outcome::ToShard(1, _))]),
        "{out:?}"
    );
    // Naming shard 1 without the key: dropped, not handed over.
    let mut parts: Vec<&str> = branch.split('.').collect();
    parts[1] = "1";
    let forged = resp.replace(&branch, &parts.join("."));
    let out = h.recv(UAS1, forged.as_bytes());
    assert!(
        matches!(
            &out[..],
            [Sent::Other(Outcome::Dropped(
                crate::proxy::Drop::ForgedResponse
            ))]
        ),
        "{out:?}"
    );
    // A stale generation (made with the key) is not matched: relayed
    // statelessly by its Via.
    let mut stale_branch = String::new();
    crate::proxy::LegRef {
        gen: mine.0.gen + 1,
        ..mine.0
    }
    .write_branch(mine.1, &inv, &mut stale_branch);
    let stale = resp.replace(&branch, &stale_branch);
    let out = h.recv(UAS1, stale.as_bytes());
    assert_eq!(whats(&out), [format!("180 INVITE -> {CALLER}")]);
    assert_eq!(h.active(), 1);
}

#[test]
fn a_transport_error_on_a_leg_tries_the_next_target() {
    let mut h = H::new(TWO_TARGETS);
    let out = h.recv(CALLER, &invite_to("sip:x@carrier", "z9hG4bKc1"));
    let leg = out[1]
        .transmit()
        .leg
        .expect("the leg is named for the runtime");
    let mut next = Vec::new();
    h.core.handle_transport_error(h.now, leg, &mut next);
    let next: Vec<Sent> = next.into_iter().map(Sent::of).collect();
    assert_eq!(whats(&next), [format!("INVITE -> {UAS2}")]);
    assert_eq!(h.core.tx_stats().transport_errors, 1);
    // A second report for the same leg changes nothing.
    let mut again = Vec::new();
    h.core.handle_transport_error(h.now, leg, &mut again);
    assert!(again.is_empty());
}

#[test]
fn a_leg_that_rings_after_its_branch_timeout_is_cancelled() {
    let mut h = H::new(&format!("branch_timeout_ms = 2000\n{TWO_TARGETS}"));
    let first = h.recv(CALLER, &invite_to("sip:x@carrier", "z9hG4bKc1"))[1]
        .msg()
        .clone();
    let moved = h.advance(2000);
    assert_eq!(moved.last().unwrap().1.what(), format!("INVITE -> {UAS2}"));
    // UAS1 wakes up: it is cancelled, and its 180 goes nowhere.
    let out = h.recv(UAS1, &answer(&first, 180, "t1", ""));
    assert_eq!(whats(&out), [format!("CANCEL -> {UAS1}")]);
    let out = h.recv(UAS1, &answer(&first, 487, "t1", ""));
    assert_eq!(whats(&out), [format!("ACK -> {UAS1}")]);
    let second = moved.last().unwrap().1.msg().clone();
    h.recv(UAS2, &answer(&second, 486, "t2", ""));
    h.advance(40_000);
    assert_eq!(h.active(), 0);
}

/// Siphon's own final answers read the same in both modes: the stateless
/// proxy sends them at once, the stateful one through the response
/// context (§16.7), and the context must not trade the reason phrase for
/// a generic one.
#[test]
fn own_answers_have_the_same_status_line_in_both_modes() {
    let rules = r#"
[registrar]
domains = ["example.com"]

[[route]]
name = "blocked"
match = { user_prefix = "+999" }
action = "reply"
code = 403
reason = "Unknown Source"

[[route]]
name = "located"
match = { user_prefix = "loc" }
action = "location"

[[route]]
name = "bcast"
match = { user_prefix = "+1" }
destination = "bcast"

[[route]]
name = "unresolvable"
match = { user_prefix = "+2" }
destination = "unresolvable"

[[route]]
name = "down"
match = { user_prefix = "+3" }
destination = "down"

[destination.bcast]
targets = [{ uri = "sip:255.255.255.255:5060" }]

[destination.unresolvable]
targets = [{ uri = "sip:gw.invalid:5060" }]

[destination.down]
targets = [{ uri = "sip:127.0.0.3:5080" }]
"#;
    let cases = [
        ("sip:+99912@carrier", 70, "403 Unknown Source"),
        ("sip:nobody@example.com", 70, "480 Temporarily Unavailable"),
        ("sip:loc@elsewhere.net", 70, "404 Not Found"),
        ("sip:bob@127.0.0.3:5080", 0, "483 Too Many Hops"),
        ("sip:+15551234@carrier", 70, "403 Forbidden Destination"),
        ("sip:+25551234@carrier", 70, "503 Unresolvable Destination"),
        ("sip:+35551234@carrier", 70, "503 No Destination Available"),
    ];
    for mode in ["stateless", "stateful"] {
        let text = format!("{BASE}[proxy]\nmode = \"{mode}\"\n{rules}");
        let cfg = Arc::new(Config::parse(&text, Path::new("t.toml")).unwrap());
        let reg = crate::registrar::Registrar::in_memory(cfg.registrar.clone().unwrap());
        let mut core = Core::new(cfg, Arc::new(Hosts::default()));
        core.set_registrar(Arc::new(reg));
        let down = core.cur.sets.iter().find(|s| s.cfg.name == "down").unwrap();
        down.targets[0]
            .health
            .set_admin(crate::routing::health::AdminState::Down, 0);
        for (i, (ruri, max_forwards, want)) in cases.iter().enumerate() {
            let req = String::from_utf8(caller_req("INVITE", ruri, &format!("z9hG4bKm{i}"), 1))
                .unwrap()
                .replace("Max-Forwards: 70", &format!("Max-Forwards: {max_forwards}"));
            let mut out = Vec::new();
            core.handle_at(
                1000,
                Bytes::from(req),
                H::flow(Transport::Udp, CALLER),
                &mut out,
            );
            let finals: Vec<String> = out
                .into_iter()
                .map(Sent::of)
                .filter(|s| matches!(s, Sent::Reply(..)) && s.msg().status() >= Some(200))
                .map(|s| {
                    let line = s.transmit().data.split(|&b| b == b'\r').next().unwrap();
                    String::from_utf8_lossy(line).into_owned()
                })
                .collect();
            assert_eq!(finals, [format!("SIP/2.0 {want}")], "{mode}: {ruri}");
        }
    }
}

#[test]
fn a_failover_is_not_charged_to_the_call_rate_limit() {
    let limited = TWO_TARGETS
        .replace(
            "destination = \"d\"\n",
            "destination = \"d\"\ncps = 1\nburst = 1\n",
        )
        .replace("[destination.d]\n", "[destination.d]\ncps = 1\nburst = 1\n");
    let mut h = H::new(&limited);
    let out = h.recv(CALLER, &invite_to("sip:+15551234@carrier", "z9hG4bKc1"));
    let first = out[1].msg().clone();
    let out = h.recv(UAS1, &answer(&first, 503, "t1", ""));
    assert_eq!(
        whats(&out),
        [format!("ACK -> {UAS1}"), format!("INVITE -> {UAS2}")],
        "the failover goes on within the limit its call was admitted by"
    );
    // A second call in the same second is over both limits.
    let out = h.recv(CALLER, &invite_to("sip:+15551234@carrier", "z9hG4bKc2"));
    assert_eq!(whats(&out), [format!("503 INVITE -> {CALLER}")]);
    assert_eq!(out[0].msg().header(HeaderName::RetryAfter), Some(&b"1"[..]));
}

#[test]
fn overload_refuses_new_calls_first_and_lets_dialogs_through() {
    let a: SocketAddr = CALLER.parse().unwrap();
    let req = |method: &str, call: &str, branch: &str, extra: &str| {
        testkit::request(
            "UDP",
            a,
            method,
            &format!("sip:bob@{UAS1}"),
            call,
            branch,
            1,
            extra,
        )
    };
    let text = format!(
        "{}[proxy]\nmode = \"stateful\"\nmax_transactions = 10\n",
        BASE.replace("[server]\n", "[server]\noverload_occupancy = 50\n")
    );
    let cfg = Config::parse(&text, Path::new("t.toml")).unwrap();
    let mut h = H {
        core: Core::new(Arc::new(cfg), Arc::new(Hosts::default())),
        now: 1000,
    };
    for i in 0..5 {
        let out = h.recv(
            CALLER,
            &req("INVITE", &format!("o{i}"), &format!("z9hG4bKo{i}"), ""),
        );
        assert_eq!(whats(&out)[1], format!("INVITE -> {UAS1}"), "call {i}");
    }
    // Half full: a new call is refused, with Retry-After.
    let out = h.recv(CALLER, &req("INVITE", "o9", "z9hG4bKo9", ""));
    assert_eq!(whats(&out), [format!("503 INVITE -> {CALLER}")]);
    assert_eq!(out[0].msg().header(HeaderName::RetryAfter), Some(&b"2"[..]));
    assert_eq!(h.core.overload_rejected, 1);
    // What keeps calls going flows: a CANCEL of a call in progress, a BYE
    // inside a dialog.
    let out = h.recv(CALLER, &req("CANCEL", "o0", "z9hG4bKo0", ""));
    assert!(
        whats(&out).contains(&format!("200 CANCEL -> {CALLER}")),
        "{:?}",
        whats(&out)
    );
    let bye = String::from_utf8(req("BYE", "d1", "z9hG4bKb1", "")).unwrap();
    let to = bye
        .lines()
        .find(|l| l.starts_with("To:"))
        .unwrap()
        .to_string();
    let bye = bye.replace(&to, &format!("{to};tag=t1"));
    let out = h.recv(CALLER, bye.as_bytes());
    assert_eq!(
        whats(&out).last().unwrap(),
        &format!("BYE -> {UAS1}"),
        "{:?}",
        whats(&out)
    );
    // The runtime's backlog signal refuses new calls too, until it clears.
    let mut h = H::new("");
    h.core.set_behind(true);
    let out = h.recv(CALLER, &req("INVITE", "n1", "z9hG4bKn1", ""));
    assert_eq!(whats(&out), [format!("503 INVITE -> {CALLER}")]);
    h.core.set_behind(false);
    let out = h.recv(CALLER, &req("INVITE", "n2", "z9hG4bKn2", ""));
    assert_eq!(whats(&out)[1], format!("INVITE -> {UAS1}"));
}

#[test]
fn finals_resent_to_a_source_that_never_acks_count_against_it() {
    let mut h = H::new("[guard]\nmax_requests = 3\nwindow_ms = 60000\n");
    let ruri = format!("sip:bob@{UAS1}");
    let out = h.recv(CALLER, &invite_to(&ruri, "z9hG4bKr1"));
    let inv = out[1].msg().clone();
    let out = h.recv(UAS1, &answer(&inv, 486, "t1", ""));
    assert!(whats(&out).contains(&format!("486 INVITE -> {CALLER}")));
    // The caller (a spoofed address) never ACKs: Timer G resends the 486,
    // each one charged to it; past max_requests it is banned.
    let resent = h.advance(4_000);
    let finals = resent
        .iter()
        .filter(|(_, s)| s.what() == format!("again 486 INVITE -> {CALLER}"))
        .count();
    assert_eq!(finals, 3, "Timer G at 0.5, 1.5 and 3.5 s");
    let out = h.recv(CALLER, &invite_to(&ruri, "z9hG4bKr2"));
    assert!(
        matches!(
            &out[..],
            [Sent::Other(Outcome::Dropped(crate::proxy::Drop::Banned))]
        ),
        "{out:?}"
    );
}

/// An INVITE of a flood: its own branch and Call-ID.
fn flood_invite(i: usize) -> Vec<u8> {
    let a: SocketAddr = CALLER.parse().unwrap();
    let ruri = format!("sip:bob@{UAS1}");
    testkit::request(
        "UDP",
        a,
        "INVITE",
        &ruri,
        &format!("flood-{i}"),
        &format!("z9hG4bKflood{i}"),
        1,
        "",
    )
}

#[test]
fn a_drained_flood_gives_its_table_back_and_stale_branches_stay_stale() {
    let mut h = H::new("");
    // 3000 INVITEs nobody answers; the last one rings, so it outlives the
    // rest (Timer C) and holds the end of the slab.
    let mut sent = Vec::new();
    for i in 0..3000 {
        let out = h.recv(CALLER, &flood_invite(i));
        assert_eq!(out.len(), 2, "100 and the INVITE");
        sent.push(out[1].msg().clone());
    }
    let last = sent[2999].clone();
    h.recv(UAS1, &answer(&last, 180, "t1", ""));
    assert_eq!(h.active(), 3000);
    let full = h.core.stateful.as_ref().unwrap().allocated();
    assert!(
        full.0 >= 3000 && full.1 >= 3000 && full.2 >= 3000,
        "{full:?}"
    );
    assert!(
        !h.core.shrink_idle(h.now),
        "all in use: nothing to give back"
    );
    // Timer B, the 408s, Timer H: all but the ringing one end.
    h.advance(70_000);
    assert_eq!(h.active(), 1);
    assert!(h.core.shrink_idle(h.now), "the index shrinks");
    let pinned = h.core.stateful.as_ref().unwrap().allocated();
    // The slot in use at the end holds the slab (cut to it), and its timer
    // the wheel.
    assert_eq!(pinned.0, 3000);
    assert!(pinned.1 < 1024, "{pinned:?}");
    // New calls take the lowest slots; the ringing one ends (200, then
    // Timers L and M); the slab goes.
    for i in 3000..3010 {
        h.recv(CALLER, &flood_invite(i));
    }
    let ok = h.recv(UAS1, &answer(&last, 200, "t1", ""));
    assert_eq!(whats(&ok), [format!("200 INVITE -> {CALLER}")]);
    h.advance(32_000);
    assert_eq!(h.active(), 10);
    assert!(h.core.shrink_idle(h.now));
    let small = h.core.stateful.as_ref().unwrap().allocated();
    assert!(
        small.0 < 1024 && small.1 < 1024 && small.2 < 1024,
        "{small:?}"
    );
    h.advance(70_000);
    assert_eq!(h.active(), 0);

    // Behaviour unchanged: the slab grows again (slots 10..19 anew), and
    // a late answer to the flood's INVITE in slot 15 does not find the new
    // call there (its branch names an older generation of the slot): it is
    // relayed statelessly, and the new call goes on.
    let mut out = Vec::new();
    for i in 5000..5020 {
        out = h.recv(CALLER, &flood_invite(i));
        assert_eq!(out.len(), 2);
        if i == 5015 {
            break;
        }
    }
    let stale = h.recv(UAS1, &answer(&sent[15], 180, "t9", ""));
    assert_eq!(whats(&stale), [format!("180 INVITE -> {CALLER}")]);
    let again = h.recv(CALLER, &flood_invite(5015));
    assert_eq!(
        whats(&again),
        [format!("again 100 INVITE -> {CALLER}")],
        "the new call did not take the stale 180"
    );
    let new = out[1].msg().clone();
    let ring = h.recv(UAS1, &answer(&new, 180, "t2", ""));
    assert_eq!(whats(&ring), [format!("180 INVITE -> {CALLER}")]);
    let again = h.recv(CALLER, &flood_invite(5015));
    assert_eq!(whats(&again), [format!("again 180 INVITE -> {CALLER}")]);
}
