//! Requests through the stateless proxy: the §16.3 checks, Route
//! processing (§16.4, loose and strict routers), target selection (Route,
//! then the configured routes, then the Request-URI), loop detection, and
//! the forwarding edits (§16.6: Max-Forwards, Record-Route, Via).

use std::fmt::Display;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use super::branch::{is_loop, loop_hash, stateless_branch, StableHash};
use super::identity::Me;
use super::location::LocTarget;
use super::topology::{self, Face, Kind};
use super::{ConnId, Core, Drop, Flow, Identity, Outcome, Transmit};
use crate::config::{Target, Transport};
use crate::routing::calls::CallRef;
use crate::routing::stats::count_class;
use crate::routing::{Decision, Request as RouteRequest, Routing};
use crate::sip::uri::{Host, Uri};
use crate::sip::{response, HeaderName, Message, Method, ParseError};
use std::sync::atomic::Ordering;

/// Where the request goes next.
#[derive(Debug, Clone)]
pub(super) struct NextHop {
    host: String,
    port: u16,
    transport: Transport,
    /// The listener to send from, when the target names one.
    pub listener: Option<SocketAddr>,
    /// Over a stream: the connection to use while it is open.
    pub conn: Option<ConnId>,
    /// Send from the listener's own socket, never a shard's outbound one
    /// (a NATed UA lets in only what comes from where it registered).
    pinned: bool,
}

impl NextHop {
    /// No hop (a placeholder while a plan's `next` is taken apart).
    pub(super) fn none() -> NextHop {
        NextHop {
            host: String::new(),
            port: 0,
            transport: Transport::Udp,
            listener: None,
            conn: None,
            pinned: false,
        }
    }

    /// An address, not a name (a NAT alias, a registered UA's source):
    /// sent from the listener's own socket over UDP.
    pub(super) fn to_addr(a: SocketAddr, transport: Transport) -> NextHop {
        NextHop {
            host: a.ip().to_string(),
            port: a.port(),
            transport,
            listener: None,
            conn: None,
            pinned: transport == Transport::Udp,
        }
    }

    #[cfg(test)]
    pub(super) fn addr(&self) -> Option<(SocketAddr, Transport)> {
        Some((
            SocketAddr::new(self.host.parse().ok()?, self.port),
            self.transport,
        ))
    }

    pub(super) fn of_target(t: &Target) -> NextHop {
        NextHop {
            host: t.host.clone(),
            port: t.port,
            transport: t.transport,
            listener: t.listener,
            conn: None,
            pinned: false,
        }
    }
}

/// A resolved next hop: the address, the transport, and the listener to
/// send from when the target names one.
#[derive(Debug, Clone, Copy)]
pub(super) struct Dest {
    pub addr: SocketAddr,
    pub transport: Transport,
    pub from: Option<SocketAddr>,
    pub conn: Option<ConnId>,
    pub pinned: bool,
}

/// Why a next hop cannot be used: an answer of our own (code and reason
/// phrase), or a drop. The stateless proxy acts on it at once; the
/// stateful one keeps the answer as the leg's (§16.7 step 6), so both say
/// the same words.
pub(super) enum NoHop {
    Answer(u16, &'static str),
    Drop(Drop),
}

/// The answer when no target of a destination set can be tried (all down,
/// drained or at their load limit), in both modes.
pub(super) const NO_DESTINATION: (u16, &str) = (503, "No Destination Available");

/// Methods Siphon answers in Allow (OPTIONS to the proxy itself).
const ALLOW: &[u8] = b"INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, PRACK, SUBSCRIBE, NOTIFY, PUBLISH, INFO, REFER, MESSAGE, UPDATE";

/// A request that passed the §16.3 checks and Route processing (§16.4):
/// everything forwarding needs, borrowed from the message.
pub(super) struct Plan<'m> {
    pub method: Method,
    max_forwards: Option<u8>,
    routes: Vec<Uri<'m>>,
    /// Leading Route values that name us.
    own_routes: usize,
    /// The Request-URI a strict router moved to the end of Route.
    fixed_ruri: Option<Uri<'m>>,
    /// Where the request is addressed: the Request-URI, or `fixed_ruri`.
    target: Uri<'m>,
    /// The next hop (the first remaining Route) is a strict router.
    strict_next: bool,
    pub next: Next,
    /// A registered contact the request goes to (§16.5): its URI becomes
    /// the Request-URI, its Path values Route headers (RFC 3327).
    pub retarget: Option<LocTarget>,
    /// The Request-URI after the matching route's user rewrite.
    pub rewritten: Option<Vec<u8>>,
    /// The configured route that matched (counted once per request by
    /// the caller: a failover plans again).
    pub route: Option<usize>,
    /// Topology hiding: the request leaves with our Via, Record-Route and
    /// Contact only (see `topology`).
    pub hide: bool,
    /// Route values opened from our own Route entry (a hidden dialog's
    /// route set beyond us), put on top.
    restore: Vec<Vec<u8>>,
}

