//! The stateless proxy (RFC 3261 §16.11 with the §16.3 checks), sans-IO:
//! `Core::handle` takes the bytes of one message and the flow it arrived
//! on and returns what to send where. No sockets, no clock; the runtime
//! (one `Core` per shard) does the I/O.

pub mod branch;
pub mod hosts;
pub mod identity;
mod request;
mod response;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;

use crate::config::{Config, Transport};
use crate::sip::{Edits, Framing, Limits, Message};

pub use hosts::Hosts;
pub use identity::Identity;

/// A stream connection, named by the runtime: the shard that owns it in
/// the top 16 bits, a per-shard sequence number below. Carried in the
/// branch of our Via for requests that arrive over a stream, so that the
/// response finds the connection (RFC 3261 §18.2.2: a response goes back
/// on the connection its request came in on) on whichever shard it lands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ConnId(pub u64);

impl ConnId {
    pub fn new(shard: usize, seq: u64) -> ConnId {
        ConnId(((shard as u64) << 48) | (seq & ((1 << 48) - 1)))
    }

    /// The shard that owns the connection.
    pub fn shard(self) -> usize {
        (self.0 >> 48) as usize
    }
}

/// Where a message came from: transport, our local address, the peer, and
/// for a stream the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flow {
    pub transport: Transport,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    pub conn: Option<ConnId>,
}

/// One message to send. Over TCP the runtime uses the connection to
/// `dest` if one exists (a response goes back on the connection its
/// request came in on: RFC 3261 §18.2.2), else opens one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    pub transport: Transport,
    /// The listener to send from.
    pub local: SocketAddr,
    pub dest: SocketAddr,
    /// Over a stream: the connection to use when it is still open (a
    /// response to a request that came in over TCP).
    pub conn: Option<ConnId>,
    pub data: Vec<u8>,
}

/// What `Core::handle` decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A request or response relayed onwards.
    Forwarded(Transmit),
    /// A response we generated (the status code is for counters and logs).
    Replied(Transmit, u16),
    /// A request whose bytes did not parse, answered with the parser's
    /// reason (400, 505, 413, …): a parse error, counted as such.
    Rejected(Transmit, u16),
    /// Nothing sent; counted under this reason.
    Dropped(Drop),
}

/// Why a message was dropped. Each has its own counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Drop {
    /// Only CR/LF: a keepalive, not an error.
    Keepalive,
    /// Not a SIP message, or a request too broken to answer (no Via).
    Garbage,
    /// A response that does not parse.
    BadResponse,
    /// A response whose top Via is not ours (RFC 3261 §16.11).
    NotOurVia,
    /// A response with no Via left after ours.
    NoNextVia,
    /// A request that cannot be answered (an ACK) and cannot be forwarded.
    Ack,
    /// The next hop is a name we cannot resolve (DNS is not built yet).
    Unresolvable,
    /// The next hop is a broadcast, multicast or unspecified address
    /// (RFC 4475 §3.3.10).
    BadDestination,
    /// No listener for the transport the next hop needs.
    NoListener,
    /// Decided, but the runtime could not send it (no socket for it, or
    /// the connection to the destination could not be opened).
    Unsent,
    /// A bounded queue was full: a connection's write queue or the
    /// hand-off to another shard.
    QueueFull,
}

impl Drop {
    pub fn as_str(self) -> &'static str {
        match self {
            Drop::Keepalive => "keepalive",
            Drop::Garbage => "garbage",
            Drop::BadResponse => "bad_response",
            Drop::NotOurVia => "not_our_via",
            Drop::NoNextVia => "no_next_via",
            Drop::Ack => "ack",
            Drop::Unresolvable => "unresolvable",
            Drop::BadDestination => "bad_destination",
            Drop::NoListener => "no_listener",
            Drop::Unsent => "unsent",
            Drop::QueueFull => "queue_full",
        }
    }
}

/// The proxy logic of one shard. Owns reusable buffers so that relaying a
/// message allocates only the output.
pub struct Core {
    cfg: Arc<Config>,
    me: Identity,
    hosts: Arc<Hosts>,
    limits: Limits,
    edits: Edits,
    scratch: String,
    /// Round-robin position per destination set.
    next_target: Vec<usize>,
}

impl Core {
    pub fn new(cfg: Arc<Config>, hosts: Arc<Hosts>) -> Core {
        Core {
            me: Identity::new(&cfg),
            next_target: vec![0; cfg.destinations.len()],
            cfg,
            hosts,
            limits: Limits::default(),
            edits: Edits::new(),
            scratch: String::new(),
        }
    }

    pub fn identity(&self) -> &Identity {
        &self.me
    }

    /// Handle one message (a whole datagram, or one stream frame).
    pub fn handle(&mut self, data: Bytes, flow: Flow) -> Outcome {
        let framing = match flow.transport {
            Transport::Udp => Framing::Datagram,
            Transport::Tcp => Framing::Stream,
        };
        if crate::sip::keepalive_len(&data) == data.len() {
            return Outcome::Dropped(Drop::Keepalive);
        }
        match Message::parse(data, framing, &self.limits) {
            Ok(msg) if msg.is_request() => self.request(&msg, flow),
            Ok(msg) => self.response(&msg),
            Err(e) if e.is_request() => self.reject_unparsable(&e, flow),
            Err(e) if e.message().is_some() => Outcome::Dropped(Drop::BadResponse),
            Err(_) => Outcome::Dropped(Drop::Garbage),
        }
    }
}

#[cfg(test)]
mod tests;
