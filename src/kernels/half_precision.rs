//! f32 ↔ bf16 and f32 ↔ f16 conversions of whole slices, for tensors sent in lower precision:
//! encoding rounds to nearest with ties to even, keeps ±∞, turns every NaN into a NaN (quieted;
//! the NaN detection of the receiver still sees it) and sends f32 values beyond the target's
//! range to ±∞ as IEEE 754 does; decoding is exact. bf16 is bit arithmetic that the compiler
//! vectorizes (`simd_fn!`); f16 uses the `half` crate's slice conversions, which run the CPU's
//! conversion instructions (x86 F16C, aarch64 fp16) where it has them and a software conversion
//! with the same results elsewhere.

use half::slice::{HalfBitsSliceExt, HalfFloatSliceExt};

/// `x` as bf16 bits, rounded to nearest with ties to even (a NaN stays a NaN, quieted).
#[inline(always)]
fn bf16_bits(x: f32) -> u16 {
    let bits = x.to_bits();
    // Round to nearest, ties to even: add just under half an ulp of bf16, plus the bit that
    // makes an exact tie round up only from an odd result.
    let rounded = bits.wrapping_add(0x7FFF + ((bits >> 16) & 1)) >> 16;
    let nan = (bits & 0x7FFF_FFFF) > 0x7F80_0000;
    if nan {
        ((bits >> 16) | 0x0040) as u16
    } else {
        rounded as u16
    }
}

crate::simd_fn! {
    /// One slice of [`f32_to_bf16`].
    fn encode_bf16(src: &[f32], dst: &mut [u16]) {
        for (d, &x) in dst.iter_mut().zip(src) {
            *d = bf16_bits(x);
        }
    }
}

crate::simd_fn! {
    /// One call of [`append_f32_as_bf16`].
    fn append_encoded_bf16(src: &[f32], dst: &mut Vec<u16>) {
        dst.extend(src.iter().map(|&x| bf16_bits(x)));
    }
}

crate::simd_fn! {
    /// One slice of [`bf16_to_f32`].
    fn decode_bf16(src: &[u16], dst: &mut [f32]) {
        for (d, &b) in dst.iter_mut().zip(src) {
            *d = f32::from_bits(u32::from(b) << 16);
        }
    }
}

crate::simd_fn! {
    /// One call of [`append_bf16_le_as_f32`].
    fn append_decoded_bf16(src: &[u8], dst: &mut Vec<f32>) {
        dst.extend(
            src.chunks_exact(2)
                .map(|b| f32::from_bits(u32::from(u16::from_le_bytes([b[0], b[1]])) << 16)),
        );
    }
}

/// `dst[i]` = `src[i]` as bf16 bits, rounded to nearest (ties to even). Slices of equal length.
pub fn f32_to_bf16(src: &[f32], dst: &mut [u16]) {
    assert_eq!(
        src.len(),
        dst.len(),
        "f32_to_bf16: slices of different lengths"
    );
    encode_bf16(src, dst);
}

/// `dst[i]` = the bf16 bits `src[i]` as f32 (exact). Slices of equal length.
pub fn bf16_to_f32(src: &[u16], dst: &mut [f32]) {
    assert_eq!(
        src.len(),
        dst.len(),
        "bf16_to_f32: slices of different lengths"
    );
    decode_bf16(src, dst);
}

/// Appends `src` as bf16 bits to `dst`, as [`f32_to_bf16`] converts them, writing the new
/// storage once (no zero-fill before the conversion).
pub fn append_f32_as_bf16(src: &[f32], dst: &mut Vec<u16>) {
    append_encoded_bf16(src, dst);
}

/// Appends the little-endian bf16 values in `src` (at any alignment; an odd last byte is
/// ignored) to `dst` as f32 (exact), writing the new storage once.
pub fn append_bf16_le_as_f32(src: &[u8], dst: &mut Vec<f32>) {
    append_decoded_bf16(src, dst);
}

/// `dst[i]` = `src[i]` as IEEE binary16 bits, rounded to nearest (ties to even); beyond ±65 504
/// (from ±65 520 on) ±∞. Slices of equal length.
pub fn f32_to_f16(src: &[f32], dst: &mut [u16]) {
    assert_eq!(
        src.len(),
        dst.len(),
        "f32_to_f16: slices of different lengths"
    );
    dst.reinterpret_cast_mut::<half::f16>()
        .convert_from_f32_slice(src);
}

/// `dst[i]` = the binary16 bits `src[i]` as f32 (exact). Slices of equal length.
pub fn f16_to_f32(src: &[u16], dst: &mut [f32]) {
    assert_eq!(
        src.len(),
        dst.len(),
        "f16_to_f32: slices of different lengths"
    );
    src.reinterpret_cast::<half::f16>()
        .convert_to_f32_slice(dst);
}
