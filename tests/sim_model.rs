//! `sim.objective = "model"`: the simulator drives real forward/backward passes of a model on a
//! data set. Same configuration and seed, same bytes; and where the math allows, the simulator
//! computes what a real cluster computes (SSGD with 2 workers: the same updates and the same
//! evaluated model).

mod cli_support;
use cli_support::{events, lagom, local_mlp_args, stderr, summary};

/// `lagom sim` of the `mlp` on the synthetic set into `dir`, with `extra` settings.
fn sim(dir: &std::path::Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "sim",
        "--run-dir",
        dir.to_str().expect("utf-8"),
        "--set",
        "sim.objective=\"model\"",
        "--set",
        "data.name=\"synthetic\"",
        "--set",
        "model.name=\"mlp\"",
    ];
    args.extend_from_slice(extra);
    lagom(&args, &[("RAYON_NUM_THREADS", "1")])
}

#[test]
fn a_model_simulation_is_deterministic_and_learns() {
    let extra = [
        "--workers",
        "4",
        "--set",
        "algorithm.name=\"asgd\"",
        "--set",
        "algorithm.lr=0.05",
        "--set",
        "heterogeneity.slow_fraction=0.25",
        "--set",
        "heterogeneity.slowdown=4.0",
        "--set",
        "heterogeneity.jitter=0.2",
        "--set",
        "sim.updates=120",
        "--set",
        "sim.eval_every=40",
    ];
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for dir in [&a, &b] {
        let out = sim(dir.path(), &extra);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    let read = |d: &tempfile::TempDir, f: &str| std::fs::read(d.path().join(f)).expect("file");
    assert_eq!(read(&a, "metrics.jsonl"), read(&b, "metrics.jsonl"));
    assert_eq!(read(&a, "summary.json"), read(&b, "summary.json"));

    let evals: Vec<_> = events(&a.path().join("metrics.jsonl"))
        .into_iter()
        .filter(|e| e["event"] == "eval")
        .collect();
    assert_eq!(evals.len(), 3);
    let acc = |e: &serde_json::Value| e["test_accuracy"].as_f64().expect("a model's accuracy");
    assert!(acc(&evals[2]) > 0.5, "the mlp learns: {}", evals[2]);
    for e in &evals {
        assert!(e["train_loss"].as_f64().is_some_and(f64::is_finite), "{e}");
        let per_worker: Vec<u64> =
            serde_json::from_value(e["applied"]["per_worker"].clone()).expect("per-worker counts");
        assert_eq!(per_worker.iter().sum::<u64>(), 40, "{e}");
        assert_eq!(e["applied"]["gradients"], 40);
        // One worker of four is 4x slow: it delivers fewer gradients than each of the others.
        let slow = summary(a.path())["per_worker"]
            .as_array()
            .unwrap()
            .iter()
            .position(|w| w["speed"].as_f64() == Some(0.25))
            .expect("a slow worker");
        let fast_min = (0..4).filter(|&i| i != slow).map(|i| per_worker[i]).min();
        assert!(Some(per_worker[slow]) < fast_min, "{e}");
    }
    let s = summary(a.path());
    assert_eq!(s["objective"], "model");
    assert_eq!(s["final_test_accuracy"], evals[2]["test_accuracy"]);
}

/// The last `eval` of an SSGD cluster run of `workers` workers and the `end` of the same run
/// simulated: 30 updates of the `mlp` with weight decay.
fn cluster_and_simulation(workers: &str) -> (serde_json::Value, serde_json::Value) {
    let settings = [
        "--set",
        "algorithm.name=\"ssgd\"",
        "--set",
        "algorithm.lr=0.05",
        "--set",
        "algorithm.weight_decay=0.001",
    ];
    let run = tempfile::tempdir().unwrap();
    let mut extra = settings.to_vec();
    extra.extend(["--set", "server.updates=30"]);
    let mut args = local_mlp_args(run.path(), &extra);
    let at = args
        .iter()
        .position(|a| a == "--workers")
        .expect("a worker count")
        + 1;
    args[at] = workers.to_string();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = lagom(&args, &[("RAYON_NUM_THREADS", "1")]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let cluster_eval = events(&run.path().join("metrics.jsonl"))
        .into_iter()
        .rfind(|e| e["event"] == "eval" && e["updates"] == 30)
        .expect("the cluster evaluated its last update");

    let simulated = tempfile::tempdir().unwrap();
    let mut extra = settings.to_vec();
    extra.extend(["--workers", workers, "--set", "sim.updates=30"]);
    let out = sim(simulated.path(), &extra);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let end = events(&simulated.path().join("metrics.jsonl"))
        .into_iter()
        .find(|e| e["event"] == "end")
        .expect("an end event");
    assert_eq!(end["updates"], 30);
    (cluster_eval, end)
}

#[test]
fn one_simulated_worker_computes_bit_for_bit_what_one_real_worker_does() {
    let (cluster, sim) = cluster_and_simulation("1");
    // The same gradients on the same mini-batches, the same updates, the same evaluation.
    assert_eq!(
        sim["loss"], cluster["test_loss"],
        "sim {sim} vs cluster {cluster}"
    );
    assert_eq!(sim["test_accuracy"], cluster["test_accuracy"]);
}

#[test]
fn ssgd_with_two_workers_in_the_simulator_equals_two_real_workers() {
    let (cluster, sim) = cluster_and_simulation("2");
    // SSGD applies a round's two gradients one after the other in arrival order, which a real
    // cluster does not fix: the two runs may differ by float rounding, nothing more.
    let (a, b) = (
        sim["loss"].as_f64().expect("sim loss"),
        cluster["test_loss"].as_f64().expect("cluster loss"),
    );
    assert!(
        (a - b).abs() <= 1e-6 * b.abs(),
        "sim {sim} vs cluster {cluster}"
    );
    assert_eq!(sim["test_accuracy"], cluster["test_accuracy"]);
    assert_eq!(
        cluster["applied"]["per_worker"],
        serde_json::json!([15, 15])
    );
}

#[test]
fn a_decentralized_model_simulation_is_deterministic_and_reports_consensus() {
    let extra = [
        "--workers",
        "4",
        "--set",
        "algorithm.name=\"pc-asgd\"",
        "--set",
        "algorithm.momentum=0",
        "--set",
        "algorithm.lr=0.05",
        "--set",
        "heterogeneity.slow_fraction=0.25",
        "--set",
        "sim.updates=40",
        "--set",
        "sim.eval_every=20",
    ];
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    for dir in [&a, &b] {
        let out = sim(dir.path(), &extra);
        assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    }
    let read = |d: &tempfile::TempDir| std::fs::read(d.path().join("metrics.jsonl")).unwrap();
    assert_eq!(read(&a), read(&b));
    let last = events(&a.path().join("metrics.jsonl"))
        .into_iter()
        .rfind(|e| e["event"] == "eval")
        .expect("an eval");
    assert!(
        last["test_accuracy"].as_f64().is_some_and(|x| x > 0.5),
        "{last}"
    );
    assert!(
        last["consensus_distance"].as_f64().is_some_and(|d| d > 0.0),
        "{last}"
    );
    assert!(
        last["bytes_sent_per_node_iteration"].as_f64() > Some(0.0),
        "{last}"
    );
    assert_eq!(
        summary(a.path())["final_test_accuracy"],
        last["test_accuracy"]
    );
}
