//! The node driver, the one sans-IO state machine that the in-process cluster (simulator, exact
//! tests) and the networked worker both execute: over an asynchronous network — messages delayed
//! at random, nodes polled in random order, gradients and averages coming back late — every
//! algorithm gives the in-process cluster's parameters bit for bit at every node and iteration; a
//! sender that never delivers is waited for until the deadline, given up on, and handled as the
//! spec's absent node; bad inputs are refused with what is wrong.

use std::collections::BTreeMap;

use lagom::algo::{AlgorithmConfig, AlgorithmName};
use lagom::decen::{
    build_nodes, look_ahead, DpsgdForm, DriverAction, GossipMessage, InProcessCluster, InputError,
    NodeDriver, ReceiveError, ReduceKind, RendezvousAction, RendezvousCore, SlowMoBase, Theta,
    ThetaRule, TopologyName, LOOK_AHEAD_SLACK, MAX_WAITING,
};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn config(name: AlgorithmName) -> AlgorithmConfig {
    AlgorithmConfig {
        name,
        momentum: 0.9,
        ..AlgorithmConfig::default()
    }
}

/// A deterministic per-node gradient: a diagonal quadratic plus an iteration-dependent term.
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
const LR: f64 = 0.05;
const ITERATIONS: u64 = 30;

fn drivers(cfg: &AlgorithmConfig, n: usize, delayed: &[usize], wait: f64) -> Vec<NodeDriver<f64>> {
    build_nodes(cfg, false, n, delayed, &X0)
        .expect("nodes")
        .into_iter()
        .enumerate()
        .map(|(i, node)| NodeDriver::new(i, n, X0.len(), node, 0, wait))
        .collect()
}

/// Every node's parameters after every iteration, in the in-process cluster.
fn in_process(cfg: &AlgorithmConfig, n: usize) -> Vec<Vec<Vec<f64>>> {
    let nodes = build_nodes(cfg, false, n, &[], &X0).expect("nodes");
    let mut cluster = InProcessCluster::new(nodes, 1);
    (0..ITERATIONS)
        .map(|k| {
            let report = cluster.iterate(
                LR,
                &mut |i, p, out| *out = gradient(i, k, p),
                &mut |i, p| loss(i, p),
            );
            assert_eq!(report.refused, 0);
            cluster.nodes().iter().map(|node| node.params()).collect()
        })
        .collect()
}

/// Something on its way to a node: a peer's message, a computation's result, an average.
enum Delivery {
    Message(u64, GossipMessage<f64>),
    Gradient(u64, Vec<f64>),
    Losses(u64, Vec<f64>),
    Reduced(u64, ReduceKind, Vec<f64>),
}

