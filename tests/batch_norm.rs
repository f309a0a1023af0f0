//! Batch norm: training-mode normalisation, running statistics that move like PyTorch's, and the
//! evaluation policy — parameters trained elsewhere are evaluated after recomputing the
//! statistics from training batches.

use candle_core::{DType, Device, Tensor};
use candle_nn::{ModuleT, VarBuilder, VarMap};
use lagom::algo::LocalSgd;
use lagom::compute::Engine;
use lagom::data::{synthetic, Sampler, Sharding};
use lagom::model::{BatchNorm2d, BnMomentum, InputSpec, ModelName, Network, ParamLayout};
use lagom::train::bn_batches;
use rand_chacha::ChaCha8Rng;

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().and_then(|t| t.to_vec1()).expect("values")
}

/// Per-channel (mean, biased variance, unbiased variance) of an NCHW batch, in f64.
fn channel_stats(x: &[f32], (n, c, hw): (usize, usize, usize)) -> Vec<(f64, f64, f64)> {
    (0..c)
        .map(|ch| {
            let v: Vec<f64> = (0..n)
                .flat_map(|i| x[(i * c + ch) * hw..(i * c + ch + 1) * hw].iter())
                .map(|&v| f64::from(v))
                .collect();
            let m = v.iter().sum::<f64>() / v.len() as f64;
            let ss = v.iter().map(|x| (x - m) * (x - m)).sum::<f64>();
            (m, ss / v.len() as f64, ss / (v.len() - 1) as f64)
        })
        .collect()
}

fn batch_of(seed: usize, shape: (usize, usize, usize, usize)) -> Vec<f32> {
    let (n, c, h, w) = shape;
    (0..n * c * h * w)
        .map(|i| ((i * 7919 + seed * 104_729) % 1009) as f32 / 100.0 + (i % c) as f32)
        .collect()
}

#[test]
fn training_mode_normalises_and_moves_running_stats_like_pytorch() {
    let dev = Device::Cpu;
    let varmap = VarMap::new();
    let bn = BatchNorm2d::new(
        3,
        BnMomentum::new(0.1),
        VarBuilder::from_varmap(&varmap, DType::F32, &dev),
    )
    .expect("bn");
    let layout = ParamLayout::from_varmap(&varmap).expect("layout");
    let shape = (4, 3, 5, 5);
    let x = batch_of(1, shape);
    let y = bn
        .forward_t(&Tensor::from_slice(&x, shape, &dev).expect("x"), true)
        .expect("forward");
    for (m, var, _) in channel_stats(&values(&y), (4, 3, 25)) {
        assert!(m.abs() < 1e-5, "normalised mean {m}");
        assert!((var - 1.0).abs() < 1e-3, "normalised variance {var}");
    }
    let stats = layout.flatten_stats().expect("stats"); // running_mean then running_var
    for (ch, (m, _, unbiased)) in channel_stats(&x, (4, 3, 25)).into_iter().enumerate() {
        assert!((f64::from(stats[ch]) - 0.1 * m).abs() < 1e-4);
        assert!((f64::from(stats[3 + ch]) - (0.9 + 0.1 * unbiased)).abs() < 1e-3);
    }
    // Evaluation mode uses the running statistics and leaves them alone.
    let before = layout.flatten_stats().expect("stats");
    let z = bn
        .forward_t(&Tensor::from_slice(&x, shape, &dev).expect("x"), false)
        .expect("eval");
    assert_eq!(layout.flatten_stats().expect("stats"), before);
    let zs = values(&z);
    let expected = (x[0] - before[0]) / (before[3] + 1e-5).sqrt();
    assert!((zs[0] - expected).abs() < 1e-4);
}

