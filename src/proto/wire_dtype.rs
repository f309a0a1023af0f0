//! The precision of tensors on the wire (`net.wire_dtype`). A tensor is one MessagePack `bin`:
//! `f32` as 4 bytes per value (a multiple of 4 bytes, the format of every earlier build), `bf16`
//! and `f16` as 2 bytes per value followed by one tag byte — an odd length, so the receiver tells
//! the three apart from the bytes alone and always holds `f32` once decoded.

use std::borrow::Cow;
use std::fmt;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::kernels::{
    append_bf16_le_as_f32, append_f32_as_bf16, bf16_to_f32, f16_to_f32, f32_to_bf16, f32_to_f16,
};

/// How a node sends tensors: every node of a run uses the same one (checked at `Hello`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WireDtype {
    /// 32-bit floats as they are (no rounding).
    #[default]
    F32,
    /// bfloat16: f32's range, 8 bits of mantissa (round to nearest even).
    Bf16,
    /// IEEE half: 11 bits of mantissa, finite up to 65 504 (larger values become infinite, which
    /// the server rejects as a non-finite gradient).
    F16,
}

/// The tag byte that ends a `bf16` tensor.
const BF16_TAG: u8 = 1;
/// The tag byte that ends an `f16` tensor.
const F16_TAG: u8 = 2;
/// Values converted per step when the bytes of a half-precision tensor are not 2-aligned.
const UNALIGNED_BLOCK: usize = 4096;

impl WireDtype {
    /// Every dtype, in the order the documentation lists them.
    pub const ALL: [WireDtype; 3] = [WireDtype::F32, WireDtype::Bf16, WireDtype::F16];

    /// The name used in configuration and logs (`f32`, `bf16`, `f16`).
    pub fn as_str(self) -> &'static str {
        match self {
            WireDtype::F32 => "f32",
            WireDtype::Bf16 => "bf16",
            WireDtype::F16 => "f16",
        }
    }

    /// Bytes of the `bin` that carries `values` values in this dtype.
    pub fn encoded_len(self, values: usize) -> usize {
        match self {
            WireDtype::F32 => values.saturating_mul(4),
            WireDtype::Bf16 | WireDtype::F16 => values.saturating_mul(2).saturating_add(1),
        }
    }

    /// The bytes of `values` in this dtype: for `f32` the vector's own memory (no copy), for a
    /// half precision one conversion pass into a new buffer (round to nearest even).
    pub fn encode(self, values: Vec<f32>) -> Bytes {
        self.wire_tensor(Cow::Owned(values)).0
    }

    /// `values` in their wire form in this dtype, made from wherever they are: owned `f32`
    /// values are sent as they are, borrowed ones copied once; a half precision is converted
    /// once, straight from the borrowed values (round to nearest even).
    pub fn wire_tensor(self, values: Cow<'_, [f32]>) -> WireTensor {
        let tag = match self {
            WireDtype::F32 => return WireTensor(Bytes::from_owner(F32Bytes(values.into_owned()))),
            WireDtype::Bf16 => BF16_TAG,
            WireDtype::F16 => F16_TAG,
        };
        let n = values.len();
        // One u16 more than the values: its first byte (little-endian) is the tag.
        let mut halves = Vec::with_capacity(n + 1);
        match self {
            WireDtype::Bf16 => append_f32_as_bf16(&values, &mut halves),
            _ => {
                halves.resize(n, 0);
                f32_to_f16(&values, &mut halves);
            }
        }
        drop(values);
        halves.push(u16::from(tag));
        WireTensor(Bytes::from_owner(HalfBytes(halves)))
    }

    /// `values` as a receiver of them in this dtype holds them (rounded to nearest even; `f32`
    /// unchanged), without building the wire bytes.
    pub fn rounded(self, mut values: Vec<f32>) -> Vec<f32> {
        if self == WireDtype::F32 {
            return values;
        }
        let mut halves = vec![0u16; values.len()];
        if self == WireDtype::Bf16 {
            f32_to_bf16(&values, &mut halves);
            bf16_to_f32(&halves, &mut values);
        } else {
            f32_to_f16(&values, &mut halves);
            f16_to_f32(&halves, &mut values);
        }
        values
    }

    /// The dtype of a tensor's `bin` of `len` bytes whose last byte is `last`, or why none.
    fn of_bin(len: usize, last: Option<u8>) -> Result<WireDtype, String> {
        if len % 4 == 0 {
            return Ok(WireDtype::F32);
        }
        match (len % 2, last) {
            (1, Some(BF16_TAG)) => Ok(WireDtype::Bf16),
            (1, Some(F16_TAG)) => Ok(WireDtype::F16),
            (1, Some(tag)) => Err(format!("tensor of {len} bytes has unknown dtype tag {tag}")),
            _ => Err(format!(
                "tensor of {len} bytes is neither whole f32 values nor tagged half precision"
            )),
        }
    }

    /// Decodes a tensor's `bin` (any alignment) into `f32`s, whatever dtype it was sent in.
    pub fn decode(bin: &[u8]) -> Result<Vec<f32>, String> {
        let dtype = Self::of_bin(bin.len(), bin.last().copied())?;
        if dtype == WireDtype::F32 {
            return Ok(f32_from_le_bytes(bin));
        }
        let data = &bin[..bin.len() - 1];
        let n = data.len() / 2;
        if dtype == WireDtype::Bf16 {
            let mut out = Vec::with_capacity(n);
            append_bf16_le_as_f32(data, &mut out);
            return Ok(out);
        }
        let mut out = vec![0f32; n];
        match bytemuck::try_cast_slice::<u8, u16>(data) {
            Ok(halves) => f16_to_f32(halves, &mut out),
            Err(_) => {
                let mut block = [0u16; UNALIGNED_BLOCK];
                for (bytes, dst) in data
                    .chunks(2 * UNALIGNED_BLOCK)
                    .zip(out.chunks_mut(UNALIGNED_BLOCK))
                {
                    let block = &mut block[..dst.len()];
                    for (h, b) in block.iter_mut().zip(bytes.chunks_exact(2)) {
                        *h = u16::from_le_bytes([b[0], b[1]]);
                    }
                    f16_to_f32(block, dst);
                }
            }
        }
        Ok(out)
    }
}

