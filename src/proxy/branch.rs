//! The branch a stateless proxy puts in its Via (RFC 3261 §16.11), in two
//! parts: `z9hG4bKsl<loop>.<tx>`.
//!
//! - `tx` identifies the transaction as received and authenticates it: a
//!   keyed hash ([`BranchKey`], a per-boot secret) over the top Via's branch
//!   (or, for RFC 2543 peers, From, Call-ID, CSeq number and top Via
//!   sent-by), the Call-ID, the CSeq number, the loop part and the
//!   connection. A retransmission, and the CANCEL or non-2xx ACK that shares
//!   the INVITE's top Via branch, get the same branch downstream; a
//!   response must carry that request's Via below ours, its Call-ID and its
//!   CSeq number for the hash to match ([`stateless_response_ok`]), so a
//!   sender that did not see the request cannot make one that is relayed
//!   (§17.1.3 relies on branches being unguessable).
//! - `.c<conn>` follows when the request came in over a stream: the
//!   connection it came in on (`ConnId`), so that the response goes back
//!   on it from whichever shard receives the response. Retransmissions
//!   over a stream come on the same connection, so the branch stays
//!   stable.
//! - Stateful branches (`z9hG4bKsf...`, see [`LegRef`]) carry the same
//!   loop part and a keyed tag over the leg, Call-ID and CSeq number.
//! - `loop` is a function of what routing depends on and not of any Via:
//!   From (with its tag), Call-ID, CSeq number, Request-URI, Route,
//!   Proxy-Require (§16.6 step 8 without To and Proxy-Authorization, which
//!   a non-2xx ACK or a CANCEL need not share with its INVITE). A request
//!   that comes back with one of our Vias whose loop part equals the one we
//!   compute now has looped (§16.3 step 4), even if other elements added
//!   Vias above ours — hashing the top Via there, as a literal reading of
//!   §16.6 would, can never match (RFC 5393 §4.2). A spiral changes the
//!   Request-URI or Route, so it is not mistaken for a loop. It is not
//!   keyed: instances must agree on it.
//!
//! The key is made at start from the OS's random source: a response to a
//! request forwarded by an earlier run of Siphon does not match and is
//! dropped (`forged_response`); the UAC's retransmission goes through the
//! new run.

use std::hash::Hasher;
use std::sync::OnceLock;

use siphasher::sip::SipHasher24;

use super::ConnId;
use crate::sip::{HeaderName, Message, Via};

/// The per-boot secret of every branch Siphon creates: SipHash-2-4 keys,
/// the same for every shard of the process.
pub struct BranchKey {
    k0: u64,
    k1: u64,
}

impl BranchKey {
    /// The process's key, made on first use from the OS's random source.
    pub fn get() -> &'static BranchKey {
        static KEY: OnceLock<BranchKey> = OnceLock::new();
        KEY.get_or_init(|| {
            let mut k = [0u8; 16];
            crate::secret::os_random(&mut k);
            let (a, b) = k.split_at(8);
            BranchKey {
                k0: u64::from_le_bytes(a.try_into().unwrap_or_default()),
                k1: u64::from_le_bytes(b.try_into().unwrap_or_default()),
            }
        })
    }

    /// A keyed hash of `parts` (each length-prefixed, so the split between
    /// pieces counts).
    fn tag(&self, parts: &[&[u8]]) -> u64 {
        let mut h = SipHasher24::new_with_keys(self.k0, self.k1);
        for p in parts {
            h.write(&(p.len() as u32).to_le_bytes());
            h.write(p);
        }
        h.finish()
    }
}

/// The branch of a request Siphon makes itself (an OPTIONS probe, a NAT
/// keep-alive): `prefix`, `id`, then `-` and a keyed tag over both, so
/// that a forged answer cannot mark a target up or a binding alive.
pub fn signed(prefix: &str, id: &str) -> String {
    let tag = BranchKey::get().tag(&[b"own", prefix.as_bytes(), id.as_bytes()]);
    format!("{prefix}{id}-{tag:016x}")
}

/// The `id` of a [`signed`] branch whose text after `prefix` is `rest`, if
/// its tag matches.
pub fn signed_id<'a>(prefix: &str, rest: &'a [u8]) -> Option<&'a [u8]> {
    let cut = rest.len().checked_sub(17)?;
    let (id, tag) = rest.split_at(cut);
    let tag = hex64(tag.strip_prefix(b"-").filter(|t| t.len() == 16)?)?;
    (BranchKey::get().tag(&[b"own", prefix.as_bytes(), id]) == tag).then_some(id)
}

