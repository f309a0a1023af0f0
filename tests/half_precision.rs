//! f32 ↔ bf16 and f32 ↔ f16 conversions (`kernels::f32_to_bf16` and friends) against an
//! independent reference: every value of each 16-bit format, every tie between two neighbours,
//! the overflow thresholds, subnormals, NaN and ±∞, and four million random f32 bit patterns.
//! The reference rounds by searching the sorted list of the format's finite values — no bit
//! tricks shared with the implementation. f16 is checked on the CPU's conversion instructions
//! (what the slice conversion picks here) and on `half`'s software conversion (what a CPU
//! without them gets), and every instruction-set path of the bf16 loops is forced in turn.

use lagom::kernels::{self, bf16_to_f32, f16_to_f32, f32_to_bf16, f32_to_f16};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// A 16-bit float format: exponent and mantissa widths.
#[derive(Clone, Copy)]
struct Format {
    exponent: u32,
    mantissa: u32,
}

const BF16: Format = Format {
    exponent: 8,
    mantissa: 7,
};
const F16: Format = Format {
    exponent: 5,
    mantissa: 10,
};

impl Format {
    /// The value of non-negative bits, as f64 (exact), `None` for ∞ and NaN.
    fn value(self, bits: u16) -> Option<f64> {
        let (e, m) = (
            u32::from(bits >> self.mantissa) & ((1 << self.exponent) - 1),
            u32::from(bits) & ((1 << self.mantissa) - 1),
        );
        let bias = (1i32 << (self.exponent - 1)) - 1;
        if e == (1 << self.exponent) - 1 {
            return None;
        }
        let frac = f64::from(m) / f64::from(1u32 << self.mantissa);
        Some(if e == 0 {
            frac * 2f64.powi(1 - bias)
        } else {
            (1.0 + frac) * 2f64.powi(e as i32 - bias)
        })
    }

    fn inf(self) -> u16 {
        (((1u32 << self.exponent) - 1) << self.mantissa) as u16
    }

    /// Every finite non-negative value in increasing order, with ∞ appended one ulp above the
    /// largest (so that rounding past the top is a search like any other).
    fn ladder(self) -> Vec<(f64, u16)> {
        let mut v: Vec<(f64, u16)> = (0..self.inf())
            .map(|b| (self.value(b).expect("finite"), b))
            .collect();
        let (top, below) = (v[v.len() - 1].0, v[v.len() - 2].0);
        v.push((top + (top - below), self.inf()));
        v
    }

    /// Round-to-nearest-even of `x` into this format, by search.
    fn reference(self, ladder: &[(f64, u16)], x: f32) -> u16 {
        let sign = if x.is_sign_negative() { 0x8000u16 } else { 0 };
        if x.is_nan() {
            return self.inf() | 1; // any NaN; compared as "a NaN"
        }
        let a = f64::from(x.abs());
        if a.is_infinite() {
            return sign | self.inf();
        }
        let i = ladder.partition_point(|(v, _)| *v <= a);
        let (lo, lo_bits) = ladder[i - 1];
        if lo == a || i == ladder.len() {
            return sign | lo_bits;
        }
        let (hi, hi_bits) = ladder[i];
        let bits = if a - lo < hi - a {
            lo_bits
        } else if a - lo > hi - a {
            hi_bits
        } else if lo_bits % 2 == 0 {
            lo_bits
        } else {
            hi_bits
        };
        sign | bits
    }

    fn is_nan(self, bits: u16) -> bool {
        bits & 0x7FFF > self.inf()
    }
}

