//! The exact statements of spec §17.9–§17.17 for the decentralized family, on the real node
//! cores driven by the in-process cluster (the node drivers), in f64 with deterministic gradient
//! oracles. PC-ASGD's (§17.17) are in pc_asgd_exact.rs.

mod node_oracle;

use node_oracle::*;

use std::sync::Arc;

use lagom::algo::{AlgorithmConfig, AlgorithmName, LocalSgd};
use lagom::decen::{
    build_nodes, BufferStrategy, DecentralizedNode, DpsgdForm, GossipNode, GossipSpec,
    InProcessCluster, MixTiming, SlowMoBase, Theta, Topology, TopologyName,
};

/// Heavy-ball (or plain, μ = 0) SGD on the mean of the nodes' gradients: the AR-SGD reference.
fn big_batch(
    oracle: &mut Oracle,
    n: usize,
    x0: &[f64],
    steps: usize,
    lr: f64,
    mu: f64,
    nesterov: bool,
) -> Vec<Vec<f64>> {
    let mut opt = LocalSgd::<f64>::new(x0.len(), mu, nesterov, 0.0);
    let mut x = x0.to_vec();
    let mut out = Vec::new();
    (0..steps)
        .map(|_| {
            let mut mean = vec![0.0; x.len()];
            for i in 0..n {
                let mut g = Vec::new();
                oracle.grad(i, &x, &mut g);
                for (m, v) in mean.iter_mut().zip(&g) {
                    *m += v / n as f64;
                }
            }
            opt.step(&mut x, &mean, lr);
            out.push(x.clone());
            x.clone()
        })
        .collect()
}

/// Runs `steps` iterations (lr 0.05) and asserts after each that the push-sum weights sum to n
/// and the numerators to `total − γ Σ gradients`, counting messages in flight; returns whether
/// any message was ever in flight at an iteration's end.
fn assert_mass_conserved(
    e: &mut InProcessCluster<f64>,
    oracle: &mut Oracle,
    mut total: Vec<f64>,
    steps: usize,
) -> bool {
    let (n, d, lr) = (e.nodes().len(), total.len(), 0.05);
    let mut late = false;
    for _ in 0..steps {
        let mut grads = vec![Vec::new(); n];
        e.iterate(
            lr,
            &mut |i, p, out| {
                oracle.grad(i, p, out);
                grads[i] = out.clone();
            },
            &mut no_loss,
        );
        for g in &grads {
            for (t, gj) in total.iter_mut().zip(g) {
                *t -= lr * gj;
            }
        }
        let (fx, fw) = e.in_flight_mass(d);
        late |= fw > 0.0;
        let w: f64 = e.nodes().iter().map(|node| node.weight()).sum::<f64>() + fw;
        assert!((w - n as f64).abs() < 1e-12, "Σw = {w}");
        let x: Vec<f64> = (0..d)
            .map(|j| {
                e.nodes()
                    .iter()
                    .map(|node| node.numerator()[j])
                    .sum::<f64>()
                    + fx[j]
            })
            .collect();
        assert!(close(&x, &total, 1e-12), "{x:?} vs {total:?}");
    }
    late
}

/// One node of `cfg` (without momentum) follows plain SGD for 15 steps.
fn assert_one_node_is_sgd(cfg: &AlgorithmConfig) {
    let want = big_batch(&mut Oracle::new(1, 3, 0.3), 1, &X0, 15, 0.1, 0.0, false);
    let mut e = engine(cfg, false, 1, &X0);
    let got = run(&mut e, &mut Oracle::new(1, 3, 0.3), 15, 0.1);
    assert!(close(&got[14][0], &want[14], TOL), "{}", cfg.name);
}

// §17.9 -------------------------------------------------------------------------------------

#[test]
fn allreduce_sgd_is_big_batch_sgd_with_bit_identical_replicas() {
    for (mu, nesterov) in [(0.0, false), (0.9, false), (0.9, true)] {
        let mut e = engine(&config(AlgorithmName::AllreduceSgd, mu), nesterov, 4, &X0);
        let got = run(&mut e, &mut Oracle::new(4, 3, 0.3), 30, 0.05);
        let want = big_batch(&mut Oracle::new(4, 3, 0.3), 4, &X0, 30, 0.05, mu, nesterov);
        for (step, (nodes, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                nodes.iter().all(|x| x == &nodes[0]),
                "replicas differ at {step}"
            );
            assert!(
                close(&nodes[0], w, TOL),
                "μ={mu} step {step}: {:?} vs {w:?}",
                nodes[0]
            );
        }
    }
}

