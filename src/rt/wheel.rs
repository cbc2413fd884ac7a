//! A hierarchical hashed timer wheel: one per shard, for the SIP transaction
//! timers (RFC 3261 Timers A..K, 500 ms .. 64*T1 = 32 s) and the TCP idle
//! timeouts (minutes to hours).
//!
//! # Time
//!
//! The wheel is sans-IO: it never reads a clock. Time is a `u64` count of
//! milliseconds ("ticks") since an origin the caller chooses; the caller
//! passes it in with [`Wheel::advance`] and computes deadlines in the same
//! unit. [`Epoch`] converts `Instant`s to ticks and back, rounding so that a
//! timer never fires before its `Instant` in real time. A new wheel starts
//! at tick 0; time only moves forward (an `advance` to an earlier tick does
//! nothing).
//!
//! # Layout
//!
//! Four levels of 64 slots each; a slot of level `L` spans `64^L` ms:
//!
//! | level | slot     | level spans |
//! |-------|----------|-------------|
//! | 0     | 1 ms     | 64 ms       |
//! | 1     | 64 ms    | 4.096 s     |
//! | 2     | 4.096 s  | 262 s       |
//! | 3     | 262 s    | 4.66 h      |
//!
//! A timer is filed by the highest bit in which its deadline differs from
//! `now`: if deadline and `now` agree in every bit above `6(L+1)` but not in
//! bits `6L..6L+6`, it goes to level `L`, in the slot named by those six
//! bits of the deadline. So the levels are aligned windows of absolute time
//! (not offsets from `now`), every occupied slot of level `L` lies strictly
//! after `now`'s own slot on that level, and every timer on level `L` is due
//! before any slot of level `L+1` begins. Deadlines in a later 2^24 ms
//! window than `now` (beyond about 4.66 h) go to one overflow list, which is
//! re-examined when time reaches the window of its earliest deadline.
//!
//! When time reaches the start of an occupied slot of level `L > 0`, the slot
//! is emptied and its timers are filed again against the new `now`: each
//! lands on a strictly lower level ("cascading"). When time reaches a level-0
//! slot, every timer in it is due at exactly that tick and fires. `advance`
//! jumps from one occupied slot to the next with a 64-bit occupancy bitmap
//! per level (`trailing_zeros`), so a gap of hours costs a few steps per
//! occupied slot, never one step per millisecond.
//!
//! Where a timer is filed depends only on its deadline and `now`, so at any
//! moment all timers with the same deadline sit in the same list. Lists are
//! FIFO and cascading keeps their order.
//!
//! # Storage
//!
//! Timers live in a slab (a `Vec` with a free list) and each slot is an
//! intrusive doubly-linked list threaded through the slab by index, so
//! `insert`, `cancel` and `reset` are O(1) and allocate nothing once the slab
//! has grown. The slab never holds more than the capacity given to
//! [`Wheel::with_capacity`]: past it, `insert` fails with [`Full`] and hands
//! the value back (the caller answers 503). A [`TimerKey`] carries the slab
//! index and a generation that changes whenever the entry is freed, so a
//! stale key (its timer fired or was cancelled, its entry perhaps reused) is
//! rejected instead of touching the new occupant.
//!
//! After a burst the slab keeps its size; [`Wheel::shrink`] (called from a
//! periodic housekeeping pass, never on the hot path) gives it back once
//! fewer than a quarter of its entries are live: free entries past the last
//! live one are dropped and the free list is rebuilt lowest index first, so
//! live timers gather at the front and a later call drops more. Entries
//! grown again start at a generation above any the dropped ones reached, so
//! keys stay unambiguous.
//!
//! # Precision guarantee
//!
//! In ticks the wheel is exact: after `advance(now)` returns, every timer
//! whose deadline is `<= now` has been handed out and every timer whose
//! deadline is `> now` is still pending. Nothing fires early and nothing
//! fires late relative to the `now` passed in; the 1 ms tick is the only
//! granularity. A timer inserted with a deadline at or before the wheel's
//! current `now` is due at `now` and fires on the next `advance`.
//!
//! Within one `advance` timers come out in order of their effective deadline
//! (`max(deadline, now at insertion)`); timers with equal effective deadlines
//! come out in the order they were inserted (a [`Wheel::reset`] counts as a
//! new insertion).
//!
//! In real time a timer fires at the first `advance` whose tick is at or
//! after its deadline; with [`Epoch`] rounding deadlines up and `now` down,
//! that is never before the deadline's `Instant` and late only by the caller's
//! wake-up latency plus under 1 ms of rounding.
//!
//! [`Wheel::next_deadline`] is a lower bound (exact when the next timer is
//! within the current 64 ms window): a shard that sleeps until then may wake
//! to find only a cascade to do, at most once per level for a timer.

use std::fmt;
use std::time::{Duration, Instant};

