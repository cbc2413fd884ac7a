//! The edge guard (`[guard]`): flood detection per source address, the ban
//! table every shard shares, and bans for failed authentications — what
//! Kamailio's default config does with pike, htable and its auth checks.
//!
//! - [`Bans`]: source address → ban (reason, since, until, drops). Every
//!   shard reads it on every message through a lock-free snapshot (one
//!   atomic load; an empty table costs nothing more); a ban, an unban or a
//!   sweep copies the table under a lock (bans are rare events, and the
//!   table is bounded by `max_bans`).
//! - [`Guard`]: one per shard, sans-IO. Counts requests per source in a
//!   fixed window (`window_ms`); a source over `max_requests` in one
//!   window on one shard is banned for `ban_s`. Counts failed
//!   authentications per source in `auth_window_s`; `auth_failures` of
//!   them ban it for `auth_ban_s`. Sources in `exempt` are never counted.
//!   Each window's table is bounded (`max_sources`); a source seen when it
//!   is full is not counted (`untracked`): a flood from spoofed addresses
//!   fills it and stops counting new sources until the window ends,
//!   rather than growing memory — it bans nothing, and neither does it
//!   ban the legitimate sources.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use arc_swap::ArcSwap;

use crate::config::GuardCfg;
use crate::routing::cidr::CidrSet;

/// Why a source is banned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BanReason {
    /// More than `max_requests` requests in one window.
    Flood,
    /// `auth_failures` failed authentications in `auth_window_s`.
    Auth,
}

impl BanReason {
    pub fn as_str(self) -> &'static str {
        match self {
            BanReason::Flood => "flood",
            BanReason::Auth => "auth",
        }
    }
}

/// One banned source.
#[derive(Debug)]
pub struct Ban {
    pub reason: BanReason,
    /// When it was banned and when the ban ends, on the shards' clock (ms).
    pub since: u64,
    pub until: u64,
    /// Messages dropped (or answered) because of it.
    pub hits: AtomicU64,
}

type Table = HashMap<IpAddr, Arc<Ban>>;

/// The bans every shard shares.
pub struct Bans {
    snap: ArcSwap<Table>,
    /// Serialises writers (copy, change, swap).
    write: Mutex<()>,
    max: usize,
    /// Bans made, by reason, and bans refused because the table was full.
    pub flood_bans: AtomicU64,
    pub auth_bans: AtomicU64,
    pub refused: AtomicU64,
}

impl Bans {
    pub fn new(max: usize) -> Bans {
        Bans {
            snap: ArcSwap::from_pointee(Table::new()),
            write: Mutex::new(()),
            max: max.max(1),
            flood_bans: AtomicU64::new(0),
            auth_bans: AtomicU64::new(0),
            refused: AtomicU64::new(0),
        }
    }

    /// True if `ip` is banned at `now` (the ban's drop counted).
    #[inline]
    pub fn check(&self, ip: IpAddr, now: u64) -> bool {
        let t = self.snap.load();
        if t.is_empty() {
            return false;
        }
        match t.get(&ip.to_canonical()) {
            Some(b) if b.until > now => {
                b.hits.fetch_add(1, Ordering::Relaxed);
                true
            }
            _ => false,
        }
    }

