//! The algorithm cores' element-wise operations (`algo::vector`) on `f32` run compiled for the
//! widest vector instructions the CPU has. Every path this CPU executes — baseline, AVX2 + FMA,
//! AVX-512 — is forced in turn and must give exactly the bits of a plain scalar loop written
//! here (on lengths that leave every remainder), and the finiteness check must agree with
//! `f32::is_finite` wherever a NaN or an infinity sits. One test in its own binary: the forced
//! path is process-wide.

use lagom::algo::vector::{all_finite, axpby, axpy, axpy_pair, axpy_then_scale, scale};
use lagom::kernels::{self, SimdPath};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

const LENGTHS: [usize; 10] = [0, 1, 7, 15, 16, 17, 63, 4095, 4097, 10_001];

/// Values of every magnitude: ordinary, tiny (subnormal products), huge (overflow to ∞ in
/// products), signed zeros.
fn values(n: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
    (0..n)
        .map(|i| match i % 11 {
            0 => f32::from_bits(rng.random_range(1..0x0080_0000)), // subnormal
            1 => rng.random_range(-1.5e38f32..1.5e38),
            2 => -0.0,
            _ => rng.random_range(-4.0f32..4.0),
        })
        .collect()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

/// Every operation on `f32` against the scalar definition, bit for bit.
fn check_arithmetic(path: SimdPath, rng: &mut ChaCha8Rng) {
    for n in LENGTHS {
        let (x, y0, z0) = (values(n, rng), values(n, rng), values(n, rng));
        let (a, b) = (
            rng.random_range(-2.0f32..2.0),
            rng.random_range(-2.0f32..2.0),
        );
        let what = |op: &str| format!("{op}, {n} values, path {}", path.as_str());

        let mut y = y0.clone();
        axpy(&mut y, a, &x);
        let want: Vec<f32> = y0.iter().zip(&x).map(|(&yi, &xi)| yi + a * xi).collect();
        assert_eq!(bits(&y), bits(&want), "{}", what("axpy"));

        let (mut y, mut z) = (y0.clone(), z0.clone());
        axpy_pair(&mut y, a, &mut z, b, &x);
        let want_z: Vec<f32> = z0.iter().zip(&x).map(|(&zi, &xi)| zi + b * xi).collect();
        assert_eq!(bits(&y), bits(&want), "{}", what("axpy_pair (first)"));
        assert_eq!(bits(&z), bits(&want_z), "{}", what("axpy_pair (second)"));

        let (mut w, mut u) = (y0.clone(), x.clone());
        axpy_then_scale(&mut w, a, &mut u, b);
        let want_u: Vec<f32> = x.iter().map(|&xi| xi * b).collect();
        assert_eq!(bits(&w), bits(&want), "{}", what("axpy_then_scale (w)"));
        assert_eq!(bits(&u), bits(&want_u), "{}", what("axpy_then_scale (u)"));

        let mut y = y0.clone();
        scale(&mut y, a);
        let want_s: Vec<f32> = y0.iter().map(|&yi| yi * a).collect();
        assert_eq!(bits(&y), bits(&want_s), "{}", what("scale"));

        let mut y = y0.clone();
        axpby(&mut y, a, b, &x);
        let want_b: Vec<f32> = y0
            .iter()
            .zip(&x)
            .map(|(&yi, &xi)| a * yi + b * xi)
            .collect();
        assert_eq!(bits(&y), bits(&want_b), "{}", what("axpby"));
    }
}

/// NaNs (quiet, signalling, negative, with payloads) and infinities at the first, a middle, the
/// last and the block-boundary positions: the check says "not finite" for each, and "finite"
/// for vectors of only the largest, smallest and subnormal finite values.
fn check_finiteness(path: SimdPath, rng: &mut ChaCha8Rng) {
    let bad = [
        f32::NAN,
        -f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::from_bits(0x7F80_0001), // signalling NaN, smallest payload
        f32::from_bits(0xFFFF_FFFF),
        f32::from_bits(0x7FC0_0000),
    ];
    let edge = [
        f32::MAX,
        f32::MIN,
        f32::MIN_POSITIVE,
        f32::from_bits(1),
        -f32::from_bits(0x007F_FFFF),
        0.0,
        -0.0,
    ];
    for n in LENGTHS.into_iter().chain([4096, 8192 + 5]) {
        let mut x = values(n, rng);
        for (i, v) in x.iter_mut().enumerate() {
            if i % 5 == 0 {
                *v = edge[i % edge.len()];
            }
        }
        assert!(all_finite(&x), "{n} finite values, path {}", path.as_str());
        let positions = [0, n / 2, n.saturating_sub(1), 4095, 4096];
        for &at in positions.iter().filter(|&&at| at < n) {
            for &v in &bad {
                let saved = x[at];
                x[at] = v;
                assert!(
                    !all_finite(&x),
                    "{:#010x} at {at} of {n} went unnoticed on path {}",
                    v.to_bits(),
                    path.as_str()
                );
                x[at] = saved;
            }
        }
    }
    // f64 (the exact tests' type) goes through the generic loop.
    assert!(all_finite(&[1.0f64, f64::MAX]));
    assert!(!all_finite(&[1.0f64, f64::NAN]));
}

#[test]
fn element_wise_operations_give_the_scalar_bits_on_every_instruction_set_path() {
    let mut rng = ChaCha8Rng::seed_from_u64(29);
    let paths = kernels::available_simd_paths();
    assert!(paths.contains(&SimdPath::Baseline));
    for path in paths {
        kernels::force_simd_path(Some(path));
        check_arithmetic(path, &mut rng);
        check_finiteness(path, &mut rng);
    }
    kernels::force_simd_path(None);
}
