//! The transaction-stateful proxy (RFC 3261 §16 over the §17 transaction
//! machines in `crate::transaction`), sans-IO.
//!
//! One [`Table`] per shard holds the response contexts (§16.6): each is the
//! server transaction of one received request and the client transactions
//! ("legs") it forked. Contexts live in a slab of bounded size; a
//! received request finds its context by a hash map on its §17.2.3 key, a
//! response finds it in O(1) from the branch of our Via, which names the
//! shard, slot, generation and leg ([`LegRef`]). A response delivered to
//! another shard by SO_REUSEPORT is handed to the owner.
//!
//! Timers: one entry per context in the shard's timer wheel, at the
//! earliest deadline of its transactions, Timer C and the branch timeout.
//! Every event on a context recomputes it.
//!
//! Memory: a flood grows the slab, the index and the wheel to its peak;
//! [`Table::shrink`], from the shard's housekeeping, gives that back once
//! fewer than a quarter of the slots are in use (see `Core::shrink_idle`).

mod build;
mod context;
mod directory;
mod events;
mod key;
#[cfg(test)]
mod tests;

use std::collections::HashMap;

use bytes::Bytes;

use super::branch::LegRef;
use super::{Core, Flow, Outcome};
use crate::config::TransactionCfg;
use crate::rt::slab;
use crate::rt::wheel::Wheel;
use crate::sip::{Message, Method};
use crate::transaction::Timers;

pub(super) use context::Context;
pub use directory::TxDirectory;

/// What the transaction layer has done, for counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TxStats {
    /// Response contexts created.
    pub created: u64,
    /// Requests answered 503 because the table was full.
    pub table_full: u64,
    /// Retransmissions we sent (Timers A, E, G) and responses resent for a
    /// retransmitted request.
    pub retransmitted: u64,
    /// Request retransmissions and ACKs absorbed by a server transaction.
    pub absorbed: u64,
    /// Branches that ended without a response (Timer B/F, the branch
    /// timeout or Timer C): each counts as a 408.
    pub timeouts: u64,
    /// CANCELs we sent downstream.
    pub cancels: u64,
    /// Next targets tried after a failure (serial failover).
    pub failovers: u64,
    /// Legs whose request could not be sent (a connection refused).
    pub transport_errors: u64,
    /// Contexts in the table now.
    pub active: u64,
}

/// One slot of the slab: the generation changes each time it is freed, so
/// a branch naming an old occupant is not matched to the new one.
struct Slot {
    gen: u32,
    ctx: Option<Box<Context>>,
}

/// One shard's response contexts.
pub(super) struct Table {
    pub shard: u16,
    pub timers: Timers,
    pub cfg: TransactionCfg,
    slots: Vec<Slot>,
    free: Vec<u32>,
    cap: usize,
    /// §17.2.3 server transaction key -> slot.
    index: HashMap<Box<[u8]>, u32>,
    wheel: Wheel<(u32, u32)>,
    pub stats: TxStats,
    fired: Vec<(u32, u32)>,
    /// Which shard holds which INVITE, shared by every shard
    /// (`dispatch = "socket"` with several shards).
    pub dir: Option<std::sync::Arc<TxDirectory>>,
    /// The generation a slot starts with when the slab grows: above every
    /// generation of the slots `shrink` dropped, so that a branch naming
    /// a dropped slot's old occupant never matches its successor.
    fresh_gen: u32,
}

impl Table {
    /// Contexts in use, as a percentage of the table's capacity.
    pub fn occupancy_pct(&self) -> u32 {
        (self.stats.active.saturating_mul(100) / self.cap as u64) as u32
    }

    pub fn new(cfg: TransactionCfg, shard: u16, cap: usize) -> Table {
        let cap = cap.max(1);
        Table {
            shard,
            timers: Timers {
                t1: cfg.t1_ms,
                t2: cfg.t2_ms,
                t4: cfg.t4_ms,
            },
            cfg,
            slots: Vec::new(),
            free: Vec::new(),
            cap,
            index: HashMap::new(),
            wheel: Wheel::with_capacity(cap),
            stats: TxStats::default(),
            fired: Vec::new(),
            dir: None,
            fresh_gen: 0,
        }
    }

