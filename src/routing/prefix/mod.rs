//! Longest-prefix match on the Request-URI user: the carrier table that maps
//! number prefixes ("1", "44", "+4420", "0049") to a destination set.
//!
//! Keys are bytes compared as they are (no normalisation: "+44" and "0044"
//! are different keys). A table is built once and never changed; a reload
//! builds a new one.
//!
//! Layout (why it is fast): in byte-wise order, the strings that start with
//! a key form one interval, from the key up to its successor ("129" ->
//! "13"), and two such intervals are nested or apart. The build cuts the
//! line at every key and every successor and labels each piece with its
//! innermost key, the longest prefix of every string in it. A lookup is
//! then one search for the last cut <= the query and one read of its label:
//! no walk up the prefix chain, no second key compared.
//!
//! Each cut is one 16-byte record (for a 4-byte `V`): its first 8 bytes
//! as a big-endian `u64` (`head`, so almost every comparison is one integer
//! compare) and the answer from there on. Bytes past the 8th live in one
//! arena (`tails`), read only when two heads tie. A sample of every 16th
//! head (`index`, about 1 MB for a million keys) stays in cache and picks a
//! block of 16 cuts (four cache lines); the block is scanned by counting,
//! not by a binary search, so its four loads are independent and overlap,
//! and the answer is in a line already read. A lookup costs about one
//! memory latency. The alternative, parent links from each key to its
//! longest proper prefix walked up from the last key <= the query, takes
//! half the memory but three or four dependent misses (the heads, the
//! links, a parent, the value): see the figures in benches/routing.rs.
//!
//! `load_file` (in `load.rs`) reads the table's source file (CSV or TOML) into entries with
//! line numbers; the caller maps destination names and calls `build`.

use std::cmp::Ordering;
use std::fmt;

mod load;

pub use load::{load_file, Entry, LoadError, LoadProblem};

/// The longest key a table accepts, in bytes.
pub const MAX_PREFIX_LEN: usize = 32;

/// The most keys a table holds (64 Mi): with two cuts per key and 24 tail
/// bytes per cut, offsets into the tail arena still fit in `u32`.
pub const MAX_ENTRIES: usize = 1 << 26;

/// An immutable longest-prefix-match table from byte keys to `V`.
#[derive(Clone)]
pub struct PrefixTable<V> {
    keys: usize,
    /// In byte-wise order; the answer of each holds up to the next.
    cuts: Box<[Cut<V>]>,
    /// `cuts[i * STRIDE].head`: the top level of the search.
    index: Box<[u64]>,
    /// The bytes past the 8th of every cut, in order.
    tails: Box<[u8]>,
    /// Where the tails of the cuts of block `b` start in `tails`. Offsets
    /// per block, not per cut: ties are rare, a block is 16 cuts to sum.
    tail_base: Box<[u32]>,
}

/// Why a table could not be built. Positions count entries from 0 in the
/// order given; the caller turns them into line numbers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PrefixError {
    Empty {
        position: usize,
    },
    TooLong {
        position: usize,
        prefix: Vec<u8>,
    },
    /// The same prefix twice; `first < second`.
    Duplicate {
        prefix: Vec<u8>,
        first: usize,
        second: usize,
    },
    TooMany {
        count: usize,
    },
}

