//! Which shard holds an INVITE's server transaction, for the requests
//! that SO_REUSEPORT may deliver elsewhere: a CANCEL, a non-2xx ACK or a
//! retransmission sent from another port or connection than the INVITE
//! (RFC 3261 §9.2, §17.2.3). Every other request stays on the shard that
//! received it, with no hand-off.
//!
//! A fixed table shared by every shard, lock-free: buckets of four
//! `AtomicU64`, each entry the hash of the §17.2.3 key (its low byte
//! cleared, one bit set so it is never 0) with the shard in the low byte;
//! 0 is empty. An INVITE context is entered when it is created and taken
//! out when it is released, so the table holds live INVITE contexts only;
//! a bucket that is full (five live INVITEs hashed to it) overwrites one
//! way, and the CANCEL of the INVITE it forgot is then forwarded
//! statelessly, as without the directory.
//!
//! Memory: the table is 8 bytes an entry for `max_transactions` entries
//! (8 MiB at the default million), zero pages until used. A flood's
//! INVITEs land all over it, and its pages stay resident after they are
//! empty again; so once the table is empty after at least a page's worth
//! of inserts per page, [`TxDirectory::reset_if_idle`] (shard 0's
//! housekeeping) puts a fresh table in its place and the old one is
//! freed. Each shard counts its own entries on its own cache line. An
//! INVITE entered in the old table in the instant of the swap is
//! forgotten, as in a full bucket.

