//! One response context (RFC 3261 §16.6–§16.10): the server transaction
//! of a received request, the legs forwarded for it, the best final
//! response so far, and what is left to try; how it starts, forwards and
//! answers. What happens to it afterwards is in `events`.
//!
//! - 100 Trying goes up at once for an INVITE (§16.2); never for a
//!   non-INVITE (RFC 4320 §4.1).
//! - Provisionals other than 100 go up as they come; every 2xx of an
//!   INVITE goes up at once and cancels the other legs (§16.7 step 5).
//! - Other finals wait until every leg has one; then the best goes up
//!   (§16.7 step 6: a 6xx, else the lowest class; 401/407/415/420/484
//!   first within 4xx; a 503 becomes a 500), with the challenges of every
//!   401/407 (§16.7 step 7). A 6xx cancels the other legs.
//! - Serial forking: a failover code, a timeout or a transport error on a
//!   leg starts the next target of the destination set, within
//!   `max_attempts`; a 503 with Retry-After takes its target out for that
//!   long (for this shard).
//! - A leg that has had no response within `branch_timeout_ms` counts as a
//!   408; Timer C (§16.8) cancels a leg that had a provisional and no
//!   final; a cancelled leg that never answers is given up 64*T1 later.
//! - Every leg timing out gives a 408 for an INVITE (487 if the caller
//!   cancelled) and no response at all for a non-INVITE (RFC 4320 §4.2).

use std::net::SocketAddr;

use bytes::Bytes;

use std::sync::Arc;

use super::super::location::LocTarget;
use super::super::request::{
    count_route, count_route_final, upstream, Next, NextHop, NoHop, Plan, NO_DESTINATION,
};
use super::super::{ConnId, Core, Drop, Flow, Outcome, Transmit};
use super::build::upstream_response;
use super::Table;
use crate::config::{Fork, Transport};
use crate::proxy::branch::{loop_hash, LegRef};
use crate::proxy::topology::{self, Face};
use crate::routing::calls::CallRef;
use crate::routing::stats::Active;
use crate::routing::{Routing, SetTarget};
use crate::rt::wheel::TimerKey;
use crate::sip::{response, Framing, HeaderName, Limits, Message, Method};
use crate::transaction::{ClientTx, Kind, ServerTx};

/// At most this many legs per context (parallel fork plus failovers).
const MAX_LEGS: usize = 16;
/// Bound on timer events handled per transaction per wake-up (each call
/// moves its deadline past `now`, so one or two are the norm).
pub(super) const MAX_TIMER_STEPS: usize = 64;

pub(in crate::proxy) struct Context {
    pub slot: u32,
    /// Its key's hash in the shared directory, when it is there.
    pub dir_hash: Option<u64>,
    pub gen: u32,
    pub key: Box<[u8]>,
    pub timer: Option<TimerKey>,
    pub deadline: Option<u64>,
    pub(super) method: Method,
    pub(super) server: ServerTx,
    /// The request as received, until a final response has gone up (a
    /// failover re-plans from it; local answers are built from it).
    pub(super) request: Option<Message>,
    pub(super) flow: Flow,
    /// Where responses go (§18.2.2).
    pub(super) up: Transmit,
    /// The last response sent upstream, for a retransmitted request or
    /// Timer G.
    pub(super) last: Option<Vec<u8>>,
    pub(super) legs: Vec<Leg>,
    pub(super) loop_hash: u64,
    /// The routing table the request was routed with (a reload does not
    /// change what a request in progress does), the route that matched
    /// and the destination set whose targets the legs go to.
    pub(super) routing: Option<Arc<Routing>>,
    pub(super) route: Option<usize>,
    pub(super) dest: Option<usize>,
    /// The registered contacts, when the location service chose them
    /// (legs' `target` index into it).
    pub(super) location: Option<Box<[LocTarget]>>,
    /// Targets still to try, in order (serial forking).
    pub(super) order: Vec<usize>,
    pub(super) best: Option<Best>,
    /// WWW-/Proxy-Authenticate values of 401/407 answers, by leg.
    pub(super) challenges: Vec<(usize, HeaderName, Vec<u8>)>,
    pub(super) cancelled: bool,
    pub(super) final_sent: bool,
}

