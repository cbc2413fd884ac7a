//! Failed authentications per username (`[auth] user_failures`): a guesser
//! spread over many addresses escapes the per-source ban, not this. A
//! username that fails `user_failures` times within `user_window_s` is
//! locked for `user_lock_s`: every attempt with it fails as a wrong
//! password does (the same 403, so a lock tells nothing, and it is kept
//! for unknown usernames alike). Shared by every shard (one table behind a
//! mutex, taken only on a failure or by a locked name's attempt), bounded
//! by `max_users` names: past that, new names are not counted.

use std::collections::HashMap;
use std::sync::Mutex;

struct Entry {
    /// Unix seconds the window started, failures in it, and the end of the
    /// lock (0: none).
    start: u64,
    failures: u32,
    until: u64,
}

pub(super) struct Lockout {
    failures: u32,
    window_s: u64,
    lock_s: u64,
    max_users: usize,
    users: Mutex<HashMap<Box<[u8]>, Entry>>,
}

impl Lockout {
    /// `failures` 0 turns it off.
    pub(super) fn new(failures: u32, window_s: u64, lock_s: u64, max_users: usize) -> Lockout {
        Lockout {
            failures,
            window_s: window_s.max(1),
            lock_s,
            max_users,
            users: Mutex::new(HashMap::new()),
        }
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<Box<[u8]>, Entry>> {
        self.users.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `user` is locked at `now` (unix seconds).
    pub(super) fn locked(&self, user: &[u8], now: u64) -> bool {
        self.failures > 0 && self.table().get(user).is_some_and(|e| e.until > now)
    }

    /// One failed authentication for `user` at `now`: true if it locks it.
    pub(super) fn fail(&self, user: &[u8], now: u64) -> bool {
        if self.failures == 0 {
            return false;
        }
        let mut t = self.table();
        let full = t.len() >= self.max_users;
        let e = match t.get_mut(user) {
            Some(e) => e,
            None if full => return false,
            None => t.entry(user.into()).or_insert(Entry {
                start: now,
                failures: 0,
                until: 0,
            }),
        };
        if now.saturating_sub(e.start) >= self.window_s {
            e.start = now;
            e.failures = 0;
        }
        e.failures = e.failures.saturating_add(1);
        if e.failures >= self.failures && e.until <= now {
            e.until = now.saturating_add(self.lock_s);
            return true;
        }
        false
    }

    /// Forget names whose window and lock have both ended.
    pub(super) fn sweep(&self, now: u64) {
        if self.failures == 0 {
            return;
        }
        let mut t = self.table();
        if t.is_empty() {
            return;
        }
        t.retain(|_, e| e.until > now || now.saturating_sub(e.start) < self.window_s);
        if t.capacity() > 64 && t.len() < t.capacity() / 4 {
            let n = t.len();
            t.shrink_to(n * 2);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_locks_after_its_failures_in_a_window_and_unlocks() {
        let l = Lockout::new(3, 60, 300, 10);
        assert!(!l.fail(b"alice", 100));
        assert!(!l.fail(b"alice", 110));
        assert!(!l.locked(b"alice", 110));
        assert!(l.fail(b"alice", 120), "the third locks");
        assert!(l.locked(b"alice", 121) && !l.locked(b"bob", 121));
        assert!(l.locked(b"alice", 419) && !l.locked(b"alice", 420));
        // Failures spread wider than the window never lock.
        for t in 0..10 {
            assert!(!l.fail(b"carol", 1000 + t * 40));
        }
        l.sweep(5000);
        assert_eq!(l.table().len(), 0);
    }

    #[test]
    fn bounded_and_off() {
        let l = Lockout::new(1, 60, 300, 2);
        assert!(l.fail(b"a", 0) && l.fail(b"b", 0));
        assert!(!l.fail(b"c", 0), "a third name is not counted");
        assert!(l.locked(b"a", 1) && l.locked(b"b", 1) && !l.locked(b"c", 1));
        let off = Lockout::new(0, 60, 300, 2);
        assert!(!off.fail(b"a", 0) && !off.locked(b"a", 0));
    }
}
