//! TCP on a shard (RFC 3261 §18): an SO_REUSEPORT listener per TCP
//! listener, and a connection table keyed by `ConnId` and by peer address.
//!
//! - Each connection has a reader (stream framing from `sip::frame_stream`,
//!   every message through the shard's core) and a writer fed by a bounded
//!   queue, so a slow peer cannot make the shard wait or grow memory.
//! - A response goes back on the connection its request came in on
//!   (§18.2.2): the connection rides in our Via branch, and a response that
//!   lands on another shard (over UDP, SO_REUSEPORT picks the shard) is
//!   handed over the mesh to the owner. If that connection has closed, a
//!   new one is opened to the address in the Via, as §18.2.2 says.
//! - A request to a destination reuses any connection to that address on
//!   this shard, inbound or outbound (RFC 5923 in spirit), else opens one.
//! - A CRLFCRLF ping is answered with CRLF (RFC 5626 §3.5.1).
//! - Connections with no traffic for `tcp.idle_timeout` are closed: one
//!   timer per connection on the shard's wheel, re-armed from the last
//!   traffic when it fires (no per-read timeouts, no re-arming per
//!   message). At
//!   `tcp.max_connections` (per process, split over the shards) an accept
//!   is closed at once and counted.

use std::cell::Cell;
use std::collections::HashMap;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, RawFd};
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::sys::socket::{shutdown, Shutdown};

use bytes::{Buf, BytesMut};
use futures_lite::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use glommio::net::{TcpListener, TcpStream};

use super::shard::{Shard, Timer};
use super::stats::Counters;
use super::wheel::{ticks, TimerKey};
use super::StartError;
use crate::config::{Config, Transport};
use crate::proxy::{ConnId, Drop, Flow, LegRef, Outcome, Transmit};
use crate::sip::{frame_stream, Limits, Status};

/// Messages queued for one connection's writer before sends are dropped.
const WRITE_QUEUE: usize = 256;
/// Bytes queued for one connection's writer before sends are dropped: a
/// peer that does not read cannot make the shard hold more than this.
const WRITE_QUEUE_BYTES: usize = 256 << 10;
/// Read size; a message may span several reads.
const READ_CHUNK: usize = 16 << 10;

/// One open (or opening) connection.
pub(super) struct Conn {
    pub id: ConnId,
    pub remote: SocketAddr,
    /// The listener this connection belongs to (our side in `Flow`).
    pub local: SocketAddr,
    tx: LocalSender<Vec<u8>>,
    /// Bytes in `tx` not yet taken by the writer.
    queued: Rc<Cell<usize>>,
    /// Last traffic either way.
    last: Cell<Instant>,
    /// The socket, once connected: the drain shuts its read side.
    fd: Cell<Option<RawFd>>,
    /// Its idle timer on the shard's wheel.
    idle_timer: Cell<Option<TimerKey>>,
    /// Closed by the idle timer.
    idled: Cell<bool>,
    /// Stateful legs whose request waits for this connection to open: told
    /// of a failed connect so that the next target is tried at once.
    waiting: std::cell::RefCell<Vec<LegRef>>,
}

/// At most this many waiting legs are remembered per connecting socket
/// (the rest find out by their branch timeout).
const WAITING_LEGS: usize = 64;

impl Conn {
    fn push(&self, data: Vec<u8>, counters: &Counters) {
        let len = data.len();
        if self.queued.get() + len > WRITE_QUEUE_BYTES {
            counters.dropped(Drop::QueueFull);
            return;
        }
        match self.tx.try_send(data) {
            Ok(()) => {
                self.queued.set(self.queued.get() + len);
                self.last.set(Instant::now());
            }
            Err(glommio::GlommioError::WouldBlock(_)) => counters.dropped(Drop::QueueFull),
            Err(_) => counters.dropped(Drop::Unsent),
        }
    }
}

/// This shard's connections.
pub(super) struct Table {
    by_id: HashMap<ConnId, Rc<Conn>>,
    by_remote: HashMap<SocketAddr, ConnId>,
    seq: u64,
    cap: usize,
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
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&remote)
            .copied()
    }
}