    /// Ban `ip` from `now` for `ms`. False if it was banned already or the
    /// table is full of bans that have not ended (counted as refused).
    pub fn ban(&self, ip: IpAddr, reason: BanReason, now: u64, ms: u64) -> bool {
        let ip = ip.to_canonical();
        let _w = self.lock();
        let cur = self.snap.load_full();
        if cur.get(&ip).is_some_and(|b| b.until > now) {
            return false;
        }
        let mut next: Table = cur
            .iter()
            .filter(|(_, b)| b.until > now)
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        if next.len() >= self.max {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        next.insert(
            ip,
            Arc::new(Ban {
                reason,
                since: now,
                until: now.saturating_add(ms),
                hits: AtomicU64::new(0),
            }),
        );
        self.snap.store(Arc::new(next));
        match reason {
            BanReason::Flood => &self.flood_bans,
            BanReason::Auth => &self.auth_bans,
        }
        .fetch_add(1, Ordering::Relaxed);
        true
    }

    /// Lift the ban of `ip`; false if it had none.
    pub fn remove(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        let _w = self.lock();
        let cur = self.snap.load_full();
        if !cur.contains_key(&ip) {
            return false;
        }
        let mut next = (*cur).clone();
        next.remove(&ip);
        self.snap.store(Arc::new(next));
        true
    }

    /// Forget bans that have ended (their memory comes back).
    pub fn sweep(&self, now: u64) {
        if !self.snap.load().values().any(|b| b.until <= now) {
            return;
        }
        let _w = self.lock();
        let cur = self.snap.load_full();
        let next: Table = cur
            .iter()
            .filter(|(_, b)| b.until > now)
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        self.snap.store(Arc::new(next));
    }

    /// The bans in force at `now`, oldest first.
    pub fn list(&self, now: u64) -> Vec<(IpAddr, Arc<Ban>)> {
        let mut v: Vec<_> = self
            .snap
            .load()
            .iter()
            .filter(|(_, b)| b.until > now)
            .map(|(k, v)| (*k, v.clone()))
            .collect();
        v.sort_by_key(|(ip, b)| (b.since, *ip));
        v
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        // The guarded data is the snapshot, replaced whole: a poisoned
        // lock leaves nothing half-written.
        self.write.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Counts per source in one fixed window, bounded.
struct Window {
    start: u64,
    counts: HashMap<IpAddr, u32>,
}

impl Window {
    fn new() -> Window {
        Window {
            start: 0,
            counts: HashMap::new(),
        }
    }

    /// After its window has ended the counts are dead (the next `add`
    /// starts afresh): a large table is freed at once instead of waiting
    /// for the next request. True if memory was freed.
    fn shrink_ended(&mut self, now: u64, len_ms: u64) -> bool {
        if now.saturating_sub(self.start) >= len_ms && self.counts.capacity() > 1024 {
            self.counts = HashMap::new();
            return true;
        }
        false
    }

    /// Count one for `ip` at `now`; the new count, or `None` when the table
    /// is full and `ip` is not in it.
    fn add(&mut self, ip: IpAddr, now: u64, len_ms: u64, max_sources: usize) -> Option<u32> {
        if now.saturating_sub(self.start) >= len_ms {
            self.start = now;
            // A flood's worth of capacity is not kept for a quiet window.
            if self.counts.capacity() > 4 * self.counts.len().max(1024) {
                self.counts = HashMap::new();
            } else {
                self.counts.clear();
            }
        }
        let n = self.counts.len();
        match self.counts.get_mut(&ip) {
            Some(c) => {
                *c = c.saturating_add(1);
                Some(*c)
            }
            None if n >= max_sources => None,
            None => {
                self.counts.insert(ip, 1);
                Some(1)
            }
        }
    }
}

/// What one shard's guard did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuardStats {
    /// Requests from a source not counted because the window's table was
    /// full.
    pub untracked: u64,
    /// Sources this shard banned.
    pub flood_bans: u64,
    pub auth_bans: u64,
}

/// One shard's flood and failure counting.
pub struct Guard {
    cfg: GuardCfg,
    exempt: CidrSet,
    bans: Arc<Bans>,
    requests: Window,
    failures: Window,
    pub stats: GuardStats,
}

impl Guard {
    pub fn new(cfg: &GuardCfg, bans: Arc<Bans>) -> Guard {
        let exempt: Vec<&str> = cfg.exempt.iter().map(String::as_str).collect();
        Guard {
            // Validated with the config.
            exempt: CidrSet::parse(&exempt).unwrap_or_default(),
            cfg: cfg.clone(),
            bans,
            requests: Window::new(),
            failures: Window::new(),
            stats: GuardStats::default(),
        }
    }

    pub fn bans(&self) -> &Arc<Bans> {
        &self.bans
    }

    /// True if messages from `ip` are to be refused at `now`.
    #[inline]
    pub fn banned(&self, ip: IpAddr, now: u64) -> bool {
        self.bans.check(ip, now)
    }

    /// A request from `ip` at `now`: counted; true if it has made `ip` a
    /// flood (it is banned from now on, this request included).
    pub fn request(&mut self, ip: IpAddr, now: u64) -> bool {
        if self.cfg.max_requests == 0 || self.exempt.contains(ip) {
            return false;
        }
        let (len, max) = (self.cfg.window_ms, self.cfg.max_sources);
        match self.requests.add(ip.to_canonical(), now, len, max) {
            None => {
                self.stats.untracked += 1;
                false
            }
            Some(n) if n > self.cfg.max_requests => {
                let ms = self.cfg.ban_s.saturating_mul(1000);
                if self.bans.ban(ip, BanReason::Flood, now, ms) {
                    self.stats.flood_bans += 1;
                }
                // Counted afresh after the ban (or when it is lifted).
                self.requests.counts.remove(&ip.to_canonical());
                // Refused from this one on (counted on its ban), unless the
                // table had no room for the ban.
                self.bans.check(ip, now)
            }
            Some(_) => false,
        }
    }

    /// A failed authentication from `ip` at `now`: true if it has just
    /// banned `ip`.
    pub fn auth_failed(&mut self, ip: IpAddr, now: u64) -> bool {
        if self.cfg.auth_failures == 0 || self.exempt.contains(ip) {
            return false;
        }
        let len = self.cfg.auth_window_s.saturating_mul(1000);
        match self
            .failures
            .add(ip.to_canonical(), now, len, self.cfg.max_sources)
        {
            Some(n) if n >= self.cfg.auth_failures => {
                let ms = self.cfg.auth_ban_s.saturating_mul(1000);
                let banned = self.bans.ban(ip, BanReason::Auth, now, ms);
                if banned {
                    self.stats.auth_bans += 1;
                }
                self.failures.counts.remove(&ip.to_canonical());
                banned
            }
            Some(_) => false,
            None => {
                self.stats.untracked += 1;
                false
            }
        }
    }

    /// Free the source tables of windows that have ended (a flood from
    /// spoofed addresses fills them to `max_sources`). For the shard's
    /// housekeeping; changes no count. True if memory was freed.
    pub fn shrink_idle(&mut self, now: u64) -> bool {
        let auth_ms = self.cfg.auth_window_s.saturating_mul(1000);
        self.requests.shrink_ended(now, self.cfg.window_ms)
            | self.failures.shrink_ended(now, auth_ms)
    }

    /// What a banned source gets: `None` to drop, else the status code.
    pub fn answer(&self) -> Option<u16> {
        self.cfg.reply
    }
}

#[cfg(test)]
mod tests;
