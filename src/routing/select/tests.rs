use std::collections::HashSet;

use proptest::prelude::*;

use super::*;

const ALL: [Algorithm; 6] = [
    Algorithm::RoundRobin,
    Algorithm::Weighted,
    Algorithm::Hash(HashKey::CallId),
    Algorithm::Priority,
    Algorithm::LeastLoad,
    Algorithm::Random,
];

/// An available, idle, unlimited target of weight `weight`, with the id
/// of trunk `i`'s URI.
fn trunk(i: usize, weight: u32) -> View {
    View {
        weight,
        priority: 0,
        available: true,
        load: 0,
        max_load: 0,
        ready: true,
        id: hash_key(format!("sip:trunk{i}.example.net:5060").as_bytes()),
    }
}

fn set(weights: &[u32]) -> Vec<View> {
    weights
        .iter()
        .enumerate()
        .map(|(i, &w)| trunk(i, w))
        .collect()
}

/// A call's key: the hash of a Call-ID.
fn call(i: usize) -> u64 {
    hash_key(format!("a84b4c76e66710-{i}@pc33.atlanta.example.com").as_bytes())
}

/// The first pick of each of `calls` calls (key = `call(i)`), counted per
/// target.
fn count(alg: Algorithm, targets: &[View], state: &mut State, calls: usize) -> Vec<usize> {
    let mut counts = vec![0; targets.len()];
    let mut out = Vec::new();
    for i in 0..calls {
        order(alg, targets, state, call(i), &mut out);
        counts[out[0]] += 1;
    }
    counts
}

fn first(alg: Algorithm, targets: &[View], state: &mut State, key: u64) -> Option<usize> {
    let mut out = Vec::new();
    order(alg, targets, state, key, &mut out);
    out.first().copied()
}

fn order_of(alg: Algorithm, targets: &[View], state: &mut State, key: u64) -> Vec<usize> {
    let mut out = Vec::new();
    order(alg, targets, state, key, &mut out);
    out
}

#[test]
fn weighted_gives_each_target_exactly_its_weight() {
    let targets = set(&[70, 30]);
    let counts = count(Algorithm::Weighted, &targets, &mut State::new(2, 1), 10_000);
    assert_eq!(counts, [7_000, 3_000]);
}

#[test]
fn weighted_interleaves_smoothly() {
    // nginx's example: 5,1,1 gives a a b a c a a, never five a's in a row.
    let targets = set(&[5, 1, 1]);
    let mut state = State::new(3, 1);
    let picks: Vec<usize> = (0..14)
        .filter_map(|i| first(Algorithm::Weighted, &targets, &mut state, call(i)))
        .collect();
    assert_eq!(picks, [0, 0, 1, 0, 2, 0, 0, 0, 0, 1, 0, 2, 0, 0]);
    // Any window of sum(weights) consecutive picks holds exactly the weights.
    let targets = set(&[4, 2, 1, 3]);
    let mut state = State::new(4, 1);
    let picks: Vec<usize> = (0..1_000)
        .filter_map(|i| first(Algorithm::Weighted, &targets, &mut state, call(i)))
        .collect();
    for window in picks.windows(10) {
        for (t, w) in [4, 2, 1, 3].into_iter().enumerate() {
            assert_eq!(window.iter().filter(|&&p| p == t).count(), w);
        }
    }
}

#[test]
fn weighted_tail_is_by_descending_weight_then_index() {
    let targets = set(&[1, 5, 3, 5]);
    let mut state = State::new(4, 1);
    // First pick: 1 (5, first of the two highest); then 3, 2, 0.
    assert_eq!(
        order_of(Algorithm::Weighted, &targets, &mut state, 0),
        [1, 3, 2, 0]
    );
    // Second pick: 3; the tail keeps the weight order, 1 before 2.
    assert_eq!(
        order_of(Algorithm::Weighted, &targets, &mut state, 0),
        [3, 1, 2, 0]
    );
}

#[test]
fn weighted_shares_among_the_eligible_when_one_is_down() {
    let mut targets = set(&[2, 1, 1]);
    targets[0].available = false;
    let counts = count(Algorithm::Weighted, &targets, &mut State::new(3, 1), 1_000);
    assert_eq!(counts, [0, 500, 500]);
}