// §17.10 ------------------------------------------------------------------------------------

fn local_sgd(period: u64, buffers: BufferStrategy, mu: f64) -> AlgorithmConfig {
    let mut c = config(AlgorithmName::LocalSgd, mu);
    c.local_sgd.period = period;
    c.local_sgd.buffers = buffers;
    c
}

#[test]
fn local_sgd_with_one_node_is_sgd_for_any_period() {
    let want = big_batch(&mut Oracle::new(1, 3, 0.3), 1, &X0, 20, 0.1, 0.9, false);
    for period in [1, 3, 7] {
        let mut e = engine(
            &local_sgd(period, BufferStrategy::Maintain, 0.9),
            false,
            1,
            &X0,
        );
        let got = run(&mut e, &mut Oracle::new(1, 3, 0.3), 20, 0.1);
        assert!(close(&got[19][0], &want[19], TOL), "period {period}");
    }
}

#[test]
fn local_sgd_period_one_matches_allreduce_and_ssgdm_and_reinit_drops_momentum() {
    let ar = big_batch(&mut Oracle::new(3, 3, 0.3), 3, &X0, 25, 0.05, 0.0, false);
    let arm = big_batch(&mut Oracle::new(3, 3, 0.3), 3, &X0, 25, 0.05, 0.9, false);
    let cases = [
        (0.0, BufferStrategy::Maintain, &ar),
        (0.9, BufferStrategy::Maintain, &arm),
        (0.9, BufferStrategy::Reinit, &ar),
    ];
    for (mu, buffers, want) in cases {
        let mut e = engine(&local_sgd(1, buffers, mu), false, 3, &X0);
        let got = run(&mut e, &mut Oracle::new(3, 3, 0.3), 25, 0.05);
        for (step, (nodes, w)) in got.iter().zip(want.iter()).enumerate() {
            assert!(close(&nodes[1], w, TOL), "μ={mu} {buffers:?} step {step}");
        }
        if mu > 0.0 && buffers == BufferStrategy::Maintain {
            // x depends only on the buffers' average; the buffers themselves differ.
            let b: Vec<&[f64]> = e.nodes().iter().map(|node| node.buffer()).collect();
            assert!(!close(b[0], b[1], 1e-6), "maintained buffers should differ");
        }
    }
}

#[test]
fn local_sgd_client_drift_fixed_point_on_quadratics_of_different_curvature() {
    let (h, c, gamma) = ([1.0, 4.0], [1.0, -1.0], 0.1);
    for (tau, approx) in [(1u64, -0.6), (2, -0.542), (8, -0.266)] {
        let mut oracle = Oracle {
            h: vec![vec![h[0]], vec![h[1]]],
            c: vec![vec![c[0]], vec![c[1]]],
            noise: 0.0,
            calls: vec![0; 2],
        };
        let mut e = engine(
            &local_sgd(tau, BufferStrategy::Maintain, 0.0),
            false,
            2,
            &[0.0],
        );
        run(&mut e, &mut oracle, (tau * 2000) as usize, gamma);
        let a: Vec<f64> = h
            .iter()
            .map(|hi| (1.0f64 - gamma * hi).powi(tau as i32))
            .collect();
        let fixed = (c[0] * (1.0 - a[0]) + c[1] * (1.0 - a[1])) / ((1.0 - a[0]) + (1.0 - a[1]));
        let x = e.nodes()[0].params()[0];
        assert!((x - fixed).abs() < 1e-9, "τ={tau}: {x} vs {fixed}");
        assert!(
            (x - approx).abs() < 1e-3,
            "τ={tau}: {x} vs the spec's {approx}"
        );
    }
}

// §17.11 ------------------------------------------------------------------------------------

