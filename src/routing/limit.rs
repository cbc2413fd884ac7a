//! Call-rate limits (`cps` and `burst` on a route or a destination set):
//! OpenSIPS ratelimit's and Kamailio pipelimit's job, for new calls.
//!
//! A [`Bucket`] is a token bucket written as GCRA (the generic cell rate
//! algorithm): one atomic word, the theoretical arrival time, shared by
//! every shard. A call at `now` is admitted if it is not earlier than
//! `tat - tolerance`; then `tat` moves one interval (1/cps) on. `burst`
//! calls may arrive at once after a quiet spell; over time no more than
//! `cps` per second are admitted.

use std::sync::atomic::{AtomicU64, Ordering};

/// A configured limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// New calls per second.
    pub cps: u32,
    /// Calls admitted at once after a quiet spell (at least 1).
    pub burst: u32,
}

/// The live state of one limit.
#[derive(Debug)]
pub struct Bucket {
    /// Microseconds per call, and how far ahead `tat` may run.
    interval: u64,
    tolerance: u64,
    /// Theoretical arrival time of the next call (µs on the shards'
    /// clock).
    tat: AtomicU64,
    /// Calls refused.
    pub limited: AtomicU64,
}

impl Bucket {
    pub fn new(l: Limit) -> Bucket {
        let interval = 1_000_000 / u64::from(l.cps.max(1));
        Bucket {
            interval,
            tolerance: interval * u64::from(l.burst.max(1) - 1),
            tat: AtomicU64::new(0),
            limited: AtomicU64::new(0),
        }
    }

    /// Whether a call at `now_ms` would be admitted, taking nothing (a
    /// target's limit, looked at when targets are put in order).
    pub fn ready(&self, now_ms: u64) -> bool {
        let now = now_ms.saturating_mul(1000);
        self.tat.load(Ordering::Relaxed).max(now) - now <= self.tolerance
    }

    /// One new call at `now_ms`: true if admitted (and counted), false if
    /// over the limit (counted as limited).
    pub fn admit(&self, now_ms: u64) -> bool {
        let now = now_ms.saturating_mul(1000);
        let mut tat = self.tat.load(Ordering::Relaxed);
        loop {
            let start = tat.max(now);
            if start - now > self.tolerance {
                self.limited.fetch_add(1, Ordering::Relaxed);
                return false;
            }
            match self.tat.compare_exchange_weak(
                tat,
                start + self.interval,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(t) => tat = t,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate() {
        let b = Bucket::new(Limit { cps: 10, burst: 3 });
        let at = 5_000;
        assert!((0..3).all(|_| b.admit(at)), "the burst");
        assert!(!b.admit(at), "then nothing until the next interval");
        assert!(!b.admit(at + 50));
        assert!(b.admit(at + 100));
        assert!(!b.admit(at + 150));
        // Over a long run: cps per second, whatever the offered load.
        let admitted = (0..10_000u64).filter(|i| b.admit(at + 200 + i)).count();
        assert!((99..=102).contains(&admitted), "{admitted} in 10 s");
        assert!(b.limited.load(Ordering::Relaxed) > 9_000);
    }

    #[test]
    fn shared_by_threads_it_admits_no_more_than_the_limit() {
        let b = std::sync::Arc::new(Bucket::new(Limit {
            cps: 100,
            burst: 50,
        }));
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || (0..1000).filter(|_| b.admit(1_000)).count())
            })
            .collect();
        let total: usize = threads.into_iter().map(|t| t.join().unwrap()).sum();
        assert_eq!(total, 50, "the burst, once");
    }
}
