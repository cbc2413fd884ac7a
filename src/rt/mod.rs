//! The runtime: one thread per shard, pinned to a core, each running its
//! own loop over its own io_uring (`shard.rs`, `ring.rs`). Each shard owns
//! its own SO_REUSEPORT socket per UDP listener and per TCP listener, its
//! TCP connections, its timer wheel and its own `proxy::Core`, so nothing
//! is shared on the hot path but the read-only config and the counters
//! (one set per shard, merged when read). Shards talk only through their
//! inboxes: a message for a connection or transaction another shard owns
//! is handed over, and the owner woken through its eventfd.
//!
//! The metrics listener runs on its own thread (`crate::metrics`).

#[forbid(unsafe_code)]
mod admin;
#[allow(unsafe_code)]
mod ring;
#[forbid(unsafe_code)]
mod shard;
#[forbid(unsafe_code)]
pub mod slab;
#[forbid(unsafe_code)]
mod stats;
#[forbid(unsafe_code)]
mod tcp;
#[forbid(unsafe_code)]
mod udp;
#[forbid(unsafe_code)]
pub mod wheel;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::auth::Auth;
use crate::config::{Config, Transport};
use crate::proxy::{Core, Hosts};
use crate::registrar::Registrar;
use crate::routing::Routing;

pub use admin::{Control, Reloaded};
pub use ring::zeroed_atomics;
pub use stats::{Counters, Snapshot, SERIES};