/// Where the next hop comes from.
pub(super) enum Next {
    /// The first remaining Route, or the Request-URI.
    Hop(NextHop),
    /// A configured route matched: a target of this destination set.
    Destination(usize),
    /// The location service: the live contacts of the Request-URI's AOR,
    /// best first.
    Location(Vec<LocTarget>),
}

impl Core {
    /// The stateless proxy: plan, pick a next hop, forward.
    pub(super) fn request(&mut self, msg: &Message, flow: Flow) -> Outcome {
        let mut plan = match self.plan(msg, flow) {
            Ok(p) => p,
            Err(out) => return out,
        };
        count_route(&self.cur, plan.route);
        let out = self.forward(msg, flow, &mut plan);
        // An INVITE not forwarded after all is a call that did not start.
        if plan.method == Method::Invite
            && plan.route.is_some()
            && !matches!(out, Outcome::Forwarded(_))
        {
            let cseq = msg.cseq().map_or(0, |c| c.seq);
            self.cur
                .calls
                .answered(CallRef::of(msg), cseq, 500, self.now_ms);
        }
        out
    }

    /// The stateless proxy's next hop for a planned request, and the
    /// request sent there.
    fn forward(&mut self, msg: &Message, flow: Flow, plan: &mut Plan<'_>) -> Outcome {
        let hop = match &mut plan.next {
            Next::Hop(h) => h.clone(),
            // Stateless: the best contact only.
            Next::Location(targets) => {
                let t = targets.swap_remove(0);
                let hop = t.hop.clone();
                plan.retarget = Some(t);
                hop
            }
            &mut Next::Destination(set) => {
                let new_call = plan.method == Method::Invite && plan.route.is_some();
                let set =
                    self.picker
                        .order(&self.cur, set, msg, self.now_ms, new_call, &mut self.order);
                // The first in order whose cps limit takes the call (the
                // order left out the targets over theirs; two shards may
                // race for the last place).
                let now = self.now_ms;
                let targets = &self.cur.sets[set].targets;
                let calls = &self.cur.calls;
                let (call, cseq) = (CallRef::of(msg), msg.cseq().map_or(0, |c| c.seq));
                // A retransmission of a call already on a target with
                // max_calls goes there again (that target may be full with
                // this very call, so the order left it out).
                let held = calls.target(call).filter(|_| new_call).and_then(|h| {
                    self.cur.sets.iter().enumerate().find_map(|(s, x)| {
                        let is_h = |t: &crate::routing::SetTarget| {
                            t.calls.as_ref().is_some_and(|c| Arc::ptr_eq(c, &h))
                        };
                        Some((s, x.targets.iter().position(is_h)?))
                    })
                });
                let pick = held.or_else(|| {
                    let t = self.order.iter().copied().find(|&t| {
                        let t = &targets[t];
                        !new_call
                            || (t.limit.as_ref().is_none_or(|b| b.admit(now))
                                && calls.on_target(call, cseq, t.calls.as_ref(), now))
                    })?;
                    Some((set, t))
                });
                let Some((set, t)) = pick else {
                    let (code, reason) = NO_DESTINATION;
                    return self.reply(msg, flow, code, &reason, &[]);
                };
                let t = &self.cur.sets[set].targets[t];
                t.stats.requests.fetch_add(1, Ordering::Relaxed);
                NextHop::of_target(&t.cfg)
            }
        };
        let dest = match self.resolve_hop(flow, &hop) {
            Ok(d) => d,
            Err(NoHop::Answer(code, reason)) => return self.reply(msg, flow, code, &reason, &[]),
            Err(NoHop::Drop(why)) => return Outcome::Dropped(why),
        };
        let lp = loop_hash(msg);
        if let Some(out) = self.check_loop(msg, flow, lp) {
            return out;
        }
        let mut branch = std::mem::take(&mut self.scratch);
        stateless_branch(msg, lp, &mut branch, flow.conn);
        let out = match self.build_request(msg, flow, plan, dest, &branch) {
            Ok(t) => Outcome::Forwarded(t),
            Err(drop) => Outcome::Dropped(drop),
        };
        self.scratch = branch;
        out
    }