/// The little-endian f32 values in `bin` (whose length is a multiple of 4, at any alignment) in
/// aligned storage, written once (no zero-fill before the copy) and in safe code: bytes from the
/// network never meet `unsafe`. The loop compiles to vector loads and stores: 26 µs for a
/// ResNet-20 tensor against 23 µs for a plain copy and 24 µs for an unsafe `memcpy` into
/// uninitialised capacity (`decode_wire_f32` in `benches/half_precision.rs`, AMD EPYC).
fn f32_from_le_bytes(bin: &[u8]) -> Vec<f32> {
    let mut v = Vec::with_capacity(bin.len() / 4);
    v.extend(
        bin.chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
    );
    v
}

impl fmt::Display for WireDtype {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A tensor in its wire form: the bytes of its `bin` in one [`WireDtype`], as
/// [`WireDtype::wire_tensor`] makes them (and as a frame carries them after its header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireTensor(Bytes);

impl WireTensor {
    /// The `bin`'s bytes.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// The `bin`'s length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the `bin` is empty (an `f32` tensor of no values).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A `Vec<f32>` viewed as its little-endian bytes, so it can back a [`Bytes`] without a copy.
struct F32Bytes(Vec<f32>);

impl AsRef<[u8]> for F32Bytes {
    fn as_ref(&self) -> &[u8] {
        bytemuck::cast_slice(&self.0)
    }
}

/// Half-precision values and, in the low byte of one more `u16`, the tag: its bytes end after
/// the tag (an odd length).
struct HalfBytes(Vec<u16>);

impl AsRef<[u8]> for HalfBytes {
    fn as_ref(&self) -> &[u8] {
        let bytes: &[u8] = bytemuck::cast_slice(&self.0);
        &bytes[..bytes.len() - 1]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: usize) -> Vec<f32> {
        (0..n).map(|i| (i as f32 - 7.5) * 0.37).collect()
    }

