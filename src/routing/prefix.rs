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
//! `load_file` reads the table's source file (CSV or TOML) into entries with
//! line numbers; the caller maps destination names and calls `build`.

use std::cmp::Ordering;
use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;

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

/// One line (CSV) or `[[prefix]]` table (TOML) of a prefix file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub prefix: String,
    pub value: Option<String>,
    /// 1-based; 0 when the format gives no line (never for CSV).
    pub line: usize,
}

/// A prefix file that could not be read: where and what.
#[derive(Debug)]
pub struct LoadError {
    pub file: PathBuf,
    /// 1-based; 0 when the problem is the file as a whole.
    pub line: usize,
    pub problem: LoadProblem,
}

#[derive(Debug)]
pub enum LoadProblem {
    Read(std::io::Error),
    NotUtf8,
    /// The TOML parser's message (first line).
    Toml(String),
    EmptyPrefix,
    PrefixTooLong(usize),
    /// Whitespace, a comma or a control character inside the prefix.
    BadPrefixChar(char),
    /// More than `prefix,destination` on a CSV line.
    TooManyFields(usize),
    EmptyDestination,
    Duplicate {
        prefix: String,
        first_line: usize,
    },
}

/// Read a prefix file: TOML when the name ends in `.toml`, CSV otherwise.
///
/// CSV: one `prefix[,destination]` per line, fields trimmed; blank lines and
/// lines starting with `#` are skipped, and so is a first data line reading
/// `prefix` or `prefix,destination` (any case). TOML: `[[prefix]]` tables
/// with `prefix = "..."` and an optional `destination = "..."`.
///
/// Prefixes are checked here (non-empty, at most `MAX_PREFIX_LEN` bytes, no
/// whitespace, comma or control character, no duplicates), so the entries
/// build into a `PrefixTable` without error.
pub fn load_file(path: &Path) -> Result<Vec<Entry>, LoadError> {
    let fail = |line, problem| LoadError {
        file: path.to_path_buf(),
        line,
        problem,
    };
    let bytes = std::fs::read(path).map_err(|e| fail(0, LoadProblem::Read(e)))?;
    let text = std::str::from_utf8(&bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        fail(line, LoadProblem::NotUtf8)
    })?;
    let entries = if path.extension().is_some_and(|e| e == "toml") {
        parse_toml(text)
    } else {
        parse_csv(text)
    };
    let entries = entries.map_err(|(line, problem)| fail(line, problem))?;
    if let Some((second, first)) = first_duplicate(&entries) {
        let e = &entries[second];
        return Err(fail(
            e.line,
            LoadProblem::Duplicate {
                prefix: e.prefix.clone(),
                first_line: entries[first].line,
            },
        ));
    }
    Ok(entries)
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

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            0 => write!(f, "{}: {}", self.file.display(), self.problem),
            l => write!(f, "{}:{l}: {}", self.file.display(), self.problem),
        }
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.problem {
            LoadProblem::Read(e) => Some(e),
            _ => None,
        }
    }
}

impl fmt::Display for LoadProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadProblem::Read(e) => write!(f, "cannot read: {e}"),
            LoadProblem::NotUtf8 => write!(f, "not UTF-8"),
            LoadProblem::Toml(m) => write!(f, "{m}"),
            LoadProblem::EmptyPrefix => write!(f, "empty prefix"),
            LoadProblem::PrefixTooLong(n) => {
                write!(f, "prefix is {n} bytes, longer than {MAX_PREFIX_LEN}")
            }
            LoadProblem::BadPrefixChar(c) => write!(f, "prefix contains {c:?}"),
            LoadProblem::TooManyFields(n) => {
                write!(f, "{n} fields, expected prefix[,destination]")
            }
            LoadProblem::EmptyDestination => write!(f, "empty destination"),
            LoadProblem::Duplicate { prefix, first_line } => {
                write!(
                    f,
                    "duplicate prefix \"{prefix}\" (first on line {first_line})"
                )
            }
        }
    }
}

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

/// The duplicate in `entries` whose second occurrence comes first:
/// `(second, first)` indexes into `entries`.
fn first_duplicate(entries: &[Entry]) -> Option<(usize, usize)> {
    // Sorted by head first: most comparisons are one integer compare.
    let mut order: Vec<(u64, u32)> = (entries.iter().enumerate())
        .map(|(i, e)| (head(e.prefix.as_bytes()), i as u32))
        .collect();
    let prefix = |k: &(u64, u32)| entries[k.1 as usize].prefix.as_str();
    order.sort_unstable_by(|a, b| {
        (a.0.cmp(&b.0))
            .then_with(|| prefix(a).cmp(prefix(b)))
            .then(a.1.cmp(&b.1))
    });
    let (first, second) =
        first_duplicate_sorted(&order, |a, b| a.0 == b.0 && prefix(a) == prefix(b), |k| k.1)?;
    Some((order[second].1 as usize, order[first].1 as usize))
}