fn push_sum_nodes(topology: Topology, timing: MixTiming, x0: &[Vec<f64>]) -> InProcessCluster<f64> {
    let t = Arc::new(topology);
    let nodes: Vec<Box<dyn DecentralizedNode<f64>>> = x0
        .iter()
        .enumerate()
        .map(|(i, x)| {
            let spec = GossipSpec {
                topology: t.clone(),
                timing,
                push_sum: true,
                reduce_gradients: false,
                local_average: None,
            };
            Box::new(GossipNode::new(
                i,
                spec,
                x.clone(),
                LocalSgd::new(x.len(), 0.0, false, 0.0),
                None,
            )) as Box<dyn DecentralizedNode<f64>>
        })
        .collect();
    InProcessCluster::new(nodes, 7)
}

#[test]
fn sgp_with_one_node_is_sgd_and_weights_stay_one_on_regular_graphs() {
    assert_one_node_is_sgd(&gossip(AlgorithmName::Sgp, TopologyName::Exponential));
    for topology in [TopologyName::Exponential, TopologyName::Ring] {
        let mut e = engine(&gossip(AlgorithmName::Sgp, topology), false, 6, &X0);
        for _ in 0..20 {
            e.iterate(
                0.1,
                &mut |i, p, out| Oracle::new(6, 3, 0.3).grad(i, p, out),
                &mut no_loss,
            );
            assert!(
                e.nodes().iter().all(|node| node.weight() == 1.0),
                "{topology:?}"
            );
        }
    }
}

#[test]
fn sgp_conserves_mass_on_an_irregular_graph() {
    let t = Topology::custom(vec![vec![1, 2], vec![2], vec![3], vec![4], vec![0]]).unwrap();
    let x0: Vec<Vec<f64>> = (0..5).map(|i| vec![(i * i) as f64, 1.0]).collect();
    let mut e = push_sum_nodes(t, MixTiming::AfterStep, &x0);
    let total: Vec<f64> = (0..2).map(|j| x0.iter().map(|x| x[j]).sum()).collect();
    assert_mass_conserved(&mut e, &mut Oracle::new(5, 2, 0.5), total, 40);
}

#[test]
fn sgp_exponential_graph_reaches_exact_consensus_in_log_n_steps() {
    let x0: Vec<Vec<f64>> = (0..8).map(|i| vec![i as f64]).collect();
    let mut e = push_sum_nodes(
        Topology::new(TopologyName::Exponential, 8).unwrap(),
        MixTiming::AfterStep,
        &x0,
    );
    let mut zero = |_: usize, p: &[f64], out: &mut Vec<f64>| *out = vec![0.0; p.len()];
    for step in 0..3 {
        e.iterate(0.1, &mut zero, &mut no_loss);
        let done = e.nodes().iter().all(|node| node.params() == vec![3.5]);
        assert_eq!(done, step == 2, "after {} steps", step + 1);
    }
}

#[test]
fn push_sum_debiasing_finds_the_average_where_the_numerator_does_not() {
    let t = Topology::custom(vec![vec![1, 2], vec![2], vec![3], vec![4], vec![0]]).unwrap();
    let x0: Vec<Vec<f64>> = (0..5).map(|i| vec![(i * i) as f64]).collect();
    let mut e = push_sum_nodes(t, MixTiming::AfterStep, &x0);
    let mut zero = |_: usize, p: &[f64], out: &mut Vec<f64>| *out = vec![0.0; p.len()];
    for _ in 0..200 {
        e.iterate(0.0, &mut zero, &mut no_loss);
    }
    let x: Vec<f64> = e.nodes().iter().map(|node| node.numerator()[0]).collect();
    for node in e.nodes() {
        assert!((node.params()[0] - 6.0).abs() < 1e-9);
    }
    let want = [5.29, 3.53, 7.06, 7.06, 7.06];
    assert!(
        x.iter().zip(want).all(|(a, b)| (a - b).abs() < 0.01),
        "{x:?}"
    );
}

#[test]
fn sgp_over_the_complete_graph_is_allreduce_sgd() {
    let mut e = engine(
        &gossip(AlgorithmName::Sgp, TopologyName::Complete),
        false,
        4,
        &X0,
    );
    let got = run(&mut e, &mut Oracle::new(4, 3, 0.3), 20, 0.05);
    let want = big_batch(&mut Oracle::new(4, 3, 0.3), 4, &X0, 20, 0.05, 0.0, false);
    for (nodes, w) in got.iter().zip(&want) {
        assert!(nodes.iter().all(|x| close(x, w, TOL)));
    }
}

