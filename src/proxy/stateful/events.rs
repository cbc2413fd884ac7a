//! What happens to a response context: a response on one of its legs
//! (§16.7), a failed leg, a CANCEL or ACK from the caller, a retransmitted
//! request, a timer, a transport error.

use bytes::Bytes;

use super::super::{Core, Flow, Outcome, Transmit};
use super::build::derived_request;
use super::context::{due, leg_transmit, parse, Best, Context, MAX_TIMER_STEPS};
use std::sync::atomic::Ordering;

use crate::config::Transport;
use crate::routing::health::Why;
use crate::sip::{HeaderName, Message, Method};
use crate::transaction::{ClientEvent, ClientState, ClientTx, Kind, ServerEvent, ServerState};

impl Core {
    /// The runtime could not send the request of a leg (RFC 3261 §17.1.4):
    /// the leg fails as a 408 and the next target is tried.
    pub(super) fn leg_transport_error(
        &mut self,
        now: u64,
        mut ctx: Box<Context>,
        i: usize,
        out: &mut Vec<Outcome>,
    ) {
        if let Some(leg) = ctx.legs.get_mut(i) {
            if leg.tx.handle_transport_error() == ClientEvent::TimedOut {
                leg.abandoned = true;
                self.table().stats.transport_errors += 1;
                self.leg_failed(now, &mut ctx, i, Why::TransportError, out);
            }
        }
        self.settle(ctx);
    }

    /// A response on leg `i` (§16.7).
    pub(super) fn leg_response(
        &mut self,
        now: u64,
        mut ctx: Box<Context>,
        i: usize,
        msg: &Message,
        out: &mut Vec<Outcome>,
    ) {
        let (Some(code), Some(leg)) = (msg.status(), ctx.legs.get_mut(i)) else {
            self.settle(ctx);
            return out.push(self.response(msg));
        };
        if msg.cseq().is_some_and(|c| c.method == Method::Cancel) {
            // The answer to our CANCEL ends its transaction; nothing goes up.
            if let Some((tx, _)) = leg.cancel.as_mut() {
                tx.handle_response(code, now);
            }
            return self.settle(ctx);
        }
        match leg.tx.handle_response(code, now) {
            ClientEvent::PassUp => self.on_response(now, &mut ctx, i, msg, code, out),
            ClientEvent::PassUpAndAck => {
                // §17.1.1.3: the client transaction ACKs a non-2xx final.
                let ack = parse(leg.request.clone()).map(|req| {
                    derived_request(
                        &req,
                        "ACK",
                        msg.header(HeaderName::To).unwrap_or_default(),
                        &[],
                    )
                });
                if let Some(ack) = ack {
                    out.push(Outcome::Forwarded(leg_transmit(leg, ack.clone())));
                    leg.ack = Some(ack);
                }
                self.on_response(now, &mut ctx, i, msg, code, out);
            }
            ClientEvent::Ack => {
                if let Some(ack) = leg.ack.clone() {
                    out.push(Outcome::Resent(leg_transmit(leg, ack)));
                }
            }
            _ => self.table().stats.absorbed += 1,
        }
        self.settle(ctx);
    }