/// Runs the drivers over a network that delays everything by 0–4 rounds at random and polls
/// the nodes in random order; returns every node's parameters after every iteration. Messages
/// from `silent` are lost; `present` tells the drivers whether it is there.
fn asynchronous(
    ds: &mut [NodeDriver<f64>],
    lr: f64,
    seed: u64,
    silent: Option<usize>,
    present: bool,
) -> Vec<Vec<Vec<f64>>> {
    let n = ds.len();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut rendezvous = RendezvousCore::new(n, X0.to_vec(), 0);
    for i in 0..n {
        rendezvous.join(i, String::new());
    }
    if let (Some(s), false) = (silent, present) {
        let mut p = vec![true; n];
        p[s] = false;
        ds.iter_mut().for_each(|d| d.set_present(&p));
    }
    ds.iter_mut().for_each(|d| d.start(lr));
    let mut snapshots: Vec<BTreeMap<u64, Vec<f64>>> = vec![BTreeMap::new(); n];
    let mut queue: Vec<(u64, usize, Delivery)> = Vec::new();
    let mut round = 0u64;
    let mut now = 0.0;
    // An absent node is not running (nobody sends to it any more): it is never polled.
    let absent = silent.filter(|_| !present);
    for (i, snaps) in snapshots.iter_mut().enumerate() {
        if Some(i) == absent {
            for k in 1..=ITERATIONS {
                snaps.insert(k, X0.to_vec());
            }
        }
    }
    while ds
        .iter()
        .enumerate()
        .any(|(i, d)| Some(i) != absent && d.iteration() < ITERATIONS)
    {
        round += 1;
        assert!(round < 100_000, "no progress");
        let mut order: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            order.swap(i, rng.random_range(0..=i));
        }
        for i in order.into_iter().filter(|&i| Some(i) != absent) {
            for action in ds[i].poll(now) {
                let at = round + rng.random_range(0..5);
                match action {
                    DriverAction::Send(o) if Some(i) != silent => {
                        queue.push((at, o.to, Delivery::Message(o.lateness, o.message)))
                    }
                    DriverAction::Send(_) | DriverAction::WaitUntil(_) => {}
                    DriverAction::GaveUp { .. } => {
                        assert!(silent.is_some(), "gave up with no silent node")
                    }
                    DriverAction::ComputeGradient { iteration, point } => queue.push((
                        at,
                        i,
                        Delivery::Gradient(iteration, gradient(i, iteration, &point)),
                    )),
                    DriverAction::ComputeLosses { iteration, points } => {
                        let l = points.iter().map(|p| loss(i, p)).collect();
                        queue.push((at, i, Delivery::Losses(iteration, l)))
                    }
                    DriverAction::Reduce {
                        iteration,
                        kind,
                        values,
                    } => {
                        for a in rendezvous
                            .on_reduce(i, iteration, kind, values)
                            .expect("part")
                        {
                            if let RendezvousAction::Reduced {
                                worker,
                                iteration,
                                kind,
                                values,
                                ..
                            } = a
                            {
                                let at = round + rng.random_range(0..5);
                                queue.push((
                                    at,
                                    worker,
                                    Delivery::Reduced(iteration, kind, values.to_vec()),
                                ));
                            }
                        }
                    }
                    DriverAction::Completed { completed, .. } => {
                        rendezvous.on_progress(i, completed).expect("progress");
                        snapshots[i].insert(completed, ds[i].node().params());
                        if completed < ITERATIONS {
                            ds[i].start(lr);
                        }
                    }
                }
            }
        }
        let (due, later): (Vec<_>, Vec<_>) = queue.into_iter().partition(|q| q.0 <= round);
        queue = later;
        let mut due = due;
        for i in (1..due.len()).rev() {
            due.swap(i, rng.random_range(0..=i));
        }
        for (_, to, delivery) in due {
            let d = &mut ds[to];
            match delivery {
                Delivery::Message(lateness, m) => d.receive(lateness, m).expect("valid message"),
                Delivery::Gradient(k, g) => d.on_gradient(k, g).expect("gradient"),
                Delivery::Losses(k, l) => d.on_losses(k, l).expect("losses"),
                Delivery::Reduced(k, kind, v) => d.on_reduced(k, kind, v).expect("average"),
            }
        }
        // A silent but present peer is waited for until the deadline, then given up on.
        if silent.is_some() && present && queue.is_empty() {
            now += 1.0;
        }
    }
    (0..ITERATIONS)
        .map(|k| (0..n).map(|i| snapshots[i][&(k + 1)].clone()).collect())
        .collect()
}

fn assert_timing_does_not_matter(cfg: &AlgorithmConfig, n: usize, what: &str) {
    let reference = in_process(cfg, n);
    for seed in 0..3 {
        let mut ds = drivers(cfg, n, &[], f64::INFINITY);
        let got = asynchronous(&mut ds, LR, seed, None, true);
        for k in 0..ITERATIONS as usize {
            assert_eq!(
                got[k],
                reference[k],
                "{what}: seed {seed}, iteration {}",
                k + 1
            );
        }
    }
}

