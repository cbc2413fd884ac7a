//! Selection over a destination set: for each new call, the order in which
//! to try its targets. The first is the pick; the rest is the failover
//! order that serial forking walks on 408/503/transport error (DESIGN.md
//! `routing/`).
//!
//! Sans-IO and deterministic: no clock, no global RNG. What changes from
//! call to call (the round-robin cursor, the smooth weighted round-robin
//! weights, the random generator) lives in a [`State`] that the caller
//! keeps per destination set and per shard, so no two threads share it.
//!
//! # Eligibility and standby
//!
//! A target is eligible when it is available and below its `max_load` (if
//! it has one); only eligible targets ever appear in an order. Weight 0
//! means standby, as in DNS SRV practice for backup trunks: every algorithm
//! orders the eligible standby targets after every eligible weighted one,
//! so a standby target is the pick only when no weighted target is
//! eligible. Among themselves standby targets are ordered by the same
//! algorithm with the weights left out: they take round-robin turns (after
//! sorting by priority for Priority, by load for Least-load), or race
//! unweighted for Hash and Random.
//!
//! # Algorithms
//!
//! - Round-robin: a cursor remembers the index after the last pick; the
//!   pick is the first eligible target at or after it (wrapping), the tail
//!   follows in index order. Remembering an index rather than counting
//!   calls keeps the rotation fair when targets come and go: none is
//!   skipped or picked twice in a row because another left the set.
//! - Weighted: nginx's smooth weighted round-robin. Over any `sum(weights)`
//!   consecutive picks each target is picked exactly `weight` times,
//!   interleaved (5,1,1 gives a a b a c a a, not a a a a a b c). The tail is
//!   by descending weight. An ineligible target's running weight is left
//!   as it was (as nginx does), so the sum over the set stays zero and the
//!   running weights stay bounded however often targets flap.
//! - Hash: weighted rendezvous hashing (HRW). Each target scores
//!   `-ln(u) / weight` with `u` in (0, 1) mixed from the request key and the
//!   target's `id`; the order is by ascending score. A target's score
//!   depends on nothing but the key and itself, so adding a target moves
//!   only the keys it now wins (about `weight / total` of them) and losing
//!   one moves only its own keys; the relative order of the others never
//!   changes. `-ln(u)` is an exponential variate, so a target wins with
//!   probability exactly `weight / total`.
//! - Priority: the lowest `priority` value first (DNS SRV, RFC 2782). Within
//!   the best level that has an eligible target, smooth weighted
//!   round-robin; then the rest of that level, then each next level, each
//!   by descending weight.
//! - Least-load: ascending by `load / weight`, compared as
//!   `load_a * weight_b` against `load_b * weight_a` (no division, exact);
//!   ties go to the first target at or after the round-robin cursor, so
//!   equally loaded targets share calls instead of the lowest index taking
//!   them all.
//! - Random: weighted random without replacement over the whole order, by
//!   the same exponential race as Hash with `u` drawn from the state's
//!   xorshift64* generator (Efraimidis–Spirakis): the pick is target `i`
//!   with probability `weight_i / total`, and so on down the order.
//!
//! # Cost
//!
//! `order` allocates nothing once `out` and the state's scratch buffer have
//! grown to the set's size: sorting is `sort_unstable` on indices (stable
//! where it matters by using the index as the last key) and the scored
//! entries for Hash and Random live in the [`State`].

use std::cmp::Reverse;

/// How a destination set picks among its targets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Algorithm {
    RoundRobin,
    Weighted,
    Hash(HashKey),
    Priority,
    LeastLoad,
    Random,
}

/// The part of the request that [`Algorithm::Hash`] hashes. The caller
/// extracts it and passes [`hash_key`] of it to [`order`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HashKey {
    CallId,
    FromUser,
    ToUser,
    RuriUser,
}

impl Algorithm {
    /// The name used in the config and in metrics.
    pub fn name(&self) -> &'static str {
        match self {
            Algorithm::RoundRobin => "round-robin",
            Algorithm::Weighted => "weighted",
            Algorithm::Hash(_) => "hash",
            Algorithm::Priority => "priority",
            Algorithm::LeastLoad => "least-load",
            Algorithm::Random => "random",
        }
    }
}

impl HashKey {
    /// The name used in the config.
    pub fn name(&self) -> &'static str {
        match self {
            HashKey::CallId => "call-id",
            HashKey::FromUser => "from-user",
            HashKey::ToUser => "to-user",
            HashKey::RuriUser => "ruri-user",
        }
    }
}

/// What the selector needs to know of one target at this moment.
#[derive(Clone, Copy, Debug)]
pub struct View {
    /// Relative share; 0 = standby (see the module docs).
    pub weight: u32,
    /// Lower is preferred ([`Algorithm::Priority`] only).
    pub priority: u32,
    /// Health: false while the target is marked down.
    pub available: bool,
    /// Calls in progress on the target.
    pub load: u32,
    /// The most calls the target takes at once; 0 = no limit.
    pub max_load: u32,
    /// Under its `cps` limit (always, for what is not a new call).
    pub ready: bool,
    /// A stable hash of the target's identity (its URI), for consistent
    /// hashing: the same on every shard, node and restart.
    pub id: u64,
}

