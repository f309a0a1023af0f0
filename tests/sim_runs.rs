//! The simulator's code path: the stability pattern of spec §17.3, heterogeneity, objectives.

use lagom::algo::AlgorithmName;
use lagom::config::Config;
use lagom::run::RunDir;
use lagom::sim::{self, ObjectiveName, SimResult};

fn run(config: &Config) -> SimResult {
    let dir = tempfile::tempdir().expect("tempdir");
    let run_dir = RunDir::create(dir.path()).expect("run dir");
    let mut metrics = run_dir.metrics().expect("metrics");
    sim::run(&config.sim_setup(), &mut metrics, false).expect("simulation runs")
}

/// `½ w²`, no noise, w0 = 1, identical speeds and no jitter: round-robin arrivals.
fn scalar_quadratic(name: AlgorithmName, k: usize, lr: f64) -> Config {
    let mut c = Config::default();
    c.algorithm.name = name;
    c.algorithm.lr = lr;
    c.algorithm.momentum = 0.9;
    c.cluster.workers = k;
    c.sim.updates = 6000;
    c.sim.eval_every = 100;
    c.sim.quadratic.curvatures = vec![1.0];
    c.sim.quadratic.noise = 0.0;
    c.sim.quadratic.init = 1.0;
    c
}

#[test]
fn stability_pattern_naive_and_shifted_diverge_ormo_and_smega2_converge() {
    for (k, lr) in [(4, 0.1), (16, 0.02)] {
        for name in [AlgorithmName::NaiveAsgdm, AlgorithmName::ShiftedMomentum] {
            let s = run(&scalar_quadratic(name, k, lr)).summary;
            assert!(s.diverged, "{name} K={k} η={lr} should diverge: {s:?}");
            assert!(s.updates < 6000, "a diverged run stops early");
        }
        for name in [AlgorithmName::Ormo, AlgorithmName::Smega2] {
            let r = run(&scalar_quadratic(name, k, lr));
            assert!(!r.summary.diverged, "{name} K={k} η={lr} should converge");
            assert!(
                r.params[0].abs() < 1e-2,
                "{name} K={k}: |w| = {}",
                r.params[0]
            );
            // Round robin: staleness K − 1 after warm-up.
            assert_eq!(r.summary.staleness.max, (k - 1) as u64);
            assert_eq!(r.summary.staleness.p50, (k - 1) as u64);
        }
    }
}

#[test]
fn slow_workers_deliver_fewer_and_staler_gradients_and_slow_down_sync_rounds() {
    let mut c = Config::default();
    c.algorithm.name = AlgorithmName::Asgd;
    c.algorithm.lr = 0.01;
    c.cluster.workers = 16;
    c.heterogeneity.slow_fraction = 0.25;
    c.heterogeneity.slowdown = 4.0;
    c.heterogeneity.jitter = 0.05;
    c.sim.updates = 16000;
    let a = run(&c).summary;
    let (slow, fast): (Vec<_>, Vec<_>) = a.per_worker.iter().partition(|w| w.speed < 1.0);
    assert_eq!(slow.len(), 4);
    let mean = |ws: &[&lagom::run::PerWorker], f: fn(&lagom::run::PerWorker) -> f64| {
        ws.iter().map(|w| f(w)).sum::<f64>() / ws.len() as f64
    };
    let ratio = mean(&slow, |w| w.gradients as f64) / mean(&fast, |w| w.gradients as f64);
    assert!(
        (ratio - 0.25).abs() < 0.02,
        "slow/fast gradient ratio {ratio}"
    );
    let stale = mean(&slow, |w| w.mean_staleness) / mean(&fast, |w| w.mean_staleness);
    assert!(
        stale > 3.0,
        "slow workers' staleness is several times the fast ones': {stale}"
    );

    // Same setting, synchronous: each round waits for a slow worker (≈4× per round).
    c.algorithm.scheduler = Some(lagom::algo::Scheduler::Sync);
    let s = run(&c).summary;
    let homogeneous = {
        let mut h = c.clone();
        h.heterogeneity.slow_fraction = 0.0;
        run(&h).summary
    };
    let slowdown = s.wall_s / homogeneous.wall_s;
    assert!(slowdown > 3.5 && slowdown < 4.5, "sync slowdown {slowdown}");
    assert!(
        s.per_worker.iter().all(|w| w.gradients == 1000),
        "sync: equal counts"
    );
}

#[test]
fn logistic_regression_learns() {
    let mut c = Config::default();
    c.algorithm.name = AlgorithmName::Ormo;
    c.algorithm.lr = 0.05;
    c.cluster.workers = 8;
    c.sim.objective = ObjectiveName::Logistic;
    c.sim.updates = 4000;
    let s = run(&c).summary;
    let loss = s.final_loss.expect("finite loss");
    assert!(
        loss < 0.45,
        "logistic loss should fall well below ln 2: {loss}"
    );
}

#[test]
fn weight_decay_reaches_the_gradient_and_shrinks_the_solution() {
    let mut c = Config::default();
    c.algorithm.name = AlgorithmName::Asgd;
    c.algorithm.lr = 0.05;
    c.sim.objective = ObjectiveName::Logistic;
    c.sim.updates = 3000;
    let norm = |p: &[f32]| p.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
    let plain = run(&c);
    c.algorithm.weight_decay = 0.1;
    let decayed = run(&c);
    assert!(norm(&decayed.params) < 0.8 * norm(&plain.params));
}