#[test]
fn over_an_asynchronous_network_every_algorithm_gives_the_in_process_results_bit_for_bit() {
    use AlgorithmName::*;
    // OSGP is left out: its lateness is drawn at random by design, so its trajectory depends on
    // the draws (the in-process cluster draws from its seed).
    for name in [
        AllreduceSgd,
        LocalSgd,
        DoubleAveraging,
        Sgp,
        Lookahead,
        Bmuf,
    ] {
        assert_timing_does_not_matter(&config(name), 8, name.as_str());
    }
    let mut atc = config(Dpsgd);
    atc.gossip.topology = TopologyName::Bipartite;
    assert_timing_does_not_matter(&atc, 8, "dpsgd atc bipartite");
    let mut cta = config(Dpsgd);
    cta.gossip.form = DpsgdForm::Cta;
    cta.gossip.topology = TopologyName::Ring;
    assert_timing_does_not_matter(&cta, 6, "dpsgd cta ring");
    for base in [
        SlowMoBase::LocalSgd,
        SlowMoBase::Sgp,
        SlowMoBase::AllreduceSgd,
    ] {
        let mut c = config(Slowmo);
        c.slowmo.base = base;
        c.slowmo.period = 4;
        assert_timing_does_not_matter(&c, 8, &format!("slowmo over {base:?}"));
    }
    for theta in [
        Theta::Fixed(0.5),
        Theta::Named(ThetaRule::Adaptive),
        Theta::Named(ThetaRule::AdaptivePerNode),
    ] {
        let mut c = config(PcAsgd);
        c.momentum = 0.0;
        c.pc_asgd.delay = 2;
        c.pc_asgd.delayed_nodes = vec![1, 4];
        c.pc_asgd.theta = theta;
        assert_timing_does_not_matter(&c, 6, &format!("pc-asgd θ {theta:?}"));
    }
}

/// With lr 0 only mixing happens; every node starts at X0, so every de-biased vector must stay
/// X0 whatever mass went missing.
fn assert_all_at_x0(ds: &[Vec<f64>]) {
    for (i, p) in ds.iter().enumerate() {
        for (a, b) in p.iter().zip(X0) {
            assert!((a - b).abs() < 1e-12, "node {i}: {a} vs {b}");
        }
    }
}

#[test]
fn an_absent_push_sum_sender_is_given_up_on_at_once_and_the_others_stay_a_convex_combination() {
    let n = 8;
    let mut ds = drivers(&config(AlgorithmName::Sgp), n, &[], f64::INFINITY);
    let got = asynchronous(&mut ds, 0.0, 5, Some(3), false);
    assert_all_at_x0(&got[got.len() - 1]);
    // The others keep what they would have sent it: their mass is exactly theirs.
    let total_weight: f64 = (0..n)
        .filter(|&i| i != 3)
        .map(|i| ds[i].node().weight())
        .sum();
    assert!(
        (total_weight - (n - 1) as f64).abs() < 1e-9,
        "mass was lost: {total_weight}"
    );
    let kept: u64 = ds.iter().map(|d| d.counts().kept_for_absent).sum();
    assert!(kept >= ITERATIONS, "{kept}");
    let gave_up: u64 = ds.iter().map(|d| d.counts().given_up).sum();
    assert!(gave_up >= ITERATIONS, "{gave_up}");
}

#[test]
fn an_absent_dpsgd_neighbour_leaves_the_rows_stochastic() {
    // D-PSGD sends copies: nothing is taken back for the absent neighbour, and the self-loop
    // stands in for its missing message once, so the nodes stay at the common point.
    let mut cfg = config(AlgorithmName::Dpsgd);
    cfg.gossip.topology = TopologyName::Ring;
    let mut ds = drivers(&cfg, 6, &[], f64::INFINITY);
    let got = asynchronous(&mut ds, 0.0, 4, Some(2), false);
    assert_all_at_x0(&got[got.len() - 1]);
}

#[test]
fn a_present_but_silent_peer_is_waited_for_until_the_deadline_then_counted_absent() {
    let mut cfg = config(AlgorithmName::Dpsgd);
    cfg.gossip.topology = TopologyName::Ring;
    let mut ds = drivers(&cfg, 6, &[], 2.5);
    let got = asynchronous(&mut ds, 0.0, 9, Some(2), true);
    // D-PSGD: the self-loop stands in for the absent neighbour, so consensus is kept.
    assert_all_at_x0(&got[got.len() - 1]);
    // Its two ring neighbours gave up on it every iteration (a neighbour held up behind it may
    // miss a deadline too: waits are bounded, not exact).
    let on_silent: u64 = [1, 3].iter().map(|&i| ds[i].counts().given_up).sum();
    assert!(on_silent >= 2 * ITERATIONS, "{on_silent}");
}