    /// [`Core::plan`] again for a call already admitted (a failover to
    /// the next target): its call-rate limits are not charged twice.
    #[allow(clippy::result_large_err)]
    pub(super) fn replan<'m>(&mut self, msg: &'m Message, flow: Flow) -> Result<Plan<'m>, Outcome> {
        self.replanning = true;
        let plan = self.plan(msg, flow);
        self.replanning = false;
        plan
    }

    /// The §16.3 checks and §16.4 Route processing. `Err` is what to do
    /// instead of forwarding: a local answer (OPTIONS to us, 400, 404, 420,
    /// 483, …).
    // The error is what to send instead: an Outcome moved once, on the
    // path that does not forward.
    #[allow(clippy::result_large_err)]
    pub(super) fn plan<'m>(&mut self, msg: &'m Message, flow: Flow) -> Result<Plan<'m>, Outcome> {
        let method = msg.method().unwrap_or(Method::Other);
        // §16.3 step 1: reasonable syntax.
        if let Err(e) = msg.validate() {
            return Err(self.reply(msg, flow, e.status(), &e, &[]));
        }
        // §16.3 step 2: a URI scheme we understand.
        let ruri = match msg.request_uri() {
            Ok(u) => u,
            Err(e) => return Err(self.reply(msg, flow, e.status(), &e, &[])),
        };

        // RFC 3261 §12.2: a request with a To tag belongs to a dialog; it
        // follows the dialog's route set, then its Request-URI (the remote
        // target). The rules, the location service, ACLs and Digest apply
        // to initial requests only (a dialog was admitted when it was
        // created). REGISTER never belongs to a dialog (§10.2).
        let to_tag = msg.to().ok().and_then(|t| t.tag());
        let in_dialog = to_tag.is_some() && method != Method::Register;
        // §17.2.1, §8.2.7: the ACK for a final answer of our own carries
        // the To tag we put in it, which `to_tag` derives from what the
        // ACK shares with its INVITE (Call-ID, From tag, branch). That
        // transaction ends here; the ACK goes nowhere else.
        if method == Method::Ack && to_tag.is_some_and(|t| is_own_tag(msg, t)) {
            return Err(Outcome::Dropped(Drop::OwnAnswerAck));
        }
        // Overload: new work is refused first; what keeps calls in
        // progress going (requests inside dialogs, ACK, CANCEL, responses)
        // flows on.
        if !in_dialog
            && !self.replanning
            && matches!(method, Method::Invite | Method::Register)
            && self.overloaded()
        {
            self.overload_rejected += 1;
            let retry: &[(&str, &[u8])] = &[("Retry-After", b"2")];
            return Err(self.reply(msg, flow, 503, &"Service Unavailable", retry));
        }

        // §16.4: drop the Route values that name us (one, or two after a
        // double Record-Route); undo a strict router's rewrite.
        let mut routes: Vec<Uri<'_>> = Vec::new();
        for r in msg.routes() {
            match r.map(|a| a.uri()) {
                Ok(Ok(u)) => routes.push(u),
                _ => return Err(self.reply(msg, flow, 400, &"Bad Route", &[])),
            }
        }
        let ruri_is_ours = self.uri_is_me(&ruri);
        let strict_fix = ruri_is_ours && ruri.user.is_none() && ruri.lr() && !routes.is_empty();
        let own_routes = routes.iter().take_while(|u| self.uri_is_me(u)).count();
        let mut remaining = &routes[own_routes..];
        // §16.4: a strict router put our Record-Route URI in the Request-URI
        // and the real target at the end of Route.
        let fixed_ruri = if strict_fix {
            let (last, rest) = remaining
                .split_last()
                .map_or((None, remaining), |(l, r)| (Some(*l), r));
            remaining = rest;
            last
        } else {
            None
        };
        let target = fixed_ruri.unwrap_or(ruri);
        let to_me = fixed_ruri.is_none() && ruri_is_ours && remaining.is_empty();

        // OPTIONS to the proxy itself is answered here (§11, §16.3 step 3).
        if method == Method::Options && to_me && ruri.user.is_none() {
            let allow: &[(&str, &[u8])] = &[
                ("Allow", ALLOW),
                ("Accept", b"application/sdp"),
                ("Supported", b""),
                ("Server", self.cfg.server.user_agent.as_bytes()),
            ];
            return Err(self.reply(msg, flow, 200, &"OK", allow));
        }
        // §16.3 step 3: Max-Forwards.
        let max_forwards = msg.max_forwards().ok().flatten();
        if max_forwards == Some(0) {
            return Err(self.reply(msg, flow, 483, &"Too Many Hops", &[]));
        }
        // §16.3 step 5: we support no extensions a proxy must understand.
        if !matches!(method, Method::Ack | Method::Cancel) {
            let tags: Vec<&[u8]> = msg.proxy_require().filter_map(Result::ok).collect();
            if !tags.is_empty() {
                let unsupported = tags.join(&b", "[..]);
                return Err(self.reply(
                    msg,
                    flow,
                    420,
                    &"Bad Extension",
                    &[("Unsupported", &unsupported)],
                ));
            }
        }

        // §10.3 step 1: a REGISTER for a domain we serve (or for us) is
        // the registrar's; any other is proxied.
        let to_registrar = remaining.is_empty()
            && fixed_ruri.is_none()
            && self
                .registrar
                .as_ref()
                .is_some_and(|r| ruri_is_ours || matches!(ruri.host, Host::Name(h) if r.serves(h)));
        if method == Method::Register && to_registrar {
            return Err(self.registrar_request(msg, flow));
        }
        // Digest authentication of initial requests, where configured.
        if !in_dialog {
            if let Some(o) = self.challenge_request(msg, flow, method) {
                return Err(o);
            }
        }

        // §16.5/16.6: the next hop. A Route first. In a dialog, then the
        // Request-URI (404 if that is us: the request reached us without
        // our Record-Route). Else the configured routes; then the location
        // service for a domain we serve; then the Request-URI, unless that
        // is us.
        let mut strict_next = remaining.first().is_some_and(|u| !u.lr());
        let mut rewritten = None;
        let mut matched = None;
        let mut hide = false;
        // A request in a hidden dialog (see `topology`): our Contact's user
        // part seals the remote target, our Route entry the route set
        // beyond us. A token that does not open is a dialog we cannot
        // follow (another key): 404, as for any dialog not through us.
        let mut restore = Vec::new();
        let sealed_target = match (in_dialog && ruri_is_ours && remaining.is_empty(), ruri.user) {
            (true, Some(user)) if fixed_ruri.is_none() => self.sealer.open(Kind::Contact, user),
            _ => None,
        };
        let sealed_route = routes[..own_routes]
            .iter()
            .any(|u| u.param(topology::PARAM).is_some());
        if sealed_target.is_some() || (in_dialog && sealed_route) {
            for u in &routes[..own_routes] {
                match topology::open_routes(&self.sealer, u) {
                    Some(v) => restore.extend(v),
                    None => {
                        return Err(self.reply(msg, flow, 404, &"Not Found (No Dialog Route)", &[]))
                    }
                }
            }
            hide = true;
            strict_next = false;
        }
        let failure_ack = in_dialog
            && own_routes == 0
            && remaining.is_empty()
            && !hide
            && !to_me
            && self.hidden_failure_ack(msg, flow, method, &target);
        let next = if hide && (!restore.is_empty() || sealed_target.is_some()) {
            let hop = match restore.first() {
                Some(r) => crate::sip::NameAddr::parse(r, HeaderName::Route)
                    .ok()
                    .and_then(|a| a.uri().ok().map(|u| uri_hop(&u))),
                None => None,
            };
            if let Some(contact) = sealed_target {
                let Ok(uri) = Uri::parse(&contact) else {
                    return Err(self.reply(msg, flow, 404, &"Not Found (No Dialog Route)", &[]));
                };
                let aliased = super::nat::alias_hop(&uri);
                let target_hop = aliased
                    .as_ref()
                    .map_or_else(|| uri_hop(&uri), |a| a.0.clone());
                rewritten = Some(aliased.map_or(contact.clone(), |a| a.1));
                Next::Hop(hop.unwrap_or(target_hop))
            } else {
                match hop {
                    Some(h) => Next::Hop(h),
                    None => return Err(self.reply(msg, flow, 400, &"Bad Route", &[])),
                }
            }
        } else if let Some(r) = remaining.first() {
            Next::Hop(uri_hop(r))
        } else if in_dialog && !failure_ack {
            // A NAT alias we added to this Contact (see `nat`).
            if let Some((hop, uri)) = super::nat::alias_hop(&target) {
                rewritten = Some(uri);
                Next::Hop(hop)
            } else if to_me || to_registrar {
                return Err(self.reply(msg, flow, 404, &"Not Found (No Dialog Route)", &[]));
            } else {
                Next::Hop(uri_hop(&target))
            }
        } else if let Some((route, decision, rewrite)) = self.configured_route(msg, flow, &target) {
            if let Some(user) = rewrite {
                let mut uri = target;
                uri.user = Some(&user);
                let mut text = Vec::with_capacity(64);
                uri.write_to(&mut text);
                rewritten = Some(text);
            }
            // An ACK or CANCEL belongs to an INVITE the route has counted.
            matched = (!matches!(method, Method::Ack | Method::Cancel)).then_some(route);
            hide = self.cur.routes.get(route).is_some_and(|r| r.cfg.hide);
            // Call-rate limits: new calls only (this is an initial request).
            if method == Method::Invite && !self.admit_call(route, &decision) {
                count_route(&self.cur, matched);
                count_route_final(&self.cur, matched, 503);
                let retry: &[(&str, &[u8])] = &[("Retry-After", b"1")];
                return Err(self.reply(msg, flow, 503, &"Service Unavailable", retry));
            }
            let next = match decision {
                Decision::Set(set) => Next::Destination(set),
                Decision::Location => self.location(msg, flow, &target)?,
                Decision::Reply(code, reason) => {
                    count_route(&self.cur, matched);
                    count_route_final(&self.cur, matched, code);
                    return Err(self.reply(msg, flow, code, &reason, &[]));
                }
                Decision::Drop => {
                    count_route(&self.cur, matched);
                    return Err(Outcome::Dropped(Drop::Policy));
                }
            };
            // Concurrent calls: a place on the route and the set until the
            // call ends (see `routing::calls`).
            if method == Method::Invite && !self.replanning {
                let set = match next {
                    Next::Destination(s) => self.cur.sets[s].calls.as_ref(),
                    _ => None,
                };
                let counts = [self.cur.routes[route].calls.as_ref(), set];
                let cseq = msg.cseq().map_or(0, |c| c.seq);
                if !self
                    .cur
                    .calls
                    .admit(CallRef::of(msg), cseq, counts, self.now_ms)
                {
                    count_route(&self.cur, matched);
                    count_route_final(&self.cur, matched, 503);
                    let retry: &[(&str, &[u8])] = &[("Retry-After", b"1")];
                    return Err(self.reply(msg, flow, 503, &"Service Unavailable", retry));
                }
            }
            next
        } else if to_registrar && target.user.is_some() {
            self.location(msg, flow, &target)?
        } else if to_me {
            return Err(self.reply(msg, flow, 404, &"Not Found", &[]));
        } else {
            Next::Hop(uri_hop(&target))
        };
        // A BYE that passed the checks and has a next hop ends its call
        // (one answered here, 483 or 420, never reaches the other side).
        if in_dialog && method == Method::Bye && !self.cur.calls.is_empty() {
            let from = msg.from().ok().and_then(|f| f.tag()).unwrap_or_default();
            let to = to_tag.unwrap_or_default();
            self.cur.calls.end(msg.call_id(), [from, to]);
        }
        Ok(Plan {
            method,
            max_forwards,
            own_routes,
            fixed_ruri,
            target,
            strict_next,
            next,
            routes,
            retarget: None,
            rewritten,
            route: matched,
            hide,
            restore,
        })
    }

    /// The address and transport of a next hop, or why not: a local
    /// answer (503 unresolvable, 403 a forbidden address) or a drop (no
    /// listener).
    pub(super) fn resolve_hop(&self, flow: Flow, hop: &NextHop) -> Result<Dest, NoHop> {
        let Some(dest_ip) = self.resolve(&hop.host, flow.remote.ip().is_ipv4()) else {
            return Err(NoHop::Answer(503, "Unresolvable Destination"));
        };
        let dest = SocketAddr::new(dest_ip, hop.port);
        if bad_destination(dest.ip()) {
            return Err(NoHop::Answer(403, "Forbidden Destination"));
        }
        if self.me.listener(hop.transport, dest).is_none() {
            return Err(NoHop::Drop(Drop::NoListener));
        }
        Ok(Dest {
            addr: dest,
            transport: hop.transport,
            from: hop.listener,
            conn: hop.conn,
            pinned: hop.pinned,
        })
    }

    /// §16.3 step 4: a Via of ours with the loop part we would put in our
    /// branch means the request has been here in exactly this state: 482.
    pub(super) fn check_loop(&self, msg: &Message, flow: Flow, loop_hash: u64) -> Option<Outcome> {
        let looped = msg.vias().flatten().any(|v| {
            v.branch().is_some_and(|b| is_loop(b, loop_hash)) && self.me.is_me(v.host, v.port)
        });
        looped.then(|| self.reply(msg, flow, 482, &"Loop Detected", &[]))
    }

    /// The forwarded request (§16.6) with our Via carrying `branch`.
    /// RFC 3261 §18.1.1: a request larger than udp_max_size bound for a
    /// UDP next hop goes over TCP when we can. Built for UDP first; the
    /// rare oversized one is built again for TCP.
    pub(super) fn build_request(
        &mut self,
        msg: &Message,
        flow: Flow,
        plan: &Plan<'_>,
        to: Dest,
        branch: &str,
    ) -> Result<Transmit, Drop> {
        let (dest, mut transport, from) = (to.addr, to.transport, to.from);
        let limit = self.cfg.proxy.udp_max_size;
        let method = plan.method;
        let routes = &plan.routes;
        let own_routes = plan.own_routes;
        let remaining = &routes[own_routes..];
        loop {
            let Some((out_me, sent_by, local)) =
                sender(&self.me, &self.outbound, transport, dest, from, to.pinned)
            else {
                return Err(Drop::NoListener);
            };
            // The edits (§16.6). Received/rport first: it rewrites the top Via
            // value, above which ours goes.
            let mut e = std::mem::take(&mut self.edits);
            e.clear();
            let dialog_method = matches!(
                method,
                Method::Invite
                    | Method::Subscribe
                    | Method::Refer
                    | Method::Notify
                    | Method::Update
            );
            let alias = dialog_method
                .then(|| self.nat_alias(msg, flow.remote, flow.transport, true))
                .flatten();
            let mut via = format!(
                "SIP/2.0/{} {sent_by};branch={branch}",
                via_transport(transport),
            )
            .into_bytes();
            if plan.hide {
                // Topology hiding: our Via, Record-Route and Contact only.
                let face = Face {
                    host: &out_me.host,
                    port: out_me.port,
                    transport,
                };
                let sealed = topology::hide_request(
                    &self.sealer,
                    &mut e,
                    msg,
                    flow.remote,
                    face,
                    method,
                    alias.as_deref(),
                );
                via.extend_from_slice(&sealed);
            } else {
                e.stamp_top_via(msg, flow.remote);
            }
            e.insert_via(msg, &via);
            e.set_max_forwards(
                msg,
                plan.max_forwards
                    .map_or(self.cfg.proxy.max_forwards, |n| n - 1),
            );
            // Route values to remove: ours (§16.4), the last one when undoing a
            // strict router (§16.4), the first remaining one when the next hop
            // is a strict router (§16.6 step 6); all in one pass.
            let last = routes.len().wrapping_sub(1);
            let _ = e.retain_list_values(msg, HeaderName::Route, |k| {
                !(k < own_routes
                    || (plan.fixed_ruri.is_some() && k == last)
                    || (plan.strict_next && k == own_routes))
            });
            if let Some(t) = &plan.retarget {
                e.set_request_uri(msg, &t.contact);
                for p in t.path.iter() {
                    e.add_header(msg, "Route", p);
                }
            } else if let Some(uri) = &plan.rewritten {
                e.set_request_uri(msg, uri);
            } else if let Some(fixed) = plan.fixed_ruri {
                let mut text = Vec::new();
                fixed.write_to(&mut text);
                e.set_request_uri(msg, &text);
            }
            if plan.strict_next {
                // The next hop gets the Request-URI; the old one goes to the
                // end of Route.
                let mut text = Vec::new();
                remaining[0].write_to(&mut text);
                e.set_request_uri(msg, &text);
                let mut old = b"<".to_vec();
                plan.target.write_to(&mut old);
                old.push(b'>');
                e.add_header(msg, "Route", &old);
            }
            for r in &plan.restore {
                e.insert_route(msg, r);
            }
            if self.cfg.proxy.record_route
                && !plan.hide
                && !matches!(method, Method::Ack | Method::Cancel)
            {
                // Double Record-Route when the request leaves by another
                // listener (RFC 5658): the outbound side on top.
                let in_me = self.me.by_local(flow.transport, flow.local);
                e.insert_record_route(
                    msg,
                    rr_value(&out_me.host, out_me.port, transport).as_bytes(),
                );
                if let Some(in_me) =
                    in_me.filter(|m| m.addr != out_me.addr || m.transport != transport)
                {
                    e.insert_record_route(
                        msg,
                        rr_value(&in_me.host, in_me.port, in_me.transport).as_bytes(),
                    );
                }
            }
            if let Some(alias) = alias.filter(|_| !plan.hide) {
                e.add_contact_uri_param(msg, &alias);
            }
            // Header rules of the route that matched and of the set the
            // request goes to (initial requests only: in-dialog ones match
            // no route).
            let by_route = plan
                .route
                .and_then(|i| self.cur.routes.get(i))
                .map(|r| &r.cfg.headers);
            let by_set = match plan.next {
                Next::Destination(s) => self.cur.sets.get(s).map(|s| &s.cfg.headers),
                _ => None,
            };
            for rules in [by_route, by_set].into_iter().flatten() {
                super::headers::apply(&mut e, msg, flow, rules);
            }
            if transport == Transport::Tcp {
                e.ensure_content_length(msg);
            }
            let mut data = Vec::with_capacity(msg.as_bytes().len() + 256);
            e.apply(msg, &mut data);
            self.edits = e;
            let tcp = self.me.listener(Transport::Tcp, dest).is_some();
            if transport == Transport::Udp && limit > 0 && data.len() > limit && tcp {
                transport = Transport::Tcp;
                continue;
            }
            return Ok(Transmit {
                leg: None,
                transport,
                local,
                dest,
                conn: to.conn.filter(|_| transport == to.transport),
                data,
            });
        }
    }

    /// A request whose bytes did not parse: answer with the parser's reason
    /// when there is a Via to answer to; never answer an ACK.
    pub(super) fn reject_unparsable(&self, e: &ParseError, flow: Flow) -> Outcome {
        let Some(req) = e.message() else {
            return Outcome::Dropped(Drop::Garbage);
        };
        if req.method() == Some(Method::Ack) {
            return Outcome::Dropped(Drop::Ack);
        }
        let mut data = Vec::with_capacity(512);
        let tag = to_tag(req);
        let server: &[(&str, &[u8])] = &[("Server", self.cfg.server.user_agent.as_bytes())];
        if !response::build_error(e, tag.as_bytes(), server, &mut data) {
            return Outcome::Dropped(Drop::Garbage);
        }
        match reply_to(req, flow, data, e.error().status()) {
            Outcome::Replied(t, code) => Outcome::Rejected(t, code),
            other => other,
        }
    }

    /// Answer `req` with `code reason` (RFC 3261 §8.2.6). ACKs get nothing.
    pub(super) fn reply(
        &self,
        req: &Message,
        flow: Flow,
        code: u16,
        reason: &dyn Display,
        extra: &[(&str, &[u8])],
    ) -> Outcome {
        if req.method() == Some(Method::Ack) {
            return Outcome::Dropped(Drop::Ack);
        }
        let mut data = Vec::with_capacity(512);
        let tag = to_tag(req);
        let mut headers: Vec<(&str, &[u8])> = extra.to_vec();
        if !extra.iter().any(|(n, _)| *n == "Server") {
            headers.push(("Server", self.cfg.server.user_agent.as_bytes()));
        }
        response::build_from(
            req,
            Some(flow.remote),
            code,
            reason,
            tag.as_bytes(),
            &headers,
            &mut data,
        );
        reply_to(req, flow, data, code)
    }

    /// The URI names one of our listeners: host and port, the port
    /// defaulting by scheme (RFC 3261 §19.1.2: 5061 for SIPS).
    pub(super) fn uri_is_me(&self, u: &Uri<'_>) -> bool {
        let port = Some(u.port_or_default());
        match u.host {
            Host::Name(h) => self.me.is_me(h, port),
            Host::V4(a) => self.me.is_me_ip(a.into(), port),
            Host::V6(_, a) => self.me.is_me_ip(a.into(), port),
            Host::None => false,
        }
    }

    /// The first configured route that matches: its index, what it says
    /// to do, and the Request-URI user after its rewrite (if it has one).
    fn configured_route(
        &self,
        msg: &Message,
        flow: Flow,
        ruri: &Uri<'_>,
    ) -> Option<(usize, Decision, Option<Vec<u8>>)> {
        if self.cur.routes.is_empty() {
            return None;
        }
        let host = match ruri.host {
            Host::Name(h) => String::from_utf8_lossy(h).to_ascii_lowercase(),
            Host::V4(a) => a.to_string(),
            Host::V6(_, a) => a.to_string(),
            Host::None => String::new(),
        };
        let user = ruri.user_decoded();
        let req = RouteRequest {
            msg,
            host: &host,
            user: user.as_deref(),
            source: flow.remote.ip(),
        };
        let (i, decision) = self.cur.decide(&req)?;
        let w = &self.cur.routes[i].cfg.rewrite;
        let rewrite = (!w.is_none()).then(|| {
            let mut u = w.prepend.as_bytes().to_vec();
            u.extend_from_slice(strip_chars(ruri.user.unwrap_or_default(), w.strip));
            u
        });
        Some((i, decision, rewrite))
    }

    /// An ACK with a To tag but no Route of ours nor a token (the caller
    /// checks), not to us, that a hiding route matches, while every dialog
    /// through us is record-routed: the ACK for a non-2xx answer to an
    /// INVITE that route took (a stateless proxy has no transaction to
    /// absorb it), not one in a dialog. It is routed, and hidden, as that
    /// INVITE was.
    fn hidden_failure_ack(
        &self,
        msg: &Message,
        flow: Flow,
        method: Method,
        target: &Uri<'_>,
    ) -> bool {
        method == Method::Ack
            && self.cfg.proxy.record_route
            && self
                .configured_route(msg, flow, target)
                .is_some_and(|(r, ..)| self.cur.routes.get(r).is_some_and(|r| r.cfg.hide))
    }

    /// A new call through route `route` to `decision`: within the route's
    /// and the destination set's `cps` (each call takes a token from both;
    /// a refused one is counted where it was refused).
    fn admit_call(&self, route: usize, decision: &Decision) -> bool {
        if self.replanning {
            return true;
        }
        let now = self.now_ms;
        let by_route = self.cur.routes[route]
            .limit
            .as_ref()
            .is_none_or(|b| b.admit(now));
        by_route
            && match decision {
                Decision::Set(s) => self.cur.sets[*s]
                    .limit
                    .as_ref()
                    .is_none_or(|b| b.admit(now)),
                _ => true,
            }
    }

    pub(super) fn resolve(&self, host: &str, prefer_v4: bool) -> Option<IpAddr> {
        host.parse()
            .ok()
            .or_else(|| self.hosts.lookup(host, prefer_v4))
    }
}

