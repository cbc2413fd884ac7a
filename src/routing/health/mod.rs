//! The health of one target (a SIP trunk) of a destination set: OPTIONS
//! probing with consecutive-failure / consecutive-success thresholds,
//! passive marking from real traffic, Retry-After windows and the
//! operator's admin state.
//!
//! One [`Health`] is shared by every shard. Picking a target for a call
//! reads [`Health::available`], which is a few atomic loads; every state
//! transition takes the target's mutex. One shard drives probing
//! ([`Health::probe_due`], [`Health::handle_timeout`],
//! [`Health::poll_timeout`]); the reply to a probe may reach any shard,
//! which hands it over with [`Health::probe_reply`] and the sequence number
//! the probe was sent with.
//!
//! Sans-IO: no clock, no sockets, no logging. Every method takes `now_ms`
//! from the process-wide monotonic millisecond clock, and every change of
//! health comes back as a [`Change`] for the caller to log and count.
//!
//! Health itself is one deadline, `down_until`: 0 while up, `u64::MAX`
//! while down until probes bring the target back, and a time in between
//! while a passive failure holds it down with probing off. Comparing `now`
//! with it is what lets `available` stay lock-free, and lets a hold end
//! on time even if nobody calls in at that millisecond.

mod codes;

use std::sync::atomic::{AtomicU32, AtomicU64, AtomicU8, Ordering};
use std::sync::{Mutex, MutexGuard};

pub use codes::CodeSet;

/// Which targets are sent OPTIONS probes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeMode {
    /// None: only real traffic marks a target down, for `passive_hold_ms`.
    Off,
    /// Every target, every interval.
    All,
    /// Only targets whose health is down, until they are back up.
    Inactive,
}

/// Probing thresholds and timers; reloadable with [`Health::set_cfg`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProbeCfg {
    pub mode: ProbeMode,
    /// Between two probes (from one send to the next).
    pub interval_ms: u64,
    /// A probe with no final reply by then is a failure (a local 408).
    pub timeout_ms: u64,
    /// Consecutive failed probes that take a target down (0 acts as 1).
    pub down_after: u32,
    /// Consecutive alive probes that bring a target back (0 acts as 1).
    pub up_after: u32,
    /// Reply codes that count as alive; see [`CodeSet::any_answer`].
    pub alive: CodeSet,
    /// With `mode` Off: how long a passive failure keeps the target down.
    pub passive_hold_ms: u64,
}

impl Default for ProbeCfg {
    fn default() -> ProbeCfg {
        ProbeCfg {
            mode: ProbeMode::All,
            interval_ms: 5000,
            timeout_ms: 2000,
            down_after: 3,
            up_after: 2,
            alive: CodeSet::any_answer(),
            passive_hold_ms: 30_000,
        }
    }
}

/// What the operator says, over whatever health says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminState {
    /// In service: health decides.
    Up,
    /// Out of service: never picked, not probed.
    Down,
    /// No new calls (never picked), still probed, so the admin API shows
    /// whether the target would be fit to come back.
    Drain,
}

/// Why something changed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    /// A final reply to a probe, with its code.
    Reply(u16),
    /// A probe got no final reply within `timeout_ms` (a local 408).
    ProbeTimeout,
    /// Real traffic could not be sent to the target.
    TransportError,
    /// A call leg to the target timed out.
    Timeout,
    /// The target answered 503 with Retry-After (seconds).
    RetryAfter(u32),
    /// A passive hold (probing off) ran out.
    HoldEnded,
    /// The operator changed the admin state.
    Admin,
}

impl Why {
    /// Text for logs and the admin API.
    pub fn describe(&self) -> String {
        match self {
            Why::Reply(code) => format!("reply {code}"),
            Why::ProbeTimeout => "probe timeout (local 408)".to_string(),
            Why::TransportError => "transport error".to_string(),
            Why::Timeout => "timeout".to_string(),
            Why::RetryAfter(secs) => format!("retry-after {secs} s"),
            Why::HoldEnded => "passive hold ended".to_string(),
            Why::Admin => "admin".to_string(),
        }
    }
}