#[test]
fn random_spreads_by_weight() {
    let targets = set(&[70, 30]);
    let counts = count(Algorithm::Random, &targets, &mut State::new(2, 7), 10_000);
    assert!(counts[0].abs_diff(7_000) <= 300, "{counts:?}");
    // Three targets: the pick follows the weights, and so does the second
    // place given the pick (without replacement): after 5 of 5,3,2 the
    // second is 3 with probability 3/5.
    let targets = set(&[5, 3, 2]);
    let mut state = State::new(3, 11);
    let (mut firsts, mut second_after_0, mut after_0) = ([0usize; 3], 0, 0);
    for i in 0..10_000 {
        let o = order_of(Algorithm::Random, &targets, &mut state, call(i));
        firsts[o[0]] += 1;
        if o[0] == 0 {
            after_0 += 1;
            second_after_0 += usize::from(o[1] == 1);
        }
    }
    for (t, share) in [5_000, 3_000, 2_000].into_iter().enumerate() {
        assert!(firsts[t].abs_diff(share) <= 300, "{firsts:?}");
    }
    let p = second_after_0 as f64 / after_0 as f64;
    assert!((p - 0.6).abs() < 0.03, "{p}");
}

#[test]
fn random_is_determined_by_the_seed() {
    let targets = set(&[1, 1, 1, 1, 1, 1]);
    let run = |seed| {
        let mut state = State::new(6, seed);
        (0..32)
            .map(|i| order_of(Algorithm::Random, &targets, &mut state, call(i)))
            .collect::<Vec<_>>()
    };
    assert_eq!(run(42), run(42));
    assert_ne!(run(42), run(43));
    // Seed 0 is a seed like any other (xorshift's zero state is avoided).
    assert_ne!(run(0), run(1));
}

#[test]
fn round_robin_rotates_evenly_and_ignores_weights() {
    let targets = set(&[5, 1, 3]);
    let counts = count(
        Algorithm::RoundRobin,
        &targets,
        &mut State::new(3, 1),
        10_000,
    );
    for c in counts {
        assert!(c.abs_diff(3_333) <= 1, "{c}");
    }
    // The tail follows in index order from the pick, wrapping.
    let mut state = State::new(3, 1);
    assert_eq!(
        order_of(Algorithm::RoundRobin, &targets, &mut state, 0),
        [0, 1, 2]
    );
    assert_eq!(
        order_of(Algorithm::RoundRobin, &targets, &mut state, 0),
        [1, 2, 0]
    );
    assert_eq!(
        order_of(Algorithm::RoundRobin, &targets, &mut state, 0),
        [2, 0, 1]
    );
}

#[test]
fn round_robin_stays_fair_when_a_target_leaves() {
    let mut targets = set(&[1, 1, 1, 1]);
    let mut state = State::new(4, 1);
    assert_eq!(
        first(Algorithm::RoundRobin, &targets, &mut state, 0),
        Some(0)
    );
    assert_eq!(
        first(Algorithm::RoundRobin, &targets, &mut state, 0),
        Some(1)
    );
    // 2 goes down: the rotation carries on with 3 (nobody is skipped or
    // picked twice), then wraps.
    targets[2].available = false;
    let picks: Vec<_> = (0..6)
        .filter_map(|_| first(Algorithm::RoundRobin, &targets, &mut state, 0))
        .collect();
    assert_eq!(picks, [3, 0, 1, 3, 0, 1]);
}

/// Two levels of two and a last resort: 0,1 at priority 10 (weights 3,1),
/// 2,3 at 20 (weights 1,2), 4 at 30.
fn levels() -> Vec<View> {
    let mut t = set(&[3, 1, 1, 2, 1]);
    for (v, p) in t.iter_mut().zip([10, 10, 20, 20, 30]) {
        v.priority = p;
    }
    t
}

#[test]
fn priority_stays_on_the_best_level_by_weight() {
    let targets = levels();
    let mut state = State::new(5, 1);
    let mut counts = [0usize; 5];
    for i in 0..10_000 {
        let o = order_of(Algorithm::Priority, &targets, &mut state, call(i));
        counts[o[0]] += 1;
        // The other of the best level, then level 20 by weight, then 30.
        let rest = if o[0] == 0 {
            [1, 3, 2, 4]
        } else {
            [0, 3, 2, 4]
        };
        assert_eq!(o[1..], rest);
    }
    assert_eq!(counts, [7_500, 2_500, 0, 0, 0]);
}

