//! The runtime: the only module that names glommio. One executor per
//! shard, pinned to a core; each shard owns its own SO_REUSEPORT socket per
//! UDP listener and its own `proxy::Core`, so nothing is shared on the hot
//! path but the read-only config and the counters (one set per shard,
//! merged when read).
//!
//! Not built yet (see the README): TCP, recvmmsg/sendmmsg batching (the
//! shards use glommio's recv_from/send_to), the timer wheel, the mesh.
//! The metrics listener runs on its own thread (`crate::metrics`).

mod limits;
mod stats;
mod udp;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use glommio::{LocalExecutorBuilder, Placement};

use crate::config::{Config, Transport};
use crate::proxy::{Core, Hosts};

pub use limits::{io_memory_per_shard, memlock_limit};
pub use stats::{Counters, Snapshot};

/// How long a shard waits on a quiet socket before it looks at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(100);

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
    /// A listener transport the runtime does not serve yet.
    Unsupported(&'static str),
    /// The executor thread could not be created.
    Executor(String),
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
            StartError::Unsupported(what) => write!(f, "{what}"),
            StartError::Executor(e) => write!(f, "cannot start a shard: {e}"),
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
}

impl Runtime {
    /// Check limits, bind every listener on every shard, and start serving.
    /// Returns once all sockets are bound (so a bind error is returned
    /// here, not logged later).
    pub fn start(cfg: Arc<Config>, hosts: Arc<Hosts>) -> Result<Runtime, StartError> {
        if cfg.listen.iter().any(|l| l.transport == Transport::Tcp) {
            // Refuse rather than silently serve only UDP.
            return Err(StartError::Unsupported(
                "TCP listeners are not served yet: remove the tcp [[listen]] entries (siphon check accepts them)",
            ));
        }
        let shards = cfg.server.shards;
        let limit = memlock_limit();
        let io_memory = io_memory_per_shard(limit, shards).ok_or(StartError::Memlock {
            limit: limit.unwrap_or(0),
            needed: limits::MIN_PER_SHARD * shards as u64,
        })?;
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let stop = Arc::new(AtomicBool::new(false));
        let mut handles = Vec::with_capacity(shards);
        let mut counters = Vec::with_capacity(shards);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), StartError>>();
        for id in 0..shards {
            let c = Arc::new(Counters::default());
            counters.push(c.clone());
            let (cfg, hosts, stop, ready) =
                (cfg.clone(), hosts.clone(), stop.clone(), ready_tx.clone());
            let builder = LocalExecutorBuilder::new(Placement::Fixed(id % cores))
                .name(&format!("siphon-shard-{id}"))
                .io_memory(io_memory);
            let handle = builder
                .spawn(move || async move {
                    let core = Core::new(cfg.clone(), hosts);
                    let sockets = match udp::bind_all(&cfg, id) {
                        Ok(s) => {
                            let _ = ready.send(Ok(()));
                            s
                        }
                        Err(e) => {
                            let _ = ready.send(Err(e));
                            return;
                        }
                    };
                    udp::serve(sockets, core, c, stop).await;
                })
                .map_err(|e| StartError::Executor(e.to_string()))?;
            handles.push(handle);
        }
        drop(ready_tx);
        let mut rt = Runtime {
            shards: handles,
            stop,
            counters,
            listening: Vec::new(),
        };
        for _ in 0..shards {
            match ready_rx.recv() {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    rt.shutdown();
                    return Err(e);
                }
                Err(_) => {
                    rt.shutdown();
                    return Err(StartError::Executor(
                        "a shard exited during start-up".into(),
                    ));
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

impl Drop for Runtime {
    fn drop(&mut self) {
        self.shutdown();
    }
}
