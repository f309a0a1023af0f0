//! The same gradient computed two ways — on two devices, or with two sets of CPU kernels — and
//! how far apart they are: what `lagom bench --compare-with` and the GPU check report.

use anyhow::{bail, Result};
use candle_core::Device;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use super::step_bench::random_batch;
use super::{describe, Engine};
use crate::kernels::CpuKernels;
use crate::model::{InputSpec, ModelName, Network};

/// Where one side of the comparison computes.
#[derive(Debug, Clone)]
pub struct ComputeSide {
    /// The device.
    pub device: Device,
    /// The CPU kernels (ignored on CUDA, which always runs candle's ops).
    pub kernels: CpuKernels,
}

/// How far one gradient is from a reference gradient of the same parameters and batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GradientDistance {
    /// Number of components compared.
    pub len: usize,
    /// ‖a − b‖₂ / ‖b‖₂ (b the reference).
    pub relative_l2: f64,
    /// max |aᵢ − bᵢ| / max |bᵢ|.
    pub relative_max: f64,
    /// |loss_a − loss_b| / |loss_b|.
    pub relative_loss: f64,
}

impl GradientDistance {
    /// The distance of gradient `a` (loss `loss_a`) from reference `b` (loss `loss_b`); an error
    /// when their lengths differ or either holds a non-finite value.
    pub fn between(a: &[f32], loss_a: f64, b: &[f32], loss_b: f64) -> Result<Self> {
        if a.len() != b.len() {
            bail!(
                "gradients of {} and {} components cannot be compared",
                a.len(),
                b.len()
            );
        }
        if let Some(i) = a.iter().chain(b).position(|v| !v.is_finite()) {
            bail!("gradient component {} is not finite", i % a.len().max(1));
        }
        let (mut diff2, mut ref2, mut diff_max, mut ref_max) = (0.0f64, 0.0f64, 0.0f64, 0.0f64);
        for (&x, &y) in a.iter().zip(b) {
            let d = f64::from(x) - f64::from(y);
            diff2 += d * d;
            ref2 += f64::from(y) * f64::from(y);
            diff_max = diff_max.max(d.abs());
            ref_max = ref_max.max(f64::from(y).abs());
        }
        let ratio = |num: f64, den: f64| if den > 0.0 { num / den } else { num };
        Ok(GradientDistance {
            len: a.len(),
            relative_l2: ratio(diff2.sqrt(), ref2.sqrt()),
            relative_max: ratio(diff_max, ref_max),
            relative_loss: ratio((loss_a - loss_b).abs(), loss_b.abs()),
        })
    }

    /// True when the relative L2 distance and the relative loss difference are both at most
    /// `tolerance`.
    pub fn within(&self, tolerance: f64) -> bool {
        self.relative_l2 <= tolerance && self.relative_loss <= tolerance
    }
}

/// Builds `model` once per side with the same initial parameters (made on the reference side,
/// copied to the other), computes the gradient of one seeded random batch of `batch_size` on each
/// in training mode, and returns the distance of `side`'s gradient from `reference`'s.
pub fn compare_gradients(
    model: ModelName,
    input: InputSpec,
    batch_size: usize,
    seed: u64,
    side: &ComputeSide,
    reference: &ComputeSide,
) -> Result<GradientDistance> {
    let build = |s: &ComputeSide| -> Result<Engine> {
        Ok(Engine::new(Network::with_kernels(
            model, input, &s.device, seed, s.kernels,
        )?))
    };
    let ref_engine = build(reference)?;
    let engine = build(side)?;
    engine.set_params(&ref_engine.params()?)?;
    let batch = random_batch(input, batch_size, &mut ChaCha8Rng::seed_from_u64(seed));
    let want = ref_engine.gradient(&batch)?;
    let got = engine.gradient(&batch)?;
    GradientDistance::between(&got.grad, got.loss, &want.grad, want.loss)
}

/// A one-line name of a side: `cuda:0`, `cpu (fast kernels)`.
pub fn describe_side(side: &ComputeSide) -> String {
    match side.device {
        Device::Cpu => format!("cpu ({} kernels)", side.kernels.as_str()),
        _ => describe(&side.device),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distance_of_known_vectors() {
        let d = GradientDistance::between(&[3.0, 4.0], 1.1, &[3.0, 0.0], 1.0).unwrap();
        assert_eq!(d.len, 2);
        assert!((d.relative_l2 - 4.0 / 3.0).abs() < 1e-12, "{d:?}");
        assert!((d.relative_max - 4.0 / 3.0).abs() < 1e-12, "{d:?}");
        assert!((d.relative_loss - 0.1).abs() < 1e-9, "{d:?}");
        assert!(!d.within(1.0));
        assert!(d.within(1.5));
        let same = GradientDistance::between(&[1.0, -2.0], 0.5, &[1.0, -2.0], 0.5).unwrap();
        assert_eq!(
            (same.relative_l2, same.relative_max, same.relative_loss),
            (0.0, 0.0, 0.0)
        );
    }

    #[test]
    fn mismatched_or_non_finite_gradients_are_errors() {
        let e = GradientDistance::between(&[1.0], 0.0, &[1.0, 2.0], 0.0).unwrap_err();
        assert!(e.to_string().contains("1 and 2 components"), "{e}");
        let e = GradientDistance::between(&[1.0, f32::NAN], 0.0, &[1.0, 2.0], 0.0).unwrap_err();
        assert!(e.to_string().contains("component 1 is not finite"), "{e}");
    }

    fn fast_against_candle(model: ModelName, input: InputSpec) -> GradientDistance {
        let cpu = |kernels| ComputeSide {
            device: Device::Cpu,
            kernels,
        };
        compare_gradients(
            model,
            input,
            4,
            7,
            &cpu(CpuKernels::Fast),
            &cpu(CpuKernels::Candle),
        )
        .unwrap()
    }

    #[test]
    fn fast_cpu_kernels_match_candles_resnet20_gradient() {
        let input = InputSpec {
            channels: 3,
            height: 32,
            width: 32,
            classes: 10,
        };
        let d = fast_against_candle(ModelName::Resnet20, input);
        assert_eq!(d.len, 272_474);
        assert!(d.within(1e-4), "{d:?}");
    }

    #[test]
    fn fast_cpu_kernels_match_candles_cnn_gradient() {
        let input = InputSpec {
            channels: 1,
            height: 28,
            width: 28,
            classes: 10,
        };
        let d = fast_against_candle(ModelName::Cnn, input);
        assert_eq!(d.len, 206_922);
        assert!(d.within(1e-5), "{d:?}");
    }
}
