//! One shard: a thread pinned to a core that owns its proxy core, its
//! ring, its sockets, its TCP connections, its timer wheel and its end of
//! the mesh, and runs one loop:
//!
//! 1. one `io_uring_enter` submits what the last pass decided and waits
//!    for completions, until the earliest timer (transactions, TCP idle,
//!    the housekeeping tick) — with `server.coalesce_us`, a shard with
//!    work waiting lets more arrive first;
//! 2. every completion is carried out: datagrams and stream bytes go
//!    through the core, whose decisions become SQEs of the next pass;
//! 3. messages other shards handed over are taken from the inbox;
//! 4. registrar changes are written to the journal, and what waited for
//!    them is released;
//! 5. due timers fire.
//!
//! Everything here is owned by the loop (`&mut self`): no `Rc`, no
//! `RefCell`. What other threads share with a shard: the read-only config,
//! its counters (written here only), the mesh queues and the stop flag.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use socket2::Socket;

use super::ring::{Cqe, Event, Ring, Waker};
use super::stats::Counters;
use super::tcp;
use super::wheel::{Epoch, Wheel};
use crate::config::{Config, Transport};
use crate::proxy::{Core, Drop, Flow, LegRef, Outcome, Transmit};

/// Capacity of each shard's inbox.
pub(super) const MESH_QUEUE: usize = 4096;
/// How often health probes, keep-alives, the counters and the journal's
/// file generation are looked at.
const TICK: u64 = 50;
/// After a stop, how long queued TCP writes may take to flush.
const DRAIN: Duration = Duration::from_secs(2);
/// Every this many housekeeping ticks (1 s), tables a burst left mostly
/// idle give their memory back (`Shard::give_back`).
const GIVE_BACK_TICKS: u32 = 20;
/// Completions and decided outcomes a shard's scratch lists keep room for
/// once a burst is over.
const SCRATCH_KEPT: usize = 1024;
/// The C heap is trimmed at most once in this many `give_back`s (5 s): a
/// trim after a 50,000-INVITE flood takes this shard 1-23 ms (the pages
/// it returns), and a drain shrinks tables several times in a row.
const TRIM_EVERY: u32 = 5;

/// What goes over the mesh to another shard.
pub(super) enum Handoff {
    /// Send this on a connection the other shard owns.
    Send(Transmit),
    /// A message for a transaction the other shard owns, as received.
    Inbound(Bytes, Flow),
}

/// What a shard's timers are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Timer {
    /// Look at a TCP connection's last traffic; close it if idle.
    TcpIdle(crate::proxy::ConnId),
}

/// A shard's way to another shard (or to itself: unused).
#[derive(Clone)]
pub(super) struct Peer {
    pub tx: SyncSender<Handoff>,
    pub waker: Arc<Waker>,
    /// Set by the first sender since the shard last looked: later
    /// senders need not wake it again.
    pub notified: Arc<AtomicBool>,
}

/// What a shard is built from (see `Runtime::start`).
pub(super) struct Parts {
    pub id: usize,
    pub cfg: Arc<Config>,
    pub core: Core,
    pub ring: Ring<Option<LegRef>>,
    /// Every UDP socket: the listeners' (by configured address) and this
    /// shard's own outbound ones (by their bound address).
    pub udp: Vec<(SocketAddr, Socket)>,
    pub listeners: Vec<(SocketAddr, std::net::TcpListener)>,
    pub tcp: tcp::Table,
    pub epoch: Epoch,
    pub counters: Arc<Counters>,
    pub stop: Arc<AtomicBool>,
    pub inbox: Receiver<Handoff>,
    pub peers: Vec<Peer>,
    pub journal: Option<crate::registrar::journal::Writer>,
}