/// The f32 values worth checking: every value of the format, every midpoint between neighbours
/// (the ties) and a hair on either side, the overflow threshold, NaNs, ±∞, ±0, subnormals, and
/// four million random bit patterns.
fn cases(format: Format) -> Vec<f32> {
    let ladder = format.ladder();
    let mut xs = Vec::new();
    for w in ladder.windows(2) {
        let (lo, hi) = (w[0].0, w[1].0);
        let mid = ((lo + hi) / 2.0) as f32; // exact: the formats' values are f32 values
        xs.extend([lo as f32, mid, next_up(mid), next_down(mid)]);
    }
    xs.extend([
        f32::INFINITY,
        f32::MAX,
        f32::MIN_POSITIVE,
        1e-45,
        0.0,
        f32::NAN,
        f32::from_bits(0x7F80_0001),
        f32::from_bits(0x7FBF_FFFF),
        f32::from_bits(0xFFC0_1234),
    ]);
    let mut rng = ChaCha8Rng::seed_from_u64(2026);
    xs.extend((0..4_000_000).map(|_| f32::from_bits(rng.random::<u32>())));
    let negated: Vec<f32> = xs.iter().map(|x| -x).collect();
    xs.extend(negated);
    xs
}

fn next_up(x: f32) -> f32 {
    f32::from_bits(x.to_bits() + 1)
}

fn next_down(x: f32) -> f32 {
    if x == 0.0 {
        x
    } else {
        f32::from_bits(x.to_bits() - 1)
    }
}

/// Checks `encode` on every case against the reference; returns how many cases it checked.
fn check_encoding(format: Format, what: &str, encode: impl Fn(&[f32], &mut [u16])) -> usize {
    let ladder = format.ladder();
    let xs = cases(format);
    let mut got = vec![0u16; xs.len()];
    encode(&xs, &mut got);
    for (&x, &g) in xs.iter().zip(&got) {
        let want = format.reference(&ladder, x);
        if x.is_nan() {
            assert!(
                format.is_nan(g),
                "{what}: NaN {:#010x} gave {g:#06x}",
                x.to_bits()
            );
        } else {
            assert_eq!(
                g,
                want,
                "{what}: {x:e} ({:#010x}) gave {g:#06x}, the nearest (ties to even) is {want:#06x}",
                x.to_bits()
            );
        }
    }
    xs.len()
}

/// Every 16-bit pattern decodes to its exact value and encodes back to itself (a NaN to a NaN).
fn check_round_trip(
    format: Format,
    what: &str,
    decode: impl Fn(&[u16], &mut [f32]),
    encode: impl Fn(&[f32], &mut [u16]),
) {
    let all: Vec<u16> = (0..=u16::MAX).collect();
    let mut values = vec![0f32; all.len()];
    decode(&all, &mut values);
    let mut back = vec![0u16; all.len()];
    encode(&values, &mut back);
    for ((&b, &v), &r) in all.iter().zip(&values).zip(&back) {
        if format.is_nan(b) {
            assert!(v.is_nan() && format.is_nan(r), "{what}: NaN {b:#06x}");
            continue;
        }
        let magnitude = format.value(b & 0x7FFF).map_or(f64::INFINITY, |m| m);
        let sign = if b & 0x8000 != 0 { -1.0 } else { 1.0 };
        assert_eq!(
            f64::from(v),
            sign * magnitude,
            "{what}: {b:#06x} decodes exactly"
        );
        assert_eq!(r, b, "{what}: {b:#06x} round-trips");
    }
}

#[test]
fn bf16_rounds_to_nearest_even_on_every_instruction_set_path() {
    for path in kernels::available_simd_paths() {
        kernels::force_simd_path(Some(path));
        let what = format!("bf16, {} path", path.as_str());
        let n = check_encoding(BF16, &what, f32_to_bf16);
        check_round_trip(BF16, &what, bf16_to_f32, f32_to_bf16);
        // The appending forms the wire uses: the same results, from bytes at an odd address.
        let append_encode = |src: &[f32], dst: &mut [u16]| {
            let mut out = vec![7u16];
            kernels::append_f32_as_bf16(src, &mut out);
            assert_eq!(out[0], 7, "appends after what is there");
            dst.copy_from_slice(&out[1..]);
        };
        let append_decode = |src: &[u16], dst: &mut [f32]| {
            let bytes: Vec<u8> = std::iter::once(0xAB)
                .chain(src.iter().flat_map(|h| h.to_le_bytes()))
                .collect();
            let mut out = Vec::new();
            kernels::append_bf16_le_as_f32(&bytes[1..], &mut out);
            dst.copy_from_slice(&out);
        };
        let what = format!("{what}, appending");
        check_encoding(BF16, &what, append_encode);
        check_round_trip(BF16, &what, append_decode, append_encode);
        println!("{what}: {n} values checked");
    }
    kernels::force_simd_path(None);
}