impl<V: Copy> PrefixTable<V> {
    /// Build a table; the order of `entries` does not matter.
    pub fn build<K: AsRef<[u8]>>(
        entries: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self, PrefixError> {
        let (arena, keys) = sorted_keys(entries)?;
        let Some(first) = keys.first() else {
            return Ok(PrefixTable {
                keys: 0,
                cuts: Box::default(),
                index: Box::default(),
                tails: Box::default(),
                tail_base: Box::default(),
            });
        };
        let bytes = |k: &Scratch<V>| &arena[k.at as usize..k.at as usize + usize::from(k.len)];
        let mut sweep = Sweep::new(keys.len(), first.value);
        // The keys whose interval holds the sweep position, innermost on
        // top: a key's prefixes sort before it and stay open until a key
        // outside them comes.
        let mut open: Vec<usize> = Vec::with_capacity(MAX_PREFIX_LEN);
        for (i, k) in keys.iter().enumerate() {
            let key = bytes(k);
            while let Some(&top) = open.last() {
                if key.starts_with(bytes(&keys[top])) {
                    break;
                }
                open.pop();
                let outer = open.last().map(|&o| (o, &keys[o]));
                sweep.close(bytes(&keys[top]), outer);
            }
            open.push(i);
            sweep.push(key, Some((i, k)));
        }
        while let Some(top) = open.pop() {
            let outer = open.last().map(|&o| (o, &keys[o]));
            sweep.close(bytes(&keys[top]), outer);
        }

        let Sweep { cuts, tails, .. } = sweep;
        let mut tail_base = Vec::with_capacity(cuts.len().div_ceil(STRIDE));
        let mut at = 0;
        for (i, c) in cuts.iter().enumerate() {
            if i % STRIDE == 0 {
                // Fits: MAX_ENTRIES keys make at most 2^27 cuts, 24 tail
                // bytes each.
                tail_base.push(at as u32);
            }
            at += tail_len(c.cut_len);
        }
        Ok(PrefixTable {
            keys: keys.len(),
            index: cuts.iter().step_by(STRIDE).map(|c| c.head).collect(),
            cuts: cuts.into(),
            tails: tails.into(),
            tail_base: tail_base.into(),
        })
    }

    /// The longest key that is a prefix of `user`: its length and value.
    pub fn lookup(&self, user: &[u8]) -> Option<(usize, V)> {
        // No cut is longer, so the bytes past MAX_PREFIX_LEN change neither
        // the order against any cut nor the answer.
        let q = &user[..user.len().min(MAX_PREFIX_LEN)];
        let cut = &self.cuts[self.floor(q, head(q))?];
        (cut.len > 0).then_some((usize::from(cut.len), cut.value))
    }

    pub fn len(&self) -> usize {
        self.keys
    }

    pub fn is_empty(&self) -> bool {
        self.keys == 0
    }

    /// Heap bytes held by the table (the arrays, not allocator overhead).
    pub fn memory_bytes(&self) -> usize {
        std::mem::size_of_val(&*self.cuts)
            + self.index.len() * 8
            + self.tails.len()
            + self.tail_base.len() * 4
    }

    /// The index of the last cut <= `q`, if any.
    fn floor(&self, q: &[u8], qh: u64) -> Option<usize> {
        // A smaller head means a smaller cut, a greater head a greater cut;
        // only cuts with the query's head need their tails compared.
        let blocks = self.index.partition_point(|&h| h <= qh);
        let start = blocks.checked_sub(1)? * STRIDE;
        let block = &self.cuts[start..(start + STRIDE).min(self.cuts.len())];
        // cuts[start].head <= qh < the next block's first head. Counted,
        // not searched: see the module comment.
        let above = start
            + block
                .iter()
                .map(|c| usize::from(c.head <= qh))
                .sum::<usize>();
        let last = above - 1;
        if self.cuts[last].head < qh {
            return Some(last);
        }
        let tied = self.first_with_head(last, qh);
        let mut lo = tied;
        let mut hi = above;
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.cmp_tied(mid, q) == Ordering::Greater {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        // Cuts before `tied` have a smaller head, so they are < q.
        lo.checked_sub(1)
    }

    /// The first index of the run of cuts with head `qh` that ends at `last`.
    fn first_with_head(&self, last: usize, qh: u64) -> usize {
        // Gallop back: a run is usually one cut, but keys sharing 8 bytes
        // ("+4420712...") can be thousands.
        let mut known = last;
        let mut step = 1;
        let lower = loop {
            if step > known {
                break 0;
            }
            if self.cuts[known - step].head != qh {
                break known - step + 1;
            }
            known -= step;
            step *= 2;
        };
        lower + self.cuts[lower..known].partition_point(|c| c.head < qh)
    }

    /// Order of cut `i` against `q`, given that their heads are equal.
    fn cmp_tied(&self, i: usize, q: &[u8]) -> Ordering {
        let len = usize::from(self.cuts[i].cut_len);
        if len < 8 || q.len() < 8 {
            // Equal zero-padded heads: the shorter is a prefix of the other.
            len.cmp(&q.len())
        } else {
            self.tail(i).cmp(&q[8..])
        }
    }

    /// Cut `i`'s bytes past the 8th.
    fn tail(&self, i: usize) -> &[u8] {
        let start = i - i % STRIDE;
        let skip: usize = self.cuts[start..i]
            .iter()
            .map(|c| tail_len(c.cut_len))
            .sum();
        let at = self.tail_base[i / STRIDE] as usize + skip;
        &self.tails[at..at + tail_len(self.cuts[i].cut_len)]
    }
}

impl<V> fmt::Debug for PrefixTable<V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PrefixTable")
            .field("len", &self.keys)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for PrefixError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PrefixError::Empty { position } => write!(f, "entry {position}: empty prefix"),
            PrefixError::TooLong { position, prefix } => write!(
                f,
                "entry {position}: prefix \"{}\" is {} bytes, longer than {MAX_PREFIX_LEN}",
                prefix.escape_ascii(),
                prefix.len()
            ),
            PrefixError::Duplicate {
                prefix,
                first,
                second,
            } => write!(
                f,
                "entry {second}: duplicate prefix \"{}\" (first as entry {first})",
                prefix.escape_ascii()
            ),
            PrefixError::TooMany { count } => {
                write!(f, "{count} prefixes, more than {MAX_ENTRIES}")
            }
        }
    }
}