pub(super) struct Shard {
    /// This shard's index; named in the `ConnId`s it hands out.
    pub id: usize,
    /// Behind: the last wake-up brought `server.overload_backlog`
    /// completions or more (until one brings fewer than a quarter).
    behind: bool,
    /// Since when (ms) every wake-up has brought `overload_backlog`
    /// datagrams or more, while not yet behind.
    over_since: Option<u64>,
    pub cfg: Arc<Config>,
    pub core: Core,
    pub ring: Ring<Option<LegRef>>,
    /// UDP sockets in the ring's order, with the address the core names.
    udp: Vec<(SocketAddr, Socket)>,
    /// Which socket sends from a given local address.
    udp_fd: HashMap<SocketAddr, RawFd>,
    listeners: Vec<(SocketAddr, std::net::TcpListener)>,
    pub tcp: tcp::Table,
    pub timers: Wheel<Timer>,
    pub epoch: Epoch,
    pub counters: Arc<Counters>,
    stop: Arc<AtomicBool>,
    inbox: Receiver<Handoff>,
    peers: Vec<Peer>,
    /// What the core decided for the message being handled (reused).
    decided: Vec<Outcome>,
    journal: Option<crate::registrar::journal::Writer>,
    /// What was decided after a change that is not yet in the journal:
    /// carried out once the journal is written, at the end of the pass.
    held: Vec<Outcome>,
    journal_buf: Vec<u8>,
    /// Set once the stop flag is seen: the end of the drain.
    draining: Option<Instant>,
    /// Housekeeping ticks until the next `give_back`.
    give_back_in: u32,
    /// Tables have given back room since the last trim of the heap, and
    /// how many `give_back`s until the next trim may run.
    trim_pending: bool,
    trim_in: u32,
}

impl Shard {
    pub fn new(p: Parts) -> Shard {
        let mut ring = p.ring;
        let udp_fd = p.udp.iter().map(|(a, s)| (*a, s.as_raw_fd())).collect();
        for (_, s) in &p.udp {
            ring.recv_from(s.as_raw_fd());
        }
        for (_, l) in &p.listeners {
            ring.accept(l.as_raw_fd());
        }
        let cap = p.tcp.cap();
        Shard {
            id: p.id,
            cfg: p.cfg,
            core: p.core,
            ring,
            udp: p.udp,
            udp_fd,
            listeners: p.listeners,
            tcp: p.tcp,
            // One idle timer per connection, and room to spare.
            timers: Wheel::with_capacity(cap + 1024),
            epoch: p.epoch,
            counters: p.counters,
            stop: p.stop,
            inbox: p.inbox,
            peers: p.peers,
            decided: Vec::new(),
            journal: p.journal,
            held: Vec::new(),
            journal_buf: Vec::new(),
            draining: None,
            behind: false,
            over_since: None,
            give_back_in: GIVE_BACK_TICKS,
            trim_pending: false,
            trim_in: 0,
        }
    }

    pub fn stopping(&self) -> bool {
        self.draining.is_some()
    }

    /// Milliseconds since the runtime started: the clock of the timers.
    pub fn now(&self) -> u64 {
        self.epoch.tick(Instant::now())
    }