// §17.12 ------------------------------------------------------------------------------------

#[test]
fn osgp_with_one_node_is_sgd_and_without_steps_follows_sgp() {
    assert_one_node_is_sgd(&gossip(AlgorithmName::Osgp, TopologyName::Exponential));

    let x0: Vec<Vec<f64>> = (0..8).map(|i| vec![(i * i) as f64, -(i as f64)]).collect();
    let t = || Topology::new(TopologyName::Exponential, 8).unwrap();
    let mut zero = |_: usize, p: &[f64], out: &mut Vec<f64>| *out = vec![0.0; p.len()];
    let mut sgp = push_sum_nodes(t(), MixTiming::AfterStep, &x0);
    let mut osgp = push_sum_nodes(t(), MixTiming::BeforeStep { jitter: 0 }, &x0);
    osgp.iterate(0.0, &mut zero, &mut no_loss);
    for _ in 0..9 {
        sgp.iterate(0.0, &mut zero, &mut no_loss);
        osgp.iterate(0.0, &mut zero, &mut no_loss);
        for i in 0..8 {
            let (a, b) = (
                sgp.nodes()[i].params(),
                osgp.nodes()[i].eval_point().to_vec(),
            );
            assert!(close(&a, &b, 1e-12), "node {i}: {a:?} vs {b:?}");
        }
    }
}

#[test]
fn osgp_mixes_the_gradient_one_iteration_later() {
    // x^{k+1} = P^{(k)} x^k − γ d^k on numerators and weights, with the matrix of each iteration.
    let n = 4;
    let t = Topology::new(TopologyName::Exponential, n).unwrap();
    let x0: Vec<Vec<f64>> = (0..n).map(|i| vec![1.0 + i as f64]).collect();
    let mut e = push_sum_nodes(t.clone(), MixTiming::BeforeStep { jitter: 0 }, &x0);
    let mut oracle = Oracle::new(n, 1, 0.4);
    let (mut x, mut w): (Vec<f64>, Vec<f64>) = ((0..n).map(|i| x0[i][0]).collect(), vec![1.0; n]);
    let lr = 0.1;
    for k in 0..12u64 {
        let mut grads = vec![0.0; n];
        e.iterate(
            lr,
            &mut |i, p, out| {
                oracle.grad(i, p, out);
                grads[i] = out[0];
            },
            &mut no_loss,
        );
        // The gradient of iteration k was computed at z^k = x^k / w^k.
        let z: Vec<f64> = e.nodes().iter().map(|node| node.eval_point()[0]).collect();
        let want: Vec<f64> = x.iter().zip(&w).map(|(a, b)| a / b).collect();
        assert!(close(&z, &want, 1e-12), "k={k}: {z:?} vs {want:?}");
        let p = t.mixing(k);
        x = p
            .apply(&x)
            .iter()
            .zip(&grads)
            .map(|(a, g)| a - lr * g)
            .collect();
        w = p.apply(&w);
    }
}

#[test]
fn osgp_conserves_mass_including_messages_in_flight() {
    let mut c = gossip(AlgorithmName::Osgp, TopologyName::Exponential);
    c.gossip.synch_freq = 3;
    let x0 = [2.0, -1.0];
    let mut e = engine(&c, false, 6, &x0);
    let total: Vec<f64> = x0.iter().map(|v| v * 6.0).collect();
    let late = assert_mass_conserved(&mut e, &mut Oracle::new(6, 2, 0.5), total, 40);
    assert!(late, "some messages should have been in flight");
}

// §17.13 ------------------------------------------------------------------------------------

