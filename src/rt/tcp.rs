//! TCP on a shard (RFC 3261 §18): an SO_REUSEPORT listener per TCP
//! listener, and a connection table keyed by `ConnId` and by peer address.
//! All I/O is the shard's ring: a multishot accept per listener, a
//! multishot receive per connection, one write in flight per connection.
//!
//! - Each connection frames its stream (`sip::frame_stream`) and hands
//!   every message to the shard's core; its writes wait in a bounded
//!   queue, so a slow peer cannot make the shard wait or grow memory.
//! - A response goes back on the connection its request came in on
//!   (§18.2.2): the connection rides in our Via branch, and a response that
//!   lands on another shard (over UDP, SO_REUSEPORT picks the shard) is
//!   handed over the mesh to the owner. If that connection has closed, a
//!   new one is opened to the address in the Via, as §18.2.2 says.
//! - A request to a destination reuses any connection to that address on
//!   this shard, inbound or outbound (RFC 5923 in spirit), else the one
//!   another shard has to it, else opens one.
//! - A CRLFCRLF ping is answered with CRLF (RFC 5626 §3.5.1).
//! - Connections with no traffic for `tcp.idle_timeout` are closed: one
//!   timer per connection on the shard's wheel, re-armed from the last
//!   traffic when it fires. At `tcp.max_connections` (per process, split
//!   over the shards) an accept is closed at once and counted.
//! - A connection is closed with shutdown(2): its receive ends, its write
//!   fails or finishes, and only then is the descriptor closed, so the
//!   ring never works on a descriptor number that was reused.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, OwnedFd};
use std::sync::{Arc, Mutex};

use bytes::{Buf, BytesMut};
use socket2::Socket;

use super::shard::{Handoff, Shard, Timer};
use super::slab;
use super::stats::Counters;
use super::wheel::{ticks, TimerKey};
use super::StartError;
use crate::config::{Config, Transport};
use crate::proxy::{ConnId, Drop, Flow, LegRef, Outcome, Transmit};
use crate::sip::{frame_stream, Limits, Status};

/// Messages queued for one connection before sends are dropped.
const WRITE_QUEUE: usize = 256;
/// Bytes queued for one connection before sends are dropped: a peer that
/// does not read cannot make the shard hold more than this.
const WRITE_QUEUE_BYTES: usize = 256 << 10;
/// At most this many waiting legs are remembered per connecting socket
/// (the rest find out by their branch timeout).
const WAITING_LEGS: usize = 64;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Connecting,
    Open,
    /// No more reads (end of stream, error, shutdown): closed once the
    /// queued writes are done.
    Closing,
}

/// Why a connection ended, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    Closed,
    Idle,
    Framing,
    /// A message started and did not finish in time.
    Slow,
}

/// One open (or opening) connection.
struct Conn {
    id: ConnId,
    remote: SocketAddr,
    /// The listener this connection belongs to (our side in `Flow`).
    local: SocketAddr,
    sock: Socket,
    state: State,
    /// The ring is reading it (a multishot receive is armed).
    reading: bool,
    /// A write is in flight.
    writing: bool,
    /// Shut down both ways (idle, a write failed): nothing more is
    /// written; the connection is about to leave the table.
    broken: bool,
    queue: VecDeque<Vec<u8>>,
    /// Bytes in `queue`.
    queued: usize,
    /// Last traffic either way (ms tick).
    last: u64,
    idle_timer: Option<TimerKey>,
    end: End,
    /// Bytes read and not yet framed.
    acc: BytesMut,
    /// When the first byte of the message in `acc` arrived (ms tick):
    /// it must be whole by `tcp.message_timeout`.
    started: Option<u64>,
    /// Accepted (counted against its address's `tcp.max_per_source`).
    inbound: bool,
    /// CR/LF bytes seen since the last message: two CRLFs are a ping.
    crlf: usize,
    /// A message begun in `acc`: how much of it is known to hold no end of
    /// the headers, or (headers whole) how long the message is. A stream
    /// read a byte at a time is searched once, not framed again from its
    /// start on every read.
    searched: usize,
    need: usize,
    /// Stateful legs whose request waits for this connection to open:
    /// told of a failed connect so that the next target is tried at once.
    waiting: Vec<LegRef>,
}