    /// Serve until stopped and drained.
    pub fn run(mut self) {
        let mut cqes: Vec<Cqe> = Vec::with_capacity(1024);
        let mut next_tick = self.now() + TICK;
        loop {
            let mut due = next_tick;
            if let Some(t) = self.core.poll_timeout() {
                due = due.min(t);
            }
            if let Some(t) = self.timers.next_deadline() {
                due = due.min(t);
            }
            let timeout = match self.epoch.instant(due) {
                Some(at) => at.saturating_duration_since(Instant::now()),
                None => Duration::from_millis(TICK),
            };
            if let Err(e) = self.ring.wait(Some(timeout), &mut cqes) {
                tracing::error!("io_uring wait: {e}");
                std::thread::sleep(Duration::from_millis(10));
            }
            Counters::add(&self.counters.wakeups, 1);
            let now = self.now();
            let mut datagrams = 0;
            let banned = self.counters.drops_for(Drop::Banned);
            for c in &cqes {
                datagrams += usize::from(self.complete(now, c));
            }
            if datagrams > 0 {
                Counters::add(&self.counters.udp_batches, 1);
            }
            // A banned source's datagrams cost a lookup each: they do not
            // make the shard refuse new calls from everyone else.
            let banned = self.counters.drops_for(Drop::Banned) - banned;
            self.note_backlog(now, datagrams.saturating_sub(banned as usize));
            self.take_inbox(now);
            self.write_journal();
            if self.core.poll_timeout().is_some_and(|t| t <= now) {
                let mut out = std::mem::take(&mut self.decided);
                self.core.handle_timeout(now, &mut out);
                for o in out.drain(..) {
                    self.dispatch(o);
                }
                self.decided = out;
            }
            let mut fired = Vec::new();
            self.timers.advance(now, &mut fired);
            for t in fired {
                match t {
                    Timer::TcpIdle(id) => tcp::idle_check(&mut self, id, now),
                }
            }
            if now >= next_tick {
                next_tick = now + TICK;
                if self.housekeeping(now) && cqes.capacity() > SCRATCH_KEPT {
                    // Carried out above; the next wait refills it.
                    cqes.clear();
                    cqes.shrink_to(SCRATCH_KEPT);
                }
            }
            self.write_journal();
            if self.draining.is_none() && self.stop.load(Ordering::Relaxed) {
                self.draining = Some(Instant::now() + DRAIN);
                tcp::shut_reads(&mut self);
            }
            if let Some(until) = self.draining {
                if (self.tcp.is_empty() && self.ring.quiet()) || Instant::now() >= until {
                    break;
                }
            }
        }
    }

    /// Carry out one completion; true if it was a datagram.
    fn complete(&mut self, now: u64, c: &Cqe) -> bool {
        let Some(ev) = self.ring.event(c) else {
            return false;
        };
        match ev {
            Event::Datagram { sock, from, data } => {
                let data = Bytes::copy_from_slice(data);
                self.datagram(now, sock, from, data);
                return true;
            }
            Event::RecvError { sock, errno } => {
                tracing::debug!("udp receive on socket {sock}: errno {errno}");
                Counters::add(&self.counters.recv_errors, 1);
            }
            Event::Sent { tag, res } => self.sent(now, tag, res),
            Event::Accepted { listener, res } => tcp::accepted(self, now, listener, res),
            Event::StreamData { conn, data } => {
                if self.tcp.take_bytes(conn, data, now) {
                    tcp::frames(self, now, conn);
                }
            }
            Event::StreamEnd { conn, errno } => tcp::ended(self, conn, errno),
            Event::Written {
                conn,
                res,
                data,
                offset,
            } => tcp::written(self, conn, res, data, offset),
            Event::Connected { conn, res } => tcp::connected(self, now, conn, res),
            Event::Woken => {}
        }
        false
    }

    fn datagram(&mut self, now: u64, sock: u32, from: SocketAddr, data: Bytes) {
        if self.draining.is_some() {
            return;
        }
        let Some(&(local, _)) = self.udp.get(sock as usize) else {
            return;
        };
        Counters::add(&self.counters.datagrams_in, 1);
        Counters::add(&self.counters.bytes_in, data.len() as u64);
        let flow = Flow {
            transport: Transport::Udp,
            local,
            remote: from,
            conn: None,
        };
        self.handle(now, data, flow);
    }

    /// A datagram left, or the kernel refused it.
    fn sent(&mut self, now: u64, leg: Option<LegRef>, res: Result<usize, i32>) {
        match res {
            Ok(n) => {
                Counters::add(&self.counters.datagrams_out, 1);
                Counters::add(&self.counters.bytes_out, n as u64);
            }
            Err(errno) => {
                Counters::add(&self.counters.send_errors, 1);
                tracing::debug!("udp send: errno {errno}");
                // A request the kernel refused at once (no route to the
                // host, RFC 3261 §16.9: a transport error): the leg moves
                // on to its next target.
                if let Some(leg) = leg {
                    self.transport_error(now, leg);
                }
            }
        }
    }

