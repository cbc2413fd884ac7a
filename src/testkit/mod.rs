//! A minimal SIP user agent over blocking std UDP sockets, for the
//! loopback tests (and, later, the load generator): it sends what it is
//! told, receives with a timeout, and parses with the project's parser.
//! No retransmissions: on loopback nothing is lost, and a test that needs
//! a retransmission sends it explicitly.

pub mod fuzz;

use std::net::{SocketAddr, UdpSocket};
use std::time::Duration;

use bytes::Bytes;

use crate::sip::{response, Framing, Limits, Message};

/// A UDP user agent bound to one local address.
pub struct Ua {
    sock: UdpSocket,
    pub addr: SocketAddr,
}

impl Ua {
    /// Bind `ip:0`; receives time out after `timeout`.
    pub fn bind(ip: &str, timeout: Duration) -> std::io::Result<Ua> {
        let sock = UdpSocket::bind((ip, 0))?;
        sock.set_read_timeout(Some(timeout))?;
        let addr = sock.local_addr()?;
        Ok(Ua { sock, addr })
    }

    /// Change the receive timeout.
    pub fn set_timeout(&self, timeout: Duration) -> std::io::Result<()> {
        self.sock.set_read_timeout(Some(timeout))
    }

    pub fn send(&self, to: SocketAddr, msg: &[u8]) -> std::io::Result<()> {
        self.sock.send_to(msg, to).map(|_| ())
    }

    /// The next datagram, parsed; `None` on timeout. A datagram that does
    /// not parse is returned as an error string, so tests can say so.
    pub fn recv(&self) -> Option<Result<(Message, SocketAddr), String>> {
        let mut buf = vec![0u8; 65_536];
        let (n, from) = self.sock.recv_from(&mut buf).ok()?;
        buf.truncate(n);
        Some(
            Message::parse(Bytes::from(buf), Framing::Datagram, &Limits::default())
                .map(|m| (m, from))
                .map_err(|e| format!("unparsable datagram from {from}: {e}")),
        )
    }

    /// The next datagram, which must arrive and parse.
    pub fn expect(&self) -> (Message, SocketAddr) {
        match self.recv() {
            Some(Ok(r)) => r,
            Some(Err(e)) => panic!("{}: {e}", self.addr),
            None => panic!("{}: nothing received before the timeout", self.addr),
        }
    }

    /// A request from this UA: `METHOD ruri`, with a Via naming this UA
    /// (`rport` asked for), the given branch, Call-ID and CSeq.
    pub fn request(
        &self,
        method: &str,
        ruri: &str,
        call_id: &str,
        branch: &str,
        cseq: u32,
        extra: &str,
    ) -> Vec<u8> {
        format!(
            "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {addr};branch={branch};rport\r\nMax-Forwards: 70\r\nFrom: <sip:alice@{addr}>;tag=uac-{call_id}\r\nTo: <{ruri}>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContact: <sip:alice@{addr}>\r\n{extra}Content-Length: 0\r\n\r\n",
            addr = self.addr
        )
        .into_bytes()
    }

    /// A response to `req` (RFC 3261 §8.2.6) with a Contact for this UA.
    pub fn response(&self, req: &Message, code: u16, reason: &str) -> Vec<u8> {
        let mut out = Vec::new();
        let contact = format!("<sip:bob@{}>", self.addr);
        let rr: Vec<&[u8]> = req
            .header_values(crate::sip::HeaderName::RecordRoute)
            .collect();
        let mut extra: Vec<(&str, &[u8])> = vec![("Contact", contact.as_bytes())];
        // A UAS copies Record-Route into its responses (RFC 3261 §12.1.1).
        for r in &rr {
            extra.push(("Record-Route", r));
        }
        response::build(req, code, &reason, b"uas-tag", &extra, &mut out);
        out
    }
}
