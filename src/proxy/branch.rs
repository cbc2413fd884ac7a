//! The branch a stateless proxy puts in its Via (RFC 3261 §16.11), in two
//! parts: `z9hG4bKsl<loop>.<tx>`.
//!
//! - `tx` identifies the transaction as received: the top Via's branch (or,
//!   for RFC 2543 peers, To, From, Call-ID, CSeq number and top Via
//!   sent-by). A retransmission, and the CANCEL or non-2xx ACK that shares
//!   the INVITE's top Via branch, get the same branch downstream.
//! - `.c<conn>` follows when the request came in over a stream: the
//!   connection it came in on (`ConnId`), so that the response goes back
//!   on it from whichever shard receives the response. Retransmissions
//!   over a stream come on the same connection, so the branch stays
//!   stable.
//! - Stateful branches (`z9hG4bKsf...`, see [`LegRef`]) carry the same
//!   loop part.
//! - `loop` is a function of what routing depends on and not of any Via:
//!   To and From (with their tags), Call-ID, CSeq number, Request-URI, Route,
//!   Proxy-Require, Proxy-Authorization (§16.6 step 8). A request that comes
//!   back with one of our Vias whose loop part equals the one we compute now
//!   has looped (§16.3 step 4), even if other elements added Vias above
//!   ours — hashing the top Via there, as a literal reading of §16.6 would,
//!   can never match (RFC 5393 §4.2). A spiral changes the Request-URI or
//!   Route, so it is not mistaken for a loop.

use super::ConnId;
use crate::sip::{HeaderName, Message};

/// Our stateless branches start with the magic cookie and this tag.
pub const STATELESS_PREFIX: &str = "z9hG4bKsl";

/// A 64-bit multiply-rotate hash over 8-byte words (the FxHash step),
/// finished with a murmur3 mix: stable across runs and machines (a loop
/// must be seen the same way by every instance), and 8x fewer steps than a
/// byte-wise FNV on the ~150 bytes hashed per request. Not for adversarial
/// collision resistance: a collision only makes two transactions share a
/// downstream branch prefix, and the loop check also needs our sent-by.
#[derive(Clone, Copy)]
pub struct StableHash(u64);

impl Default for StableHash {
    fn default() -> StableHash {
        StableHash(0xcbf2_9ce4_8422_2325)
    }
}

impl StableHash {
    const K: u64 = 0x517c_c1b7_2722_0a95;

    #[inline]
    fn step(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(StableHash::K);
    }

    pub fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.step(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        // The length ends each piece, so ("ab","c") and ("a","bc") differ.
        self.step(u64::from_le_bytes(w) ^ ((bytes.len() as u64) << 56));
    }

