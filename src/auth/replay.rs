//! Nonce-count replay detection (RFC 7616 §3.4, `nc`: the server detects
//! replays by keeping its own copy of the count).
//!
//! For each nonce (keyed by its 16-byte MAC, unique per challenge) the
//! window remembers the highest `nc` accepted; a request whose `nc` is not
//! higher is a replay. It is bounded: at most `max_nonces` entries in all,
//! spread over up to 64 mutex-protected shards (of at least 64 entries
//! each) so threads rarely contend.
//! A full shard first drops its expired nonces; if it is still full the
//! request is refused as stale, which makes the client take a fresh nonce,
//! rather than the table growing.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

const MAX_SHARDS: usize = 64;
/// Fewest entries per shard: a full shard refuses new nonces even when
/// others have room, so small windows use fewer shards (a window of up to
/// 127 is one exact shard).
const MIN_PER_SHARD: usize = 64;

/// What the window says about one `(nonce, nc)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Seen {
    /// Higher than any `nc` seen for this nonce: accepted and remembered.
    Fresh,
    /// Not higher than one already accepted.
    Replay,
    /// A new nonce, and no room for it.
    Full,
}

struct Entry {
    /// Issue time of the nonce, to find expired entries.
    issued: u64,
    /// Highest nonce count accepted.
    nc: u32,
    /// Failed authentications made with this nonce.
    failures: u32,
}

/// One shard: nonce MAC → what was accepted for it.
type Shard = HashMap<[u8; 16], Entry>;

pub(crate) struct ReplayWindow {
    shards: Box<[Mutex<Shard>]>,
    per_shard: usize,
    /// The shard the next [`ReplayWindow::sweep_next`] cleans.
    cursor: std::sync::atomic::AtomicUsize,
}

