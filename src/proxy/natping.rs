//! Keep-alives toward registered UAs behind a NAT (RFC 5626 §3.5 in
//! spirit; Kamailio nathelper's `natping`): the pinging shard (shard 0)
//! walks the location table in slices so that every NATed UDP binding
//! gets an OPTIONS every `[registrar] nat_ping_interval_s`, sent to the
//! address it registered from, from the listener it registered on. Any
//! answer (even a 4xx) means the NAT's binding is open. After
//! `nat_ping_misses` unanswered pings in a row the binding is removed
//! (journaled like any change) and counted.
//!
//! The branch names the binding (a hash of AOR and Contact) and the
//! ping's sequence number; an answer that lands on another shard is
//! handed to the pinging shard.

use std::collections::HashMap;
use std::net::SocketAddr;

use super::request::sender;
use super::{Core, Drop, Flow, Outcome, Transmit};
use crate::config::Transport;
use crate::registrar::register::remove_binding;
use crate::registrar::Binding;
use crate::sip::Message;

/// The branch prefix of our keep-alives.
pub(super) const PING: &str = "z9hG4bKsn-";
/// The shard that pings.
const PINGER: usize = 0;

/// The pinging shard's state: where the walk is, and each binding's
/// last ping.
pub(super) struct NatPinger {
    interval_ms: u64,
    misses: u32,
    /// The walk: which partition is next, when this round started, and
    /// the round's number.
    cursor: usize,
    round_start: Option<u64>,
    round: u64,
    seq: u32,
    pending: HashMap<u64, Pending>,
    /// Pings that had no answer by the time the next was due.
    missed: u64,
}

struct Pending {
    aor: Box<[u8]>,
    contact: Box<[u8]>,
    /// A ping is out and has had no answer yet.
    waiting: bool,
    misses: u32,
    /// The last round that saw the binding (those not seen are gone).
    round: u64,
}

impl NatPinger {
    pub(super) fn new(interval_s: u32, misses: u32) -> Option<NatPinger> {
        (interval_s > 0).then(|| NatPinger {
            interval_ms: u64::from(interval_s) * 1000,
            misses,
            cursor: 0,
            round_start: None,
            round: 0,
            seq: 0,
            pending: HashMap::new(),
            missed: 0,
        })
    }
}

/// What one binding needs this round.
enum Due {
    Ping(u64, SocketAddr, Option<SocketAddr>, Box<[u8]>),
    Remove(Box<[u8]>, Box<[u8]>),
}

impl Core {
    /// The pinging shard, on its timer tick: ping the NATed bindings of
    /// the next slice of the location table, and remove those that
    /// stopped answering.
    pub fn poll_nat_pings(&mut self, now: u64, out: &mut Vec<Outcome>) {
        let (Some(reg), Some(mut p)) = (self.registrar.clone(), self.pinger.take()) else {
            return;
        };
        let parts = reg.store.partitions();
        let start = *p.round_start.get_or_insert(now);
        // The slice of partitions due by now, so that one round takes the
        // interval.
        let elapsed = now.saturating_sub(start).min(p.interval_ms);
        let upto = ((parts as u128 * u128::from(elapsed)) / u128::from(p.interval_ms)) as usize;
        let unix = self.unix_now();
        let mut due = Vec::new();
        reg.store.for_each_in(p.cursor..upto, |r| {
            for b in r.bindings.iter().filter(|b| nated(b, unix)) {
                due.push(p.visit(&r.aor, b));
            }
        });
        p.cursor = p.cursor.max(upto);
        if p.cursor >= parts && elapsed >= p.interval_ms {
            // A round is over: forget bindings it did not see.
            let round = p.round;
            p.pending.retain(|_, e| e.round == round);
            p.round += 1;
            p.cursor = 0;
            p.round_start = Some(now);
        }
        for d in due.into_iter().flatten() {
            match d {
                Due::Ping(key, dest, local, contact) => {
                    p.seq = p.seq.wrapping_add(1);
                    if let Some(t) = self.ping_request(key, p.seq, dest, local, &contact) {
                        self.reg_stats.nat_pings += 1;
                        out.push(Outcome::Forwarded(t));
                    }
                }
                Due::Remove(aor, contact) => {
                    if remove_binding(&reg, &aor, &contact, &mut self.journal) {
                        self.reg_stats.nat_removed += 1;
                        tracing::info!(
                            aor = %String::from_utf8_lossy(&aor),
                            contact = %String::from_utf8_lossy(&contact),
                            "NATed binding removed: keep-alives unanswered"
                        );
                    }
                }
            }
        }
        self.reg_stats.nat_ping_misses = p.missed;
        self.pinger = Some(p);
    }