#[test]
fn priority_falls_through_to_the_next_level() {
    let mut targets = levels();
    targets[0].available = false;
    targets[1].max_load = 5;
    targets[1].load = 5;
    let counts = count(Algorithm::Priority, &targets, &mut State::new(5, 1), 10_000);
    // Level 20 by its weights 1:2 (period 3, so within one pick).
    assert_eq!(counts[..2], [0, 0]);
    assert!(counts[2].abs_diff(3_333) <= 1, "{counts:?}");
    assert!(counts[3].abs_diff(6_667) <= 1, "{counts:?}");
    assert_eq!(counts[4], 0);
    // Level 20 down too: the last resort takes every call.
    targets[2].available = false;
    targets[3].available = false;
    let counts = count(Algorithm::Priority, &targets, &mut State::new(5, 1), 100);
    assert_eq!(counts, [0, 0, 0, 0, 100]);
    // One target of level 10 back: the calls return to it at once.
    targets[0].available = true;
    let mut state = State::new(5, 1);
    assert_eq!(
        order_of(Algorithm::Priority, &targets, &mut state, 0),
        [0, 4]
    );
}

#[test]
fn least_load_picks_the_least_loaded_per_weight() {
    let mut targets = set(&[1, 1, 1]);
    for (v, l) in targets.iter_mut().zip([5, 2, 7]) {
        v.load = l;
    }
    let mut state = State::new(3, 1);
    assert_eq!(
        order_of(Algorithm::LeastLoad, &targets, &mut state, 0),
        [1, 0, 2]
    );
    // Per weight: 12/1 = 12, 30/3 = 10, 50/5 = 10, 18/2 = 9.
    let mut targets = set(&[1, 3, 5, 2]);
    for (v, l) in targets.iter_mut().zip([12, 30, 50, 18]) {
        v.load = l;
    }
    let o = order_of(Algorithm::LeastLoad, &targets, &mut State::new(4, 1), 0);
    assert_eq!(o[0], 3);
    assert_eq!(o[3], 0);
}

#[test]
fn least_load_respects_max_load() {
    let mut targets = set(&[1, 1, 1]);
    for (v, (l, m)) in targets.iter_mut().zip([(5, 0), (2, 2), (7, 8)]) {
        v.load = l;
        v.max_load = m;
    }
    let o = order_of(Algorithm::LeastLoad, &targets, &mut State::new(3, 1), 0);
    assert_eq!(o, [0, 2]);
}

#[test]
fn least_load_shares_ties_and_levels_load_by_weight() {
    let targets = set(&[2, 2, 2, 2]);
    let counts = count(
        Algorithm::LeastLoad,
        &targets,
        &mut State::new(4, 1),
        10_000,
    );
    assert_eq!(counts, [2_500; 4]);
    // Calls that never end: each pick adds one to its target's load, so
    // the loads grow in proportion to the weights 1:3.
    let mut targets = set(&[1, 3]);
    let mut state = State::new(2, 1);
    for i in 0..400 {
        let pick = first(Algorithm::LeastLoad, &targets, &mut state, call(i));
        targets[pick.unwrap_or(0)].load += 1;
    }
    assert!(targets[0].load.abs_diff(100) <= 1, "{targets:?}");
    assert!(targets[1].load.abs_diff(300) <= 1, "{targets:?}");
}

#[test]
fn hash_spreads_keys_by_weight() {
    let targets = set(&[1, 2, 3, 4]);
    let mut state = State::new(4, 1);
    let mut rng = 0x1234_5678_u64;
    let mut counts = [0usize; 4];
    for _ in 0..10_000 {
        let key = xorshift(&mut rng);
        if let Some(p) = first(Algorithm::Hash(HashKey::CallId), &targets, &mut state, key) {
            counts[p] += 1;
        }
    }
    for (t, share) in [1_000, 2_000, 3_000, 4_000].into_iter().enumerate() {
        assert!(counts[t].abs_diff(share) <= 300, "{counts:?}");
    }
}

#[test]
fn hash_is_a_function_of_the_key_alone() {
    let targets = set(&[3, 1, 4, 1, 5]);
    let hash = Algorithm::Hash(HashKey::FromUser);
    let mut a = State::new(5, 1);
    let mut b = State::new(5, 99);
    for i in 0..100 {
        let key = call(i);
        let once = order_of(hash, &targets, &mut a, key);
        // Another call in between changes nothing (no state is read).
        order_of(hash, &targets, &mut a, call(i + 1));
        assert_eq!(order_of(hash, &targets, &mut a, key), once);
        assert_eq!(order_of(hash, &targets, &mut b, key), once);
    }
}

