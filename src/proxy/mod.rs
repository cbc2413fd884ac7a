//! The stateless proxy (RFC 3261 §16.11 with the §16.3 checks), sans-IO:
//! `Core::handle` takes the bytes of one message and the flow it arrived
//! on and returns what to send where. No sockets, no clock; the runtime
//! (one `Core` per shard) does the I/O.

pub mod branch;
mod headers;
pub mod hosts;
pub mod identity;
mod local;
mod location;
mod nat;
mod natping;
mod probe;
mod request;
mod response;
mod stateful;
pub mod topology;

pub use stateful::{TxDirectory, TxStats};

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;

use arc_swap::ArcSwap;

use crate::config::{Config, Mode, Transport};
use crate::routing::{Picker, Routing};
use crate::sip::{Edits, Framing, Limits, Message};

pub use branch::LegRef;
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
    /// A request that starts a stateful leg: if it cannot be sent (the
    /// connection cannot be opened), the runtime says so with
    /// [`Core::handle_transport_error`] and the next target is tried.
    pub leg: Option<LegRef>,
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
    /// A retransmission: a request again (Timers A, E), or the last
    /// response again (Timer G, a retransmitted request).
    Resent(Transmit),
    /// The message belongs to a transaction of another shard (the shard
    /// named in our branch): hand it, as received, to that shard.
    ToShard(usize, Box<(Bytes, Flow)>),
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
    /// A route with `action = "drop"` matched.
    Policy,
    /// The answer to one of our OPTIONS probes: taken by the health
    /// check, not forwarded (not an error).
    ProbeReply,
    /// The answer to one of our keep-alives to a NATed binding.
    NatPingReply,
    /// The ACK for a final response Siphon generated itself (a 407
    /// challenge, a 404, a 503…): it ends that answer's transaction here
    /// (RFC 3261 §17.2.1) and goes nowhere else.
    OwnAnswerAck,
    /// A response with our Via whose branch we did not make for it: its
    /// keyed tag does not match the Call-ID, CSeq and Via below (an
    /// off-path forgery, or a request forwarded by an earlier run), or its
    /// CSeq method is not its transaction's (RFC 3261 §17.1.3).
    ForgedResponse,
    /// From a source banned by the guard (a flood, failed
    /// authentications), with `[guard] action = "drop"`.
    Banned,
    /// A response through our Via whose topology-hiding token does not
    /// open: not made by this node's key (another run without
    /// `topology_secret`, or altered).
    TopologyToken,
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
            Drop::Policy => "route_drop",
            Drop::ProbeReply => "probe_reply",
            Drop::OwnAnswerAck => "ack_own_answer",
            Drop::NatPingReply => "nat_ping_reply",
            Drop::ForgedResponse => "forged_response",
            Drop::Banned => "banned",
            Drop::TopologyToken => "topology_token",
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
    /// The routing table every shard shares (swapped whole on a reload),
    /// the snapshot this shard is using, and its selection state.
    routing: Arc<ArcSwap<Routing>>,
    cur: Arc<Routing>,
    picker: Picker,
    /// Scratch for the targets to try.
    order: Vec<usize>,
    /// The shard's index (latency histograms are per shard) and how many
    /// there are (stateful requests are dispatched by Call-ID).
    shard: usize,
    shards: usize,
    /// Probing: this shard sends the OPTIONS probes.
    prober: bool,
    /// Stateful mode: this shard's transactions.
    stateful: Option<stateful::Table>,
    /// This shard's own UDP socket per UDP listener (listener address, its
    /// socket's address, the Via sent-by naming it): requests leave from
    /// it, so their responses come back to this shard.
    outbound: Vec<(SocketAddr, SocketAddr, String)>,
    /// The registrar and location service shared by every shard.
    registrar: Option<Arc<crate::registrar::Registrar>>,
    auth: Option<Arc<crate::auth::Auth>>,
    /// Journal records not yet written (see `take_journal`).
    journal: Vec<u8>,
    /// Recent REGISTER answers, for retransmissions.
    answered: local::Answered,
    /// The shard's clock at the message being handled (ms), and the unix
    /// time (ms) at which it was 0.
    now_ms: u64,
    unix_base_ms: u64,
    /// Registrar and authentication counters.
    pub reg_stats: RegStats,
    /// The pinging shard: keep-alives to NATed bindings.
    pinger: Option<natping::NatPinger>,
    /// Where the message being handled came from (NAT aliases of the
    /// responses a leg relays).
    src: Option<(SocketAddr, Transport)>,
    /// Flood counting and bans (`[guard]`).
    guard: Option<crate::guard::Guard>,
    /// Planning a request again (a failover): call-rate limits were
    /// charged the first time.
    replanning: bool,
    /// The runtime says this shard is behind (see `set_behind`).
    behind: bool,
    /// New calls and REGISTERs refused with 503 for overload.
    pub overload_rejected: u64,
    /// Topology hiding's key (`[proxy] topology_secret`, or made at start).
    sealer: topology::Sealer,
}