    /// A free slot, or `None` when the table is full.
    fn alloc(&mut self) -> Option<(u32, u32)> {
        if let Some(i) = self.free.pop() {
            return Some((i, self.slots[i as usize].gen));
        }
        if self.slots.len() >= self.cap {
            return None;
        }
        let gen = self.fresh_gen;
        self.slots.push(Slot { gen, ctx: None });
        Some(((self.slots.len() - 1) as u32, gen))
    }

    /// Give back what a burst left: when at least `SHRINK_MIN` slots have
    /// room and fewer than a quarter are in use, drop the free slots past
    /// the last one in use, hand out free slots lowest first from now on
    /// (contexts gather at the front, so a later call drops more), and cut
    /// the slab, the free list and the index to what is left; the wheel
    /// likewise, and the fired buffer. On shard 0, an INVITE directory
    /// that is empty after use is replaced by a fresh one
    /// ([`TxDirectory::reset_if_idle`]). Contexts, their branches and
    /// their timers are untouched. O(slots): called from the shard's
    /// housekeeping, never per message. True if a table gave back room
    /// (the scratch buffer does not count: it is small, and shrinks under
    /// load too).
    pub fn shrink(&mut self) -> bool {
        self.shrink_from(slab::SHRINK_MIN)
    }

    fn shrink_from(&mut self, min: usize) -> bool {
        if self.fired.is_empty() && self.fired.capacity() > min.max(64) {
            self.fired = Vec::new();
        }
        let mut freed = self.wheel.shrink();
        if self.shard == 0 {
            freed |= self.dir.as_ref().is_some_and(|d| d.reset_if_idle());
        }
        let room = self.slots.capacity();
        if !slab::worth_shrinking(room, self.stats.active as usize, min) {
            return freed;
        }
        let keep = slab::compact_free(&mut self.free, self.slots.len());
        for s in &self.slots[keep..] {
            // A free slot's generation is past every branch issued for it
            // (compared as the generations wrap).
            if s.gen.wrapping_sub(self.fresh_gen) < u32::MAX / 2 {
                self.fresh_gen = s.gen;
            }
        }
        self.slots.truncate(keep);
        self.slots.shrink_to(keep);
        self.free.shrink_to(self.free.len());
        if self.index.capacity() > 4 * self.index.len().max(min / 4) {
            self.index.shrink_to(self.index.len());
        }
        freed || self.slots.capacity() < room
    }

    /// Room in the slab, the index and the wheel (in use or not).
    #[cfg(test)]
    pub fn allocated(&self) -> (usize, usize, usize) {
        (
            self.slots.capacity(),
            self.index.capacity(),
            self.wheel.allocated(),
        )
    }

    /// Take a context out of its slot to work on it (put it back with
    /// [`Table::put`] or free it with [`Table::release`]).
    fn take(&mut self, slot: u32, gen: u32) -> Option<Box<Context>> {
        let s = self.slots.get_mut(slot as usize)?;
        if s.gen != gen {
            return None;
        }
        s.ctx.take()
    }

    fn put(&mut self, ctx: Box<Context>) {
        let slot = ctx.slot as usize;
        self.slots[slot].ctx = Some(ctx);
    }

    /// Forget a finished context: its key, its timer, its slot.
    fn release(&mut self, ctx: Box<Context>) {
        if let Some(k) = ctx.timer {
            self.wheel.cancel(k);
        }
        if self.index.get(&ctx.key) == Some(&ctx.slot) {
            self.index.remove(&ctx.key);
        }
        if let (Some(dir), Some(h)) = (&self.dir, ctx.dir_hash) {
            dir.remove(h, usize::from(self.shard));
        }
        let s = &mut self.slots[ctx.slot as usize];
        s.gen = s.gen.wrapping_add(1);
        s.ctx = None;
        self.free.push(ctx.slot);
        self.stats.active -= 1;
    }