/// `user` (as written in the URI) without its first `n` characters, an
/// escape (`%HH`) counting as one, so that a rewrite never cuts one in
/// half.
fn strip_chars(user: &[u8], n: usize) -> &[u8] {
    let mut at = 0;
    for _ in 0..n {
        if at >= user.len() {
            break;
        }
        at += if user[at] == b'%' { 3 } else { 1 };
    }
    user.get(at..).unwrap_or_default()
}

/// A final response `code` sent upstream for a request of route `route`.
pub(super) fn count_route_final(routing: &Routing, route: Option<usize>, code: u16) {
    if let Some(r) = route.and_then(|i| routing.routes.get(i)) {
        count_class(&r.responses, code);
    }
}

/// One more request through route `route`, if one matched.
pub(super) fn count_route(routing: &Routing, route: Option<usize>) {
    if let Some(r) = route.and_then(|i| routing.routes.get(i)) {
        r.matched.fetch_add(1, Ordering::Relaxed);
    }
}

/// Next hop from a SIP URI: maddr over host, port, transport parameter.
pub(super) fn uri_hop(u: &Uri<'_>) -> NextHop {
    let host = match (u.maddr(), u.host) {
        (Some(m), _) => String::from_utf8_lossy(m).into_owned(),
        (None, Host::Name(h)) => String::from_utf8_lossy(h).into_owned(),
        (None, Host::V4(a)) => a.to_string(),
        (None, Host::V6(_, a)) => a.to_string(),
        (None, Host::None) => String::new(),
    };
    let transport = match u.transport() {
        Some(t) if t.eq_ignore_ascii_case(b"tcp") => Transport::Tcp,
        _ => Transport::Udp,
    };
    NextHop {
        host,
        port: u.port.unwrap_or(5060),
        transport,
        listener: None,
        conn: None,
        pinned: false,
    }
}