#[test]
fn dpsgd_atc_over_the_complete_graph_is_allreduce_and_cta_is_not() {
    let want = big_batch(&mut Oracle::new(4, 3, 0.3), 4, &X0, 20, 0.05, 0.0, false);
    let mut atc = engine(
        &dpsgd(TopologyName::Complete, DpsgdForm::Atc),
        false,
        4,
        &X0,
    );
    let got = run(&mut atc, &mut Oracle::new(4, 3, 0.3), 20, 0.05);
    assert!(got
        .iter()
        .zip(&want)
        .all(|(nodes, w)| nodes.iter().all(|x| close(x, w, TOL))));
    let mut cta = engine(
        &dpsgd(TopologyName::Complete, DpsgdForm::Cta),
        false,
        4,
        &X0,
    );
    let got = run(&mut cta, &mut Oracle::new(4, 3, 0.3), 20, 0.05);
    assert!(!close(&got[19][0], &want[19], 1e-6));
    // One node: SGD in both forms.
    for form in [DpsgdForm::Atc, DpsgdForm::Cta] {
        assert_one_node_is_sgd(&dpsgd(TopologyName::Ring, form));
    }
}

#[test]
fn weight_decay_is_the_gradient_of_the_decay_at_the_nodes_point_in_every_gossip_form() {
    // Zero gradients, every node at x0, a doubly stochastic (or push-sum) mixing: the average
    // stays put, so one step of the decay alone gives x1 = (1 − γ·wd)·x0 at every node — in
    // CTA the step is taken on the self-weighted share, whose decay must still be wd·x, not
    // wd·(self-weight)·x; in push-sum forms on the numerator, whose decay must be wd·(x/w)·w.
    let (lr, wd) = (0.1, 0.5);
    let want: Vec<f64> = X0.iter().map(|x| (1.0 - lr * wd) * x).collect();
    let mut forms = vec![
        dpsgd(TopologyName::Ring, DpsgdForm::Cta),
        dpsgd(TopologyName::Ring, DpsgdForm::Atc),
        gossip(AlgorithmName::Sgp, TopologyName::Exponential),
        gossip(AlgorithmName::Osgp, TopologyName::Exponential),
    ];
    for cfg in &mut forms {
        cfg.weight_decay = wd;
        let mut e = engine(cfg, false, 6, &X0);
        let zero = |_: usize, p: &[f64], out: &mut Vec<f64>| {
            out.clear();
            out.resize(p.len(), 0.0);
        };
        e.iterate(lr, &mut { zero }, &mut no_loss);
        for (i, node) in e.nodes().iter().enumerate() {
            assert!(
                close(&node.params(), &want, 1e-12),
                "{} {:?}: node {i} at {:?}, want {want:?}",
                cfg.name,
                cfg.gossip.form,
                node.params()
            );
        }
    }
}

#[test]
fn dpsgd_disagreement_contracts_by_the_second_eigenvalue() {
    let n = 8;
    let lambda2 = 1.0 / 3.0 + 2.0 / 3.0 * (2.0 * std::f64::consts::PI / n as f64).cos();
    assert!((lambda2 - 0.805).abs() < 1e-3);
    for form in [DpsgdForm::Atc, DpsgdForm::Cta] {
        let x0: Vec<f64> = (0..n)
            .map(|i| (2.0 * std::f64::consts::PI * i as f64 / n as f64).cos())
            .collect();
        let nodes = build_nodes(&dpsgd(TopologyName::Ring, form), false, n, &[], &[0.0]).unwrap();
        let mut e = InProcessCluster::new(nodes, 1);
        // Start each node at its own value by one mixing-free gradient step from 0: g = −x0/γ.
        e.iterate(1.0, &mut |i, _, out| *out = vec![-x0[i]], &mut no_loss);
        let spread = |e: &InProcessCluster<f64>| -> f64 {
            let v: Vec<f64> = e.nodes().iter().map(|node| node.params()[0]).collect();
            let m = v.iter().sum::<f64>() / n as f64;
            v.iter().map(|x| (x - m).powi(2)).sum::<f64>().sqrt()
        };
        let mut prev = spread(&e);
        assert!(prev > 0.1, "{form:?}: the nodes should disagree");
        for _ in 0..6 {
            e.iterate(
                0.0,
                &mut |_, p, out| *out = vec![0.0; p.len()],
                &mut no_loss,
            );
            let now = spread(&e);
            assert!(
                (now / prev - lambda2).abs() < 1e-9,
                "{form:?}: ratio {}",
                now / prev
            );
            prev = now;
        }
    }
}

// §17.14 ------------------------------------------------------------------------------------