pub(super) struct Leg {
    pub(super) tx: ClientTx,
    /// The request as sent: retransmitted as is; CANCEL and ACK are
    /// derived from it.
    pub(super) request: Bytes,
    pub(super) transport: Transport,
    pub(super) local: SocketAddr,
    pub(super) dest: SocketAddr,
    /// Over a stream, the connection the request went on (a UA reached
    /// over the connection it registered on): CANCEL and ACK follow it.
    pub(super) conn: Option<ConnId>,
    /// Index of the target in the destination set (or of the contact in
    /// the location targets).
    pub(super) target: Option<usize>,
    /// When the request was sent (latencies per target).
    pub(super) sent_at: u64,
    /// An INVITE leg to a destination set's target counts in its load
    /// until it has a final answer or is dropped.
    pub(super) active: Option<Active>,
    pub(super) provisional: bool,
    /// Has its final answer (received, or a timeout counted as 408).
    pub(super) done: bool,
    /// Given up: its transactions are no longer waited for.
    pub(super) abandoned: bool,
    /// Timer C, or the guard after a CANCEL.
    pub(super) timer_c: Option<u64>,
    /// The branch timeout (no response yet).
    pub(super) no_answer: Option<u64>,
    pub(super) cancel: Option<(ClientTx, Vec<u8>)>,
    /// CANCEL as soon as a provisional arrives (§9.1: not before).
    pub(super) cancel_wanted: bool,
    /// Our ACK for its non-2xx final, resent if the final is.
    pub(super) ack: Option<Vec<u8>>,
}

pub(super) enum Best {
    Received {
        leg: usize,
        msg: Message,
    },
    /// An answer of our own: its code and reason phrase, the words the
    /// stateless proxy would use for the same failure.
    Local(u16, &'static str),
}

impl Best {
    /// An answer of our own with the usual phrase for `code` (a timeout,
    /// a leg that could not be sent).
    pub(super) fn local(code: u16) -> Best {
        Best::Local(code, reason(code))
    }

    fn code(&self) -> u16 {
        match self {
            Best::Received { msg, .. } => msg.status().unwrap_or(500),
            Best::Local(c, _) => *c,
        }
    }
}

/// §16.7 step 6: is a final `new` better than `old`?
fn better(new: (u16, bool), old: (u16, bool)) -> bool {
    let (class_new, class_old) = (new.0 / 100, old.0 / 100);
    if class_old == 6 {
        return false;
    }
    if class_new == 6 {
        return true;
    }
    if class_new != class_old {
        return class_new < class_old;
    }
    let preferred = |c: u16| matches!(c, 401 | 407 | 415 | 420 | 484);
    if preferred(new.0) != preferred(old.0) {
        return preferred(new.0);
    }
    // A response received beats one we made up (a timeout).
    old.1 && !new.1
}

fn reason(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        200 => "OK",
        408 => "Request Timeout",
        480 => "Temporarily Unavailable",
        487 => "Request Terminated",
        500 => "Server Internal Error",
        503 => "Service Unavailable",
        _ => "Failed",
    }
}

pub(super) fn due(t: Option<u64>, now: u64) -> bool {
    t.is_some_and(|t| t <= now)
}

impl Context {
    /// The destination set the legs go to, if a route chose one.
    pub(super) fn set(&self) -> Option<&crate::routing::Set> {
        if self.location.is_some() {
            return None;
        }
        Some(&self.routing.as_ref()?.sets[self.dest?])
    }

    /// A final response sent upstream, counted on the route that matched.
    fn count_final(&self, code: u16) {
        if let Some(r) = &self.routing {
            count_route_final(r, self.route, code);
        }
    }