impl View {
    /// Whether the target may appear in an order at all.
    pub fn eligible(&self) -> bool {
        self.available && self.ready && (self.max_load == 0 || self.load < self.max_load)
    }

    /// Eligible and weighted (not standby).
    fn active(&self) -> bool {
        self.eligible() && self.weight > 0
    }

    /// Eligible standby.
    fn standby(&self) -> bool {
        self.eligible() && self.weight == 0
    }
}

/// Per-set mutable selection state: one per destination set per shard,
/// never shared between threads.
#[derive(Clone, Debug)]
pub struct State {
    /// Round-robin cursor: where the next rotation starts looking. Taken
    /// modulo the set's length, so a shrunk set needs no fix-up.
    next: usize,
    /// Smooth weighted round-robin running weights, one per target
    /// (Weighted and Priority). Their sum over the set is always zero (each
    /// step adds the total and takes it back), so each stays within a few
    /// `sum(weights)` of zero: i64 is far from overflowing even with u32
    /// weights on a thousand targets.
    current: Vec<i64>,
    /// xorshift64* state; never zero (zero is its fixed point).
    rng: u64,
    /// Scratch for Hash and Random: one packed sort key per target.
    scored: Vec<u64>,
}

impl State {
    /// State for a set of `n_targets`; `seed` seeds the random generator
    /// (give each shard its own so they do not draw the same sequence).
    pub fn new(n_targets: usize, seed: u64) -> State {
        State {
            next: 0,
            current: vec![0; n_targets],
            rng: match mix(seed) {
                0 => GOLDEN,
                x => x,
            },
            scored: Vec::with_capacity(n_targets),
        }
    }

    /// Matches the state to a set of `n` targets. A set whose length
    /// changed was rebuilt (reload), so index `i` may now be another trunk:
    /// the smooth round-robin starts afresh rather than carry a running
    /// weight over to a stranger.
    fn fit(&mut self, n: usize) {
        if self.current.len() != n {
            self.current.clear();
            self.current.resize(n, 0);
            self.scored.reserve(n);
        }
    }

    /// Where the rotation starts over `n` targets.
    fn cursor(&self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            self.next % n
        }
    }

    /// Moves the cursor past the pick, so the next call starts after it.
    fn advance(&mut self, out: &[usize]) {
        if let Some(&pick) = out.first() {
            self.next = pick + 1;
        }
    }
}

/// Clears `out` and appends the eligible targets' indices in the order to
/// try them: `out[0]` is the pick, the rest the failover order; empty when
/// no target is eligible. `key` is [`hash_key`] of the request's Call-ID / From user /
/// To user / R-URI user (the caller extracts the one the set's [`HashKey`]
/// names); only [`Algorithm::Hash`] reads it.
pub fn order(alg: Algorithm, targets: &[View], state: &mut State, key: u64, out: &mut Vec<usize>) {
    out.clear();
    state.fit(targets.len());
    match alg {
        Algorithm::RoundRobin => round_robin(targets, state, out),
        Algorithm::Weighted => weighted(targets, state, out),
        Algorithm::Hash(_) => race(targets, &mut state.scored, out, |v| mix(key ^ mix(v.id))),
        Algorithm::Priority => priority(targets, state, out),
        Algorithm::LeastLoad => least_load(targets, state, out),
        Algorithm::Random => {
            let State { rng, scored, .. } = state;
            race(targets, scored, out, |_| xorshift(rng));
        }
    }
}

/// A fast, well-mixed 64-bit hash of a request field: FNV-1a, then the
/// splitmix64 finalizer (FNV alone leaves the high bits poorly mixed for
/// short, similar keys such as sequential user numbers). Stable across
/// runs, builds and machines, so every shard and every node maps a key to
/// the same target.
pub fn hash_key(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    mix(h)
}

/// 2^64 / φ: the splitmix64 increment, and the generator's seed of last
/// resort.
const GOLDEN: u64 = 0x9e37_79b9_7f4a_7c15;