fn slowmo(
    base: SlowMoBase,
    alpha: f64,
    beta: f64,
    tau: u64,
    buffers: BufferStrategy,
    mu: f64,
) -> AlgorithmConfig {
    let mut c = config(AlgorithmName::Slowmo, mu);
    c.slowmo.base = base;
    c.slowmo.alpha = alpha;
    c.slowmo.beta = beta;
    c.slowmo.period = tau;
    c.slowmo.buffers = buffers;
    c.local_sgd.period = tau;
    c.local_sgd.buffers = BufferStrategy::Maintain;
    c
}

#[test]
fn slowmo_period_one_over_sgd_is_heavy_ball_with_lr_alpha_gamma() {
    let (alpha, beta, gamma) = (0.8, 0.6, 0.1);
    for m in [1, 3] {
        let mut e = engine(
            &slowmo(
                SlowMoBase::LocalSgd,
                alpha,
                beta,
                1,
                BufferStrategy::Reinit,
                0.0,
            ),
            false,
            m,
            &X0,
        );
        let got = run(&mut e, &mut Oracle::new(m, 3, 0.3), 30, gamma);
        let want = big_batch(
            &mut Oracle::new(m, 3, 0.3),
            m,
            &X0,
            30,
            alpha * gamma,
            beta,
            false,
        );
        for (step, (nodes, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                nodes.iter().all(|x| x == &nodes[0]),
                "m={m}: nodes differ at {step}"
            );
            assert!(close(&nodes[0], w, TOL), "m={m} step {step}");
        }
    }
}

#[test]
fn slowmo_reinit_equals_heavy_ball_but_maintain_does_not() {
    let (alpha, beta, gamma) = (0.8, 0.6, 0.1);
    let want = big_batch(
        &mut Oracle::new(3, 3, 0.3),
        3,
        &X0,
        30,
        alpha * gamma,
        beta,
        false,
    );
    let mut reinit = engine(
        &slowmo(
            SlowMoBase::LocalSgd,
            alpha,
            beta,
            1,
            BufferStrategy::Reinit,
            0.9,
        ),
        false,
        3,
        &X0,
    );
    let got = run(&mut reinit, &mut Oracle::new(3, 3, 0.3), 30, gamma);
    assert!(close(&got[29][0], &want[29], TOL));
    let mut maintain = engine(
        &slowmo(
            SlowMoBase::LocalSgd,
            alpha,
            beta,
            1,
            BufferStrategy::Maintain,
            0.9,
        ),
        false,
        3,
        &X0,
    );
    let got = run(&mut maintain, &mut Oracle::new(3, 3, 0.3), 30, gamma);
    assert!(!close(&got[29][0], &want[29], 1e-6));
}

#[test]
fn slowmo_alpha_one_beta_zero_is_the_base_plus_an_exact_average() {
    // Local SGD averaging every 2 steps under SlowMo(τ = 4) with maintained buffers = Local SGD.
    let mut c = slowmo(
        SlowMoBase::LocalSgd,
        1.0,
        0.0,
        4,
        BufferStrategy::Maintain,
        0.9,
    );
    c.local_sgd.period = 2;
    let mut e = engine(&c, false, 3, &X0);
    let got = run(&mut e, &mut Oracle::new(3, 3, 0.3), 24, 0.05);
    let mut base = engine(&local_sgd(2, BufferStrategy::Maintain, 0.9), false, 3, &X0);
    let want = run(&mut base, &mut Oracle::new(3, 3, 0.3), 24, 0.05);
    assert_eq!(got, want);
    // Over SGP it adds an exact average every τ steps: all nodes agree right after it.
    let mut c = slowmo(SlowMoBase::Sgp, 1.0, 0.0, 4, BufferStrategy::Maintain, 0.0);
    c.gossip.topology = TopologyName::Exponential;
    let mut e = engine(&c, false, 6, &X0);
    let got = run(&mut e, &mut Oracle::new(6, 3, 0.3), 8, 0.05);
    assert!(got[3].iter().all(|x| x == &got[3][0]));
    assert!(got[4].iter().any(|x| x != &got[4][0]));
    let mut sgp = engine(
        &gossip(AlgorithmName::Sgp, TopologyName::Exponential),
        false,
        6,
        &X0,
    );
    let plain = run(&mut sgp, &mut Oracle::new(6, 3, 0.3), 8, 0.05);
    assert!(!close(&plain[7][0], &got[7][0], 1e-9));
}

