//! Spec §17.3–§17.5 and §17.8: naive ASGDm, shifted momentum, SMEGA² and DC-ASGD, exactly.

mod common;

use common::{close, heavy_ball, quad, Harness};
use lagom::algo::{
    AlgorithmName, DcAsgd, DcAsgdParams, ServerAlgorithm, ShiftedMomentum, Smega2, Smega2Estimate,
    Smega2Params, Update,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

const HS: [f64; 3] = [1.0, 0.3, 2.0];

fn w0() -> Vec<f64> {
    vec![1.0, -2.0, 0.5]
}

fn one_worker(name: AlgorithmName, beta: f64, steps: usize) -> Vec<f64> {
    let mut h = Harness::with(name, 1, 0.1, beta, w0(), None);
    for _ in 0..steps {
        h.deliver(0, quad(&HS));
    }
    h.w()
}

/// A heterogeneous async schedule: worker `t·7 mod K` skips every third turn.
fn skewed(name: AlgorithmName, k: usize, beta: f64, steps: usize) -> Harness {
    let mut h = Harness::with(name, k, 0.05, beta, w0(), None);
    let mut t = 0usize;
    let mut delivered = 0;
    while delivered < steps {
        let worker = (t * 7) % k;
        t += 1;
        if worker == 0 && t % 3 != 0 {
            continue;
        }
        h.deliver(worker, quad(&HS));
        delivered += 1;
    }
    h
}

#[test]
fn naive_asgdm_one_worker_is_sgdm_and_beta_zero_is_asgd() {
    let reference = heavy_ball(&w0(), 0.1, 0.9, 60, quad(&HS));
    assert!(close(
        &one_worker(AlgorithmName::NaiveAsgdm, 0.9, 60),
        &reference
    ));
    let a = skewed(AlgorithmName::NaiveAsgdm, 5, 0.0, 200);
    let b = skewed(AlgorithmName::Asgd, 5, 0.0, 200);
    assert_eq!(a.w(), b.w(), "bit-identical");
}

#[test]
fn shifted_momentum_one_worker_is_sgdm_and_beta_zero_is_asgd() {
    let reference = heavy_ball(&w0(), 0.1, 0.9, 60, quad(&HS));
    assert!(close(
        &one_worker(AlgorithmName::ShiftedMomentum, 0.9, 60),
        &reference
    ));
    let a = skewed(AlgorithmName::ShiftedMomentum, 5, 0.0, 200);
    let b = skewed(AlgorithmName::Asgd, 5, 0.0, 200);
    assert_eq!(a.w(), b.w(), "bit-identical");
}

#[test]
fn each_shifted_buffer_is_heavy_ball_over_its_own_worker_gradients() {
    let (k, beta) = (4, 0.9);
    let mut sm = ShiftedMomentum::new(w0(), k, beta, 0.0);
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let mut logs: Vec<Vec<Vec<f64>>> = vec![Vec::new(); k];
    for t in 0..120u64 {
        let worker = rng.random_range(0..k);
        let g: Vec<f64> = (0..3).map(|_| rng.sample(StandardNormal)).collect();
        sm.apply(&Update {
            worker,
            t,
            ite: t,
            grad: &g,
            round_start: true,
            lr: 0.01,
        })
        .expect("valid worker");
        logs[worker].push(g);
    }
    for (worker, log) in logs.iter().enumerate() {
        let mut buf = vec![0.0; 3];
        for g in log {
            for j in 0..3 {
                buf[j] = beta * buf[j] + g[j];
            }
        }
        assert_eq!(
            sm.buffer(worker).expect("slot"),
            buf.as_slice(),
            "worker {worker}"
        );
    }
    assert!(sm.buffer(k).is_none());
}

#[test]
fn smega2_with_one_worker_is_nesterov_in_look_ahead_form() {
    let (eta, beta) = (0.1, 0.9);
    let mut h = Harness::with(AlgorithmName::Smega2, 1, eta, beta, w0(), None);
    for _ in 0..60 {
        h.deliver(0, quad(&HS));
    }
    // Gradient at θ − ηβv; v ← βv + g; θ ← θ − ηv.
    let mut theta = w0();
    let mut v = vec![0.0; 3];
    for _ in 0..60 {
        let look: Vec<f64> = theta
            .iter()
            .zip(&v)
            .map(|(t, v)| t - eta * beta * v)
            .collect();
        let g = quad(&HS)(&look);
        for j in 0..3 {
            v[j] = beta * v[j] + g[j];
            theta[j] -= eta * v[j];
        }
    }
    assert!(close(&h.w(), &theta), "{:?} vs {theta:?}", h.w());
}

#[test]
fn smega2_beta_zero_is_asgd() {
    let a = skewed(AlgorithmName::Smega2, 5, 0.0, 200);
    let b = skewed(AlgorithmName::Asgd, 5, 0.0, 200);
    assert!(close(&a.w(), &b.w()));
}

fn apply_all(s: &mut Smega2<f64>, grads: &[Vec<f64>], lr: f64) {
    for (t, g) in grads.iter().enumerate() {
        s.apply(&Update {
            worker: 0,
            t: t as u64,
            ite: t as u64,
            grad: g,
            round_start: true,
            lr,
        })
        .expect("applies");
    }
}

#[test]
fn smega2_advanced_estimate_is_theta_after_n_zero_gradient_arrivals() {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    for n in [3usize, 4, 8] {
        for estimate in [Smega2Estimate::Advanced, Smega2Estimate::Naive] {
            let params = Smega2Params {
                estimate,
                cycle: n,
                dampening: 0.0,
            };
            let mut s = Smega2::new(vec![1.0, 2.0], n, 0.9, 0.0, params);
            let steps = rng.random_range(1..5 * n);
            let grads: Vec<Vec<f64>> = (0..steps)
                .map(|_| vec![rng.sample(StandardNormal), rng.sample(StandardNormal)])
                .collect();
            apply_all(&mut s, &grads, 0.07);
            let mut est = Vec::new();
            s.dispatch(0, &mut est).expect("dispatch");
            match estimate {
                Smega2Estimate::Advanced => {
                    let mut future = s.clone();
                    apply_all(&mut future, &vec![vec![0.0, 0.0]; n], 0.07);
                    assert!(
                        close(&est, future.params()),
                        "N={n}: {est:?} vs {:?}",
                        future.params()
                    );
                }
                Smega2Estimate::Naive => {
                    let expected: Vec<f64> = s
                        .params()
                        .iter()
                        .zip(s.momentum())
                        .map(|(t, v)| t - 0.07 * 0.9 * n as f64 * v)
                        .collect();
                    assert!(close(&est, &expected));
                }
            }
        }
    }
}

#[test]
fn smega2_complete_cycles_are_heavy_ball_on_cycle_sums() {
    let (n, lr, beta, cycles) = (4, 0.05, 0.9, 10);
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let grads: Vec<Vec<f64>> = (0..n * cycles)
        .map(|_| vec![rng.sample(StandardNormal), rng.sample(StandardNormal)])
        .collect();
    let params = Smega2Params {
        cycle: n,
        ..Default::default()
    };
    let mut s = Smega2::new(vec![1.0, -1.0], n, beta, 0.0, params);
    apply_all(&mut s, &grads, lr);
    let mut theta = vec![1.0, -1.0];
    let mut big_v = vec![0.0, 0.0];
    for c in 0..cycles {
        let mut sum = [0.0, 0.0];
        for g in &grads[c * n..(c + 1) * n] {
            sum[0] += g[0];
            sum[1] += g[1];
        }
        for j in 0..2 {
            big_v[j] = beta * big_v[j] + sum[j];
            theta[j] -= lr * big_v[j];
        }
    }
    assert!(close(s.params(), &theta));
    let v_times_n: Vec<f64> = s.momentum().iter().map(|v| v * n as f64).collect();
    assert!(close(&v_times_n, &big_v), "V = N·v");
}

#[test]
fn dcasgd_lambda_zero_is_asgd_and_one_worker_is_sgd() {
    let cfg = |lambda: f64| lagom::algo::AlgorithmConfig {
        name: AlgorithmName::Dcasgd,
        lr: 0.05,
        momentum: 0.0,
        dcasgd: DcAsgdParams {
            lambda,
            ..Default::default()
        },
        ..Default::default()
    };
    let run = |config: lagom::algo::AlgorithmConfig, k: usize| {
        let mut h = common::Harness::new(
            lagom::algo::build(&config, k, w0()).unwrap(),
            k,
            config.scheduler(),
            0.05,
        );
        for t in 0..200usize {
            let worker = (t * 7) % k;
            h.deliver(worker, quad(&HS));
        }
        h.w()
    };
    let mut plain = Harness::with(AlgorithmName::Asgd, 5, 0.05, 0.0, w0(), None);
    for t in 0..200usize {
        plain.deliver((t * 7) % 5, quad(&HS));
    }
    assert_eq!(run(cfg(0.0), 5), plain.w(), "λ = 0: bit-identical to ASGD");
    // One worker: the backup is the current w, so the correction vanishes for any λ.
    let mut sgd = Harness::with(AlgorithmName::Asgd, 1, 0.05, 0.0, w0(), None);
    for _ in 0..200 {
        sgd.deliver(0, quad(&HS));
    }
    assert_eq!(run(cfg(2.0), 1), sgd.w(), "K = 1: bit-identical to SGD");
}

#[test]
fn dc_compensation_is_exact_on_a_diagonal_quadratic_when_lambda_g2_equals_h() {
    // f = ½ Σ h (w − w*)²; stale gradient at the backup, current parameters w.
    let lambda = 0.5;
    let backup = [2.0, -1.5, 3.0];
    let w_star = [0.5, -1.0, 0.25];
    // Choose h so that λ g² = h with g = h (backup − w*): h = 1 / (λ (backup − w*)²).
    let h: Vec<f64> = backup
        .iter()
        .zip(&w_star)
        .map(|(b, s)| 1.0 / (lambda * (b - s) * (b - s)))
        .collect();
    let grad = |w: &[f64]| -> Vec<f64> {
        w.iter()
            .zip(&w_star)
            .zip(&h)
            .map(|((w, s), h)| h * (w - s))
            .collect()
    };
    let w = [1.0, 0.0, -0.5];
    let g_stale = grad(&backup);
    let mut gdc = Vec::new();
    DcAsgd::compensate(&g_stale, &w, &backup, lambda, &mut gdc);
    assert!(close(&gdc, &grad(&w)), "{gdc:?} vs {:?}", grad(&w));
}

#[test]
fn dc_compensation_is_closer_iff_lambda_g2_is_below_twice_the_curvature() {
    // One coordinate, h = 1, backup 2, current w 1, w* 0: g_stale = 2, true gradient 1.
    let (h, backup, w) = (1.0f64, 2.0f64, 1.0f64);
    let g = h * backup;
    for lambda in [0.05, 0.2, 0.45, 0.55, 1.0] {
        let mut gdc = Vec::new();
        DcAsgd::compensate(&[g], &[w], &[backup], lambda, &mut gdc);
        let err_dc = (gdc[0] - h * w).abs();
        let err_raw = (g - h * w).abs();
        let predicted_closer = lambda * g * g < 2.0 * h;
        assert_eq!(err_dc < err_raw, predicted_closer, "λ = {lambda}");
        assert!((err_dc - ((h - lambda * g * g) * (w - backup)).abs()).abs() < 1e-12);
    }
}