impl std::error::Error for PrefixError {}

/// Cuts per block of the top-level index: the rest of the search is 16
/// cuts, 256 bytes for a 4-byte `V`. 8 and 32 measured slower at a million
/// keys (a bigger index that leaves the L2 cache; twice the lines to read).
const STRIDE: usize = 16;

/// The first 8 bytes of `key`, zero-padded, as a big-endian integer. Keys
/// ordered by (head, bytes) are in byte-wise order, since equal heads of
/// keys shorter than 8 mean one is a prefix of the other.
fn head(key: &[u8]) -> u64 {
    let mut b = [0u8; 8];
    let n = key.len().min(8);
    b[..n].copy_from_slice(&key[..n]);
    u64::from_be_bytes(b)
}

/// One cut: where it is and what a lookup from there on answers.
#[derive(Clone, Copy)]
struct Cut<V> {
    /// The cut's first 8 bytes, zero-padded, big-endian.
    head: u64,
    /// The cut's length in bytes.
    cut_len: u8,
    /// The answer's length; 0 for no match.
    len: u8,
    /// The answer's value; when `len` is 0, a filler (`V` has no default).
    value: V,
}

fn tail_len(cut_len: u8) -> usize {
    usize::from(cut_len).saturating_sub(8)
}

/// A key during the build: where its bytes are in the arena, its place in
/// the input, its value.
struct Scratch<V> {
    head: u64,
    at: u32,
    len: u8,
    position: u32,
    value: V,
}

/// Check and sort the keys: the byte arena (in input order) and the keys in
/// byte-wise order.
fn sorted_keys<K: AsRef<[u8]>, V>(
    entries: impl IntoIterator<Item = (K, V)>,
) -> Result<(Vec<u8>, Vec<Scratch<V>>), PrefixError> {
    let mut arena = Vec::new();
    let mut keys = Vec::new();
    for (position, (key, value)) in entries.into_iter().enumerate() {
        let key = key.as_ref();
        if key.is_empty() {
            return Err(PrefixError::Empty { position });
        }
        if key.len() > MAX_PREFIX_LEN {
            let prefix = key.to_vec();
            return Err(PrefixError::TooLong { position, prefix });
        }
        if position >= MAX_ENTRIES {
            return Err(PrefixError::TooMany {
                count: position + 1,
            });
        }
        // Fits: the arena is at most 32 * MAX_ENTRIES bytes, < 2^32.
        let at = arena.len() as u32;
        arena.extend_from_slice(key);
        keys.push(Scratch {
            head: head(key),
            at,
            len: key.len() as u8,
            position: position as u32,
            value,
        });
    }
    let bytes = |k: &Scratch<V>| &arena[k.at as usize..k.at as usize + usize::from(k.len)];
    // The position breaks ties so the duplicates of a key come in order.
    keys.sort_unstable_by(|a, b| {
        (a.head.cmp(&b.head))
            .then_with(|| bytes(a).cmp(bytes(b)))
            .then(a.position.cmp(&b.position))
    });
    let same = |a: &Scratch<V>, b: &Scratch<V>| a.head == b.head && bytes(a) == bytes(b);
    if let Some((first, second)) = first_duplicate_sorted(&keys, same, |k| k.position) {
        return Err(PrefixError::Duplicate {
            prefix: bytes(&keys[second]).to_vec(),
            first: keys[first].position as usize,
            second: keys[second].position as usize,
        });
    }
    Ok((arena, keys))
}

