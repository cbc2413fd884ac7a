//! The location service's table: bindings by AOR, read by every shard
//! without locks.
//!
//! The table is split by AOR hash into `partitions`, each one `ArcSwap`
//! snapshot of a small vector of AOR records sorted by hash. A reader
//! hashes the AOR, loads its partition's snapshot (no lock, no reference
//! count contention on a shared root) and binary-searches it. A writer
//! locks only that partition, copies its vector (a few dozen `Arc`s at a
//! million bindings with the default 65,536 partitions), changes one
//! record and swaps the copy in: a write never copies the whole table.
//! Records are immutable once published; a change makes a new record.
//!
//! Every change takes a sequence number from one counter, written into the
//! record and the journal, so a replay keeps the newest state of each AOR
//! whatever order the journal files are read in.

use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwapOption;

use crate::config::Transport;

/// One Contact bound to an AOR (RFC 3261 §10.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    /// The Contact URI, as registered (without `<>`).
    pub contact: Box<[u8]>,
    /// When it expires, unix seconds.
    pub expires: u64,
    /// q-value in thousandths (1000 when absent).
    pub q: u16,
    /// CSeq of the REGISTER that last changed it.
    pub cseq: u32,
    /// Hash of that REGISTER's Call-ID (§10.3 step 7 compares Call-IDs
    /// only for equality; 64 bits keep a collision out of reach).
    pub call_id: u64,
    /// Path values (RFC 3327), in order, each a `<uri>` as received.
    pub path: Box<[Box<[u8]>]>,
    /// RFC 5626 `+sip.instance` (the value, quotes kept), and `reg-id`
    /// (0: none).
    pub instance: Option<Box<[u8]>>,
    pub reg_id: u32,
    /// Where the REGISTER came from.
    pub source: SocketAddr,
    pub transport: Transport,
    /// The listener it arrived on (a NATed UA is reached from there:
    /// its NAT lets in only what comes from the address it sent to).
    /// `None` in journal records written before it was kept.
    pub local: Option<SocketAddr>,
    /// Over a stream: the connection it arrived on (the runtime's
    /// `ConnId`; 0: none). Valid for this run only, so not journaled.
    pub conn: u64,
    /// Behind a NAT (see `config::Nat`): reached at `source` from
    /// `local`, not at its Contact.
    pub nat: bool,
}

impl Binding {
    pub fn live(&self, now: u64) -> bool {
        self.expires > now
    }
}

/// Every binding of one AOR, as of one change.
#[derive(Debug)]
pub struct Record {
    pub seq: u64,
    /// The canonical AOR, `user@domain`.
    pub aor: Box<[u8]>,
    pub bindings: Box<[Binding]>,
}

impl Record {
    /// The record of `aor` as of change `seq`; `None` when no binding is
    /// left (the AOR leaves the table).
    fn new(seq: u64, aor: Box<[u8]>, bindings: Vec<Binding>) -> Option<Arc<Record>> {
        (!bindings.is_empty()).then(|| {
            Arc::new(Record {
                seq,
                aor,
                bindings: bindings.into_boxed_slice(),
            })
        })
    }

    /// Bindings that have not expired at `now`, best first: highest q,
    /// then the one that expires last (the most recently refreshed).
    pub fn live(&self, now: u64) -> Vec<&Binding> {
        let mut v: Vec<&Binding> = self.bindings.iter().filter(|b| b.live(now)).collect();
        v.sort_by(|a, b| b.q.cmp(&a.q).then(b.expires.cmp(&a.expires)));
        v
    }
}

/// A partition: its records sorted by hash, the hash beside each pointer
/// so that the search touches only this vector's cache lines.
type Partition = Vec<(u64, Arc<Record>)>;

struct Slot {
    snap: ArcSwapOption<Partition>,
    write: Mutex<()>,
}

/// The table shared by every shard.
pub struct Store {
    slots: Box<[Slot]>,
    mask: u64,
    hasher: std::collections::hash_map::RandomState,
    seq: AtomicU64,
    bindings: AtomicUsize,
    max_bindings: usize,
}

/// Why a change was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The table holds `max_bindings` already.
    Full,
}