/// What the registrar and the authenticator of one shard did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RegStats {
    /// REGISTERs answered by the registrar.
    pub registers: u64,
    /// 401/407 challenges sent.
    pub challenges: u64,
    /// 403 for bad credentials.
    pub auth_failures: u64,
    /// Keep-alive OPTIONS sent to NATed bindings, those that had no
    /// answer by the next, and bindings removed for it.
    pub nat_pings: u64,
    pub nat_ping_misses: u64,
    pub nat_removed: u64,
}

impl Core {
    /// The core of a single shard.
    pub fn new(cfg: Arc<Config>, hosts: Arc<Hosts>) -> Core {
        Core::for_shard(cfg, hosts, 0, 1)
    }

    /// The core of shard `shard` of `shards`: in stateful mode it owns its
    /// share of `proxy.max_transactions` and names the shard in its
    /// branches.
    pub fn for_shard(cfg: Arc<Config>, hosts: Arc<Hosts>, shard: usize, shards: usize) -> Core {
        let stateful = (cfg.proxy.mode == Mode::Stateful).then(|| {
            let t = cfg.proxy.transaction;
            let cap = t.max_transactions.div_ceil(shards.max(1));
            stateful::Table::new(t, shard as u16, cap)
        });
        // A validated config compiles: its regexes and address lists were
        // checked when it was loaded.
        let routing = Routing::build(&cfg, None, shards, 0)
            .unwrap_or_else(|e| panic!("a validated config does not compile: {e}"));
        let cur = Arc::new(routing);
        let guard = cfg_guard(&cfg);
        let sealer = topology::Sealer::new(cfg.proxy.topology_secret.as_deref());
        Core {
            me: Identity::new(&cfg),
            routing: Arc::new(ArcSwap::new(cur.clone())),
            cur,
            picker: Picker::new(0x5eed ^ shard as u64),
            order: Vec::new(),
            shard,
            shards: shards.max(1),
            prober: shard == 0,
            cfg,
            hosts,
            limits: Limits::default(),
            edits: Edits::new(),
            scratch: String::new(),
            stateful,
            outbound: Vec::new(),
            registrar: None,
            auth: None,
            journal: Vec::new(),
            answered: local::Answered::new(),
            now_ms: 0,
            reg_stats: RegStats::default(),
            src: None,
            pinger: None,
            unix_base_ms: crate::registrar::unix_now_ms(),
            guard,
            replanning: false,
            behind: false,
            overload_rejected: 0,
            sealer,
        }
    }

    /// Share the ban table of every shard (the runtime's).
    pub fn set_bans(&mut self, bans: Arc<crate::guard::Bans>) {
        if let Some(g) = &self.cfg.guard {
            self.guard = Some(crate::guard::Guard::new(g, bans));
        }
    }

    /// Give back the memory a burst left in this shard's tables once most
    /// of it is idle: the transaction table (see `stateful::Table::shrink`)
    /// and the guard's source tables of ended windows. True if any was
    /// freed. For the housekeeping tick, not the hot path: O(table size)
    /// when a table is mostly idle, O(1) otherwise.
    pub fn shrink_idle(&mut self, now: u64) -> bool {
        let tx = self.stateful.as_mut().is_some_and(stateful::Table::shrink);
        let guard = self.guard.as_mut().is_some_and(|g| g.shrink_idle(now));
        tx | guard
    }

    /// The ban table this core reads, when `[guard]` is on.
    pub fn bans(&self) -> Option<Arc<crate::guard::Bans>> {
        self.guard.as_ref().map(|g| g.bans().clone())
    }

    /// What this shard's guard did.
    pub fn guard_stats(&self) -> crate::guard::GuardStats {
        self.guard.as_ref().map(|g| g.stats).unwrap_or_default()
    }

    /// A message from a banned source, before it is parsed: dropped when
    /// the guard drops (the cheapest answer to a flood); else `None`, and
    /// [`Core::screen`] answers it once parsed.
    fn banned_early(&self, flow: Flow) -> Option<Outcome> {
        let g = self.guard.as_ref()?;
        (g.answer().is_none() && g.banned(flow.remote.ip(), self.now_ms))
            .then_some(Outcome::Dropped(Drop::Banned))
    }