    /// §16.7 steps 2–10 for a response its client transaction passed up.
    fn on_response(
        &mut self,
        now: u64,
        ctx: &mut Context,
        i: usize,
        msg: &Message,
        code: u16,
        out: &mut Vec<Outcome>,
    ) {
        let invite = ctx.method == Method::Invite;
        let timer_c = self.table().cfg.timer_c_ms;
        self.target_stats(now, ctx, i, code);
        let leg = &mut ctx.legs[i];
        match code {
            100..=199 => {
                leg.no_answer = None;
                if invite && leg.cancel.is_none() && (!leg.provisional || code > 100) {
                    // §16.7 step 2: Timer C restarts on a provisional.
                    leg.timer_c = Some(now + timer_c);
                }
                leg.provisional = true;
                // A leg we want cancelled, or one we gave up on (it timed
                // out) that rings after all: now it can be cancelled.
                if invite && (leg.cancel_wanted || leg.done) {
                    self.send_cancel(now, ctx, i, b"SIP;cause=487", out);
                }
                if code > 100 && !ctx.final_sent && !ctx.legs[i].done {
                    self.send_up(now, ctx, msg, code, None, &[], out);
                }
            }
            200..=299 => {
                leg.done = true;
                leg.active = None;
                leg.no_answer = None;
                leg.timer_c = None;
                if invite {
                    // The ACK for a 2xx is end to end and the 2xx is never
                    // resent by us: only the context's key and timers need
                    // to live through the Accepted state.
                    leg.request = Bytes::new();
                    ctx.last = None;
                }
                if invite || !ctx.final_sent {
                    // Every 2xx to an INVITE goes up, retransmissions too
                    // (§16.7 step 5, RFC 6026 §7.1).
                    self.send_up(now, ctx, msg, code, None, &[], out);
                    ctx.final_sent = true;
                    ctx.request = None;
                }
                if invite {
                    self.cancel_pending(
                        now,
                        ctx,
                        b"SIP;cause=200;text=\"Call completed elsewhere\"",
                        out,
                    );
                }
            }
            _ => {
                let was_done = leg.done;
                leg.done = true;
                leg.active = None;
                leg.no_answer = None;
                leg.timer_c = None;
                let target = leg.target;
                if was_done {
                    // A late final after its leg timed out: ACKed, not used.
                    return;
                }
                if code == 503 {
                    // Retry-After takes the target out for that long.
                    if let (Some(t), Some(secs)) = (ctx.set_target(target), retry_after(msg)) {
                        t.health.retry_after(secs, now);
                        tracing::info!(
                            set = ctx.set().map_or("", |s| s.cfg.name.as_str()),
                            target = %t.cfg.uri,
                            "503 with Retry-After: {secs} s out of service"
                        );
                    }
                }
                if matches!(code, 401 | 407) {
                    for name in [HeaderName::WwwAuthenticate, HeaderName::ProxyAuthenticate] {
                        for v in msg.header_values(name) {
                            ctx.challenges.push((i, name, v.to_vec()));
                        }
                    }
                }
                ctx.consider(
                    Best::Received {
                        leg: i,
                        msg: msg.clone(),
                    },
                    false,
                );
                if code >= 600 {
                    // §16.7 step 5: a 6xx ends the search.
                    ctx.order.clear();
                    self.cancel_pending(now, ctx, b"SIP;cause=600", out);
                } else if ctx
                    .set()
                    .is_some_and(|s| s.cfg.failover_codes.contains(&code))
                    || ctx.location.is_some()
                {
                    self.failover_from(now, ctx, target, out);
                }
                self.conclude(now, ctx, out);
            }
        }
    }

    /// A leg ended without a final answer: counts as `code` (408, or 487
    /// after a CANCEL), may fail over. A target that never answered at all
    /// (no provisional either) is marked down at once (passive health),
    /// unless the caller cancelled.
    fn leg_failed(
        &mut self,
        now: u64,
        ctx: &mut Context,
        i: usize,
        why: Why,
        out: &mut Vec<Outcome>,
    ) {
        let leg = &mut ctx.legs[i];
        if leg.done {
            return;
        }
        leg.done = true;
        leg.no_answer = None;
        leg.active = None;
        let silent = !leg.provisional && !ctx.cancelled;
        let target = leg.target;
        if let (true, Some(t)) = (silent, ctx.set_target(target)) {
            let set = ctx.set().map_or("", |s| s.cfg.name.as_str());
            t.note(set, t.health.passive_failure(why, now));
        }
        let code = if ctx.cancelled { 487 } else { 408 };
        ctx.consider(Best::local(code), true);
        self.failover_from(now, ctx, target, out);
        self.conclude(now, ctx, out);
    }