    /// Tell the core that the request of `leg` could not be sent.
    pub fn transport_error(&mut self, now: u64, leg: LegRef) {
        let mut out = Vec::new();
        self.core.handle_transport_error(now, leg, &mut out);
        for o in out {
            self.dispatch(o);
        }
    }

    /// Hand one received message to the core and carry out what it decides.
    pub fn handle(&mut self, now: u64, data: Bytes, flow: Flow) {
        let mut out = std::mem::take(&mut self.decided);
        self.core.handle_at(now, data, flow, &mut out);
        if self.core.journal_pending() || !self.held.is_empty() {
            // A registrar change waits for its journal write (at the end
            // of the pass), and so does everything decided after it.
            self.held.append(&mut out);
        } else {
            for o in out.drain(..) {
                self.dispatch(o);
            }
        }
        self.decided = out;
    }

    /// Write the registrar changes made since the last call to the
    /// journal, then carry out what waited for them. If the write fails,
    /// the answers that acknowledge the changes are not sent (the UAs
    /// retransmit; the error is logged and counted).
    fn write_journal(&mut self) {
        if self.held.is_empty() && !self.core.journal_pending() {
            return;
        }
        let mut buf = std::mem::take(&mut self.journal_buf);
        buf.clear();
        self.core.take_journal(&mut buf);
        let ok = match (&mut self.journal, buf.is_empty()) {
            (_, true) | (None, _) => true,
            (Some(w), false) => match w.append(&buf) {
                Ok(()) => {
                    Counters::add(&self.counters.journal_writes, 1);
                    Counters::add(&self.counters.journal_bytes, buf.len() as u64);
                    true
                }
                Err(e) => {
                    Counters::add(&self.counters.journal_errors, 1);
                    tracing::error!("registrar journal write failed: {e}");
                    false
                }
            },
        };
        self.journal_buf = buf;
        for o in std::mem::take(&mut self.held) {
            if ok {
                self.dispatch(o);
            } else {
                self.counters.dropped(Drop::Unsent);
            }
        }
    }

    /// Carry out what the core decided: datagrams and TCP writes become
    /// SQEs of the next wait.
    pub fn dispatch(&mut self, outcome: Outcome) {
        match outcome {
            Outcome::Resent(t) => {
                Counters::add(&self.counters.retransmitted, 1);
                self.send(t);
            }
            Outcome::ToShard(owner, m) => self.hand_off(owner, Handoff::Inbound(m.0, m.1)),
            Outcome::Forwarded(t) => {
                Counters::add(&self.counters.forwarded, 1);
                self.send(t);
            }
            Outcome::Replied(t, _) => {
                Counters::add(&self.counters.replied, 1);
                self.send(t);
            }
            Outcome::Rejected(t, _) => {
                Counters::add(&self.counters.replied, 1);
                Counters::add(&self.counters.parse_errors, 1);
                self.send(t);
            }
            Outcome::Dropped(reason) => self.counters.dropped(reason),
        }
    }

    pub fn send(&mut self, t: Transmit) {
        match t.transport {
            Transport::Udp => {
                let Some(&fd) = self.udp_fd.get(&t.local) else {
                    self.counters.dropped(Drop::Unsent);
                    return;
                };
                if self.ring.send_to(fd, t.dest, t.data, t.leg).is_err() {
                    self.counters.dropped(Drop::QueueFull);
                }
            }
            Transport::Tcp => tcp::send(self, t),
        }
    }

    /// Pass a message to shard `owner`. Bounded: a full inbox drops the
    /// message and counts it.
    pub fn hand_off(&mut self, owner: usize, h: Handoff) {
        let Some(peer) = self.peers.get(owner).filter(|_| owner != self.id) else {
            self.counters.dropped(Drop::Unsent);
            return;
        };
        match peer.tx.try_send(h) {
            Ok(()) => {
                Counters::add(&self.counters.mesh_out, 1);
                if !peer.notified.swap(true, Ordering::AcqRel) {
                    self.ring.wake(&peer.waker);
                }
            }
            Err(TrySendError::Full(_)) => self.counters.dropped(Drop::QueueFull),
            Err(TrySendError::Disconnected(_)) => self.counters.dropped(Drop::Unsent),
        }
    }

