//! `compute.activations = "recompute"`: ResNet-20's backward pass recomputed block by block gives
//! bit for bit the loss, predictions, gradient and batch-norm running statistics of the backward
//! pass that keeps every activation — on lagom's kernels and on candle's.

use lagom::compute::Engine;
use lagom::data::Batch;
use lagom::kernels::CpuKernels;
use lagom::model::{ActivationMemory, Network};

mod resnet_support;
use resnet_support::tiny_resnet;

fn batch(n: usize, (c, h, w): (usize, usize, usize)) -> Batch {
    Batch {
        images: (0..n * c * h * w)
            .map(|i| (((i * 7919) % 251) as f32 / 125.5) - 1.0)
            .collect(),
        labels: (0..n as u32).map(|i| (i * 3) % 10).collect(),
        shape: (c, h, w),
    }
}

fn engine(kernels: CpuKernels, activations: ActivationMemory) -> Engine {
    tiny_resnet(kernels, 11).with_activations(activations)
}

/// How many places of two equally long vectors hold different bits.
fn differing(a: &[f32], b: &[f32]) -> usize {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .filter(|(x, y)| x.to_bits() != y.to_bits())
        .count()
}

#[test]
fn recomputed_resnet20_steps_equal_kept_ones_bit_for_bit() {
    for kernels in [CpuKernels::Fast, CpuKernels::Candle] {
        let keep = engine(kernels, ActivationMemory::Keep);
        let recompute = engine(kernels, ActivationMemory::Recompute);
        // Two steps on different batches: the second shows the running statistics moved once
        // per step and the momentum came back after the recomputation froze it.
        for step in 0..2 {
            let b = batch(8 + step, (3, 12, 12));
            let (want, got) = (
                keep.gradient(&b).expect("kept step"),
                recompute.gradient(&b).expect("recomputed step"),
            );
            let what = format!("{} kernels, step {step}", kernels.as_str());
            assert_eq!(want.loss.to_bits(), got.loss.to_bits(), "loss, {what}");
            assert_eq!(want.correct, got.correct, "predictions, {what}");
            assert_eq!(want.grad.len(), got.grad.len());
            assert_eq!(
                differing(&want.grad, &got.grad),
                0,
                "gradient values, {what}"
            );
            assert!(
                got.grad.iter().filter(|g| **g != 0.0).count() > got.grad.len() / 2,
                "the recomputed gradient reaches every segment, {what}"
            );
            let stats = |e: &Engine| e.network().layout().flatten_stats().expect("stats");
            let (a, b) = (stats(&keep), stats(&recompute));
            assert_eq!(
                differing(&a, &b),
                0,
                "running statistics that differ, {what}"
            );
        }
    }
}

#[test]
fn the_hand_written_resnet20_step_equals_autograd_over_the_same_kernels_bit_for_bit() {
    // The fast kernels' step runs without candle's autograd; the reference differentiates the
    // same kernels as candle custom ops through candle's graph (what `Network::forward_t` builds).
    for memory in [ActivationMemory::Keep, ActivationMemory::Recompute] {
        let hand = engine(CpuKernels::Fast, memory);
        let graph = engine(CpuKernels::Fast, ActivationMemory::Keep);
        let net = graph.network();
        for step in 0..2 {
            let b = batch(6 + 3 * step, (3, 12, 12));
            let got = hand.gradient(&b).expect("hand-written step");
            let (x, y) = graph.tensors(&b).expect("tensors");
            let logits = net.forward_t(&x, true).expect("forward through the graph");
            let loss = candle_nn::loss::cross_entropy(&logits, &y).expect("loss");
            let want = net
                .layout()
                .gradients(&loss.backward().expect("autograd"))
                .expect("flat gradient");
            let what = format!("{}, step {step}", memory.as_str());
            let want_loss = loss.to_scalar::<f32>().expect("scalar");
            assert_eq!(
                got.loss.to_bits(),
                f64::from(want_loss).to_bits(),
                "loss, {what}"
            );
            assert_eq!(differing(&want, &got.grad), 0, "gradient values, {what}");
            let stats = |n: &Network| n.layout().flatten_stats().expect("stats");
            assert_eq!(
                differing(&stats(net), &stats(hand.network())),
                0,
                "running statistics, {what}"
            );
        }
    }
}
