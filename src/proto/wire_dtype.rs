//! The precision of tensors on the wire (`net.wire_dtype`). A frame carries its tensor after
//! the header as a tag byte ([`WireDtype::tag`]) and the values — `f32` as 4 little-endian bytes
//! each, `bf16` and `f16` as 2 — which a [`TensorDecoder`] converts into `f32`s chunk by chunk, as
//! the transport hands them over. Vectors inside a header are MessagePack `bin`s of `f32`s
//! ([`decode_f32_bin`]).

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

/// The tag of an `f32` tensor.
const F32_TAG: u8 = 0;
/// The tag of a `bf16` tensor.
const BF16_TAG: u8 = 1;
/// The tag of an `f16` tensor.
const F16_TAG: u8 = 2;
/// Values converted per step of an `f16` decode (through a stack buffer: the bytes may sit at any
/// alignment).
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

    /// The byte that announces a tensor in this dtype in a frame.
    pub fn tag(self) -> u8 {
        match self {
            WireDtype::F32 => F32_TAG,
            WireDtype::Bf16 => BF16_TAG,
            WireDtype::F16 => F16_TAG,
        }
    }

    /// The dtype a frame's tag byte announces, or what is wrong with it.
    pub fn from_tag(tag: u8) -> Result<WireDtype, String> {
        WireDtype::ALL
            .into_iter()
            .find(|d| d.tag() == tag)
            .ok_or_else(|| format!("unknown tensor dtype tag {tag}"))
    }

    /// Bytes per value.
    pub fn width(self) -> usize {
        match self {
            WireDtype::F32 => 4,
            WireDtype::Bf16 | WireDtype::F16 => 2,
        }
    }

    /// Bytes of the values of a tensor of `values` values in this dtype (the tag not counted).
    pub fn encoded_len(self, values: usize) -> usize {
        values.saturating_mul(self.width())
    }

    /// `values` in their wire form in this dtype, made from wherever they are: owned `f32`
    /// values are sent as they are, borrowed ones copied once; a half precision is converted
    /// once, straight from the borrowed values (round to nearest even).
    pub fn wire_tensor(self, values: Cow<'_, [f32]>) -> WireTensor {
        let bytes = match self {
            WireDtype::F32 => Bytes::from_owner(F32Bytes(values.into_owned())),
            WireDtype::Bf16 => {
                let mut halves = Vec::with_capacity(values.len());
                append_f32_as_bf16(&values, &mut halves);
                Bytes::from_owner(HalfBytes(halves))
            }
            WireDtype::F16 => {
                let mut halves = vec![0u16; values.len()];
                f32_to_f16(&values, &mut halves);
                Bytes::from_owner(HalfBytes(halves))
            }
        };
        WireTensor { dtype: self, bytes }
    }

    /// Appends to `out` the values of `bytes` (whole values of this dtype, little-endian, at any
    /// alignment) as `f32`s.
    pub fn append_decoded(self, bytes: &[u8], out: &mut Vec<f32>) {
        debug_assert_eq!(bytes.len() % self.width(), 0);
        match self {
            WireDtype::F32 => out.extend(
                bytes
                    .chunks_exact(4)
                    .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            ),
            WireDtype::Bf16 => append_bf16_le_as_f32(bytes, out),
            WireDtype::F16 => {
                let mut block = [0u16; UNALIGNED_BLOCK];
                let mut values = [0f32; UNALIGNED_BLOCK];
                for bytes in bytes.chunks(2 * UNALIGNED_BLOCK) {
                    let n = bytes.len() / 2;
                    for (h, b) in block[..n].iter_mut().zip(bytes.chunks_exact(2)) {
                        *h = u16::from_le_bytes([b[0], b[1]]);
                    }
                    f16_to_f32(&block[..n], &mut values[..n]);
                    out.extend_from_slice(&values[..n]);
                }
            }
        }
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
}

/// The values of a header's `bin` of little-endian `f32`s (any alignment); an error unless it is
/// whole values.
pub fn decode_f32_bin(bin: &[u8]) -> Result<Vec<f32>, String> {
    if bin.len() % 4 != 0 {
        return Err(format!(
            "a vector of {} bytes is not whole f32 values",
            bin.len()
        ));
    }
    let mut out = Vec::with_capacity(bin.len() / 4);
    WireDtype::F32.append_decoded(bin, &mut out);
    Ok(out)
}

