//! Decentralized runs with real processes on loopback: four workers gossip with each other over
//! QUIC with mutual TLS, the server is their rendezvous. SGP, D-PSGD, SlowMo over Local SGD and
//! PC-ASGD each train the `mlp` on Fashion-MNIST to ≥ 80 %, and the bytes each node sends per
//! iteration are what the algorithm says; a killed worker is waited for, counted absent, restarted
//! and rejoins while the others go on.

use std::path::Path;

mod cli_support;
use cli_support::{fashion_mnist_present, lagom, stderr, summary};

/// Parameters of the `mlp` on Fashion-MNIST (784·256 + 256 + 256·10 + 10).
const D: f64 = 203_530.0;
/// Header bytes of a tensor frame (length, version, MessagePack fields): well under this.
const HEADER: f64 = 256.0;

fn run_local(dir: &Path, algorithm: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec![
        "--role",
        "local",
        "--run-dir",
        dir.to_str().expect("utf-8"),
        "--algorithm",
        algorithm,
        "--workers",
        "4",
        "--set",
        "model.name=\"mlp\"",
        "--set",
        "server.eval_every=100",
    ];
    args.extend_from_slice(extra);
    let out = lagom(&args, &[("RAYON_NUM_THREADS", "1")]);
    assert!(out.status.success(), "{algorithm}: {}", stderr(&out));
    summary(dir)
}

fn number(s: &serde_json::Value, key: &str) -> f64 {
    s[key].as_f64().unwrap_or_else(|| panic!("{key} in {s}"))
}

/// Checks what every decentralized run's summary says; returns (accuracy, bytes sent per node
/// and iteration).
fn check(s: &serde_json::Value, algorithm: &str, iterations: u64) -> (f64, f64) {
    assert_eq!(s["kind"], "server");
    assert_eq!(s["scheduler"], "decentralized");
    assert_eq!(s["algorithm"], algorithm);
    assert_eq!(s["updates"], iterations);
    assert_eq!(number(s, "params"), D, "the mlp's size changed: update D");
    for w in s["per_worker"].as_array().expect("per_worker") {
        assert_eq!(w["gradients"], iterations, "{algorithm}: {w}");
    }
    let acc = number(s, "final_test_accuracy");
    let sent = number(s, "bytes_sent_per_node_iteration");
    let received = number(s, "bytes_received_per_node_iteration");
    eprintln!(
        "{algorithm}: {:.2} %, {sent:.0} bytes sent and {received:.0} received per node and \
         iteration, {:.1} ms per iteration, consensus distance {:.3e}",
        100.0 * acc,
        1e3 * number(s, "iteration_s"),
        number(s, "consensus_distance")
    );
    assert!(acc >= 0.80, "{algorithm}: test accuracy {acc}");
    (acc, sent)
}

fn assert_between(what: &str, v: f64, lo: f64, hi: f64) {
    assert!(lo <= v && v <= hi, "{what}: {v} not in [{lo}, {hi}]");
}

#[test]
fn sgp_on_the_exponential_graph_sends_one_model_per_iteration_and_learns() {
    if !fashion_mnist_present("decentralized SGP") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let s = run_local(
        dir.path(),
        "sgp",
        &["--lr", "0.05", "--set", "server.updates=300"],
    );
    let (_, sent) = check(&s, "sgp", 300);
    // One peer per iteration on the one-peer exponential graph.
    assert_between("sgp bytes", sent, 4.0 * D, 4.0 * D + HEADER);
    assert_eq!(s["messages_given_up"], 0);
    assert_eq!(s["exact_averages"], 0);
}

#[test]
fn dpsgd_on_a_ring_sends_two_models_per_iteration_and_learns() {
    if !fashion_mnist_present("decentralized D-PSGD") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let s = run_local(
        dir.path(),
        "dpsgd",
        &[
            "--lr",
            "0.05",
            "--set",
            "server.updates=300",
            "--set",
            "algorithm.gossip.topology=\"ring\"",
        ],
    );
    let (_, sent) = check(&s, "dpsgd", 300);
    assert_between("dpsgd bytes", sent, 8.0 * D, 8.0 * D + 2.0 * HEADER);
}

#[test]
fn slowmo_over_local_sgd_averages_every_twelve_iterations_and_learns() {
    if !fashion_mnist_present("decentralized SlowMo") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let s = run_local(
        dir.path(),
        "slowmo",
        &[
            "--lr",
            "0.05",
            "--set",
            "server.updates=300",
            "--set",
            "algorithm.slowmo.base=\"local-sgd\"",
            "--set",
            "algorithm.slowmo.period=12",
            "--set",
            "algorithm.local_sgd.period=12",
            "--set",
            "algorithm.slowmo.beta=0.5",
        ],
    );
    let (_, sent) = check(&s, "slowmo", 300);
    // One exact average of the parameters every 12 iterations, through the rendezvous.
    assert_between(
        "slowmo bytes",
        sent,
        4.0 * D / 12.0,
        (4.0 * D + HEADER) / 12.0,
    );
    assert_eq!(s["exact_averages"], 25);
    // The run ends on a slow step: every node holds the same parameters.
    assert_eq!(number(&s, "consensus_distance"), 0.0);
}

#[test]
fn pc_asgd_with_a_delayed_node_learns() {
    if !fashion_mnist_present("decentralized PC-ASGD") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let s = run_local(
        dir.path(),
        "pc-asgd",
        &[
            "--lr",
            "0.1",
            "--set",
            "algorithm.momentum=0.0",
            "--set",
            "server.updates=400",
            "--set",
            "algorithm.pc_asgd.delayed_nodes=[3]",
            "--set",
            "algorithm.pc_asgd.delay=2",
            "--set",
            "algorithm.pc_asgd.theta=\"adaptive\"",
        ],
    );
    let (_, sent) = check(&s, "pc-asgd", 400);
    // Two models to the ring neighbours, plus the two losses averaged for θ_k.
    assert_between(
        "pc-asgd bytes",
        sent,
        8.0 * D + 8.0,
        8.0 * D + 3.0 * HEADER + 8.0,
    );
    let theta = number(&s, "theta_mean");
    assert!((0.0..=1.0).contains(&theta), "θ mean {theta}");
}