#[test]
fn f16_rounds_to_nearest_even_with_and_without_conversion_instructions() {
    let n = check_encoding(F16, "f16, slice conversion", f32_to_f16);
    check_round_trip(F16, "f16, slice conversion", f16_to_f32, f32_to_f16);
    // half's software conversion: what a CPU without F16C or fp16 instructions runs.
    let software_encode = |src: &[f32], dst: &mut [u16]| {
        for (d, &x) in dst.iter_mut().zip(src) {
            *d = half::f16::from_f32_const(x).to_bits();
        }
    };
    let software_decode = |src: &[u16], dst: &mut [f32]| {
        for (d, &b) in dst.iter_mut().zip(src) {
            *d = half::f16::from_bits(b).to_f32_const();
        }
    };
    check_encoding(F16, "f16, software", software_encode);
    check_round_trip(F16, "f16, software", software_decode, software_encode);
    println!("f16: {n} values checked, with and without the instructions");
}

#[test]
fn beyond_the_range_is_infinite_and_below_it_is_zero_or_subnormal() {
    let enc = |f: fn(&[f32], &mut [u16]), x: f32| {
        let mut out = [0u16];
        f(&[x], &mut out);
        out[0]
    };
    // f16: 65 504 is the largest; 65 520 is the midpoint to the next step, a tie to even (∞).
    assert_eq!(enc(f32_to_f16, 65_504.0), 0x7BFF);
    assert_eq!(enc(f32_to_f16, 65_519.996), 0x7BFF);
    assert_eq!(enc(f32_to_f16, 65_520.0), 0x7C00);
    assert_eq!(enc(f32_to_f16, -1e9), 0xFC00);
    // The smallest f16 subnormal is 2^-24; half of it ties to even (zero), a hair more rounds up.
    assert_eq!(enc(f32_to_f16, 2f32.powi(-24)), 0x0001);
    assert_eq!(enc(f32_to_f16, 2f32.powi(-25)), 0x0000);
    assert_eq!(enc(f32_to_f16, next_up(2f32.powi(-25))), 0x0001);
    // bf16 keeps f32's exponent range: only f32's own top rounds to ∞.
    assert_eq!(enc(f32_to_bf16, f32::MAX), 0x7F80);
    assert_eq!(enc(f32_to_bf16, 3.389_531_4e38), 0x7F7F);
    assert_eq!(enc(f32_to_bf16, -0.0), 0x8000);
    assert_eq!(
        enc(f32_to_bf16, 1e-40),
        0x0001,
        "an f32 subnormal stays subnormal"
    );
    // 1 + 2^-8 is the tie between 1 and 1 + 2^-7: to even (1); 1 + 3·2^-8 ties up to even.
    assert_eq!(enc(f32_to_bf16, 1.0 + 2f32.powi(-8)), 0x3F80);
    assert_eq!(enc(f32_to_bf16, 1.0 + 3.0 * 2f32.powi(-8)), 0x3F82);
}

#[test]
fn slices_of_different_lengths_are_refused() {
    let caught = std::panic::catch_unwind(|| f32_to_bf16(&[1.0, 2.0], &mut [0u16; 1]));
    assert!(
        caught.is_err(),
        "a shorter destination is a bug, not a silent truncation"
    );
}