/// A change of health: the target went down or came back up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change {
    /// Health after the change.
    pub up: bool,
    pub why: Why,
    /// When it took effect (for the end of a hold: when the hold ran out,
    /// which may be before the call that reports it).
    pub at_ms: u64,
}

/// A snapshot for the admin API.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Status {
    pub admin: AdminState,
    /// Health only.
    pub up: bool,
    /// What picking a target sees: admin Up, healthy, no Retry-After.
    pub available: bool,
    /// The last thing that changed health, admin state or a Retry-After
    /// window; None while nothing has.
    pub reason: Option<Why>,
    /// When `reason` happened.
    pub since_ms: Option<u64>,
    /// The last final code a probe received.
    pub last_code: Option<u16>,
    /// End of a passive hold still running (probing off).
    pub held_until_ms: Option<u64>,
    /// End of a Retry-After window still running.
    pub out_until_ms: Option<u64>,
    /// Consecutive failures, probes and passive.
    pub failures: u32,
    /// Consecutive alive probes.
    pub successes: u32,
    pub probes_sent: u64,
    /// Probes answered with a code not in the alive set, or timed out.
    pub probes_failed: u64,
    /// Health changes (each returned once as a [`Change`]).
    pub changes: u64,
}

/// The health of one target; `Sync`, shared by every shard.
pub struct Health {
    /// An [`AdminState`] as `admin_to_u8` encodes it.
    admin: AtomicU8,
    /// 0 up, [`UNTIL_PROBED`] down until probes say otherwise, else the end
    /// of a passive hold.
    down_until: AtomicU64,
    /// End of a Retry-After window; 0 when there never was one.
    out_until: AtomicU64,
    /// Consecutive failures. Written only under `state`'s lock; it is an
    /// atomic so that [`Health::passive_success`], called for every final
    /// reply from the target, can see there is nothing to reset without
    /// taking the lock.
    failures: AtomicU32,
    state: Mutex<State>,
}

impl Health {
    /// Starts Up: traffic flows from the start and probes confirm.
    pub fn new(cfg: ProbeCfg) -> Health {
        Health {
            admin: AtomicU8::new(admin_to_u8(AdminState::Up)),
            down_until: AtomicU64::new(UP),
            out_until: AtomicU64::new(0),
            failures: AtomicU32::new(0),
            state: Mutex::new(State {
                cfg,
                outstanding: None,
                next_seq: 0,
                last_sent_ms: None,
                successes: 0,
                probes_sent: 0,
                probes_failed: 0,
                changes: 0,
                reason: None,
                since_ms: None,
                last_code: None,
            }),
        }
    }

    /// A reload: health, counts and an outstanding probe are kept; the new
    /// thresholds apply from the next event, and the next probe is due one
    /// new interval after the last one sent.
    ///
    /// Turning probing off drops the outstanding probe (its reply becomes
    /// stale) and turns "down until probed" into a passive hold from `now`,
    /// as nothing would ever probe the target back up. Turning probing on
    /// leaves a running hold to end on time, or sooner after `up_after`
    /// alive probes.
    pub fn set_cfg(&self, cfg: ProbeCfg, now_ms: u64) {
        let mut st = self.lock();
        if cfg.mode == ProbeMode::Off {
            st.outstanding = None;
            if self.down_until.load(Ordering::Relaxed) == UNTIL_PROBED {
                let until = hold_end(now_ms, cfg.passive_hold_ms);
                self.down_until.store(until, Ordering::Relaxed);
            }
        }
        st.cfg = cfg;
    }