impl fmt::Display for WireDtype {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A tensor in its wire form: its values' bytes in one [`WireDtype`], as
/// [`WireDtype::wire_tensor`] makes them (and as a frame carries them after its tag byte).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WireTensor {
    dtype: WireDtype,
    bytes: Bytes,
}

impl WireTensor {
    /// The dtype of the values.
    pub fn dtype(&self) -> WireDtype {
        self.dtype
    }

    /// The values' bytes.
    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }

    /// The values' length in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether there are no values.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }
}

/// Converts a frame's tensor into `f32`s as its bytes arrive, in chunks split anywhere (a value
/// cut between two chunks is completed from the next), refusing more or fewer bytes than the
/// frame announced.
#[derive(Debug)]
pub struct TensorDecoder {
    dtype: WireDtype,
    /// Bytes still to come.
    remaining: usize,
    /// The start of a value cut at the end of the previous chunk.
    partial: [u8; 4],
    partial_len: usize,
    values: Vec<f32>,
}

impl TensorDecoder {
    /// A decoder for `bytes` bytes of values in `dtype`; an error unless they are whole values.
    pub fn new(dtype: WireDtype, bytes: usize) -> Result<Self, String> {
        if bytes % dtype.width() != 0 {
            return Err(format!(
                "a {dtype} tensor of {bytes} bytes is not whole {}-byte values",
                dtype.width()
            ));
        }
        Ok(TensorDecoder {
            dtype,
            remaining: bytes,
            partial: [0; 4],
            partial_len: 0,
            values: Vec::with_capacity(bytes / dtype.width()),
        })
    }

    /// Bytes still expected.
    pub fn remaining(&self) -> usize {
        self.remaining
    }

    /// Converts the next `chunk` of the tensor's bytes; an error if it goes past the end.
    pub fn push(&mut self, mut chunk: &[u8]) -> Result<(), String> {
        if chunk.len() > self.remaining {
            return Err(format!(
                "a chunk of {} bytes where only {} tensor bytes remain",
                chunk.len(),
                self.remaining
            ));
        }
        self.remaining -= chunk.len();
        let width = self.dtype.width();
        if self.partial_len > 0 {
            let take = (width - self.partial_len).min(chunk.len());
            self.partial[self.partial_len..self.partial_len + take].copy_from_slice(&chunk[..take]);
            self.partial_len += take;
            chunk = &chunk[take..];
            if self.partial_len < width {
                return Ok(());
            }
            let value = self.partial;
            self.dtype.append_decoded(&value[..width], &mut self.values);
            self.partial_len = 0;
        }
        let whole = chunk.len() - chunk.len() % width;
        self.dtype.append_decoded(&chunk[..whole], &mut self.values);
        let rest = &chunk[whole..];
        self.partial[..rest.len()].copy_from_slice(rest);
        self.partial_len = rest.len();
        Ok(())
    }

    /// The values, once every announced byte has arrived; how many are missing otherwise.
    pub fn finish(self) -> Result<Vec<f32>, usize> {
        if self.remaining > 0 {
            return Err(self.remaining);
        }
        debug_assert_eq!(self.partial_len, 0);
        Ok(self.values)
    }
}

/// A `Vec<f32>` viewed as its little-endian bytes, so it can back a [`Bytes`] without a copy.
struct F32Bytes(Vec<f32>);

impl AsRef<[u8]> for F32Bytes {
    fn as_ref(&self) -> &[u8] {
        bytemuck::cast_slice(&self.0)
    }
}

/// Half-precision values viewed as their little-endian bytes.
struct HalfBytes(Vec<u16>);

