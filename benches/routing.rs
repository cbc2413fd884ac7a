//! The prefix table: `cargo bench --bench routing`.
//!
//! - `prefix_lookup/<n>`: longest-prefix match of 11-digit numbers against
//!   `n` random prefixes of 4 to 12 digits. The queries are made
//!   beforehand and walked in order (a million of them), so each lookup
//!   meets a different part of the table, as calls do;
//! - `prefix_load/1M_csv`: read a million-line CSV file, map its
//!   destination names to indexes and build the table: what a reload costs.
//!
//! Before the timings it prints the table's memory for a million prefixes.
//!
//! Figures (`-- --warm-up-time 1 --measurement-time 3`, release; a 2-vCPU
//! AMD EPYC VM, 1 MB L2 per core, shared with other builds, so the
//! spread between runs is wide; a dependent load measures ~110 ns at 4 MB
//! and ~230 ns at 16 MB on it):
//! - `prefix_lookup/1M`: 188 ns (load average 1.2), 240 ns (load 3 to 5);
//!   34.9 bytes per prefix (1.95 cuts per key, 16 bytes each);
//! - `prefix_lookup/10k`: 40 ns;
//! - `prefix_load/1M_csv`: 383 ms, of which the parse is 186 ms.
//!
//! The layout before this one walked parent links up from the last key
//! <= the query (heads, then the key's link, a parent's link, the value:
//! dependent misses). In the same runs, on-CPU time, least of 10 rounds of
//! 2M lookups, four alternating processes: 222-271 ns against 175-196 ns
//! for the cuts at 1M keys, 36 against 39 ns at 10k; 21.8 bytes per prefix.

use std::collections::{HashMap, HashSet};
use std::hint::black_box;
use std::io::Write;
use std::path::PathBuf;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use siphon::routing::prefix::{load_file, PrefixTable};

const MILLION: usize = 1_000_000;
const DESTINATIONS: usize = 64;

/// xorshift64: deterministic, so every run measures the same table.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn digits(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| b'0' + (self.next() % 10) as u8).collect()
    }
}

/// `n` distinct prefixes of 4 to 12 digits.
fn prefixes(n: usize, rng: &mut Rng) -> Vec<Vec<u8>> {
    let mut seen = HashSet::with_capacity(n);
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let len = 4 + (rng.next() % 9) as usize;
        let p = rng.digits(len);
        if seen.insert(p.clone()) {
            out.push(p);
        }
    }
    out
}

fn lookup(c: &mut Criterion) {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let queries: Vec<[u8; 11]> = (0..MILLION)
        .map(|_| {
            let mut q = [0u8; 11];
            q.copy_from_slice(&rng.digits(11));
            q
        })
        .collect();
    let mut g = c.benchmark_group("prefix_lookup");
    g.throughput(Throughput::Elements(1));
    for (name, n) in [("1M", MILLION), ("10k", 10_000)] {
        let keys = prefixes(n, &mut rng);
        let table = PrefixTable::build(keys.iter().enumerate().map(|(i, k)| (k, i as u32)))
            .expect("distinct prefixes");
        if n == MILLION {
            let hits = queries
                .iter()
                .filter(|q| table.lookup(&q[..]).is_some())
                .count();
            eprintln!(
                "prefix table: {} prefixes, {} bytes ({:.1} per prefix); {:.1}% of the queries match",
                table.len(),
                table.memory_bytes(),
                table.memory_bytes() as f64 / table.len() as f64,
                100.0 * hits as f64 / queries.len() as f64,
            );
        }
        let mut i = 0;
        g.bench_function(name, |b| {
            b.iter(|| {
                i = if i + 1 == queries.len() { 0 } else { i + 1 };
                black_box(table.lookup(black_box(&queries[i][..])))
            })
        });
    }
    g.finish();
}

/// A temp file removed when dropped.
struct TempFile(PathBuf);

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn load(c: &mut Criterion) {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let path = std::env::temp_dir().join(format!("siphon-bench-prefix-{}.csv", std::process::id()));
    let file = TempFile(path);
    let mut w = std::io::BufWriter::new(std::fs::File::create(&file.0).expect("temp file"));
    writeln!(w, "prefix,destination").expect("write");
    for p in prefixes(MILLION, &mut rng) {
        let d = rng.next() as usize % DESTINATIONS;
        w.write_all(&p).expect("write");
        writeln!(w, ",carrier-{d}").expect("write");
    }
    w.flush().expect("write");
    drop(w);
    let names: HashMap<String, u16> = (0..DESTINATIONS)
        .map(|d| (format!("carrier-{d}"), d as u16))
        .collect();

    let mut g = c.benchmark_group("prefix_load");
    g.sample_size(10);
    g.bench_function("1M_csv", |b| {
        b.iter(|| {
            let entries = load_file(&file.0).expect("valid file");
            let table = PrefixTable::build(entries.iter().map(|e| {
                let d = e.value.as_deref().and_then(|v| names.get(v)).copied();
                (e.prefix.as_bytes(), d.unwrap_or(u16::MAX))
            }))
            .expect("valid table");
            black_box(table.len())
        })
    });
    // The parse alone, for the share of the file reading in the above.
    g.bench_function("1M_csv_parse_only", |b| {
        b.iter(|| black_box(load_file(&file.0).expect("valid file").len()))
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default();
    targets = lookup, load
}
criterion_main!(benches);
