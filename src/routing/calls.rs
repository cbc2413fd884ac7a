//! Concurrent-call limits (`max_calls` on a route or a destination set):
//! what Kamailio's dialog profiles and OpenSIPS's call limiting count.
//!
//! A call is counted from the initial INVITE a route admits until it ends:
//! a BYE in the dialog (from either side), a final answer of 300 or more
//! to the INVITE (relayed or our own: 486, 487 after a CANCEL, 408, 503),
//! or, as a bound for what Siphon never sees end, `[proxy] call_setup_s`
//! without a 2xx and `call_timeout_s` after it. One table for every shard,
//! keyed by Call-ID and the caller's From tag (one call, however many
//! forks; INVITEs reusing a Call-ID with another tag are other calls), in
//! stripes behind a mutex each; it holds only calls of a route or set with
//! a limit, so its size is bounded by the limits themselves. Counting
//! needs the BYEs: `max_calls` requires `record_route` (checked at load).

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// The live count of one limit, kept across reloads by route or set name.
#[derive(Debug, Default)]
pub struct CallCount {
    /// Calls in progress.
    pub active: AtomicU32,
    /// The limit (a reload may change it).
    pub max: AtomicU32,
    /// Calls refused for it.
    pub limited: AtomicU64,
}

impl CallCount {
    pub fn new(max: u32) -> Arc<CallCount> {
        let c = Arc::new(CallCount::default());
        c.max.store(max, Ordering::Relaxed);
        c
    }

    /// A place is free now (taking nothing).
    pub fn has_room(&self) -> bool {
        self.active.load(Ordering::Relaxed) < self.max.load(Ordering::Relaxed)
    }

    /// Take one place if there is one.
    fn take(&self) -> bool {
        let max = self.max.load(Ordering::Relaxed);
        let before = self.active.fetch_add(1, Ordering::Relaxed);
        if before >= max {
            self.active.fetch_sub(1, Ordering::Relaxed);
            self.limited.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        true
    }

    fn give_back(&self) {
        let _ = self
            .active
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
    }
}

/// Which call: its Call-ID and the caller's From tag (a dialog is the
/// Call-ID and both tags, RFC 3261 §12: two INVITEs that share a Call-ID
/// but not a From tag are two calls, each counted).
#[derive(Debug, Clone, Copy)]
pub struct CallRef<'a> {
    pub id: &'a [u8],
    tag: Tag<'a>,
}

