//! The UAS: answers every INVITE with 180 and 200 (with SDP), every BYE
//! with 200, absorbs ACK. It keeps no call state and retransmits nothing;
//! a retransmitted INVITE or BYE is answered again with the same To tag (a
//! hash of the Call-ID) and counted as a retransmission, not a new call,
//! through two fixed direct-mapped tables of Call-ID hashes.
//!
//! It runs in the generator's loop (`uac`), which drains its socket every
//! tick. Answers go back to where the request came from (the proxy's
//! listener, which is also its Via sent-by here).

use std::net::{SocketAddr, UdpSocket};

use bytes::Bytes;
use siphon::sip::{response, Framing, HeaderName, Limits, Message, Method};

use crate::msgs::{parse_call_id, sdp};
use crate::net::{bind, SendQueue, NO_TAG};

/// Record-Route values copied into a response.
const MAX_RR: usize = 8;
const CL0: &[u8] = b"Content-Length: 0\r\n\r\n";

/// What the UAS saw.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct UasStats {
    /// INVITEs of calls not seen before.
    pub invites: u64,
    /// INVITEs seen before (retransmissions), answered again.
    pub invite_retrans: u64,
    pub acks: u64,
    pub byes: u64,
    pub bye_retrans: u64,
    /// Responses, unparsable datagrams, other methods.
    pub unexpected: u64,
    pub send_errors: u64,
}

/// A new INVITE of one of this run's calls: its number, so the loop can
/// note when it arrived (`Got::ts`) and, through the 200's tag, when the
/// 200 left.
pub type NewInvite = u64;

pub struct Uas {
    pub sock: UdpSocket,
    contact: Vec<u8>,
    sdp: Vec<u8>,
    limits: Limits,
    /// The run whose Call-IDs carry call numbers (see `msgs`).
    run: u32,
    /// Call-ID hashes of INVITEs and BYEs seen, direct-mapped.
    invites: Vec<u64>,
    byes: Vec<u64>,
    scratch: Vec<u8>,
    pub queue: SendQueue,
    pub stats: UasStats,
}

impl Uas {
    /// Listen on `addr`; `table` slots (rounded up to a power of two)
    /// remember recent calls for telling retransmissions apart.
    pub fn bind(addr: SocketAddr, table: usize, run: u32) -> std::io::Result<Uas> {
        let sock = bind(addr, true)?;
        let local = sock.local_addr()?;
        let size = table.clamp(1024, 1 << 24).next_power_of_two();
        Ok(Uas {
            sock,
            contact: format!("<sip:uas@{local}>").into_bytes(),
            sdp: sdp(&local.ip().to_string()),
            limits: Limits::default(),
            run,
            invites: vec![0; size],
            byes: vec![0; size],
            scratch: Vec::with_capacity(2048),
            queue: SendQueue::new(),
            stats: UasStats::default(),
        })
    }

    /// One datagram from `from`: count it and queue the answers. The 200
    /// to an INVITE of this run is tagged with the call number; a new such
    /// INVITE returns it.
    pub fn handle(&mut self, data: &[u8], from: SocketAddr) -> Option<NewInvite> {
        let req = match Message::parse(
            Bytes::copy_from_slice(data),
            Framing::Datagram,
            &self.limits,
        ) {
            Ok(m) if m.is_request() => m,
            _ => {
                self.stats.unexpected += 1;
                return None;
            }
        };
        let h = fnv1a(req.call_id()) | 1;
        let seen = |table: &mut Vec<u64>| {
            let i = (h as usize) & (table.len() - 1);
            std::mem::replace(&mut table[i], h) == h
        };
        match req.method() {
            Some(Method::Invite) => {
                let new = !seen(&mut self.invites);
                if new {
                    self.stats.invites += 1;
                } else {
                    self.stats.invite_retrans += 1;
                }
                let n = parse_call_id(req.call_id(), self.run);
                self.answer(&req, h, 180, "Ringing", false, from, NO_TAG);
                self.answer(&req, h, 200, "OK", true, from, n.unwrap_or(NO_TAG));
                n.filter(|_| new)
            }
            Some(Method::Ack) => {
                self.stats.acks += 1;
                None
            }
            Some(Method::Bye) => {
                if seen(&mut self.byes) {
                    self.stats.bye_retrans += 1;
                } else {
                    self.stats.byes += 1;
                }
                self.answer(&req, h, 200, "OK", false, from, NO_TAG);
                None
            }
            _ => {
                self.stats.unexpected += 1;
                self.answer(&req, h, 501, "Not Implemented", false, from, NO_TAG);
                None
            }
        }
    }