#[test]
fn hash_adding_a_target_moves_keys_only_to_it() {
    let hash = Algorithm::Hash(HashKey::CallId);
    let four = set(&[1, 1, 1, 1]);
    let five = set(&[1, 1, 1, 1, 1]);
    let mut state = State::new(4, 1);
    let mut moved = 0usize;
    for i in 0..10_000 {
        let before = first(hash, &four, &mut state, call(i));
        let after = first(hash, &five, &mut state, call(i));
        if after != before {
            assert_eq!(after, Some(4), "key {i} moved between old targets");
            moved += 1;
        }
    }
    assert!(moved.abs_diff(2_000) <= 300, "{moved}");
}

#[test]
fn hash_losing_a_target_moves_only_its_keys() {
    let hash = Algorithm::Hash(HashKey::RuriUser);
    let all = set(&[2, 1, 1, 3]);
    let mut down = all.clone();
    down[2].available = false;
    let mut state = State::new(4, 1);
    let mut on_2 = 0usize;
    for i in 0..10_000 {
        let before = order_of(hash, &all, &mut state, call(i));
        let after = order_of(hash, &down, &mut state, call(i));
        if before[0] == 2 {
            on_2 += 1;
            // Its keys go where they would fail over to.
            assert_eq!(after[0], before[1]);
        } else {
            assert_eq!(after[0], before[0]);
        }
        // And the rest of the order is untouched.
        let without: Vec<usize> = before.iter().copied().filter(|&t| t != 2).collect();
        assert_eq!(after, without);
    }
    // Weight 1 of 7.
    assert!(on_2.abs_diff(1_429) <= 300, "{on_2}");
}

#[test]
fn ineligible_targets_never_appear() {
    let mut targets = set(&[1, 2, 3, 4, 0, 5]);
    targets[1].available = false;
    targets[3].max_load = 10;
    targets[3].load = 10;
    targets[5].max_load = 10;
    targets[5].load = 11;
    for alg in ALL {
        let mut state = State::new(6, 1);
        for i in 0..50 {
            let mut o = order_of(alg, &targets, &mut state, call(i));
            o.sort_unstable();
            assert_eq!(o, [0, 2, 4], "{alg:?}");
        }
    }
}

#[test]
fn no_eligible_target_gives_an_empty_order() {
    let mut targets = set(&[1, 0, 3]);
    targets[0].available = false;
    targets[1].available = false;
    targets[2].max_load = 1;
    targets[2].load = 1;
    for alg in ALL {
        let mut state = State::new(3, 1);
        let mut out = vec![7, 7];
        order(alg, &targets, &mut state, 1, &mut out);
        assert!(out.is_empty(), "{alg:?}");
        order(alg, &[], &mut state, 1, &mut out);
        assert!(out.is_empty(), "{alg:?}");
    }
}

#[test]
fn standby_targets_come_after_every_weighted_one() {
    let mut targets = set(&[0, 2, 0, 1]);
    targets[0].priority = 1; // a better priority does not lift a standby
    targets[3].priority = 9;
    targets[3].load = 1_000; // nor does a heavier load on the weighted
    for alg in ALL {
        let mut state = State::new(4, 1);
        for i in 0..50 {
            let o = order_of(alg, &targets, &mut state, call(i));
            let (mut head, mut tail) = (o[..2].to_vec(), o[2..].to_vec());
            head.sort_unstable();
            tail.sort_unstable();
            assert_eq!((head, tail), (vec![1, 3], vec![0, 2]), "{alg:?}");
        }
    }
}

#[test]
fn standby_targets_share_calls_when_alone() {
    let mut targets = set(&[0, 2, 0, 1]);
    targets[1].available = false;
    targets[3].available = false;
    for alg in ALL {
        let counts = count(alg, &targets, &mut State::new(4, 5), 1_000);
        assert_eq!(counts[1] + counts[3], 0, "{alg:?}");
        // Rotations split exactly; hash and random by chance.
        assert!(counts[0].abs_diff(500) <= 60, "{alg:?} {counts:?}");
    }
}

