//! PC-ASGD's exact statements (spec §17.17, §16): without delay it is consensus SGD, with one
//! node SGD on delay-compensated stale gradients; with delays every node follows the spec's
//! equations written out independently over the whole network; the adaptive θ is one per
//! iteration, chosen by the nodes' mean loss, so node updates keep the mixing doubly stochastic.

mod node_oracle;

use std::sync::Arc;

use lagom::algo::AlgorithmConfig;
use lagom::decen::{
    DecentralizedNode, DpsgdForm, GossipMessage, PcAsgdNode, PcAsgdSpec, Theta, Topology,
    TopologyName,
};
use node_oracle::*;

#[test]
fn pc_asgd_without_delay_is_consensus_sgd_for_every_theta() {
    let mut reference = engine(&dpsgd(TopologyName::Ring, DpsgdForm::Cta), false, 5, &X0);
    let want = run(&mut reference, &mut Oracle::new(5, 3, 0.3), 15, 0.05);
    for theta in [0.0, 0.4, 1.0] {
        let mut e = engine(
            &pc_asgd(0, vec![1, 3], 0.5, Theta::Fixed(theta)),
            false,
            5,
            &X0,
        );
        let got = run(&mut e, &mut Oracle::new(5, 3, 0.3), 15, 0.05);
        for (nodes, w) in got.iter().zip(&want) {
            assert!(
                nodes.iter().zip(w).all(|(a, b)| close(a, b, TOL)),
                "θ = {theta}"
            );
        }
    }
}

#[test]
fn pc_asgd_with_one_node_is_sgd_on_delay_compensated_stale_gradients() {
    let (tau, lambda, gamma) = (2usize, 0.3, 0.1);
    let mut e = engine(
        &pc_asgd(tau as u64, vec![0], lambda, Theta::Fixed(1.0)),
        false,
        1,
        &X0,
    );
    let got = run(&mut e, &mut Oracle::new(1, 3, 0.0), 20, gamma);
    let mut oracle = Oracle::new(1, 3, 0.0);
    let mut history = vec![X0.to_vec()];
    for k in 0..20 {
        let x = history[k].clone();
        let stale = history[k.saturating_sub(tau)].clone();
        let mut g = Vec::new();
        oracle.grad(0, &stale, &mut g);
        let next: Vec<f64> = (0..3)
            .map(|j| x[j] - gamma * (g[j] + lambda * g[j] * g[j] * (x[j] - stale[j])))
            .collect();
        assert!(close(&got[k][0], &next, TOL), "k={k}");
        history.push(next);
    }
}

#[test]
fn pc_asgd_effective_mixing_stays_doubly_stochastic() {
    for topology in [
        TopologyName::Ring,
        TopologyName::Bipartite,
        TopologyName::Complete,
    ] {
        let t = Topology::new(topology, 6).unwrap();
        let delayed = vec![true, false, false, true, false, true];
        for k in 0..t.period() {
            let w = t.mixing(k);
            let c = lagom::decen::clipped_mixing(&t, &delayed, 3, k);
            for theta in [0.0, 0.25, 0.5, 1.0] {
                let e = w.combine(theta, &c, 1.0 - theta);
                assert!(
                    e.is_doubly_stochastic(1e-12) && e.is_symmetric(1e-15),
                    "{topology:?} k={k} θ={theta}"
                );
            }
        }
    }
}

/// The local loss of node `i` of the oracle's quadratics (no noise).
fn quadratic_loss(oracle: &Oracle) -> impl Fn(usize, &[f64]) -> f64 {
    let (h, c) = (oracle.h.clone(), oracle.c.clone());
    move |i, p| {
        p.iter()
            .enumerate()
            .map(|(j, x)| 0.5 * h[i][j] * (x - c[i][j]).powi(2))
            .sum()
    }
}

fn adaptive(rule: &str) -> Theta {
    serde_json::from_str(&format!("\"{rule}\"")).expect("a θ rule")
}

/// What [`run_pc`] saw, indexed by iteration and node.
struct PcRun {
    /// Every node's parameters after each iteration.
    params: Vec<Vec<Vec<f64>>>,
    /// The losses each node was asked for at each iteration.
    asked: Vec<Vec<Vec<f64>>>,
    /// Each node's θ at each iteration.
    thetas: Vec<Vec<f64>>,
}

