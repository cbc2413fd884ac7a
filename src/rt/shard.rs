//! What one shard owns: its proxy core, its sockets, its TCP connection
//! table, its counters and its end of the mesh. Everything here lives on
//! one executor thread (`Rc`, `RefCell`); the only things shared with other
//! threads are the read-only config, the counters (written here only) and
//! the mesh channels.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use glommio::channels::channel_mesh::{Receivers, Senders};
use glommio::net::UdpSocket;
use nix::sys::socket::{MultiHeaders, SockaddrStorage};

use super::stats::Counters;
use super::tcp;
use super::udp;
use super::wheel::{Epoch, Wheel};
use crate::config::{Config, Transport};
use crate::proxy::{Core, Drop, Outcome, Transmit};

/// Capacity of each shard-to-shard channel of the mesh.
pub(super) const MESH_QUEUE: usize = 4096;
/// How often the shard's timer wheel is advanced.
pub(super) const TICK: std::time::Duration = std::time::Duration::from_millis(50);
/// The shortest tick, when transaction timers are due: they run at T1 =
/// 500 ms and its multiples; 10 ms keeps them within 2 % of their value.
pub(super) const TX_TICK: std::time::Duration = std::time::Duration::from_millis(10);

/// Passes of `flush` that carry out what failed sends decided.
const FLUSH_PASSES: usize = 4;

/// What goes over the mesh to another shard.
pub(super) enum Handoff {
    /// Send this on a connection the other shard owns.
    Send(Transmit),
    /// A message for a transaction the other shard owns, as received.
    Inbound(bytes::Bytes, crate::proxy::Flow),
}

/// What a shard's timers are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Timer {
    /// Look at a TCP connection's last traffic; close it if idle.
    TcpIdle(crate::proxy::ConnId),
}

pub(super) struct Shard {
    /// This shard's place in the mesh; named in the `ConnId`s it hands out.
    pub id: usize,
    pub cfg: Arc<Config>,
    pub core: RefCell<Core>,
    /// One socket per UDP listener, by its configured address.
    pub udp: HashMap<SocketAddr, Rc<UdpSocket>>,
    pub tcp: RefCell<tcp::Table>,
    /// The shard's timers, advanced every `TICK` by `run_timers`.
    pub timers: RefCell<Wheel<Timer>>,
    pub epoch: Epoch,
    /// Write tasks still flushing (for the drain at shutdown).
    pub writers: Cell<usize>,
    /// Datagrams decided but not yet sent: sent together by `flush`
    /// (sendmmsg), once per receive batch.
    pub outbox: RefCell<Vec<Transmit>>,
    /// sendmmsg headers, reused by every flush.
    pub send_headers: RefCell<MultiHeaders<SockaddrStorage>>,
    pub counters: Arc<Counters>,
    pub stop: Arc<AtomicBool>,
    /// Senders to every other shard, when there are others.
    pub mesh: Option<Senders<Handoff>>,
    /// What the core decided for the message being handled (reused).
    pub decided: RefCell<Vec<Outcome>>,
    /// This shard's end of the registrar journal, when there is one.
    pub journal: RefCell<Option<crate::registrar::journal::Writer>>,
    /// What was decided after a change that is not yet in the journal:
    /// carried out by `flush`, once the journal is written.
    pub held: RefCell<Vec<Outcome>>,
    pub journal_buf: RefCell<Vec<u8>>,
}

impl Shard {
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Milliseconds since the shard started: the clock of its timer wheels.
    pub fn now(&self) -> u64 {
        self.epoch.tick(std::time::Instant::now())
    }

    /// Hand one received message to the core and carry out what it decides.
    pub fn handle(self: &Rc<Self>, now: u64, data: bytes::Bytes, flow: crate::proxy::Flow) {
        let mut out = std::mem::take(&mut *self.decided.borrow_mut());
        let held = {
            let mut core = self.core.borrow_mut();
            core.handle_at(now, data, flow, &mut out);
            core.journal_pending()
        };
        if held || !self.held.borrow().is_empty() {
            // A registrar change waits for its journal write (in `flush`,
            // once per receive batch), and so does everything after it.
            self.held.borrow_mut().append(&mut out);
        } else {
            for o in out.drain(..) {
                self.dispatch(o);
            }
        }
        *self.decided.borrow_mut() = out;
    }

