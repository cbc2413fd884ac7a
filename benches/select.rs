//! Destination-set selection: `cargo bench --bench select`.
//!
//! `pick/<algorithm>`: one `order` call — the pick and the whole failover
//! order — over a set of 8 trunks with mixed weights (one standby),
//! three priority levels and uneven loads, the request key changing on
//! every iteration. Hash and weighted also run over 64 trunks
//! (`pick/<algorithm>/64`), the size where their per-target work (a `ln`
//! per target for hash, a sort of the tail for both) shows. `hash_key`
//! is measured on a typical 40-byte Call-ID, which the caller hashes once
//! per call before `order`.

use std::hint::black_box;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use siphon::routing::select::{hash_key, order, Algorithm, HashKey, State, View};

/// `n` trunks: weights cycling 5,3,2,1,4,2,1,0 (the last a standby),
/// priorities in three levels, loads uneven.
fn trunks(n: usize) -> Vec<View> {
    const WEIGHTS: [u32; 8] = [5, 3, 2, 1, 4, 2, 1, 0];
    (0..n)
        .map(|i| View {
            weight: WEIGHTS[i % 8],
            priority: (3 * i / n) as u32,
            available: true,
            load: (i as u32 * 7) % 11,
            max_load: 0,
            ready: true,
            id: hash_key(format!("sip:trunk{i}.carrier.example.net:5060").as_bytes()),
        })
        .collect()
}

fn pick(c: &mut Criterion) {
    let mut g = c.benchmark_group("pick");
    g.throughput(Throughput::Elements(1));
    let algorithms = [
        Algorithm::RoundRobin,
        Algorithm::Weighted,
        Algorithm::Hash(HashKey::CallId),
        Algorithm::Priority,
        Algorithm::LeastLoad,
        Algorithm::Random,
    ];
    let runs = algorithms.iter().map(|&alg| (alg, 8)).chain([
        (Algorithm::Hash(HashKey::CallId), 64),
        (Algorithm::Weighted, 64),
    ]);
    for (alg, n) in runs {
        let targets = trunks(n);
        let mut state = State::new(n, 1);
        let mut out = Vec::with_capacity(n);
        // A new key per call: an LCG step is a nanosecond and `order`
        // mixes the key itself, so its regularity does not flatter hash.
        let mut key = 1u64;
        let name = if n == 8 {
            alg.name().to_string()
        } else {
            format!("{}/{n}", alg.name())
        };
        g.bench_function(name, |b| {
            b.iter(|| {
                key = key
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                order(alg, &targets, &mut state, black_box(key), &mut out);
                black_box(out.first().copied())
            })
        });
    }
    g.finish();

    let mut g = c.benchmark_group("hash_key");
    let call_id = b"a84b4c76e66710-4f1c9d2e@pc33.atlanta.com";
    g.throughput(Throughput::Bytes(call_id.len() as u64));
    g.bench_function("call-id", |b| b.iter(|| hash_key(black_box(call_id))));
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = pick
}
criterion_main!(benches);
