//! Giving back what a burst left in a slab (a `Vec` of slots reused
//! through a free list of indices): the stateful transaction table, the
//! ring's in-flight operations, the TCP connections.
//!
//! A slot's index is handed out (in a branch, an SQE's user data, a ring
//! token), so slots in use never move: only the free slots past the last
//! one in use can go. [`compact_free`] finds them and sorts the free list
//! so that the lowest index is reused first: after a flood, new work fills
//! the front of the slab and the tail empties, so a later pass frees it.
//! The callers run it from the shard's housekeeping tick, only when
//! [`worth_shrinking`] says a slab is mostly idle, never per message.

/// A slab with room for fewer slots than this is left as it is.
pub const SHRINK_MIN: usize = 1024;

/// Whether a slab with room for `room` slots, `live` of them in use, has
/// enough spare room to give back: at least `min` (and at least one), and
/// fewer than a quarter in use.
pub fn worth_shrinking(room: usize, live: usize, min: usize) -> bool {
    room >= min.max(1) && live.saturating_mul(4) < room
}

/// `free` lists the free slots of a slab of `len` slots. Takes out of it
/// the free slots past the last slot in use and returns the slab's length
/// without them (the caller truncates its slab to it); leaves the rest
/// sorted so that `pop` returns the lowest index first.
pub fn compact_free(free: &mut Vec<u32>, len: usize) -> usize {
    free.sort_unstable_by(|a, b| b.cmp(a));
    let mut len = len;
    let tail = free
        .iter()
        .take_while(|&&i| {
            let last = len.checked_sub(1).is_some_and(|l| i as usize == l);
            if last {
                len -= 1;
            }
            last
        })
        .count();
    free.drain(..tail);
    len
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_free_tail_goes_and_the_lowest_free_slot_comes_first() {
        // Slots 0..10; 2, 5, 7, 8, 9 free (in release order).
        let mut free = vec![8, 2, 9, 5, 7];
        assert_eq!(compact_free(&mut free, 10), 7);
        assert_eq!(free, vec![5, 2]);
        assert_eq!(free.pop(), Some(2));
        // All free: nothing left.
        let mut free = vec![1, 0, 2];
        assert_eq!(compact_free(&mut free, 3), 0);
        assert!(free.is_empty());
        // The last slot in use: nothing goes.
        let mut free = vec![0, 1];
        assert_eq!(compact_free(&mut free, 3), 3);
        assert_eq!(free, vec![1, 0]);
        assert_eq!(compact_free(&mut Vec::new(), 0), 0);
    }

    #[test]
    fn only_mostly_idle_large_slabs_are_worth_shrinking() {
        assert!(worth_shrinking(4096, 1023, SHRINK_MIN));
        assert!(!worth_shrinking(4096, 1024, SHRINK_MIN));
        assert!(!worth_shrinking(1000, 0, SHRINK_MIN));
        assert!(worth_shrinking(1, 0, 0));
        assert!(!worth_shrinking(0, 0, 0));
    }
}