    /// Write the registrar changes made since the last call to the
    /// journal, then carry out what waited for them. If the write fails,
    /// the answers that acknowledge the changes are not sent (the UAs
    /// retransmit; the error is logged and counted).
    pub fn write_journal(self: &Rc<Self>) {
        let mut buf = std::mem::take(&mut *self.journal_buf.borrow_mut());
        buf.clear();
        self.core.borrow_mut().take_journal(&mut buf);
        let ok = match (&mut *self.journal.borrow_mut(), buf.is_empty()) {
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
        *self.journal_buf.borrow_mut() = buf;
        let held = std::mem::take(&mut *self.held.borrow_mut());
        for o in held {
            if ok {
                self.dispatch(o);
            } else {
                self.counters.dropped(Drop::Unsent);
            }
        }
    }

    /// Carry out what the core decided: TCP writes are queued on their
    /// connection, datagrams wait in the outbox for the next `flush`.
    pub fn dispatch(self: &Rc<Self>, outcome: Outcome) {
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

    pub fn send(self: &Rc<Self>, t: Transmit) {
        match t.transport {
            Transport::Udp => self.outbox.borrow_mut().push(t),
            Transport::Tcp => tcp::send(self, t),
        }
    }

    /// Write the journal (what waits for it goes out after), then send
    /// the datagrams in the outbox.
    pub async fn flush(self: &Rc<Self>) {
        // A leg whose request the kernel refused at once (no route to the
        // host, RFC 3261 §16.9: a transport error) moves on to its next
        // target, which is sent in the next pass; bounded.
        for _ in 0..FLUSH_PASSES {
            if !self.held.borrow().is_empty() || self.core.borrow().journal_pending() {
                self.write_journal();
            }
            let failed = udp::flush(self).await;
            if failed.is_empty() {
                return;
            }
            let mut out = Vec::new();
            for leg in failed {
                self.core
                    .borrow_mut()
                    .handle_transport_error(self.now(), leg, &mut out);
            }
            for o in out {
                self.dispatch(o);
            }
        }
    }

    /// Pass a message to the shard that owns its connection. Bounded: a
    /// full channel drops the message and counts it.
    pub fn hand_off(&self, owner: usize, t: Handoff) {
        let Some(mesh) = &self.mesh else {
            self.counters.dropped(Drop::Unsent);
            return;
        };
        if owner >= mesh.nr_consumers() {
            self.counters.dropped(Drop::Unsent);
            return;
        }
        match mesh.try_send_to(owner, t) {
            Ok(()) => Counters::add(&self.counters.mesh_out, 1),
            Err(_) => self.counters.dropped(Drop::QueueFull),
        }
    }
}

/// Advance the shard's timer wheels and act on what fires, for as long as
/// the shard runs: every `TICK`, or sooner when a transaction timer is due
/// (but at most every `TX_TICK`), so that an idle shard sleeps.
pub(super) fn run_timers(shard: &Rc<Shard>) {
    let shard = shard.clone();
    glommio::spawn_local(async move {
        let mut fired = Vec::new();
        let mut out = Vec::new();
        loop {
            let wait = match shard.core.borrow().poll_timeout() {
                Some(at) => {
                    let ms = at.saturating_sub(shard.now());
                    std::time::Duration::from_millis(ms).clamp(TX_TICK, TICK)
                }
                None => TICK,
            };
            glommio::timer::sleep(wait).await;
            let now = shard.now();
            shard.timers.borrow_mut().advance(now, &mut fired);
            for t in fired.drain(..) {
                match t {
                    Timer::TcpIdle(id) => tcp::idle_check(&shard, id, now),
                }
            }
            // Health probes (the probing shard only; nothing elsewhere).
            shard.core.borrow_mut().poll_probes(now, &mut out);
            shard.core.borrow_mut().poll_nat_pings(now, &mut out);
            let probes = !out.is_empty() || shard.core.borrow().journal_pending();
            for o in out.drain(..) {
                shard.dispatch(o);
            }
            if probes {
                shard.flush().await;
            }
            let due = shard.core.borrow().poll_timeout().is_some_and(|t| t <= now);
            if due {
                shard.core.borrow_mut().handle_timeout(now, &mut out);
                for o in out.drain(..) {
                    shard.dispatch(o);
                }
                shard.flush().await;
            }
            shard.publish_tx_stats();
            if let Some(w) = &mut *shard.journal.borrow_mut() {
                // An idle shard moves to a new journal file too, so that
                // compaction can go on.
                if let Err(e) = w.follow_gen() {
                    tracing::error!("registrar journal: {e}");
                }
            }
        }
    })
    .detach();
}

impl Shard {
    /// Copy the core's transaction counters into the shard's counters.
    fn publish_tx_stats(&self) {
        let s = self.core.borrow().tx_stats();
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
        let r = self.core.borrow().reg_stats;
        set(&c.registers, r.registers);
        set(&c.auth_challenges, r.challenges);
        set(&c.auth_failures, r.auth_failures);
        set(&c.nat_pings, r.nat_pings);
        set(&c.nat_ping_misses, r.nat_ping_misses);
        set(&c.nat_removed, r.nat_removed);
    }
}

/// Serve what other shards hand to this one, until they all hang up.
pub(super) fn serve_mesh(shard: &Rc<Shard>, mut receivers: Receivers<Handoff>) {
    for (_, rx) in receivers.streams() {
        let shard = shard.clone();
        glommio::spawn_local(async move {
            while let Some(h) = rx.recv().await {
                match h {
                    Handoff::Send(t) => shard.send(t),
                    Handoff::Inbound(data, flow) => {
                        Counters::add(&shard.counters.mesh_in, 1);
                        shard.handle(shard.now(), data, flow);
                    }
                }
                shard.flush().await;
            }
        })
        .detach();
    }
}