#[test]
fn a_wait_ends_at_its_deadline_and_not_before() {
    let mut cfg = config(AlgorithmName::Dpsgd);
    cfg.gossip.topology = TopologyName::Ring;
    let mut ds = drivers(&cfg, 4, &[], 2.5);
    ds[0].start(0.0);
    let actions = ds[0].poll(10.0);
    let Some(DriverAction::ComputeGradient {
        iteration: 0,
        point,
    }) = actions.last().cloned()
    else {
        panic!("{actions:?}");
    };
    ds[0]
        .on_gradient(0, vec![0.0; point.len()])
        .expect("gradient");
    let actions = ds[0].poll(10.0);
    assert_eq!(
        actions.last(),
        Some(&DriverAction::WaitUntil(12.5)),
        "{actions:?}"
    );
    assert!(ds[0]
        .poll(12.4)
        .iter()
        .all(|a| matches!(a, DriverAction::WaitUntil(_))));
    let actions = ds[0].poll(12.5);
    assert!(
        actions.contains(&DriverAction::GaveUp {
            iteration: 0,
            senders: vec![1, 3]
        }),
        "{actions:?}"
    );
    assert!(matches!(
        actions.last(),
        Some(DriverAction::Completed { completed: 1, .. })
    ));
    assert!(ds[0].is_idle());
}

#[test]
fn a_late_push_sum_message_is_absorbed_and_restores_the_mass() {
    let n = 4;
    let mut ds = drivers(&config(AlgorithmName::Sgp), n, &[], 1.0);
    let mut held = Vec::new();
    let mut sends = Vec::new();
    for d in ds.iter_mut() {
        d.start(0.0);
        for a in d.poll(0.0) {
            if let DriverAction::ComputeGradient { iteration, .. } = a {
                d.on_gradient(iteration, vec![0.0; 4]).expect("gradient");
            }
        }
    }
    for (i, d) in ds.iter_mut().enumerate() {
        for a in d.poll(0.0) {
            if let DriverAction::Send(o) = a {
                if i == 1 {
                    held.push(o)
                } else {
                    sends.push(o)
                }
            }
        }
    }
    for o in sends {
        ds[o.to].receive(o.lateness, o.message).expect("valid");
    }
    // Iteration 0 ends without node 1's message: its receiver waits a second, then gives up.
    for d in ds.iter_mut() {
        d.poll(0.0);
        d.poll(1.0);
        assert!(d.is_idle());
    }
    let w: f64 = ds.iter().map(|d| d.node().weight()).sum();
    assert!(w < n as f64);
    for o in held {
        ds[o.to].receive(o.lateness, o.message).expect("valid");
    }
    for d in ds.iter_mut() {
        d.start(0.0);
        d.poll(1.0);
    }
    let w: f64 = ds.iter().map(|d| d.node().weight()).sum();
    assert!((w - n as f64).abs() < 1e-12, "{w}");
    let late: u64 = ds.iter().map(|d| d.counts().absorbed_late).sum();
    assert_eq!(late, 1);
}

#[test]
fn inputs_at_the_wrong_time_or_of_the_wrong_size_are_refused_and_change_nothing() {
    let mut ds = drivers(&config(AlgorithmName::LocalSgd), 2, &[], 1.0);
    let d = &mut ds[0];
    assert!(matches!(
        d.on_gradient(0, vec![0.0; 4]),
        Err(InputError::Unexpected {
            what: "a gradient",
            ..
        })
    ));
    d.start(0.1);
    d.poll(0.0);
    assert!(matches!(
        d.on_gradient(0, vec![0.0; 3]),
        Err(InputError::WrongSize {
            got: 3,
            want: 4,
            ..
        })
    ));
    assert!(matches!(
        d.on_gradient(7, vec![0.0; 4]),
        Err(InputError::Unexpected { .. })
    ));
    assert!(matches!(
        d.on_reduced(0, ReduceKind::Params, vec![0.0; 4]),
        Err(InputError::Unexpected { .. })
    ));
    assert_eq!(d.node().params(), X0.to_vec());
    d.on_gradient(0, vec![1.0; 4])
        .expect("the right gradient is taken");
    assert!(!d.poll(0.0).is_empty());
}