/// The listener a request to `dest` leaves by (the one named by `from`,
/// else the first of its transport and address family), the Via sent-by
/// that names it, and the local address to send from: over UDP this
/// shard's own socket for that listener when it has one (`outbound`), so
/// that the response comes back to this shard.
pub(super) fn sender<'a>(
    me: &'a Identity,
    outbound: &'a [(SocketAddr, SocketAddr, String)],
    transport: Transport,
    dest: SocketAddr,
    from: Option<SocketAddr>,
    pinned: bool,
) -> Option<(&'a Me, &'a str, SocketAddr)> {
    let named = from.and_then(|a| me.by_local(transport, a));
    let out = named.or_else(|| me.listener(transport, dest))?;
    let own = match transport {
        Transport::Udp if !pinned => outbound.iter().find(|o| o.0 == out.addr),
        _ => None,
    };
    let (sent_by, local) = own.map_or((out.sent_by(), out.addr), |o| (o.2.as_str(), o.1));
    Some((out, sent_by, local))
}

pub(super) fn via_transport(t: Transport) -> &'static str {
    match t {
        Transport::Udp => "UDP",
        Transport::Tcp => "TCP",
    }
}

fn rr_value(host: &str, port: u16, t: Transport) -> String {
    match t {
        Transport::Udp => format!("<sip:{host}:{port};lr>"),
        Transport::Tcp => format!("<sip:{host}:{port};transport=tcp;lr>"),
    }
}