    /// The destination set's target that leg target index `t` names.
    pub(super) fn set_target(&self, t: Option<usize>) -> Option<&SetTarget> {
        self.set()?.targets.get(t?)
    }

    pub fn poll_timeout(&self) -> Option<u64> {
        let mut next = self.server.poll_timeout();
        let mut min = |t: Option<u64>| {
            if let Some(t) = t {
                next = Some(next.map_or(t, |n| n.min(t)));
            }
        };
        for l in self.legs.iter().filter(|l| !l.abandoned) {
            min(l.tx.poll_timeout());
            min(l.cancel.as_ref().and_then(|c| c.0.poll_timeout()));
            min(l.timer_c);
            min(l.no_answer);
        }
        next
    }

    /// Nothing is left to do or wait for.
    pub fn finished(&self) -> bool {
        let legs_over = self.legs.iter().all(|l| {
            l.abandoned
                || (l.tx.is_terminated() && l.cancel.as_ref().is_none_or(|c| c.0.is_terminated()))
        });
        legs_over && (self.server.is_terminated() || !self.final_sent)
    }

    pub(super) fn all_done(&self) -> bool {
        self.legs.iter().all(|l| l.done)
    }

    /// True if `resp`'s CSeq method is this transaction's, or CANCEL for
    /// an INVITE's (our CANCEL shares the INVITE's branch, RFC 3261 §9.1).
    pub(super) fn answered_by(&self, resp: &Message) -> bool {
        resp.cseq().is_some_and(|c| {
            c.method == self.method || (c.method == Method::Cancel && self.method == Method::Invite)
        })
    }

    pub(super) fn kind(&self) -> Kind {
        if self.method == Method::Invite {
            Kind::Invite
        } else {
            Kind::NonInvite
        }
    }

    pub(super) fn consider(&mut self, best: Best, local: bool) {
        let code = best.code();
        let replace = match &self.best {
            None => true,
            Some(old) => better((code, local), (old.code(), matches!(old, Best::Local(..)))),
        };
        if replace {
            self.best = Some(best);
        }
    }
}

pub(super) fn parse(data: Bytes) -> Option<Message> {
    Message::parse(data, Framing::Datagram, &Limits::default()).ok()
}

impl Core {
    pub(super) fn table(&mut self) -> &mut Table {
        // Only called on the stateful paths, which exist only with a table.
        self.stateful
            .as_mut()
            .expect("stateful paths run only when the table exists")
    }

