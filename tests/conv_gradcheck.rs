//! The flat gradient of a tiny conv net — convolution (stride 1 and 2, padding), batch norm in
//! training mode, ReLU, max-pooling (ours: candle's `max_pool2d` backward is wrong) and a linear
//! classifier — matches central differences.

use candle_core::{DType, Device, Tensor};
use candle_nn::{conv2d, conv2d_no_bias, linear, Conv2dConfig, VarBuilder, VarMap};
use lagom::model::{max_pool2x2, BatchNorm2d, BnMomentum, ParamLayout};

struct TinyConvNet {
    conv1: candle_nn::Conv2d,
    bn: BatchNorm2d,
    conv2: candle_nn::Conv2d,
    fc: candle_nn::Linear,
}

impl TinyConvNet {
    fn new(vb: VarBuilder) -> candle_core::Result<Self> {
        let same = Conv2dConfig {
            padding: 1,
            ..Default::default()
        };
        let strided = Conv2dConfig {
            padding: 1,
            stride: 2,
            ..Default::default()
        };
        Ok(TinyConvNet {
            conv1: conv2d(1, 3, 3, same, vb.pp("conv1"))?,
            bn: BatchNorm2d::new(3, BnMomentum::new(0.1), vb.pp("bn"))?,
            conv2: conv2d_no_bias(3, 4, 3, strided, vb.pp("conv2"))?,
            fc: linear(4, 3, vb.pp("fc"))?,
        })
    }

    /// 1×6×6 → conv 3@6×6 → BN → ReLU → conv stride 2, 4@3×3 → max-pool 2 → 4 → 3 logits.
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.apply(&self.conv1)?
            .apply_t(&self.bn, true)?
            .relu()?
            .apply(&self.conv2)?
            .apply(&max_pool2x2)?
            .flatten_from(1)?
            .apply(&self.fc)
    }
}

#[test]
fn the_flat_gradient_of_a_tiny_conv_net_matches_central_differences() {
    let dev = Device::Cpu;
    let varmap = VarMap::new();
    let vb = VarBuilder::from_varmap(&varmap, DType::F32, &dev);
    let net = TinyConvNet::new(vb).expect("net");
    let layout = ParamLayout::from_varmap(&varmap).expect("layout");
    layout.init_seeded(5).expect("init");
    assert_eq!(
        layout.len(),
        (27 + 3) + (3 + 3) + 4 * 3 * 9 + (4 * 3 + 3),
        "conv1, bn, conv2, fc"
    );
    let xs: Vec<f32> = (0..3 * 36)
        .map(|i| (((i * 53) % 29) as f32 - 14.0) / 7.0)
        .collect();
    let xs = Tensor::from_vec(xs, (3, 1, 6, 6), &dev).expect("input");
    let ys = Tensor::new(&[2u32, 0, 1], &dev).expect("labels");
    let loss_of = |flat: &[f32]| -> (Tensor, f64) {
        layout.load(flat).expect("load");
        let logits = net.forward(&xs).expect("forward");
        let loss = candle_nn::loss::cross_entropy(&logits, &ys).expect("loss");
        let value = f64::from(loss.to_scalar::<f32>().expect("scalar"));
        (loss, value)
    };
    let w = layout.flatten().expect("flatten");
    let (loss, _) = loss_of(&w);
    let g = layout
        .gradients(&loss.backward().expect("backward"))
        .expect("gradients");
    let h = 2e-3f32;
    let mut worst = 0.0f64;
    for i in 0..w.len() {
        let (mut plus, mut minus) = (w.clone(), w.clone());
        plus[i] += h;
        minus[i] -= h;
        let fd = (loss_of(&plus).1 - loss_of(&minus).1) / (2.0 * f64::from(h));
        let err = (fd - f64::from(g[i])).abs() / (1e-2 + fd.abs());
        worst = worst.max(err);
        assert!(
            err < 3e-2,
            "{}: parameter {i}: finite difference {fd}, backprop {}",
            layout.names().join(","),
            g[i]
        );
    }
    for name in layout.names() {
        assert!(!name.contains("running"), "{name} is not a parameter");
    }
    assert!(g.iter().filter(|x| x.abs() > 1e-4).count() > w.len() / 2);
    eprintln!("worst relative error {worst:.2e}");
}