/// How long start-up waits for every shard to bind its sockets.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the runtime could not start. Each says what to do about it.
#[derive(Debug)]
pub enum StartError {
    /// A listener could not be bound (port in use, address not local, …).
    Bind {
        transport: Transport,
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// A shard's thread or its io_uring could not be created.
    Executor(String),
    /// The registrar's journal could not be read, or the users file of
    /// `[auth]`.
    Registrar(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Bind {
                transport,
                addr,
                source,
            } => {
                write!(
                    f,
                    "cannot listen on {} {addr}: {source}",
                    transport.as_str()
                )
            }
            StartError::Executor(e) => write!(f, "cannot start a shard: {e}"),
            StartError::Registrar(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// A running proxy: its shards and what they share.
pub struct Runtime {
    shards: Vec<std::thread::JoinHandle<()>>,
    stop: Arc<AtomicBool>,
    wakers: Vec<Arc<ring::Waker>>,
    counters: Vec<Arc<Counters>>,
    /// The addresses actually bound (port 0 in a config is refused, but
    /// tests bind what they ask for).
    pub listening: Vec<(Transport, SocketAddr)>,
    /// The registrar every shard shares, when configured.
    pub registrar: Option<Arc<Registrar>>,
    /// What the journal replay found at start.
    pub replayed: Option<crate::registrar::journal::Replayed>,
    housekeeping: Option<std::thread::JoinHandle<()>>,
    /// The routing table every shard reads; a reload swaps it.
    pub routing: Arc<arc_swap::ArcSwap<Routing>>,
    /// The shards' clock (milliseconds since start): health times are on
    /// it.
    pub epoch: wheel::Epoch,
    /// The ban table every shard reads (`[guard]`).
    pub bans: Option<Arc<crate::guard::Bans>>,
}

/// The registrar (its table rebuilt from the journal) and the
/// authenticator of `cfg`.
#[allow(clippy::type_complexity)]
fn services(
    cfg: &Config,
) -> Result<
    (
        Option<Arc<Registrar>>,
        Option<crate::registrar::journal::Replayed>,
        Option<Arc<Auth>>,
    ),
    StartError,
> {
    let (registrar, replayed) = match &cfg.registrar {
        Some(r) => {
            let (reg, replayed) = Registrar::open(r.clone(), cfg.server.shards).map_err(|e| {
                StartError::Registrar(format!(
                    "cannot open the registrar journal {}: {e}",
                    r.journal_dir
                        .as_deref()
                        .map_or(String::new(), |d| d.display().to_string())
                ))
            })?;
            (Some(Arc::new(reg)), replayed)
        }
        None => (None, None),
    };
    let auth = match &cfg.auth {
        Some(a) => Some(Arc::new(
            Auth::from_config(a).map_err(StartError::Registrar)?,
        )),
        None => None,
    };
    Ok((registrar, replayed, auth))
}

impl Runtime {
    /// Check limits, bind every listener on every shard, and start serving.
    /// Returns once all sockets are bound (so a bind error is returned
    /// here, not logged later).
    pub fn start(cfg: Arc<Config>, hosts: Arc<Hosts>) -> Result<Runtime, StartError> {
        probe_listeners(&cfg)?;
        let (registrar, replayed, auth) = services(&cfg)?;
        let shards = cfg.server.shards;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), StartError>>();
        let tcp_cap = cfg.tcp.max_connections.div_ceil(shards);
        let tcp_source_cap = cfg.tcp.max_per_source.div_ceil(shards);
        let tcp_directory = Arc::new(tcp::Directory::default());
        // Stateful, several shards, requests kept where they land: which
        // shard holds which INVITE (for a CANCEL from another port).
        let tx_directory = (cfg.proxy.mode == crate::config::Mode::Stateful
            && shards > 1
            && cfg.proxy.dispatch == crate::config::Dispatch::Socket)
            .then(|| {
                Arc::new(crate::proxy::TxDirectory::new(
                    cfg.proxy.transaction.max_transactions,
                    shards,
                ))
            });
        // Stateful mode: each shard's own outbound UDP sockets (see
        // `udp::bind_outbound`), and the list of all of them.
        let mut outbound = Vec::with_capacity(shards);
        for _ in 0..shards {
            outbound.push(if cfg.proxy.mode == crate::config::Mode::Stateful {
                udp::bind_outbound(&cfg)?
            } else {
                Vec::new()
            });
        }
        // One routing table for every shard, swapped whole on a reload;
        // one clock for every shard, so target health (shared) reads the
        // same time everywhere.
        let routing = Arc::new(arc_swap::ArcSwap::from_pointee(
            Routing::build(&cfg, None, shards, 0).map_err(StartError::Registrar)?,
        ));
        let epoch = wheel::Epoch::new(Instant::now());
        // `[guard]`: one ban table for every shard.
        let bans = cfg
            .guard
            .as_ref()
            .map(|g| Arc::new(crate::guard::Bans::new(g.max_bans)));
        let all_outbound: Arc<Vec<SocketAddr>> = Arc::new(
            outbound
                .iter()
                .flatten()
                .filter_map(|(_, s)| udp::bound(s))
                .collect(),
        );
        // The mesh: an inbox and a waker per shard, every shard holding a
        // way to every other.
        let mut peers = Vec::with_capacity(shards);
        let mut inboxes = Vec::with_capacity(shards);
        for _ in 0..shards {
            let (tx, rx) = std::sync::mpsc::sync_channel(shard::MESH_QUEUE);
            let waker = ring::Waker::new()
                .map_err(|e| StartError::Executor(format!("cannot create an eventfd: {e}")))?;
            peers.push(shard::Peer {
                tx,
                waker: Arc::new(waker),
                notified: Arc::new(AtomicBool::new(false)),
            });
            inboxes.push(rx);
        }
        let wakers: Vec<Arc<ring::Waker>> = peers.iter().map(|p| p.waker.clone()).collect();
        let mut handles = Vec::with_capacity(shards);
        let mut counters = Vec::with_capacity(shards);
        for ((id, own), inbox) in (0..shards).zip(outbound).zip(inboxes) {
            let c = Arc::new(Counters::default());
            counters.push(c.clone());
            let (cfg, hosts, stop, ready, peers) = (
                cfg.clone(),
                hosts.clone(),
                stop.clone(),
                ready_tx.clone(),
                peers.clone(),
            );
            let all_outbound = all_outbound.clone();
            let (registrar, auth, routing) = (registrar.clone(), auth.clone(), routing.clone());
            let tcp_directory = tcp_directory.clone();
            let tx_directory = tx_directory.clone();
            let bans = bans.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("siphon-shard-{id}"))
                .spawn(move || {
                    pin(id % cores);
                    let waker = peers[id].waker.clone();
                    let built = ring::Ring::new(cfg.server.coalesce_us, waker)
                        .map_err(|e| StartError::Executor(format!("cannot set up io_uring: {e}")))
                        .and_then(|r| {
                            let u = udp::bind_all(&cfg, id)?;
                            let t = tcp::bind_all(&cfg)?;
                            Ok((r, u, t))
                        });
                    let (ring, udp_sockets, listeners) = match built {
                        Ok(b) => {
                            let _ = ready.send(Ok(()));
                            b
                        }
                        Err(e) => {
                            let _ = ready.send(Err(e));
                            return;
                        }
                    };
                    let mut core = Core::for_shard(cfg.clone(), hosts, id, shards);
                    let mine: Vec<(SocketAddr, SocketAddr)> = own
                        .iter()
                        .filter_map(|(l, s)| udp::bound(s).map(|a| (*l, a)))
                        .collect();
                    core.set_outbound(&all_outbound, &mine);
                    core.set_routing(routing);
                    let journal = registrar.as_ref().and_then(|r| r.writer(id));
                    if let Some(r) = registrar {
                        core.set_registrar(r);
                    }
                    if let Some(a) = auth {
                        core.set_auth(a);
                    }
                    if let Some(d) = tx_directory {
                        core.set_tx_directory(d);
                    }
                    if let Some(b) = bans {
                        core.set_bans(b);
                    }
                    core.set_unix_base(crate::registrar::unix_now_ms());
                    let own_sockets = own
                        .into_iter()
                        .filter_map(|(_, s)| udp::bound(&s).map(|a| (a, s)));
                    let shard = shard::Shard::new(shard::Parts {
                        id,
                        core,
                        ring,
                        udp: udp_sockets.into_iter().chain(own_sockets).collect(),
                        listeners,
                        tcp: tcp::Table::new(tcp_cap, tcp_source_cap, tcp_directory),
                        epoch,
                        counters: c,
                        stop,
                        inbox,
                        peers,
                        journal,
                        cfg,
                    });
                    shard.run();
                })
                .map_err(|e| StartError::Executor(e.to_string()))?;
            handles.push(spawned);
        }
        drop(ready_tx);
        let housekeeping = match &registrar {
            Some(r) => Some(
                crate::registrar::housekeeping(r.clone(), stop.clone())
                    .map_err(|e| StartError::Executor(e.to_string()))?,
            ),
            None => None,
        };
        let mut rt = Runtime {
            shards: handles,
            stop,
            wakers,
            counters,
            listening: Vec::new(),
            registrar,
            replayed,
            housekeeping,
            routing,
            epoch,
            bans,
        };
        for _ in 0..shards {
            match ready_rx.recv_timeout(START_TIMEOUT) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    rt.shutdown();
                    return Err(e);
                }
                Err(_) => {
                    rt.shutdown();
                    return Err(StartError::Executor(format!(
                        "a shard did not start within {} s",
                        START_TIMEOUT.as_secs()
                    )));
                }
            }
        }
        rt.listening = cfg.listen.iter().map(|l| (l.transport, l.addr)).collect();
        Ok(rt)
    }