impl Table {
    pub fn new(cap: usize, shared: Arc<Directory>) -> Table {
        Table {
            by_id: HashMap::new(),
            by_remote: HashMap::new(),
            seq: boot_seq(),
            cap,
            shared,
        }
    }

    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Add a connection; `None` at the cap.
    fn insert(
        &mut self,
        shard: usize,
        remote: SocketAddr,
        local: SocketAddr,
    ) -> Option<(Rc<Conn>, LocalReceiver<Vec<u8>>)> {
        if self.by_id.len() >= self.cap {
            return None;
        }
        self.seq += 1;
        let id = ConnId::new(shard, self.seq);
        let (tx, rx) = local_channel::new_bounded(WRITE_QUEUE);
        let conn = Rc::new(Conn {
            id,
            remote,
            local,
            tx,
            queued: Rc::new(Cell::new(0)),
            last: Cell::new(Instant::now()),
            fd: Cell::new(None),
            idle_timer: Cell::new(None),
            idled: Cell::new(false),
            waiting: std::cell::RefCell::new(Vec::new()),
        });
        self.by_id.insert(id, conn.clone());
        self.by_remote.insert(remote, id);
        self.shared
            .0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(remote, id);
        Some((conn, rx))
    }

    fn remove(&mut self, id: ConnId) {
        if let Some(c) = self.by_id.remove(&id) {
            if self.by_remote.get(&c.remote) == Some(&id) {
                self.by_remote.remove(&c.remote);
            }
            let mut shared = self.shared.0.lock().unwrap_or_else(|p| p.into_inner());
            if shared.get(&c.remote) == Some(&id) {
                shared.remove(&c.remote);
            }
        }
    }

    fn to(&self, remote: SocketAddr) -> Option<&Rc<Conn>> {
        self.by_remote
            .get(&remote)
            .and_then(|id| self.by_id.get(id))
    }