    /// The answer to keep-alive `id` (its branch after our prefix): note
    /// it (on the pinging shard; another shard hands it there).
    pub(super) fn nat_ping_reply(
        &mut self,
        msg: &Message,
        id: &[u8],
        flow: Flow,
    ) -> Option<Outcome> {
        let Some(p) = self.pinger.as_mut() else {
            if self.shard != PINGER && self.shards > 1 {
                let data = msg.buffer().clone();
                return Some(Outcome::ToShard(PINGER, Box::new((data, flow))));
            }
            return Some(Outcome::Dropped(Drop::NatPingReply));
        };
        let key = std::str::from_utf8(id)
            .ok()?
            .split('-')
            .next()
            .and_then(|k| u64::from_str_radix(k, 16).ok())?;
        if let Some(e) = p.pending.get_mut(&key) {
            e.waiting = false;
            e.misses = 0;
        }
        Some(Outcome::Dropped(Drop::NatPingReply))
    }

    /// The keep-alive OPTIONS `seq` to the binding `key`.
    fn ping_request(
        &self,
        key: u64,
        seq: u32,
        dest: SocketAddr,
        local: Option<SocketAddr>,
        contact: &[u8],
    ) -> Option<Transmit> {
        let (me, sent_by, local) =
            sender(&self.me, &self.outbound, Transport::Udp, dest, local, true)?;
        let uri = String::from_utf8_lossy(contact);
        let branch = super::branch::signed(PING, &format!("{key:x}-{seq:x}"));
        let m = super::probe::Options {
            uri: &uri,
            transport: Transport::Udp,
            sent_by,
            branch: &branch,
            host: &me.host,
            tag: key ^ u64::from(seq),
            seq,
        };
        Some(Transmit {
            transport: Transport::Udp,
            local,
            dest,
            conn: None,
            data: m.write(&self.cfg.server.user_agent),
            leg: None,
        })
    }
}

impl NatPinger {
    /// One binding seen this round: ping it, or remove it after too many
    /// pings went unanswered.
    fn visit(&mut self, aor: &[u8], b: &Binding) -> Option<Due> {
        let mut h = super::branch::StableHash::default();
        h.write(aor);
        h.write(&b.contact);
        let key = h.finish();
        let round = self.round;
        let e = match self.pending.entry(key) {
            std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
            // Its REGISTER has just opened the NAT: the first ping is
            // due a round later.
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(Pending {
                    aor: aor.into(),
                    contact: b.contact.clone(),
                    waiting: false,
                    misses: 0,
                    round,
                });
                return None;
            }
        };
        e.round = round;
        if e.waiting {
            e.misses += 1;
            self.missed += 1;
            if e.misses >= self.misses {
                let e = self.pending.remove(&key)?;
                return Some(Due::Remove(e.aor, e.contact));
            }
        }
        e.waiting = true;
        Some(Due::Ping(key, b.source, b.local, b.contact.clone()))
    }
}

