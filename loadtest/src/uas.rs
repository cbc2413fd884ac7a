//! The UAS: answers every INVITE with 180 and 200 (with SDP), every BYE
//! with 200, absorbs ACK. It keeps no call state and retransmits nothing;
//! a retransmitted INVITE or BYE is answered again with the same To tag (a
//! hash of the Call-ID) and counted as a retransmission, not a new call,
//! through two fixed direct-mapped tables of Call-ID hashes.
//!
//! Answers go back to where the request came from (the proxy's listener,
//! which is also its Via sent-by here).

use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use nix::errno::Errno;
use siphon::sip::{response, Framing, HeaderName, Limits, Message, Method};

use crate::msgs::sdp;
use crate::net::{bind, RecvBatch, SendQueue, NO_TAG};

/// How long a receive waits before the stop flag is looked at again.
const POLL: Duration = Duration::from_millis(20);
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

pub struct Uas {
    sock: UdpSocket,
    contact: Vec<u8>,
    sdp: Vec<u8>,
    limits: Limits,
    /// Call-ID hashes of INVITEs and BYEs seen, direct-mapped.
    invites: Vec<u64>,
    byes: Vec<u64>,
    scratch: Vec<u8>,
    pub stats: UasStats,
}

impl Uas {
    /// Listen on `addr`; `table` slots (rounded up to a power of two)
    /// remember recent calls for telling retransmissions apart.
    pub fn bind(addr: SocketAddr, table: usize) -> std::io::Result<Uas> {
        let sock = bind(addr, false)?;
        sock.set_read_timeout(Some(POLL))?;
        let local = sock.local_addr()?;
        let size = table.clamp(1024, 1 << 24).next_power_of_two();
        Ok(Uas {
            sock,
            contact: format!("<sip:uas@{local}>").into_bytes(),
            sdp: sdp(&local.ip().to_string()),
            limits: Limits::default(),
            invites: vec![0; size],
            byes: vec![0; size],
            scratch: Vec::with_capacity(2048),
            stats: UasStats::default(),
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.sock.local_addr()
    }

    /// Answer until `stop` is set or `deadline` passes.
    pub fn run(mut self, stop: &AtomicBool, deadline: Instant) -> UasStats {
        let fd = self.sock.as_raw_fd();
        let mut batch = RecvBatch::new(false);
        let mut q = SendQueue::new();
        while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
            let n = match batch.recv(fd, true) {
                Ok(n) => n,
                Err(Errno::EAGAIN) | Err(Errno::EINTR) => 0,
                Err(_) => {
                    self.stats.unexpected += 1;
                    std::thread::sleep(Duration::from_millis(1));
                    0
                }
            };
            for i in 0..n {
                let (g, data) = batch.get(i);
                match (g.from, g.truncated) {
                    (Some(from), false) => self.handle(data, from, &mut q),
                    _ => self.stats.unexpected += 1,
                }
            }
            if !q.is_empty() {
                let f = q.flush(&self.sock, |_, _| {});
                self.stats.send_errors += f.errors;
            }
        }
        self.stats
    }

    /// One datagram: count it and queue the answers.
    pub fn handle(&mut self, data: &[u8], from: SocketAddr, q: &mut SendQueue) {
        let req = match Message::parse(
            Bytes::copy_from_slice(data),
            Framing::Datagram,
            &self.limits,
        ) {
            Ok(m) if m.is_request() => m,
            _ => {
                self.stats.unexpected += 1;
                return;
            }
        };
        let h = fnv1a(req.call_id()) | 1;
        let seen = |table: &mut Vec<u64>| {
            let i = (h as usize) & (table.len() - 1);
            let old = std::mem::replace(&mut table[i], h);
            old == h
        };
        match req.method() {
            Some(Method::Invite) => {
                if seen(&mut self.invites) {
                    self.stats.invite_retrans += 1;
                } else {
                    self.stats.invites += 1;
                }
                self.answer(&req, h, 180, "Ringing", false, from, q);
                self.answer(&req, h, 200, "OK", true, from, q);
            }
            Some(Method::Ack) => self.stats.acks += 1,
            Some(Method::Bye) => {
                if seen(&mut self.byes) {
                    self.stats.bye_retrans += 1;
                } else {
                    self.stats.byes += 1;
                }
                self.answer(&req, h, 200, "OK", false, from, q);
            }
            _ => {
                self.stats.unexpected += 1;
                self.answer(&req, h, 501, "Not Implemented", false, from, q);
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
        q: &mut SendQueue,
    ) {
        let tag = hex16(h);
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
        response::build(req, code, &reason, &tag, &extra[..k], &mut self.scratch);
        if body && self.scratch.ends_with(CL0) {
            self.scratch.truncate(self.scratch.len() - CL0.len());
            let _ = std::io::Write::write_fmt(
                &mut self.scratch,
                format_args!("Content-Length: {}\r\n\r\n", self.sdp.len()),
            );
            self.scratch.extend_from_slice(&self.sdp);
        }
        q.push_bytes(&self.scratch, to, NO_TAG);
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
