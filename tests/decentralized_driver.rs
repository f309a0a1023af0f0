//! The networked node driver against the in-process engine: with instant delivery, every
//! algorithm of the family gives bit-identical parameters at every node and iteration; a sender
//! that never delivers is waited for, given up on, and handled as the spec's absent node.

use lagom::algo::{AlgorithmConfig, AlgorithmName};
use lagom::decen::{
    build_nodes, node_mean, DpsgdForm, Engine, NodeDriver, ReceiveError, SlowMoBase, Theta,
    ThetaRule, TopologyName,
};

fn config(name: AlgorithmName) -> AlgorithmConfig {
    AlgorithmConfig {
        name,
        momentum: 0.9,
        ..AlgorithmConfig::default()
    }
}

/// A deterministic per-node gradient: a diagonal quadratic plus a call-dependent perturbation.
fn gradient(i: usize, call: u64, x: &[f64]) -> Vec<f64> {
    x.iter()
        .enumerate()
        .map(|(j, &v)| {
            let h = 0.5 + ((i * 3 + j * 5) % 7) as f64 * 0.25;
            let c = ((i + 2 * j) % 5) as f64 - 2.0;
            let e = 0.1 * (((call * 7 + i as u64 * 13 + j as u64 * 3) % 11) as f64 - 5.0) / 5.0;
            h * (v - c) + e
        })
        .collect()
}

fn loss(i: usize, x: &[f64]) -> f64 {
    x.iter()
        .enumerate()
        .map(|(j, &v)| (v - ((i + j) % 3) as f64).powi(2))
        .sum()
}

const X0: [f64; 4] = [1.0, -2.0, 0.5, 3.0];

fn drivers(cfg: &AlgorithmConfig, n: usize, delayed: &[usize]) -> Vec<NodeDriver<f64>> {
    build_nodes(cfg, false, n, delayed, &X0)
        .expect("nodes")
        .into_iter()
        .enumerate()
        .map(|(i, node)| NodeDriver::new(i, n, X0.len(), node, 0))
        .collect()
}

/// One iteration of all drivers in lockstep: every message is delivered the moment it is sent,
/// except those from `silent`, which are lost; a wait for them is given up at once.
fn lockstep(ds: &mut [NodeDriver<f64>], k: u64, lr: f64, silent: Option<usize>) {
    let n = ds.len();
    let deliver =
        |ds: &mut [NodeDriver<f64>], from: usize, out: Vec<lagom::decen::Outgoing<f64>>| {
            if Some(from) == silent {
                return;
            }
            for o in out {
                ds[o.to]
                    .receive(o.lateness, o.message)
                    .expect("valid message");
            }
        };
    for i in 0..n {
        let out = ds[i].begin();
        deliver(ds, i, out);
    }
    let mut grads: Vec<Vec<f64>> = (0..n).map(|i| gradient(i, k, ds[i].eval_point())).collect();
    if ds[0].reduces_gradients() {
        let m = node_mean(&grads);
        grads.iter_mut().for_each(|g| g.clone_from(&m));
    }
    for i in 0..n {
        let out = ds[i].step(&grads[i], lr);
        deliver(ds, i, out);
    }
    let mut requests = Vec::new();
    for (i, d) in ds.iter_mut().enumerate() {
        for (s, from) in d.missing(false) {
            assert_eq!(Some(from), silent, "node {i} waits for ({s}, {from})");
            d.give_up(s, from);
        }
        requests.push(d.end(lr, &mut |p| loss(i, p)));
    }
    if let Some(r) = requests.iter().flatten().next().copied() {
        for d in ds.iter_mut() {
            for (s, from) in d.missing(true) {
                assert_eq!(Some(from), silent, "an average waits for ({s}, {from})");
                d.give_up(s, from);
            }
        }
        let params: Vec<Vec<f64>> = ds.iter().map(|d| d.node().params()).collect();
        let mean = node_mean(&params);
        let buffers = r.buffers.then(|| {
            let b: Vec<Vec<f64>> = ds.iter().map(|d| d.node().buffer().to_vec()).collect();
            node_mean(&b)
        });
        for d in ds.iter_mut() {
            d.apply_reduction(r, &mean, buffers.as_deref(), lr);
        }
    }
}

fn assert_same_as_engine(cfg: &AlgorithmConfig, n: usize, delayed: &[usize], what: &str) {
    let lr = 0.05;
    let mut engine = Engine::new(build_nodes(cfg, false, n, delayed, &X0).expect("nodes"), 1);
    let mut ds = drivers(cfg, n, delayed);
    for k in 0..30u64 {
        engine.iterate(
            lr,
            &mut |i, p, out| *out = gradient(i, k, p),
            &mut |i, p| loss(i, p),
        );
        lockstep(&mut ds, k, lr, None);
        for (i, (d, e)) in ds.iter().zip(engine.nodes()).enumerate() {
            assert_eq!(
                d.node().params(),
                e.params(),
                "{what}: node {i} differs at iteration {k}"
            );
        }
    }
    for d in &ds {
        assert_eq!(d.counts().given_up, 0, "{what}");
    }
}