    /// A parsed message: a request counted by the guard (`count`: not when
    /// it is only passing through to its owner shard, which counts it);
    /// refused if its source is banned (or has just become so).
    /// What does not parse counts as a request.
    fn screen(&mut self, msg: Option<&Message>, flow: Flow, count: bool) -> Option<Outcome> {
        let now = self.now_ms;
        let g = self.guard.as_mut()?;
        let ip = flow.remote.ip();
        let request = msg.is_none_or(Message::is_request);
        // In drop mode `banned_early` has looked already.
        let refused =
            (g.answer().is_some() && g.banned(ip, now)) || (count && request && g.request(ip, now));
        if !refused {
            return None;
        }
        Some(match (g.answer(), msg) {
            (Some(code), Some(msg)) if msg.is_request() => {
                let reason = if code == 403 {
                    "Forbidden"
                } else {
                    "Service Unavailable"
                };
                self.reply(msg, flow, code, &reason, &[])
            }
            _ => Outcome::Dropped(Drop::Banned),
        })
    }

    /// The runtime's view of this shard's backlog: while `behind`, new
    /// calls and REGISTERs are refused with 503 (see [`Core::overloaded`]).
    pub fn set_behind(&mut self, behind: bool) {
        self.behind = behind;
    }

    /// True if new calls and REGISTERs are to be refused now: the shard is
    /// behind, or (stateful) its transaction table is over
    /// `server.overload_occupancy` percent full.
    pub fn overloaded(&self) -> bool {
        self.behind
            || self.stateful.as_ref().is_some_and(|t| {
                t.occupancy_pct() >= self.cfg.server.overload_occupancy
                    && self.cfg.server.overload_occupancy < 100
            })
    }

    /// A forged response (see `branch`): dropped, and counted against its
    /// sender with the guard as a request would be, so a forger is banned
    /// like any flood.
    pub(super) fn forged(&mut self) -> Outcome {
        if let Some((from, _)) = self.src {
            self.charge(from.ip());
        }
        Outcome::Dropped(Drop::ForgedResponse)
    }

    /// Count something we sent to `ip` unasked (a resent final) against
    /// it, as a request from it would be.
    pub(super) fn charge(&mut self, ip: std::net::IpAddr) {
        let now = self.now_ms;
        if let Some(g) = self.guard.as_mut() {
            g.request(ip, now);
        }
    }

    /// A failed authentication from `flow`'s source (the guard may ban it).
    pub(super) fn auth_failed(&mut self, flow: Flow) {
        let now = self.now_ms;
        if let Some(g) = self.guard.as_mut() {
            g.auth_failed(flow.remote.ip(), now);
        }
    }

    /// Forget bans that have ended and part of the expired Digest nonces
    /// (the housekeeping of one shard). True if a table gave memory back
    /// (the heap may be trimmed).
    pub fn sweep_bans(&self, now: u64) -> bool {
        let mut freed = false;
        if let Some(g) = &self.guard {
            g.bans().sweep(now);
        }
        if let Some(a) = &self.auth {
            freed |= a.sweep((self.unix_base_ms + now) / 1000);
        }
        let p = &self.cfg.proxy;
        self.cur
            .calls
            .sweep(now, p.call_setup_s * 1000, p.call_timeout_s * 1000);
        freed
    }

    /// Send requests over UDP from this shard's own sockets: `mine` maps a
    /// listener's address to this shard's socket for it; `all` is every
    /// shard's (all are recognised as us in Vias).
    pub fn set_outbound(&mut self, all: &[SocketAddr], mine: &[(SocketAddr, SocketAddr)]) {
        self.me.set_outbound(all);
        self.outbound = mine
            .iter()
            .filter_map(|&(listener, own)| {
                let me = self.me.by_local(Transport::Udp, listener)?;
                Some((listener, own, format!("{}:{}", me.host, own.port())))
            })
            .collect();
    }

    /// Use the routing table shared by every shard (the runtime's, which
    /// a reload replaces).
    pub fn set_routing(&mut self, shared: Arc<ArcSwap<Routing>>) {
        self.cur = shared.load_full();
        self.routing = shared;
    }

    /// The routing table this core reads (for a reload to replace).
    pub fn routing(&self) -> Arc<ArcSwap<Routing>> {
        self.routing.clone()
    }

    /// Take up a new routing table if one was swapped in: one atomic load
    /// per message; requests in progress keep the table they started
    /// with.
    fn refresh_routing(&mut self) {
        let shared = self.routing.load();
        if shared.generation != self.cur.generation {
            self.cur = arc_swap::Guard::into_inner(shared);
        }
    }