/// log2 of the slots per level.
const SLOT_BITS: u32 = 6;
/// Slots per level.
const SLOTS: usize = 1 << SLOT_BITS;
/// Levels of the wheel proper (without the overflow list).
const LEVELS: usize = 4;
/// Ticks spanned by the wheel proper: 2^24 ms, about 4.66 h. Deadlines in a
/// later window of this size than `now` wait in the overflow list.
pub const SPAN: u64 = 1 << (SLOT_BITS * LEVELS as u32);
/// List number of the overflow list; lists `0..OVERFLOW` are
/// `level * SLOTS + slot`.
const OVERFLOW: u16 = (LEVELS * SLOTS) as u16;
/// Number of lists: every slot of every level, then the overflow list.
const LISTS: usize = LEVELS * SLOTS + 1;
/// The null index of the intrusive lists and the free list. Never a slab
/// index, because the capacity is capped at `u32::MAX` entries.
const NIL: u32 = u32::MAX;
/// A slab smaller than this is left as it is by [`Wheel::shrink`]
/// (about 40 KiB of entries for a transaction wheel).
const SHRINK_MIN: usize = 1024;

/// Names one inserted timer, to cancel or move it. Cheap to copy and store
/// next to the transaction.
///
/// A key is only meaningful to the wheel that issued it. Once its timer has
/// fired or been cancelled the key is stale and every operation with it is a
/// harmless no-op, even after its slab entry is reused: the generation
/// differs. (Generations are 32 bits: a key would be mistaken for a new one
/// only if it were kept while its entry was reused 2^32 times.)
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerKey {
    index: u32,
    generation: u32,
}

/// `insert` on a wheel already holding its capacity of live timers. Carries
/// the value back to the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Full<T>(pub T);

impl<T> fmt::Display for Full<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("timer wheel is at capacity")
    }
}

impl<T: fmt::Debug> std::error::Error for Full<T> {}

/// One slab entry: a live timer (`value` is `Some`) linked into exactly one
/// list, or a free entry (`value` is `None`) on the free list.
struct Entry<T> {
    value: Option<T>,
    /// The deadline as inserted (not clamped to `now`): filing uses
    /// `max(deadline, now)`.
    deadline: u64,
    /// Bumped whenever the entry is freed, which invalidates its keys.
    generation: u32,
    prev: u32,
    /// Next in the entry's list; for a free entry, next on the free list.
    next: u32,
    /// Which list holds the entry (live entries only).
    list: u16,
}

/// Head and tail of one intrusive list.
#[derive(Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
}

impl List {
    const EMPTY: List = List {
        head: NIL,
        tail: NIL,
    };
}

/// The next list `advance` has to process, and the tick at which its span
/// begins.
#[derive(Clone, Copy, Debug)]
struct Due {
    start: u64,
    /// A level of the wheel, or `LEVELS` for the overflow list.
    level: usize,
    list: u16,
}

/// A hierarchical timer wheel over payloads `T`; see the module docs.
pub struct Wheel<T> {
    /// The tick of the last `advance` (0 at first). Every list whose span
    /// starts at or before `now` has been processed, except that the
    /// level-0 slot of `now` itself collects timers inserted since with
    /// deadlines in the past.
    now: u64,
    entries: Vec<Entry<T>>,
    /// Head of the free list through `Entry::next`.
    free: u32,
    /// Live timers.
    len: usize,
    /// Most live timers (and slab entries) allowed.
    cap: usize,
    lists: Box<[List; LISTS]>,
    /// Bit `s` of `occupied[L]` is set iff list `L * SLOTS + s` is non-empty.
    occupied: [u64; LEVELS],
    /// A lower bound of the deadlines in the overflow list (exact after each
    /// pass over it; a cancel may leave it lower than the true minimum).
    /// Meaningless while the overflow list is empty.
    overflow_min: u64,
    /// The generation an entry starts with when the slab grows: above
    /// every generation of the entries `shrink` dropped, so that no key
    /// issued for a dropped entry names its successor at the same index.
    fresh_generation: u32,
}

impl<T> Wheel<T> {
    /// An empty wheel at tick 0 that holds at most `cap` live timers
    /// (clamped to `u32::MAX`). The slab grows on demand up to `cap` entries
    /// and never beyond: memory is bounded by `cap`, and a wheel that has
    /// once held `n` timers inserts up to `n` again without allocating.
    pub fn with_capacity(cap: usize) -> Self {
        Wheel {
            now: 0,
            entries: Vec::new(),
            free: NIL,
            len: 0,
            cap: cap.min(NIL as usize),
            lists: Box::new([List::EMPTY; LISTS]),
            occupied: [0; LEVELS],
            overflow_min: u64::MAX,
            fresh_generation: 0,
        }
    }

    /// The tick of the last `advance`.
    pub fn now(&self) -> u64 {
        self.now
    }