#[test]
fn bad_messages_are_refused_with_what_is_wrong() {
    let mut ds = drivers(&config(AlgorithmName::Sgp), 4, &[], 1.0);
    let msg = |from: usize, x: Vec<f64>, iteration: u64| lagom::decen::GossipMessage {
        from,
        iteration,
        x,
        weight: 0.5,
    };
    // The node that sends to node 0 at iteration 0 (exponential graph: node 3).
    let peer = ds[0].node().incoming(0)[0].from;
    assert_eq!(
        ds[0].receive(0, msg(0, X0.to_vec(), 0)),
        Err(ReceiveError::NotAPeer { from: 0, to: 0 })
    );
    assert_eq!(
        ds[0].receive(0, msg(9, X0.to_vec(), 0)),
        Err(ReceiveError::NotAPeer { from: 9, to: 0 })
    );
    assert!(matches!(
        ds[0].receive(0, msg(peer, vec![1.0; 3], 0)),
        Err(ReceiveError::WrongSize {
            got: 3,
            want: 4,
            ..
        })
    ));
    assert!(matches!(
        ds[0].receive(0, msg(peer, vec![f64::NAN, 0.0, 0.0, 0.0], 0)),
        Err(ReceiveError::NotFinite { .. })
    ));
    assert!(matches!(
        ds[0].receive(0, msg(peer, X0.to_vec(), 1 << 20)),
        Err(ReceiveError::TooFarAhead { .. })
    ));
    let err = ds[0]
        .receive(0, msg(peer, vec![1.0; 3], 0))
        .unwrap_err()
        .to_string();
    assert!(err.contains(&format!("3 values from node {peer}")), "{err}");
    // Nothing refused reached the node.
    assert_eq!(ds[0].node().params(), X0.to_vec());
}

#[test]
fn a_peer_racing_ahead_fills_the_mailbox_only_up_to_its_look_ahead_window() {
    let mut ds = drivers(&config(AlgorithmName::Sgp), 2, &[], 1.0);
    let msg = |iteration: u64| GossipMessage {
        from: 1,
        iteration,
        x: X0.to_vec(),
        weight: 0.5,
    };
    // Two nodes, no lateness: the window is 2 · 1 iterations plus the slack.
    let window = look_ahead(2, 0, 0);
    assert_eq!(window, 2 + LOOK_AHEAD_SLACK);
    for it in 1..=window {
        ds[0].receive(0, msg(it)).expect("within the window");
    }
    assert!(matches!(
        ds[0].receive(0, msg(window + 1)),
        Err(ReceiveError::TooFarAhead { .. })
    ));
    // A copy of a message already waiting is not a new one.
    ds[0].receive(0, msg(1)).expect("a duplicate is taken");
    let (_, waiting_weight) = ds[0].waiting_mass();
    assert_eq!(waiting_weight, 0.5 * window as f64);
    assert!(window < MAX_WAITING as u64);
}

#[test]
fn only_the_topologys_in_peers_of_an_iteration_may_send_for_it() {
    // A ring of 4: node 0 hears from its two neighbours, never from node 2.
    let mut cfg = config(AlgorithmName::Sgp);
    cfg.gossip.topology = TopologyName::Ring;
    let mut ds = drivers(&cfg, 4, &[], 1.0);
    let msg = |from: usize| GossipMessage {
        from,
        iteration: 1,
        x: X0.to_vec(),
        weight: 0.5,
    };
    let heard: Vec<usize> = ds[0].node().incoming(1).iter().map(|i| i.from).collect();
    for from in 1..4 {
        let result = ds[0].receive(0, msg(from));
        if heard.contains(&from) {
            result.expect("an in-peer");
        } else {
            assert_eq!(
                result,
                Err(ReceiveError::NotAnInPeer {
                    from,
                    to: 0,
                    iteration: 1
                })
            );
        }
    }
    assert!(
        heard.len() < 3,
        "the ring has fewer in-peers than nodes: {heard:?}"
    );
}