/// Runs `steps` iterations of PC-ASGD from `X0` on `n` nodes.
fn run_pc(cfg: &AlgorithmConfig, n: usize, steps: usize, lr: f64) -> PcRun {
    let mut e = engine(cfg, false, n, &X0);
    let mut oracle = Oracle::new(n, 3, 0.2);
    let loss = quadratic_loss(&oracle);
    let (mut params, mut asked_all, mut thetas) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..steps {
        let mut asked: Vec<Vec<f64>> = vec![Vec::new(); n];
        e.iterate(lr, &mut |i, p, out| oracle.grad(i, p, out), &mut |i, p| {
            let l = loss(i, p);
            asked[i].push(l);
            l
        });
        params.push(e.nodes().iter().map(|node| node.params()).collect());
        thetas.push(
            e.nodes()
                .iter()
                .map(|node| node.last_theta().unwrap())
                .collect(),
        );
        asked_all.push(asked);
    }
    PcRun {
        params,
        asked: asked_all,
        thetas,
    }
}

#[test]
fn pc_asgd_per_node_theta_keeps_each_nodes_lower_loss_candidate() {
    let c = pc_asgd(2, vec![0, 2], 0.1, adaptive("adaptive-per-node"));
    let PcRun { asked, thetas, .. } = run_pc(&c, 4, 30, 0.05);
    let mut seen = [false; 2];
    for k in 0..30 {
        for i in 0..4 {
            // The losses node i asked for: its predicting candidate's, then its clipping one's.
            let [p, c] = asked[k][i][..] else {
                panic!("node {i} asked for {} losses at k={k}", asked[k][i].len());
            };
            let want = if p <= c { 1.0 } else { 0.0 };
            assert_eq!(thetas[k][i], want, "node {i} k={k}: losses P {p} C {c}");
            seen[want as usize] = true;
        }
    }
    assert!(seen[0] && seen[1], "both candidates should win: {seen:?}");
}

#[test]
fn pc_asgd_adaptive_theta_is_one_for_the_network_chosen_by_the_mean_loss() {
    let n = 6;
    let c = pc_asgd(2, vec![0, 2], 0.1, adaptive("adaptive"));
    let PcRun { asked, thetas, .. } = run_pc(&c, n, 30, 0.4);
    let (mut seen, mut overruled) = ([false; 2], 0);
    // Iteration 0 is a tie (every node still at X0, both candidates equal): from 1 on.
    for k in 0..30 {
        let mean = |which: usize| asked[k].iter().map(|l| l[which]).sum::<f64>() / n as f64;
        let want = if mean(0) <= mean(1) { 1.0 } else { 0.0 };
        seen[want as usize] |= k > 0;
        for i in 0..n {
            assert_eq!(thetas[k][i], want, "node {i} k={k}: {:?}", asked[k]);
            let local = if asked[k][i][0] <= asked[k][i][1] {
                1.0
            } else {
                0.0
            };
            overruled += usize::from(local != want);
        }
    }
    assert!(seen[0] && seen[1], "both candidates should win: {seen:?}");
    assert!(overruled > 0, "no node ever preferred the other candidate");
}

/// PC-ASGD written out over the whole network from the spec's equations (§16.3), independent of
/// the node cores: delayed node j's parameters are seen τ iterations late, its gradient is taken
/// at its parameters of τ iterations ago; θ_k fixed, by the mean loss, or per node.
fn reference(
    n: usize,
    delayed: &[usize],
    tau: usize,
    lambda: f64,
    rule: &str,
    steps: usize,
    lr: f64,
) -> Vec<Vec<Vec<f64>>> {
    let topology = Topology::new(TopologyName::Ring, n).unwrap();
    let is_delayed: Vec<bool> = (0..n).map(|i| tau > 0 && delayed.contains(&i)).collect();
    let mut oracle = Oracle::new(n, 3, 0.2);
    let loss = quadratic_loss(&oracle);
    let mut x: Vec<Vec<Vec<f64>>> = vec![vec![X0.to_vec(); n]];
    for k in 0..steps {
        let seen = |j: usize| -> &Vec<f64> {
            let at = if is_delayed[j] {
                k.saturating_sub(tau)
            } else {
                k
            };
            &x[at][j]
        };
        let w = topology.mixing(k as u64);
        let wc = lagom::decen::clipped_mixing(&topology, &is_delayed, tau as u64, k as u64);
        let mut candidates = Vec::new();
        for (i, own) in x[k].iter().enumerate() {
            let z = seen(i).clone();
            let mut g = Vec::new();
            oracle.grad(i, &z, &mut g);
            let mix = |m: &lagom::decen::Mixing| -> Vec<f64> {
                let mut out = vec![0.0; 3];
                for j in 0..n {
                    let xj = if j == i { own } else { seen(j) };
                    for d in 0..3 {
                        out[d] += m.get(i, j) * xj[d];
                    }
                }
                out
            };
            let (mut p, mut c) = (mix(&w), mix(&wc));
            for d in 0..3 {
                p[d] -= lr * (g[d] + lambda * g[d] * g[d] * (own[d] - z[d]));
                c[d] -= lr * g[d];
            }
            candidates.push((p, c));
        }
        let losses: Vec<(f64, f64)> = candidates
            .iter()
            .enumerate()
            .map(|(i, (p, c))| (loss(i, p), loss(i, c)))
            .collect();
        let mean_p: f64 = losses.iter().map(|l| l.0).sum::<f64>() / n as f64;
        let mean_c: f64 = losses.iter().map(|l| l.1).sum::<f64>() / n as f64;
        let next = (0..n)
            .map(|i| {
                let theta = match rule {
                    "adaptive" => f64::from(u8::from(mean_p <= mean_c)),
                    "adaptive-per-node" => f64::from(u8::from(losses[i].0 <= losses[i].1)),
                    fixed => fixed.parse().unwrap(),
                };
                let (p, c) = &candidates[i];
                (0..3)
                    .map(|d| theta * p[d] + (1.0 - theta) * c[d])
                    .collect()
            })
            .collect();
        x.push(next);
    }
    x.split_off(1)
}