    /// Fail over after a leg to `target` failed; counted on that target
    /// when another target is tried.
    fn failover_from(
        &mut self,
        now: u64,
        ctx: &mut Context,
        target: Option<usize>,
        out: &mut Vec<Outcome>,
    ) {
        if self.failover(now, ctx, out) {
            if let Some(t) = ctx.set_target(target) {
                t.stats.failovers.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// CANCEL every leg that has no final answer yet (§16.7 step 10,
    /// §16.10); one without a provisional is cancelled when it gets one.
    fn cancel_pending(
        &mut self,
        now: u64,
        ctx: &mut Context,
        reason: &[u8],
        out: &mut Vec<Outcome>,
    ) {
        if ctx.method != Method::Invite {
            return;
        }
        for i in 0..ctx.legs.len() {
            let l = &mut ctx.legs[i];
            if l.done || l.cancel.is_some() {
                continue;
            }
            if l.provisional {
                self.send_cancel(now, ctx, i, reason, out);
            } else {
                l.cancel_wanted = true;
            }
        }
    }

    fn send_cancel(
        &mut self,
        now: u64,
        ctx: &mut Context,
        i: usize,
        reason: &[u8],
        out: &mut Vec<Outcome>,
    ) {
        let table = self.table();
        let (timers, guard) = (table.timers, table.timers.b());
        let leg = &mut ctx.legs[i];
        // Only a leg that has a provisional and no final can be cancelled
        // (§9.1).
        if leg.cancel.is_some() || leg.tx.state() != ClientState::Proceeding {
            return;
        }
        let Some(req) = parse(leg.request.clone()) else {
            // Cannot happen (we built it), but never wait forever.
            leg.abandoned = true;
            return;
        };
        let to = req.header(HeaderName::To).unwrap_or_default();
        let data = derived_request(&req, "CANCEL", to, &[("Reason", reason)]);
        let tx = ClientTx::new(
            Kind::NonInvite,
            leg.transport == Transport::Tcp,
            now,
            &timers,
        );
        leg.cancel = Some((tx, data.clone()));
        leg.cancel_wanted = false;
        // A peer that never answers the CANCEL (nor the INVITE) is given
        // up after 64*T1.
        leg.timer_c = Some(now + guard);
        out.push(Outcome::Forwarded(leg_transmit(leg, data)));
        self.table().stats.cancels += 1;
    }

    /// The caller cancelled (§16.10): 200 for the CANCEL, CANCEL on every
    /// pending leg, no more failover.
    pub(super) fn cancel_received(
        &mut self,
        now: u64,
        mut ctx: Box<Context>,
        msg: &Message,
        flow: Flow,
        out: &mut Vec<Outcome>,
    ) {
        out.push(self.reply(msg, flow, 200, &"OK", &[]));
        if ctx.method == Method::Invite && !ctx.final_sent {
            ctx.cancelled = true;
            ctx.order.clear();
            let reason = msg
                .header_by_name("Reason")
                .map_or(b"SIP;cause=487".to_vec(), <[u8]>::to_vec);
            self.cancel_pending(now, &mut ctx, &reason, out);
        }
        self.settle(ctx);
    }

    /// An ACK matching an INVITE's server transaction: absorbed if it
    /// acknowledges our non-2xx final; otherwise (a 2xx ACK from an RFC
    /// 2543 peer) forwarded like any 2xx ACK.
    pub(super) fn ack_received(
        &mut self,
        now: u64,
        mut ctx: Box<Context>,
        msg: &Message,
        flow: Flow,
        out: &mut Vec<Outcome>,
    ) {
        if matches!(
            ctx.server.state(),
            ServerState::Completed | ServerState::Confirmed
        ) {
            ctx.server.handle_ack(now);
            self.table().stats.absorbed += 1;
        } else {
            out.push(self.request(msg, flow));
        }
        self.settle(ctx);
    }

    /// A retransmission of a request with a context: the last response
    /// again, or nothing.
    pub(super) fn retransmission(&mut self, mut ctx: Box<Context>, out: &mut Vec<Outcome>) {
        match ctx.server.handle_request() {
            ServerEvent::Resend if ctx.last.is_some() => self.resend_last(&ctx, out),
            _ => self.table().stats.absorbed += 1,
        }
        self.settle(ctx);
    }

    /// The last response sent upstream, again.
    fn resend_last(&mut self, ctx: &Context, out: &mut Vec<Outcome>) {
        if let Some(last) = &ctx.last {
            out.push(Outcome::Resent(Transmit {
                data: last.clone(),
                ..ctx.up.clone()
            }));
            self.table().stats.retransmitted += 1;
        }
    }

    /// The context's wheel entry fired: run every timer that is due.
    pub(super) fn context_timeout(
        &mut self,
        now: u64,
        mut ctx: Box<Context>,
        out: &mut Vec<Outcome>,
    ) {
        for _ in 0..MAX_TIMER_STEPS {
            if !due(ctx.server.poll_timeout(), now) {
                break;
            }
            if ctx.server.handle_timeout(now) == ServerEvent::Resend {
                self.resend_last(&ctx, out);
            }
        }
        for i in 0..ctx.legs.len() {
            if ctx.legs[i].abandoned {
                continue;
            }
            for _ in 0..MAX_TIMER_STEPS {
                let leg = &mut ctx.legs[i];
                if !due(leg.tx.poll_timeout(), now) {
                    break;
                }
                match leg.tx.handle_timeout(now) {
                    ClientEvent::Retransmit if !leg.done => {
                        let data = leg.request.to_vec();
                        out.push(Outcome::Resent(leg_transmit(leg, data)));
                        self.table().stats.retransmitted += 1;
                    }
                    ClientEvent::TimedOut => {
                        self.table().stats.timeouts += u64::from(!leg.done);
                        self.leg_failed(now, &mut ctx, i, Why::Timeout, out);
                    }
                    _ => {}
                }
            }
            for _ in 0..MAX_TIMER_STEPS {
                let leg = &mut ctx.legs[i];
                let Some((tx, data)) = leg.cancel.as_mut() else {
                    break;
                };
                if !due(tx.poll_timeout(), now) {
                    break;
                }
                if tx.handle_timeout(now) == ClientEvent::Retransmit {
                    let data = data.clone();
                    out.push(Outcome::Resent(leg_transmit(leg, data)));
                    self.table().stats.retransmitted += 1;
                }
            }
            let leg = &mut ctx.legs[i];
            if due(leg.no_answer, now) {
                leg.no_answer = None;
                self.table().stats.timeouts += u64::from(!ctx.legs[i].done);
                self.leg_failed(now, &mut ctx, i, Why::Timeout, out);
            }
            let leg = &mut ctx.legs[i];
            if due(leg.timer_c, now) {
                leg.timer_c = None;
                if leg.cancel.is_some() {
                    // The guard after our CANCEL: give the leg up.
                    leg.abandoned = true;
                    self.leg_failed(now, &mut ctx, i, Why::Timeout, out);
                } else {
                    // §16.8: Timer C: CANCEL the leg, count it as a 408.
                    self.table().stats.timeouts += 1;
                    self.send_cancel(now, &mut ctx, i, b"SIP;cause=408;text=\"Timer C\"", out);
                    self.leg_failed(now, &mut ctx, i, Why::Timeout, out);
                }
            }
        }
        self.settle(ctx);
    }
}

impl Core {
    /// Counters and latencies of the target leg `i` went to, for a
    /// response `code` its client transaction passed up; a final answer
    /// also tells passive health the target is alive.
    fn target_stats(&self, now: u64, ctx: &Context, i: usize, code: u16) {
        let leg = &ctx.legs[i];
        let Some(t) = ctx.set_target(leg.target) else {
            return;
        };
        t.stats.response(code);
        let us = now.saturating_sub(leg.sent_at) * 1000;
        if code < 200 {
            if !leg.provisional {
                t.stats.first_provisional.record(self.shard, us);
            }
        } else if !leg.done {
            t.stats.final_response.record(self.shard, us);
            t.health.passive_success();
        }
    }
}

/// Retry-After in seconds (RFC 3261 §20.33), if present and sane.
fn retry_after(msg: &Message) -> Option<u32> {
    let v = msg.header(HeaderName::RetryAfter)?;
    let digits = v.iter().take_while(|b| b.is_ascii_digit()).count();
    let n: u32 = std::str::from_utf8(&v[..digits]).ok()?.parse().ok()?;
    Some(n.min(3600))
}