    /// Stop reading every connection (shutdown(SHUT_RD)): each reader sees
    /// the end of its stream, and the writers flush what is queued.
    pub fn shut_reads(&self) {
        for c in self.by_id.values() {
            if let Some(fd) = c.fd.get() {
                let _ = shutdown(fd, Shutdown::Read);
            }
        }
    }
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

/// Bind this shard's listener for every TCP listener.
pub(super) fn bind_all(cfg: &Config) -> Result<Vec<(SocketAddr, TcpListener)>, StartError> {
    cfg.listen
        .iter()
        .filter(|l| l.transport == Transport::Tcp)
        .map(|l| {
            TcpListener::bind(l.addr)
                .map(|s| (l.addr, s))
                .map_err(|e| StartError::Bind {
                    transport: Transport::Tcp,
                    addr: l.addr,
                    source: std::io::Error::other(e.to_string()),
                })
        })
        .collect()
}

/// Accept on one listener for as long as the shard runs.
pub(super) fn serve_listener(shard: &Rc<Shard>, local: SocketAddr, listener: TcpListener) {
    let shard = shard.clone();
    glommio::spawn_local(async move {
        loop {
            let stream = match listener.accept().await {
                Ok(s) => s,
                Err(e) => {
                    // Out of descriptors and the like: count, breathe, go on.
                    Counters::add(&shard.counters.recv_errors, 1);
                    tracing::debug!("tcp {local}: accept: {e}");
                    glommio::timer::sleep(Duration::from_millis(10)).await;
                    continue;
                }
            };
            if shard.stopping() {
                continue;
            }
            let Ok(remote) = stream.peer_addr() else {
                continue;
            };
            let inserted = shard.tcp.borrow_mut().insert(shard.id, remote, local);
            let Some((conn, rx)) = inserted else {
                Counters::add(&shard.counters.tcp_rejected, 1);
                continue;
            };
            Counters::add(&shard.counters.tcp_accepted, 1);
            let shard = shard.clone();
            glommio::spawn_local(async move { run(&shard, conn, stream, rx).await }).detach();
        }
    })
    .detach();
}

/// Send `t` over TCP: on the connection it names (handing it to the owning
/// shard if need be), else on a connection to its destination, else on a
/// new one.
pub(super) fn send(shard: &Rc<Shard>, t: Transmit) {
    if let Some(id) = t.conn {
        if id.shard() != shard.id {
            return shard.hand_off(id.shard(), super::shard::Handoff::Send(t));
        }
        let conn = shard.tcp.borrow().by_id.get(&id).cloned();
        // The peer must be the one the Via names: a stale or forged id
        // does not get another peer's connection.
        if let Some(conn) = conn.filter(|c| c.remote.ip() == t.dest.ip()) {
            return conn.push(t.data, &shard.counters);
        }
    }
    let conn = shard.tcp.borrow().to(t.dest).cloned();
    if conn.is_none() && t.conn.is_none() {
        // Another shard's connection to this peer: that shard writes it
        // (once: with the id set, a closed one is not looked up again).
        let other = shard.tcp.borrow().shared.get(t.dest);
        if let Some(id) = other.filter(|id| id.shard() != shard.id) {
            return shard.hand_off(
                id.shard(),
                super::shard::Handoff::Send(Transmit {
                    conn: Some(id),
                    ..t
                }),
            );
        }
    }
    let conn = conn.or_else(|| open(shard, t.local, t.dest));
    match conn {
        Some(conn) => {
            if let Some(leg) = t.leg.filter(|_| conn.fd.get().is_none()) {
                let mut waiting = conn.waiting.borrow_mut();
                if waiting.len() < WAITING_LEGS {
                    waiting.push(leg);
                }
            }
            conn.push(t.data, &shard.counters)
        }
        None => {
            shard.counters.dropped(Drop::Unsent);
            if let Some(leg) = t.leg {
                transport_error(shard, leg);
            }
        }
    }
}

/// Tell the core that the request of `leg` could not be sent.
fn transport_error(shard: &Rc<Shard>, leg: LegRef) {
    let mut out = Vec::new();
    shard
        .core
        .borrow_mut()
        .handle_transport_error(shard.now(), leg, &mut out);
    for o in out {
        shard.dispatch(o);
    }
}

/// Start an outbound connection. Messages sent before it is up wait in its
/// queue; if the connect fails they are dropped (counted as a connect
/// error).
fn open(shard: &Rc<Shard>, local: SocketAddr, dest: SocketAddr) -> Option<Rc<Conn>> {
    if shard.stopping() {
        return None;
    }
    let (conn, rx) = shard.tcp.borrow_mut().insert(shard.id, dest, local)?;
    let (s, c) = (shard.clone(), conn.clone());
    glommio::spawn_local(async move {
        match TcpStream::connect_timeout(dest, s.cfg.tcp.connect_timeout).await {
            Ok(stream) => {
                Counters::add(&s.counters.tcp_connected, 1);
                c.waiting.borrow_mut().clear();
                run(&s, c, stream, rx).await;
            }
            Err(e) => {
                Counters::add(&s.counters.tcp_connect_errors, 1);
                tracing::debug!("tcp connect {dest}: {e}");
                s.tcp.borrow_mut().remove(c.id);
                let waiting = std::mem::take(&mut *c.waiting.borrow_mut());
                for leg in waiting {
                    transport_error(&s, leg);
                }
                s.flush().await;
            }
        }
    })
    .detach();
    Some(conn)
}

/// The idle timer of connection `id` fired at tick `now`: close it if it
/// has been quiet for `tcp.idle_timeout`, else arm the timer again for
/// then.
pub(super) fn idle_check(shard: &Rc<Shard>, id: ConnId, now: u64) {
    let Some(conn) = shard.tcp.borrow().by_id.get(&id).cloned() else {
        return;
    };
    conn.idle_timer.set(None);
    let due = shard
        .epoch
        .tick(conn.last.get())
        .saturating_add(ticks(shard.cfg.tcp.idle_timeout));
    match conn.fd.get() {
        Some(fd) if due <= now => {
            // The reader sees the end of the stream and takes the
            // connection out of the table.
            conn.idled.set(true);
            let _ = shutdown(fd, Shutdown::Both);
        }
        _ => arm_idle(shard, &conn, due),
    }
}

fn arm_idle(shard: &Shard, conn: &Conn, deadline: u64) {
    let timer = Timer::TcpIdle(conn.id);
    if let Ok(key) = shard.timers.borrow_mut().insert(deadline, timer) {
        conn.idle_timer.set(Some(key));
    }
}

/// Why a connection ended.
enum End {
    Closed,
    Idle,
    Framing,
}

/// Serve one connected stream until it ends, then take it out of the table.
async fn run(shard: &Rc<Shard>, conn: Rc<Conn>, stream: TcpStream, rx: LocalReceiver<Vec<u8>>) {
    let _ = stream.set_nodelay(true);
    conn.fd.set(Some(stream.as_raw_fd()));
    let now = Instant::now();
    conn.last.set(now);
    let due = shard.epoch.deadline_after(now, shard.cfg.tcp.idle_timeout);
    arm_idle(shard, &conn, due);
    let (r, w) = futures_lite::io::split(stream);
    shard.writers.set(shard.writers.get() + 1);
    let s = shard.clone();
    let (queued, fd) = (conn.queued.clone(), conn.fd.get());
    glommio::spawn_local(async move {
        write_loop(&s, w, rx, &queued, fd).await;
        s.writers.set(s.writers.get() - 1);
    })
    .detach();
    let mut end = read_loop(shard, &conn, r).await;
    if conn.idled.get() {
        end = End::Idle;
    }
    if let Some(key) = conn.idle_timer.take() {
        shard.timers.borrow_mut().cancel(key);
    }
    let c = &shard.counters;
    match end {
        End::Idle => Counters::add(&c.tcp_idle_closed, 1),
        End::Framing => Counters::add(&c.tcp_framing_errors, 1),
        End::Closed => {}
    }
    Counters::add(&c.tcp_closed, 1);
    conn.fd.set(None);
    shard.tcp.borrow_mut().remove(conn.id);
}

/// Write what is queued until the connection's sender is gone. A write
/// error shuts the socket down so the reader ends the connection too.
async fn write_loop(
    shard: &Shard,
    mut w: WriteHalf<TcpStream>,
    rx: LocalReceiver<Vec<u8>>,
    queued: &Cell<usize>,
    fd: Option<RawFd>,
) {
    while let Some(data) = rx.recv().await {
        queued.set(queued.get().saturating_sub(data.len()));
        if w.write_all(&data).await.is_err() {
            Counters::add(&shard.counters.send_errors, 1);
            if let Some(fd) = fd {
                // Safe against reuse: our write half keeps the fd open.
                let _ = shutdown(fd, Shutdown::Both);
            }
            return;
        }
        // A bare CRLF pong is not a message.
        if data != b"\r\n" {
            Counters::add(&shard.counters.tcp_out, 1);
        }
    }
    let _ = w.close().await;
}

async fn read_loop(shard: &Rc<Shard>, conn: &Rc<Conn>, mut r: ReadHalf<TcpStream>) -> End {
    let limits = Limits::default();
    let flow = Flow {
        transport: Transport::Tcp,
        local: conn.local,
        remote: conn.remote,
        conn: Some(conn.id),
    };
    let mut chunk = vec![0u8; READ_CHUNK];
    let mut acc = BytesMut::new();
    // CR/LF bytes seen since the last message: two CRLFs are a ping.
    let mut crlf = 0usize;
    loop {
        let n = match r.read(&mut chunk).await {
            Ok(0) => return End::Closed,
            Ok(n) => n,
            Err(_) => return End::Closed,
        };
        conn.last.set(Instant::now());
        acc.extend_from_slice(&chunk[..n]);
        loop {
            match frame_stream(&acc, &limits) {
                Ok(Status::Keepalive(k)) => {
                    crlf += k;
                    acc.advance(k);
                    // One pong per CRLFCRLF ping, however they were read.
                    while crlf >= 4 {
                        crlf -= 4;
                        conn.push(b"\r\n".to_vec(), &shard.counters);
                        Counters::add(&shard.counters.tcp_pongs, 1);
                    }
                }
                Ok(Status::Complete(len)) => {
                    crlf = 0;
                    Counters::add(&shard.counters.tcp_in, 1);
                    let msg = acc.split_to(len).freeze();
                    shard.handle(shard.now(), msg, flow);
                }
                Ok(Status::Partial) => {
                    shard.flush().await;
                    break;
                }
                Err(_) => {
                    // The stream cannot be resynchronised: answer what can
                    // be answered (a 400 with the reason) and close.
                    let outcome = shard.core.borrow_mut().handle(acc.split().freeze(), flow);
                    if let Outcome::Replied(..) | Outcome::Rejected(..) = outcome {
                        shard.dispatch(outcome);
                    }
                    shard.flush().await;
                    return End::Framing;
                }
            }
        }
        if shard.stopping() {
            return End::Closed;
        }
        // A peer that keeps the socket full must not starve the shard.
        glommio::yield_if_needed().await;
    }
}