/// The CSeq number of `msg` as bytes for a tag (0 when absent).
fn cseq_bytes(msg: &Message) -> [u8; 4] {
    msg.cseq().map_or(0, |c| c.seq).to_le_bytes()
}

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
    // From as received (its tag included): proxies pass it on byte-exact,
    // and this spares a name-addr parse per request. Not To, nor
    // Proxy-Authorization: an INVITE's non-2xx ACK carries the answer's To
    // tag, and neither it nor the CANCEL need carry the INVITE's
    // credentials, yet both must get the INVITE's branch (§17.2.3, §9.2);
    // no proxy changes To, and a new request with credentials has a new
    // CSeq.
    let mut lp = StableHash::default();
    lp.write(msg.header(HeaderName::From).unwrap_or_default());
    lp.write(msg.call_id());
    lp.write(&msg.cseq().map_or(0, |c| c.seq).to_le_bytes());
    lp.write(msg.request_uri_bytes().unwrap_or_default());
    for name in [HeaderName::Route, HeaderName::ProxyRequire] {
        for v in msg.header_values(name) {
            lp.write(v);
        }
    }
    lp.finish()
}

/// The branch for forwarding `msg` statelessly, written into `out`.
pub fn stateless_branch(msg: &Message, loop_hash: u64, out: &mut String, conn: Option<ConnId>) {
    let tx = stateless_tag(msg, msg.top_via().ok(), loop_hash, conn);
    out.clear();
    out.push_str(STATELESS_PREFIX);
    use std::fmt::Write;
    let _ = write!(out, "{loop_hash:016x}.{tx:016x}");
    if let Some(c) = conn {
        let _ = write!(out, ".c{:x}", c.0);
    }
}

/// The `tx` part of a stateless branch: `via` is the request's top Via as
/// received (for a response, the Via below ours). Everything hashed is
/// the same in the request and in its responses: the UAS adds a To tag,
/// so To is left out.
fn stateless_tag(msg: &Message, via: Option<Via<'_>>, loop_hash: u64, conn: Option<ConnId>) -> u64 {
    let key = BranchKey::get();
    let cseq = cseq_bytes(msg);
    let lp = loop_hash.to_le_bytes();
    let conn = conn.map_or(0, |c| c.0).to_le_bytes();
    match via {
        Some(v) if v.is_rfc3261_branch() => key.tag(&[
            b"3261",
            v.branch().unwrap_or_default(),
            msg.call_id(),
            &cseq,
            &lp,
            &conn,
        ]),
        other => {
            let (host, port) = other.map_or((&b""[..], 0), |v| (v.host, v.port.unwrap_or(0)));
            key.tag(&[
                b"2543",
                msg.header(HeaderName::From).unwrap_or_default(),
                host,
                &port.to_le_bytes(),
                msg.call_id(),
                &cseq,
                &lp,
                &conn,
            ])
        }
    }
}

/// True if `branch` is one of our stateless branches and `msg`, a response
/// whose Via below ours is `next`, answers the request it was made for.
pub fn stateless_response_ok(branch: &[u8], next: Via<'_>, msg: &Message) -> bool {
    let Some(rest) = branch.strip_prefix(STATELESS_PREFIX.as_bytes()) else {
        return false;
    };
    // <loop:16>.<tx:16>[.c<conn>]
    let (Some(lp), Some(b'.'), Some(tx)) = (rest.get(..16), rest.get(16), rest.get(17..33)) else {
        return false;
    };
    let (Some(lp), Some(tx)) = (hex64(lp), hex64(tx)) else {
        return false;
    };
    let conn = match rest.get(33..) {
        None | Some(b"") => None,
        Some(_) => match conn_of(branch) {
            Some(c) => Some(c),
            None => return false,
        },
    };
    stateless_tag(msg, Some(next), lp, conn) == tx
}