    /// A new request: a context, 100 Trying for an INVITE, the first
    /// leg(s).
    /// `key` is the request's §17.2.3 key, as looked up by the caller;
    /// `dir_hash` its hash in the shared directory, when there is one.
    pub(super) fn new_context(
        &mut self,
        now: u64,
        msg: Message,
        key: Option<Box<[u8]>>,
        dir_hash: Option<u64>,
        flow: Flow,
        out: &mut Vec<Outcome>,
    ) {
        let method = msg.method().unwrap_or(Method::Other);
        let plan = match self.plan(&msg, flow) {
            Ok(p) => p,
            Err(o) => return out.push(o),
        };
        let lp = loop_hash(&msg);
        if let Some(o) = self.check_loop(&msg, flow, lp) {
            return out.push(o);
        }
        let Some(key) = key else {
            return out.push(self.reply(&msg, flow, 400, &"Bad Via", &[]));
        };
        let Some((slot, gen)) = self.table().alloc() else {
            self.table().stats.table_full += 1;
            // The route admitted the call (`plan`): it never started.
            if method == Method::Invite && plan.route.is_some() {
                let cseq = msg.cseq().map_or(0, |c| c.seq);
                self.cur.calls.answered(CallRef::of(&msg), cseq, 503, now);
            }
            return out.push(self.reply(
                &msg,
                flow,
                503,
                &"Service Unavailable",
                &[("Retry-After", b"5")],
            ));
        };
        let table = self.table();
        table.stats.created += 1;
        table.stats.active += 1;
        table.index.insert(key.clone(), slot);
        let dir_hash = dir_hash.filter(|_| method == Method::Invite);
        if let (Some(d), Some(h)) = (&table.dir, dir_hash) {
            d.insert(h, usize::from(table.shard));
        }
        let kind = if method == Method::Invite {
            Kind::Invite
        } else {
            Kind::NonInvite
        };
        let server = ServerTx::new(kind, flow.transport == Transport::Tcp, now, &table.timers);
        let mut ctx = Box::new(Context {
            slot,
            gen,
            key,
            dir_hash,
            timer: None,
            deadline: None,
            method,
            server,
            request: None,
            flow,
            up: upstream(&msg, flow, Vec::new()),
            last: None,
            legs: Vec::new(),
            loop_hash: lp,
            routing: None,
            route: None,
            dest: None,
            location: None,
            order: Vec::new(),
            best: None,
            challenges: Vec::new(),
            cancelled: false,
            final_sent: false,
        });
        if method == Method::Invite {
            // §16.2: an INVITE gets 100 Trying at once, so the caller stops
            // retransmitting.
            let mut data = Vec::with_capacity(400);
            response::build_from(&msg, Some(flow.remote), 100, &"Trying", b"", &[], &mut data);
            ctx.server.send_response(100, now);
            ctx.last = Some(data.clone());
            out.push(Outcome::Replied(
                Transmit {
                    data,
                    ..ctx.up.clone()
                },
                100,
            ));
        }
        let mut plan = plan;
        count_route(&self.cur, plan.route);
        ctx.route = plan.route;
        ctx.routing = Some(self.cur.clone());
        match std::mem::replace(&mut plan.next, Next::Hop(NextHop::none())) {
            Next::Hop(h) => {
                self.start_leg(now, &mut ctx, &msg, &plan, h, None, out);
            }
            Next::Location(targets) => {
                // Parallel: every contact at once; serial: best first, the
                // next on a failure (§16.6, q-value order).
                let parallel = self
                    .registrar
                    .as_ref()
                    .is_none_or(|r| r.cfg.fork == Fork::Parallel);
                ctx.order = (0..targets.len()).collect();
                ctx.location = Some(targets.into_boxed_slice());
                while let Some(t) = (!ctx.order.is_empty()).then(|| ctx.order.remove(0)) {
                    let started = self.start_location_leg(now, &mut ctx, &msg, &mut plan, t, out);
                    if started && !parallel {
                        break;
                    }
                }
            }
            Next::Destination(set) => {
                let new_call = ctx.method == Method::Invite && plan.route.is_some();
                let d = self
                    .picker
                    .order(&self.cur, set, &msg, now, new_call, &mut ctx.order);
                let parallel = self.cur.sets[d].cfg.fork == Fork::Parallel;
                ctx.dest = Some(d);
                if ctx.order.is_empty() {
                    let (code, reason) = NO_DESTINATION;
                    ctx.consider(Best::Local(code, reason), true);
                }
                while let Some(t) = (!ctx.order.is_empty()).then(|| ctx.order.remove(0)) {
                    let started = self.start_target_leg(now, &mut ctx, &msg, &plan, t, out);
                    if started && !parallel {
                        break;
                    }
                }
            }
        }
        drop(plan);
        ctx.request = Some(msg);
        self.conclude(now, &mut ctx, out);
        self.settle(ctx);
    }