/// A binding the pinger keeps alive: live, over UDP, behind a NAT.
fn nated(b: &Binding, now: u64) -> bool {
    b.nat && b.transport == Transport::Udp && b.live(now)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use bytes::Bytes;
    use std::sync::Arc;

    use super::*;
    use crate::config::Config;
    use crate::proxy::Hosts;
    use crate::registrar::Registrar;

    /// A registrar core on 127.0.0.1:5060 pinging every 10 s, removing
    /// after 2 misses; a UA behind a NAT registered (its Via and Contact
    /// name 192.168.1.5; it is seen at 127.0.0.9:40000).
    fn natted_core() -> (Core, Arc<Registrar>) {
        let text = "[[listen]]\ntransport = \"udp\"\naddr = \"127.0.0.1:5060\"\n[registrar]\ndomains = [\"example.com\"]\npartitions = 64\nnat_ping_interval_s = 10\nnat_ping_misses = 2\n";
        let cfg = Arc::new(Config::parse(text, Path::new("t.toml")).unwrap());
        let reg = Arc::new(Registrar::in_memory(cfg.registrar.clone().unwrap()));
        let mut core = Core::new(cfg, Arc::new(Hosts::default()));
        core.set_registrar(reg.clone());
        let register = "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 192.168.1.5:5060;branch=z9hG4bKr1;rport\r\nMax-Forwards: 70\r\nFrom: <sip:bob@example.com>;tag=1\r\nTo: <sip:bob@example.com>\r\nCall-ID: r1\r\nCSeq: 1 REGISTER\r\nContact: <sip:bob@192.168.1.5:5060>\r\nContent-Length: 0\r\n\r\n";
        let mut out = Vec::new();
        core.handle_at(0, Bytes::from(register), flow(), &mut out);
        assert!(matches!(out[0], Outcome::Replied(_, 200)), "{out:?}");
        (core, reg)
    }

    fn flow() -> Flow {
        Flow {
            transport: Transport::Udp,
            local: "127.0.0.1:5060".parse().unwrap(),
            remote: "127.0.0.9:40000".parse().unwrap(),
            conn: None,
        }
    }

    /// Advance the pinger from `from` to `to` ms in 50 ms ticks; the pings
    /// sent.
    fn run(core: &mut Core, from: u64, to: u64) -> Vec<Transmit> {
        let mut out = Vec::new();
        let mut t = from;
        while t <= to {
            core.poll_nat_pings(t, &mut out);
            t += 50;
        }
        out.into_iter()
            .map(|o| match o {
                Outcome::Forwarded(t) => t,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn natted_bindings_are_pinged_and_removed_when_silent() {
        let (mut core, reg) = natted_core();
        // The first round only notes bob (he has just registered); the
        // next pings him where he registered from, from the listener.
        assert!(run(&mut core, 0, 10_000).is_empty());
        let pings = run(&mut core, 10_050, 20_050);
        assert_eq!(pings.len(), 1);
        let p = &pings[0];
        assert_eq!(p.dest, "127.0.0.9:40000".parse().unwrap());
        assert_eq!(p.local, "127.0.0.1:5060".parse().unwrap());
        let ping = Message::parse(
            Bytes::from(p.data.clone()),
            crate::sip::Framing::Datagram,
            &Default::default(),
        )
        .unwrap();
        assert_eq!(
            ping.request_uri_bytes().unwrap(),
            b"sip:bob@192.168.1.5:5060"
        );
        // bob answers (even a 405 keeps the NAT open).
        let mut answer = Vec::new();
        crate::sip::response::build(&ping, 405, &"Method Not Allowed", b"x", &[], &mut answer);
        let mut out = Vec::new();
        core.handle_at(20_070, Bytes::from(answer), flow(), &mut out);
        assert_eq!(out, [Outcome::Dropped(Drop::NatPingReply)]);
        // The next round pings again, no miss; then bob goes silent: two
        // more rounds are two misses, and the binding goes.
        assert_eq!(run(&mut core, 20_100, 30_100).len(), 1);
        assert_eq!(core.reg_stats.nat_ping_misses, 0);
        assert_eq!(run(&mut core, 30_150, 40_150).len(), 1);
        assert_eq!(core.reg_stats.nat_ping_misses, 1);
        assert!(reg.store.get(b"bob@example.com").is_some());
        assert_eq!(run(&mut core, 40_200, 50_200).len(), 0);
        assert_eq!(core.reg_stats.nat_ping_misses, 2);
        assert_eq!(core.reg_stats.nat_removed, 1);
        assert!(reg.store.get(b"bob@example.com").is_none());
        assert!(core.journal_pending(), "the removal is journaled");
        assert_eq!(core.reg_stats.nat_pings, 3);
    }

    #[test]
    fn bindings_not_behind_a_nat_are_not_pinged() {
        let (mut core, reg) = natted_core();
        let register = "REGISTER sip:example.com SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.7:5060;branch=z9hG4bKr2;rport\r\nMax-Forwards: 70\r\nFrom: <sip:carol@example.com>;tag=1\r\nTo: <sip:carol@example.com>\r\nCall-ID: r2\r\nCSeq: 1 REGISTER\r\nContact: <sip:carol@127.0.0.7:5060>\r\nContent-Length: 0\r\n\r\n";
        let mut f = flow();
        f.remote = "127.0.0.7:5060".parse().unwrap();
        let mut out = Vec::new();
        core.handle_at(0, Bytes::from(register), f, &mut out);
        assert!(reg.store.get(b"carol@example.com").is_some());
        let mut pings = run(&mut core, 0, 10_000);
        pings.extend(run(&mut core, 10_050, 20_050));
        assert_eq!(pings.len(), 1, "bob only");
        assert_eq!(pings[0].dest, "127.0.0.9:40000".parse().unwrap());
    }
}
