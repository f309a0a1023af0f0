//! The trained model out: `model.safetensors` holds every parameter and running statistic under
//! its name and shape, reads back bit for bit, refuses a damaged or foreign file without touching
//! the model, and the file a cluster run writes evaluates (`lagom eval --model`) to the accuracy
//! the run reported.

mod cli_support;
use cli_support::{lagom, local_mlp_args, stderr, stdout, summary};

use candle_core::Device;
use lagom::model::{load_safetensors, to_safetensors, InputSpec, ModelName, Network};

fn resnet(seed: u64) -> Network {
    let input = InputSpec {
        channels: 3,
        height: 8,
        width: 8,
        classes: 10,
    };
    Network::new(ModelName::Resnet20, input, &Device::Cpu, seed).expect("ResNet-20 builds")
}

#[test]
fn parameters_and_running_statistics_round_trip_bit_for_bit() {
    let trained = resnet(1);
    let stats: Vec<f32> = (0..trained.layout().stats_len())
        .map(|i| 0.5 + i as f32 / 1000.0)
        .collect();
    trained.layout().load_stats(&stats).expect("stats set");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("model.safetensors");
    std::fs::write(&path, to_safetensors(&trained).expect("encodes")).expect("written");

    let fresh = resnet(2);
    assert_ne!(
        fresh.layout().flatten().unwrap(),
        trained.layout().flatten().unwrap()
    );
    load_safetensors(&fresh, &path).expect("loads");
    let bits = |v: Vec<f32>| v.into_iter().map(f32::to_bits).collect::<Vec<_>>();
    assert_eq!(
        bits(fresh.layout().flatten().unwrap()),
        bits(trained.layout().flatten().unwrap())
    );
    assert_eq!(bits(fresh.layout().flatten_stats().unwrap()), bits(stats));

    // PyTorch's names: one counter per batch norm beside its statistics.
    let file = candle_core::safetensors::load(&path, &Device::Cpu).expect("reads");
    assert!(file.contains_key("stage2.block0.shortcut.bn.running_var"));
    assert!(file.contains_key("stage2.block0.shortcut.bn.num_batches_tracked"));
    assert_eq!(file["fc.weight"].dims(), &[10, 64]);
}

#[test]
fn a_damaged_or_foreign_file_is_refused_and_the_model_is_left_as_it_was() {
    let dir = tempfile::tempdir().expect("tempdir");
    let good = to_safetensors(&resnet(1)).expect("encodes");
    let target = resnet(2);
    let before = target.layout().flatten().unwrap();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        (
            "truncated",
            good[..good.len() / 2].to_vec(),
            "not a safetensors file",
        ),
        (
            "garbage",
            b"not a model at all".to_vec(),
            "not a safetensors file",
        ),
        (
            "mlp",
            to_safetensors(
                &Network::new(
                    ModelName::Mlp,
                    InputSpec {
                        channels: 3,
                        height: 8,
                        width: 8,
                        classes: 10,
                    },
                    &Device::Cpu,
                    1,
                )
                .unwrap(),
            )
            .unwrap(),
            "holds a `mlp` model",
        ),
        (
            "other-classes",
            to_safetensors(
                &Network::new(
                    ModelName::Resnet20,
                    InputSpec {
                        channels: 3,
                        height: 8,
                        width: 8,
                        classes: 7,
                    },
                    &Device::Cpu,
                    1,
                )
                .unwrap(),
            )
            .unwrap(),
            "fc.bias is F32 [7]",
        ),
    ];
    for (name, bytes, expected) in cases {
        let path = dir.path().join(format!("{name}.safetensors"));
        std::fs::write(&path, bytes).expect("written");
        let err = format!("{:#}", load_safetensors(&target, &path).expect_err(name));
        assert!(err.contains(expected), "{name}: {err}");
        assert!(
            err.contains(&path.display().to_string()),
            "{name} names the file: {err}"
        );
        assert_eq!(
            target.layout().flatten().unwrap(),
            before,
            "{name} changed the model"
        );
    }
    let missing = dir.path().join("absent.safetensors");
    let err = format!(
        "{:#}",
        load_safetensors(&target, &missing).expect_err("absent")
    );
    assert!(err.contains("absent.safetensors"), "{err}");
}

#[test]
fn a_cluster_run_writes_the_model_that_lagom_eval_scores_as_the_run_did() {
    let run = tempfile::tempdir().expect("run dir");
    let args = local_mlp_args(run.path(), &["--set", "server.updates=80"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    // `lagom eval` needs the run's data and model.
    let data = [
        "--set",
        "data.name=\"synthetic\"",
        "--set",
        "model.name=\"mlp\"",
    ];
    let out = lagom(&args, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let reported = summary(run.path())["final_test_accuracy"]
        .as_f64()
        .expect("the summary has the final accuracy");
    let model = run.path().join("model.safetensors");
    let mut eval = vec!["eval", "--model", model.to_str().expect("utf-8")];
    eval.extend_from_slice(&data);
    let out = lagom(&eval, &[]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let expected = format!("test accuracy {:.2} %", 100.0 * reported);
    assert!(
        stdout(&out).contains(&expected),
        "{expected} in {}",
        stdout(&out)
    );
    assert!(reported > 0.5, "the synthetic set is learned: {reported}");
}