    /// File the context's next deadline in the wheel (one entry per
    /// context).
    fn arm(&mut self, ctx: &mut Context) {
        let next = ctx.poll_timeout();
        if next == ctx.deadline {
            return;
        }
        ctx.deadline = next;
        match (next, ctx.timer) {
            (None, Some(k)) => {
                self.wheel.cancel(k);
                ctx.timer = None;
            }
            (Some(at), Some(k)) if self.wheel.reset(k, at) => {}
            (Some(at), _) => {
                // The wheel holds one entry per context and is as large as
                // the table, so it cannot be full here.
                ctx.timer = self.wheel.insert(at, (ctx.slot, ctx.gen)).ok();
            }
            (None, None) => {}
        }
    }

    pub fn poll_timeout(&self) -> Option<u64> {
        self.wheel.next_deadline()
    }
}

/// The directory's hash of a §17.2.3 key (the same on every shard).
pub(super) fn key_hash(key: &[u8]) -> u64 {
    let mut h = super::branch::StableHash::default();
    h.write(key);
    h.finish()
}

impl Core {
    /// Share `dir` with the other shards: INVITEs are entered in it, and
    /// a CANCEL, ACK or retransmission that finds no transaction here
    /// goes to the shard it names.
    pub fn set_tx_directory(&mut self, dir: std::sync::Arc<TxDirectory>) {
        if let Some(t) = self.stateful.as_mut() {
            t.dir = Some(dir);
        }
    }

    /// A request in stateful mode (RFC 3261 §16 with §17.2 server
    /// transactions).
    pub(super) fn stateful_request(
        &mut self,
        now: u64,
        msg: Message,
        flow: Flow,
        out: &mut Vec<Outcome>,
    ) {
        let method = msg.method().unwrap_or(Method::Other);
        let Some(table) = self.stateful.as_mut() else {
            return;
        };
        // §17.2.3: a retransmission, an ACK for a non-2xx, or a CANCEL finds
        // its INVITE's context.
        let key = key::server_key(&msg, method);
        let found = key
            .as_ref()
            .and_then(|k| table.index.get(k).copied())
            .and_then(|slot| {
                let gen = table.slots.get(slot as usize)?.gen;
                table.take(slot, gen)
            });
        // Another shard's INVITE: its CANCEL, its non-2xx ACK or its
        // retransmission came from another port or connection. The hash
        // is computed once: a new INVITE context is entered under it.
        let dir_hash = match (&table.dir, &key) {
            (Some(_), Some(k))
                if found.is_none()
                    && matches!(method, Method::Invite | Method::Ack | Method::Cancel) =>
            {
                Some(key_hash(k))
            }
            _ => None,
        };
        let owner = table
            .dir
            .as_ref()
            .zip(dir_hash)
            .and_then(|(d, h)| d.lookup(h))
            .filter(|&o| o != usize::from(table.shard));
        if let Some(owner) = owner {
            let data = msg.buffer().clone();
            return out.push(Outcome::ToShard(owner, Box::new((data, flow))));
        }
        match (method, found) {
            (Method::Cancel, Some(ctx)) => self.cancel_received(now, ctx, &msg, flow, out),
            // §16.10: no context: forward the CANCEL statelessly.
            (Method::Cancel, None) => out.push(self.request(&msg, flow)),
            (Method::Ack, Some(ctx)) => self.ack_received(now, ctx, &msg, flow, out),
            // An ACK for a 2xx is its own transaction end to end: forwarded
            // statelessly along the route set (§16.6).
            (Method::Ack, None) => out.push(self.request(&msg, flow)),
            (_, Some(ctx)) => self.retransmission(ctx, out),
            (_, None) => self.new_context(now, msg, key, dir_hash, flow, out),
        }
    }

