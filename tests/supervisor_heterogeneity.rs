//! Heterogeneity injected by the supervisor's workers (the `delay` mechanism), seen in the
//! server's summary: with `slow_fraction = 0.25, slowdown = 4` the slow worker delivers about a
//! quarter of a fast worker's gradients at several times their staleness; the synchronous
//! scheduler's wall time grows with the slowdown, the asynchronous one's hardly does.

use std::time::Duration;

mod cli_support;
use cli_support::{stderr, wait_for, TestCluster};

/// Seconds from the moment the last worker joined to the end of the run (start-up excluded),
/// from the server's `metrics.jsonl`.
fn training_s(run: &std::path::Path) -> f64 {
    let text = std::fs::read_to_string(run.join("metrics.jsonl")).expect("metrics");
    let events: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json"))
        .collect();
    let at = |kind: &str| {
        events
            .iter()
            .filter(|e| e["event"] == kind)
            .filter_map(|e| e["t_s"].as_f64())
            .fold(f64::NAN, f64::max)
    };
    at("end") - at("join")
}

/// Runs a server and a supervisor with 4 workers on synthetic data; returns the summary and the
/// training time.
fn run(algorithm: &str, updates: u64, slowdown: f64) -> (serde_json::Value, f64) {
    let updates = format!("server.updates={updates}");
    let slowdown = format!("heterogeneity.slowdown={slowdown}");
    let cluster = TestCluster::with(
        4,
        "synthetic",
        algorithm,
        &[
            "--lr",
            "0.01",
            "--set",
            "train.batch_size=4096",
            "--set",
            &updates,
            "--set",
            "server.eval_every=0",
            "--set",
            "heterogeneity.slow_fraction=0.25",
            "--set",
            &slowdown,
            "--set",
            "compute.threads=1",
        ],
    );
    let server = cluster.spawn_server(&[]);
    let supervisor = cluster.spawn_supervisor(&[]);
    let out = wait_for(server, Duration::from_secs(600), "the server");
    assert!(out.status.success(), "{}", stderr(&out));
    let out = wait_for(supervisor, Duration::from_secs(60), "the supervisor");
    assert!(out.status.success(), "{}", stderr(&out));
    (cluster.summary(), training_s(cluster.run_dir()))
}

/// (gradients, mean staleness, configured speed) per worker.
fn per_worker(s: &serde_json::Value) -> Vec<(f64, f64, f64)> {
    s["per_worker"]
        .as_array()
        .expect("per_worker")
        .iter()
        .map(|w| {
            (
                w["gradients"].as_f64().unwrap_or(0.0),
                w["mean_staleness"].as_f64().unwrap_or(0.0),
                w["speed"].as_f64().unwrap_or(1.0),
            )
        })
        .collect()
}

#[test]
fn a_slow_worker_contributes_a_quarter_with_more_staleness_and_only_sync_waits_for_it() {
    let (async_slow, async_slow_s) = run("ormo", 300, 4.0);
    let workers = per_worker(&async_slow);
    let slow: Vec<_> = workers.iter().filter(|w| w.2 < 1.0).collect();
    let fast: Vec<_> = workers.iter().filter(|w| w.2 == 1.0).collect();
    assert_eq!((slow.len(), fast.len()), (1, 3), "{async_slow}");
    let fast_gradients = fast.iter().map(|w| w.0).sum::<f64>() / 3.0;
    let fast_staleness = fast.iter().map(|w| w.1).sum::<f64>() / 3.0;
    let share = slow[0].0 / fast_gradients;
    let staleness_ratio = slow[0].1 / fast_staleness;

    let async_even_s = run("ormo", 300, 1.0).1;
    let sync_slow_s = run("ssgd", 120, 4.0).1;
    let sync_even_s = run("ssgd", 120, 1.0).1;
    let async_growth = async_slow_s / async_even_s;
    let sync_growth = sync_slow_s / sync_even_s;
    eprintln!(
        "slow worker: {share:.2} of a fast worker's gradients, staleness {:.1} vs {fast_staleness:.1} \
         ({staleness_ratio:.1}x); wall time with the slow worker: async {async_growth:.2}x, sync \
         {sync_growth:.2}x",
        slow[0].1
    );
    // A 4x slower worker delivers a quarter as many gradients. The run is short (about 20 slow
    // steps, so ±1/√20 ≈ ±22 % from counting alone) and five processes share two cores: ±50 %.
    // The simulator's test holds the model itself to ±8 %. Measured: 0.17–0.31.
    assert!((0.125..=0.375).contains(&share), "share {share}");
    assert!(staleness_ratio >= 2.5, "staleness ratio {staleness_ratio}");
    // Ideally 4x; on two cores the homogeneous rounds are slowed by four workers competing for
    // them while the slow worker's sleep is not, and each round has a fixed network cost. The
    // batch (4096) keeps compute well above that cost: at 1024 the faster mlp step of issue 7
    // left 1.8–2.0x. Measured at 4096: 2.7–3.2x (the simulator: 3.5–4.5x).
    assert!(
        sync_growth >= 1.8,
        "sync wall time grew only {sync_growth}x"
    );
    assert!(async_growth <= 1.5, "async wall time grew {async_growth}x");
    assert!(sync_growth >= async_growth + 1.0);
}