impl ReplayWindow {
    /// A window for at most `max_nonces` nonces (at least 1).
    pub(crate) fn new(max_nonces: usize) -> ReplayWindow {
        let max = max_nonces.max(1);
        let shards = (max / MIN_PER_SHARD).clamp(1, MAX_SHARDS);
        ReplayWindow {
            shards: (0..shards).map(|_| Mutex::new(HashMap::new())).collect(),
            // shards * per_shard <= max.
            per_shard: max / shards,
            cursor: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Checks `nc` for the nonce `mac` issued at `issued` and, if fresh,
    /// remembers it. `lifetime` and `now` say which entries have expired.
    pub(crate) fn check(
        &self,
        mac: &[u8; 16],
        nc: u32,
        issued: u64,
        now: u64,
        lifetime: u64,
    ) -> Seen {
        let mut shard = self.shard(mac);
        if let Some(e) = shard.get_mut(mac) {
            if nc <= e.nc {
                return Seen::Replay;
            }
            e.nc = nc;
            return Seen::Fresh;
        }
        // An absent nonce counts as "nc 0 seen": nc must start at 1.
        if nc == 0 {
            return Seen::Replay;
        }
        if shard.len() >= self.per_shard {
            shard.retain(|_, e| now.saturating_sub(e.issued) <= lifetime);
            if shard.len() >= self.per_shard {
                return Seen::Full;
            }
        }
        shard.insert(
            *mac,
            Entry {
                issued,
                nc,
                failures: 0,
            },
        );
        Seen::Fresh
    }

    /// Failed authentications counted against nonce `mac`.
    pub(crate) fn failures(&self, mac: &[u8; 16]) -> u32 {
        self.shard(mac).get(mac).map_or(0, |e| e.failures)
    }

    /// Count a failed authentication against nonce `mac` (issued at
    /// `issued`). No room to remember it: the nonce counts as worn out
    /// (`u32::MAX`), so the client must take a fresh one.
    pub(crate) fn fail(&self, mac: &[u8; 16], issued: u64, now: u64, lifetime: u64) -> u32 {
        let mut shard = self.shard(mac);
        if let Some(e) = shard.get_mut(mac) {
            e.failures = e.failures.saturating_add(1);
            return e.failures;
        }
        if shard.len() >= self.per_shard {
            shard.retain(|_, e| now.saturating_sub(e.issued) <= lifetime);
            if shard.len() >= self.per_shard {
                return u32::MAX;
            }
        }
        // nc 0: the first genuine use (nc 1) is still fresh.
        shard.insert(
            *mac,
            Entry {
                issued,
                nc: 0,
                failures: 1,
            },
        );
        1
    }

    /// Forget the expired nonces of one shard (the next in turn), so the
    /// window holds what the last `lifetime` seconds issued rather than
    /// filling to `max_nonces`; its spare capacity goes back too (true
    /// then: the heap has pages to return).
    pub(crate) fn sweep_next(&self, now: u64, lifetime: u64) -> bool {
        let i = self
            .cursor
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            % self.shards.len();
        let mut shard = self.lock(i);
        shard.retain(|_, e| now.saturating_sub(e.issued) <= lifetime);
        let len = shard.len();
        if shard.capacity() > 4 * len.max(64) {
            shard.shrink_to(2 * len);
            return true;
        }
        false
    }

    /// Nonces remembered, over all shards.
    pub(crate) fn len(&self) -> usize {
        (0..self.shards.len()).map(|i| self.lock(i).len()).sum()
    }

    fn shard(&self, mac: &[u8; 16]) -> MutexGuard<'_, Shard> {
        // The MAC is uniformly distributed and chosen by us, not the peer.
        let mut first = [0u8; 8];
        first.copy_from_slice(&mac[..8]);
        let i = u64::from_le_bytes(first) % self.shards.len() as u64;
        self.lock(i as usize)
    }

    fn lock(&self, i: usize) -> MutexGuard<'_, Shard> {
        // A panic while holding the lock cannot leave the map inconsistent
        // (each operation is one insert, update or retain), so a poisoned
        // lock is used as is rather than spreading the panic.
        self.shards[i]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(i: u64) -> [u8; 16] {
        let mut m = [0u8; 16];
        m[..8].copy_from_slice(&i.to_le_bytes());
        m[8..].copy_from_slice(&i.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes());
        m
    }

    #[test]
    fn failures_are_counted_per_nonce_and_leave_nc_fresh() {
        let w = ReplayWindow::new(16);
        assert_eq!(w.failures(&mac(1)), 0);
        assert_eq!(w.fail(&mac(1), 0, 0, 60), 1);
        assert_eq!(w.fail(&mac(1), 0, 0, 60), 2);
        assert_eq!(w.failures(&mac(1)), 2);
        assert_eq!(w.failures(&mac(2)), 0);
        assert_eq!(w.check(&mac(1), 1, 0, 0, 60), Seen::Fresh);
        assert_eq!(w.failures(&mac(1)), 2);
    }

    #[test]
    fn a_sweep_forgets_expired_nonces_one_shard_at_a_time() {
        let w = ReplayWindow::new(64 * 64);
        for i in 0..1000 {
            assert_eq!(w.check(&mac(i), 1, i % 2 * 100, 100, 60), Seen::Fresh);
        }
        assert_eq!(w.len(), 1000);
        for _ in 0..w.shards.len() {
            w.sweep_next(100, 60);
        }
        assert_eq!(w.len(), 500, "those issued at 0 expired at 60");
        assert_eq!(
            w.check(&mac(1), 2, 100, 100, 60),
            Seen::Fresh,
            "the rest kept"
        );
    }

    #[test]
    fn nc_must_increase() {
        let w = ReplayWindow::new(16);
        let m = mac(1);
        assert_eq!(w.check(&m, 1, 0, 0, 60), Seen::Fresh);
        assert_eq!(w.check(&m, 1, 0, 0, 60), Seen::Replay);
        assert_eq!(w.check(&m, 3, 0, 0, 60), Seen::Fresh);
        assert_eq!(w.check(&m, 2, 0, 0, 60), Seen::Replay);
        assert_eq!(w.check(&m, 4, 0, 0, 60), Seen::Fresh);
        // Another nonce has its own count.
        assert_eq!(w.check(&mac(2), 1, 0, 0, 60), Seen::Fresh);
        assert_eq!(w.check(&mac(3), 0, 0, 0, 60), Seen::Replay);
        assert_eq!(w.len(), 2);
    }

    #[test]
    fn bounded_and_evicts_expired_first() {
        // A small window is one shard: deterministic placement.
        let w = ReplayWindow::new(4);
        assert_eq!((w.shards.len(), w.per_shard), (1, 4));
        for i in 0..4 {
            assert_eq!(w.check(&mac(i), 1, 100, 100, 60), Seen::Fresh);
        }
        // Full of live nonces: refused, not grown.
        assert_eq!(w.check(&mac(9), 1, 100, 120, 60), Seen::Full);
        assert_eq!(w.len(), 4);
        // Known nonces still work while full.
        assert_eq!(w.check(&mac(0), 2, 100, 120, 60), Seen::Fresh);
        // Once they have expired, they make room.
        assert_eq!(w.check(&mac(9), 1, 170, 170, 60), Seen::Fresh);
        assert_eq!(w.len(), 1);
    }

    #[test]
    fn shard_sizes() {
        let sizes = |max| {
            let w = ReplayWindow::new(max);
            (w.shards.len(), w.per_shard)
        };
        assert_eq!(sizes(0), (1, 1));
        assert_eq!(sizes(127), (1, 127));
        assert_eq!(sizes(1000), (15, 66));
        assert_eq!(sizes(1_000_000), (64, 15_625));
    }

    #[test]
    fn total_never_exceeds_max() {
        for max in [1, 3, 63, 64, 65, 1000] {
            let w = ReplayWindow::new(max);
            for i in 0..(3 * max as u64 + 10) {
                w.check(&mac(i), 1, 0, 0, 60);
            }
            assert!(w.len() <= max, "max {max}: {}", w.len());
            assert!(w.len() >= max / 4, "max {max}: {}", w.len());
        }
    }

    #[test]
    fn shared_between_threads() {
        let w = std::sync::Arc::new(ReplayWindow::new(10_000));
        let handles: Vec<_> = (0..4u64)
            .map(|t| {
                let w = w.clone();
                std::thread::spawn(move || {
                    let m = mac(1000 + t);
                    (1..=500).all(|nc| w.check(&m, nc, 0, 0, 60) == Seen::Fresh)
                        && (1..=500).all(|nc| w.check(&m, nc, 0, 0, 60) == Seen::Replay)
                })
            })
            .collect();
        for h in handles {
            assert!(h.join().unwrap_or(false));
        }
        assert_eq!(w.len(), 4);
    }
}