#[test]
fn state_follows_a_set_that_changed_length() {
    for alg in ALL {
        let mut state = State::new(2, 1);
        for n in [5, 1, 0, 9, 3] {
            let targets = set(&vec![1; n]);
            let mut o = order_of(alg, &targets, &mut state, call(n));
            o.sort_unstable();
            assert_eq!(o, (0..n).collect::<Vec<_>>(), "{alg:?}");
        }
    }
    // Smooth weighted round-robin stays exact on the new length.
    let mut state = State::new(2, 1);
    let targets = set(&[2, 1, 1]);
    assert_eq!(
        count(Algorithm::Weighted, &targets, &mut state, 400),
        [200, 100, 100]
    );
    let targets = set(&[1, 1]);
    assert_eq!(
        count(Algorithm::Weighted, &targets, &mut state, 400),
        [200, 200]
    );
    // And the round-robin cursor past the end of a shrunk set wraps.
    let mut state = State::new(8, 1);
    let eight = set(&[1; 8]);
    for _ in 0..7 {
        order_of(Algorithm::RoundRobin, &eight, &mut state, 0);
    }
    let three = set(&[1; 3]);
    let counts = count(Algorithm::RoundRobin, &three, &mut state, 300);
    assert_eq!(counts, [100, 100, 100]);
}

#[test]
fn hash_key_is_stable_and_mixed() {
    // Pinned: every shard, node and restart must map a key to the same
    // target, so these values may never change. (FNV-1a 64 then the
    // splitmix64 finalizer, computed by an independent implementation.)
    assert_eq!(hash_key(b""), 0xf52a_15e9_a9b5_e89b);
    assert_eq!(
        hash_key(b"a84b4c76e66710@pc33.atlanta.com"),
        0xe655_bb1a_4c82_d609
    );
    // Neighbouring keys differ in about half their bits, high and low.
    let mut bits = 0;
    for i in 0..1_000u32 {
        let a = hash_key(format!("+1555000{i:04}").as_bytes());
        let b = hash_key(format!("+1555000{:04}", i + 1).as_bytes());
        bits += (a ^ b).count_ones();
    }
    let mean = f64::from(bits) / 1_000.0;
    assert!((mean - 32.0).abs() < 1.0, "{mean}");
}

#[test]
fn names() {
    let names: Vec<_> = ALL.iter().map(Algorithm::name).collect();
    assert_eq!(
        names,
        [
            "round-robin",
            "weighted",
            "hash",
            "priority",
            "least-load",
            "random"
        ]
    );
    let keys = [
        HashKey::CallId,
        HashKey::FromUser,
        HashKey::ToUser,
        HashKey::RuriUser,
    ];
    let names: Vec<_> = keys.iter().map(HashKey::name).collect();
    assert_eq!(names, ["call-id", "from-user", "to-user", "ruri-user"]);
}

fn views(max_len: usize) -> impl Strategy<Value = Vec<View>> {
    let view = (
        0u32..4,
        0u32..3,
        prop::bool::weighted(0.8),
        0u32..6,
        0u32..5,
        any::<u64>(),
    )
        .prop_map(|(weight, priority, available, load, max_load, id)| View {
            weight,
            priority,
            available,
            load,
            max_load,
            ready: true,
            id,
        });
    prop::collection::vec(view, 0..max_len)
}

proptest! {
    /// Whatever the views and the state's history: every eligible target
    /// exactly once, nothing else, standby last; priority levels and load
    /// ratios in order.
    #[test]
    fn order_is_a_permutation_of_the_eligible(
        alg in prop::sample::select(ALL.to_vec()),
        sets in prop::collection::vec(views(20), 1..4),
        seed in any::<u64>(),
        keys in prop::collection::vec(any::<u64>(), 1..6),
    ) {
        let mut state = State::new(sets[0].len(), seed);
        let mut out = Vec::new();
        for targets in &sets {
            for &key in &keys {
                order(alg, targets, &mut state, key, &mut out);
                let eligible: HashSet<usize> =
                    (0..targets.len()).filter(|&i| targets[i].eligible()).collect();
                let seen: HashSet<usize> = out.iter().copied().collect();
                prop_assert_eq!(seen.len(), out.len(), "a target twice: {:?}", out);
                prop_assert_eq!(&seen, &eligible);
                let active = out.iter().take_while(|&&i| targets[i].weight > 0).count();
                prop_assert!(out[active..].iter().all(|&i| targets[i].weight == 0));
                let head = &out[..active];
                if alg == Algorithm::Priority {
                    prop_assert!(head.windows(2).all(|w| targets[w[0]].priority <= targets[w[1]].priority));
                }
                if alg == Algorithm::LeastLoad {
                    let ratio = |i: usize| f64::from(targets[i].load) / f64::from(targets[i].weight);
                    prop_assert!(head.windows(2).all(|w| ratio(w[0]) <= ratio(w[1])));
                }
            }
        }
    }
}