/// CSV lines into entries; on error, the line and the problem.
fn parse_csv(text: &str) -> Result<Vec<Entry>, (usize, LoadProblem)> {
    let mut out = Vec::with_capacity(memchr::memchr_iter(b'\n', text.as_bytes()).count() + 1);
    let mut header_possible = true;
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let s = raw.trim_ascii();
        if s.is_empty() || s.starts_with('#') {
            continue;
        }
        let (prefix, value) = match s.split_once(',') {
            None => (s, None),
            Some((p, v)) => (p.trim_ascii_end(), Some(v.trim_ascii_start())),
        };
        if std::mem::take(&mut header_possible) && is_header(prefix, value) {
            continue;
        }
        if let Some(v) = value {
            if v.contains(',') {
                let fields = 2 + v.bytes().filter(|&b| b == b',').count();
                return Err((line, LoadProblem::TooManyFields(fields)));
            }
        }
        out.push(entry(prefix, value, line).map_err(|p| (line, p))?);
    }
    Ok(out)
}

fn is_header(prefix: &str, value: Option<&str>) -> bool {
    prefix.eq_ignore_ascii_case("prefix")
        && value.is_none_or(|v| v.eq_ignore_ascii_case("destination"))
}

/// A checked entry from a prefix and an optional destination.
fn entry(prefix: &str, value: Option<&str>, line: usize) -> Result<Entry, LoadProblem> {
    if prefix.is_empty() {
        return Err(LoadProblem::EmptyPrefix);
    }
    if prefix.len() > MAX_PREFIX_LEN {
        return Err(LoadProblem::PrefixTooLong(prefix.len()));
    }
    if let Some(c) = prefix
        .chars()
        .find(|c| c.is_whitespace() || c.is_control() || *c == ',')
    {
        return Err(LoadProblem::BadPrefixChar(c));
    }
    if value == Some("") {
        return Err(LoadProblem::EmptyDestination);
    }
    Ok(Entry {
        prefix: prefix.to_owned(),
        value: value.map(str::to_owned),
        line,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlFile {
    #[serde(default)]
    prefix: Vec<TomlEntry>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TomlEntry {
    prefix: Spanned<String>,
    destination: Option<String>,
}

fn parse_toml(text: &str) -> Result<Vec<Entry>, (usize, LoadProblem)> {
    let newlines: Vec<usize> = memchr::memchr_iter(b'\n', text.as_bytes()).collect();
    let line_of = |offset: usize| newlines.partition_point(|&n| n < offset) + 1;
    let file: TomlFile = toml::from_str(text).map_err(|e| {
        // The toml message repeats the location; keep its first line.
        let message = e.message().lines().next().unwrap_or("invalid TOML");
        let line = e.span().map_or(0, |s| line_of(s.start));
        (line, LoadProblem::Toml(message.to_owned()))
    })?;
    (file.prefix.iter())
        .map(|t| {
            let line = line_of(t.prefix.span().start);
            entry(t.prefix.get_ref(), t.destination.as_deref(), line).map_err(|p| (line, p))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn table(keys: &[&[u8]]) -> PrefixTable<usize> {
        PrefixTable::build(keys.iter().enumerate().map(|(i, k)| (*k, i))).unwrap()
    }

    /// The longest key that is a prefix of `q`, by a linear scan.
    fn reference(keys: &[Vec<u8>], q: &[u8]) -> Option<(usize, usize)> {
        (keys.iter().enumerate())
            .filter(|(_, k)| q.starts_with(k))
            .max_by_key(|(_, k)| k.len())
            .map(|(i, k)| (k.len(), i))
    }

    #[test]
    fn empty_table_matches_nothing() {
        let t = PrefixTable::<u8>::build(Vec::<(&[u8], u8)>::new()).unwrap();
        assert!(t.is_empty());
        assert_eq!(t.lookup(b"123"), None);
        assert_eq!(t.lookup(b""), None);
    }

    #[test]
    fn no_match_and_exact_match() {
        let t = table(&[b"44", b"49"]);
        assert_eq!(t.len(), 2);
        assert_eq!(t.lookup(b"33123"), None);
        assert_eq!(t.lookup(b"4"), None, "a query shorter than every key");
        assert_eq!(t.lookup(b"45"), None);
        assert_eq!(t.lookup(b"44"), Some((2, 0)));
        assert_eq!(t.lookup(b"49"), Some((2, 1)));
        assert_eq!(t.lookup(b"99"), None, "a query after every key");
    }

    #[test]
    fn nested_prefixes_take_the_longest() {
        let t = table(&[b"123", b"1", b"12"]);
        assert_eq!(t.lookup(b"1"), Some((1, 1)));
        assert_eq!(t.lookup(b"12"), Some((2, 2)));
        assert_eq!(t.lookup(b"1234"), Some((3, 0)));
        assert_eq!(t.lookup(b"129"), Some((2, 2)));
        assert_eq!(t.lookup(b"13"), Some((1, 1)));
        assert_eq!(t.lookup(b"2"), None);
        assert_eq!(t.lookup(b""), None);
    }

    #[test]
    fn climbs_past_keys_that_sort_between() {
        // The greatest key <= "1299" is "12389", whose prefix chain
        // "1238" -> "12" -> "1" leads to the answer "12".
        let t = table(&[b"1", b"12", b"1238", b"12389", b"13"]);
        assert_eq!(t.lookup(b"1299"), Some((2, 1)));
        assert_eq!(t.lookup(b"12390"), Some((2, 1)));
        assert_eq!(t.lookup(b"123899"), Some((5, 3)));
        assert_eq!(t.lookup(b"14"), Some((1, 0)));
    }

    #[test]
    fn prefixes_across_index_blocks() {
        // "5" is in the first block; its extensions fill several blocks, so
        // the floor of a query lands many blocks after its answer.
        let mut keys: Vec<Vec<u8>> = vec![b"5".to_vec(), b"50".to_vec()];
        keys.extend((0..100).map(|i| format!("50{i:03}").into_bytes()));
        keys.push(b"5099".to_vec());
        let t = PrefixTable::build(keys.iter().enumerate().map(|(i, k)| (k, i))).unwrap();
        assert!(t.len() > 6 * STRIDE);
        for q in [
            "5", "50", "500", "50099", "501", "5099", "50999", "51", "4", "6",
        ] {
            let q = q.as_bytes();
            assert_eq!(t.lookup(q), reference(&keys, q), "query {q:?}");
        }
    }

    #[test]
    fn keys_past_eight_bytes_and_shared_heads() {
        let t = table(&[
            b"+4420712",
            b"+44207123",
            b"+442071234",
            b"+442071239",
            b"+4420",
        ]);
        assert_eq!(t.lookup(b"+442071234567"), Some((10, 2)));
        assert_eq!(t.lookup(b"+442071235"), Some((9, 1)));
        assert_eq!(t.lookup(b"+44207124"), Some((8, 0)));
        assert_eq!(t.lookup(b"+4420712"), Some((8, 0)));
        assert_eq!(t.lookup(b"+442079"), Some((5, 4)));
        assert_eq!(t.lookup(b"+4420"), Some((5, 4)));
        assert_eq!(t.lookup(b"+442"), None);
    }

    #[test]
    fn many_keys_share_one_head() {
        // 3000 keys with the same first 8 bytes: the tie is searched by tail.
        let keys: Vec<Vec<u8>> = (0..3000)
            .map(|i| format!("12345678{i}").into_bytes())
            .chain([b"1234567".to_vec()])
            .collect();
        let t = PrefixTable::build(keys.iter().enumerate().map(|(i, k)| (k, i))).unwrap();
        for q in [
            "123456781234",
            "1234567829999",
            "12345678",
            "123456789",
            "12345679",
        ] {
            let q = q.as_bytes();
            assert_eq!(t.lookup(q), reference(&keys, q), "query {q:?}");
        }
    }

    #[test]
    fn any_bytes_compare_as_bytes() {
        let t = table(&[b"*21#", b"\xff", b"\xff\xff", b"\0", b"\0\0\0", b"#"]);
        assert_eq!(t.lookup(b"*21#123"), Some((4, 0)));
        assert_eq!(t.lookup(b"*21"), None);
        assert_eq!(t.lookup(b"\xff\xfe"), Some((1, 1)));
        assert_eq!(t.lookup(b"\xff\xff\xff"), Some((2, 2)));
        assert_eq!(
            t.lookup(b"\0\0"),
            Some((1, 3)),
            "zero bytes are not padding"
        );
        assert_eq!(t.lookup(b"\0\0\0\0"), Some((3, 4)));
        assert_eq!(t.lookup(b"#"), Some((1, 5)));
    }

    #[test]
    fn longest_keys_and_long_queries() {
        let long = [b'7'; MAX_PREFIX_LEN];
        let t = table(&[&long, &long[..31], b"7"]);
        let mut q = long.to_vec();
        q.extend_from_slice(b"7777777");
        assert_eq!(t.lookup(&q), Some((32, 0)));
        assert_eq!(t.lookup(&long[..31]), Some((31, 1)));
        assert_eq!(t.lookup(&long[..30]), Some((1, 2)));
    }

    #[test]
    fn build_rejects_bad_keys() {
        let e = PrefixTable::build([(&b"1"[..], 0), (b"", 1)]).unwrap_err();
        assert_eq!(e, PrefixError::Empty { position: 1 });
        let long = [b'1'; MAX_PREFIX_LEN + 1];
        let e = PrefixTable::build([(&long[..], 0)]).unwrap_err();
        assert!(matches!(e, PrefixError::TooLong { position: 0, .. }));
        let e = PrefixTable::build(["9", "44", "1", "44", "9", "44"].map(|k| (k, ()))).unwrap_err();
        // "9" is repeated at 4 and "44" at 3: the earlier repeat is named.
        let want = PrefixError::Duplicate {
            prefix: b"44".to_vec(),
            first: 1,
            second: 3,
        };
        assert_eq!(e, want);
        assert_eq!(
            e.to_string(),
            "entry 3: duplicate prefix \"44\" (first as entry 1)"
        );
    }

    #[test]
    fn memory_counts_the_arrays() {
        let t = table(&[b"1", b"123456789012"]);
        // Cuts "1", "123456789012", "123456789013", "2": 4 * 24 (a usize
        // value), index 8, tails 8, tail_base 4.
        assert_eq!(t.memory_bytes(), 116);
    }

    const ALPHABET: &[u8] = &[b'1', b'2', 0, 0xff];
    // Stems make keys share 8-byte heads and nest past the 8th byte.
    const STEMS: &[&[u8]] = &[b"", b"1", b"1212121", b"12121212"];

    fn key() -> impl Strategy<Value = Vec<u8>> {
        (
            prop::sample::select(STEMS),
            prop::collection::vec(prop::sample::select(ALPHABET), 0..6),
        )
            .prop_map(|(stem, rest)| [stem, &rest[..]].concat())
    }

    proptest! {
        #[test]
        fn lookup_matches_a_linear_scan(
            keys in prop::collection::btree_set(key().prop_filter("non-empty", |k| !k.is_empty()), 0..200),
            queries in prop::collection::vec(key(), 1..60),
        ) {
            let keys: Vec<Vec<u8>> = keys.into_iter().collect();
            let t = PrefixTable::build(keys.iter().enumerate().map(|(i, k)| (k, i))).unwrap();
            prop_assert_eq!(t.len(), keys.len());
            // Each key itself, each key extended, and the random queries.
            let extended = keys.iter().zip(&queries).map(|(k, q)| [&k[..], q].concat());
            for q in keys.iter().cloned().chain(extended).chain(queries.iter().cloned()) {
                prop_assert_eq!(t.lookup(&q), reference(&keys, &q), "query {:?}", q);
            }
        }
    }

    /// A file under the temp directory, removed when dropped.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(ext: &str, text: &[u8]) -> TempFile {
            use std::sync::atomic::{AtomicU32, Ordering};
            static N: AtomicU32 = AtomicU32::new(0);
            let name = format!(
                "siphon-prefix-{}-{}.{ext}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            );
            let path = std::env::temp_dir().join(name);
            std::fs::write(&path, text).unwrap();
            TempFile(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn load(ext: &str, text: &str) -> Result<Vec<Entry>, LoadError> {
        load_file(&TempFile::new(ext, text.as_bytes()).0)
    }

    fn e(prefix: &str, value: Option<&str>, line: usize) -> Entry {
        Entry {
            prefix: prefix.into(),
            value: value.map(Into::into),
            line,
        }
    }

    #[test]
    fn csv_with_header_comments_and_blank_lines() {
        let text = "# carrier A\n\nPrefix , Destination\n44,uk\n  +4420 , london \r\n\n# end\n1\n";
        let got = load("csv", text).unwrap();
        let want = vec![
            e("44", Some("uk"), 4),
            e("+4420", Some("london"), 5),
            e("1", None, 8),
        ];
        assert_eq!(got, want);
        assert_eq!(load("txt", "prefix\n1\n").unwrap(), vec![e("1", None, 2)]);
        assert_eq!(load("csv", "").unwrap(), vec![]);
    }

    #[test]
    fn csv_header_only_on_the_first_data_line() {
        // Later, "prefix" is an ordinary key (letters are allowed bytes).
        let got = load("csv", "# x\n1,a\nprefix,destination\n").unwrap();
        assert_eq!(
            got,
            vec![e("1", Some("a"), 2), e("prefix", Some("destination"), 3)]
        );
        let got = load("csv", "prefix,route\n").unwrap();
        assert_eq!(
            got,
            vec![e("prefix", Some("route"), 1)],
            "not the header's words"
        );
    }

    #[test]
    fn csv_bad_lines_name_their_line() {
        let cases: &[(&str, usize, &str)] = &[
            ("1\n,a\n", 2, "empty prefix"),
            (
                "1\n2\n3,a,b\n",
                3,
                "3 fields, expected prefix[,destination]",
            ),
            ("1 2\n", 1, "prefix contains ' '"),
            ("\n\n1\t2,a\n", 3, "prefix contains '\\t'"),
            ("1\x07\n", 1, "prefix contains '\\u{7}'"),
            ("44,\n", 1, "empty destination"),
        ];
        for (text, line, message) in cases {
            let err = load("csv", text).unwrap_err();
            assert_eq!(
                (err.line, err.problem.to_string().as_str()),
                (*line, *message),
                "{text:?}"
            );
        }
        let long = "9".repeat(33);
        let err = load("csv", &format!("1\n{long}\n")).unwrap_err();
        assert!(matches!(err.problem, LoadProblem::PrefixTooLong(33)));
        assert_eq!(err.line, 2);
        assert!(
            err.to_string()
                .ends_with(".csv:2: prefix is 33 bytes, longer than 32"),
            "{err}"
        );
    }

    #[test]
    fn csv_duplicates_name_both_lines() {
        let err = load("csv", "1,a\n44,b\n2\n44,c\n1\n").unwrap_err();
        assert_eq!(err.line, 4);
        assert_eq!(
            err.problem.to_string(),
            "duplicate prefix \"44\" (first on line 2)"
        );
    }

    #[test]
    fn unreadable_files() {
        let missing = std::env::temp_dir().join("siphon-prefix-does-not-exist.csv");
        let err = load_file(&missing).unwrap_err();
        assert!(matches!(err.problem, LoadProblem::Read(_)));
        assert_eq!(err.line, 0);
        let f = TempFile::new("csv", b"1\n2\n\xff\n");
        let err = load_file(&f.0).unwrap_err();
        assert!(matches!(err.problem, LoadProblem::NotUtf8));
        assert_eq!(err.line, 3);
    }

    #[test]
    fn toml_entries_with_lines() {
        let text =
            "[[prefix]]\nprefix = \"44\"\ndestination = \"uk\"\n\n[[prefix]]\nprefix = \"1\"\n";
        let want = vec![e("44", Some("uk"), 2), e("1", None, 6)];
        assert_eq!(load("toml", text).unwrap(), want);
        assert_eq!(load("toml", "").unwrap(), vec![]);
    }

    #[test]
    fn toml_errors() {
        let err = load("toml", "[[prefix]]\nprefix = \"44\"\nweight = 3\n").unwrap_err();
        assert!(matches!(err.problem, LoadProblem::Toml(_)));
        assert_eq!(err.line, 3, "{err}");
        assert!(err.to_string().contains("weight"), "{err}");
        let err = load("toml", "[[prefix]]\ndestination = \"uk\"\n").unwrap_err();
        assert!(matches!(err.problem, LoadProblem::Toml(_)), "{err}");
        let err = load("toml", "[[prefix]]\nprefix = \"4 4\"\n").unwrap_err();
        assert_eq!(
            (err.line, err.problem.to_string()),
            (2, "prefix contains ' '".into())
        );
        let text = "[[prefix]]\nprefix = \"44\"\n[[prefix]]\nprefix = \"44\"\n";
        let err = load("toml", text).unwrap_err();
        assert_eq!(err.line, 4);
        assert!(matches!(
            err.problem,
            LoadProblem::Duplicate { first_line: 2, .. }
        ));
    }

    #[test]
    fn loaded_entries_build_a_table() {
        let entries = load("csv", "prefix,destination\n1,us\n44,uk\n4420,london\n").unwrap();
        let names = ["us", "uk", "london"];
        let t = PrefixTable::build(entries.iter().map(|e| {
            let v = names.iter().position(|n| Some(*n) == e.value.as_deref());
            (e.prefix.as_bytes(), v)
        }))
        .unwrap();
        assert_eq!(t.lookup(b"442071234567"), Some((4, Some(2))));
        assert_eq!(t.lookup(b"441234"), Some((2, Some(1))));
    }
}
