//! The per-shard timer wheel: `cargo bench --bench wheel`.
//!
//! The realistic load is ~100k live SIP transaction timers (500 ms .. 32 s)
//! of which most are cancelled before they fire; so the pairs of insert and
//! cancel are measured with 100k others in the wheel, once on a hot entry
//! (insert then cancel the same timer) and once on cold ones (cancel the
//! oldest of a ring of 100k, insert its successor). Firing is measured by
//! advancing 1 ms at a time through 32 s of 100k timers, per timer fired.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use siphon::rt::wheel::{TimerKey, Wheel};

/// Live timers in the wheel while measuring.
const LIVE: usize = 100_000;
/// The longest SIP transaction timer: 64*T1.
const SPREAD_MS: u64 = 32_000;

/// xorshift64: deterministic deadlines without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A transaction timer: 500 ms .. 32 s from now.
    fn timer(&mut self) -> u64 {
        500 + self.next() % (SPREAD_MS - 500 + 1)
    }
}

/// A wheel holding `LIVE` transaction timers, with their keys.
fn loaded() -> (Wheel<u64>, Vec<TimerKey>) {
    let mut w = Wheel::with_capacity(2 * LIVE);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let keys = (0..LIVE as u64)
        .map(|i| w.insert(rng.timer(), i).unwrap())
        .collect();
    (w, keys)
}

fn insert_cancel(c: &mut Criterion) {
    let mut g = c.benchmark_group("wheel");
    g.throughput(Throughput::Elements(1));

    g.bench_function("insert_cancel_same/100k_live", |b| {
        let (mut w, _) = loaded();
        let mut rng = Rng(7);
        b.iter(|| {
            let k = w.insert(black_box(rng.timer()), 1).unwrap();
            black_box(w.cancel(black_box(k)))
        })
    });

    g.bench_function("cancel_oldest_insert/100k_live", |b| {
        let (mut w, mut keys) = loaded();
        let mut rng = Rng(11);
        let mut i = 0;
        b.iter(|| {
            black_box(w.cancel(keys[i]));
            keys[i] = w.insert(black_box(rng.timer()), 1).unwrap();
            i = (i + 1) % LIVE;
        })
    });

    g.bench_function("reset/100k_live", |b| {
        let (mut w, keys) = loaded();
        let mut rng = Rng(13);
        let mut i = 0;
        b.iter(|| {
            black_box(w.reset(keys[i], black_box(rng.timer())));
            i = (i + 1) % LIVE;
        })
    });
    g.finish();
}

fn advance(c: &mut Criterion) {
    let mut g = c.benchmark_group("wheel");
    // One iteration advances 1 ms at a time through all 32 s and fires all
    // 100k timers: the reported time per element is the cost per fired
    // timer, the 32k mostly empty ticks and the cascades included.
    g.throughput(Throughput::Elements(LIVE as u64));
    g.bench_function("advance_1ms/100k_over_32s", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut fired = Vec::with_capacity(LIVE);
            for _ in 0..iters {
                let (mut w, _) = loaded();
                fired.clear();
                let start = Instant::now();
                for now in 1..=SPREAD_MS {
                    w.advance(now, &mut fired);
                }
                total += start.elapsed();
                assert_eq!(fired.len(), LIVE);
                black_box(&fired);
            }
            total
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = insert_cancel, advance
}
criterion_main!(benches);