#[test]
fn slowmo_nodes_and_slow_buffers_are_identical_after_every_slow_step() {
    let mut c = slowmo(SlowMoBase::Sgp, 1.0, 0.7, 3, BufferStrategy::Reinit, 0.9);
    c.gossip.topology = TopologyName::Ring;
    let nodes = build_nodes(&c, true, 5, &[], &X0).unwrap();
    let mut e = InProcessCluster::new(nodes, 3);
    let mut oracle = Oracle::new(5, 3, 0.3);
    for k in 0..12u64 {
        let report = e.iterate(0.05, &mut |i, p, out| oracle.grad(i, p, out), &mut no_loss);
        assert_eq!(report.slow_step, (k + 1) % 3 == 0);
        if report.slow_step {
            let x: Vec<Vec<f64>> = e.nodes().iter().map(|node| node.params()).collect();
            assert!(x.iter().all(|v| v == &x[0]));
            assert!(e.nodes().iter().all(|node| node.weight() == 1.0));
            assert!(e
                .nodes()
                .iter()
                .all(|node| node.buffer().iter().all(|&b| b == 0.0)));
        }
    }
}

/// Lookahead on the mean of the nodes' gradients: k inner SGD steps, then φ += α(θ − φ).
fn lookahead_reference(
    oracle: &mut Oracle,
    x0: &[f64],
    k: usize,
    alpha: f64,
    gamma: f64,
    outer: usize,
) -> Vec<f64> {
    let mut phi = x0.to_vec();
    for _ in 0..outer {
        let mut theta = phi.clone();
        for _ in 0..k {
            let mut g = Vec::new();
            oracle.grad(0, &theta, &mut g);
            for (t, gi) in theta.iter_mut().zip(&g) {
                *t -= gamma * gi;
            }
        }
        for (p, t) in phi.iter_mut().zip(&theta) {
            *p += alpha * (t - *p);
        }
    }
    phi
}

#[test]
fn lookahead_and_bmuf_map_onto_slowmo() {
    // Lookahead (one node, β = 0).
    let mut c = config(AlgorithmName::Lookahead, 0.0);
    c.lookahead.k = 5;
    c.lookahead.alpha = 0.5;
    let mut e = engine(&c, false, 1, &X0);
    let got = run(&mut e, &mut Oracle::new(1, 3, 0.3), 30, 0.1);
    let want = lookahead_reference(&mut Oracle::new(1, 3, 0.3), &X0, 5, 0.5, 0.1, 6);
    assert!(
        close(&got[29][0], &want, TOL),
        "{:?} vs {want:?}",
        got[29][0]
    );
    // α = 1: the inner optimizer; α = 0: the slow weights never move.
    c.lookahead.alpha = 1.0;
    let mut e = engine(&c, false, 1, &X0);
    let got = run(&mut e, &mut Oracle::new(1, 3, 0.3), 30, 0.1);
    let sgd = big_batch(&mut Oracle::new(1, 3, 0.3), 1, &X0, 30, 0.1, 0.0, false);
    assert!(close(&got[29][0], &sgd[29], TOL));
    c.lookahead.alpha = 0.0;
    let mut e = engine(&c, false, 1, &X0);
    assert_eq!(
        run(&mut e, &mut Oracle::new(1, 3, 0.3), 30, 0.1)[29][0],
        X0.to_vec()
    );

    // BMUF: Δ = η_b Δ + ζ(x̄ − x0); x0 += Δ, against `bmuf` over 3 nodes.
    let (zeta, eta_b, block, gamma, m) = (0.9, 0.5, 4usize, 0.05, 3usize);
    let mut c = config(AlgorithmName::Bmuf, 0.0);
    c.bmuf.block_lr = zeta;
    c.bmuf.block_momentum = eta_b;
    c.bmuf.block_size = block as u64;
    let mut e = engine(&c, false, m, &X0);
    let got = run(&mut e, &mut Oracle::new(m, 3, 0.3), block * 6, gamma);
    let mut oracle = Oracle::new(m, 3, 0.3);
    let (mut x0, mut delta) = (X0.to_vec(), vec![0.0; 3]);
    for _ in 0..6 {
        let mut mean = [0.0; 3];
        let mut xs = vec![x0.clone(); m];
        for _ in 0..block {
            for (i, x) in xs.iter_mut().enumerate() {
                let mut g = Vec::new();
                oracle.grad(i, x, &mut g);
                for (v, gi) in x.iter_mut().zip(&g) {
                    *v -= gamma * gi;
                }
            }
        }
        for x in &xs {
            for (s, v) in mean.iter_mut().zip(x) {
                *s += v / m as f64;
            }
        }
        for j in 0..3 {
            delta[j] = eta_b * delta[j] + zeta * (mean[j] - x0[j]);
            x0[j] += delta[j];
        }
    }
    assert!(
        close(&got[block * 6 - 1][0], &x0, TOL),
        "{:?} vs {x0:?}",
        got[block * 6 - 1][0]
    );
    // η_b = 0, ζ = 1: plain model averaging.
    c.bmuf.block_lr = 1.0;
    c.bmuf.block_momentum = 0.0;
    let mut e = engine(&c, false, m, &X0);
    let got = run(&mut e, &mut Oracle::new(m, 3, 0.3), 12, gamma);
    let mut base = engine(&local_sgd(4, BufferStrategy::Maintain, 0.0), false, m, &X0);
    assert_eq!(got, run(&mut base, &mut Oracle::new(m, 3, 0.3), 12, gamma));
}