/// Up to 16 hex digits as a number.
fn hex64(text: &[u8]) -> Option<u64> {
    if text.is_empty() || text.len() > 16 {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(text).ok()?, 16).ok()
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

/// Our stateful branches:
/// `z9hG4bKsf<loop:16>.<shard>.<slot>.<gen>.<leg>.<tag:16>` (hex). The
/// shard owns the transaction; slot and generation find its context in
/// O(1) and reject a stale one (DESIGN.md: Kamailio's tm does the same with
/// its hash bucket and label); `leg` is the branch of the fork. `tag` is a
/// keyed hash ([`BranchKey`]) over all of these and the request's Call-ID
/// and CSeq number: the other fields are guessable, the tag is not, so a
/// response from a sender that did not see the request finds no
/// transaction (RFC 3261 §17.1.3). A CANCEL for a leg carries the same
/// branch as its INVITE (RFC 3261 §9.1), and the same Call-ID and CSeq
/// number.
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
    /// Write our Via branch for this leg of `msg` (the request it
    /// forwards) into `out`.
    pub fn write_branch(self, loop_hash: u64, msg: &Message, out: &mut String) {
        use std::fmt::Write;
        out.clear();
        let tag = self.tag(loop_hash, msg);
        let _ = write!(
            out,
            "{STATEFUL_PREFIX}{loop_hash:016x}.{:x}.{:x}.{:x}.{:x}.{tag:016x}",
            self.shard, self.slot, self.gen, self.leg
        );
    }

    fn tag(self, loop_hash: u64, msg: &Message) -> u64 {
        BranchKey::get().tag(&[
            b"leg",
            &loop_hash.to_le_bytes(),
            &self.shard.to_le_bytes(),
            &self.slot.to_le_bytes(),
            &self.gen.to_le_bytes(),
            &self.leg.to_le_bytes(),
            msg.call_id(),
            &cseq_bytes(msg),
        ])
    }

    /// The leg named by one of our stateful branches, if `msg` (a response
    /// or a request on the leg: same Call-ID and CSeq number) belongs to
    /// it. `Err(())` for one of our branches whose tag does not match
    /// (forged, or made by an earlier run).
    #[allow(clippy::result_unit_err)]
    pub fn parse(branch: &[u8], msg: &Message) -> Result<Option<LegRef>, ()> {
        let Some((leg, loop_hash, tag)) = LegRef::fields(branch) else {
            return Ok(None);
        };
        if leg.tag(loop_hash, msg) == tag {
            Ok(Some(leg))
        } else {
            Err(())
        }
    }

    /// The leg and loop part of one of our stateful branches, unchecked
    /// (tests make a branch for another leg of the same request).
    #[cfg(test)]
    pub(crate) fn fields_of(branch: &[u8]) -> Option<(LegRef, u64)> {
        LegRef::fields(branch).map(|(l, h, _)| (l, h))
    }

    /// The fields of one of our stateful branches: leg, loop part, tag.
    fn fields(branch: &[u8]) -> Option<(LegRef, u64, u64)> {
        let rest = branch.strip_prefix(STATEFUL_PREFIX.as_bytes())?;
        let loop_hash = hex64(rest.get(..16)?)?;
        let rest = rest.get(16..)?.strip_prefix(b".")?;
        let mut parts = rest.split(|&b| b == b'.');
        fn hex(p: Option<&[u8]>, max_len: usize) -> Option<u64> {
            let p = p?;
            if p.len() > max_len {
                return None;
            }
            hex64(p)
        }
        let shard = hex(parts.next(), 4)? as u16;
        let slot = hex(parts.next(), 8)? as u32;
        let gen = hex(parts.next(), 8)? as u32;
        let leg = hex(parts.next(), 4)? as u16;
        let tag = parts.next().filter(|t| t.len() == 16).and_then(hex64)?;
        if parts.next().is_some() {
            return None;
        }
        let leg = LegRef {
            shard,
            slot,
            gen,
            leg,
        };
        Some((leg, loop_hash, tag))
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

    /// A response to `req` (status 200, To tagged) with `top` as our Via
    /// above the request's.
    fn answer(req: &str, top_branch: &str) -> Message {
        let mut lines = req.split("\r\n");
        let _request_line = lines.next();
        let mut s = format!("SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 10.0.0.1;branch={top_branch}\r\n");
        for l in lines.filter(|l| !l.is_empty()) {
            if let Some(to) = l.strip_prefix("To: ") {
                s.push_str(&format!("To: {to};tag=uas\r\n"));
            } else {
                s.push_str(l);
                s.push_str("\r\n");
            }
        }
        s.push_str("\r\n");
        Message::parse(Bytes::from(s), Framing::Datagram, &Limits::default()).unwrap()
    }

    fn text(method: &str, branch: &str) -> String {
        format!("{method} sip:b@h SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.1;branch={branch}\r\nTo: <sip:b@h>\r\nFrom: <sip:a@h>;tag=1\r\nCall-ID: c\r\nCSeq: 1 {method}\r\n\r\n")
    }

    #[test]
    fn a_stateless_branch_authenticates_its_responses() {
        for (via_branch, conn) in [
            ("z9hG4bKabc", None),
            ("z9hG4bKabc", Some(ConnId::new(1, 7))),
            ("old2543", None),
        ] {
            let req = text("INVITE", via_branch);
            let m = Message::parse(
                Bytes::from(req.clone()),
                Framing::Datagram,
                &Limits::default(),
            )
            .unwrap();
            let mut ours = String::new();
            stateless_branch(&m, loop_hash(&m), &mut ours, conn);
            let resp = answer(&req, &ours);
            let next = resp.vias().nth(1).unwrap().unwrap();
            assert!(stateless_response_ok(ours.as_bytes(), next, &resp), "{req}");
            // Every field an off-path sender would have to guess matters.
            for (from, to) in [
                ("Call-ID: c", "Call-ID: d"),
                ("CSeq: 1", "CSeq: 2"),
                ("branch=z9hG4bKabc", "branch=z9hG4bKabd"),
                ("192.0.2.1", "192.0.2.2"),
            ] {
                let other = answer(&req.replace(from, to), &ours);
                let next = other.vias().nth(1).unwrap().unwrap();
                let same = req == req.replace(from, to)
                    || (via_branch.starts_with("z9hG4bK") && from == "192.0.2.1");
                assert_eq!(
                    stateless_response_ok(ours.as_bytes(), next, &other),
                    same,
                    "{from} -> {to}"
                );
            }
            // A tag guessed or changed in one digit, another connection.
            let mut forged = ours.clone().into_bytes();
            let i = STATELESS_PREFIX.len() + 20;
            forged[i] = if forged[i] == b'0' { b'1' } else { b'0' };
            assert!(!stateless_response_ok(&forged, next, &resp));
            let mut moved = ours.clone();
            if conn.is_some() {
                moved.push('1');
                assert!(
                    !stateless_response_ok(moved.as_bytes(), next, &resp),
                    "another connection"
                );
            }
        }
    }

    #[test]
    fn a_stateful_branch_names_its_leg_and_carries_the_loop_part() {
        let req = text("INVITE", "z9hG4bKabc");
        let m = msg("INVITE", "sip:b@h", "z9hG4bKabc");
        let r = LegRef {
            shard: 1,
            slot: 0xabcdef,
            gen: 7,
            leg: 2,
        };
        let mut s = String::new();
        r.write_branch(loop_hash(&m), &m, &mut s);
        assert!(s.starts_with(STATEFUL_PREFIX));
        assert_eq!(LegRef::parse(s.as_bytes(), &m), Ok(Some(r)));
        let resp = answer(&req, &s);
        assert_eq!(
            LegRef::parse(s.as_bytes(), &resp),
            Ok(Some(r)),
            "its response"
        );
        let cancel = answer(&text("CANCEL", "z9hG4bKabc"), &s);
        assert_eq!(
            LegRef::parse(s.as_bytes(), &cancel),
            Ok(Some(r)),
            "its CANCEL's"
        );
        for (from, to) in [("Call-ID: c", "Call-ID: d"), ("CSeq: 1", "CSeq: 2")] {
            let other = answer(&req.replace(from, to), &s);
            assert_eq!(LegRef::parse(s.as_bytes(), &other), Err(()), "{to}");
        }
        // Shard, slot, generation and leg are guessable; the tag is not.
        let guessed = format!("{}0000000000000000", &s[..s.len() - 16]);
        assert_eq!(LegRef::parse(guessed.as_bytes(), &resp), Err(()));
        let other_slot = s.replace(".abcdef.", ".abcdee.");
        assert_eq!(LegRef::parse(other_slot.as_bytes(), &resp), Err(()));
        assert!(is_loop(s.as_bytes(), loop_hash(&m)));
        assert!(!is_loop(s.as_bytes(), loop_hash(&m) ^ 1));
        assert_eq!(LegRef::parse(branch(&m).as_bytes(), &m), Ok(None));
        assert_eq!(LegRef::parse(format!("{s}.1").as_bytes(), &m), Ok(None));
        assert_eq!(
            LegRef::parse(b"z9hG4bKsf0123456789abcdef.1.2.3.4", &m),
            Ok(None),
            "no tag"
        );
        assert_eq!(
            LegRef::fields(b"z9hG4bKsf0123456789abcdef.1.2.3.4.00000000000000ff"),
            Some((
                LegRef {
                    shard: 1,
                    slot: 2,
                    gen: 3,
                    leg: 4
                },
                0x0123456789abcdef,
                0xff
            ))
        );
        assert_eq!(
            LegRef::fields(b"z9hG4bKsf0123456789abcdef.1.2.123456789.4.00000000000000ff"),
            None
        );
    }

    #[test]
    fn own_requests_carry_a_tag_their_answers_must_return() {
        let b = signed("z9hG4bKsp-", "1-2-3");
        let rest = &b.as_bytes()["z9hG4bKsp-".len()..];
        assert_eq!(signed_id("z9hG4bKsp-", rest), Some(&b"1-2-3"[..]));
        assert_eq!(signed_id("z9hG4bKsn-", rest), None, "another kind");
        let mut other = b.replace("1-2-3", "1-2-4");
        assert_eq!(signed_id("z9hG4bKsp-", &other.as_bytes()[10..]), None);
        other = format!("{}0000000000000000", &b[..b.len() - 16]);
        assert_eq!(signed_id("z9hG4bKsp-", &other.as_bytes()[10..]), None);
        assert_eq!(signed_id("z9hG4bKsp-", b"1-2-3"), None, "no tag");
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