    /// Live timers: inserted and neither fired nor cancelled.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The most live timers this wheel accepts.
    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// Schedule `value` for tick `deadline`. A deadline at or before
    /// `now()` is due at `now()` and fires on the next `advance` (that does
    /// not go backwards). Fails,
    /// handing `value` back, when `capacity()` timers are live.
    pub fn insert(&mut self, deadline: u64, value: T) -> Result<TimerKey, Full<T>> {
        let index = if self.free != NIL {
            let index = self.free;
            let e = &mut self.entries[index as usize];
            self.free = e.next;
            e.value = Some(value);
            e.deadline = deadline;
            index
        } else if self.entries.len() < self.cap {
            if self.entries.len() == self.entries.capacity() {
                // Double, as `push` would, but never past `cap`.
                let len = self.entries.len();
                self.entries.reserve_exact(len.max(16).min(self.cap - len));
            }
            self.entries.push(Entry {
                value: Some(value),
                deadline,
                generation: self.fresh_generation,
                prev: NIL,
                next: NIL,
                list: 0,
            });
            (self.entries.len() - 1) as u32
        } else {
            return Err(Full(value));
        };
        self.len += 1;
        self.link(index);
        Ok(TimerKey {
            index,
            generation: self.entries[index as usize].generation,
        })
    }

    /// Cancel a pending timer and return its value; `None` (and nothing
    /// changes) if the key is stale: the timer already fired or was
    /// cancelled.
    pub fn cancel(&mut self, key: TimerKey) -> Option<T> {
        self.live(key)?;
        self.unlink(key.index);
        Some(self.release(key.index))
    }

    /// Move a pending timer to `deadline`, keeping its key and value. For
    /// the order among equal deadlines this counts as a new insertion.
    /// Returns false (and nothing changes) if the key is stale.
    pub fn reset(&mut self, key: TimerKey, deadline: u64) -> bool {
        if self.live(key).is_none() {
            return false;
        }
        self.unlink(key.index);
        self.entries[key.index as usize].deadline = deadline;
        self.link(key.index);
        true
    }

    /// The deadline a pending timer was given (as inserted or reset, not
    /// clamped to `now`); `None` if the key is stale.
    pub fn deadline(&self, key: TimerKey) -> Option<u64> {
        self.live(key).map(|e| e.deadline)
    }

    /// Move time forward to `now` and append the value of every timer due
    /// by then to `fired`, in deadline order (see the module docs for ties
    /// and the exact guarantee). Returns how many fired. A `now` before the
    /// current tick does nothing. Allocates nothing but the growth of
    /// `fired`; the work is proportional to the occupied slots passed, not
    /// to the ticks.
    pub fn advance(&mut self, now: u64, fired: &mut Vec<T>) -> usize {
        if now < self.now {
            return 0;
        }
        let before = fired.len();
        while let Some(due) = self.next_due() {
            if due.start > now {
                break;
            }
            debug_assert!(due.start >= self.now);
            self.now = due.start;
            self.process(due, fired);
        }
        self.now = now;
        fired.len() - before
    }

    /// A lower bound of the earliest pending deadline (never later than it,
    /// and never before `now()`), or `None` if no timer is pending. Exact
    /// when that timer is due within `now()`'s 64 ms window; otherwise it
    /// is the start of the slot holding it, where `advance` only cascades.
    /// A shard sleeps until the instant of this tick, advances, and asks
    /// again.
    pub fn next_deadline(&self) -> Option<u64> {
        self.next_due().map(|d| d.start)
    }

    /// Entries the slab has room for now (live, free and not yet grown):
    /// what a burst leaves behind until [`Wheel::shrink`].
    pub fn allocated(&self) -> usize {
        self.entries.capacity()
    }

    /// Give back slab memory a burst left: when at least `SHRINK_MIN`
    /// entries have room and fewer than a quarter of them are live, drop
    /// the free entries past the last live one, rebuild the free list
    /// lowest index first (new timers then fill the front, and a later call
    /// can drop more) and cut the room to what is left. Timers, keys and
    /// the firing order are untouched. O(entries): for a periodic
    /// housekeeping pass, not the hot path. True if memory was freed.
    pub fn shrink(&mut self) -> bool {
        self.shrink_from(SHRINK_MIN)
    }

    fn shrink_from(&mut self, min: usize) -> bool {
        let room = self.entries.capacity();
        if room < min.max(1) || self.len * 4 >= room {
            return false;
        }
        let keep = self
            .entries
            .iter()
            .rposition(|e| e.value.is_some())
            .map_or(0, |i| i + 1);
        for e in &self.entries[keep..] {
            // Free entries' generations are already past every key issued
            // for them; wrapping as the generations themselves do.
            if e.generation.wrapping_sub(self.fresh_generation) < u32::MAX / 2 {
                self.fresh_generation = e.generation;
            }
        }
        self.entries.truncate(keep);
        self.free = NIL;
        for i in (0..keep).rev() {
            let e = &mut self.entries[i];
            if e.value.is_none() {
                e.next = self.free;
                self.free = i as u32;
            }
        }
        self.entries.shrink_to(keep);
        self.entries.capacity() < room
    }

    /// The entry a key names, if the key is not stale.
    fn live(&self, key: TimerKey) -> Option<&Entry<T>> {
        self.entries
            .get(key.index as usize)
            .filter(|e| e.generation == key.generation && e.value.is_some())
    }

    /// The list to file a deadline in against the current `now`.
    fn list_for(&self, deadline: u64) -> u16 {
        let when = deadline.max(self.now);
        // The highest bit in which `when` and `now` differ; at least bit 5,
        // so that `when == now` files on level 0.
        let bit = 63 - ((when ^ self.now) | (SLOTS as u64 - 1)).leading_zeros();
        let level = bit / SLOT_BITS;
        if level as usize >= LEVELS {
            OVERFLOW
        } else {
            let slot = (when >> (level * SLOT_BITS)) as usize & (SLOTS - 1);
            (level as usize * SLOTS + slot) as u16
        }
    }