    /// Ask every shard to stop: each is woken, stops reading, and lets
    /// queued TCP writes drain for up to 2 s.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        for w in &self.wakers {
            w.wake();
        }
    }

    /// Stop and wait for every shard to exit.
    pub fn shutdown(&mut self) {
        self.stop();
        for h in self.shards.drain(..) {
            let _ = h.join();
        }
        if let Some(h) = self.housekeeping.take() {
            let _ = h.join();
        }
    }

    /// Counters of all shards, summed.
    pub fn snapshot(&self) -> Snapshot {
        Snapshot::merge(self.counters.iter().map(|c| c.as_ref()))
    }

    /// Each shard's counters, for a reader on another thread (metrics).
    pub fn counters(&self) -> Vec<Arc<Counters>> {
        self.counters.clone()
    }

    /// Counters per shard.
    pub fn per_shard(&self) -> Vec<Snapshot> {
        self.counters.iter().map(|c| Snapshot::of(c)).collect()
    }
}

/// Bind each configured address once without SO_REUSEPORT and let it go:
/// if another process holds the port (with or without SO_REUSEPORT), this
/// fails with "address in use", where the shards' SO_REUSEPORT binds could
/// silently share the port with another instance.
fn probe_listeners(cfg: &Config) -> Result<(), StartError> {
    for l in cfg.listen.iter().filter(|l| l.addr.port() != 0) {
        let r = match l.transport {
            Transport::Udp => std::net::UdpSocket::bind(l.addr).map(|_| ()),
            Transport::Tcp => std::net::TcpListener::bind(l.addr).map(|_| ()),
        };
        r.map_err(|source| StartError::Bind {
            transport: l.transport,
            addr: l.addr,
            source,
        })?;
    }
    Ok(())
}

/// A UDP or TCP socket for `addr`'s address family; IPv6 sockets are
/// IPV6_V6ONLY, so `0.0.0.0` and `[::]` can share a port.
fn socket_for(addr: SocketAddr, transport: Transport) -> std::io::Result<socket2::Socket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let domain = if addr.is_ipv4() {
        Domain::IPV4
    } else {
        Domain::IPV6
    };
    let s = match transport {
        Transport::Udp => Socket::new(domain, Type::DGRAM, Some(Protocol::UDP))?,
        Transport::Tcp => Socket::new(domain, Type::STREAM, Some(Protocol::TCP))?,
    };
    if addr.is_ipv6() {
        s.set_only_v6(true)?;
    }
    Ok(s)
}

/// Run this thread on core `core` only (best effort: a cpuset that
/// excludes it leaves the thread where the scheduler puts it).
fn pin(core: usize) {
    let mut set = nix::sched::CpuSet::new();
    if set.set(core).is_ok() {
        if let Err(e) = nix::sched::sched_setaffinity(nix::unistd::Pid::from_raw(0), &set) {
            tracing::debug!("cannot pin shard to core {core}: {e}");
        }
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.shutdown();
    }
}