    /// Carry out what other shards handed to this one.
    fn take_inbox(&mut self, now: u64) {
        if let Some(me) = self.peers.get(self.id) {
            // Cleared before the queue is read: a sender that finds it
            // set knows its message will be seen by this read. Read first,
            // so a quiet pass does not write the senders' cache line.
            if me.notified.load(Ordering::SeqCst) {
                me.notified.store(false, Ordering::SeqCst);
            }
        }
        for _ in 0..MESH_QUEUE {
            let Ok(h) = self.inbox.try_recv() else {
                break;
            };
            match h {
                Handoff::Send(t) => self.send(t),
                Handoff::Inbound(data, flow) => {
                    Counters::add(&self.counters.mesh_in, 1);
                    self.handle(now, data, flow);
                }
            }
        }
    }

    /// Overload: a wake-up that brings `overload_backlog` datagrams means
    /// the shard is behind the offered load (they waited while it worked);
    /// new calls and REGISTERs are refused from the next wake-up on until
    /// one brings under a quarter of it.
    fn note_backlog(&mut self, now: u64, n: usize) {
        let backlog = self.cfg.server.overload_backlog;
        if backlog == 0 {
            return;
        }
        let behind = still_behind(self.behind, &mut self.over_since, now, n, backlog);
        if behind != self.behind {
            self.behind = behind;
            self.core.set_behind(behind);
            let c = if behind {
                &self.counters.overload_entered
            } else {
                &self.counters.overload_left
            };
            Counters::add(c, 1);
        }
    }

    /// Every `TICK`: health probes and NAT keep-alives (shard 0 only;
    /// nothing elsewhere), the transaction counters, and the journal's
    /// file generation (an idle shard moves to a new file too, so that
    /// compaction can go on); once a second, what idle tables give back
    /// (true then).
    fn housekeeping(&mut self, now: u64) -> bool {
        let mut out = std::mem::take(&mut self.decided);
        self.core.poll_probes(now, &mut out);
        self.core.poll_nat_pings(now, &mut out);
        for o in out.drain(..) {
            self.dispatch(o);
        }
        self.decided = out;
        self.publish_tx_stats();
        if self.id == 0 {
            // The replay window forgets a part of its expired nonces per
            // tick; what it gives back is trimmed with the rest.
            self.trim_pending |= self.core.sweep_bans(now);
        }
        if let Some(w) = &mut self.journal {
            if let Err(e) = w.follow_gen() {
                tracing::error!("registrar journal: {e}");
            }
        }
        self.give_back_in = self.give_back_in.saturating_sub(1);
        if self.give_back_in > 0 {
            return false;
        }
        self.give_back(now);
        true
    }

    /// Once a second: the tables a burst (an INVITE flood, a storm of
    /// connections or sends) left mostly idle give back what they grew
    /// to — the transaction table, its index and timer wheel (and on
    /// shard 0 the INVITE directory), the ring's send slots, the TCP
    /// table, the guard's source tables, this shard's scratch lists — and,
    /// if any did, the C heap returns the freed pages to the kernel
    /// (`ring::trim_heap`, at most every `TRIM_EVERY` s). Without it a
    /// process that took a flood keeps its peak RSS after the flood has
    /// drained (see docs/benchmarks.md, "Memory after a flood"). Each
    /// shrink costs O(its table) only when fewer than a quarter of it is
    /// in use, and nothing otherwise; under a steady load nothing shrinks
    /// and nothing is trimmed.
    fn give_back(&mut self, now: u64) {
        self.give_back_in = GIVE_BACK_TICKS;
        let mut freed = self.core.shrink_idle(now);
        freed |= self.ring.shrink();
        freed |= self.tcp.shrink();
        freed |= self.timers.shrink();
        // Scratch lists are small next to the tables, and may shrink
        // under load: they do not call for a trim.
        for v in [&mut self.decided, &mut self.held] {
            if v.is_empty() && v.capacity() > SCRATCH_KEPT {
                *v = Vec::new();
            }
        }
        self.trim_pending |= freed;
        self.trim_in = self.trim_in.saturating_sub(1);
        if self.trim_pending && self.trim_in == 0 {
            self.trim_pending = false;
            self.trim_in = TRIM_EVERY;
            let t = Instant::now();
            super::ring::trim_heap();
            tracing::debug!(
                shard = self.id,
                "tables shrunk, heap trimmed in {} us",
                t.elapsed().as_micros()
            );
        }
    }

