//! Spec §17.6–§17.7: OrMo and OrMo-DA, exactly.

mod common;

use common::{close, heavy_ball, quad, Harness};
use lagom::algo::ormo::group_of;
use lagom::algo::vector::{geometric_sum, pow_n};
use lagom::algo::{AlgorithmName, DelayRule, OrMo, Scheduler, ServerAlgorithm, Update};
use num_rational::Ratio;
use num_traits::ToPrimitive;
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn rational(n: i64, d: i64) -> f64 {
    Ratio::new(n, d).to_f64().expect("representable")
}

fn update<'a>(worker: usize, t: u64, ite: u64, grad: &'a [f64], lr: f64) -> Update<'a, f64> {
    Update {
        worker,
        t,
        ite,
        grad,
        round_start: true,
        lr,
    }
}

#[test]
fn golden_trace_in_exact_arithmetic() {
    // K = 2, β = 1/2, η = 1, w0 = 0; gradients 1, 2, 4, 8, 16 (spec §17.6 table).
    let mut ormo = OrMo::new(vec![0.0f64], 2, 0.5, 0.0, DelayRule::Constant);
    let trace = [
        // (worker, ite, I after, u after, w after)
        (0, 0, 0, (1, 1), (-1, 1)),
        (1, 0, 1, (3, 2), (-9, 2)),
        (0, 1, 1, (11, 2), (-17, 2)),
        (0, 3, 2, (43, 4), (-77, 4)),
        (1, 2, 2, (75, 4), (-173, 4)),
    ];
    for (t, &(worker, ite, latest, (un, ud), (wn, wd))) in trace.iter().enumerate() {
        let g = [f64::from(1u32 << t)];
        ormo.apply(&update(worker, t as u64, ite, &g, 1.0))
            .expect("admissible");
        assert_eq!(ormo.latest_group(), latest, "I at t={t}");
        assert_eq!(ormo.momentum()[0], rational(un, ud), "u at t={t}");
        assert_eq!(ormo.params()[0], rational(wn, wd), "w at t={t}");
    }
    // The same trace through the server core (async scheduler sends these exact indexes).
    let mut h = Harness::with(AlgorithmName::Ormo, 2, 1.0, 0.5, vec![0.0], None);
    for (t, &(worker, ite, ..)) in trace.iter().enumerate() {
        assert_eq!(h.index_of(worker), ite);
        h.deliver_grad(worker, vec![f64::from(1u32 << t)]);
    }
    assert_eq!(h.w()[0], rational(-173, 4));
}

#[test]
fn one_worker_is_sgdm() {
    let hs = [1.0, 0.3, 2.0];
    let w0 = vec![1.0, -2.0, 0.5];
    let mut h = Harness::with(AlgorithmName::Ormo, 1, 0.1, 0.9, w0.clone(), None);
    for _ in 0..50 {
        h.deliver(0, quad(&hs));
    }
    assert!(close(&h.w(), &heavy_ball(&w0, 0.1, 0.9, 50, quad(&hs))));
}

/// Plays a random heterogeneous async schedule: at each step a random worker (weighted by
/// speed) delivers. Returns the harness.
fn random_async(name: AlgorithmName, k: usize, beta: f64, steps: usize, seed: u64) -> Harness {
    let hs = [1.0, 0.3, 2.0];
    let mut h = Harness::with(name, k, 0.05, beta, vec![1.0, -2.0, 0.5], None);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    for _ in 0..steps {
        // Worker k is picked with weight 1/(k+1): heterogeneous speeds.
        let weights: Vec<f64> = (0..k).map(|i| 1.0 / (i as f64 + 1.0)).collect();
        let total: f64 = weights.iter().sum();
        let mut x = rng.random::<f64>() * total;
        let mut pick = 0;
        for (i, wgt) in weights.iter().enumerate() {
            if x < *wgt {
                pick = i;
                break;
            }
            x -= wgt;
        }
        h.deliver(pick, quad(&hs));
    }
    h
}

#[test]
fn beta_zero_is_asgd_on_the_same_schedule() {
    let a = random_async(AlgorithmName::Ormo, 8, 0.0, 300, 3);
    let b = random_async(AlgorithmName::Asgd, 8, 0.0, 300, 3);
    assert_eq!(a.w(), b.w(), "bit-identical");
    assert_eq!(a.applied, b.applied);
}