    /// Queue a response (RFC 3261 §8.2.6) with our tag, Contact, the
    /// request's Record-Route (§12.1.1) and, for a 2xx to INVITE, the SDP
    /// answer.
    #[allow(clippy::too_many_arguments)]
    fn answer(
        &mut self,
        req: &Message,
        h: u64,
        code: u16,
        reason: &str,
        body: bool,
        to: SocketAddr,
        tag: u64,
    ) {
        let to_tag = hex16(h);
        let mut extra: [(&str, &[u8]); MAX_RR + 2] = [("", b""); MAX_RR + 2];
        extra[0] = ("Contact", &self.contact);
        let mut k = 1;
        for rr in req.header_values(HeaderName::RecordRoute).take(MAX_RR) {
            extra[k] = ("Record-Route", rr);
            k += 1;
        }
        if body {
            extra[k] = ("Content-Type", b"application/sdp");
            k += 1;
        }
        response::build(req, code, &reason, &to_tag, &extra[..k], &mut self.scratch);
        if body && self.scratch.ends_with(CL0) {
            self.scratch.truncate(self.scratch.len() - CL0.len());
            let _ = std::io::Write::write_fmt(
                &mut self.scratch,
                format_args!("Content-Length: {}\r\n\r\n", self.sdp.len()),
            );
            self.scratch.extend_from_slice(&self.sdp);
        }
        self.queue.push_bytes(&self.scratch, to, tag);
    }
}

/// FNV-1a, 64 bits.
pub fn fnv1a(b: &[u8]) -> u64 {
    b.iter().fold(0xcbf2_9ce4_8422_2325, |h, &x| {
        (h ^ x as u64).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// 16 lowercase hex digits.
fn hex16(h: u64) -> [u8; 16] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    std::array::from_fn(|i| HEX[(h >> (60 - 4 * i)) as usize & 15])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::msgs::Requests;
    use crate::net::RecvBatch;
    use std::os::fd::AsRawFd;

    fn parse(b: &[u8]) -> Message {
        Message::parse(
            Bytes::copy_from_slice(b),
            Framing::Datagram,
            &Limits::default(),
        )
        .unwrap()
    }

    /// The UAS's answers to `req` as they arrive at `peer`.
    fn answers(uas: &mut Uas, peer: &UdpSocket, req: &[u8]) -> (Option<u64>, Vec<Message>) {
        let from = peer.local_addr().unwrap();
        let new = uas.handle(req, from);
        uas.queue.flush(&uas.sock, |_, _| {});
        let mut b = RecvBatch::new(false);
        let n = b.recv(peer.as_raw_fd(), false).unwrap_or(0);
        (new, (0..n).map(|i| parse(b.get(i).1)).collect())
    }

    #[test]
    fn answers_invite_twice_the_same_and_counts_one_call() {
        let mut uas = Uas::bind("127.0.0.1:0".parse().unwrap(), 1024, 0x77).unwrap();
        let peer = bind("127.0.0.1:0".parse().unwrap(), false).unwrap();
        let r = Requests::new(
            peer.local_addr().unwrap(),
            uas.sock.local_addr().unwrap(),
            Some("service"),
            0x77,
        );
        let mut inv = Vec::new();
        r.invite(&mut inv, 42);
        let with_rr = String::from_utf8(inv).unwrap().replacen(
            "Call-ID",
            "Record-Route: <sip:p.example;lr>\r\nCall-ID",
            1,
        );

        let (new, got) = answers(&mut uas, &peer, with_rr.as_bytes());
        assert_eq!(new, Some(42));
        assert_eq!(
            got.iter().map(|m| m.status()).collect::<Vec<_>>(),
            [Some(180), Some(200)]
        );
        let ok = &got[1];
        let tag = ok.to().unwrap().tag().unwrap().to_vec();
        assert_eq!(got[0].to().unwrap().tag(), Some(&tag[..]));
        assert_eq!(
            ok.header(HeaderName::RecordRoute),
            Some(&b"<sip:p.example;lr>"[..])
        );
        assert_eq!(ok.header(HeaderName::Contact), Some(&uas.contact[..]));
        assert_eq!(
            ok.header(HeaderName::ContentType),
            Some(&b"application/sdp"[..])
        );
        assert!(
            ok.body().starts_with(b"v=0\r\n")
                && ok.content_length() == Some(ok.body().len() as u32)
        );

        // The retransmission: the same answers, no new call.
        let (new, again) = answers(&mut uas, &peer, with_rr.as_bytes());
        assert_eq!(new, None);
        assert_eq!(again[1].to().unwrap().tag(), Some(&tag[..]));
        assert_eq!((uas.stats.invites, uas.stats.invite_retrans), (1, 1));

        let mut bye = Vec::new();
        r.bye(&mut bye, 42, ok);
        for _ in 0..2 {
            let (_, got) = answers(&mut uas, &peer, &bye);
            assert_eq!(got.len(), 1);
            assert_eq!(
                (got[0].status(), got[0].cseq().unwrap().method),
                (Some(200), Method::Bye)
            );
        }
        let mut ack = Vec::new();
        r.ack(&mut ack, 42, ok);
        assert_eq!(answers(&mut uas, &peer, &ack).1.len(), 0);
        assert_eq!(
            (uas.stats.byes, uas.stats.bye_retrans, uas.stats.acks),
            (1, 1, 1)
        );

        // A response or garbage is unexpected and not answered.
        assert_eq!(
            answers(&mut uas, &peer, b"SIP/2.0 200 OK\r\n\r\n").1.len(),
            0
        );
        assert_eq!(uas.stats.unexpected, 1);
    }
}
