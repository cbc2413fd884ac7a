//! The registrar and location service (RFC 3261 §10).
//!
//! - [`store`]: bindings by AOR, shared by every shard as lock-free
//!   partitioned snapshots.
//! - [`register`]: REGISTER processing (§10.3), sans-IO: a request in, a
//!   reply and a journal record out.
//! - [`journal`]: the append-only journal that makes an acknowledged
//!   binding survive a crash, with compaction.
//!
//! The housekeeping thread ([`housekeeping`]) sweeps expired bindings,
//! syncs the journal on the batched policy and compacts it.

pub mod journal;
pub mod register;
pub mod store;

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

pub use journal::Fsync;
pub use store::{Binding, Record, Store};

use crate::config;
use crate::sip::uri::{Host, Uri};

/// The registrar shared by every shard.
pub struct Registrar {
    pub cfg: config::Registrar,
    pub store: Store,
    /// The journal, when `journal_dir` is set.
    pub journal: Option<Arc<journal::Shared>>,
}

impl Registrar {
    /// A registrar that keeps its bindings in memory only.
    pub fn in_memory(cfg: config::Registrar) -> Registrar {
        let store = Store::new(cfg.partitions, cfg.max_bindings);
        Registrar {
            cfg,
            store,
            journal: None,
        }
    }

    /// The registrar of `cfg` for `shards` shards: with a journal, the
    /// table is rebuilt from it first.
    pub fn open(
        cfg: config::Registrar,
        shards: usize,
    ) -> io::Result<(Registrar, Option<journal::Replayed>)> {
        let mut r = Registrar::in_memory(cfg);
        let Some(dir) = r.cfg.journal_dir.clone() else {
            return Ok((r, None));
        };
        let replayed = journal::replay(&dir, &r.store, unix_now())?;
        r.journal = Some(Arc::new(journal::Shared::new(
            dir,
            r.cfg.fsync,
            shards,
            replayed.gen,
        )));
        Ok((r, Some(replayed)))
    }

    /// Shard `shard`'s journal writer, when there is a journal.
    pub fn writer(&self, shard: usize) -> Option<journal::Writer> {
        self.journal
            .as_ref()
            .map(|j| journal::Writer::new(j.clone(), shard))
    }

    /// Is `host` one of the domains served?
    pub fn serves(&self, host: &[u8]) -> bool {
        self.cfg
            .domains
            .iter()
            .any(|d| d.as_bytes().eq_ignore_ascii_case(host))
    }

    /// The canonical AOR of `uri`: `user@domain`, the user unescaped and
    /// the domain lowercase; a host that is one of our addresses (`ours`)
    /// stands for the first domain served. `None` without a user part or
    /// for a domain not served.
    pub fn aor(&self, uri: &Uri<'_>, ours: bool) -> Option<Vec<u8>> {
        let user = uri.user_decoded()?;
        // A domain is served by name, whatever the port; an address only
        // when it is ours, port included (RFC 3261 §19.1.4: no port is
        // the scheme's default), so that `sip:bob@127.0.0.1:5080` is the
        // phone at 5080, not an AOR of a registrar on 127.0.0.1:5060.
        let host: Vec<u8> = match uri.host {
            Host::Name(h) if self.serves(h) => h.to_ascii_lowercase(),
            _ if !ours => return None,
            Host::V4(a) if self.serves(a.to_string().as_bytes()) => a.to_string().into_bytes(),
            Host::V6(_, a) if self.serves(a.to_string().as_bytes()) => a.to_string().into_bytes(),
            _ => self.cfg.domains.first()?.as_bytes().to_vec(),
        };
        let mut aor = Vec::with_capacity(user.len() + 1 + host.len());
        aor.extend_from_slice(&user);
        aor.push(b'@');
        aor.extend_from_slice(&host);
        Some(aor)
    }
}

/// Unix time in seconds (the registrar's clock: expiries survive a
/// restart).
pub fn unix_now() -> u64 {
    unix_now_ms() / 1000
}

/// Unix time in milliseconds.
pub fn unix_now_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// How often the housekeeping thread wakes.
const HOUSEKEEPING_TICK: Duration = Duration::from_millis(50);
/// A full sweep of expired bindings takes this long, in slices.
const SWEEP_PERIOD: Duration = Duration::from_secs(10);
/// How long compaction waits for every shard to move to the new journal
/// generation before trying again later.
const COMPACT_WAIT: Duration = Duration::from_secs(2);

/// Sweep, sync and compact until `stop` is set. Runs on its own thread:
/// it never blocks a shard (a sweep or a snapshot reads snapshots; a
/// write locks one partition at a time).
pub fn housekeeping(
    reg: Arc<Registrar>,
    stop: Arc<AtomicBool>,
) -> io::Result<std::thread::JoinHandle<()>> {
    std::thread::Builder::new()
        .name("siphon-registrar".into())
        .spawn(move || {
            let parts = reg.store.partitions();
            let slices = (SWEEP_PERIOD.as_millis() / HOUSEKEEPING_TICK.as_millis()).max(1) as usize;
            let per = parts.div_ceil(slices);
            let mut at = 0;
            let mut last_sync = Instant::now();
            let mut last_compact = Instant::now();
            while !stop.load(Ordering::Relaxed) {
                std::thread::sleep(HOUSEKEEPING_TICK);
                reg.store.sweep(unix_now(), at..at + per);
                at = if at + per >= parts { 0 } else { at + per };
                let Some(j) = &reg.journal else { continue };
                if let Fsync::Batch(ms) = j.fsync {
                    if last_sync.elapsed() >= Duration::from_millis(ms) {
                        j.sync_all();
                        last_sync = Instant::now();
                    }
                }
                if last_compact.elapsed() >= reg.cfg.compact_interval {
                    match journal::compact(j, &reg.store, COMPACT_WAIT) {
                        Ok(true) => tracing::debug!("registrar journal compacted"),
                        Ok(false) => tracing::warn!(
                            "registrar journal compaction postponed: a shard did not move to the new file"
                        ),
                        Err(e) => tracing::error!("registrar journal compaction failed: {e}"),
                    }
                    last_compact = Instant::now();
                }
            }
            if let Some(j) = &reg.journal {
                j.sync_all();
            }
        })
}
