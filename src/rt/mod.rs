//! The runtime: the only module that names glommio. One executor per
//! shard, pinned to a core; each shard owns its own SO_REUSEPORT socket per
//! UDP listener and per TCP listener, its TCP connections, its timer wheel
//! and its own `proxy::Core`, so nothing is shared on the hot path but the read-only
//! config and the counters (one set per shard, merged when read). Shards
//! talk only over the glommio channel mesh: a response that lands on a
//! shard other than the one holding its TCP connection is handed over.
//!
//! The metrics listener runs on its own thread (`crate::metrics`).

mod admin;
mod limits;
mod shard;
mod stats;
mod tcp;
mod udp;
pub mod wheel;

use std::cell::{Cell, RefCell};
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use glommio::channels::channel_mesh::MeshBuilder;
use glommio::{LocalExecutorBuilder, Placement};

use crate::auth::Auth;
use crate::config::{Config, Transport};
use crate::proxy::{Core, Hosts};
use crate::registrar::Registrar;
use crate::routing::Routing;

pub use admin::{Control, Reloaded};
pub use limits::{io_memory_per_shard, memlock_limit};
pub use stats::{Counters, Snapshot, SERIES};

/// How long a shard waits on a quiet socket before it looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(100);
/// How long start-up waits for every shard to bind its sockets.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// After a stop, how long queued TCP writes may take to flush.
const DRAIN: Duration = Duration::from_secs(2);

/// Why the runtime could not start. Each says what to do about it.
#[derive(Debug)]
pub enum StartError {
    /// RLIMIT_MEMLOCK is below what the shards need.
    Memlock { limit: u64, needed: u64 },
    /// A listener could not be bound (port in use, address not local, …).
    Bind {
        transport: Transport,
        addr: SocketAddr,
        source: std::io::Error,
    },
    /// The executor thread could not be created.
    Executor(String),
    /// The registrar's journal could not be read, or the users file of
    /// `[auth]`.
    Registrar(String),
}