/// This shard's connections, in slots whose index the ring reports.
pub(super) struct Table {
    slots: Vec<Option<Conn>>,
    free: Vec<u32>,
    by_id: HashMap<ConnId, u32>,
    by_remote: HashMap<SocketAddr, u32>,
    live: usize,
    seq: u64,
    cap: usize,
    /// Accepted connections open per peer address, and the most allowed.
    per_source: HashMap<std::net::IpAddr, u32>,
    max_per_source: u32,
    /// Every shard's connections by peer address, so that a message for
    /// a peer connected to another shard (a phone that registered over
    /// TCP, reached inside a dialog by its address) takes its connection
    /// instead of a new one to its ephemeral port.
    shared: Arc<Directory>,
}

/// The connections of every shard by peer address: written when a
/// connection opens or closes, read only when a shard has none of its
/// own to the peer.
#[derive(Default)]
pub(super) struct Directory(Mutex<HashMap<SocketAddr, ConnId>>);

impl Directory {
    fn get(&self, remote: SocketAddr) -> Option<ConnId> {
        self.lock().get(&remote).copied()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, ConnId>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Table {
    pub fn new(cap: usize, max_per_source: usize, shared: Arc<Directory>) -> Table {
        Table {
            per_source: HashMap::new(),
            max_per_source: u32::try_from(max_per_source).unwrap_or(u32::MAX).max(1),
            slots: Vec::new(),
            free: Vec::new(),
            by_id: HashMap::new(),
            by_remote: HashMap::new(),
            live: 0,
            seq: boot_seq(),
            cap,
            shared,
        }
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Add a connection; `None` at the cap.
    fn insert(
        &mut self,
        shard: usize,
        sock: Socket,
        remote: SocketAddr,
        local: SocketAddr,
        state: State,
        now: u64,
    ) -> Option<u32> {
        if self.live >= self.cap {
            return None;
        }
        self.seq += 1;
        let id = ConnId::new(shard, self.seq);
        let slot = match self.free.pop() {
            Some(s) => s,
            None => {
                self.slots.push(None);
                (self.slots.len() - 1) as u32
            }
        };
        self.slots[slot as usize] = Some(Conn {
            id,
            remote,
            local,
            sock,
            state,
            reading: false,
            writing: false,
            broken: false,
            queue: VecDeque::new(),
            queued: 0,
            last: now,
            idle_timer: None,
            end: End::Closed,
            acc: BytesMut::new(),
            started: None,
            inbound: false,
            crlf: 0,
            searched: 0,
            need: 0,
            waiting: Vec::new(),
        });
        self.live += 1;
        self.by_id.insert(id, slot);
        self.by_remote.insert(remote, slot);
        self.shared.lock().insert(remote, id);
        Some(slot)
    }

    fn get(&mut self, slot: u32) -> Option<&mut Conn> {
        self.slots.get_mut(slot as usize).and_then(Option::as_mut)
    }

    /// Take a connection out of the table (its descriptor closes when the
    /// returned value is dropped).
    fn remove(&mut self, slot: u32) -> Option<Conn> {
        let c = self.slots.get_mut(slot as usize)?.take()?;
        self.free.push(slot);
        self.live -= 1;
        if c.inbound {
            let ip = c.remote.ip().to_canonical();
            if let Some(n) = self.per_source.get_mut(&ip) {
                *n -= 1;
                if *n == 0 {
                    self.per_source.remove(&ip);
                }
            }
        }
        self.by_id.remove(&c.id);
        if self.by_remote.get(&c.remote) == Some(&slot) {
            self.by_remote.remove(&c.remote);
        }
        let mut shared = self.shared.lock();
        if shared.get(&c.remote) == Some(&c.id) {
            shared.remove(&c.remote);
        }
        Some(c)
    }

    /// Give back what a burst of connections left, once fewer than a
    /// quarter of the slots are open (see `rt::slab`): the free slots past
    /// the last open one and the maps' spare room, this shard's and (it
    /// is shared) the directory's. Open connections keep their slots. For
    /// the shard's housekeeping; true if memory was freed.
    pub fn shrink(&mut self) -> bool {
        let mut freed = false;
        let room = self.slots.capacity();
        if slab::worth_shrinking(room, self.live, slab::SHRINK_MIN / 4) {
            let keep = slab::compact_free(&mut self.free, self.slots.len());
            self.slots.truncate(keep);
            self.slots.shrink_to(keep);
            self.free.shrink_to(self.free.len());
            freed = self.slots.capacity() < room;
        }
        freed |= shrink_map(&mut self.by_id);
        freed |= shrink_map(&mut self.by_remote);
        freed |= shrink_map(&mut self.per_source);
        freed | shrink_map(&mut self.shared.lock())
    }

    /// Bytes read from connection `slot`: kept for framing. False if the
    /// connection is no longer read.
    pub fn take_bytes(&mut self, slot: u32, data: &[u8], now: u64) -> bool {
        match self.get(slot) {
            Some(c) if c.state != State::Closing => {
                c.acc.extend_from_slice(data);
                c.last = now;
                true
            }
            _ => false,
        }
    }
}

/// Cut a map to its size once it has room for four times that (and more
/// than a few hundred entries).
fn shrink_map<K: std::hash::Hash + Eq, V>(m: &mut HashMap<K, V>) -> bool {
    if m.capacity() > 4 * m.len().max(256) {
        m.shrink_to(m.len());
        return true;
    }
    false
}

/// Where this process starts numbering connections: different on every
/// start (clock and pid), so a response to a request forwarded before a
/// restart does not name a connection of the new process.
fn boot_seq() -> u64 {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64);
    let mut h = crate::proxy::branch::StableHash::default();
    h.write(&nanos.to_le_bytes());
    h.write(&std::process::id().to_le_bytes());
    // Leave room below 2^48 so the sequence does not wrap into the shard.
    h.finish() & ((1 << 40) - 1)
}

/// Bind this shard's listener for every TCP listener: SO_REUSEPORT (one
/// per shard) and SO_REUSEADDR (a restart does not wait for the
/// connections it closed to leave TIME_WAIT).
pub(super) fn bind_all(
    cfg: &Config,
) -> Result<Vec<(SocketAddr, std::net::TcpListener)>, StartError> {
    cfg.listen
        .iter()
        .filter(|l| l.transport == Transport::Tcp)
        .map(|l| {
            let err = |source| StartError::Bind {
                transport: Transport::Tcp,
                addr: l.addr,
                source,
            };
            let s = super::socket_for(l.addr, Transport::Tcp).map_err(err)?;
            s.set_reuse_port(true).map_err(err)?;
            s.set_reuse_address(true).map_err(err)?;
            s.bind(&l.addr.into()).map_err(err)?;
            s.listen(1024).map_err(err)?;
            Ok((l.addr, s.into()))
        })
        .collect()
}

/// A connection accepted on listener `listener`.
pub(super) fn accepted(shard: &mut Shard, now: u64, listener: u32, res: Result<OwnedFd, i32>) {
    let fd = match res {
        Ok(fd) => fd,
        Err(errno) => {
            // Out of descriptors and the like: counted; the accept goes on.
            Counters::add(&shard.counters.recv_errors, 1);
            tracing::debug!("tcp accept: errno {errno}");
            return;
        }
    };
    let sock = Socket::from(std::net::TcpStream::from(fd));
    let (Some(local), Ok(Some(remote))) = (
        shard.listener(listener),
        sock.peer_addr().map(|a| a.as_socket()),
    ) else {
        return;
    };
    if shard.stopping() {
        return;
    }
    let ip = remote.ip().to_canonical();
    let from_ip = shard.tcp.per_source.get(&ip).copied().unwrap_or(0);
    if from_ip >= shard.tcp.max_per_source {
        // Closed as `sock` drops.
        Counters::add(&shard.counters.tcp_source_rejected, 1);
        return;
    }
    let _ = sock.set_nodelay(true);
    let Some(slot) = shard
        .tcp
        .insert(shard.id, sock, remote, local, State::Open, now)
    else {
        Counters::add(&shard.counters.tcp_rejected, 1);
        return;
    };
    *shard.tcp.per_source.entry(ip).or_insert(0) += 1;
    if let Some(c) = shard.tcp.get(slot) {
        c.inbound = true;
    }
    Counters::add(&shard.counters.tcp_accepted, 1);
    start(shard, slot, now);
}

/// A connection is up: read it, time it, write what waits.
fn start(shard: &mut Shard, slot: u32, now: u64) {
    let idle = ticks(shard.cfg.tcp.idle_timeout);
    let Some(c) = shard.tcp.get(slot) else {
        return;
    };
    c.reading = true;
    c.last = now;
    let (fd, id) = (c.sock.as_raw_fd(), c.id);
    shard.ring.recv_stream(slot, fd);
    arm_idle(shard, slot, id, now.saturating_add(idle));
    write_next(shard, slot);
}

/// Send `t` over TCP: on the connection it names (handing it to the owning
/// shard if need be), else on a connection to its destination, else on a
/// new one.
pub(super) fn send(shard: &mut Shard, t: Transmit) {
    if let Some(id) = t.conn {
        if id.shard() != shard.id {
            return shard.hand_off(id.shard(), Handoff::Send(t));
        }
        // The peer must be the one the Via names: a stale or forged id
        // does not get another peer's connection.
        let slot = shard.tcp.by_id.get(&id).copied();
        if let Some(slot) = slot.filter(|&s| {
            shard
                .tcp
                .get(s)
                .is_some_and(|c| c.remote.ip() == t.dest.ip() && !c.broken)
        }) {
            return push(shard, slot, t.data);
        }
    }
    let mut slot = shard.tcp.by_remote.get(&t.dest).copied();
    if slot.is_some_and(|s| shard.tcp.get(s).is_none_or(|c| c.broken)) {
        slot = None;
    }
    if slot.is_none() && t.conn.is_none() {
        // Another shard's connection to this peer: that shard writes it
        // (once: with the id set, a closed one is not looked up again).
        if let Some(id) = shard
            .tcp
            .shared
            .get(t.dest)
            .filter(|id| id.shard() != shard.id)
        {
            return shard.hand_off(
                id.shard(),
                Handoff::Send(Transmit {
                    conn: Some(id),
                    ..t
                }),
            );
        }
    }
    let slot = slot.or_else(|| open(shard, t.local, t.dest));
    match slot {
        Some(slot) => {
            if let (Some(leg), Some(c)) = (t.leg, shard.tcp.get(slot)) {
                if c.state == State::Connecting && c.waiting.len() < WAITING_LEGS {
                    c.waiting.push(leg);
                }
            }
            push(shard, slot, t.data)
        }
        None => {
            shard.counters.dropped(Drop::Unsent);
            if let Some(leg) = t.leg {
                let now = shard.now();
                shard.transport_error(now, leg);
            }
        }
    }
}

/// Queue `data` on connection `slot` (bounded) and start writing.
fn push(shard: &mut Shard, slot: u32, data: Vec<u8>) {
    let now = shard.now();
    let Some(c) = shard.tcp.get(slot) else {
        return shard.counters.dropped(Drop::Unsent);
    };
    if c.broken {
        return shard.counters.dropped(Drop::Unsent);
    }
    if c.queued + data.len() > WRITE_QUEUE_BYTES || c.queue.len() >= WRITE_QUEUE {
        return shard.counters.dropped(Drop::QueueFull);
    }
    c.queued += data.len();
    c.queue.push_back(data);
    c.last = now;
    write_next(shard, slot);
}

/// Start the next queued write of `slot`, unless one is in flight or the
/// connection is not up yet.
fn write_next(shard: &mut Shard, slot: u32) {
    let Some(c) = shard.tcp.get(slot) else {
        return;
    };
    if c.writing || c.state == State::Connecting {
        return;
    }
    let Some(data) = c.queue.pop_front() else {
        if c.state == State::Closing && !c.reading {
            finish(shard, slot);
        }
        return;
    };
    c.queued -= data.len();
    c.writing = true;
    let fd = c.sock.as_raw_fd();
    shard.ring.write(slot, fd, data, 0);
}

/// A write of `slot` finished.
pub(super) fn written(
    shard: &mut Shard,
    slot: u32,
    res: Result<usize, i32>,
    data: Vec<u8>,
    offset: usize,
) {
    let Some(c) = shard.tcp.get(slot) else {
        return;
    };
    c.writing = false;
    match res {
        Ok(n) if offset + n < data.len() && n > 0 => {
            // A short write: the rest goes next, before anything queued.
            c.writing = true;
            let fd = c.sock.as_raw_fd();
            shard.ring.write(slot, fd, data, offset + n);
        }
        Ok(_) => {
            // A bare CRLF pong is not a message.
            if data != b"\r\n" {
                Counters::add(&shard.counters.tcp_out, 1);
            }
            write_next(shard, slot);
        }
        Err(errno) => {
            Counters::add(&shard.counters.send_errors, 1);
            tracing::debug!("tcp write to {}: errno {errno}", c.remote);
            c.queue.clear();
            c.queued = 0;
            c.broken = true;
            // The reader sees the end of the stream too.
            let _ = c.sock.shutdown(std::net::Shutdown::Both);
            c.state = State::Closing;
            if !c.reading {
                finish(shard, slot);
            }
        }
    }
}

/// The receive of `slot` ended: write what is queued, then close.
pub(super) fn ended(shard: &mut Shard, slot: u32, errno: Option<i32>) {
    let Some(c) = shard.tcp.get(slot) else {
        return;
    };
    if let Some(e) = errno {
        tracing::debug!("tcp read from {}: errno {e}", c.remote);
    }
    c.reading = false;
    c.state = State::Closing;
    write_next(shard, slot);
}

/// Take connection `slot` out of the table and close it.
fn finish(shard: &mut Shard, slot: u32) {
    let Some(c) = shard.tcp.remove(slot) else {
        return;
    };
    if let Some(key) = c.idle_timer {
        shard.timers.cancel(key);
    }
    let k = &shard.counters;
    match c.end {
        End::Idle => Counters::add(&k.tcp_idle_closed, 1),
        End::Framing => Counters::add(&k.tcp_framing_errors, 1),
        End::Slow => Counters::add(&k.tcp_slow_closed, 1),
        End::Closed => {}
    }
    Counters::add(&k.tcp_closed, 1);
    if !c.queue.is_empty() {
        shard.counters.dropped(Drop::Unsent);
    }
    // `c.sock` closes here: no operation of the ring uses it any more.
}

/// Start an outbound connection. Messages sent before it is up wait in its
/// queue; if the connect fails they are dropped (counted as a connect
/// error) and the legs waiting for it fail over.
fn open(shard: &mut Shard, local: SocketAddr, dest: SocketAddr) -> Option<u32> {
    if shard.stopping() {
        return None;
    }
    let sock = match super::socket_for(dest, Transport::Tcp) {
        Ok(s) => s,
        Err(e) => {
            Counters::add(&shard.counters.tcp_connect_errors, 1);
            tracing::debug!("tcp connect {dest}: {e}");
            return None;
        }
    };
    let _ = sock.set_nodelay(true);
    let fd = sock.as_raw_fd();
    let now = shard.now();
    let slot = shard
        .tcp
        .insert(shard.id, sock, dest, local, State::Connecting, now)?;
    let timeout = shard.cfg.tcp.connect_timeout;
    shard.ring.connect(slot, fd, dest, timeout);
    Some(slot)
}

/// A connect of `slot` finished.
pub(super) fn connected(shard: &mut Shard, now: u64, slot: u32, res: Result<(), i32>) {
    let Some(c) = shard.tcp.get(slot) else {
        return;
    };
    match res {
        Ok(()) => {
            Counters::add(&shard.counters.tcp_connected, 1);
            c.waiting.clear();
            c.state = State::Open;
            start(shard, slot, now);
        }
        Err(errno) => {
            Counters::add(&shard.counters.tcp_connect_errors, 1);
            tracing::debug!("tcp connect {}: errno {errno}", c.remote);
            let waiting = std::mem::take(&mut c.waiting);
            let queued = c.queue.len();
            c.queue.clear();
            if let Some(c) = shard.tcp.remove(slot) {
                if let Some(key) = c.idle_timer {
                    shard.timers.cancel(key);
                }
            }
            for _ in 0..queued {
                shard.counters.dropped(Drop::Unsent);
            }
            for leg in waiting {
                shard.transport_error(now, leg);
            }
        }
    }
}

/// Whether `b` holds the empty line that ends a message's headers (CRLF
/// CRLF, or the LF LF framing accepts).
fn headers_end(b: &[u8]) -> bool {
    memchr::memmem::find(b, b"\n\r\n").is_some() || memchr::memmem::find(b, b"\n\n").is_some()
}

/// Frame and handle what connection `slot` has read.
pub(super) fn frames(shard: &mut Shard, now: u64, slot: u32) {
    let limits = Limits::default();
    loop {
        let Some(c) = shard.tcp.get(slot) else {
            return;
        };
        let flow = Flow {
            transport: Transport::Tcp,
            local: c.local,
            remote: c.remote,
            conn: Some(c.id),
        };
        // A message begun: its body is still short, or its headers have
        // not ended and only the new bytes (and the three before them) can
        // end them. Either way, nothing to frame yet.
        if c.need > c.acc.len() {
            return;
        }
        if c.searched > 0 && c.acc.len() <= limits.max_message_size {
            let tail = &c.acc[c.searched.saturating_sub(3)..];
            if !headers_end(tail) {
                c.searched = c.acc.len();
                return;
            }
        }
        match frame_stream(&c.acc, &limits) {
            Ok(Status::Keepalive(k)) => {
                c.crlf += k;
                c.acc.advance(k);
                // One pong per CRLFCRLF ping, however they were read.
                let mut pongs = 0;
                while c.crlf >= 4 {
                    c.crlf -= 4;
                    pongs += 1;
                }
                for _ in 0..pongs {
                    push(shard, slot, b"\r\n".to_vec());
                    Counters::add(&shard.counters.tcp_pongs, 1);
                }
            }
            Ok(Status::Complete(len)) => {
                c.crlf = 0;
                c.started = None;
                c.searched = 0;
                c.need = 0;
                let msg = c.acc.split_to(len).freeze();
                Counters::add(&shard.counters.tcp_in, 1);
                shard.handle(now, msg, flow);
            }
            Ok(status @ (Status::Partial | Status::Body(_))) => {
                // Remember what is known (the headers have not ended in
                // `acc`, or the message's length) for the next read.
                match status {
                    Status::Body(total) => c.need = total,
                    _ => c.searched = c.acc.len(),
                }
                // A message has begun: it now has a deadline, which the
                // connection's timer must not overshoot.
                if c.started.is_none() && !c.acc.is_empty() {
                    c.started = Some(now);
                    let (id, timer) = (c.id, c.idle_timer.take());
                    if let Some(key) = timer {
                        shard.timers.cancel(key);
                    }
                    let due = deadline(shard, slot).unwrap_or(now + 1);
                    arm_idle(shard, slot, id, due);
                }
                return;
            }
            Err(_) => {
                // The stream cannot be resynchronised: answer what can be
                // answered (a 400 with the reason) and close.
                let rest = c.acc.split().freeze();
                c.end = End::Framing;
                c.state = State::Closing;
                let _ = c.sock.shutdown(std::net::Shutdown::Read);
                let outcome = shard.core.handle(rest, flow);
                if let Outcome::Replied(..) | Outcome::Rejected(..) = outcome {
                    shard.dispatch(outcome);
                }
                return;
            }
        }
    }
}

/// The idle timer of connection `id` fired at tick `now`: close it if it
/// has been quiet for `tcp.idle_timeout`, else arm the timer again for
/// then.
pub(super) fn idle_check(shard: &mut Shard, id: ConnId, now: u64) {
    let Some(&slot) = shard.tcp.by_id.get(&id) else {
        return;
    };
    let Some(due) = deadline(shard, slot) else {
        return;
    };
    let slow = ticks(shard.cfg.tcp.message_timeout);
    let Some(c) = shard.tcp.get(slot) else {
        return;
    };
    c.idle_timer = None;
    if due <= now && c.state != State::Connecting {
        // The receive sees the end of the stream, a write in flight
        // fails, and the connection leaves the table.
        c.end = match c.started {
            Some(t) if t.saturating_add(slow) <= now => End::Slow,
            _ => End::Idle,
        };
        c.queue.clear();
        c.queued = 0;
        c.broken = true;
        let _ = c.sock.shutdown(std::net::Shutdown::Both);
    } else {
        arm_idle(shard, slot, id, due.max(now + 1));
    }
}

/// When connection `slot` is next due for closing: quiet for
/// `tcp.idle_timeout`, or a message begun `tcp.message_timeout` ago.
fn deadline(shard: &mut Shard, slot: u32) -> Option<u64> {
    let idle = ticks(shard.cfg.tcp.idle_timeout);
    let slow = ticks(shard.cfg.tcp.message_timeout);
    let c = shard.tcp.get(slot)?;
    let due = c.last.saturating_add(idle);
    Some(match c.started {
        Some(t) => due.min(t.saturating_add(slow)),
        None => due,
    })
}

fn arm_idle(shard: &mut Shard, slot: u32, id: ConnId, deadline: u64) {
    if let Ok(key) = shard.timers.insert(deadline, Timer::TcpIdle(id)) {
        if let Some(c) = shard.tcp.get(slot) {
            c.idle_timer = Some(key);
        }
    }
}

/// Stop reading every connection (shutdown(SHUT_RD)): each receive ends,
/// and what is queued is written before the connection closes.
pub(super) fn shut_reads(shard: &mut Shard) {
    for c in shard.tcp.slots.iter_mut().flatten() {
        match c.state {
            State::Connecting => {
                c.broken = true;
                let _ = c.sock.shutdown(std::net::Shutdown::Both);
            }
            _ => {
                let _ = c.sock.shutdown(std::net::Shutdown::Read);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table() -> Table {
        Table::new(10_000, 10_000, Arc::new(Directory::default()))
    }

    fn open(t: &mut Table, port: u16) -> u32 {
        let sock = Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        let remote = SocketAddr::from(([127, 0, 0, 9], port));
        let local = SocketAddr::from(([127, 0, 0, 1], 5060));
        t.insert(0, sock, remote, local, State::Open, 0).unwrap()
    }

    #[test]
    fn closed_connections_give_their_slots_and_maps_back() {
        let mut t = table();
        let slots: Vec<u32> = (0..600).map(|i| open(&mut t, 10_000 + i)).collect();
        assert!(!t.shrink(), "all open");
        // All but the last close: it holds the slab; the maps shrink.
        for &s in &slots[..599] {
            assert!(t.remove(s).is_some());
        }
        assert!(t.shrink());
        assert_eq!(t.slots.len(), 600);
        assert!(t.by_id.capacity() < 1024 && t.by_remote.capacity() < 1024);
        assert!(t.shared.lock().capacity() < 1024);
        // The lowest free slot is taken first; the last one closes; the
        // slab goes down to the one still open.
        let s = open(&mut t, 20_000);
        assert_eq!(s, 0);
        assert!(t.remove(slots[599]).is_some());
        assert!(t.shrink());
        assert_eq!(t.slots.len(), 1);
        let remote = SocketAddr::from(([127, 0, 0, 9], 20_000));
        assert_eq!(t.by_remote.get(&remote), Some(&0));
        let id = t.get(0).map(|c| c.id);
        assert_eq!(t.shared.lock().get(&remote).copied(), id);
        assert!(t.get(0).is_some() && t.get(1).is_none());
        assert!(!t.shrink(), "small now");
    }
}