    pub fn finish(self) -> u64 {
        let mut h = self.0;
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

/// The loop part of our branches: a hash of what routing depends on
/// (§16.6 step 8), never of a Via.
pub fn loop_hash(msg: &Message) -> u64 {
    // From and To as received (their tags included): proxies pass them on
    // byte-exact, and this spares two name-addr parses per request.
    let mut lp = StableHash::default();
    lp.write(msg.header(HeaderName::To).unwrap_or_default());
    lp.write(msg.header(HeaderName::From).unwrap_or_default());
    lp.write(msg.call_id());
    lp.write(&msg.cseq().map_or(0, |c| c.seq).to_le_bytes());
    lp.write(msg.request_uri_bytes().unwrap_or_default());
    for name in [
        HeaderName::Route,
        HeaderName::ProxyRequire,
        HeaderName::ProxyAuthorization,
    ] {
        for v in msg.header_values(name) {
            lp.write(v);
        }
    }
    lp.finish()
}

/// The branch for forwarding `msg` statelessly, written into `out`.
pub fn stateless_branch(msg: &Message, loop_hash: u64, out: &mut String, conn: Option<ConnId>) {
    let mut tx = StableHash::default();
    match msg.top_via() {
        Ok(v) if v.is_rfc3261_branch() => tx.write(v.branch().unwrap_or_default()),
        other => {
            tx.write(msg.header(HeaderName::To).unwrap_or_default());
            tx.write(msg.header(HeaderName::From).unwrap_or_default());
            tx.write(msg.call_id());
            tx.write(&msg.cseq().map_or(0, |c| c.seq).to_le_bytes());
            if let Ok(v) = other {
                tx.write(v.host);
                tx.write(&v.port.unwrap_or(0).to_le_bytes());
            }
        }
    }
    out.clear();
    out.push_str(STATELESS_PREFIX);
    use std::fmt::Write;
    let _ = write!(out, "{loop_hash:016x}.{:016x}", tx.finish());
    if let Some(c) = conn {
        let _ = write!(out, ".c{:x}", c.0);
    }
}

/// The connection carried by one of our stateless branches, if any.
pub fn conn_of(branch: &[u8]) -> Option<ConnId> {
    let rest = branch.strip_prefix(STATELESS_PREFIX.as_bytes())?;
    // <loop:16>.<tx:16>.c<conn>
    let conn = rest.get(33..)?.strip_prefix(b".c")?;
    if conn.is_empty() || conn.len() > 16 {
        return None;
    }
    let text = std::str::from_utf8(conn).ok()?;
    u64::from_str_radix(text, 16).ok().map(ConnId)
}

/// True if `via_branch` is one of our branches (stateless or stateful)
/// whose loop part is `loop_hash`.
pub fn is_loop(via_branch: &[u8], loop_hash: u64) -> bool {
    let rest = via_branch
        .strip_prefix(STATELESS_PREFIX.as_bytes())
        .or_else(|| via_branch.strip_prefix(STATEFUL_PREFIX.as_bytes()));
    // `<loop:16 hex>.` follows the prefix.
    let Some((hex, b'.')) = rest.and_then(|r| Some((r.get(..16)?, *r.get(16)?))) else {
        return false;
    };
    std::str::from_utf8(hex)
        .ok()
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        == Some(loop_hash)
}

/// Our stateful branches: `z9hG4bKsf<loop:16>.<shard>.<slot>.<gen>.<leg>`
/// (hex). The shard owns the transaction; slot and generation find its
/// context in O(1) and reject a stale one (DESIGN.md: Kamailio's tm does
/// the same with its hash bucket and label); `leg` is the branch of the
/// fork. A CANCEL for a leg carries the same branch as its INVITE
/// (RFC 3261 §9.1).
pub const STATEFUL_PREFIX: &str = "z9hG4bKsf";

/// Where a response to one of our stateful branches belongs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct LegRef {
    pub shard: u16,
    pub slot: u32,
    pub gen: u32,
    pub leg: u16,
}

impl LegRef {
    /// Write our Via branch for this leg into `out`.
    pub fn write_branch(self, loop_hash: u64, out: &mut String) {
        use std::fmt::Write;
        out.clear();
        let _ = write!(
            out,
            "{STATEFUL_PREFIX}{loop_hash:016x}.{:x}.{:x}.{:x}.{:x}",
            self.shard, self.slot, self.gen, self.leg
        );
    }