/// The build's sweep over the sorted keys: the cuts so far.
struct Sweep<V> {
    cuts: Vec<Cut<V>>,
    tails: Vec<u8>,
    /// Which key answers at each cut (`NO_KEY`: none), to merge cuts that
    /// change nothing; `V` cannot be compared.
    answer: Vec<u32>,
    filler: V,
}

const NO_KEY: u32 = u32::MAX;

impl<V: Copy> Sweep<V> {
    fn new(keys: usize, filler: V) -> Self {
        // A start and an end per key, at most.
        Sweep {
            cuts: Vec::with_capacity(2 * keys),
            tails: Vec::new(),
            answer: Vec::with_capacity(2 * keys),
            filler,
        }
    }

    /// A cut at `s` from which `key` answers.
    fn push(&mut self, s: &[u8], key: Option<(usize, &Scratch<V>)>) {
        let h = head(s);
        if let Some(last) = self.cuts.last() {
            let tail = &self.tails[self.tails.len() - tail_len(last.cut_len)..];
            // The same place again (a successor that is the next key, or
            // nested keys ending together): the last word counts.
            if last.head == h
                && usize::from(last.cut_len) == s.len()
                && tail == s.get(8..).unwrap_or_default()
            {
                let n = tail_len(last.cut_len);
                self.tails.truncate(self.tails.len() - n);
                self.cuts.pop();
                self.answer.pop();
            }
        }
        // Fits: i < MAX_ENTRIES.
        let id = key.map_or(NO_KEY, |(i, _)| i as u32);
        if self.answer.last().copied().unwrap_or(NO_KEY) == id {
            return; // the answer does not change here
        }
        let (len, value) = key.map_or((0, self.filler), |(_, k)| (k.len, k.value));
        self.cuts.push(Cut {
            head: h,
            cut_len: s.len() as u8,
            len,
            value,
        });
        self.tails.extend_from_slice(s.get(8..).unwrap_or_default());
        self.answer.push(id);
    }

    /// The end of `key`'s interval, after which `outer` answers: the
    /// successor of `key`, the least string greater than all that start
    /// with it (strip trailing 0xff bytes, add one to the last). An all-0xff
    /// key has none: its interval runs to the end.
    fn close(&mut self, key: &[u8], outer: Option<(usize, &Scratch<V>)>) {
        let Some(last) = key.iter().rposition(|&b| b != 0xff) else {
            return;
        };
        let mut end = [0u8; MAX_PREFIX_LEN];
        end[..=last].copy_from_slice(&key[..=last]);
        end[last] += 1;
        self.push(&end[..=last], outer);
    }
}

/// In `sorted` (equal items ordered by position), the duplicate pair whose
/// second member comes first in the input: `(first, second)` indexes into
/// `sorted`.
fn first_duplicate_sorted<T>(
    sorted: &[T],
    same: impl Fn(&T, &T) -> bool,
    position: impl Fn(&T) -> u32,
) -> Option<(usize, usize)> {
    let mut best: Option<(usize, usize)> = None;
    let mut run = 0;
    for i in 1..sorted.len() {
        if !same(&sorted[run], &sorted[i]) {
            run = i;
        } else if i == run + 1
            && best.is_none_or(|(_, b)| position(&sorted[i]) < position(&sorted[b]))
        {
            best = Some((run, i));
        }
    }
    best
}

#[cfg(test)]
mod tests;