    /// Whether a new call may be sent to the target: admin Up, healthy, and
    /// not inside a Retry-After window. Atomic loads only.
    pub fn available(&self, now_ms: u64) -> bool {
        // Each atomic is a value on its own (nothing else is published
        // through it), so Relaxed is enough; a pick racing a change sees
        // the state just before or just after it.
        self.admin.load(Ordering::Relaxed) == admin_to_u8(AdminState::Up)
            && now_ms >= self.down_until.load(Ordering::Relaxed)
            && now_ms >= self.out_until.load(Ordering::Relaxed)
    }

    /// Health only (ignores admin state and Retry-After). Takes `now`
    /// because a passive hold ends by the clock.
    pub fn is_up(&self, now_ms: u64) -> bool {
        now_ms >= self.down_until.load(Ordering::Relaxed)
    }

    /// `Some(seq)` when a probe should be sent now, recorded as outstanding:
    /// send OPTIONS carrying `seq` and hand the reply to
    /// [`Health::probe_reply`] with it.
    ///
    /// Never with mode Off or admin Down, and never while a probe is
    /// outstanding (neither answered nor timed out by
    /// [`Health::handle_timeout`]). Mode All probes every interval; mode
    /// Inactive only while health is down. A Retry-After window is not
    /// "down" for this: the target said itself when to come back, and a
    /// probe could not end the window sooner.
    pub fn probe_due(&self, now_ms: u64) -> Option<u32> {
        let mut st = self.lock();
        if st.outstanding.is_some() || !self.probing(&st) || now_ms < st.next_probe_ms() {
            return None;
        }
        let seq = st.next_seq;
        st.next_seq = seq.wrapping_add(1);
        st.outstanding = Some(Probe {
            seq,
            sent_ms: now_ms,
        });
        st.last_sent_ms = Some(now_ms);
        st.probes_sent += 1;
        Some(seq)
    }

    /// A reply to the probe sent with `seq`. Provisional replies are
    /// ignored (the probe stays outstanding); a final one counts as a
    /// success if its code is in the alive set, else as a failure. A `seq`
    /// other than the outstanding probe's (a late reply to a probe that
    /// timed out, a duplicate, a probe dropped by a reload or admin Down)
    /// is ignored and not counted.
    pub fn probe_reply(&self, seq: u32, code: u16, now_ms: u64) -> Option<Change> {
        let mut st = self.lock();
        match st.outstanding {
            Some(p) if p.seq == seq && code >= 200 => {}
            _ => return None,
        }
        st.outstanding = None;
        st.last_code = Some(code);
        if st.cfg.alive.contains(code) {
            self.succeed(&mut st, Why::Reply(code), now_ms)
        } else {
            st.probes_failed += 1;
            self.fail(&mut st, Why::Reply(code), now_ms)
        }
    }

    /// Timers: an outstanding probe older than `timeout_ms` counts as one
    /// failure (a local 408, never alive whatever the alive set says), and
    /// a passive hold that has run out brings the target back up. At most
    /// one change per call; [`Health::poll_timeout`] is then already due
    /// if another one is.
    pub fn handle_timeout(&self, now_ms: u64) -> Option<Change> {
        let mut st = self.lock();
        if let Some(p) = st.outstanding {
            if now_ms >= p.sent_ms.saturating_add(st.cfg.timeout_ms) {
                st.outstanding = None;
                st.probes_failed += 1;
                let change = self.fail(&mut st, Why::ProbeTimeout, now_ms);
                if change.is_some() {
                    return change;
                }
            }
        }
        match self.down_until.load(Ordering::Relaxed) {
            until if is_hold(until) && now_ms >= until => {
                Some(self.go(&mut st, UP, Why::HoldEnded, until))
            }
            _ => None,
        }
    }