#[test]
fn synchronous_scheduler_gives_ssgdm_and_heavy_ball_with_lr_k_eta() {
    let (k, eta, beta) = (4, 0.05, 0.9);
    let hs = [1.0, 0.3, 2.0];
    let w0 = vec![1.0, -2.0, 0.5];
    let mut ormo = Harness::with(
        AlgorithmName::Ormo,
        k,
        eta,
        beta,
        w0.clone(),
        Some(Scheduler::Sync),
    );
    let mut ssgdm = Harness::with(AlgorithmName::Ssgdm, k, eta, beta, w0.clone(), None);
    for _round in 0..30 {
        for worker in 0..k {
            ormo.deliver(worker, quad(&hs));
            ssgdm.deliver(worker, quad(&hs));
        }
    }
    assert!(close(&ormo.w(), &ssgdm.w()));
    let reference = heavy_ball(&w0, k as f64 * eta, beta, 30, quad(&hs));
    assert!(
        close(&ormo.w(), &reference),
        "{:?} vs {reference:?}",
        ormo.w()
    );
}

#[test]
fn synchronous_ormo_stays_ssgdm_when_fewer_than_k_workers_take_part() {
    // K = 4 slots, two of which leave before round 1: rounds of 2 gradients. Groups counted as
    // ⌈ite/K⌉ would advance every other round; the rounds are the groups.
    let (k, eta, beta) = (4, 0.05, 0.9);
    let hs = [1.0, 0.3, 2.0];
    let w0 = vec![1.0, -2.0, 0.5];
    let sync = Some(Scheduler::Sync);
    let mut ormo = Harness::with(AlgorithmName::Ormo, k, eta, beta, w0.clone(), sync);
    let mut ssgdm = Harness::with(AlgorithmName::Ssgdm, k, eta, beta, w0.clone(), sync);
    for h in [&mut ormo, &mut ssgdm] {
        for worker in 0..k {
            h.deliver(worker, quad(&hs));
        }
        for worker in [2, 3] {
            let left = h.core.handle(lagom::server::Event::Leave { worker });
            h.take(left);
        }
        for _round in 1..30 {
            for worker in 0..2 {
                h.deliver(worker, quad(&hs));
            }
        }
    }
    assert_eq!(ormo.core.updates(), 4 + 29 * 2);
    assert!(
        close(&ormo.w(), &ssgdm.w()),
        "{:?} vs {:?}",
        ormo.w(),
        ssgdm.w()
    );
}

/// One arrival of a pure-algorithm run: (worker, t, ite, gradient).
type Arrival = (usize, u64, u64, Vec<f64>);

