//! Pacing: `total` call starts spread evenly over time at `rate` per
//! second. Start `k` (from 0) is due `k / rate` seconds after the first,
//! so the sender never bunches a second's worth of calls together; when it
//! falls behind it catches up in bounded steps (see `uac`).

/// Nanoseconds in a second.
const NS: u128 = 1_000_000_000;

/// The schedule of call starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pacer {
    rate: u32,
    total: u64,
}

impl Pacer {
    /// `rate` starts per second (at least 1), `total` starts in all.
    pub fn new(rate: u32, total: u64) -> Pacer {
        Pacer {
            rate: rate.max(1),
            total,
        }
    }

    /// The number of starts for `rate` over `duration_ms` milliseconds
    /// (rounded to the nearest start, at least one).
    pub fn total_for(rate: u32, duration_ms: u64) -> u64 {
        ((rate as u128 * duration_ms as u128 + 500) / 1000).max(1) as u64
    }

    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// How many starts are due `elapsed_ns` after the first one (which is
    /// due at 0): `floor(elapsed * rate) + 1`, at most `total`.
    pub fn due_by(&self, elapsed_ns: u64) -> u64 {
        let n = elapsed_ns as u128 * self.rate as u128 / NS + 1;
        n.min(self.total as u128) as u64
    }

    /// When start `k` is due, in ns after the first: `ceil(k / rate)`,
    /// the first instant at which `due_by` counts it.
    pub fn at(&self, k: u64) -> u64 {
        (k as u128 * NS).div_ceil(self.rate as u128) as u64
    }

    /// The sending window: from the first start to one interval after
    /// the last, in ns (`total / rate` seconds).
    pub fn window_ns(&self) -> u64 {
        self.at(self.total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_start_is_due_at_once_and_the_rest_evenly() {
        let p = Pacer::new(3000, 60_000);
        assert_eq!(p.due_by(0), 1);
        // 3000/s: one start every 333_333.3 ns.
        assert_eq!(p.at(1), 333_334);
        assert_eq!(p.at(3), 1_000_000);
        assert_eq!(p.due_by(333_333), 1);
        assert_eq!(p.due_by(333_334), 2);
        assert_eq!(p.due_by(999_999), 3);
        assert_eq!(p.due_by(1_000_000), 4);
        // One second holds `rate` starts, not a burst of them.
        assert_eq!(p.due_by(999_999_999), 3000);
        assert_eq!(p.due_by(1_000_000_000), 3001);
    }

    #[test]
    fn at_and_due_by_agree_for_every_start() {
        for rate in [1, 7, 1000, 2999, 3000, 100_000] {
            let p = Pacer::new(rate, 5_000);
            for k in 1..p.total() {
                let t = p.at(k);
                assert_eq!(p.due_by(t), k + 1, "rate {rate}, start {k} at {t}");
                assert_eq!(p.due_by(t - 1), k, "rate {rate}, just before start {k}");
            }
            // Gaps differ by at most a nanosecond of rounding.
            let gaps: Vec<u64> = (1..50).map(|k| p.at(k) - p.at(k - 1)).collect();
            let (lo, hi) = (gaps.iter().min().unwrap(), gaps.iter().max().unwrap());
            assert!(hi - lo <= 1, "rate {rate}: gaps {lo}..{hi}");
        }
    }

    #[test]
    fn it_stops_at_the_total() {
        let p = Pacer::new(2000, Pacer::total_for(2000, 5_000));
        assert_eq!(p.total(), 10_000);
        assert_eq!(p.due_by(u64::MAX / 2), 10_000);
        assert_eq!(p.window_ns(), 5_000_000_000);
        assert_eq!(p.due_by(p.at(9_999)), 10_000);
    }

    #[test]
    fn totals_round_and_never_vanish() {
        assert_eq!(Pacer::total_for(3000, 20_000), 60_000);
        assert_eq!(Pacer::total_for(3, 500), 2); // 1.5 rounds up
        assert_eq!(Pacer::total_for(1, 100), 1);
        assert_eq!(Pacer::new(0, 5).rate(), 1);
    }
}
