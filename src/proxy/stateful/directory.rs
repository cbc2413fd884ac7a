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

use std::sync::atomic::{AtomicU64, Ordering};

const WAYS: usize = 4;

pub struct TxDirectory {
    buckets: Box<[[AtomicU64; WAYS]]>,
    mask: usize,
}

impl TxDirectory {
    /// Room for about `entries` live INVITE contexts (rounded up to a
    /// power of two buckets; 8 bytes an entry).
    pub fn new(entries: usize) -> TxDirectory {
        let n = (entries.max(WAYS) / WAYS).next_power_of_two();
        TxDirectory {
            buckets: (0..n).map(|_| Default::default()).collect(),
            mask: n - 1,
        }
    }

    fn bucket(&self, hash: u64) -> &[AtomicU64; WAYS] {
        &self.buckets[(hash >> 32) as usize & self.mask]
    }

    /// Note that `shard` holds the transaction whose key hashes to `hash`.
    pub fn insert(&self, hash: u64, shard: usize) {
        let e = entry(hash, shard);
        let b = self.bucket(hash);
        for w in b {
            if w.compare_exchange(0, e, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
        }
        // Full: one way chosen by the hash gives way.
        b[(hash >> 16) as usize % WAYS].store(e, Ordering::Relaxed);
    }

    /// The shard that holds the transaction whose key hashes to `hash`.
    pub fn lookup(&self, hash: u64) -> Option<usize> {
        let tag = tag(hash);
        self.bucket(hash)
            .iter()
            .map(|w| w.load(Ordering::Relaxed))
            .find(|&v| v & !0xff == tag)
            .map(|v| (v & 0xff) as usize)
    }

    /// The transaction `insert` noted is over.
    pub fn remove(&self, hash: u64, shard: usize) {
        let e = entry(hash, shard);
        for w in self.bucket(hash) {
            if w.compare_exchange(e, 0, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                return;
            }
        }
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
        let d = TxDirectory::new(16);
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
}
