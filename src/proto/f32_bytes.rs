//! `Vec<f32>` as one MessagePack `bin` of little-endian bytes: a memcpy-speed encoding, 4 bytes
//! per value, where a plain sequence would cost 5 bytes and a serde call per value. (A frame's
//! tensor travels after the header in the wire dtype; what stays in a header is `f32`.)

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};

use super::wire_dtype::decode_f32_bin;

/// Serializes `v` as `bin` (little-endian `f32`s; the crate refuses to build big-endian, so the
/// in-memory bytes are the wire bytes and no conversion or copy happens here).
pub fn serialize<S: Serializer>(v: &[f32], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bytes(bytemuck::cast_slice(v))
}

/// Deserializes a `bin` of little-endian `f32`s (any alignment); an error unless whole values.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<f32>, D::Error> {
    d.deserialize_bytes(F32BytesVisitor)
}

struct F32BytesVisitor;

impl<'de> Visitor<'de> for F32BytesVisitor {
    type Value = Vec<f32>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a byte string of little-endian f32 values")
    }

    fn visit_bytes<E: de::Error>(self, b: &[u8]) -> Result<Vec<f32>, E> {
        decode_f32_bin(b).map_err(E::custom)
    }

    fn visit_borrowed_bytes<E: de::Error>(self, b: &'de [u8]) -> Result<Vec<f32>, E> {
        self.visit_bytes(b)
    }

    fn visit_byte_buf<E: de::Error>(self, b: Vec<u8>) -> Result<Vec<f32>, E> {
        self.visit_bytes(&b)
    }
}