impl Store {
    /// A table of `partitions` (rounded up to a power of two) holding at
    /// most `max_bindings` bindings.
    pub fn new(partitions: usize, max_bindings: usize) -> Store {
        let n = partitions.max(1).next_power_of_two();
        Store {
            slots: (0..n)
                .map(|_| Slot {
                    snap: ArcSwapOption::empty(),
                    write: Mutex::new(()),
                })
                .collect(),
            mask: (n - 1) as u64,
            hasher: Default::default(),
            seq: AtomicU64::new(1),
            bindings: AtomicUsize::new(0),
            max_bindings,
        }
    }

    pub fn hash(&self, aor: &[u8]) -> u64 {
        let mut h = self.hasher.build_hasher();
        h.write(aor);
        h.finish()
    }

    fn slot(&self, hash: u64) -> &Slot {
        // The low bits pick the partition; the search inside compares the
        // whole hash.
        &self.slots[(hash & self.mask) as usize]
    }

    /// The record of `aor`, if it has one (bindings may have expired:
    /// filter with [`Record::live`]).
    pub fn get(&self, aor: &[u8]) -> Option<Arc<Record>> {
        self.with(aor, |r| r.map(Arc::clone))
    }

    /// Call `f` with the record of `aor` (or `None`) without taking a
    /// reference count: the snapshot is held for the call.
    pub fn with<T>(&self, aor: &[u8], f: impl FnOnce(Option<&Arc<Record>>) -> T) -> T {
        let hash = self.hash(aor);
        let guard = self.slot(hash).snap.load();
        let part: &[(u64, Arc<Record>)] = guard.as_deref().map_or(&[], |p| p.as_slice());
        f(find(part, hash, aor).map(|i| &part[i].1))
    }