    /// A response in stateful mode: to its client transaction, to the shard
    /// that owns it, or (no transaction) statelessly by its Via (§16.7).
    pub(super) fn stateful_response(
        &mut self,
        now: u64,
        data: Bytes,
        msg: Message,
        flow: Flow,
        out: &mut Vec<Outcome>,
    ) {
        let Some(table) = self.stateful.as_mut() else {
            return;
        };
        let branch = msg
            .top_via()
            .ok()
            .filter(|v| self.me.is_me(v.host, v.port))
            .and_then(|v| v.branch());
        let leg = match branch.map(|b| LegRef::parse(b, &msg)) {
            Some(Ok(Some(leg))) => leg,
            // One of our stateful branches with a tag that does not match
            // its Call-ID and CSeq: forged, or from an earlier run.
            Some(Err(())) => return out.push(self.forged()),
            _ => return out.push(self.response(&msg)),
        };
        if leg.shard != table.shard {
            out.push(Outcome::ToShard(leg.shard as usize, Box::new((data, flow))));
            return;
        }
        match table.take(leg.slot, leg.gen) {
            // §17.1.3: the CSeq method too (the tag covers the number).
            Some(ctx) if !ctx.answered_by(&msg) => {
                self.settle(ctx);
                out.push(self.forged());
            }
            Some(ctx) => self.leg_response(now, ctx, leg.leg as usize, &msg, out),
            None => out.push(self.response(&msg)),
        }
    }

    /// The runtime could not send the request that started `leg`.
    pub fn handle_transport_error(&mut self, now: u64, leg: LegRef, out: &mut Vec<Outcome>) {
        let Some(table) = self.stateful.as_mut() else {
            return;
        };
        if leg.shard != table.shard {
            return;
        }
        if let Some(ctx) = table.take(leg.slot, leg.gen) {
            self.leg_transport_error(now, ctx, leg.leg as usize, out);
        }
    }

    /// Advance the transaction timers to `now`.
    pub fn handle_timeout(&mut self, now: u64, out: &mut Vec<Outcome>) {
        let Some(table) = self.stateful.as_mut() else {
            return;
        };
        let mut fired = std::mem::take(&mut table.fired);
        table.wheel.advance(now, &mut fired);
        let first = out.len();
        for &(slot, gen) in &fired {
            let Some(table) = self.stateful.as_mut() else {
                break;
            };
            if let Some(mut ctx) = table.take(slot, gen) {
                // The wheel entry has fired: it is gone.
                ctx.timer = None;
                ctx.deadline = None;
                self.context_timeout(now, ctx, out);
            }
        }
        fired.clear();
        if let Some(t) = self.stateful.as_mut() {
            t.fired = fired;
        }
        // A final response resent because no ACK came (Timer G) goes to a
        // source that has not completed its transaction: a spoofed one
        // makes us a reflector, so each resend counts against it with the
        // guard, as a request from it would.
        self.now_ms = now;
        for o in &out[first..] {
            if let Outcome::Resent(t) = o {
                if t.data.starts_with(b"SIP/2.0 ") {
                    self.charge(t.dest.ip());
                }
            }
        }
    }

    /// The earliest transaction deadline of this shard, if any.
    pub fn poll_timeout(&self) -> Option<u64> {
        self.stateful.as_ref().and_then(Table::poll_timeout)
    }

    /// Transaction counters (stateful mode).
    pub fn tx_stats(&self) -> TxStats {
        self.stateful.as_ref().map(|t| t.stats).unwrap_or_default()
    }

    /// Put a context back after an event, or free it when it is over.
    fn settle(&mut self, mut ctx: Box<Context>) {
        let Some(table) = self.stateful.as_mut() else {
            return;
        };
        if ctx.finished() {
            table.release(ctx);
        } else {
            table.arm(&mut ctx);
            table.put(ctx);
        }
    }
}