    /// Append a detached live entry to the tail of the list its deadline
    /// belongs in.
    fn link(&mut self, index: u32) {
        let deadline = self.entries[index as usize].deadline;
        let list = self.list_for(deadline);
        let tail = self.lists[list as usize].tail;
        let e = &mut self.entries[index as usize];
        e.list = list;
        e.prev = tail;
        e.next = NIL;
        if tail == NIL {
            self.lists[list as usize].head = index;
        } else {
            self.entries[tail as usize].next = index;
        }
        self.lists[list as usize].tail = index;
        if list == OVERFLOW {
            self.overflow_min = self.overflow_min.min(deadline);
        } else {
            self.occupied[list as usize / SLOTS] |= 1 << (list as usize % SLOTS);
        }
    }

    /// Take a live entry out of its list, in O(1).
    fn unlink(&mut self, index: u32) {
        let e = &self.entries[index as usize];
        let (prev, next, list) = (e.prev, e.next, e.list as usize);
        if prev == NIL {
            self.lists[list].head = next;
        } else {
            self.entries[prev as usize].next = next;
        }
        if next == NIL {
            self.lists[list].tail = prev;
        } else {
            self.entries[next as usize].prev = prev;
        }
        if self.lists[list].head == NIL && list != OVERFLOW as usize {
            self.occupied[list / SLOTS] &= !(1 << (list % SLOTS));
        }
    }

    /// Free a live, unlinked entry and return its value. Bumping the
    /// generation makes every key to it stale.
    fn release(&mut self, index: u32) -> T {
        let e = &mut self.entries[index as usize];
        let value = e.value.take().expect("released a free entry");
        e.generation = e.generation.wrapping_add(1);
        e.next = self.free;
        self.free = index;
        self.len -= 1;
        value
    }

    /// The first list due: the lowest occupied slot of the lowest occupied
    /// level (every timer on level `L` is due before any slot of level `L+1`
    /// begins), else the overflow list.
    fn next_due(&self) -> Option<Due> {
        for (level, &bits) in self.occupied.iter().enumerate() {
            if bits != 0 {
                let slot = bits.trailing_zeros() as u64;
                let shift = level as u32 * SLOT_BITS;
                let window = self.now & !((1u64 << (shift + SLOT_BITS)) - 1);
                return Some(Due {
                    start: window + (slot << shift),
                    level,
                    list: (level * SLOTS) as u16 + slot as u16,
                });
            }
        }
        if self.lists[OVERFLOW as usize].head == NIL {
            return None;
        }
        // Overflow deadlines are all in a later window than `now`, so there
        // is a next window; jump straight to the one holding the earliest.
        let next_window = (self.now | (SPAN - 1)).saturating_add(1);
        Some(Due {
            start: (self.overflow_min & !(SPAN - 1)).max(next_window),
            level: LEVELS,
            list: OVERFLOW,
        })
    }

    /// Empty a due list (`now` is already at its start): fire it if it is on
    /// level 0, else file its timers again against `now`, which puts each on
    /// a lower level or, for the overflow list, leaves the ones of later
    /// windows there.
    fn process(&mut self, due: Due, fired: &mut Vec<T>) {
        let list = std::mem::replace(&mut self.lists[due.list as usize], List::EMPTY);
        if due.level < LEVELS {
            self.occupied[due.level] &= !(1 << (due.list as usize % SLOTS));
        } else {
            self.overflow_min = u64::MAX;
        }
        let mut index = list.head;
        while index != NIL {
            let next = self.entries[index as usize].next;
            if due.level == 0 {
                fired.push(self.release(index));
            } else {
                self.link(index);
            }
            index = next;
        }
    }
}

impl<T> fmt::Debug for Wheel<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wheel")
            .field("now", &self.now)
            .field("len", &self.len)
            .field("capacity", &self.cap)
            .field("next_deadline", &self.next_deadline())
            .finish()
    }
}

/// The origin of a shard's ticks: converts between `Instant`s and the
/// millisecond ticks a [`Wheel`] counts in. Rounds so that timers never fire
/// early in real time: deadlines round up ([`Epoch::deadline`]), the
/// current time rounds down ([`Epoch::tick`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Epoch {
    origin: Instant,
}

impl Epoch {
    /// Tick 0 is `origin`.
    pub fn new(origin: Instant) -> Self {
        Epoch { origin }
    }

    pub fn origin(&self) -> Instant {
        self.origin
    }

    /// The tick `at` falls in, rounded down: what to pass to `advance`.
    /// Instants before the origin are tick 0.
    pub fn tick(&self, at: Instant) -> u64 {
        let d = at.saturating_duration_since(self.origin);
        u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
    }

    /// The first tick not before `at`, rounded up: what to pass to
    /// `insert`, so the timer fires no earlier than `at`.
    pub fn deadline(&self, at: Instant) -> u64 {
        ticks(at.saturating_duration_since(self.origin))
    }