    /// Forward `msg` on a new leg to target `t` of the context's
    /// destination set.
    fn start_target_leg(
        &mut self,
        now: u64,
        ctx: &mut Context,
        msg: &Message,
        plan: &Plan<'_>,
        t: usize,
        out: &mut Vec<Outcome>,
    ) -> bool {
        let Some(target) = ctx.set_target(Some(t)) else {
            return false;
        };
        // A new call over the target's cps limit: the next target.
        let new_call = ctx.method == Method::Invite && plan.route.is_some();
        let cseq = msg.cseq().map_or(0, |c| c.seq);
        if new_call
            && (target.limit.as_ref().is_some_and(|b| !b.admit(now))
                || !self
                    .cur
                    .calls
                    .on_target(CallRef::of(msg), cseq, target.calls.as_ref(), now))
        {
            let (code, reason) = NO_DESTINATION;
            ctx.consider(Best::Local(code, reason), true);
            return false;
        }
        let hop = NextHop::of_target(&target.cfg);
        let stats = target.stats.clone();
        if !self.start_leg(now, ctx, msg, plan, hop, Some(t), out) {
            return false;
        }
        stats
            .requests
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        if ctx.method == Method::Invite {
            if let Some(leg) = ctx.legs.last_mut() {
                leg.active = Some(Active::new(stats));
            }
        }
        true
    }

    /// Forward `msg` on a new leg to registered contact `t` of the
    /// context's location targets.
    fn start_location_leg(
        &mut self,
        now: u64,
        ctx: &mut Context,
        msg: &Message,
        plan: &mut Plan<'_>,
        t: usize,
        out: &mut Vec<Outcome>,
    ) -> bool {
        let Some(target) = ctx.location.as_ref().and_then(|l| l.get(t)).cloned() else {
            return false;
        };
        let hop = target.hop.clone();
        plan.retarget = Some(target);
        let started = self.start_leg(now, ctx, msg, plan, hop, Some(t), out);
        plan.retarget = None;
        started
    }

    /// Forward `msg` on a new leg to `hop`. False if it could not be sent
    /// (the reason is recorded as the leg's answer).
    #[allow(clippy::too_many_arguments)]
    fn start_leg(
        &mut self,
        now: u64,
        ctx: &mut Context,
        msg: &Message,
        plan: &Plan<'_>,
        hop: NextHop,
        target: Option<usize>,
        out: &mut Vec<Outcome>,
    ) -> bool {
        if ctx.legs.len() >= MAX_LEGS {
            return false;
        }
        let dest = match self.resolve_hop(ctx.flow, &hop) {
            Ok(d) => d,
            Err(NoHop::Answer(code, reason)) => {
                ctx.consider(Best::Local(code, reason), true);
                return false;
            }
            Err(NoHop::Drop(_)) => {
                ctx.consider(Best::local(503), true);
                return false;
            }
        };
        let leg = LegRef {
            shard: self.table().shard,
            slot: ctx.slot,
            gen: ctx.gen,
            leg: ctx.legs.len() as u16,
        };
        let mut branch = std::mem::take(&mut self.scratch);
        leg.write_branch(ctx.loop_hash, msg, &mut branch);
        let built = self.build_request(msg, ctx.flow, plan, dest, &branch);
        self.scratch = branch;
        let mut t = match built {
            Ok(t) => t,
            Err(_) => {
                ctx.consider(Best::local(503), true);
                return false;
            }
        };
        let table = self.table();
        let tx = ClientTx::new(
            ctx.kind(),
            t.transport == Transport::Tcp,
            now,
            &table.timers,
        );
        let no_answer = Some(now + table.cfg.branch_timeout_ms);
        ctx.legs.push(Leg {
            tx,
            request: Bytes::copy_from_slice(&t.data),
            transport: t.transport,
            local: t.local,
            dest: t.dest,
            conn: t.conn,
            target,
            sent_at: now,
            active: None,
            provisional: false,
            done: false,
            abandoned: false,
            timer_c: None,
            no_answer,
            cancel: None,
            cancel_wanted: false,
            ack: None,
        });
        t.leg = Some(leg);
        out.push(Outcome::Forwarded(t));
        true
    }

