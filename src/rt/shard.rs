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
    pub mesh: Option<Senders<Transmit>>,
}

impl Shard {
    pub fn stopping(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }

    /// Carry out what the core decided: TCP writes are queued on their
    /// connection, datagrams wait in the outbox for the next `flush`.
    pub fn dispatch(self: &Rc<Self>, outcome: Outcome) {
        match outcome {
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

    /// Send the datagrams in the outbox.
    pub async fn flush(&self) {
        udp::flush(self).await;
    }

    /// Pass a message to the shard that owns its connection. Bounded: a
    /// full channel drops the message and counts it.
    pub fn hand_off(&self, owner: usize, t: Transmit) {
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

/// Advance the shard's timer wheel every `TICK` and act on what fires, for
/// as long as the shard runs.
pub(super) fn run_timers(shard: &Rc<Shard>) {
    let shard = shard.clone();
    glommio::spawn_local(async move {
        let mut fired = Vec::new();
        loop {
            glommio::timer::sleep(TICK).await;
            let now = shard.epoch.tick(std::time::Instant::now());
            shard.timers.borrow_mut().advance(now, &mut fired);
            for t in fired.drain(..) {
                match t {
                    Timer::TcpIdle(id) => tcp::idle_check(&shard, id, now),
                }
            }
        }
    })
    .detach();
}

/// Serve what other shards hand to this one, until they all hang up.
pub(super) fn serve_mesh(shard: &Rc<Shard>, mut receivers: Receivers<Transmit>) {
    for (_, rx) in receivers.streams() {
        let shard = shard.clone();
        glommio::spawn_local(async move {
            while let Some(t) = rx.recv().await {
                shard.send(t);
                shard.flush().await;
            }
        })
        .detach();
    }
}