    pub fn identity(&self) -> &Identity {
        &self.me
    }

    /// Handle one message (a whole datagram, or one stream frame) as the
    /// stateless proxy.
    pub fn handle(&mut self, data: Bytes, flow: Flow) -> Outcome {
        if let Some(o) = self.banned_early(flow) {
            return o;
        }
        self.refresh_routing();
        self.src = Some((flow.remote, flow.transport));
        let parsed = self.parse(data, flow);
        if let Some(o) = self.screen(parsed.as_ref().ok(), flow, true) {
            return o;
        }
        match parsed {
            Ok(msg) if msg.is_request() => self.request(&msg, flow),
            Ok(msg) => self
                .own_options_reply(&msg, flow)
                .unwrap_or_else(|| self.response(&msg)),
            Err(out) => out,
        }
    }

    /// Handle one message at `now` (ms on the shard's clock) in the
    /// configured mode; what to do is appended to `out`.
    pub fn handle_at(&mut self, now: u64, data: Bytes, flow: Flow, out: &mut Vec<Outcome>) {
        self.now_ms = now;
        if self.stateful.is_none() {
            return out.push(self.handle(data, flow));
        }
        if let Some(o) = self.banned_early(flow) {
            return out.push(o);
        }
        self.refresh_routing();
        self.src = Some((flow.remote, flow.transport));
        let parsed = self.parse(data.clone(), flow);
        // The shard that handles a request (call-id dispatch), found once.
        let owner = match &parsed {
            Ok(m) if m.is_request() => self.owner(m),
            _ => None,
        };
        if let Some(o) = self.screen(parsed.as_ref().ok(), flow, owner.is_none()) {
            return out.push(o);
        }
        match parsed {
            Ok(msg) if msg.is_request() => match owner {
                Some(owner) => out.push(Outcome::ToShard(owner, Box::new((data, flow)))),
                None => self.stateful_request(now, msg, flow, out),
            },
            Ok(msg) => match self.own_options_reply(&msg, flow) {
                Some(o) => out.push(o),
                None => self.stateful_response(now, data, msg, flow, out),
            },
            Err(o) => out.push(o),
        }
    }

    /// Stateful mode, `dispatch = "call-id"`: the shard that handles
    /// `req` when it is not this one. Every request of a call hashes to
    /// one shard, so a CANCEL, a non-2xx ACK or a retransmission finds
    /// its INVITE's server transaction (RFC 3261 §9.2, §17.2.3) wherever
    /// SO_REUSEPORT delivered it, and one peer's calls use every shard.
    fn owner(&self, req: &Message) -> Option<usize> {
        if self.shards < 2 || self.cfg.proxy.dispatch != crate::config::Dispatch::CallId {
            return None;
        }
        let owner = call_id_shard(req.call_id(), self.shards);
        (owner != self.shard).then_some(owner)
    }

    // The error is what to send instead: an Outcome moved once, on the
    // path that does not forward.
    #[allow(clippy::result_large_err)]
    fn parse(&self, data: Bytes, flow: Flow) -> Result<Message, Outcome> {
        let framing = match flow.transport {
            Transport::Udp => Framing::Datagram,
            Transport::Tcp => Framing::Stream,
        };
        if crate::sip::keepalive_len(&data) == data.len() {
            return Err(Outcome::Dropped(Drop::Keepalive));
        }
        match Message::parse(data, framing, &self.limits) {
            Ok(msg) => Ok(msg),
            Err(e) if e.is_request() => Err(self.reject_unparsable(&e, flow)),
            Err(e) if e.message().is_some() => Err(Outcome::Dropped(Drop::BadResponse)),
            Err(_) => Err(Outcome::Dropped(Drop::Garbage)),
        }
    }
}

/// A guard with a ban table of its own (the runtime shares one instead).
fn cfg_guard(cfg: &Config) -> Option<crate::guard::Guard> {
    let g = cfg.guard.as_ref()?;
    Some(crate::guard::Guard::new(
        g,
        Arc::new(crate::guard::Bans::new(g.max_bans)),
    ))
}

/// The shard of `shards` that owns the calls with this Call-ID (a stable
/// hash: every shard computes the same owner).
pub fn call_id_shard(call_id: &[u8], shards: usize) -> usize {
    let mut h = branch::StableHash::default();
    h.write(call_id);
    (h.finish() % shards.max(1) as u64) as usize
}

#[cfg(test)]
mod calls_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod topology_tests;
