//! The branch a stateless proxy puts in its Via (RFC 3261 §16.11), in two
//! parts: `z9hG4bKsl<loop>.<tx>`.
//!
//! - `tx` identifies the transaction as received: the top Via's branch (or,
//!   for RFC 2543 peers, To tag, From tag, Call-ID, CSeq number and top Via
//!   sent-by). A retransmission, and the CANCEL or non-2xx ACK that shares
//!   the INVITE's top Via branch, get the same branch downstream.
//! - `loop` is a function of what routing depends on and not of any Via:
//!   To tag, From tag, Call-ID, CSeq number, Request-URI, Route,
//!   Proxy-Require, Proxy-Authorization (§16.6 step 8). A request that comes
//!   back with one of our Vias whose loop part equals the one we compute now
//!   has looped (§16.3 step 4), even if other elements added Vias above
//!   ours — hashing the top Via there, as a literal reading of §16.6 would,
//!   can never match (RFC 5393 §4.2). A spiral changes the Request-URI or
//!   Route, so it is not mistaken for a loop.

use crate::sip::{HeaderName, Message};

/// Our stateless branches start with the magic cookie and this tag.
pub const STATELESS_PREFIX: &str = "z9hG4bKsl";

/// 64-bit FNV-1a: stable across runs and machines (a loop must be seen by
/// every instance the same way), cheap on the short inputs hashed here.
#[derive(Clone, Copy)]
pub struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    pub fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        // A separator so that ("ab","c") and ("a","bc") differ.
        self.0 = (self.0 ^ 0xff).wrapping_mul(0x0000_0100_0000_01b3);
    }

    pub fn finish(self) -> u64 {
        self.0
    }
}

/// The branch for forwarding `msg` statelessly, written into `out`;
/// returns the length of its `z9hG4bKsl<loop>` prefix (what
/// [`is_loop`] compares).
pub fn stateless_branch(msg: &Message, out: &mut String) -> usize {
    let mut lp = Fnv::default();
    lp.write(msg.to().ok().and_then(|t| t.tag()).unwrap_or_default());
    lp.write(msg.from().ok().and_then(|f| f.tag()).unwrap_or_default());
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
    let mut tx = Fnv::default();
    match msg.top_via() {
        Ok(v) if v.is_rfc3261_branch() => tx.write(v.branch().unwrap_or_default()),
        other => {
            tx.write(msg.to().ok().and_then(|t| t.tag()).unwrap_or_default());
            tx.write(msg.from().ok().and_then(|f| f.tag()).unwrap_or_default());
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
    let _ = write!(out, "{:016x}", lp.finish());
    let loop_len = out.len();
    let _ = write!(out, ".{:016x}", tx.finish());
    loop_len
}

/// True if `via_branch` carries the same loop part as `branch` (whose
/// prefix of `loop_len` bytes it is).
pub fn is_loop(via_branch: &[u8], branch: &str, loop_len: usize) -> bool {
    via_branch.len() > loop_len && via_branch.starts_with(&branch.as_bytes()[..loop_len])
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
        let n = stateless_branch(m, &mut s);
        assert_eq!(n, STATELESS_PREFIX.len() + 16);
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
        let n = STATELESS_PREFIX.len() + 16;
        assert!(
            is_loop(other_tx.as_bytes(), &invite, n),
            "same routing state: a loop whatever the Vias"
        );
        assert!(
            !is_loop(
                branch(&msg("INVITE", "sip:b@other", "z9hG4bKabc")).as_bytes(),
                &invite,
                n
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
}
