//! `lagom train`: determinism, outputs, errors, and the learning bars on Fashion-MNIST.

use lagom::config::Config;
use lagom::data::DatasetName;
use lagom::model::ModelName;
use lagom::run::RunDir;

mod cli_support;
use cli_support::{fashion_mnist_present, lagom, stderr, summary};

/// A `cnn` on the synthetic set for `steps` steps, through the library.
fn synthetic_run(seed: u64, steps: u64) -> (lagom::train::TrainResult, Vec<serde_json::Value>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = Config::default();
    config.data.name = DatasetName::Synthetic;
    config.model.name = ModelName::Cnn;
    config.algorithm.lr = 0.05;
    config.train.max_steps = Some(steps);
    config.train.batch_size = 32;
    config.train.log_every = 5;
    config.train.eval_every = 10;
    config.run.seed = seed;
    let run = RunDir::create(dir.path()).expect("run dir");
    let mut metrics = run.metrics().expect("metrics");
    let result = lagom::train::run(&config.train_setup(), &mut metrics, false).expect("train");
    let lines = std::fs::read_to_string(dir.path().join("metrics.jsonl"))
        .expect("metrics.jsonl")
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    (result, lines)
}

/// The metrics without the fields that measure time.
fn timeless(lines: &[serde_json::Value]) -> Vec<serde_json::Value> {
    lines
        .iter()
        .map(|l| {
            let mut l = l.clone();
            if let Some(o) = l.as_object_mut() {
                o.remove("t_s");
                o.remove("images_per_s");
            }
            l
        })
        .collect()
}

#[test]
fn the_same_seed_gives_the_same_losses_and_parameters() {
    let (a, la) = synthetic_run(4, 20);
    let (b, lb) = synthetic_run(4, 20);
    let (c, _) = synthetic_run(5, 20);
    assert_eq!(
        a.params, b.params,
        "bit-identical parameters after 20 steps"
    );
    assert_eq!(a.summary.final_loss, b.summary.final_loss);
    assert_eq!(timeless(&la), timeless(&lb));
    assert_ne!(a.params, c.params, "another seed, another run");
    let events: Vec<&str> = la.iter().filter_map(|l| l["event"].as_str()).collect();
    assert_eq!(events.first(), Some(&"start"));
    assert_eq!(events.last(), Some(&"end"));
    assert_eq!(events.iter().filter(|e| **e == "train").count(), 4);
    assert_eq!(events.iter().filter(|e| **e == "eval").count(), 2);
    assert_eq!(a.summary.updates, 20);
    assert!(
        a.final_eval.accuracy > 0.5,
        "the synthetic set is learnable"
    );
}

#[test]
fn a_missing_data_directory_is_a_clear_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let run_dir = dir.path().join("run");
    let out = lagom(
        &[
            "train",
            "--quiet",
            "--run-dir",
            run_dir.to_str().expect("utf-8"),
            "--set",
            "data.dir=/nonexistent/fashion",
        ],
        &[],
    );
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("/nonexistent/fashion") && err.contains("dataset-fashion-mnist"),
        "{err}"
    );
}

#[test]
fn unknown_train_keys_and_bad_values_exit_2_naming_the_key() {
    for (set, key) in [
        ("model.nmae=\"cnn\"", "model.nmae"),
        ("train.batch_size=0", "train.batch_size"),
        ("compute.device=\"gpu\"", "compute.device"),
        ("compute.cpu_kernels=\"turbo\"", "compute.cpu_kernels"),
    ] {
        let out = lagom(&["train", "--quiet", "--set", set], &[]);
        assert_eq!(out.status.code(), Some(2), "{set}: {}", stderr(&out));
        assert!(stderr(&out).contains(key), "{set}: {}", stderr(&out));
    }
}

/// Writes a learnable CIFAR-10 binary set to `dir`: class k is a flat image of brightness ≈ 25k
/// in a channel that depends on k, plus seeded noise.
fn write_learnable_cifar10(dir: &std::path::Path, per_batch: usize) {
    use lagom::data::cifar::{encode_records, IMAGE_BYTES};
    let mut state = 12345u32;
    let mut noise = move || {
        state = state.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        ((state >> 16) % 41) as i32 - 20
    };
    let mut records = |n: usize, offset: usize| {
        let labels: Vec<(u8, u8)> = (0..n).map(|i| (0, ((i + offset) % 10) as u8)).collect();
        let mut pixels = Vec::with_capacity(n * IMAGE_BYTES);
        for &(_, k) in &labels {
            for channel in 0..3 {
                let base = if usize::from(k) % 3 == channel {
                    25 * i32::from(k) + 20
                } else {
                    128
                };
                pixels.extend((0..1024).map(|_| (base + noise()).clamp(0, 255) as u8));
            }
        }
        encode_records(&pixels, &labels, false)
    };
    for i in 1..=5 {
        std::fs::write(
            dir.join(format!("data_batch_{i}.bin")),
            records(per_batch, i),
        )
        .expect("write");
    }
    std::fs::write(dir.join("test_batch.bin"), records(per_batch, 0)).expect("write");
}