impl AsRef<[u8]> for HalfBytes {
    fn as_ref(&self) -> &[u8] {
        bytemuck::cast_slice(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: usize) -> Vec<f32> {
        (0..n).map(|i| (i as f32 - 7.5) * 0.37).collect()
    }

    /// `bytes` decoded as a `dtype` tensor, from an odd address (a chunk can start anywhere).
    fn decoded(dtype: WireDtype, bytes: &[u8]) -> Vec<f32> {
        let mut shifted = vec![0u8; bytes.len() + 1];
        shifted[1..].copy_from_slice(bytes);
        let mut decoder = TensorDecoder::new(dtype, bytes.len()).unwrap();
        decoder.push(&shifted[1..]).unwrap();
        decoder.finish().unwrap()
    }

    #[test]
    fn f32_goes_out_as_its_own_bytes_and_comes_back_exactly() {
        let v = sample(1001);
        let sent = v.clone();
        let address = sent.as_ptr() as usize;
        let tensor = WireDtype::F32.wire_tensor(Cow::Owned(sent));
        assert_eq!(tensor.len(), WireDtype::F32.encoded_len(1001));
        let bytes = tensor.into_bytes();
        assert_eq!(bytes.as_ptr() as usize, address);
        assert_eq!(decoded(WireDtype::F32, &bytes), v);
        assert_eq!(decode_f32_bin(&bytes[..]).unwrap(), v);
    }

    #[test]
    fn half_precisions_decode_to_the_rounded_values() {
        for dtype in [WireDtype::Bf16, WireDtype::F16] {
            for n in [0usize, 1, 2, 3, 4095, 4096, 4097, 10_000] {
                let v = sample(n);
                let tensor = dtype.wire_tensor(Cow::Borrowed(&v));
                assert_eq!(tensor.len(), dtype.encoded_len(n));
                let rounded: Vec<f32> = v
                    .iter()
                    .map(|&x| match dtype {
                        WireDtype::Bf16 => half::bf16::from_f32(x).to_f32(),
                        _ => half::f16::from_f32(x).to_f32(),
                    })
                    .collect();
                assert_eq!(decoded(dtype, &tensor.into_bytes()), rounded, "{dtype} {n}");
                assert_eq!(dtype.rounded(v.clone()), rounded, "{dtype} {n}");
            }
        }
    }

    #[test]
    fn nan_and_infinities_survive_every_dtype() {
        let v = vec![f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1.0, -0.0];
        for dtype in WireDtype::ALL {
            let back = decoded(dtype, &dtype.wire_tensor(Cow::Borrowed(&v)).into_bytes());
            assert!(back[0].is_nan(), "{dtype}");
            assert_eq!(&back[1..], &v[1..], "{dtype}");
            assert!(back[4].is_sign_negative(), "{dtype}");
        }
        // Beyond f16's range a value becomes infinite, which the finiteness checks then catch.
        let big = WireDtype::F16.wire_tensor(Cow::Owned(vec![1e6, -1e6]));
        assert_eq!(
            decoded(WireDtype::F16, &big.into_bytes()),
            vec![f32::INFINITY, f32::NEG_INFINITY]
        );
    }

    #[test]
    fn tags_round_trip_and_malformed_tensors_are_refused_with_what_is_wrong() {
        for dtype in WireDtype::ALL {
            assert_eq!(WireDtype::from_tag(dtype.tag()), Ok(dtype));
        }
        let e = WireDtype::from_tag(9).unwrap_err();
        assert!(e.contains("unknown tensor dtype tag 9"), "{e}");
        let e = TensorDecoder::new(WireDtype::Bf16, 3).unwrap_err();
        assert!(
            e.contains("bf16 tensor of 3 bytes is not whole 2-byte values"),
            "{e}"
        );
        let mut d = TensorDecoder::new(WireDtype::F32, 8).unwrap();
        d.push(&[0; 5]).unwrap();
        let e = d.push(&[0; 4]).unwrap_err();
        assert!(
            e.contains("a chunk of 4 bytes where only 3 tensor bytes remain"),
            "{e}"
        );
        assert_eq!(d.finish().unwrap_err(), 3);
        let e = decode_f32_bin(&[0u8; 6]).unwrap_err();
        assert!(e.contains("6 bytes is not whole f32 values"), "{e}");
        assert_eq!(decode_f32_bin(&[]).unwrap(), Vec::<f32>::new());
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
