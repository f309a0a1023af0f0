//! Spec §17.1–§17.2: the DSGD framework (SSGD, ASGD) and SSGDm, exactly.

mod common;

use common::{close, heavy_ball, quad, Harness};
use lagom::algo::AlgorithmName;

/// Least squares on a fixed batch of 8 rows; worker k owns rows 2k, 2k+1.
fn rows() -> Vec<([f64; 3], f64)> {
    (0..8)
        .map(|i| {
            let x = i as f64;
            ([1.0, (x * 0.7).sin(), (x * 1.3).cos()], 0.5 * x - 1.0)
        })
        .collect()
}

fn lsq_grad(batch: &[([f64; 3], f64)], w: &[f64]) -> Vec<f64> {
    let mut g = vec![0.0; 3];
    for (a, b) in batch {
        let r = a.iter().zip(w).map(|(x, y)| x * y).sum::<f64>() - b;
        for j in 0..3 {
            g[j] += r * a[j] / batch.len() as f64;
        }
    }
    g
}

#[test]
fn ssgd_is_big_batch_sgd_with_lr_k_eta() {
    let (k, eta) = (4, 0.05);
    let data = rows();
    let w0 = vec![0.3, -0.2, 0.1];
    let mut h = Harness::with(AlgorithmName::Ssgd, k, eta, 0.0, w0.clone(), None);
    let mut big = w0;
    for _round in 0..25 {
        // Every worker computes on the round's parameters, on its own slice.
        for worker in 0..k {
            let slice = data[2 * worker..2 * worker + 2].to_vec();
            h.deliver(worker, move |w| lsq_grad(&slice, w));
        }
        let g = lsq_grad(&data, &big);
        for j in 0..3 {
            big[j] -= (k as f64) * eta * g[j];
        }
        assert!(close(&h.w(), &big), "{:?} vs {big:?}", h.w());
    }
    // Each round's index rK went to all K workers at once.
    for (r, chunk) in h.sent.chunks(k).enumerate() {
        assert!(
            chunk.iter().all(|&(_, idx)| idx == (r * k) as u64),
            "round {r}: {chunk:?}"
        );
    }
}

#[test]
fn asgd_with_one_worker_is_sgd() {
    let hs = [1.0, 0.3, 2.0];
    let w0 = vec![1.0, -2.0, 0.5];
    let mut h = Harness::with(AlgorithmName::Asgd, 1, 0.1, 0.0, w0.clone(), None);
    let mut w = w0;
    for _ in 0..50 {
        h.deliver(0, quad(&hs));
        for j in 0..3 {
            w[j] -= 0.1 * hs[j] * w[j];
        }
        assert_eq!(h.w(), w, "bit-identical");
    }
    assert!(h.applied.iter().all(|&(_, _, tau)| tau == 0));
}

#[test]
fn round_robin_asgd_has_staleness_t_then_k_minus_1_and_is_fixed_delay_gd() {
    let (k, eta) = (5, 0.01);
    let hs = [1.0];
    let mut h = Harness::with(AlgorithmName::Asgd, k, eta, 0.0, vec![1.0], None);
    // Reference: w_{t+1} = w_t − η ∇f(w_{t−K+1}) with w_{<0} = w_0.
    let mut hist = vec![1.0f64];
    for t in 0..40 {
        h.deliver(t % k, quad(&hs));
        let delayed = hist[t.saturating_sub(k - 1)];
        let next = hist[t] - eta * delayed;
        hist.push(next);
        assert_eq!(h.w()[0], next, "bit-identical at t={t}");
    }
    let taus: Vec<u64> = h.applied.iter().map(|a| a.2).collect();
    assert_eq!(&taus[..k], &[0, 1, 2, 3, 4]);
    assert!(taus[k..].iter().all(|&tau| tau == (k - 1) as u64));
    // Async invariants: every sent index after the initial 0s is unique and increasing.
    let later: Vec<u64> = h.sent.iter().skip(k).map(|s| s.1).collect();
    assert!(later.windows(2).all(|p| p[0] < p[1]));
}

fn round_robin_asgd_final(k: usize, eta: f64, steps: usize) -> f64 {
    let mut h = Harness::with(AlgorithmName::Asgd, k, eta, 0.0, vec![1.0], None);
    for t in 0..steps {
        h.deliver(t % k, quad(&[1.0]));
        if !h.w()[0].is_finite() || h.w()[0].abs() > 1e12 {
            return f64::INFINITY;
        }
    }
    h.w()[0].abs()
}

#[test]
fn levin_may_threshold_separates_convergence_from_divergence() {
    for (k, expected) in [(1, 2.0), (2, 1.0), (3, 0.618), (5, 0.347), (9, 0.1845)] {
        let threshold = 2.0 * (std::f64::consts::PI / (2.0 * (2.0 * k as f64 - 1.0))).sin();
        assert!((threshold - expected).abs() < 1e-3);
        let below = round_robin_asgd_final(k, 0.9 * threshold, 5000);
        let above = round_robin_asgd_final(k, 1.1 * threshold, 5000);
        assert!(
            below < 1e-6,
            "K={k}: 0.9× threshold should converge, |w| = {below}"
        );
        assert!(
            above > 1e6,
            "K={k}: 1.1× threshold should diverge, |w| = {above}"
        );
    }
}

#[test]
fn ssgdm_is_heavy_ball_on_the_mean_gradient_with_lr_k_eta() {
    let (k, eta, beta) = (4, 0.05, 0.9);
    let data = rows();
    let w0 = vec![0.3, -0.2, 0.1];
    let mut h = Harness::with(AlgorithmName::Ssgdm, k, eta, beta, w0.clone(), None);
    for _round in 0..30 {
        for worker in 0..k {
            let slice = data[2 * worker..2 * worker + 2].to_vec();
            h.deliver(worker, move |w| lsq_grad(&slice, w));
        }
    }
    let reference = heavy_ball(&w0, k as f64 * eta, beta, 30, |w| lsq_grad(&data, w));
    assert!(close(&h.w(), &reference), "{:?} vs {reference:?}", h.w());
}

#[test]
fn ssgdm_with_one_worker_is_sgdm() {
    let hs = [1.0, 0.3, 2.0];
    let w0 = vec![1.0, -2.0, 0.5];
    let mut h = Harness::with(AlgorithmName::Ssgdm, 1, 0.1, 0.9, w0.clone(), None);
    for _ in 0..50 {
        h.deliver(0, quad(&hs));
    }
    let reference = heavy_ball(&w0, 0.1, 0.9, 50, quad(&hs));
    assert!(close(&h.w(), &reference));
}
