//! What the exact tests of the decentralized family share: deterministic per-node quadratic
//! gradient oracles, the in-process cluster over the real node cores, and small config helpers.
#![allow(dead_code)]

use lagom::algo::{AlgorithmConfig, AlgorithmName};
use lagom::decen::{build_nodes, DpsgdForm, InProcessCluster, Theta, TopologyName};

/// Relative tolerance of the exact comparisons.
pub const TOL: f64 = 1e-9;

/// True when `a` and `b` agree elementwise to `tol` relative.
pub fn close(a: &[f64], b: &[f64], tol: f64) -> bool {
    a.len() == b.len()
        && a.iter()
            .zip(b)
            .all(|(x, y)| (x - y).abs() <= tol * (1.0 + x.abs() + y.abs()))
}

/// The default configuration of algorithm `name` with `momentum`.
pub fn config(name: AlgorithmName, momentum: f64) -> AlgorithmConfig {
    AlgorithmConfig {
        name,
        momentum,
        ..AlgorithmConfig::default()
    }
}

/// Per-node diagonal quadratics `f_i(x) = ½ Σ_j h_ij (x_j − c_ij)²` plus a deterministic
/// "mini-batch" perturbation that depends on node and call count.
pub struct Oracle {
    pub h: Vec<Vec<f64>>,
    pub c: Vec<Vec<f64>>,
    pub noise: f64,
    pub calls: Vec<u64>,
}

impl Oracle {
    pub fn new(n: usize, d: usize, noise: f64) -> Self {
        let h = (0..n)
            .map(|i| {
                (0..d)
                    .map(|j| 0.5 + ((i * 3 + j * 5) % 7) as f64 * 0.25)
                    .collect()
            })
            .collect();
        let c = (0..n)
            .map(|i| (0..d).map(|j| ((i + 2 * j) % 5) as f64 - 2.0).collect())
            .collect();
        Oracle {
            h,
            c,
            noise,
            calls: vec![0; n],
        }
    }

    pub fn grad(&mut self, i: usize, x: &[f64], out: &mut Vec<f64>) {
        let t = self.calls[i];
        self.calls[i] += 1;
        out.clear();
        for (j, &xj) in x.iter().enumerate() {
            let e = self.noise * (((t * 7 + i as u64 * 13 + j as u64 * 3) % 11) as f64 - 5.0) / 5.0;
            out.push(self.h[i][j] * (xj - self.c[i][j]) + e);
        }
    }
}

/// The in-process cluster of `n` nodes of `cfg`, all starting at `x0`.
pub fn engine(
    cfg: &AlgorithmConfig,
    nesterov: bool,
    n: usize,
    x0: &[f64],
) -> InProcessCluster<f64> {
    InProcessCluster::new(build_nodes(cfg, nesterov, n, &[], x0).expect("nodes"), 1)
}

/// A loss oracle for algorithms that never ask for one.
pub fn no_loss(_: usize, _: &[f64]) -> f64 {
    0.0
}

/// Runs `steps` iterations; returns every node's de-biased parameters after each.
pub fn run(
    e: &mut InProcessCluster<f64>,
    oracle: &mut Oracle,
    steps: usize,
    lr: f64,
) -> Vec<Vec<Vec<f64>>> {
    (0..steps)
        .map(|_| {
            e.iterate(lr, &mut |i, p, out| oracle.grad(i, p, out), &mut no_loss);
            e.nodes().iter().map(|node| node.params()).collect()
        })
        .collect()
}

/// The starting point of every exact test.
pub const X0: [f64; 3] = [1.0, -2.0, 0.5];

/// D-PSGD over `topology` in `form`, no momentum.
pub fn dpsgd(topology: TopologyName, form: DpsgdForm) -> AlgorithmConfig {
    let mut c = gossip(AlgorithmName::Dpsgd, topology);
    c.gossip.form = form;
    c
}

/// PC-ASGD over a ring: delay τ, the delayed nodes, λ and θ.
pub fn pc_asgd(delay: u64, delayed: Vec<usize>, lambda: f64, theta: Theta) -> AlgorithmConfig {
    let mut c = config(AlgorithmName::PcAsgd, 0.0);
    c.pc_asgd.delay = delay;
    c.pc_asgd.delayed_nodes = delayed;
    c.pc_asgd.lambda = lambda;
    c.pc_asgd.theta = theta;
    c.pc_asgd.topology = TopologyName::Ring;
    c
}

/// Gossip algorithm `name` over `topology`, no momentum.
pub fn gossip(name: AlgorithmName, topology: TopologyName) -> AlgorithmConfig {
    let mut c = config(name, 0.0);
    c.gossip.topology = topology;
    c
}
