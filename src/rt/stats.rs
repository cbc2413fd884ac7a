//! Per-shard counters: each shard writes only its own (relaxed atomics,
//! no sharing of cache lines between shards on the hot path); a reader sums
//! them.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::proxy::Drop;

/// One shard's counters.
#[derive(Debug, Default)]
#[repr(align(128))]
pub struct Counters {
    pub datagrams_in: AtomicU64,
    pub bytes_in: AtomicU64,
    pub datagrams_out: AtomicU64,
    pub bytes_out: AtomicU64,
    pub forwarded: AtomicU64,
    pub replied: AtomicU64,
    pub send_errors: AtomicU64,
    pub recv_errors: AtomicU64,
    /// Drops by reason, indexed as `DROPS`.
    pub drops: [AtomicU64; DROPS.len()],
}

/// Every drop reason, in counter order.
pub const DROPS: [Drop; 10] = [
    Drop::Keepalive,
    Drop::Garbage,
    Drop::BadResponse,
    Drop::NotOurVia,
    Drop::NoNextVia,
    Drop::Ack,
    Drop::Unresolvable,
    Drop::BadDestination,
    Drop::NoListener,
    Drop::Unsent,
];

impl Counters {
    #[inline]
    pub fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    #[inline]
    pub fn dropped(&self, reason: Drop) {
        let i = DROPS
            .iter()
            .position(|&d| d == reason)
            .unwrap_or(DROPS.len() - 1);
        Counters::add(&self.drops[i], 1);
    }
}

/// Counters summed over shards, as plain numbers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Snapshot {
    pub datagrams_in: u64,
    pub bytes_in: u64,
    pub datagrams_out: u64,
    pub bytes_out: u64,
    pub forwarded: u64,
    pub replied: u64,
    pub send_errors: u64,
    pub recv_errors: u64,
    pub drops: Vec<(Drop, u64)>,
}

impl Snapshot {
    pub fn merge<'a>(shards: impl Iterator<Item = &'a Counters>) -> Snapshot {
        let mut s = Snapshot {
            drops: DROPS.iter().map(|&d| (d, 0)).collect(),
            ..Snapshot::default()
        };
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        for c in shards {
            s.datagrams_in += get(&c.datagrams_in);
            s.bytes_in += get(&c.bytes_in);
            s.datagrams_out += get(&c.datagrams_out);
            s.bytes_out += get(&c.bytes_out);
            s.forwarded += get(&c.forwarded);
            s.replied += get(&c.replied);
            s.send_errors += get(&c.send_errors);
            s.recv_errors += get(&c.recv_errors);
            for (i, d) in c.drops.iter().enumerate() {
                s.drops[i].1 += get(d);
            }
        }
        s
    }

    /// One shard's counters.
    pub fn of(shard: &Counters) -> Snapshot {
        Snapshot::merge(std::iter::once(shard))
    }

    /// Drops for one reason.
    pub fn dropped(&self, reason: Drop) -> u64 {
        self.drops
            .iter()
            .find(|(d, _)| *d == reason)
            .map_or(0, |(_, n)| *n)
    }
}