use std::sync::atomic::{AtomicIsize, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;

const WAYS: usize = 4;

pub struct TxDirectory {
    table: ArcSwap<Table>,
    buckets: usize,
    shards: usize,
}

/// One generation of the table.
struct Table {
    /// Bucket `i` is `ways[i * WAYS..][..WAYS]`.
    ways: Box<[AtomicU64]>,
    mask: usize,
    /// Per shard (by the shard in the entry's low byte): entries in the
    /// table, and inserts made.
    counts: Box<[Counts]>,
}

/// One shard's counts, on a cache line of its own.
#[derive(Default)]
#[repr(align(128))]
struct Counts {
    live: AtomicIsize,
    inserted: AtomicUsize,
}

impl Table {
    fn new(n: usize, shards: usize) -> Table {
        Table {
            // Zero pages until an INVITE lands in them.
            ways: crate::rt::zeroed_atomics(n * WAYS),
            mask: n - 1,
            counts: (0..shards.clamp(1, 256))
                .map(|_| Counts::default())
                .collect(),
        }
    }

    fn bucket(&self, hash: u64) -> &[AtomicU64] {
        let i = (hash >> 32) as usize & self.mask;
        &self.ways[i * WAYS..][..WAYS]
    }

    fn counts(&self, shard: usize) -> &Counts {
        &self.counts[shard % self.counts.len()]
    }
}

impl TxDirectory {
    /// Room for about `entries` live INVITE contexts (rounded up to a
    /// power of two buckets; 8 bytes an entry), entered by `shards` shards.
    pub fn new(entries: usize, shards: usize) -> TxDirectory {
        let buckets = (entries.max(WAYS) / WAYS).next_power_of_two();
        TxDirectory {
            table: ArcSwap::from_pointee(Table::new(buckets, shards)),
            buckets,
            shards,
        }
    }

    /// Note that `shard` holds the transaction whose key hashes to `hash`.
    pub fn insert(&self, hash: u64, shard: usize) {
        let e = entry(hash, shard);
        let t = self.table.load();
        let b = t.bucket(hash);
        let c = t.counts(shard);
        c.inserted.fetch_add(1, Ordering::Relaxed);
        c.live.fetch_add(1, Ordering::Relaxed);
        for w in b {
            if w.compare_exchange(0, e, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
        }
        // Full: one way chosen by the hash gives way (its shard's count
        // loses it: that shard's remove will not find it).
        let old = b[(hash >> 16) as usize % WAYS].swap(e, Ordering::Relaxed);
        if old != 0 {
            t.counts((old & 0xff) as usize)
                .live
                .fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// The shard that holds the transaction whose key hashes to `hash`.
    pub fn lookup(&self, hash: u64) -> Option<usize> {
        let tag = tag(hash);
        self.table
            .load()
            .bucket(hash)
            .iter()
            .map(|w| w.load(Ordering::Relaxed))
            .find(|&v| v & !0xff == tag)
            .map(|v| (v & 0xff) as usize)
    }

    /// The transaction `insert` noted is over.
    pub fn remove(&self, hash: u64, shard: usize) {
        let e = entry(hash, shard);
        let t = self.table.load();
        for w in t.bucket(hash) {
            if w.compare_exchange(e, 0, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                t.counts(shard).live.fetch_sub(1, Ordering::Relaxed);
                return;
            }
        }
    }

    /// Put a fresh table in place of an empty one that has had at least
    /// one insert per 4 KiB page of it (so most of its pages are resident
    /// for nothing); the old one is freed. For one shard's housekeeping.
    /// True if it did.
    pub fn reset_if_idle(&self) -> bool {
        let t = self.table.load();
        let (live, inserted) = t.counts.iter().fold((0, 0), |(l, i), c| {
            (
                l + c.live.load(Ordering::Relaxed),
                i + c.inserted.load(Ordering::Relaxed),
            )
        });
        let pages = self.buckets * WAYS * std::mem::size_of::<AtomicU64>() / 4096;
        if live != 0 || inserted < pages.max(1) {
            return false;
        }
        drop(t);
        self.table
            .store(Arc::new(Table::new(self.buckets, self.shards)));
        true
    }

    /// Entries in the table now (for tests).
    #[cfg(test)]
    fn live(&self) -> isize {
        let t = self.table.load();
        t.counts
            .iter()
            .map(|c| c.live.load(Ordering::Relaxed))
            .sum()
    }
}

fn tag(hash: u64) -> u64 {
    (hash | 0x100) & !0xff
}

fn entry(hash: u64, shard: usize) -> u64 {
    tag(hash) | (shard as u64 & 0xff)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insert_lookup_remove_and_a_full_bucket() {
        let d = TxDirectory::new(16, 8);
        d.insert(0xabcd_0000_0000_1234, 3);
        assert_eq!(d.lookup(0xabcd_0000_0000_1234), Some(3));
        assert_eq!(d.lookup(0xabcd_0000_0000_2234), None, "another tag");
        d.remove(0xabcd_0000_0000_1234, 2);
        assert_eq!(
            d.lookup(0xabcd_0000_0000_1234),
            Some(3),
            "only its own entry"
        );
        d.remove(0xabcd_0000_0000_1234, 3);
        assert_eq!(d.lookup(0xabcd_0000_0000_1234), None);
        // Five keys in one bucket (the same high half): the last four are
        // found, one of the first was overwritten.
        let keys: Vec<u64> = (1..=5).map(|i| (7 << 32) | (i << 16) | (i << 8)).collect();
        for (i, &k) in keys.iter().enumerate() {
            d.insert(k, i);
        }
        let found = keys.iter().filter(|&&k| d.lookup(k).is_some()).count();
        assert_eq!(found, 4);
        assert_eq!(d.lookup(keys[4]), Some(4));
    }

    #[test]
    fn an_empty_table_that_was_used_is_replaced_and_works_as_before() {
        // 16,384 buckets of 32 bytes: 128 pages.
        let d = TxDirectory::new(65_536, 2);
        let keys: Vec<u64> = (0..200u64)
            .map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15))
            .collect();
        for (i, &k) in keys.iter().enumerate() {
            d.insert(k, i % 2);
        }
        assert_eq!(d.live(), 200);
        assert!(!d.reset_if_idle(), "entries live");
        for (i, &k) in keys.iter().enumerate() {
            assert_eq!(d.lookup(k), Some(i % 2));
            d.remove(k, i % 2);
        }
        assert_eq!(d.live(), 0);
        let before = Arc::as_ptr(&d.table.load_full());
        assert!(d.reset_if_idle(), "empty after 200 inserts over 128 pages");
        assert_ne!(Arc::as_ptr(&d.table.load_full()), before);
        assert!(!d.reset_if_idle(), "the new table has had no insert");
        // The same behaviour on the new table.
        d.insert(keys[0], 1);
        assert_eq!(d.lookup(keys[0]), Some(1));
        d.remove(keys[0], 1);
        assert_eq!(d.lookup(keys[0]), None);
        // A few inserts, less than a page's worth: kept.
        assert!(!d.reset_if_idle());
    }

    #[test]
    fn an_overwritten_entry_leaves_the_counts_right() {
        let d = TxDirectory::new(16, 8);
        let keys: Vec<u64> = (1..=5).map(|i| (7 << 32) | (i << 16) | (i << 8)).collect();
        for (i, &k) in keys.iter().enumerate() {
            d.insert(k, i);
        }
        assert_eq!(d.live(), 4, "one of five overwritten");
        for (i, &k) in keys.iter().enumerate() {
            d.remove(k, i);
        }
        assert_eq!(d.live(), 0);
    }
}