#[test]
fn training_reads_cifar_binaries_augments_and_learns() {
    let data = tempfile::tempdir().expect("tempdir");
    write_learnable_cifar10(data.path(), 40);
    let run = tempfile::tempdir().expect("tempdir");
    let out = lagom(
        &[
            "train",
            "--quiet",
            "--run-dir",
            run.path().to_str().expect("utf-8"),
            "--set",
            "data.name=\"cifar10\"",
            "--set",
            &format!("data.dir=\"{}\"", data.path().display()),
            "--set",
            "model.name=\"cnn\"",
            "--set",
            "train.epochs=6",
            "--set",
            "train.batch_size=20",
            "--lr",
            "0.02",
        ],
        &[],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let s = summary(run.path());
    assert_eq!(s["dataset"], "cifar10");
    assert_eq!(s["updates"], 60, "200 images, batch 20, 6 epochs");
    let acc = s["final_test_accuracy"].as_f64().expect("accuracy");
    eprintln!("cnn on generated CIFAR-10 files: {:.1} %", 100.0 * acc);
    assert!(
        acc >= 0.6,
        "a learnable CIFAR-format set is learned (got {acc})"
    );
}

/// `lagom train` runs ResNet-20 on the fast CPU kernels by default and learns; with
/// `compute.cpu_kernels = "candle"` it takes candle's ops. (Trajectories are compared step by
/// step in tests/fast_kernels.rs: on this near-constant generated set, batch-norm variances are
/// tiny and amplify rounding differences, so end-of-run losses are not comparable.)
#[test]
fn resnet20_trains_on_the_fast_kernels_by_default_and_can_switch_to_candle_ops() {
    let data = tempfile::tempdir().expect("tempdir");
    write_learnable_cifar10(data.path(), 40);
    let data_dir = format!("data.dir=\"{}\"", data.path().display());
    let train = |kernels: Option<&str>, epochs: usize| {
        let epochs = format!("train.epochs={epochs}");
        let run = tempfile::tempdir().expect("tempdir");
        let mut args = vec![
            "train",
            "--quiet",
            "--run-dir",
            run.path().to_str().expect("utf-8"),
            "--set",
            &data_dir,
            "--set",
            "data.name=\"cifar10\"",
            "--set",
            "model.name=\"resnet20\"",
            "--set",
            &epochs,
            "--set",
            "train.batch_size=20",
            "--set",
            "compute.device=\"cpu\"",
            "--lr",
            "0.05",
        ];
        let choice = kernels.map(|k| format!("compute.cpu_kernels=\"{k}\""));
        if let Some(c) = &choice {
            args.extend(["--set", c.as_str()]);
        }
        let out = lagom(&args, &[("RAYON_NUM_THREADS", "2")]);
        assert!(out.status.success(), "{kernels:?}: {}", stderr(&out));
        summary(run.path())
    };
    let fast = train(None, 6);
    assert_eq!(
        fast["fast_kernels"], true,
        "fast kernels are the CPU default"
    );
    assert_eq!(fast["updates"], 60);
    let acc = fast["final_test_accuracy"].as_f64().expect("accuracy");
    eprintln!("resnet20 on generated CIFAR-10 files: {:.1} %", 100.0 * acc);
    assert!(acc >= 0.5, "ResNet-20 learns the generated set (got {acc})");
    let reference = train(Some("candle"), 1);
    assert_eq!(reference["fast_kernels"], false);
    assert_eq!(reference["updates"], 10);
}

/// Runs `lagom train` with `args` into a fresh directory; returns the summary.
fn train_on_fashion_mnist(args: &[&str]) -> serde_json::Value {
    let dir = tempfile::tempdir().expect("tempdir");
    let run_dir = dir.path().to_str().expect("utf-8");
    let mut all = vec!["train", "--quiet", "--run-dir", run_dir];
    all.extend_from_slice(args);
    let out = lagom(&all, &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(dir.path().join("metrics.jsonl").is_file());
    summary(dir.path())
}

#[test]
fn the_mlp_reaches_84_percent_on_fashion_mnist_in_one_epoch() {
    if !fashion_mnist_present("mlp learning") {
        return;
    }
    let s = train_on_fashion_mnist(&["--config", "config/train-fmnist-mlp.toml"]);
    assert_eq!(s["epochs"].as_f64().map(f64::round), Some(1.0));
    let acc = s["final_test_accuracy"].as_f64().expect("accuracy");
    eprintln!("mlp, one epoch: {:.2} %", 100.0 * acc);
    assert!(acc >= 0.84, "test accuracy {acc}");
    assert_eq!(s["kind"], "train");
    assert!(s["images_per_s"].as_f64().is_some_and(|v| v > 0.0));
}

#[test]
fn the_readme_cnn_example_reaches_89_percent_on_fashion_mnist() {
    if !fashion_mnist_present("cnn learning") {
        return;
    }
    // Exactly the README's command: the epochs and settings of config/train-fmnist-cnn.toml.
    let s = train_on_fashion_mnist(&["--config", "config/train-fmnist-cnn.toml"]);
    let acc = s["final_test_accuracy"].as_f64().expect("accuracy");
    eprintln!(
        "cnn, {} epochs: {:.2} %",
        s["epochs"].as_f64().unwrap_or(0.0),
        100.0 * acc
    );
    assert!(acc >= 0.89, "test accuracy {acc}");
}