// §17.15 ------------------------------------------------------------------------------------

#[test]
fn double_averaging_every_step_is_ssgdm_with_equal_buffers_and_differs_for_longer_periods() {
    let mut c = config(AlgorithmName::DoubleAveraging, 0.9);
    c.local_sgd.period = 1;
    let mut e = engine(&c, false, 3, &X0);
    let got = run(&mut e, &mut Oracle::new(3, 3, 0.3), 20, 0.05);
    let want = big_batch(&mut Oracle::new(3, 3, 0.3), 3, &X0, 20, 0.05, 0.9, false);
    assert!(close(&got[19][0], &want[19], TOL));
    let b: Vec<&[f64]> = e.nodes().iter().map(|node| node.buffer()).collect();
    assert!(b.iter().all(|x| *x == b[0]));
    c.local_sgd.period = 4;
    let mut da = engine(&c, false, 3, &X0);
    let mut maintained = engine(&local_sgd(4, BufferStrategy::Maintain, 0.9), false, 3, &X0);
    let a = run(&mut da, &mut Oracle::new(3, 3, 0.3), 20, 0.05);
    let m = run(&mut maintained, &mut Oracle::new(3, 3, 0.3), 20, 0.05);
    assert!(!close(&a[19][0], &m[19][0], 1e-6));
}

#[test]
fn configuration_errors_name_the_key() {
    let c = dpsgd(TopologyName::Exponential, DpsgdForm::Atc);
    let problems = lagom::decen::validate_for_nodes(&c, 8);
    assert!(
        problems
            .iter()
            .any(|(k, m)| *k == "algorithm.gossip.topology" && m.contains("symmetric")),
        "{problems:?}"
    );
    let c = gossip(AlgorithmName::Dpsgd, TopologyName::Bipartite);
    assert!(!lagom::decen::validate_for_nodes(&c, 5).is_empty());
    let mut c = pc_asgd(2, vec![9], 0.1, Theta::Fixed(1.5));
    c.momentum = 0.9;
    let mut keys: Vec<&str> = c.validate().iter().map(|(k, _)| *k).collect();
    keys.extend(
        lagom::decen::validate_for_nodes(&c, 4)
            .iter()
            .map(|(k, _)| *k),
    );
    for key in [
        "algorithm.pc_asgd.theta",
        "algorithm.momentum",
        "algorithm.pc_asgd.delayed_nodes",
    ] {
        assert!(keys.contains(&key), "{key} missing from {keys:?}");
    }
    assert!(lagom::algo::build::<f64>(&config(AlgorithmName::Sgp, 0.0), 2, vec![0.0]).is_err());
}
