//! OPTIONS probing of destination-set targets (the health checks of the
//! routing table). One shard sends the probes ([`Core::poll_probes`], on
//! its timer tick); the answer may arrive on any shard, which hands it to
//! the target's shared health state ([`Core::probe_reply`]). A probe is a
//! bare OPTIONS outside any transaction: its branch names the set, the
//! target and the probe's sequence number, and a probe with no answer by
//! the timeout counts as a failure (a locally generated 408).

use std::fmt::Write as _;

use super::request::{sender, via_transport};
use super::{Core, Drop, Flow, Outcome, Transmit};
use crate::routing::SetTarget;
use crate::sip::Message;

/// The branch prefix of our probes (RFC 3261 magic cookie first).
const PROBE: &str = "z9hG4bKsp-";

impl Core {
    /// The probing shard: send the probes that are due and count those
    /// that went unanswered. Cheap when nothing is due (a few atomic
    /// loads per target).
    pub fn poll_probes(&mut self, now: u64, out: &mut Vec<Outcome>) {
        if !self.prober {
            return;
        }
        self.refresh_routing();
        let routing = self.cur.clone();
        for set in &routing.sets {
            for t in &set.targets {
                t.note(&set.cfg.name, t.health.handle_timeout(now));
                let Some(seq) = t.health.probe_due(now) else {
                    continue;
                };
                // Unresolvable or no listener for it: it goes unanswered,
                // and the timeout counts it.
                if let Some(tx) = self.probe_request(set.id, t, seq) {
                    out.push(Outcome::Forwarded(tx));
                }
            }
        }
    }

    /// If `msg` answers one of our own OPTIONS outside any transaction (a
    /// health probe, a NAT keep-alive): take it, and say so. The top Via
    /// is parsed once for both.
    pub(super) fn own_options_reply(&mut self, msg: &Message, flow: Flow) -> Option<Outcome> {
        let via = msg.top_via().ok()?;
        let branch = via.branch()?;
        let probe = branch.strip_prefix(PROBE.as_bytes());
        let ping = branch.strip_prefix(super::natping::PING.as_bytes());
        if (probe.is_none() && ping.is_none()) || !self.me.is_me(via.host, via.port) {
            return None;
        }
        // Only an answer to a request we sent: the tag must match.
        match (probe, ping) {
            (Some(rest), _) => match super::branch::signed_id(PROBE, rest) {
                Some(id) => self.probe_reply(msg, id),
                None => Some(self.forged()),
            },
            (_, Some(rest)) => match super::branch::signed_id(super::natping::PING, rest) {
                Some(id) => self.nat_ping_reply(msg, id, flow),
                None => Some(self.forged()),
            },
            _ => None,
        }
    }

    /// The answer to probe `id` (its branch after our prefix): give it to
    /// the target's health.
    fn probe_reply(&self, msg: &Message, id: &[u8]) -> Option<Outcome> {
        let code = msg.status()?;
        let mut parts = std::str::from_utf8(id)
            .ok()?
            .split('-')
            .map(|p| u64::from_str_radix(p, 16).ok());
        let (set_id, target_id, seq) = (parts.next()??, parts.next()??, parts.next()??);
        let set = self.cur.sets.iter().find(|s| s.id == set_id);
        // A reply for a target no longer configured (a reload removed it).
        let Some(set) = set else {
            return Some(Outcome::Dropped(Drop::ProbeReply));
        };
        if let Some(t) = set.targets.iter().find(|t| t.id == target_id) {
            t.stats.response(code);
            let seq = u32::try_from(seq).ok()?;
            t.note(&set.cfg.name, t.health.probe_reply(seq, code, self.now_ms));
        }
        Some(Outcome::Dropped(Drop::ProbeReply))
    }

    /// The OPTIONS probe `seq` for target `t`.
    fn probe_request(&self, set_id: u64, t: &SetTarget, seq: u32) -> Option<Transmit> {
        let ip = self.resolve(&t.cfg.host, true)?;
        let dest = std::net::SocketAddr::new(ip, t.cfg.port);
        let transport = t.cfg.transport;
        // From where requests to it leave (so the answer comes back here).
        let (me, sent_by, local) = sender(
            &self.me,
            &self.outbound,
            transport,
            dest,
            t.cfg.listener,
            false,
        )?;
        let branch = super::branch::signed(PROBE, &format!("{set_id:x}-{:x}-{seq:x}", t.id));
        let m = Options {
            uri: &t.cfg.uri,
            transport,
            sent_by,
            branch: &branch,
            host: &me.host,
            tag: t.id ^ u64::from(seq),
            seq,
        };
        Some(Transmit {
            transport,
            local,
            dest,
            conn: None,
            data: m.write(&self.cfg.server.user_agent),
            leg: None,
        })
    }
}

/// An OPTIONS of our own outside any transaction (a health probe, a NAT
/// keep-alive): its branch says what it is for.
pub(super) struct Options<'a> {
    pub uri: &'a str,
    pub transport: crate::config::Transport,
    pub sent_by: &'a str,
    pub branch: &'a str,
    /// Our host, for From and Call-ID.
    pub host: &'a str,
    pub tag: u64,
    pub seq: u32,
}

impl Options<'_> {
    pub(super) fn write(&self, user_agent: &str) -> Vec<u8> {
        let mut m = String::with_capacity(512);
        let _ = write!(
            m,
            "OPTIONS {uri} SIP/2.0\r\n\
             Via: SIP/2.0/{via} {sent_by};branch={branch};rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:siphon@{host}>;tag={tag:x}\r\n\
             To: <{uri}>\r\n\
             Call-ID: {branch}@{host}\r\n\
             CSeq: {seq} OPTIONS\r\n\
             User-Agent: {user_agent}\r\n\
             Content-Length: 0\r\n\r\n",
            uri = self.uri,
            via = via_transport(self.transport),
            sent_by = self.sent_by,
            branch = self.branch,
            host = self.host,
            tag = self.tag,
            seq = self.seq,
        );
        m.into_bytes()
    }
}