    /// Copy the core's transaction counters into the shard's counters.
    fn publish_tx_stats(&self) {
        let s = self.core.tx_stats();
        let c = &self.counters;
        let set = |a: &std::sync::atomic::AtomicU64, v: u64| a.store(v, Ordering::Relaxed);
        set(&c.tx_created, s.created);
        set(&c.tx_released, s.created - s.active);
        set(&c.tx_table_full, s.table_full);
        set(&c.tx_absorbed, s.absorbed);
        set(&c.tx_timeouts, s.timeouts);
        set(&c.tx_cancels, s.cancels);
        set(&c.tx_failovers, s.failovers);
        set(&c.tx_transport_errors, s.transport_errors);
        let r = self.core.reg_stats;
        set(&c.registers, r.registers);
        set(&c.auth_challenges, r.challenges);
        set(&c.auth_failures, r.auth_failures);
        set(&c.nat_pings, r.nat_pings);
        set(&c.guard_untracked, self.core.guard_stats().untracked);
        set(&c.overload_rejected, self.core.overload_rejected);
        set(&c.nat_ping_misses, r.nat_ping_misses);
        set(&c.nat_removed, r.nat_removed);
    }

    /// The address a TCP listener of this shard serves, by ring index.
    pub fn listener(&self, i: u32) -> Option<SocketAddr> {
        self.listeners.get(i as usize).map(|(a, _)| *a)
    }
}

/// How long every wake-up must bring the backlog before the shard counts
/// as behind: a stall (a heap trim, a burst of expiring timers) brings one
/// full wake-up and is caught up at once; an overload keeps bringing them.
const OVERLOAD_HOLD_MS: u64 = 100;

/// Whether a shard is behind after a wake-up at `now` that brought `n`
/// datagrams: it falls behind once every wake-up for `OVERLOAD_HOLD_MS`
/// has brought `backlog` or more (`over_since` tracks since when), and
/// catches up when one brings under a quarter of it (the gap keeps it from
/// flapping at the threshold).
fn still_behind(
    was: bool,
    over_since: &mut Option<u64>,
    now: u64,
    n: usize,
    backlog: usize,
) -> bool {
    if was {
        if n < backlog / 4 {
            *over_since = None;
            return false;
        }
        return true;
    }
    if n < backlog {
        *over_since = None;
        return false;
    }
    let since = *over_since.get_or_insert(now);
    now.saturating_sub(since) >= OVERLOAD_HOLD_MS
}

#[cfg(test)]
mod overload_tests {
    #[test]
    fn a_shard_falls_behind_only_when_the_backlog_lasts_and_catches_up_under_a_quarter() {
        let mut over = None;
        let mut behind = false;
        let mut seen = Vec::new();
        // (ms, datagrams): a stall (one full wake-up, then caught up), then
        // an overload (full wake-ups for 100 ms), then the way back.
        for (t, n) in [
            (0, 10),
            (10, 200),
            (12, 40),
            (20, 130),
            (60, 140),
            (119, 128),
            (120, 128),
            (130, 100),
            (140, 32),
            (150, 31),
            (160, 127),
        ] {
            behind = super::still_behind(behind, &mut over, t, n, 128);
            seen.push(behind);
        }
        assert_eq!(
            seen,
            [false, false, false, false, false, false, true, true, true, false, false]
        );
    }
}
