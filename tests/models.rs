//! The three models: sizes, layouts that agree across processes, one training step each, and
//! the 2×2 max-pooling that replaces candle's.

use candle_core::{Device, Tensor, Var};
use lagom::compute::Engine;
use lagom::data::Batch;
use lagom::model::{max_pool2x2, InputSpec, ModelName, Network};

fn spec(channels: usize, side: usize, classes: usize) -> InputSpec {
    InputSpec {
        channels,
        height: side,
        width: side,
        classes,
    }
}

fn batch(n: usize, (c, h, w): (usize, usize, usize), classes: u32) -> Batch {
    Batch {
        images: (0..n * c * h * w)
            .map(|i| (((i * 7919) % 255) as f32 / 127.5) - 1.0)
            .collect(),
        labels: (0..n as u32).map(|i| i % classes).collect(),
        shape: (c, h, w),
    }
}

#[test]
fn resnet20_has_about_0_27_m_parameters_for_cifar_and_fashion_mnist() {
    let cifar = Network::new(ModelName::Resnet20, spec(3, 32, 10), &Device::Cpu, 1).expect("net");
    assert_eq!(cifar.layout().len(), 272_474);
    assert!((260_000..=280_000).contains(&cifar.layout().len()));
    assert_eq!(
        cifar.layout().names().len(),
        65,
        "19 convs + 21 BN scale/shift pairs + fc weight/bias"
    );
    assert_eq!(cifar.layout().stats_len(), 2 * (16 * 7 + 32 * 7 + 64 * 7));
    let fmnist = Network::new(ModelName::Resnet20, spec(1, 28, 10), &Device::Cpu, 1).expect("net");
    assert_eq!(
        fmnist.layout().len(),
        272_474 - 2 * 16 * 9,
        "one input channel"
    );
    let c100 = Network::new(ModelName::Resnet20, spec(3, 32, 100), &Device::Cpu, 1).expect("net");
    assert_eq!(c100.layout().len(), 272_474 + 90 * 65);
}

#[test]
fn layout_hashes_are_pinned_so_every_process_agrees() {
    // FNV-1a over sorted (name, shape, dtype): independent of HashMap order and of the seed.
    for (name, input, expected) in [
        (ModelName::Mlp, spec(1, 28, 10), 0x9dc7_7a51_684f_54f7u64),
        (ModelName::Cnn, spec(1, 28, 10), 0x51f7_ae78_be47_2bf4),
        (ModelName::Resnet20, spec(3, 32, 10), 0x5b84_9ed3_8ec5_24a8),
    ] {
        let a = Network::new(name, input, &Device::Cpu, 1).expect("net");
        let b = Network::new(name, input, &Device::Cpu, 2).expect("net");
        assert_eq!(a.layout().hash(), b.layout().hash());
        assert_eq!(
            a.layout().hash(),
            expected,
            "{}: {:#x}",
            name.as_str(),
            a.layout().hash()
        );
    }
}

#[test]
fn one_training_step_of_every_model_runs_on_the_cpu_and_lowers_the_loss() {
    for (name, input, n) in [
        (ModelName::Mlp, spec(1, 28, 10), 16),
        (ModelName::Cnn, spec(1, 28, 10), 16),
        (ModelName::Resnet20, spec(3, 32, 10), 8),
    ] {
        let engine = Engine::new(Network::new(name, input, &Device::Cpu, 3).expect("net"));
        let b = batch(n, (input.channels, input.height, input.width), 10);
        let first = engine.gradient(&b).expect("step");
        assert!(first.loss.is_finite(), "{}", name.as_str());
        assert_eq!(first.grad.len(), engine.network().layout().len());
        assert!(first.grad.iter().all(|g| g.is_finite()));
        assert!(first.grad.iter().any(|g| g.abs() > 0.0));
        let mut params = engine.params().expect("params");
        for (p, g) in params.iter_mut().zip(&first.grad) {
            *p -= 0.01 * g;
        }
        engine.set_params(&params).expect("set");
        let second = engine.gradient(&b).expect("step");
        assert!(
            second.loss < first.loss,
            "{}: a small gradient step lowers the loss on its batch ({} → {})",
            name.as_str(),
            first.loss,
            second.loss
        );
    }
}

#[test]
fn models_reject_inputs_they_cannot_take() {
    let err = Network::new(ModelName::Cnn, spec(1, 3, 10), &Device::Cpu, 0).unwrap_err();
    assert!(err.to_string().contains("at least 4×4"), "{err}");
    let err = Network::new(ModelName::Mlp, spec(1, 8, 1), &Device::Cpu, 0).unwrap_err();
    assert!(err.to_string().contains("≥ 2 classes"), "{err}");
}

#[test]
fn max_pool2x2_matches_the_forward_of_candle_and_sends_the_whole_gradient_to_the_maximum() {
    let dev = Device::Cpu;
    for side in [4usize, 7] {
        let values: Vec<f32> = (0..2 * 3 * side * side)
            .map(|i| ((i * 7331) % 997) as f32 / 997.0)
            .collect();
        let x = Var::from_vec(values, (2, 3, side, side), &dev).expect("x");
        let ours = max_pool2x2(x.as_tensor()).expect("pool");
        let theirs = x.as_tensor().max_pool2d(2).expect("candle pool");
        assert_eq!(ours.dims(), theirs.dims());
        let (a, b): (Vec<f32>, Vec<f32>) = (
            ours.flatten_all().and_then(|t| t.to_vec1()).expect("a"),
            theirs.flatten_all().and_then(|t| t.to_vec1()).expect("b"),
        );
        assert_eq!(a, b, "side {side}");
        let grads = ours.sum_all().and_then(|s| s.backward()).expect("backward");
        let g = grads.get(x.as_tensor()).expect("grad");
        let g: Vec<f32> = g.flatten_all().and_then(|t| t.to_vec1()).expect("g");
        let pooled = (side / 2) * (side / 2) * 6;
        assert_eq!(g.iter().filter(|&&v| v == 1.0).count(), pooled);
        assert_eq!(g.iter().filter(|&&v| v == 0.0).count(), g.len() - pooled);
    }
    let t = Tensor::new(&[[[[1f32, 2.], [3., 4.]]]], &dev).expect("t");
    let p = max_pool2x2(&t).and_then(|p| p.flatten_all()).expect("p");
    assert_eq!(p.to_vec1::<f32>().expect("v"), vec![4.0]);
}