/// Broadcast, multicast and unspecified addresses are never a next hop.
pub(super) fn bad_destination(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(a) => a.is_broadcast() || a.is_multicast() || a.is_unspecified(),
        IpAddr::V6(a) => a.is_multicast() || a.is_unspecified(),
    }
}

/// A To tag that is the same for every retransmission of a request, as a
/// stateless UAS must generate it (RFC 3261 §8.2.7).
pub(super) fn to_tag(req: &Message) -> String {
    let mut h = StableHash::default();
    h.write(req.call_id());
    h.write(req.from().ok().and_then(|f| f.tag()).unwrap_or_default());
    h.write(
        req.top_via()
            .ok()
            .and_then(|v| v.branch())
            .unwrap_or_default(),
    );
    format!("sl{:012x}", h.finish() >> 16)
}

/// `tag` (a To tag) is the one [`to_tag`] gives `req`: the request is
/// the ACK for an answer we generated (its Call-ID, From tag and branch
/// are its INVITE's, RFC 3261 §17.1.1.3).
fn is_own_tag(req: &Message, tag: &[u8]) -> bool {
    tag.starts_with(b"sl") && to_tag(req).as_bytes() == tag
}

/// Where a locally generated response goes (RFC 3261 §18.2.2, RFC 3581
/// §4): over TCP back to the peer; over UDP to the source address, at the
/// rport (the source port) if asked for, else at the sent-by port.
fn reply_to(req: &Message, flow: Flow, data: Vec<u8>, code: u16) -> Outcome {
    Outcome::Replied(upstream(req, flow, data), code)
}

/// A response to `req`, received on `flow`, addressed as [`reply_to`]
/// says.
pub(super) fn upstream(req: &Message, flow: Flow, data: Vec<u8>) -> Transmit {
    let dest = match flow.transport {
        Transport::Tcp => flow.remote,
        Transport::Udp => match req.top_via() {
            Ok(v) if v.rport().is_none() => {
                SocketAddr::new(flow.remote.ip(), v.port.unwrap_or(5060))
            }
            _ => flow.remote,
        },
    };
    Transmit {
        leg: None,
        transport: flow.transport,
        local: flow.local,
        dest,
        conn: flow.conn,
        data,
    }
}

#[cfg(test)]
mod tests {
    use super::strip_chars;

    #[test]
    fn a_rewrite_strips_characters_not_halves_of_escapes() {
        assert_eq!(strip_chars(b"+15551234", 1), b"15551234");
        assert_eq!(strip_chars(b"%2B15551234", 1), b"15551234");
        assert_eq!(strip_chars(b"%2B1", 2), b"");
        assert_eq!(strip_chars(b"12", 5), b"");
        assert_eq!(strip_chars(b"1%2", 2), b"", "a truncated escape at the end");
        assert_eq!(strip_chars(b"", 3), b"");
    }
}