    /// When [`Health::handle_timeout`] or [`Health::probe_due`] next has
    /// something to do: the outstanding probe's timeout, else the next
    /// probe if one is wanted; or the end of a passive hold, if sooner.
    /// None when nothing is pending.
    pub fn poll_timeout(&self) -> Option<u64> {
        let st = self.lock();
        let probe = match st.outstanding {
            Some(p) => Some(p.sent_ms.saturating_add(st.cfg.timeout_ms)),
            None if self.probing(&st) => Some(st.next_probe_ms()),
            None => None,
        };
        let until = self.down_until.load(Ordering::Relaxed);
        let hold = is_hold(until).then_some(until);
        match (probe, hold) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Real traffic failed (a transport error or a leg timeout): the
    /// target goes down at once. With probing off it comes back by itself
    /// `passive_hold_ms` later ([`Health::available`] follows the clock;
    /// [`Health::handle_timeout`] reports the Change); a failure during a
    /// hold extends it. With probing on it stays down until `up_after`
    /// alive probes.
    pub fn passive_failure(&self, why: Why, now_ms: u64) -> Option<Change> {
        let mut st = self.lock();
        self.count_failure(&mut st);
        let until = match st.cfg.mode {
            ProbeMode::Off => hold_end(now_ms, st.cfg.passive_hold_ms),
            ProbeMode::All | ProbeMode::Inactive => UNTIL_PROBED,
        };
        match self.down_until.load(Ordering::Relaxed) {
            UP => Some(self.go(&mut st, until, why, now_ms)),
            // A hold that ran out without handle_timeout reporting it is
            // still "down" as far as the caller was told, so it is simply
            // extended: reporting down now would be a second down in a row.
            held if is_hold(held) => {
                self.down_until.store(held.max(until), Ordering::Relaxed);
                None
            }
            // Down until probed already, and probes now start over.
            _ => None,
        }
    }

    /// Any final reply received from the target proves it answers: the
    /// consecutive-failure count starts over. It changes no state by itself
    /// (only probes bring a target back up).
    pub fn passive_success(&self) {
        // The common case, a healthy target, costs one load and no lock.
        if self.failures.load(Ordering::Relaxed) == 0 {
            return;
        }
        let _st = self.lock();
        self.failures.store(0, Ordering::Relaxed);
    }

    /// A 503 with Retry-After: out of service for `secs` from now. Not a
    /// change of health (the target answered); a later Retry-After replaces
    /// the window, since it is the target's latest word.
    pub fn retry_after(&self, secs: u32, now_ms: u64) {
        let mut st = self.lock();
        let until = now_ms.saturating_add(u64::from(secs) * 1000);
        self.out_until.store(until, Ordering::Relaxed);
        st.note(Why::RetryAfter(secs), now_ms);
    }

    /// The operator's state. Health is kept across admin changes: being out
    /// of service says nothing about the peer. Down drops the outstanding
    /// probe (its reply becomes stale).
    pub fn set_admin(&self, admin: AdminState, now_ms: u64) {
        let mut st = self.lock();
        if u8_to_admin(self.admin.load(Ordering::Relaxed)) == admin {
            return;
        }
        self.admin.store(admin_to_u8(admin), Ordering::Relaxed);
        if admin == AdminState::Down {
            st.outstanding = None;
        }
        st.note(Why::Admin, now_ms);
    }

    /// A snapshot for the admin API, as of `now_ms`.
    pub fn status(&self, now_ms: u64) -> Status {
        let st = self.lock();
        let until = self.down_until.load(Ordering::Relaxed);
        let out = self.out_until.load(Ordering::Relaxed);
        Status {
            admin: u8_to_admin(self.admin.load(Ordering::Relaxed)),
            up: now_ms >= until,
            available: self.available(now_ms),
            reason: st.reason,
            since_ms: st.since_ms,
            last_code: st.last_code,
            held_until_ms: (is_hold(until) && now_ms < until).then_some(until),
            out_until_ms: (now_ms < out).then_some(out),
            failures: self.failures.load(Ordering::Relaxed),
            successes: st.successes,
            probes_sent: st.probes_sent,
            probes_failed: st.probes_failed,
            changes: st.changes,
        }
    }

    /// One failure (probe or passive): the success run ends.
    fn count_failure(&self, st: &mut State) {
        let n = self.failures.load(Ordering::Relaxed).saturating_add(1);
        self.failures.store(n, Ordering::Relaxed);
        st.successes = 0;
    }

    /// A failed probe: down once `down_after` in a row while up.
    fn fail(&self, st: &mut State, why: Why, now_ms: u64) -> Option<Change> {
        self.count_failure(st);
        let n = self.failures.load(Ordering::Relaxed);
        let up = self.down_until.load(Ordering::Relaxed) == UP;
        (up && n >= st.cfg.down_after.max(1)).then(|| self.go(st, UNTIL_PROBED, why, now_ms))
    }

    /// An alive probe: up once `up_after` in a row while down.
    fn succeed(&self, st: &mut State, why: Why, now_ms: u64) -> Option<Change> {
        self.failures.store(0, Ordering::Relaxed);
        st.successes = st.successes.saturating_add(1);
        let down = self.down_until.load(Ordering::Relaxed) != UP;
        (down && st.successes >= st.cfg.up_after.max(1)).then(|| self.go(st, UP, why, now_ms))
    }

    /// Sets health (`UP` or a down deadline) and records the change.
    fn go(&self, st: &mut State, down_until: u64, why: Why, at_ms: u64) -> Change {
        self.down_until.store(down_until, Ordering::Relaxed);
        st.changes += 1;
        st.note(why, at_ms);
        Change {
            up: down_until == UP,
            why,
            at_ms,
        }
    }

    /// Whether probes are wanted at all right now.
    fn probing(&self, st: &State) -> bool {
        let admin = u8_to_admin(self.admin.load(Ordering::Relaxed));
        admin != AdminState::Down
            && match st.cfg.mode {
                ProbeMode::Off => false,
                ProbeMode::All => true,
                ProbeMode::Inactive => self.down_until.load(Ordering::Relaxed) != UP,
            }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // Every update under the lock is a few plain stores that cannot
        // panic halfway, so a poisoned lock still guards a consistent state
        // and is used as is rather than spreading the panic to every shard.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// `down_until` while healthy.
const UP: u64 = 0;
/// `down_until` while down until probes bring the target back.
const UNTIL_PROBED: u64 = u64::MAX;

/// A `down_until` that ends by the clock.
fn is_hold(down_until: u64) -> bool {
    down_until != UP && down_until != UNTIL_PROBED
}

/// End of a passive hold, kept apart from the two markers (a hold ending at
/// 0 would read as "up", one at `u64::MAX` as "until probed").
fn hold_end(now_ms: u64, hold_ms: u64) -> u64 {
    now_ms.saturating_add(hold_ms).clamp(1, UNTIL_PROBED - 1)
}

fn admin_to_u8(a: AdminState) -> u8 {
    match a {
        AdminState::Up => 0,
        AdminState::Down => 1,
        AdminState::Drain => 2,
    }
}

fn u8_to_admin(v: u8) -> AdminState {
    // Only admin_to_u8 writes the atomic.
    match v {
        0 => AdminState::Up,
        1 => AdminState::Down,
        _ => AdminState::Drain,
    }
}

/// A probe sent and not yet answered or timed out.
#[derive(Clone, Copy)]
struct Probe {
    seq: u32,
    sent_ms: u64,
}

/// Everything but the hot-path atomics, under the target's mutex.
struct State {
    cfg: ProbeCfg,
    outstanding: Option<Probe>,
    next_seq: u32,
    last_sent_ms: Option<u64>,
    successes: u32,
    probes_sent: u64,
    probes_failed: u64,
    changes: u64,
    reason: Option<Why>,
    since_ms: Option<u64>,
    last_code: Option<u16>,
}

impl State {
    /// One interval after the last probe sent; the first one is due at once.
    fn next_probe_ms(&self) -> u64 {
        self.last_sent_ms
            .map_or(0, |t| t.saturating_add(self.cfg.interval_ms))
    }

    fn note(&mut self, why: Why, at_ms: u64) {
        self.reason = Some(why);
        self.since_ms = Some(at_ms);
    }
}

#[cfg(test)]
mod tests;