impl std::fmt::Display for StartError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StartError::Memlock { limit, needed } => write!(
                f,
                "RLIMIT_MEMLOCK is {} KiB but the shards need at least {} KiB: raise it (ulimit -l) or use fewer shards",
                limit >> 10,
                needed >> 10
            ),
            StartError::Bind { transport, addr, source } => {
                write!(f, "cannot listen on {} {addr}: {source}", transport.as_str())
            }
            StartError::Executor(e) => write!(f, "cannot start a shard: {e}"),
            StartError::Registrar(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for StartError {}

/// A running proxy: its shards and what they share.
pub struct Runtime {
    shards: Vec<glommio::ExecutorJoinHandle<()>>,
    stop: Arc<AtomicBool>,
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
        let limit = memlock_limit();
        let io_memory = io_memory_per_shard(limit, shards).ok_or(StartError::Memlock {
            limit: limit.unwrap_or(0),
            needed: limits::MIN_PER_SHARD * shards as u64,
        })?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let stop = Arc::new(AtomicBool::new(false));
        let mesh = (shards > 1).then(|| MeshBuilder::full(shards, shard::MESH_QUEUE));
        let mut handles = Vec::with_capacity(shards);
        let mut counters = Vec::with_capacity(shards);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), StartError>>();
        let tcp_cap = cfg.tcp.max_connections.div_ceil(shards);
        let tcp_directory = Arc::new(tcp::Directory::default());
        // Stateful, several shards, requests kept where they land: which
        // shard holds which INVITE (for a CANCEL from another port).
        let tx_directory = (cfg.proxy.mode == crate::config::Mode::Stateful
            && shards > 1
            && cfg.proxy.dispatch == crate::config::Dispatch::Socket)
            .then(|| {
                Arc::new(crate::proxy::TxDirectory::new(
                    cfg.proxy.transaction.max_transactions,
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
        let all_outbound: Arc<Vec<SocketAddr>> = Arc::new(
            outbound
                .iter()
                .flatten()
                .filter_map(|(_, s)| udp::bound(s))
                .collect(),
        );
        for (id, own) in (0..shards).zip(outbound) {
            let c = Arc::new(Counters::default());
            counters.push(c.clone());
            let (cfg, hosts, stop, ready, mesh, all_outbound) = (
                cfg.clone(),
                hosts.clone(),
                stop.clone(),
                ready_tx.clone(),
                mesh.clone(),
                all_outbound.clone(),
            );
            let (registrar, auth, routing) = (registrar.clone(), auth.clone(), routing.clone());
            let tcp_directory = tcp_directory.clone();
            let tx_directory = tx_directory.clone();
            let builder = LocalExecutorBuilder::new(Placement::Fixed(id % cores))
                .name(&format!("siphon-shard-{id}"))
                .io_memory(io_memory);
            let handle = builder
                .spawn(move || async move {
                    // Join the mesh first: every shard gets this far, so
                    // nobody waits on a shard that failed to bind.
                    let (senders, receivers, mesh_id) = match mesh {
                        Some(m) => match m.join().await {
                            Ok((s, r)) => {
                                let id = s.peer_id();
                                (Some(s), Some(r), id)
                            }
                            Err(e) => {
                                let _ = ready.send(Err(StartError::Executor(format!(
                                    "cannot join the shard mesh: {e}"
                                ))));
                                return;
                            }
                        },
                        None => (None, None, 0),
                    };
                    let bound =
                        udp::bind_all(&cfg, id).and_then(|u| tcp::bind_all(&cfg).map(|t| (u, t)));
                    let (udp_sockets, listeners) = match bound {
                        Ok(b) => {
                            let _ = ready.send(Ok(()));
                            b
                        }
                        Err(e) => {
                            let _ = ready.send(Err(e));
                            return;
                        }
                    };
                    let mut core = Core::for_shard(cfg.clone(), hosts, mesh_id, shards);
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
                    core.set_unix_base(crate::registrar::unix_now_ms());
                    let own_sockets = own.into_iter().filter_map(|(_, s)| {
                        udp::bound(&s).map(|a| (a, Rc::new(glommio::net::UdpSocket::from(s))))
                    });
                    let shard = Rc::new(shard::Shard {
                        id: mesh_id,
                        core: RefCell::new(core),
                        cfg,
                        udp: udp_sockets
                            .into_iter()
                            .map(|(a, s)| (a, Rc::new(s)))
                            .chain(own_sockets)
                            .collect(),
                        tcp: RefCell::new(tcp::Table::new(tcp_cap, tcp_directory)),
                        // One idle timer per connection, and room to spare.
                        timers: RefCell::new(wheel::Wheel::with_capacity(tcp_cap + 1024)),
                        epoch,
                        journal: RefCell::new(journal),
                        held: RefCell::new(Vec::new()),
                        journal_buf: RefCell::new(Vec::new()),
                        writers: Cell::new(0),
                        outbox: RefCell::new(Vec::with_capacity(udp::BATCH)),
                        send_headers: RefCell::new(nix::sys::socket::MultiHeaders::preallocate(
                            udp::BATCH,
                            None,
                        )),
                        counters: c,
                        stop,
                        mesh: senders,
                        decided: RefCell::new(Vec::new()),
                    });
                    if let Some(r) = receivers {
                        shard::serve_mesh(&shard, r);
                    }
                    shard::run_timers(&shard);
                    for (local, l) in listeners {
                        tcp::serve_listener(&shard, local, l);
                    }
                    udp::serve(&shard).await;
                    while !shard.stopping() {
                        glommio::timer::sleep(STOP_POLL).await;
                    }
                    drain(&shard).await;
                })
                .map_err(|e| StartError::Executor(e.to_string()))?;
            handles.push(handle);
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
            counters,
            listening: Vec::new(),
            registrar,
            replayed,
            housekeeping,
            routing,
            epoch,
        };
        for _ in 0..shards {
            // Bounded: a shard whose executor failed to start (pinning to a
            // CPU outside our cpuset, say) leaves the others waiting in the
            // mesh; do not wait with them.
            match ready_rx.recv_timeout(START_TIMEOUT) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    // Every shard got past the mesh: they all stop.
                    rt.shutdown();
                    return Err(e);
                }
                Err(_) => {
                    // Some may be stuck joining the mesh: stop the others
                    // and leave the threads (the process is about to exit).
                    rt.stop();
                    rt.shards.clear();
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

    /// Ask every shard to stop; they finish within about `STOP_POLL`.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
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

/// After a stop: stop reading every connection, then give the writers up to
/// `DRAIN` to flush what is queued.
async fn drain(shard: &Rc<shard::Shard>) {
    shard.tcp.borrow().shut_reads();
    let deadline = Instant::now() + DRAIN;
    while (shard.tcp.borrow().len() > 0 || shard.writers.get() > 0) && Instant::now() < deadline {
        glommio::timer::sleep(Duration::from_millis(10)).await;
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        self.shutdown();
    }
}
