//! The flat parameter layout: exact round trips, a stable hash, running statistics kept apart, and
//! flat gradients that match finite differences.

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{VarBuilder, VarMap};
use lagom::model::{Mlp, ParamLayout};

fn mlp(input: usize, hidden: usize, classes: usize, seed: u64) -> (VarMap, Mlp, ParamLayout) {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let model = Mlp::new(vb, input, hidden, classes).expect("model");
    let layout = ParamLayout::from_varmap(&varmap).expect("layout");
    layout.init_seeded(seed).expect("init");
    (varmap, model, layout)
}

#[test]
fn flatten_and_load_round_trip_exactly() {
    let (_, _, layout) = mlp(6, 5, 3, 1);
    assert_eq!(layout.len(), 6 * 5 + 5 + 5 * 3 + 3);
    assert_eq!(
        layout.names(),
        vec!["hidden.bias", "hidden.weight", "out.bias", "out.weight"]
    );
    let flat = layout.flatten().expect("flatten");
    let changed: Vec<f32> = flat
        .iter()
        .enumerate()
        .map(|(i, x)| x * 0.5 + i as f32 * 1e-3)
        .collect();
    layout.load(&changed).expect("load");
    assert_eq!(layout.flatten().expect("flatten"), changed);
    let err = layout.load(&changed[1..]).expect_err("wrong length");
    assert!(
        err.to_string().contains("has 52 values, the model has 53"),
        "{err}"
    );
}

#[test]
fn the_same_seed_gives_the_same_parameters() {
    let a = mlp(6, 5, 3, 7).2.flatten().expect("flatten");
    let b = mlp(6, 5, 3, 7).2.flatten().expect("flatten");
    let c = mlp(6, 5, 3, 8).2.flatten().expect("flatten");
    assert_eq!(a, b);
    assert_ne!(a, c);
}

#[test]
fn the_layout_hash_is_stable_and_changes_with_a_shape() {
    let h = mlp(6, 5, 3, 1).2.hash();
    assert_eq!(
        h,
        mlp(6, 5, 3, 99).2.hash(),
        "independent of values and of HashMap order"
    );
    assert_ne!(
        h,
        mlp(6, 6, 3, 1).2.hash(),
        "a shape change changes the hash"
    );
    assert_ne!(h, mlp(6, 5, 4, 1).2.hash());
    // FNV-1a over names, shapes and dtype: the same number in every process and build.
    assert_eq!(h, 0xeb40_50e4_7a6d_81e2, "layout hash {h:#x}");
}

#[test]
fn running_statistics_stay_out_of_the_flat_vector() {
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &Device::Cpu);
    let _bn = candle_nn::batch_norm(4, 1e-5, vb.pp("bn")).expect("bn");
    let layout = ParamLayout::from_varmap(&varmap).expect("layout");
    assert_eq!(layout.names(), vec!["bn.bias", "bn.weight"]);
    assert_eq!(
        layout.running_stat_names(),
        vec!["bn.running_mean", "bn.running_var"]
    );
    layout.init_seeded(0).expect("init");
    assert_eq!(
        layout.flatten().expect("flatten"),
        vec![0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 1.0, 1.0]
    );
}

#[test]
fn the_flat_gradient_of_the_mlp_matches_central_differences() {
    let (_, model, layout) = mlp(6, 5, 3, 3);
    let xs: Vec<f32> = (0..4 * 6)
        .map(|i| ((i * 37 % 11) as f32 - 5.0) / 4.0)
        .collect();
    let xs = Tensor::from_vec(xs, (4, 6), &Device::Cpu).expect("input");
    let ys = Tensor::new(&[0u32, 2, 1, 2], &Device::Cpu).expect("labels");
    let loss_at = |flat: &[f32]| -> f64 {
        layout.load(flat).expect("load");
        let logits = model.forward(&xs).expect("forward");
        let loss = candle_nn::loss::cross_entropy(&logits, &ys).expect("loss");
        f64::from(loss.to_scalar::<f32>().expect("scalar"))
    };
    let w = layout.flatten().expect("flatten");
    layout.load(&w).expect("load");
    let logits = model.forward(&xs).expect("forward");
    let loss = candle_nn::loss::cross_entropy(&logits, &ys).expect("loss");
    let grads = loss.backward().expect("backward");
    let g = layout.gradients(&grads).expect("gradients");
    assert_eq!(g.len(), w.len());
    let h = 2e-3f32;
    let mut worst = 0.0f64;
    for i in 0..w.len() {
        let (mut plus, mut minus) = (w.clone(), w.clone());
        plus[i] += h;
        minus[i] -= h;
        let fd = (loss_at(&plus) - loss_at(&minus)) / (2.0 * f64::from(h));
        let err = (fd - f64::from(g[i])).abs() / (1e-2 + fd.abs());
        worst = worst.max(err);
        assert!(
            err < 2e-2,
            "parameter {i}: finite difference {fd}, backprop {}",
            g[i]
        );
    }
    assert!(g.iter().any(|x| x.abs() > 1e-3), "a non-trivial gradient");
    eprintln!("worst relative error {worst:.2e}");
}