/// Drives a bare OrMo through a random admissible async schedule on a quadratic, checking the
/// closed form and the index invariants after every step. Returns the arrivals and the algorithm.
fn checked_random_run(k: usize, beta: f64, steps: usize, seed: u64) -> (Vec<Arrival>, OrMo<f64>) {
    let eta = 0.02;
    let hs = [1.0, 0.3, 2.0];
    let w0 = vec![1.0, -2.0, 0.5];
    let mut ormo = OrMo::new(w0.clone(), k, beta, 0.0, DelayRule::Constant);
    let mut held: Vec<(Vec<f64>, u64)> = vec![(w0.clone(), 0); k];
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let speeds: Vec<f64> = (0..k).map(|_| rng.random_range(0.1..1.0)).collect();
    let mut arrivals = Vec::new();
    for t in 0..steps as u64 {
        // A worker picked with probability proportional to its speed.
        let total: f64 = speeds.iter().sum();
        let mut x = rng.random::<f64>() * total;
        let worker = speeds
            .iter()
            .position(|s| {
                let hit = x < *s;
                x -= s;
                hit
            })
            .unwrap_or(k - 1);
        let (params, ite) = held[worker].clone();
        let g: Vec<f64> = params.iter().zip(&hs).map(|(w, h)| w * h).collect();
        let applied = ormo.apply(&update(worker, t, ite, &g, eta));
        assert!(applied.is_ok(), "n ≥ 0 must hold: {applied:?}");
        assert_eq!(ormo.latest_group(), group_of(t, k), "I_(t+1) = ⌈t/K⌉");
        assert!(ormo.latest_group() >= group_of(ite, k));
        arrivals.push((worker, t, ite, g));
        // Closed form: u = η Σ β^{I−j} S_j, w = w0 − η Σ c(I−j) S_j.
        let latest = ormo.latest_group();
        let mut u = vec![0.0; 3];
        let mut w = w0.clone();
        for (_, _, a_ite, a_g) in &arrivals {
            let n = latest - group_of(*a_ite, k);
            for j in 0..3 {
                u[j] += eta * pow_n(beta, n) * a_g[j];
                w[j] -= eta * geometric_sum(beta, n) * a_g[j];
            }
        }
        assert!(close(ormo.momentum(), &u), "u closed form at t={t}");
        assert!(close(ormo.params(), &w), "w closed form at t={t}");
        held[worker] = (ormo.params().to_vec(), t + 1);
    }
    (arrivals, ormo)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn closed_form_and_index_invariants_hold_for_random_heterogeneous_orders(
        k in 1usize..9, beta in prop::sample::select(vec![0.0, 0.5, 0.9]), seed in 0u64..1_000_000,
    ) {
        checked_random_run(k, beta, 150, seed);
    }

    #[test]
    fn the_state_does_not_depend_on_the_arrival_order(k in 2usize..8, seed in 0u64..1_000_000) {
        let (arrivals, ormo) = checked_random_run(k, 0.9, 120, seed);
        // Replay the same multiset of (gradient, ite) sorted by ite: still admissible
        // (the i-th smallest ite is ≤ i) and it ends at the same I.
        let mut sorted = arrivals.clone();
        sorted.sort_by_key(|a| a.2);
        let mut replay = OrMo::new(vec![1.0, -2.0, 0.5], k, 0.9, 0.0, DelayRule::Constant);
        for (t, (worker, _, ite, g)) in sorted.iter().enumerate() {
            prop_assert!(*ite <= t as u64);
            prop_assert!(replay.apply(&update(*worker, t as u64, *ite, g, 0.02)).is_ok());
        }
        prop_assert_eq!(replay.latest_group(), ormo.latest_group());
        prop_assert!(close(replay.params(), ormo.params()));
        prop_assert!(close(replay.momentum(), ormo.momentum()));
    }
}

#[test]
fn ormo_da_equals_ormo_when_no_delay_exceeds_the_threshold() {
    // Round robin: τ = K − 1 ≤ c·K for every rule with c = 1.
    let k = 6;
    let hs = [1.0, 0.3, 2.0];
    for rule in [
        DelayRule::InverseDelay { c: 1.0 },
        DelayRule::Threshold { c: 1.0 },
    ] {
        let mut da = OrMo::new(vec![1.0, -2.0, 0.5], k, 0.9, 0.0, rule);
        let mut plain = OrMo::new(vec![1.0, -2.0, 0.5], k, 0.9, 0.0, DelayRule::Constant);
        let mut held = vec![(vec![1.0, -2.0, 0.5], 0u64); k];
        for t in 0..200u64 {
            let worker = (t % k as u64) as usize;
            let (p, ite) = held[worker].clone();
            let g: Vec<f64> = p.iter().zip(&hs).map(|(w, h)| w * h).collect();
            da.apply(&update(worker, t, ite, &g, 0.01))
                .expect("admissible");
            plain
                .apply(&update(worker, t, ite, &g, 0.01))
                .expect("admissible");
            held[worker] = (plain.params().to_vec(), t + 1);
        }
        assert_eq!(da.params(), plain.params(), "{rule:?}: bit-identical");
        assert_eq!(da.momentum(), plain.momentum());
    }
}

#[test]
fn ormo_da_shrinks_the_step_of_a_very_stale_gradient_and_threshold_drops_it() {
    let g = [1.0f64];
    for (rule, expected_lr) in [
        (DelayRule::InverseDelay { c: 1.0 }, 0.1 * 2.0 / 8.0),
        (DelayRule::Threshold { c: 1.0 }, 0.0),
    ] {
        let mut da = OrMo::new(vec![0.0f64], 2, 0.0, 0.0, rule);
        // Advance to t = 8 with fresh gradients, then one computed on index 0 (τ = 8 > cK = 2).
        for t in 0..8u64 {
            da.apply(&update(0, t, t, &[0.0], 0.1)).expect("admissible");
        }
        let applied = da.apply(&update(1, 8, 0, &g, 0.1)).expect("admissible");
        assert_eq!(0.1 * applied.lr_factor, expected_lr, "{rule:?}");
        assert_eq!(
            da.params()[0],
            -expected_lr,
            "{rule:?}: β = 0, so w moves by η_t·g"
        );
    }
}