#[test]
fn with_instant_delivery_every_algorithm_matches_the_engine_bit_for_bit() {
    use AlgorithmName::*;
    for name in [
        AllreduceSgd,
        LocalSgd,
        DoubleAveraging,
        Sgp,
        Osgp,
        Lookahead,
        Bmuf,
    ] {
        assert_same_as_engine(&config(name), 8, &[], name.as_str());
    }
    let mut atc = config(Dpsgd);
    atc.gossip.topology = TopologyName::Bipartite;
    assert_same_as_engine(&atc, 8, &[], "dpsgd atc bipartite");
    let mut cta = config(Dpsgd);
    cta.gossip.form = DpsgdForm::Cta;
    cta.gossip.topology = TopologyName::Ring;
    assert_same_as_engine(&cta, 6, &[], "dpsgd cta ring");
    for base in [
        SlowMoBase::LocalSgd,
        SlowMoBase::Sgp,
        SlowMoBase::AllreduceSgd,
    ] {
        let mut c = config(Slowmo);
        c.slowmo.base = base;
        c.slowmo.period = 4;
        assert_same_as_engine(&c, 8, &[], &format!("slowmo over {base:?}"));
    }
    for theta in [Theta::Fixed(0.5), Theta::Named(ThetaRule::Adaptive)] {
        let mut c = config(PcAsgd);
        c.momentum = 0.0;
        c.pc_asgd.delay = 2;
        c.pc_asgd.delayed_nodes = vec![1, 4];
        c.pc_asgd.theta = theta;
        assert_same_as_engine(&c, 6, &[], &format!("pc-asgd θ {theta:?}"));
    }
}

#[test]
fn an_absent_push_sum_sender_loses_its_mass_but_the_others_stay_a_convex_combination() {
    let n = 8;
    let mut ds = drivers(&config(AlgorithmName::Sgp), n, &[]);
    for k in 0..20 {
        lockstep(&mut ds, k, 0.0, Some(3));
    }
    // lr 0: only mixing. Every node starts at X0, so every de-biased vector is X0 again
    // whatever mass went missing.
    for (i, d) in ds.iter().enumerate() {
        for (a, b) in d.node().params().iter().zip(X0) {
            assert!((a - b).abs() < 1e-12, "node {i}: {a} vs {b}");
        }
    }
    let total_weight: f64 = ds.iter().map(|d| d.node().weight()).sum();
    assert!(
        total_weight < n as f64 - 0.5,
        "mass was lost: {total_weight}"
    );
    let gave_up: u64 = ds.iter().map(|d| d.counts().given_up).sum();
    assert!(gave_up >= 20, "{gave_up}");
}

#[test]
fn a_late_push_sum_message_is_absorbed_and_restores_the_mass() {
    let n = 4;
    let mut ds = drivers(&config(AlgorithmName::Sgp), n, &[]);
    // Iteration 0: node 1's message is held back, its receiver gives up on it.
    let mut held = Vec::new();
    for d in ds.iter_mut() {
        assert!(d.begin().is_empty());
    }
    for i in 0..n {
        let out = ds[i].step(&[0.0; 4], 0.0);
        for o in out {
            if i == 1 {
                held.push(o);
            } else {
                ds[o.to].receive(o.lateness, o.message).unwrap();
            }
        }
    }
    for d in ds.iter_mut() {
        for (s, from) in d.missing(false) {
            d.give_up(s, from);
        }
        d.end(0.0, &mut |_| 0.0);
    }
    let w: f64 = ds.iter().map(|d| d.node().weight()).sum();
    assert!(w < n as f64);
    for o in held {
        ds[o.to].receive(o.lateness, o.message).unwrap();
    }
    for d in ds.iter_mut() {
        d.begin();
    }
    let w: f64 = ds.iter().map(|d| d.node().weight()).sum();
    assert!((w - n as f64).abs() < 1e-12, "{w}");
    let late: u64 = ds.iter().map(|d| d.counts().absorbed_late).sum();
    assert_eq!(late, 1);
}

#[test]
fn an_absent_dpsgd_neighbour_is_replaced_by_the_self_loop_so_consensus_is_kept() {
    let mut cfg = config(AlgorithmName::Dpsgd);
    cfg.gossip.topology = TopologyName::Ring;
    let mut ds = drivers(&cfg, 6, &[]);
    for k in 0..10 {
        lockstep(&mut ds, k, 0.0, Some(2));
    }
    for (i, d) in ds.iter().enumerate() {
        for (a, b) in d.node().params().iter().zip(X0) {
            assert!((a - b).abs() < 1e-12, "node {i}: {a} vs {b}");
        }
    }
}

#[test]
fn bad_messages_are_refused_with_what_is_wrong() {
    let mut ds = drivers(&config(AlgorithmName::Sgp), 4, &[]);
    let msg = |from: usize, x: Vec<f64>, iteration: u64| lagom::decen::GossipMessage {
        from,
        iteration,
        x,
        weight: 0.5,
    };
    assert_eq!(
        ds[0].receive(0, msg(0, X0.to_vec(), 0)),
        Err(ReceiveError::NotAPeer { from: 0, to: 0 })
    );
    assert_eq!(
        ds[0].receive(0, msg(9, X0.to_vec(), 0)),
        Err(ReceiveError::NotAPeer { from: 9, to: 0 })
    );
    assert!(matches!(
        ds[0].receive(0, msg(1, vec![1.0; 3], 0)),
        Err(ReceiveError::WrongSize {
            got: 3,
            want: 4,
            ..
        })
    ));
    assert!(matches!(
        ds[0].receive(0, msg(1, vec![f64::NAN, 0.0, 0.0, 0.0], 0)),
        Err(ReceiveError::NotFinite { .. })
    ));
    assert!(matches!(
        ds[0].receive(0, msg(1, X0.to_vec(), u64::MAX)),
        Err(ReceiveError::TooFarAhead { .. })
    ));
    let err = ds[0]
        .receive(0, msg(1, vec![1.0; 3], 0))
        .unwrap_err()
        .to_string();
    assert!(err.contains("3 values from node 1"), "{err}");
    // Nothing refused reached the node.
    assert_eq!(ds[0].node().params(), X0.to_vec());
}
