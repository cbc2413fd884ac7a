//! The location table: `cargo bench --bench registrar`.
//!
//! With one million AORs of one binding each:
//! - `lookup`: what a shard does to route a call (hash, load the
//!   partition's snapshot, binary search, clone the record's `Arc`);
//! - `refresh/<partitions>`: what a REGISTER refresh does to the table
//!   (lock one partition, copy it, replace one record, swap), for several
//!   partition counts;
//! - `persistent_map`: the alternative DESIGN.md names, a persistent hash
//!   trie (rpds, thread-safe) holding the same records, updated by path
//!   copying and published through one `ArcSwap` (a writer must also
//!   serialise on one lock, which the figure leaves out in its favour).
//!
//! Before the timings it prints the memory per binding, counted by a
//! global allocator: bytes requested while filling the table, minus the
//! AOR and Contact URI bytes, per binding; and allocations per binding.

use std::alloc::{GlobalAlloc, Layout, System};
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use arc_swap::ArcSwap;
use criterion::{criterion_group, criterion_main, Criterion};
use siphon::config::Transport;
use siphon::registrar::{Binding, Store};

struct Counting;

static BYTES: AtomicUsize = AtomicUsize::new(0);
static ALLOCS: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        BYTES.fetch_add(l.size(), Ordering::Relaxed);
        ALLOCS.fetch_add(1, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        BYTES.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        BYTES.fetch_add(new, Ordering::Relaxed);
        BYTES.fetch_sub(l.size(), Ordering::Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

const N: u32 = 1_000_000;
const FAR_FUTURE: u64 = u64::MAX / 2;

fn aor(i: u32) -> String {
    format!("user{i:07}@example.com")
}

fn binding(i: u32) -> Binding {
    Binding {
        contact: format!(
            "sip:user{i:07}@10.{}.{}.{}:5060",
            i >> 16 & 255,
            i >> 8 & 255,
            i & 255
        )
        .into_bytes()
        .into_boxed_slice(),
        expires: FAR_FUTURE,
        q: 1000,
        cseq: 1,
        call_id: u64::from(i),
        path: Box::new([]),
        instance: None,
        reg_id: 0,
        source: "10.0.0.1:5060".parse().unwrap(),
        transport: Transport::Udp,
        local: None,
        conn: 0,
        nat: false,
    }
}

fn filled(partitions: usize) -> Store {
    let s = Store::new(partitions, 2 * N as usize);
    for i in 0..N {
        s.update::<()>(aor(i).as_bytes(), |_| Ok(vec![binding(i)]))
            .unwrap();
    }
    s
}

/// Memory per binding of the table, printed once.
fn memory() {
    let before = BYTES.load(Ordering::Relaxed);
    let allocs = ALLOCS.load(Ordering::Relaxed);
    let s = filled(65_536);
    let used = BYTES.load(Ordering::Relaxed) - before;
    let n_allocs = ALLOCS.load(Ordering::Relaxed) - allocs;
    let uri_bytes: usize = (0..N)
        .map(|i| aor(i).len() + binding(i).contact.len())
        .sum();
    println!(
        "registrar memory: {} bindings, {:.0} bytes per binding beyond the AOR and Contact bytes \
         ({:.0} with them), {:.1} allocations per binding (the URI bytes average {:.0})",
        s.len(),
        (used - uri_bytes) as f64 / f64::from(N),
        used as f64 / f64::from(N),
        (n_allocs as f64) / f64::from(N),
        uri_bytes as f64 / f64::from(N),
    );
    drop(s);
}

fn table(c: &mut Criterion) {
    memory();
    let mut g = c.benchmark_group("registrar");
    let s = filled(65_536);
    // Keys made beforehand: the loop measures the lookup alone.
    let keys: Vec<String> = (0..N).map(aor).collect();
    let mut i = 0usize;
    // Random AORs over the whole table: memory-bound (the table is
    // ~250 MB, every lookup misses the caches).
    g.bench_function("lookup/random", |b| {
        b.iter(|| {
            i = (i + 7919) % N as usize;
            s.with(keys[i].as_bytes(), |r| {
                black_box(r.map(|r| r.bindings.len()))
            })
        })
    });
    // The same few AORs again and again: the cost when the table is in
    // cache (a busy AOR, or a table of thousands).
    g.bench_function("lookup/hot", |b| {
        b.iter(|| {
            i = (i + 1) % 64;
            s.with(keys[i].as_bytes(), |r| {
                black_box(r.map(|r| r.bindings.len()))
            })
        })
    });
    drop(s);
    // The floor for random lookups: a std HashMap of the same keys and
    // contacts, read by one thread, no snapshots.
    let flat: std::collections::HashMap<Box<[u8]>, Binding> = (0..N)
        .map(|i| (aor(i).into_bytes().into_boxed_slice(), binding(i)))
        .collect();
    g.bench_function("lookup/random_std_hashmap_floor", |b| {
        b.iter(|| {
            i = (i + 7919) % N as usize;
            black_box(flat.get(keys[i].as_bytes()).map(|b| b.q))
        })
    });
    drop(flat);
    for parts in [4_096usize, 65_536, 262_144] {
        let s = filled(parts);
        let mut i = 0u32;
        g.bench_function(format!("refresh/{parts}"), |b| {
            b.iter(|| {
                i = (i + 7919) % N;
                s.update::<()>(aor(i).as_bytes(), |_| Ok(vec![binding(i)]))
                    .unwrap()
            })
        });
    }
    // The persistent map: one root, path-copied on every write.
    let mut m: rpds::HashTrieMapSync<Box<[u8]>, Arc<[Binding]>> = rpds::HashTrieMap::new_sync();
    for i in 0..N {
        m.insert_mut(
            aor(i).into_bytes().into_boxed_slice(),
            Arc::from(vec![binding(i)]),
        );
    }
    let root = ArcSwap::from_pointee(m);
    let mut i = 0u32;
    g.bench_function("persistent_map/refresh", |b| {
        b.iter(|| {
            i = (i + 7919) % N;
            let cur = root.load_full();
            let next = cur.insert(
                aor(i).into_bytes().into_boxed_slice(),
                Arc::from(vec![binding(i)]),
            );
            root.store(Arc::new(next));
        })
    });
    g.bench_function("persistent_map/lookup_random", |b| {
        b.iter(|| {
            let k = (i as usize * 7919) % N as usize;
            i = i.wrapping_add(1);
            black_box(root.load().get(keys[k].as_bytes()).map(|b| b.len()))
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = table
}
criterion_main!(benches);
