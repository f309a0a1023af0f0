//! The synchronous scheduler over a real network: SSGD with two workers equals single-process
//! big-batch SGD, and a round does not wait for a worker that died.

use std::time::{Duration, Instant};

use candle_core::Device;
use lagom::compute::Engine;
use lagom::data::{self, DatasetName, Sampler, Sharding};
use lagom::model::{InputSpec, ModelName, Network};
use lagom::node::Checkpoint;
use rand_chacha::ChaCha8Rng;

mod cli_support;
use cli_support::{lagom, stderr, TestCluster};

#[test]
fn ssgd_with_two_workers_equals_big_batch_sgd() {
    let (rounds, k, lr, batch, seed) = (15u64, 2usize, 0.05f32, 32usize, 3u64);
    let dir = tempfile::tempdir().expect("tempdir");
    let out = lagom(
        &[
            "--role",
            "local",
            "--run-dir",
            dir.path().to_str().expect("utf-8"),
            "--algorithm",
            "ssgd",
            "--workers",
            "2",
            "--lr",
            "0.05",
            "--seed",
            "3",
            "--set",
            "algorithm.weight_decay=0",
            "--set",
            "data.name=\"synthetic\"",
            "--set",
            "model.name=\"mlp\"",
            "--set",
            "train.batch_size=32",
            "--set",
            &format!("server.updates={}", rounds * k as u64),
            "--set",
            "server.eval_every=0",
        ],
        &[("RAYON_NUM_THREADS", "1")],
    );
    assert!(out.status.success(), "{}", stderr(&out));

    // The same computation in one process: each round, the sum of both workers' gradients at
    // the same parameters, applied with the per-gradient rate (big-batch SGD with lr Kη).
    let split = data::load(DatasetName::Synthetic, None, seed).expect("data");
    let input = InputSpec {
        channels: split.train.channels,
        height: split.train.height,
        width: split.train.width,
        classes: split.train.classes,
    };
    let net = Network::new(ModelName::Mlp, input, &Device::Cpu, seed).expect("net");
    let hash = net.layout().hash();
    let engine = Engine::new(net);
    let mut w = engine.params().expect("params");
    let mut samplers: Vec<Sampler> = (0..k)
        .map(|i| Sampler::new(split.train.len(), i, k, Sharding::Disjoint, seed))
        .collect();
    for _ in 0..rounds {
        let mut sum = vec![0.0f32; w.len()];
        for sampler in samplers.iter_mut() {
            engine.set_params(&w).expect("set");
            let b = split
                .train
                .batch(&sampler.next_batch(batch), None::<&mut ChaCha8Rng>)
                .expect("batch");
            let g = engine.gradient(&b).expect("gradient").grad;
            for (s, x) in sum.iter_mut().zip(&g) {
                *s += x;
            }
        }
        for (wi, s) in w.iter_mut().zip(&sum) {
            *wi -= lr * s;
        }
    }

    let cp = Checkpoint::load(dir.path(), hash, "ssgd").expect("final checkpoint");
    assert_eq!(cp.core.t, rounds * k as u64);
    let server_w = cp.core.algorithm.vector("w", w.len()).expect("w");
    let worst = server_w
        .iter()
        .zip(&w)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    let moved = server_w
        .iter()
        .zip(engine.params().expect("p").iter())
        .any(|(a, b)| a != b);
    assert!(moved, "training moved the parameters");
    // The two gradients of a round reach the server in either order: f32 rounding differs.
    assert!(worst < 1e-5, "largest difference {worst}");
}

#[test]
fn a_synchronous_round_goes_on_without_a_worker_that_died() {
    let cluster = TestCluster::new(
        "ssgd",
        &[
            "--set",
            "net.keep_alive_s=0.3",
            "--set",
            "net.idle_timeout_s=1.5",
        ],
    );
    let mut server = cluster.spawn_server(&[
        "--set",
        "server.updates=3000",
        "--set",
        "server.eval_every=0",
    ]);
    let worker = |w: usize| cluster.spawn_worker(w, &[]);
    let mut w0 = worker(0);
    let mut w1 = worker(1);
    // Let a few rounds run, then kill worker 1 without warning.
    let metrics = cluster.run_dir().join("metrics.jsonl");
    let started = Instant::now();
    while !std::fs::read_to_string(&metrics).is_ok_and(|m| m.contains("\"event\":\"progress\"")) {
        assert!(started.elapsed() < Duration::from_secs(60), "no progress");
        std::thread::sleep(Duration::from_millis(20));
    }
    w1.kill().expect("SIGKILL");
    let _ = w1.wait();
    let limit = Instant::now() + Duration::from_secs(90);
    while server.try_wait().expect("poll").is_none() {
        if Instant::now() > limit {
            let _ = server.kill();
            let _ = w0.kill();
            panic!("the synchronous run hung on a dead worker");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let server = server.wait_with_output().expect("server");
    assert!(server.status.success(), "{}", stderr(&server));
    let _ = w0.wait();
    let s = cluster.summary();
    assert_eq!(s["updates"], 3000);
    let text = std::fs::read_to_string(&metrics).expect("metrics");
    assert!(
        text.contains("\"event\":\"leave\""),
        "the dead worker was declared gone"
    );
    let per_worker = s["per_worker"].as_array().expect("per_worker");
    assert!(
        per_worker[0]["gradients"].as_u64() > per_worker[1]["gradients"].as_u64(),
        "the survivor carried the run: {s}"
    );
}