/// Runs SGP drivers in lockstep for `iterations` with node `paused` frozen (never polled; what
/// is sent to it is lost, as to a SIGSTOPped process) and, from `noticed_at` on, known absent to
/// the others. Returns, per iteration, the total push-sum weight of the other nodes and the
/// smallest of their weights.
fn paused_node_run(n: usize, paused: usize, iterations: u64, noticed_at: u64) -> Vec<(f64, f64)> {
    let mut ds = drivers(&config(AlgorithmName::Sgp), n, &[], 0.5);
    let mut now = 0.0;
    let mut weights = Vec::new();
    let others: Vec<usize> = (0..n).filter(|&i| i != paused).collect();
    for &i in &others {
        ds[i].start(0.0);
    }
    for k in 0..iterations {
        if k == noticed_at {
            let mut p = vec![true; n];
            p[paused] = false;
            for &i in &others {
                ds[i].set_present(&p);
            }
        }
        let mut done = vec![false; n];
        let mut rounds = 0;
        while others.iter().any(|&i| !done[i]) {
            rounds += 1;
            assert!(rounds < 1000, "iteration {k} makes no progress");
            let mut mail = Vec::new();
            for &i in &others {
                for action in ds[i].poll(now) {
                    match action {
                        DriverAction::Send(o) if o.to != paused => mail.push(o),
                        DriverAction::ComputeGradient { iteration, point } => ds[i]
                            .on_gradient(iteration, vec![0.0; point.len()])
                            .expect("gradient"),
                        DriverAction::ComputeLosses { iteration, points } => ds[i]
                            .on_losses(iteration, vec![0.0; points.len()])
                            .expect("losses"),
                        DriverAction::Completed { .. } => done[i] = true,
                        _ => {}
                    }
                }
            }
            for o in mail {
                ds[o.to].receive(o.lateness, o.message).expect("valid");
            }
            now += 0.25;
        }
        let w: Vec<f64> = others.iter().map(|&i| ds[i].node().weight()).collect();
        weights.push((
            w.iter().sum(),
            w.iter().copied().fold(f64::INFINITY, f64::min),
        ));
        for &i in &others {
            for p in ds[i].node().params() {
                assert!(p.is_finite(), "iteration {k}: node {i} is not finite");
            }
            assert_all_at_x0(&[ds[i].node().params()]);
            ds[i].start(0.0);
        }
    }
    weights
}

#[test]
fn a_paused_push_sum_node_costs_no_mass_once_noticed_and_never_makes_weights_underflow() {
    // Noticed after 50 iterations: until then mass sent to it is lost; from then on the others
    // keep what they would have sent it, so their total weight stays where it was.
    let w = paused_node_run(8, 3, 400, 50);
    let at_notice = w[50].0;
    assert!(
        at_notice < 6.9,
        "mass sent to the paused node is lost: {at_notice}"
    );
    for (k, (total, _)) in w.iter().enumerate().skip(51) {
        assert!(
            (total - at_notice).abs() < 1e-9 * at_notice,
            "iteration {k}: total weight {total}, {at_notice} when the absence was noticed"
        );
    }
    // Never noticed (a stall shorter than the heartbeat timeout, at many iterations a second):
    // the weights shrink geometrically, and are scaled back up (by 2^64, exactly) before they
    // could underflow; the parameters above stayed finite and exact.
    let w = paused_node_run(8, 3, 3000, u64::MAX);
    let smallest = w.iter().map(|x| x.1).fold(f64::INFINITY, f64::min);
    // Without the rescaling the smallest would be ~1e-84 by now (f32 underflows near 1e-38).
    assert!(smallest > 1e-25 && smallest.is_finite(), "{smallest}");
    let first = w[0].0;
    let decayed = w.iter().any(|x| x.0 < first * 1e-6);
    assert!(
        decayed,
        "the lost mass makes the weights shrink: {:?}",
        &w[..5]
    );
}