    /// The deadline `after` from `now`: `deadline(now + after)`, saturating
    /// instead of overflowing.
    pub fn deadline_after(&self, now: Instant, after: Duration) -> u64 {
        self.deadline(now).saturating_add(ticks(after))
    }

    /// The instant tick `tick` begins, to sleep until a `next_deadline`;
    /// `None` if it is beyond what `Instant` represents.
    pub fn instant(&self, tick: u64) -> Option<Instant> {
        self.origin.checked_add(Duration::from_millis(tick))
    }
}

/// A duration in ticks, rounded up to the next whole millisecond and
/// saturating at `u64::MAX`.
pub fn ticks(d: Duration) -> u64 {
    let ms = d.as_millis() + u128::from(d.subsec_nanos() % 1_000_000 != 0);
    u64::try_from(ms).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::{BTreeMap, HashMap};

    /// Advance to `now` and return what fired.
    fn fire<T>(w: &mut Wheel<T>, now: u64) -> Vec<T> {
        let mut out = Vec::new();
        let n = w.advance(now, &mut out);
        assert_eq!(n, out.len());
        out
    }

    /// Deadlines on and around every level boundary and past the top.
    fn boundaries() -> Vec<u64> {
        let mut v = vec![0, 1, 2];
        for bits in [6, 12, 18, 24, 30] {
            let b = 1u64 << bits;
            v.extend([b - 1, b, b + 1]);
        }
        v.extend([500, 32_000, 3_600_000, 36_000_000]);
        v
    }

    #[test]
    fn fires_exactly_at_deadline_on_every_boundary() {
        // From tick 0 and from an unaligned start, so boundaries of the
        // absolute windows and of the distance from `now` both get hit.
        for start in [0, 1, 63, 4_000, 16_777_200, 123_456_789] {
            for d in boundaries() {
                let mut w = Wheel::with_capacity(4);
                fire(&mut w, start);
                let deadline = start + d;
                let k = w.insert(deadline, d).unwrap();
                assert_eq!(w.deadline(k), Some(deadline));
                let lb = w.next_deadline().unwrap();
                assert!(lb <= deadline && lb >= start, "start {start} d {d}");
                if d > 0 {
                    assert!(fire(&mut w, deadline - 1).is_empty(), "early: {start} {d}");
                    assert_eq!(w.len(), 1);
                }
                assert_eq!(fire(&mut w, deadline), vec![d], "start {start} d {d}");
                assert!(w.is_empty());
                assert_eq!(w.next_deadline(), None);
            }
        }
    }

    #[test]
    fn one_tick_at_a_time_across_level_boundaries() {
        let mut w = Wheel::with_capacity(64);
        let deadlines = [1u64, 63, 64, 65, 127, 128, 4095, 4096, 4097, 5000];
        for &d in &deadlines {
            w.insert(d, d).unwrap();
        }
        let mut fired_at = Vec::new();
        for t in 1..=5000 {
            for v in fire(&mut w, t) {
                fired_at.push((v, t));
            }
        }
        let want: Vec<_> = deadlines.iter().map(|&d| (d, d)).collect();
        assert_eq!(fired_at, want);
    }

    #[test]
    fn fires_in_deadline_order_then_insertion_order() {
        let mut w = Wheel::with_capacity(16);
        let plan = [
            (5000, 'a'),
            (64, 'b'),
            (70_000, 'c'),
            (64, 'd'),
            (1, 'e'),
            (5000, 'f'),
        ];
        for (d, v) in plan {
            w.insert(d, v).unwrap();
        }
        assert_eq!(fire(&mut w, 100_000), vec!['e', 'b', 'd', 'a', 'f', 'c']);
    }

    #[test]
    fn equal_deadlines_inserted_on_different_levels_keep_insertion_order() {
        let mut w = Wheel::with_capacity(4);
        w.insert(10_000, 1).unwrap(); // level 2 from tick 0
        fire(&mut w, 8_200); // cascades it down to level 1
        w.insert(10_000, 2).unwrap();
        fire(&mut w, 9_990); // down to level 0
        w.insert(10_000, 3).unwrap();
        assert!(fire(&mut w, 9_999).is_empty());
        assert_eq!(fire(&mut w, 10_000), vec![1, 2, 3]);
    }

    #[test]
    fn past_deadlines_fire_on_the_next_advance() {
        let mut w = Wheel::with_capacity(4);
        fire(&mut w, 1_000);
        w.insert(10, 'a').unwrap();
        w.insert(1_000, 'b').unwrap();
        w.insert(1_001, 'c').unwrap();
        assert_eq!(w.next_deadline(), Some(1_000));
        assert_eq!(fire(&mut w, 1_000), vec!['a', 'b']);
        assert_eq!(fire(&mut w, 1_001), vec!['c']);
    }

    #[test]
    fn time_never_goes_backwards() {
        let mut w = Wheel::with_capacity(4);
        w.insert(100, ()).unwrap();
        fire(&mut w, 50);
        assert!(fire(&mut w, 10).is_empty());
        assert_eq!(w.now(), 50);
        assert!(fire(&mut w, 99).is_empty());
        assert_eq!(fire(&mut w, 100).len(), 1);
    }

    #[test]
    fn cancel_before_firing_returns_the_value_and_it_never_fires() {
        let mut w = Wheel::with_capacity(8);
        let a = w.insert(500, "a").unwrap();
        let b = w.insert(500, "b").unwrap();
        let c = w.insert(40_000, "c").unwrap();
        let far = w.insert(SPAN * 3, "far").unwrap();
        assert_eq!(w.cancel(b), Some("b"));
        assert_eq!(w.cancel(far), Some("far"));
        assert_eq!(w.len(), 2);
        assert_eq!(fire(&mut w, 500), vec!["a"]);
        assert_eq!(w.cancel(c), Some("c"));
        assert!(fire(&mut w, SPAN * 4).is_empty());
        assert!(w.is_empty());
        assert_eq!(w.cancel(a), None);
    }

    #[test]
    fn stale_keys_are_rejected_and_do_not_disturb_the_new_occupant() {
        let mut w = Wheel::with_capacity(1);
        let old = w.insert(10, 1).unwrap();
        assert_eq!(fire(&mut w, 10), vec![1]);
        assert_eq!(w.cancel(old), None, "after firing");
        let new = w.insert(20, 2).unwrap();
        assert_eq!(new.index, old.index, "capacity 1 reuses the entry");
        assert_eq!(w.cancel(old), None);
        assert!(!w.reset(old, 11));
        assert_eq!(w.deadline(old), None);
        assert_eq!(w.deadline(new), Some(20));
        assert_eq!(w.cancel(new), Some(2));
        assert_eq!(w.cancel(new), None, "after cancelling");
        let newer = w.insert(30, 3).unwrap();
        assert_eq!(w.cancel(new), None);
        assert_eq!(fire(&mut w, 30), vec![3]);
        assert_eq!(w.cancel(newer), None);
    }

    #[test]
    fn reset_moves_a_timer_and_keeps_its_key() {
        let mut w = Wheel::with_capacity(4);
        let k = w.insert(100, 'x').unwrap();
        w.insert(200, 'y').unwrap();
        assert!(w.reset(k, 300));
        assert_eq!(w.deadline(k), Some(300));
        assert_eq!(fire(&mut w, 299), vec!['y']);
        assert!(w.reset(k, 50_000));
        assert!(fire(&mut w, 49_999).is_empty());
        assert!(w.reset(k, 10), "into the past: due now");
        assert_eq!(fire(&mut w, 49_999), vec!['x']);
        assert!(!w.reset(k, 1));
    }

    #[test]
    fn capacity_is_a_hard_bound() {
        let mut w = Wheel::with_capacity(3);
        let keys: Vec<_> = (0..3).map(|i| w.insert(100 + i, i).unwrap()).collect();
        assert_eq!(w.insert(7, 99), Err(Full(99)));
        assert_eq!(w.len(), 3);
        w.cancel(keys[1]).unwrap();
        w.insert(7, 3).unwrap();
        assert_eq!(w.insert(8, 4), Err(Full(4)));
        assert_eq!(fire(&mut w, 100), vec![3, 0]);
        w.insert(8, 5).unwrap();
        w.insert(8, 6).unwrap();
        assert!(w.insert(8, 7).is_err());
        assert!(w.entries.capacity() <= 3, "slab grew past the cap");
        assert_eq!(Wheel::<()>::with_capacity(0).insert(0, ()), Err(Full(())));
    }

    #[test]
    fn shrink_gives_back_a_bursts_slab_and_keeps_the_timers() {
        let mut w = Wheel::with_capacity(100_000);
        // Two long timers at the front, then a burst of short ones.
        let long: Vec<TimerKey> = (0..2).map(|i| w.insert(1_000_000, i).unwrap()).collect();
        let burst: Vec<TimerKey> = (0..20_000)
            .map(|i| w.insert(1 + i % 5000, i).unwrap())
            .collect();
        assert!(!w.shrink(), "most entries live: nothing to give back");
        assert_eq!(fire(&mut w, 5000).len(), 20_000);
        assert!(w.allocated() >= 20_002);
        assert!(w.shrink());
        assert!(w.allocated() < SHRINK_MIN, "{}", w.allocated());
        assert!(!w.shrink(), "small now");
        for &k in &long {
            assert_eq!(w.deadline(k), Some(1_000_000));
        }
        // Grown again: the stale keys of the burst name none of the new
        // timers at their old indices.
        let again: Vec<TimerKey> = (0..20_000)
            .map(|i| w.insert(6000 + i, i).unwrap())
            .collect();
        for &k in &burst {
            assert_eq!(w.cancel(k), None);
            assert!(!w.reset(k, 1));
            assert_eq!(w.deadline(k), None);
        }
        assert_eq!(w.len(), 20_002);
        assert_eq!(w.cancel(again[7]), Some(7));
        let fired = fire(&mut w, 26_000);
        assert_eq!(fired.len(), 19_999);
        assert!(fired.windows(2).all(|p| p[0] < p[1]), "in deadline order");
        assert_eq!(fire(&mut w, u64::MAX), vec![0, 1]);
    }

    #[test]
    fn a_live_timer_late_in_the_slab_holds_it_until_new_ones_fill_the_front() {
        let mut w = Wheel::with_capacity(100_000);
        let keys: Vec<TimerKey> = (0..4096u64).map(|i| w.insert(10 + i, i).unwrap()).collect();
        // The last one lives on; the rest fire.
        w.reset(keys[4095], 1_000_000);
        assert_eq!(fire(&mut w, 20_000).len(), 4095);
        let room = w.allocated();
        assert!(!w.shrink(), "the live entry is the last one");
        assert_eq!(w.allocated(), room);
        // The free list now hands out the lowest entries first.
        let k = w.insert(30_000, 9).unwrap();
        assert_eq!(k.index, 0);
        assert_eq!(fire(&mut w, 1_000_000), vec![9, 4095]);
        assert!(w.shrink());
        assert_eq!(w.allocated(), 0);
        assert!(w.is_empty());
    }

    #[test]
    fn a_ten_hour_gap_in_one_advance_fires_everything_in_order() {
        let mut w = Wheel::with_capacity(16);
        let deadlines = [
            3u64,
            4_096,
            32_000,
            262_144,
            3_600_000,
            SPAN - 1,
            SPAN,
            5 * 3_600_000,
            36_000_000 - 1,
            36_000_000,
        ];
        for &d in deadlines.iter().rev() {
            w.insert(d, d).unwrap();
        }
        let late = w.insert(36_000_001, 0).unwrap();
        assert_eq!(fire(&mut w, 36_000_000), deadlines.to_vec());
        assert_eq!(w.deadline(late), Some(36_000_001));
        assert_eq!(fire(&mut w, 36_000_001), vec![0]);
    }

    #[test]
    fn gaps_of_astronomical_length_skip_empty_windows() {
        // One step per millisecond, or per 2^24 ms window, would not finish.
        let mut w = Wheel::with_capacity(8);
        let deadlines = [1u64 << 40, (1 << 50) + 7, u64::MAX - 1, u64::MAX];
        for &d in &deadlines {
            w.insert(d, d).unwrap();
        }
        assert_eq!(w.next_deadline(), Some(1 << 40));
        assert_eq!(fire(&mut w, 1 << 45), vec![1 << 40]);
        let cancelled = w.insert((1 << 47) + 1, 0).unwrap();
        w.cancel(cancelled).unwrap();
        assert_eq!(fire(&mut w, u64::MAX - 1), deadlines[1..3].to_vec());
        assert_eq!(fire(&mut w, u64::MAX), vec![u64::MAX]);
        // At the end of time a past deadline is still due "now".
        w.insert(5, 5).unwrap();
        assert_eq!(fire(&mut w, u64::MAX), vec![5]);
    }

    #[test]
    fn next_deadline_is_a_lower_bound_that_reaches_the_timer() {
        let mut w = Wheel::with_capacity(4);
        w.insert(300_000, ()).unwrap();
        // Sleep until next_deadline, advance, repeat: a few cascade-only
        // wake-ups, none after the deadline, then it fires.
        let mut wakes = 0;
        loop {
            let t = w.next_deadline().unwrap();
            assert!(t <= 300_000);
            wakes += 1;
            if !fire(&mut w, t).is_empty() {
                assert_eq!(t, 300_000);
                break;
            }
        }
        assert!(wakes <= LEVELS + 1, "{wakes} wake-ups");
    }

    #[test]
    fn epoch_rounds_deadlines_up_and_now_down() {
        let origin = Instant::now();
        let e = Epoch::new(origin);
        let at = origin + Duration::from_micros(2_500);
        assert_eq!(e.tick(at), 2);
        assert_eq!(e.deadline(at), 3);
        assert_eq!(e.deadline(origin + Duration::from_millis(7)), 7);
        assert_eq!(e.tick(origin), 0);
        assert_eq!(
            e.tick(origin.checked_sub(Duration::from_secs(1)).unwrap_or(origin)),
            0
        );
        assert_eq!(e.deadline_after(at, Duration::from_millis(500)), 503);
        assert_eq!(e.instant(3), Some(origin + Duration::from_millis(3)));
        assert_eq!(ticks(Duration::from_nanos(1)), 1);
        assert_eq!(ticks(Duration::MAX), u64::MAX);
        // Never early: the tick at the deadline's instant has reached it.
        let d = e.deadline(at);
        assert!(e.tick(e.instant(d).unwrap()) >= d);
        assert!(e.instant(d).unwrap() >= at);
    }

    #[derive(Clone, Debug)]
    enum Op {
        /// Deadline relative to `now` (negative: in the past).
        Insert(i64),
        /// Index into the keys issued so far (stale ones included).
        Cancel(usize),
        Reset(usize, i64),
        Advance(u64),
        /// Give back spare slab room (at any size).
        Shrink,
    }

    /// Offsets that land on every level, on boundaries and in the overflow.
    fn offset() -> impl Strategy<Value = i64> {
        prop_oneof![
            -100i64..=0,
            0i64..70,
            0i64..5_000,
            (0u32..5).prop_map(|b| (64i64 << (6 * b)) - 1),
            (0u32..5).prop_map(|b| 64i64 << (6 * b)),
            0i64..300_000,
            0i64..(3 * SPAN as i64),
        ]
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => offset().prop_map(Op::Insert),
            2 => any::<usize>().prop_map(Op::Cancel),
            1 => (any::<usize>(), offset()).prop_map(|(k, d)| Op::Reset(k, d)),
            1 => (0u64..3).prop_map(Op::Advance),
            2 => (0u64..100).prop_map(Op::Advance),
            1 => (0u64..10_000).prop_map(Op::Advance),
            1 => (0u64..2 * SPAN).prop_map(Op::Advance),
            1 => Just(Op::Shrink),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Against a reference: a BTreeMap ordered by (effective deadline,
        /// insertion sequence). Every advance fires exactly the timers due
        /// by `now`, in exactly the reference order.
        #[test]
        fn matches_a_sorted_map(
            start in prop_oneof![Just(0u64), 0u64..(4 * SPAN)],
            cap in prop_oneof![Just(8usize), Just(1_000usize)],
            ops in prop::collection::vec(op(), 1..300),
        ) {
            let mut w = Wheel::with_capacity(cap);
            let mut now = start;
            fire(&mut w, now);
            // The reference: (effective deadline, seq) -> value, where each
            // timer's value is the number of its insert (its id). `live`
            // maps an id to its place in `model` and its deadline as given.
            // `keys[id - 1]` is the key that insert returned (or None if it
            // failed), so a stale key is looked up by its own identity,
            // never by equality with a newer key.
            let mut model: BTreeMap<(u64, u64), u64> = BTreeMap::new();
            let mut live: HashMap<u64, ((u64, u64), u64)> = HashMap::new();
            let mut keys: Vec<Option<TimerKey>> = Vec::new();
            let mut seq = 0u64;
            let at = |now: u64, off: i64| now.saturating_add_signed(off);
            for op in ops {
                match op {
                    Op::Insert(off) => {
                        let d = at(now, off);
                        seq += 1;
                        let id = keys.len() as u64 + 1;
                        match w.insert(d, id) {
                            Ok(k) => {
                                prop_assert!(model.len() < cap);
                                for &other in live.keys() {
                                    prop_assert_ne!(keys[other as usize - 1], Some(k));
                                }
                                model.insert((d.max(now), seq), id);
                                live.insert(id, ((d.max(now), seq), d));
                                keys.push(Some(k));
                            }
                            Err(Full(v)) => {
                                prop_assert_eq!(v, id);
                                prop_assert_eq!(model.len(), cap);
                                keys.push(None);
                            }
                        }
                    }
                    Op::Cancel(i) if !keys.is_empty() => {
                        let id = (i % keys.len()) as u64 + 1;
                        if let Some(k) = keys[id as usize - 1] {
                            let want = live.remove(&id).map(|(m, _)| model.remove(&m).unwrap());
                            prop_assert_eq!(w.cancel(k), want);
                        }
                    }
                    Op::Reset(i, off) if !keys.is_empty() => {
                        let id = (i % keys.len()) as u64 + 1;
                        if let Some(k) = keys[id as usize - 1] {
                            let d = at(now, off);
                            let was = live.remove(&id);
                            prop_assert_eq!(w.reset(k, d), was.is_some());
                            if let Some((m, _)) = was {
                                prop_assert_eq!(model.remove(&m), Some(id));
                                seq += 1;
                                model.insert((d.max(now), seq), id);
                                live.insert(id, ((d.max(now), seq), d));
                            }
                        }
                    }
                    Op::Cancel(_) | Op::Reset(..) => {}
                    Op::Shrink => {
                        w.shrink_from(0);
                        prop_assert!(w.allocated() >= w.len());
                    }
                    Op::Advance(by) => {
                        now = now.saturating_add(by);
                        let got = fire(&mut w, now);
                        let mut want = Vec::new();
                        while let Some(e) = model.first_entry() {
                            if e.key().0 > now {
                                break;
                            }
                            want.push(e.remove());
                        }
                        live.retain(|_, (m, _)| m.0 > now);
                        prop_assert_eq!(got, want);
                    }
                }
                prop_assert_eq!(w.len(), model.len());
                prop_assert_eq!(w.now(), now);
                match (w.next_deadline(), model.keys().next()) {
                    (None, None) => {}
                    (Some(lb), Some(&(first, _))) => {
                        prop_assert!(lb >= now && lb <= first, "{} not in [{}, {}]", lb, now, first);
                    }
                    (lb, first) => prop_assert!(false, "next_deadline {:?} vs {:?}", lb, first),
                }
                for (id, k) in keys.iter().enumerate() {
                    if let Some(k) = k {
                        let want = live.get(&(id as u64 + 1)).map(|&(_, d)| d);
                        prop_assert_eq!(w.deadline(*k), want);
                    }
                }
            }
            // Drain: everything left fires, in order, once time runs out.
            let got = fire(&mut w, u64::MAX);
            prop_assert_eq!(got, model.into_values().collect::<Vec<_>>());
            prop_assert!(w.is_empty());
        }
    }
}