/// The splitmix64 finalizer: a bijection whose every output bit depends on
/// every input bit.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// xorshift64* (Vigna): small, fast, and good enough to spread calls.
/// `state` must not be zero (its fixed point); [`State::new`] sees to it.
fn xorshift(state: &mut u64) -> u64 {
    let mut x = *state;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *state = x;
    x.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

/// `i`'s place in the rotation that starts at `start` over `n` targets.
fn rotated(i: usize, start: usize, n: usize) -> usize {
    if i >= start {
        i - start
    } else {
        i + n - start
    }
}

/// Appends the targets that pass `keep`, in index order from `start`,
/// wrapping.
fn push_rotated(targets: &[View], start: usize, keep: fn(&View) -> bool, out: &mut Vec<usize>) {
    let n = targets.len();
    out.extend((start..n).chain(0..start).filter(|&i| keep(&targets[i])));
}

fn round_robin(targets: &[View], state: &mut State, out: &mut Vec<usize>) {
    let start = state.cursor(targets.len());
    push_rotated(targets, start, View::active, out);
    push_rotated(targets, start, View::standby, out);
    state.advance(out);
}

fn weighted(targets: &[View], state: &mut State, out: &mut Vec<usize>) {
    if let Some(pick) = smooth_pick(targets, &mut state.current, |_| true) {
        out.push(pick);
        out.extend((0..targets.len()).filter(|&i| i != pick && targets[i].active()));
        out[1..].sort_unstable_by_key(|&i| (Reverse(targets[i].weight), i));
    }
    // Standby targets have no weights to share by: they take turns.
    push_rotated(targets, state.cursor(targets.len()), View::standby, out);
    state.advance(out);
}

fn priority(targets: &[View], state: &mut State, out: &mut Vec<usize>) {
    let best = targets
        .iter()
        .filter(|v| v.active())
        .map(|v| v.priority)
        .min();
    if let Some(best) = best {
        // The best level has an eligible weighted target, so there is a pick.
        if let Some(pick) = smooth_pick(targets, &mut state.current, |v| v.priority == best) {
            out.push(pick);
            out.extend((0..targets.len()).filter(|&i| i != pick && targets[i].active()));
            out[1..].sort_unstable_by_key(|&i| {
                let v = &targets[i];
                (v.priority, Reverse(v.weight), i)
            });
        }
    }
    let (n, start) = (targets.len(), state.cursor(targets.len()));
    let tail = out.len();
    out.extend((0..n).filter(|&i| targets[i].standby()));
    out[tail..].sort_unstable_by_key(|&i| (targets[i].priority, rotated(i, start, n)));
    state.advance(out);
}

fn least_load(targets: &[View], state: &mut State, out: &mut Vec<usize>) {
    let (n, start) = (targets.len(), state.cursor(targets.len()));
    out.extend((0..n).filter(|&i| targets[i].eligible()));
    out.sort_unstable_by(|&a, &b| {
        let (va, vb) = (&targets[a], &targets[b]);
        // Standby targets compare by load alone (weight taken as 1); the
        // standby key has already put them after every weighted one.
        let wa = u64::from(va.weight.max(1));
        let wb = u64::from(vb.weight.max(1));
        (va.weight == 0)
            .cmp(&(vb.weight == 0))
            .then((u64::from(va.load) * wb).cmp(&(u64::from(vb.load) * wa)))
            .then(rotated(a, start, n).cmp(&rotated(b, start, n)))
    });
    state.advance(out);
}

/// One step of smooth weighted round-robin over the eligible weighted
/// targets that pass `member`: each gains its weight, the highest (the
/// lowest index on a tie) is picked and pays back the total. None when no
/// target takes part.
fn smooth_pick(
    targets: &[View],
    current: &mut [i64],
    member: impl Fn(&View) -> bool,
) -> Option<usize> {
    let mut total = 0i64;
    let mut best: Option<usize> = None;
    for (i, v) in targets.iter().enumerate() {
        if !v.active() || !member(v) {
            continue;
        }
        let w = i64::from(v.weight);
        current[i] += w;
        total += w;
        if best.is_none_or(|b| current[i] > current[b]) {
            best = Some(i);
        }
    }
    if let Some(b) = best {
        current[b] -= total;
    }
    best
}

/// The exponential race behind Hash and Random: each eligible target
/// scores `-ln(u) / weight` with `u` from `draw`, standby targets after the
/// rest with weight 1; `out` gets them by ascending score.
///
/// Each entry is packed into one `u64` so the sort compares plain integers
/// (a third faster than sorting tuples over 64 targets): `unit` is strictly
/// inside (0, 1), so the score is finite and strictly positive, and
/// positive floats order as their bits do with the sign bit clear. That
/// bit marks standby; the low bits, as many as the set's length needs (7
/// for 64 targets), hold the index in place of the score's last mantissa
/// bits. Scores that agree in the 40-odd bits left tie and go by index.
fn race(
    targets: &[View],
    scored: &mut Vec<u64>,
    out: &mut Vec<usize>,
    mut draw: impl FnMut(&View) -> u64,
) {
    scored.clear();
    // A slice of `View`s cannot hold 2^52 of them, so the index bits stay
    // inside the mantissa.
    let bits = usize::BITS - targets.len().leading_zeros();
    let low = (1u64 << bits) - 1;
    for (i, v) in targets.iter().enumerate() {
        if !v.eligible() {
            continue;
        }
        let score = -unit(draw(v)).ln() / f64::from(v.weight.max(1));
        let standby = u64::from(v.weight == 0) << 63;
        scored.push(standby | score.to_bits() & !low | i as u64);
    }
    scored.sort_unstable();
    out.extend(scored.iter().map(|&k| (k & low) as usize));
}

/// The top 53 bits of `h` as a float in the open interval (0, 1): the
/// half-step offset keeps it off both ends, so `ln` is finite and negative.
fn unit(h: u64) -> f64 {
    ((h >> 11) as f64 + 0.5) * (1.0 / (1u64 << 53) as f64)
}

#[cfg(test)]
mod tests;