    /// The leg named by one of our stateful branches.
    pub fn parse(branch: &[u8]) -> Option<LegRef> {
        let rest = branch.strip_prefix(STATEFUL_PREFIX.as_bytes())?;
        let rest = rest.get(16..)?.strip_prefix(b".")?;
        let mut parts = rest.split(|&b| b == b'.');
        fn hex(p: Option<&[u8]>, max_len: usize) -> Option<u64> {
            let p = p?;
            if p.is_empty() || p.len() > max_len {
                return None;
            }
            u64::from_str_radix(std::str::from_utf8(p).ok()?, 16).ok()
        }
        let shard = hex(parts.next(), 4)? as u16;
        let slot = hex(parts.next(), 8)? as u32;
        let gen = hex(parts.next(), 8)? as u32;
        let leg = hex(parts.next(), 4)? as u16;
        if parts.next().is_some() {
            return None;
        }
        Some(LegRef {
            shard,
            slot,
            gen,
            leg,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::{Framing, Limits};
    use bytes::Bytes;

    fn msg(method: &str, ruri: &str, branch: &str) -> Message {
        let s = format!("{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch={branch}\r\nTo: <sip:b@h>\r\nFrom: <sip:a@h>;tag=1\r\nCall-ID: c\r\nCSeq: 1 {method}\r\n\r\n");
        Message::parse(Bytes::from(s), Framing::Datagram, &Limits::default()).unwrap()
    }

    fn branch(m: &Message) -> String {
        let mut s = String::new();
        stateless_branch(m, loop_hash(m), &mut s, None);
        s
    }

    #[test]
    fn stable_for_retransmissions_and_cancel_distinct_for_spirals() {
        let invite = branch(&msg("INVITE", "sip:b@h", "z9hG4bKabc"));
        assert!(
            invite.starts_with(STATELESS_PREFIX) && invite.len() == STATELESS_PREFIX.len() + 33
        );
        assert_eq!(invite, branch(&msg("INVITE", "sip:b@h", "z9hG4bKabc")));
        assert_eq!(invite, branch(&msg("CANCEL", "sip:b@h", "z9hG4bKabc")));
        assert_ne!(invite, branch(&msg("INVITE", "sip:b@other", "z9hG4bKabc")));
        let other_tx = branch(&msg("INVITE", "sip:b@h", "z9hG4bKabd"));
        assert_ne!(invite, other_tx);
        let lp = loop_hash(&msg("INVITE", "sip:b@h", "z9hG4bKabc"));
        assert!(
            is_loop(other_tx.as_bytes(), lp),
            "same routing state: a loop whatever the Vias"
        );
        assert!(
            !is_loop(
                branch(&msg("INVITE", "sip:b@other", "z9hG4bKabc")).as_bytes(),
                lp
            ),
            "a spiral"
        );
        // RFC 2543 peers (no cookie): keyed on the transaction fields.
        let old = branch(&msg("INVITE", "sip:b@h", "1"));
        assert_eq!(
            old,
            branch(&msg("INVITE", "sip:b@h", "2")),
            "the old branch is not an identifier"
        );
    }

    #[test]
    fn a_stream_connection_rides_in_the_branch() {
        let m = msg("INVITE", "sip:b@h", "z9hG4bKabc");
        let c = ConnId::new(3, 0x2a);
        let mut s = String::new();
        stateless_branch(&m, loop_hash(&m), &mut s, Some(c));
        assert_eq!(conn_of(s.as_bytes()), Some(c));
        assert_eq!(c.shard(), 3);
        assert!(
            is_loop(s.as_bytes(), loop_hash(&m)),
            "the loop part does not depend on the connection"
        );
        assert_eq!(conn_of(branch(&m).as_bytes()), None);
        assert_eq!(conn_of(b"z9hG4bKother.c12"), None);
        let mut long = branch(&m);
        long.push_str(".c11112222333344445");
        assert_eq!(conn_of(long.as_bytes()), None, "over 64 bits");
    }

    #[test]
    fn a_stateful_branch_names_its_leg_and_carries_the_loop_part() {
        let m = msg("INVITE", "sip:b@h", "z9hG4bKabc");
        let r = LegRef {
            shard: 1,
            slot: 0xabcdef,
            gen: 7,
            leg: 2,
        };
        let mut s = String::new();
        r.write_branch(loop_hash(&m), &mut s);
        assert!(s.starts_with(STATEFUL_PREFIX));
        assert_eq!(LegRef::parse(s.as_bytes()), Some(r));
        assert!(is_loop(s.as_bytes(), loop_hash(&m)));
        assert!(!is_loop(s.as_bytes(), loop_hash(&m) ^ 1));
        assert_eq!(LegRef::parse(branch(&m).as_bytes()), None);
        assert_eq!(LegRef::parse(format!("{s}.1").as_bytes()), None);
        assert_eq!(LegRef::parse(b"z9hG4bKsf0123456789abcdef.1.2.3"), None);
        assert_eq!(
            LegRef::parse(b"z9hG4bKsf0123456789abcdef.1.2.3.4"),
            Some(LegRef {
                shard: 1,
                slot: 2,
                gen: 3,
                leg: 4
            })
        );
        assert_eq!(
            LegRef::parse(b"z9hG4bKsf0123456789abcdef.1.2.123456789.4"),
            None
        );
    }

    #[test]
    fn the_hash_separates_pieces_and_is_pinned() {
        let h = |parts: &[&[u8]]| {
            let mut f = StableHash::default();
            for p in parts {
                f.write(p);
            }
            f.finish()
        };
        assert_ne!(h(&[b"ab", b"c"]), h(&[b"a", b"bc"]));
        assert_ne!(h(&[b"", b"x"]), h(&[b"x", b""]));
        assert_ne!(h(&[b"12345678"]), h(&[b"12345678", b""]));
        // Pinned: instances of different versions must compute the same
        // branch for loop detection to work across them.
        assert_eq!(h(&[b"z9hG4bKabc", b"sip:b@h"]), 0x18a6_2b18_f5c5_e551);
    }
}