    /// Bindings held (live or not yet swept).
    pub fn len(&self) -> usize {
        self.bindings.load(Ordering::Relaxed)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The next sequence number a change will take.
    pub fn next_seq(&self) -> u64 {
        self.seq.load(Ordering::Relaxed)
    }

    /// Change `aor`: `f` gets its current bindings (empty if none) and
    /// returns the new ones, or `Err` to leave it alone. Returns the new
    /// record (`None` when no binding is left).
    pub fn update<E>(
        &self,
        aor: &[u8],
        f: impl FnOnce(&[Binding]) -> Result<Vec<Binding>, E>,
    ) -> Result<Update, UpdateError<E>> {
        let hash = self.hash(aor);
        let slot = self.slot(hash);
        let _w = slot.write.lock().unwrap_or_else(|p| p.into_inner());
        let cur = slot.snap.load_full();
        let part: &[(u64, Arc<Record>)] = cur.as_deref().map_or(&[], |p| p.as_slice());
        let at = find(part, hash, aor);
        let old: &[Binding] = at.map_or(&[], |i| &part[i].1.bindings);
        let new = f(old).map_err(UpdateError::Refused)?;
        let (old_n, new_n) = (old.len(), new.len());
        if new_n > old_n {
            let grow = new_n - old_n;
            if self.bindings.fetch_add(grow, Ordering::Relaxed) + grow > self.max_bindings {
                self.bindings.fetch_sub(grow, Ordering::Relaxed);
                return Err(UpdateError::Full);
            }
        } else {
            self.bindings.fetch_sub(old_n - new_n, Ordering::Relaxed);
        }
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let record = Record::new(seq, aor.into(), new);
        slot.snap
            .store(replaced(part, hash, at, record.clone()).map(Arc::new));
        Ok(Update { seq, record })
    }

    /// Put a record read back from the journal, unless the table has a
    /// newer one for its AOR. An empty `bindings` removes the AOR.
    pub fn restore(&self, seq: u64, aor: &[u8], bindings: Vec<Binding>) {
        let hash = self.hash(aor);
        let slot = self.slot(hash);
        let _w = slot.write.lock().unwrap_or_else(|p| p.into_inner());
        let cur = slot.snap.load_full();
        let part: &[(u64, Arc<Record>)] = cur.as_deref().map_or(&[], |p| p.as_slice());
        let at = find(part, hash, aor);
        if at.is_some_and(|i| part[i].1.seq >= seq) {
            return;
        }
        let old_n = at.map_or(0, |i| part[i].1.bindings.len());
        self.bindings.fetch_sub(old_n, Ordering::Relaxed);
        self.bindings.fetch_add(bindings.len(), Ordering::Relaxed);
        self.seq.fetch_max(seq + 1, Ordering::Relaxed);
        let record = Record::new(seq, aor.into(), bindings);
        slot.snap
            .store(replaced(part, hash, at, record).map(Arc::new));
    }

    /// Drop the bindings that expired before `now` from partitions
    /// `range` (a sweep in slices keeps each pause short). Readers are
    /// never blocked; only a partition that holds an expired binding is
    /// rewritten. Returns how many bindings were dropped.
    pub fn sweep(&self, now: u64, range: std::ops::Range<usize>) -> usize {
        let mut dropped = 0;
        for slot in &self.slots[range.start.min(self.slots.len())..range.end.min(self.slots.len())]
        {
            let stale = slot
                .snap
                .load()
                .as_ref()
                .is_some_and(|p| p.iter().any(|r| r.1.bindings.iter().any(|b| !b.live(now))));
            if !stale {
                continue;
            }
            let _w = slot.write.lock().unwrap_or_else(|p| p.into_inner());
            let Some(cur) = slot.snap.load_full() else {
                continue;
            };
            let mut next: Partition = Vec::with_capacity(cur.len());
            for (h, r) in cur.iter() {
                if r.bindings.iter().all(|b| b.live(now)) {
                    next.push((*h, r.clone()));
                    continue;
                }
                let keep: Vec<Binding> =
                    r.bindings.iter().filter(|b| b.live(now)).cloned().collect();
                dropped += r.bindings.len() - keep.len();
                // The same seq: expiry is not a change a replay must order
                // (it expires there too).
                next.extend(Record::new(r.seq, r.aor.clone(), keep).map(|r| (*h, r)));
            }
            slot.snap.store((!next.is_empty()).then(|| Arc::new(next)));
        }
        self.bindings.fetch_sub(dropped, Ordering::Relaxed);
        dropped
    }

    /// How many partitions there are (for sweeping in slices).
    pub fn partitions(&self) -> usize {
        self.slots.len()
    }

    /// Every record, partition by partition (a consistent view of each
    /// partition, not of the whole table): for compaction.
    pub fn for_each(&self, f: impl FnMut(&Record)) {
        self.for_each_in(0..self.slots.len(), f);
    }

    /// [`Store::for_each`] over partitions `range` (a walk in slices).
    pub fn for_each_in(&self, range: std::ops::Range<usize>, mut f: impl FnMut(&Record)) {
        let end = range.end.min(self.slots.len());
        for slot in &self.slots[range.start.min(end)..end] {
            if let Some(p) = slot.snap.load().as_ref() {
                for (_, r) in p.iter() {
                    f(r);
                }
            }
        }
    }
}

/// A change made by [`Store::update`].
#[derive(Debug)]
pub struct Update {
    pub seq: u64,
    /// The AOR's bindings now; `None` when it has none left.
    pub record: Option<Arc<Record>>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum UpdateError<E> {
    /// The caller's function refused the change.
    Refused(E),
    /// The table is full.
    Full,
}

fn find(part: &[(u64, Arc<Record>)], hash: u64, aor: &[u8]) -> Option<usize> {
    let start = part.partition_point(|e| e.0 < hash);
    part[start..]
        .iter()
        .take_while(|e| e.0 == hash)
        .position(|e| &*e.1.aor == aor)
        .map(|i| start + i)
}

/// A copy of `part` with the record at `at` replaced by `record` (or
/// removed), or `record` inserted in hash order.
fn replaced(
    part: &[(u64, Arc<Record>)],
    hash: u64,
    at: Option<usize>,
    record: Option<Arc<Record>>,
) -> Option<Partition> {
    let mut next: Partition = Vec::with_capacity(part.len() + 1);
    let record = record.map(|r| (hash, r));
    match at {
        Some(i) => {
            next.extend_from_slice(&part[..i]);
            next.extend(record);
            next.extend_from_slice(&part[i + 1..]);
        }
        None => {
            let i = part.partition_point(|e| e.0 < hash);
            next.extend_from_slice(&part[..i]);
            next.extend(record);
            next.extend_from_slice(&part[i..]);
        }
    }
    (!next.is_empty()).then_some(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn binding(contact: &str, expires: u64) -> Binding {
        Binding {
            contact: contact.as_bytes().into(),
            expires,
            q: 1000,
            cseq: 1,
            call_id: 7,
            path: Box::new([]),
            instance: None,
            reg_id: 0,
            source: "127.0.0.1:5060".parse().unwrap(),
            transport: Transport::Udp,
            local: None,
            conn: 0,
            nat: false,
        }
    }

    fn set(s: &Store, aor: &str, b: Vec<Binding>) -> Update {
        s.update::<()>(aor.as_bytes(), |_| Ok(b)).unwrap()
    }

    #[test]
    fn add_replace_remove() {
        let s = Store::new(4, 100);
        assert!(s.get(b"a@x").is_none());
        let u = set(&s, "a@x", vec![binding("sip:a@1.2.3.4", 100)]);
        let r = s.get(b"a@x").unwrap();
        assert_eq!(r.seq, u.seq);
        assert_eq!(&*r.bindings[0].contact, b"sip:a@1.2.3.4");
        assert_eq!(s.len(), 1);
        set(
            &s,
            "a@x",
            vec![binding("sip:a@1.2.3.4", 100), binding("sip:a@5.6.7.8", 100)],
        );
        assert_eq!(s.get(b"a@x").unwrap().bindings.len(), 2);
        assert_eq!(s.len(), 2);
        let u = set(&s, "a@x", vec![]);
        assert!(u.record.is_none());
        assert!(s.get(b"a@x").is_none());
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn many_aors_share_partitions_and_stay_findable() {
        let s = Store::new(8, 10_000);
        for i in 0..2000 {
            set(
                &s,
                &format!("u{i}@x"),
                vec![binding(&format!("sip:{i}@h"), 10)],
            );
        }
        for i in 0..2000 {
            let r = s.get(format!("u{i}@x").as_bytes()).unwrap();
            assert_eq!(&*r.bindings[0].contact, format!("sip:{i}@h").as_bytes());
        }
        assert!(s.get(b"u2000@x").is_none());
        assert_eq!(s.len(), 2000);
    }

    #[test]
    fn refused_and_full_leave_the_table_alone() {
        let s = Store::new(2, 2);
        set(&s, "a@x", vec![binding("sip:1@h", 10)]);
        let e = s.update(b"a@x", |_| Err::<Vec<Binding>, _>("no"));
        assert_eq!(e.unwrap_err(), UpdateError::Refused("no"));
        let e = s.update::<()>(b"b@x", |_| {
            Ok(vec![binding("sip:2@h", 10), binding("sip:3@h", 10)])
        });
        assert_eq!(e.unwrap_err(), UpdateError::Full);
        assert_eq!(s.len(), 1);
        assert!(s.get(b"b@x").is_none());
    }

    #[test]
    fn sweep_drops_only_expired_and_keeps_seq() {
        let s = Store::new(2, 100);
        set(
            &s,
            "a@x",
            vec![binding("sip:1@h", 10), binding("sip:2@h", 50)],
        );
        set(&s, "b@x", vec![binding("sip:3@h", 10)]);
        let seq = s.get(b"a@x").unwrap().seq;
        assert_eq!(s.sweep(20, 0..s.partitions()), 2);
        let r = s.get(b"a@x").unwrap();
        assert_eq!((r.bindings.len(), r.seq), (1, seq));
        assert!(s.get(b"b@x").is_none());
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn restore_keeps_the_newest() {
        let s = Store::new(2, 100);
        s.restore(5, b"a@x", vec![binding("sip:new@h", 10)]);
        s.restore(3, b"a@x", vec![binding("sip:old@h", 10)]);
        assert_eq!(&*s.get(b"a@x").unwrap().bindings[0].contact, b"sip:new@h");
        s.restore(9, b"a@x", vec![]);
        assert!(s.get(b"a@x").is_none());
        assert!(s.next_seq() >= 10);
        assert_eq!(s.len(), 0);
    }

    #[test]
    fn live_orders_by_q_then_freshness() {
        let mut a = binding("sip:a@h", 100);
        a.q = 500;
        let b = binding("sip:b@h", 50);
        let c = binding("sip:c@h", 200);
        let d = binding("sip:d@h", 5);
        let r = Record {
            seq: 1,
            aor: Box::new(*b"x"),
            bindings: vec![a, b, c, d].into_boxed_slice(),
        };
        let order: Vec<&[u8]> = r.live(10).iter().map(|b| &*b.contact).collect();
        assert_eq!(order, vec![&b"sip:c@h"[..], b"sip:b@h", b"sip:a@h"]);
    }
}