#[test]
fn recomputed_statistics_are_the_exact_average_of_the_batches() {
    let dev = Device::Cpu;
    let varmap = VarMap::new();
    let momentum = BnMomentum::new(0.1);
    let bn = BatchNorm2d::new(
        2,
        momentum.clone(),
        VarBuilder::from_varmap(&varmap, DType::F32, &dev),
    )
    .expect("bn");
    let layout = ParamLayout::from_varmap(&varmap).expect("layout");
    let shape = (3, 2, 4, 4);
    let batches: Vec<Vec<f32>> = (0..3).map(|s| batch_of(s + 10, shape)).collect();
    layout.reset_running_stats().expect("reset");
    for (i, b) in batches.iter().enumerate() {
        momentum.set(1.0 / (i as f64 + 1.0));
        bn.forward_t(&Tensor::from_slice(b, shape, &dev).expect("x"), true)
            .expect("forward");
    }
    let stats = layout.flatten_stats().expect("stats");
    for ch in 0..2 {
        let per_batch: Vec<(f64, f64, f64)> = batches
            .iter()
            .map(|b| channel_stats(b, (3, 2, 16))[ch])
            .collect();
        let mean = per_batch.iter().map(|s| s.0).sum::<f64>() / 3.0;
        let var = per_batch.iter().map(|s| s.2).sum::<f64>() / 3.0;
        assert!((f64::from(stats[ch]) - mean).abs() < 1e-4, "channel {ch}");
        assert!(
            (f64::from(stats[2 + ch]) - var).abs() < 1e-3,
            "channel {ch}"
        );
    }
}

#[test]
fn recomputation_forgets_the_history_of_the_running_statistics() {
    let input = InputSpec {
        channels: 1,
        height: 8,
        width: 8,
        classes: 4,
    };
    let dev = Device::Cpu;
    let a = Network::new(ModelName::Resnet20, input, &dev, 1).expect("a");
    let b = Network::new(ModelName::Resnet20, input, &dev, 2).expect("b");
    b.layout()
        .load(&a.layout().flatten().expect("params"))
        .expect("load");
    let x = |s: usize| Tensor::from_vec(batch_of(s, (4, 1, 8, 8)), (4, 1, 8, 8), &dev).expect("x");
    // Different histories: b sees three unrelated batches in training mode first.
    for s in 0..3 {
        b.forward_t(&x(100 + s), true).expect("history");
    }
    assert_ne!(
        a.layout().flatten_stats().ok(),
        b.layout().flatten_stats().ok()
    );
    let calibration = [x(1), x(2)];
    a.recompute_bn_stats(&calibration).expect("a");
    b.recompute_bn_stats(&calibration).expect("b");
    assert_eq!(
        a.layout().flatten_stats().expect("a"),
        b.layout().flatten_stats().expect("b")
    );
    let probe = x(7);
    assert_eq!(
        values(&a.forward_t(&probe, false).expect("a")),
        values(&b.forward_t(&probe, false).expect("b")),
        "same parameters and recomputed statistics: identical evaluation"
    );
}

#[test]
fn parameters_trained_elsewhere_evaluate_like_the_model_that_trained_them() {
    let split = synthetic(3, 1024, 512);
    let input = InputSpec {
        channels: 1,
        height: 16,
        width: 16,
        classes: 10,
    };
    let dev = Device::Cpu;
    let trainer = Engine::new(Network::new(ModelName::Resnet20, input, &dev, 5).expect("net"));
    let mut params = trainer.params().expect("params");
    let mut opt = LocalSgd::<f32>::new(params.len(), 0.9, false, 0.0);
    let mut sampler = Sampler::new(split.train.len(), 0, 1, Sharding::Disjoint, 5);
    for _ in 0..30 {
        let batch = split
            .train
            .batch(&sampler.next_batch(32), None::<&mut ChaCha8Rng>)
            .expect("batch");
        let out = trainer.gradient(&batch).expect("step");
        opt.step(&mut params, &out.grad, 0.05);
        trainer.set_params(&params).expect("set");
    }
    let trained = trainer.evaluate(&split.test, 256).expect("eval");

    // A node that only received the flat parameters (e.g. the server).
    let evaluator = Engine::new(Network::new(ModelName::Resnet20, input, &dev, 99).expect("net"));
    evaluator.set_params(&params).expect("set");
    let stale = evaluator.evaluate(&split.test, 256).expect("eval");
    let calibration = bn_batches(&split.train, 10, 32, 5).expect("batches");
    let recomputed = evaluator
        .evaluate_params(&params, &calibration, &split.test, 256)
        .expect("eval");
    eprintln!(
        "trained {:.3}, received without statistics {:.3}, recomputed {:.3}",
        trained.accuracy, stale.accuracy, recomputed.accuracy
    );
    assert!(trained.accuracy > 0.5, "the model learned something");
    assert!(
        (recomputed.accuracy - trained.accuracy).abs() <= 0.05,
        "recomputed statistics evaluate like the trainer's own"
    );
    assert!(
        recomputed.accuracy > stale.accuracy + 0.1,
        "without statistics the received parameters evaluate badly, so the check has teeth"
    );
}
