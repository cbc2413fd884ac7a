//! Minimal SIP user agents over blocking std sockets (UDP, and TCP in
//! both directions), for the loopback tests and the load generator: they
//! send what they are told, receive with a timeout, and parse with the
//! project's parser. No retransmissions: on loopback nothing is lost, and a
//! test that needs a retransmission sends it explicitly.

pub mod fuzz;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};

use crate::sip::{frame_stream, response, Framing, Limits, Message, Status};

/// A request from a UA at `addr`: `METHOD ruri`, with a Via naming it
/// (`rport` asked for), the given branch, Call-ID and CSeq.
#[allow(clippy::too_many_arguments)]
pub fn request(
    via: &str,
    addr: SocketAddr,
    method: &str,
    ruri: &str,
    call_id: &str,
    branch: &str,
    cseq: u32,
    extra: &str,
) -> Vec<u8> {
    format!(
        "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/{via} {addr};branch={branch};rport\r\nMax-Forwards: 70\r\nFrom: <sip:alice@{addr}>;tag=uac-{call_id}\r\nTo: <{ruri}>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} {method}\r\nContact: <sip:alice@{addr}>\r\n{extra}Content-Length: 0\r\n\r\n"
    )
    .into_bytes()
}

/// A response to `req` (RFC 3261 §8.2.6) from a UA at `addr`, with a
/// Contact for it and the request's Record-Route copied (§12.1.1).
pub fn response_to(addr: SocketAddr, req: &Message, code: u16, reason: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let contact = format!("<sip:bob@{addr}>");
    let rr: Vec<&[u8]> = req
        .header_values(crate::sip::HeaderName::RecordRoute)
        .collect();
    let mut extra: Vec<(&str, &[u8])> = vec![("Contact", contact.as_bytes())];
    for r in &rr {
        extra.push(("Record-Route", r));
    }
    response::build(req, code, &reason, b"uas-tag", &extra, &mut out);
    out
}

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

    /// A request from this UA (see [`request`]).
    pub fn request(
        &self,
        method: &str,
        ruri: &str,
        call_id: &str,
        branch: &str,
        cseq: u32,
        extra: &str,
    ) -> Vec<u8> {
        request("UDP", self.addr, method, ruri, call_id, branch, cseq, extra)
    }

    /// A response to `req` from this UA (see [`response_to`]).
    pub fn response(&self, req: &Message, code: u16, reason: &str) -> Vec<u8> {
        response_to(self.addr, req, code, reason)
    }
}

/// One TCP connection of a user agent, either end: messages are framed as
/// a stream (Content-Length), CRLF keepalives are returned as such.
pub struct TcpUa {
    stream: TcpStream,
    buf: BytesMut,
    /// Our end of the connection.
    pub addr: SocketAddr,
    pub peer: SocketAddr,
}

/// What a TCP user agent read next.
#[derive(Debug)]
pub enum Received {
    Message(Message),
    /// CR/LF bytes between messages (a keepalive or its pong).
    Keepalive(usize),
    /// The peer closed the connection.
    Closed,
    /// Nothing before the timeout.
    Timeout,
}

impl TcpUa {
    /// Connect to `to` from `ip` (port chosen by the kernel).
    pub fn connect(ip: &str, to: SocketAddr, timeout: Duration) -> std::io::Result<TcpUa> {
        let sock = socket2::Socket::new(
            socket2::Domain::for_address(to),
            socket2::Type::STREAM,
            Some(socket2::Protocol::TCP),
        )?;
        let ip: std::net::IpAddr = ip.parse().map_err(|_| std::io::Error::other("bad ip"))?;
        let local = SocketAddr::new(ip, 0);
        sock.bind(&local.into())?;
        sock.connect_timeout(&to.into(), timeout)?;
        TcpUa::from_stream(sock.into(), timeout)
    }

    /// Wrap an accepted or connected stream.
    pub fn from_stream(stream: TcpStream, timeout: Duration) -> std::io::Result<TcpUa> {
        stream.set_read_timeout(Some(timeout))?;
        stream.set_nodelay(true)?;
        Ok(TcpUa {
            addr: stream.local_addr()?,
            peer: stream.peer_addr()?,
            stream,
            buf: BytesMut::new(),
        })
    }

    pub fn send(&mut self, msg: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(msg)
    }

    /// The next message, keepalive, close or timeout.
    pub fn read(&mut self) -> Result<Received, String> {
        let limits = Limits::default();
        loop {
            match frame_stream(&self.buf, &limits) {
                Ok(Status::Keepalive(n)) => {
                    self.buf.advance(n);
                    return Ok(Received::Keepalive(n));
                }
                Ok(Status::Complete(n)) => {
                    let bytes = self.buf.split_to(n).freeze();
                    return Message::parse(bytes, Framing::Stream, &limits)
                        .map(Received::Message)
                        .map_err(|e| format!("unparsable message from {}: {e}", self.peer));
                }
                Ok(Status::Partial | Status::Body(_)) => {}
                Err(e) => return Err(format!("unframable stream from {}: {e}", self.peer)),
            }
            let mut chunk = [0u8; 16 << 10];
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ok(Received::Closed),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(Received::Timeout)
                }
                Err(_) => return Ok(Received::Closed),
            }
        }
    }

    /// The next message, which must arrive and parse.
    pub fn expect(&mut self) -> Message {
        match self.read() {
            Ok(Received::Message(m)) => m,
            other => panic!(
                "{} from {}: expected a message, got {other:?}",
                self.addr, self.peer
            ),
        }
    }

    /// A request from this UA, with a TCP Via (see [`request`]).
    pub fn request(
        &self,
        method: &str,
        ruri: &str,
        call_id: &str,
        branch: &str,
        cseq: u32,
        extra: &str,
    ) -> Vec<u8> {
        request("TCP", self.addr, method, ruri, call_id, branch, cseq, extra)
    }

    /// A response to `req` from this UA (see [`response_to`]).
    pub fn response(&self, req: &Message, code: u16, reason: &str) -> Vec<u8> {
        response_to(self.addr, req, code, reason)
    }
}

/// A TCP listening user agent (a UAS reached over TCP).
pub struct TcpUas {
    listener: TcpListener,
    pub addr: SocketAddr,
    timeout: Duration,
}

impl TcpUas {
    /// Listen on `ip:port` (0: any free port).
    pub fn bind(ip: &str, port: u16, timeout: Duration) -> std::io::Result<TcpUas> {
        let listener = TcpListener::bind((ip, port))?;
        Ok(TcpUas {
            addr: listener.local_addr()?,
            listener,
            timeout,
        })
    }

    /// The next connection, waiting at most the timeout.
    pub fn accept(&self) -> std::io::Result<TcpUa> {
        self.listener.set_nonblocking(true)?;
        let deadline = std::time::Instant::now() + self.timeout;
        loop {
            match self.listener.accept() {
                Ok((s, _)) => {
                    s.set_nonblocking(false)?;
                    return TcpUa::from_stream(s, self.timeout);
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if std::time::Instant::now() > deadline {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            "no connection before the timeout",
                        ));
                    }
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err(e) => return Err(e),
            }
        }
    }
}