    #[test]
    fn f32_goes_out_as_its_own_bytes_and_comes_back_exactly() {
        let v = sample(1001);
        let sent = v.clone();
        let address = sent.as_ptr() as usize;
        let bytes = WireDtype::F32.encode(sent);
        assert_eq!(bytes.as_ptr() as usize, address);
        assert_eq!(bytes.len(), WireDtype::F32.encoded_len(1001));
        assert_eq!(WireDtype::decode(&bytes).unwrap(), v);
        // The same bytes at an odd address (a borrowed `bin` can start anywhere).
        let mut shifted = vec![0u8; bytes.len() + 1];
        shifted[1..].copy_from_slice(&bytes);
        assert_eq!(WireDtype::decode(&shifted[1..]).unwrap(), v);
    }

    #[test]
    fn half_precisions_are_tagged_odd_lengths_that_decode_to_the_rounded_values() {
        for dtype in [WireDtype::Bf16, WireDtype::F16] {
            for n in [0usize, 1, 2, 3, 4095, 4096, 4097, 10_000] {
                let v = sample(n);
                let bytes = dtype.encode(v.clone());
                assert_eq!(bytes.len(), dtype.encoded_len(n));
                assert_eq!(bytes.len() % 2, 1, "{dtype} {n}");
                let back = WireDtype::decode(&bytes).unwrap();
                let rounded: Vec<f32> = v
                    .iter()
                    .map(|&x| match dtype {
                        WireDtype::Bf16 => half::bf16::from_f32(x).to_f32(),
                        _ => half::f16::from_f32(x).to_f32(),
                    })
                    .collect();
                assert_eq!(back, rounded, "{dtype} {n}");
                assert_eq!(dtype.rounded(v.clone()), rounded, "{dtype} {n}");
                // The same bytes at an odd address (a borrowed `bin` can start anywhere).
                let mut shifted = vec![0u8; bytes.len() + 1];
                shifted[1..].copy_from_slice(&bytes);
                assert_eq!(WireDtype::decode(&shifted[1..]).unwrap(), rounded);
            }
        }
    }

    #[test]
    fn nan_and_infinities_survive_every_dtype() {
        let v = vec![f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1.0, -0.0];
        for dtype in WireDtype::ALL {
            let back = WireDtype::decode(&dtype.encode(v.clone())).unwrap();
            assert!(back[0].is_nan(), "{dtype}");
            assert_eq!(&back[1..], &v[1..], "{dtype}");
            assert!(back[4].is_sign_negative(), "{dtype}");
        }
        // Beyond f16's range a value becomes infinite, which the finiteness checks then catch.
        let big = WireDtype::decode(&WireDtype::F16.encode(vec![1e6, -1e6])).unwrap();
        assert_eq!(big, vec![f32::INFINITY, f32::NEG_INFINITY]);
    }

    #[test]
    fn malformed_bins_are_refused_with_what_is_wrong() {
        let e = WireDtype::decode(&[0u8; 6]).unwrap_err();
        assert!(e.contains("neither whole f32"), "{e}");
        let e = WireDtype::decode(&[0, 0, 9]).unwrap_err();
        assert!(e.contains("unknown dtype tag 9"), "{e}");
        assert_eq!(WireDtype::decode(&[]).unwrap(), Vec::<f32>::new());
        assert_eq!(WireDtype::decode(&[BF16_TAG]).unwrap(), Vec::<f32>::new());
    }

    #[test]
    fn names_round_trip_through_serde() {
        for dtype in WireDtype::ALL {
            let json = serde_json::to_string(&dtype).unwrap();
            assert_eq!(json, format!("\"{}\"", dtype.as_str()));
            assert_eq!(serde_json::from_str::<WireDtype>(&json).unwrap(), dtype);
        }
    }
}