    /// Serial forking: start the next target, if the destination allows.
    pub(super) fn failover(&mut self, now: u64, ctx: &mut Context, out: &mut Vec<Outcome>) -> bool {
        if ctx.location.is_some() {
            return self.location_failover(now, ctx, out);
        }
        let Some(fork) = ctx.set().map(|s| s.cfg.fork) else {
            return false;
        };
        if ctx.cancelled || ctx.final_sent || fork != Fork::Serial {
            return false;
        }
        let Some(msg) = ctx.request.take() else {
            return false;
        };
        let mut started = false;
        if let Ok(plan) = self.replan(&msg, ctx.flow) {
            while !started && !ctx.order.is_empty() {
                let t = ctx.order.remove(0);
                // Skip what went down (or filled up) since the order was
                // made.
                let usable = ctx.set_target(Some(t)).is_some_and(|x| {
                    x.health.available(now)
                        && (x.cfg.max_load == 0 || x.stats.load() < x.cfg.max_load)
                });
                if !usable {
                    continue;
                }
                self.table().stats.failovers += 1;
                started = self.start_target_leg(now, ctx, &msg, &plan, t, out);
            }
        }
        ctx.request = Some(msg);
        started
    }

    /// Serial forking over registered contacts: the next one.
    fn location_failover(&mut self, now: u64, ctx: &mut Context, out: &mut Vec<Outcome>) -> bool {
        if ctx.cancelled || ctx.final_sent {
            return false;
        }
        let Some(msg) = ctx.request.take() else {
            return false;
        };
        let mut started = false;
        if let Ok(mut plan) = self.replan(&msg, ctx.flow) {
            while !started && !ctx.order.is_empty() {
                let t = ctx.order.remove(0);
                self.table().stats.failovers += 1;
                started = self.start_location_leg(now, ctx, &msg, &mut plan, t, out);
            }
        }
        ctx.request = Some(msg);
        started
    }

    /// Once every leg has its final answer and none is left to try: the
    /// best response goes up (§16.7 step 6).
    pub(super) fn conclude(&mut self, now: u64, ctx: &mut Context, out: &mut Vec<Outcome>) {
        if ctx.final_sent || !ctx.all_done() {
            return;
        }
        match ctx.best.take() {
            Some(Best::Received { leg, msg }) => {
                let code = msg.status().unwrap_or(500);
                // §16.7 step 6: a 503 would make the caller think *we* are
                // overloaded.
                let status = (code == 503).then_some((500, reason(500)));
                let extra: Vec<(HeaderName, Vec<u8>)> = if matches!(code, 401 | 407) {
                    ctx.challenges
                        .iter()
                        .filter(|(l, _, _)| *l != leg)
                        .map(|(_, n, v)| (*n, v.clone()))
                        .collect()
                } else {
                    Vec::new()
                };
                self.send_up(now, ctx, &msg, code, status, &extra, out);
            }
            Some(Best::Local(code, reason)) => {
                // RFC 4320 §4.2: no 408 to a non-INVITE; the caller's own
                // timer ends it.
                if code == 408 && ctx.method != Method::Invite {
                    return;
                }
                self.local_reply(now, ctx, code, reason, out);
            }
            None => {
                if ctx.method == Method::Invite {
                    let code = if ctx.cancelled { 487 } else { 408 };
                    self.local_reply(now, ctx, code, reason(code), out);
                }
            }
        }
        ctx.final_sent = true;
        ctx.request = None;
    }