/// The caller's tag, or the From header it is still to be read from:
/// most messages meet an empty table, and never need it.
#[derive(Debug, Clone, Copy)]
enum Tag<'a> {
    Tag(&'a [u8]),
    From(Option<&'a [u8]>),
}

impl<'a> CallRef<'a> {
    pub fn new(id: &'a [u8], tag: &'a [u8]) -> CallRef<'a> {
        CallRef {
            id,
            tag: Tag::Tag(tag),
        }
    }

    /// The call of a request from the caller or of a response to one
    /// (its From is parsed only if the table is looked up).
    pub fn of(msg: &'a crate::sip::Message) -> CallRef<'a> {
        CallRef {
            id: msg.call_id(),
            tag: Tag::From(msg.header(crate::sip::HeaderName::From)),
        }
    }

    /// The table key: the tag, the Call-ID, the tag's length.
    fn key(self) -> Box<[u8]> {
        let from = match self.tag {
            Tag::From(v) => {
                v.and_then(|v| crate::sip::NameAddr::parse(v, crate::sip::HeaderName::From).ok())
            }
            Tag::Tag(_) => None,
        };
        let tag = match self.tag {
            Tag::Tag(t) => t,
            Tag::From(_) => from.as_ref().and_then(|f| f.tag()).unwrap_or_default(),
        };
        let mut k = Vec::with_capacity(self.id.len() + tag.len() + 4);
        k.extend_from_slice(tag);
        k.extend_from_slice(self.id);
        k.extend_from_slice(&(tag.len() as u32).to_le_bytes());
        k.into_boxed_slice()
    }
}

struct Call {
    /// The route's and the set's counts, then the target's (the target
    /// the call is on now: a failover moves it).
    counts: [Option<Arc<CallCount>>; 3],
    /// The initial INVITE's CSeq number: its answers, not a re-INVITE's,
    /// decide whether the call starts.
    cseq: u32,
    /// Shard clock (ms) at the INVITE, then at its 2xx.
    since: u64,
    confirmed: bool,
}

const STRIPES: usize = 16;

/// One stripe: Call-ID to call.
type Stripe = HashMap<Box<[u8]>, Call>;

/// Calls in progress on limited routes and sets.
pub struct Calls {
    stripes: Box<[Mutex<Stripe>]>,
    len: AtomicUsize,
    /// The next stripe a sweep looks at.
    next_sweep: AtomicUsize,
    hasher: std::collections::hash_map::RandomState,
}

impl Default for Calls {
    fn default() -> Calls {
        Calls {
            stripes: (0..STRIPES).map(|_| Mutex::new(HashMap::new())).collect(),
            len: AtomicUsize::new(0),
            next_sweep: AtomicUsize::new(0),
            hasher: Default::default(),
        }
    }
}

impl Calls {
    fn stripe(&self, key: &[u8]) -> std::sync::MutexGuard<'_, Stripe> {
        let mut h = self.hasher.build_hasher();
        h.write(key);
        let i = h.finish() as usize % STRIPES;
        self.stripes[i].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// No call is counted (the common case: nothing to look up).
    pub fn is_empty(&self) -> bool {
        self.len.load(Ordering::Relaxed) == 0
    }

    pub fn len(&self) -> usize {
        self.len.load(Ordering::Relaxed)
    }

    /// A new call under these limits at `now`: true if admitted
    /// (counted in each), false if one is full (nothing counted). A call
    /// already counted (a retransmission, a failover) is admitted again.
    pub fn admit(
        &self,
        call: CallRef<'_>,
        cseq: u32,
        counts: [Option<&Arc<CallCount>>; 2],
        now: u64,
    ) -> bool {
        if counts.iter().all(Option::is_none) {
            return true;
        }
        let key = call.key();
        let mut s = self.stripe(&key);
        if s.contains_key(&key) {
            return true;
        }
        let mut taken: [Option<Arc<CallCount>>; 3] = [None, None, None];
        for (slot, c) in taken.iter_mut().zip(counts) {
            let Some(c) = c else { continue };
            if !c.take() {
                taken.iter().flatten().for_each(|t| t.give_back());
                return false;
            }
            *slot = Some(c.clone());
        }
        s.insert(
            key,
            Call {
                counts: taken,
                cseq,
                since: now,
                confirmed: false,
            },
        );
        self.len.fetch_add(1, Ordering::Relaxed);
        true
    }

    /// New call `call` goes to a target with count `target` (none: a
    /// target without `max_calls`): the call's place moves there from the
    /// target it was on. False, moving nothing, if that target is full.
    pub fn on_target(
        &self,
        call: CallRef<'_>,
        cseq: u32,
        target: Option<&Arc<CallCount>>,
        now: u64,
    ) -> bool {
        if target.is_none() && self.is_empty() {
            return true;
        }
        let key = call.key();
        let mut s = self.stripe(&key);
        let entry = s.get_mut(&key);
        let was = entry.as_ref().and_then(|c| c.counts[2].as_ref());
        if let (Some(a), Some(b)) = (was, target) {
            if Arc::ptr_eq(a, b) {
                return true;
            }
        }
        if let Some(t) = target {
            if !t.take() {
                return false;
            }
        }
        match entry {
            Some(c) => {
                if let Some(old) = std::mem::replace(&mut c.counts[2], target.cloned()) {
                    old.give_back();
                }
            }
            None if target.is_some() => {
                s.insert(
                    key,
                    Call {
                        counts: [None, None, target.cloned()],
                        cseq,
                        since: now,
                        confirmed: false,
                    },
                );
                self.len.fetch_add(1, Ordering::Relaxed);
            }
            None => {}
        }
        true
    }

    /// The count of the target `call` is on, if it is on one with
    /// `max_calls` (a retransmission goes there again).
    pub fn target(&self, call: CallRef<'_>) -> Option<Arc<CallCount>> {
        if self.is_empty() {
            return None;
        }
        let key = call.key();
        self.stripe(&key).get(&key)?.counts[2].clone()
    }

    /// A final answer `code` to INVITE `cseq` of `call` went to the
    /// caller: a 2xx to the initial INVITE starts the call, a 300 or more
    /// ends the attempt; a re-INVITE's answers change nothing.
    pub fn answered(&self, call: CallRef<'_>, cseq: u32, code: u16, now: u64) {
        if self.is_empty() || code < 200 {
            return;
        }
        let key = call.key();
        let mut s = self.stripe(&key);
        let Some(c) = s.get_mut(&key) else { return };
        if c.confirmed || c.cseq != cseq {
            return;
        }
        if code < 300 {
            c.confirmed = true;
            c.since = now;
        } else if let Some(c) = s.remove(&key) {
            self.release(c);
        }
    }

    /// The call of a BYE with Call-ID `id` has ended: its places are
    /// given back. `tags` are the BYE's From and To tags (either side may
    /// send it, so the caller's tag is one of them).
    pub fn end(&self, id: &[u8], tags: [&[u8]; 2]) {
        for tag in tags {
            if self.is_empty() {
                return;
            }
            let key = CallRef::new(id, tag).key();
            let gone = self.stripe(&key).remove(&key);
            if let Some(c) = gone {
                self.release(c);
                return;
            }
        }
    }

    fn release(&self, c: Call) {
        c.counts.iter().flatten().for_each(|t| t.give_back());
        self.len.fetch_sub(1, Ordering::Relaxed);
    }

    /// Forget, in one stripe per call, the calls not answered within
    /// `setup_ms` and those answered more than `timeout_ms` ago (their
    /// end was never seen). The housekeeping of every shard calls it.
    pub fn sweep(&self, now: u64, setup_ms: u64, timeout_ms: u64) {
        if self.is_empty() {
            return;
        }
        let i = self.next_sweep.fetch_add(1, Ordering::Relaxed) % STRIPES;
        let mut s = self.stripes[i].lock().unwrap_or_else(|p| p.into_inner());
        let old: Vec<Box<[u8]>> = s
            .iter()
            .filter(|(_, c)| {
                let age = now.saturating_sub(c.since);
                age > if c.confirmed { timeout_ms } else { setup_ms }
            })
            .map(|(k, _)| k.clone())
            .collect();
        for k in old {
            if let Some(c) = s.remove(&k) {
                self.release(c);
            }
        }
        if s.capacity() > 64 && s.len() < s.capacity() / 4 {
            let n = s.len();
            s.shrink_to(n * 2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(id: &[u8]) -> CallRef<'_> {
        CallRef::new(id, b"t")
    }

    #[test]
    fn calls_hold_places_until_they_end() {
        let calls = Calls::default();
        let route = CallCount::new(2);
        let set = CallCount::new(10);
        let both = [Some(&route), Some(&set)];
        assert!(calls.admit(call(b"c1"), 1, both, 0));
        assert!(calls.admit(call(b"c2"), 1, both, 0));
        assert!(
            calls.admit(call(b"c1"), 1, both, 5),
            "a retransmission: the same call"
        );
        assert!(!calls.admit(call(b"c3"), 1, both, 5), "the route is full");
        assert_eq!(route.limited.load(Ordering::Relaxed), 1);
        assert_eq!(
            set.active.load(Ordering::Relaxed),
            2,
            "nothing taken from the set"
        );
        calls.end(b"c1", [b"t", b""]);
        calls.end(b"c1", [b"t", b""]);
        assert_eq!(route.active.load(Ordering::Relaxed), 1, "ended once");
        assert!(calls.admit(call(b"c3"), 1, both, 6));
        assert_eq!(calls.len(), 2);
        // c2 answered: a re-INVITE's 491 leaves it; c3's initial INVITE
        // declined: it goes.
        calls.answered(call(b"c2"), 1, 200, 7);
        calls.answered(call(b"c2"), 2, 491, 8);
        calls.answered(call(b"c2"), 1, 486, 8);
        calls.answered(call(b"c3"), 1, 486, 9);
        assert_eq!((route.active.load(Ordering::Relaxed), calls.len()), (1, 1));
        // Calls with no limit are not kept.
        assert!(calls.admit(call(b"free"), 1, [None, None], 6));
        assert_eq!(calls.len(), 1);
    }

    #[test]
    fn a_full_set_refuses_and_gives_the_route_place_back() {
        let calls = Calls::default();
        let (route, set) = (CallCount::new(5), CallCount::new(1));
        assert!(calls.admit(call(b"a"), 1, [Some(&route), Some(&set)], 0));
        assert!(!calls.admit(call(b"b"), 1, [Some(&route), Some(&set)], 0));
        assert_eq!(route.active.load(Ordering::Relaxed), 1);
        assert_eq!(set.limited.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_call_moves_between_targets_and_holds_one_place() {
        let calls = Calls::default();
        let (a, b) = (CallCount::new(1), CallCount::new(1));
        assert!(calls.on_target(call(b"c1"), 1, Some(&a), 0));
        assert!(
            calls.on_target(call(b"c1"), 1, Some(&a), 0),
            "the same target again"
        );
        assert!(!calls.on_target(call(b"c2"), 1, Some(&a), 0), "a is full");
        assert!(
            calls.on_target(call(b"c1"), 1, Some(&b), 0),
            "a failover to b"
        );
        assert_eq!(a.active.load(Ordering::Relaxed), 0);
        assert!(calls.on_target(call(b"c2"), 1, Some(&a), 0));
        calls.end(b"c1", [b"t", b""]);
        assert_eq!(b.active.load(Ordering::Relaxed), 0);
        assert!(calls.on_target(call(b"c3"), 1, None, 0));
        assert_eq!(calls.len(), 1);
    }

    #[test]
    fn unseen_ends_are_swept() {
        let calls = Calls::default();
        let r = CallCount::new(10);
        assert!(calls.admit(call(b"never-answered"), 1, [Some(&r), None], 0));
        assert!(calls.admit(call(b"answered"), 1, [Some(&r), None], 0));
        calls.answered(call(b"answered"), 1, 200, 1_000);
        for _ in 0..STRIPES {
            calls.sweep(200_000, 180_000, 3_600_000);
        }
        assert_eq!(
            r.active.load(Ordering::Relaxed),
            1,
            "the unanswered one went"
        );
        for _ in 0..STRIPES {
            calls.sweep(3_601_001, 180_000, 3_600_000);
        }
        assert_eq!((r.active.load(Ordering::Relaxed), calls.len()), (0, 0));
    }
}