#[test]
fn pc_asgd_with_delays_follows_the_specs_equations_over_the_whole_network() {
    let (n, delayed, lambda, lr) = (5, vec![1, 3], 0.3, 0.05);
    for tau in [1usize, 2, 3] {
        for rule in ["0.3", "1", "adaptive", "adaptive-per-node"] {
            let theta = match rule.parse::<f64>() {
                Ok(t) => Theta::Fixed(t),
                Err(_) => adaptive(rule),
            };
            let c = pc_asgd(tau as u64, delayed.clone(), lambda, theta);
            let got = run_pc(&c, n, 25, lr).params;
            let want = reference(n, &delayed, tau, lambda, rule, 25, lr);
            for k in 0..25 {
                for i in 0..n {
                    assert!(
                        close(&got[k][i], &want[k][i], TOL),
                        "τ={tau} θ={rule} k={k} node {i}: {:?} vs {:?}",
                        got[k][i],
                        want[k][i]
                    );
                }
            }
        }
    }
}

/// One iteration of PC-ASGD nodes that start apart and know each other's current parameters,
/// with zero gradients: the sum over nodes of the new parameters, with each node handed
/// `losses(i)` as the losses its θ is chosen by.
fn one_mixing(rule: Theta, losses: &dyn Fn(usize) -> Vec<f64>) -> Vec<f64> {
    let n = 6;
    let topology = Arc::new(Topology::new(TopologyName::Ring, n).unwrap());
    let spec = PcAsgdSpec {
        topology,
        delayed: Arc::new(vec![true, false, false, true, false, false]),
        delay: 2,
        lambda: 0.0,
        theta: rule,
        weight_decay: 0.0,
    };
    let start: Vec<Vec<f64>> = (0..n)
        .map(|i| vec![i as f64, (i * i) as f64 - 3.0])
        .collect();
    let mut nodes: Vec<PcAsgdNode<f64>> = (0..n)
        .map(|i| PcAsgdNode::new(i, spec.clone(), start[i].clone()))
        .collect();
    for (i, node) in nodes.iter_mut().enumerate() {
        node.begin(0);
        node.step(0, &[0.0, 0.0], 0.1);
        for (j, x) in start.iter().enumerate().filter(|(j, _)| *j != i) {
            node.absorb(&GossipMessage {
                from: j,
                iteration: 0,
                x: x.clone(),
                weight: 1.0,
            });
        }
        node.loss_points(0, 0.1);
        node.end(0, 0.1, &losses(i));
    }
    let mut sum = vec![0.0; 2];
    for node in &nodes {
        for (s, v) in sum.iter_mut().zip(node.params()) {
            *s += v;
        }
    }
    sum
}

#[test]
fn pc_asgd_node_updates_keep_the_sum_with_one_theta_and_lose_it_with_a_theta_per_node() {
    let start_sum = [15.0, 37.0];
    // Node 0 prefers its predicting candidate, the others their clipping one.
    let local = |i: usize| {
        if i == 0 {
            vec![0.0, 1.0]
        } else {
            vec![1.0, 0.0]
        }
    };
    let mean = |_: usize| vec![5.0 / 6.0, 1.0 / 6.0];
    for (rule, losses) in [
        (adaptive("adaptive"), &mean as &dyn Fn(usize) -> Vec<f64>),
        (Theta::Fixed(0.3), &local),
    ] {
        let sum = one_mixing(rule, losses);
        assert!(close(&sum, &start_sum, 1e-12), "{rule:?}: {sum:?}");
    }
    let sum = one_mixing(adaptive("adaptive-per-node"), &local);
    assert!(
        !close(&sum, &start_sum, 1e-6),
        "a θ per node should not keep the column sums: {sum:?}"
    );
}
