//! Per-route and per-target counters and latency histograms, shared by
//! every shard (relaxed atomics; one histogram per shard behind a mutex
//! that only that shard takes, except at a scrape) and rendered in the
//! Prometheus text format.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::Mutex;

use hdrhistogram::Histogram;

/// Bucket bounds of the exported latency histograms, in seconds.
const BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
/// Latencies are recorded in microseconds up to this (longer ones are
/// clamped): 10 minutes is past any SIP timer.
const MAX_US: u64 = 600_000_000;

/// What happened on the way to one target.
#[derive(Debug)]
pub struct TargetStats {
    /// Requests sent to it (new legs; retransmissions are not counted).
    pub requests: AtomicU64,
    /// Final and provisional responses received from it, by class 1xx–6xx.
    pub responses: [AtomicU64; 6],
    /// Legs to it that failed and made the proxy try another target.
    pub failovers: AtomicU64,
    /// Calls being set up through it now (INVITE legs without a final
    /// response): the load of least-load and max_load.
    pub active: AtomicU32,
    /// Time from sending the request to its first provisional response,
    /// and to its final response.
    pub first_provisional: Latency,
    pub final_response: Latency,
}

impl TargetStats {
    /// Stats for a target; latencies kept in `stripes` histograms (one per
    /// shard).
    pub fn new(stripes: usize) -> TargetStats {
        TargetStats {
            requests: AtomicU64::new(0),
            responses: Default::default(),
            failovers: AtomicU64::new(0),
            active: AtomicU32::new(0),
            first_provisional: Latency::new(stripes),
            final_response: Latency::new(stripes),
        }
    }

    pub fn response(&self, code: u16) {
        count_class(&self.responses, code);
    }

    /// One more call in progress.
    pub fn call_started(&self) {
        self.active.fetch_add(1, Ordering::Relaxed);
    }

    /// One call fewer in progress (never below zero).
    pub fn call_ended(&self) {
        let _ = self
            .active
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }

    pub fn load(&self) -> u32 {
        self.active.load(Ordering::Relaxed)
    }
}

/// One more response `code` in counters by class 1xx–6xx (anything else
/// is not a status and is not counted).
pub fn count_class(counts: &[AtomicU64; 6], code: u16) {
    if let Some(c) = counts.get(usize::from(code / 100).wrapping_sub(1)) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// One call in setup through a target, for as long as this lives (so a
/// leg that is dropped in any way gives its load back).
#[derive(Debug)]
pub struct Active(std::sync::Arc<TargetStats>);

impl Active {
    pub fn new(stats: std::sync::Arc<TargetStats>) -> Active {
        stats.call_started();
        Active(stats)
    }
}

impl Drop for Active {
    fn drop(&mut self) {
        self.0.call_ended();
    }
}

/// A latency distribution: one histogram per shard (each shard locks only
/// its own, so the lock is never contended on the call path), merged at
/// a scrape.
#[derive(Debug)]
pub struct Latency {
    stripes: Box<[Mutex<Histogram<u64>>]>,
    sum_us: AtomicU64,
}

impl Latency {
    pub fn new(stripes: usize) -> Latency {
        let stripes = (0..stripes.max(1))
            .map(|_| Mutex::new(histogram()))
            .collect();
        Latency {
            stripes,
            sum_us: AtomicU64::new(0),
        }
    }

    /// Record `us` microseconds, from shard `stripe`.
    pub fn record(&self, stripe: usize, us: u64) {
        let us = us.clamp(1, MAX_US);
        let h = &self.stripes[stripe % self.stripes.len()];
        let mut h = h.lock().unwrap_or_else(|e| e.into_inner());
        // In bounds by the clamp above, so it cannot fail.
        let _ = h.record(us);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    /// All shards' samples in one histogram.
    pub fn merged(&self) -> Histogram<u64> {
        let mut all = histogram();
        for s in self.stripes.iter() {
            let h = s.lock().unwrap_or_else(|e| e.into_inner());
            let _ = all.add(&*h);
        }
        all
    }

    /// `name_bucket{labels,le=…}`, `name_sum` and `name_count` lines.
    pub fn render(&self, out: &mut String, name: &str, labels: &str) {
        let h = self.merged();
        for le in BUCKETS {
            let us = (le * 1e6) as u64;
            let n = h.count_between(0, us);
            let _ = writeln!(out, "{name}_bucket{{{labels},le=\"{le}\"}} {n}");
        }
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {}", h.len());
        let sum = self.sum_us.load(Ordering::Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {}", h.len());
    }
}

/// An empty histogram: 2 significant digits over 1 µs .. 10 min (about
/// 20 KiB).
fn histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts (low ≥ 1,
    // high ≥ 2 × low, 2 digits), so this cannot fail.
    Histogram::new_with_bounds(1, MAX_US, 2).unwrap_or_else(|e| unreachable!("{e}"))
}

/// A label value with `\`, `"` and newlines escaped (Prometheus text
/// format 0.0.4).
pub fn label(v: &str) -> String {
    let mut s = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => s.push_str("\\\\"),
            '"' => s.push_str("\\\""),
            '\n' => s.push_str("\\n"),
            c => s.push(c),
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histograms_render_cumulative_buckets() {
        let l = Latency::new(2);
        l.record(0, 800); // 0.8 ms
        l.record(1, 30_000); // 30 ms
        l.record(1, 3_000_000); // 3 s
        let mut out = String::new();
        l.render(&mut out, "x_seconds", "target=\"a\"");
        assert!(
            out.contains("x_seconds_bucket{target=\"a\",le=\"0.001\"} 1\n"),
            "{out}"
        );
        assert!(out.contains("x_seconds_bucket{target=\"a\",le=\"0.025\"} 1\n"));
        assert!(out.contains("x_seconds_bucket{target=\"a\",le=\"0.05\"} 2\n"));
        assert!(out.contains("x_seconds_bucket{target=\"a\",le=\"2.5\"} 2\n"));
        assert!(out.contains("x_seconds_bucket{target=\"a\",le=\"5\"} 3\n"));
        assert!(out.contains("x_seconds_bucket{target=\"a\",le=\"+Inf\"} 3\n"));
        assert!(out.contains("x_seconds_count{target=\"a\"} 3\n"));
        assert!(
            out.contains("x_seconds_sum{target=\"a\"} 3.0308\n"),
            "{out}"
        );
    }

    #[test]
    fn responses_by_class_and_load_never_negative() {
        let s = TargetStats::new(1);
        s.response(183);
        s.response(200);
        s.response(503);
        s.response(99); // not a status: ignored
        s.response(700);
        let by: Vec<u64> = s
            .responses
            .iter()
            .map(|c| c.load(Ordering::Relaxed))
            .collect();
        assert_eq!(by, [1, 1, 0, 0, 1, 0]);
        s.call_started();
        s.call_ended();
        s.call_ended();
        assert_eq!(s.load(), 0);
    }

    #[test]
    fn labels_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
