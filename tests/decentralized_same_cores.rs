//! The simulator's cores are the network's: one configuration runs as four worker processes
//! gossiping over loopback QUIC (heterogeneous speeds, so messages arrive in any order) and as an
//! in-process cluster of the same node drivers and rendezvous core, each node computing with the
//! very compute a worker process uses (`node::worker_compute`: same model, shard, sampler). At
//! every iteration the rendezvous' record — the consensus distance of the four nodes' parameters
//! and their mean training loss — is bit-identical to the in-process one, and so is the final
//! mean model in the checkpoint.

use std::cell::RefCell;
use std::path::Path;

use candle_core::Device;
use lagom::config::{load, CliOverrides, Config};
use lagom::decen::{build_nodes, InProcessCluster};
use lagom::model::{InputSpec, Network};
use lagom::node::{load_split, worker_compute, DecenCheckpoint, WorkerShard};

mod cli_support;
use cli_support::{fashion_mnist_present, lagom, stderr};

const WORKERS: usize = 4;
const ITERATIONS: u64 = 12;

/// The keys both runs set on top of the configuration file.
fn overrides() -> Vec<String> {
    vec![
        "model.name=\"mlp\"".to_string(),
        format!("server.updates={ITERATIONS}"),
        "server.eval_every=1".to_string(),
        // Nobody is given up on: the comparison needs every message.
        "net.peer_wait_s=60.0".to_string(),
    ]
}

fn config(config_file: &str) -> Config {
    let cli = CliOverrides {
        config: Some(Path::new(env!("CARGO_MANIFEST_DIR")).join(config_file)),
        workers: Some(WORKERS),
        set: overrides(),
        ..CliOverrides::default()
    };
    load(&cli).expect("the configuration loads").0
}

/// The number after `"key":` in a JSON line, parsed with Rust's correctly rounded parser
/// (serde_json's default float parsing may be one unit in the last place off).
fn raw_number(line: &str, key: &str) -> f64 {
    let tag = format!("\"{key}\":");
    let at = line.find(&tag).unwrap_or_else(|| panic!("{key} in {line}")) + tag.len();
    let text: String = line[at..]
        .chars()
        .take_while(|c| !matches!(c, ',' | '}'))
        .collect();
    text.trim()
        .parse()
        .unwrap_or_else(|e| panic!("{key} = {text}: {e}"))
}

/// (consensus distance, mean training loss) after each iteration, read from a network run.
fn network_record(dir: &Path) -> Vec<(f64, f64)> {
    let text = std::fs::read_to_string(dir.join("metrics.jsonl")).expect("metrics");
    let mut rows: Vec<(u64, f64, f64)> = text
        .lines()
        .filter(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("a JSON line")["event"] == "eval"
        })
        .map(|l| {
            (
                raw_number(l, "updates") as u64,
                raw_number(l, "consensus_distance"),
                raw_number(l, "train_loss"),
            )
        })
        .collect();
    rows.sort_by_key(|r| r.0);
    let iterations: Vec<u64> = rows.iter().map(|r| r.0).collect();
    assert_eq!(iterations, (1..=ITERATIONS).collect::<Vec<_>>());
    rows.into_iter().map(|r| (r.1, r.2)).collect()
}

/// The same run in one process; returns its record, final mean model and the layout hash.
fn in_process_record(config: &Config) -> (Vec<(f64, f64)>, Vec<f32>, u64) {
    let device = Device::Cpu;
    let split = load_split(config).expect("data");
    let train = &split.train;
    let input = InputSpec {
        channels: train.channels,
        height: train.height,
        width: train.width,
        classes: train.classes,
    };
    let seed = config.run.seed;
    let net = Network::with_kernels(
        config.model.name,
        input,
        &device,
        seed,
        config.compute.cpu_kernels,
    )
    .expect("model");
    let x0 = net.layout().flatten().expect("parameters");
    let layout_hash = net.layout().hash();
    // Both oracles use the nodes' computes, one call at a time.
    let computes: RefCell<Vec<_>> = RefCell::new(
        (0..WORKERS)
            .map(|w| {
                worker_compute(
                    config,
                    WorkerShard::cut(config, train, w).expect("shard"),
                    w,
                    &device,
                )
                .expect("compute")
                .0
            })
            .collect(),
    );
    let speeds = config.heterogeneity.speeds(WORKERS, seed);
    let slow: Vec<usize> = (0..WORKERS).filter(|&i| speeds[i] < 1.0).collect();
    let nodes = build_nodes::<f32>(
        &config.algorithm,
        config.train.nesterov,
        WORKERS,
        &slow,
        &x0,
    )
    .expect("nodes");
    let mut cluster = InProcessCluster::new(nodes, seed);
    let lr = config.algorithm.lr_schedule();
    let mut record = Vec::new();
    for k in 0..ITERATIONS {
        let mut losses = [0.0f64; WORKERS];
        let report = cluster.iterate(
            lr.at(k),
            &mut |i, point, out| {
                let g = computes.borrow_mut()[i]
                    .gradient(point, 0.0)
                    .expect("gradient");
                losses[i] = f64::from(g.loss);
                *out = g.grad;
            },
            &mut |i, point| {
                computes.borrow_mut()[i]
                    .loss(point)
                    .unwrap_or(f64::INFINITY)
            },
        );
        assert_eq!(report.refused, 0);
        // The rendezvous' mean of the nodes' window losses, in slot order.
        let loss = losses.iter().sum::<f64>() / WORKERS as f64;
        record.push((cluster.consensus_distance(), loss));
    }
    (record, cluster.mean_params(), layout_hash)
}

fn same_in_both(config_file: &str, algorithm: &str) {
    if !fashion_mnist_present(&format!("same cores, {algorithm}")) {
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let run_dir = dir.path().to_str().expect("utf-8").to_string();
    let sets = overrides();
    let workers = WORKERS.to_string();
    let mut args: Vec<&str> = vec![
        "--role",
        "local",
        "--config",
        config_file,
        "--run-dir",
        &run_dir,
        "--workers",
        &workers,
    ];
    for s in &sets {
        args.extend(["--set", s]);
    }
    let out = lagom(&args, &[("RAYON_NUM_THREADS", "1")]);
    assert!(out.status.success(), "{algorithm}: {}", stderr(&out));
    let network = network_record(dir.path());

    let config = config(config_file);
    let (in_process, mean, layout_hash) = in_process_record(&config);
    for (k, (n, p)) in network.iter().zip(&in_process).enumerate() {
        assert_eq!(
            n,
            p,
            "{algorithm}: iteration {}: (consensus distance, train loss) over the network vs in \
             process",
            k + 1
        );
    }
    let cp =
        DecenCheckpoint::load(dir.path(), layout_hash, mean.len(), algorithm).expect("checkpoint");
    assert_eq!(cp.iteration, ITERATIONS);
    assert!(
        cp.params == mean,
        "{algorithm}: the final mean model differs"
    );
    eprintln!(
        "{algorithm}: {ITERATIONS} iterations identical; consensus distance {:.4e}, train loss {:.4}",
        network[network.len() - 1].0,
        network[network.len() - 1].1
    );
}

#[test]
fn sgp_over_quic_is_the_in_process_cluster_bit_for_bit() {
    same_in_both("config/decen/sgp.toml", "sgp");
}

#[test]
fn local_sgd_with_exact_averages_over_quic_is_the_in_process_cluster_bit_for_bit() {
    same_in_both("config/decen/local-sgd.toml", "local-sgd");
}