    /// Forward a response from a leg to the caller through the server
    /// transaction.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn send_up(
        &mut self,
        now: u64,
        ctx: &mut Context,
        msg: &Message,
        code: u16,
        status: Option<(u16, &str)>,
        extra: &[(HeaderName, Vec<u8>)],
        out: &mut Vec<Outcome>,
    ) {
        let sent_code = status.map_or(code, |s| s.0);
        if !ctx.server.send_response(sent_code, now) {
            return;
        }
        if sent_code >= 200 && !ctx.final_sent {
            ctx.count_final(sent_code);
        }
        if status.is_none() {
            self.count_answer(msg);
        } else if ctx.method == Method::Invite {
            let cseq = msg.cseq().map_or(0, |c| c.seq);
            self.cur
                .calls
                .answered(CallRef::of(msg), cseq, sent_code, now);
        }
        let alias = self.response_alias(msg);
        let mut e = std::mem::take(&mut self.edits);
        e.clear();
        // Topology hiding: the Vias below ours travelled sealed in it.
        let token = msg.top_via().ok().and_then(|v| topology::via_token(&v));
        let mut param = alias.as_deref();
        if let Some(token) = token {
            // The listener the request came in on; or, if it came to one
            // of this shard's own UDP sockets (our Vias name them, and a UA
            // may send its requests in the dialog where its INVITE came
            // from), the listener that socket stands for.
            let face = self
                .me
                .by_local(ctx.up.transport, ctx.up.local)
                .or_else(|| {
                    let own = self.outbound.iter().find(|o| o.1 == ctx.up.local)?;
                    self.me.by_local(Transport::Udp, own.0)
                })
                .map(|m| Face {
                    host: &m.host,
                    port: m.port,
                    transport: ctx.up.transport,
                });
            let restored =
                topology::open_vias(&self.sealer, token)
                    .zip(face)
                    .and_then(|(vias, face)| {
                        topology::restore_response(
                            &self.sealer,
                            &mut e,
                            msg,
                            &vias,
                            face,
                            |u| self.uri_is_me(u),
                            alias.as_deref(),
                        )
                    });
            if restored.is_none() {
                self.edits = e;
                return out.push(Outcome::Dropped(Drop::TopologyToken));
            }
            param = None;
        }
        let data = upstream_response(&mut e, msg, ctx.up.transport, status, extra, param);
        self.edits = e;
        let Some(data) = data else {
            return;
        };
        // A 2xx to an INVITE is never resent by us (its retransmissions
        // come from downstream); anything else may be.
        if !(ctx.method == Method::Invite && (200..300).contains(&sent_code)) {
            ctx.last = Some(data.clone());
        }
        out.push(Outcome::Forwarded(Transmit {
            data,
            ..ctx.up.clone()
        }));
    }

    /// A response of our own through the server transaction.
    pub(super) fn local_reply(
        &mut self,
        now: u64,
        ctx: &mut Context,
        code: u16,
        reason: &str,
        out: &mut Vec<Outcome>,
    ) {
        let Some(req) = ctx.request.as_ref() else {
            return;
        };
        if !ctx.server.send_response(code, now) {
            return;
        }
        if code >= 200 && !ctx.final_sent {
            ctx.count_final(code);
        }
        if ctx.method == Method::Invite {
            let cseq = req.cseq().map_or(0, |c| c.seq);
            self.cur.calls.answered(CallRef::of(req), cseq, code, now);
        }
        let o = self.reply(req, ctx.flow, code, &reason, &[]);
        if let Outcome::Replied(t, _) = &o {
            ctx.last = Some(t.data.clone());
        }
        out.push(o);
    }
}

pub(super) fn leg_transmit(leg: &Leg, data: Vec<u8>) -> Transmit {
    Transmit {
        leg: None,
        transport: leg.transport,
        local: leg.local,
        dest: leg.dest,
        conn: leg.conn,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::better;

    #[test]
    fn best_response_selection() {
        // (code, made up locally)
        assert!(better((600, false), (404, false)), "6xx beats all");
        assert!(!better((404, false), (603, false)), "nothing beats a 6xx");
        assert!(!better((486, false), (600, false)));
        assert!(better((302, false), (404, false)), "lowest class");
        assert!(better((404, false), (503, false)));
        assert!(!better((503, false), (404, false)));
        assert!(
            better((407, false), (404, false)),
            "challenges first in 4xx"
        );
        assert!(better((401, false), (486, false)));
        assert!(!better((486, false), (401, false)));
        assert!(
            better((408, false), (408, true)),
            "received beats a local timeout"
        );
        assert!(better((480, false), (408, true)));
        assert!(!better((408, true), (480, false)));
        assert!(!better((486, false), (480, false)), "first of equals stays");
    }
}
