//! `Vec<u32>` as one MessagePack `bin` of little-endian bytes (a sparse gradient's coordinates):
//! 4 bytes per value and one copy, where a sequence would cost up to 5 bytes and a call each.

use std::fmt;

use serde::de::{self, Visitor};
use serde::{Deserializer, Serializer};

/// Serializes `v` as `bin` (little-endian `u32`s; the in-memory bytes on this little-endian
/// machine).
pub fn serialize<S: Serializer>(v: &[u32], s: S) -> Result<S::Ok, S::Error> {
    s.serialize_bytes(bytemuck::cast_slice(v))
}

/// Deserializes a `bin` whose length is a multiple of 4 into `u32`s (any alignment).
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u32>, D::Error> {
    d.deserialize_bytes(U32BytesVisitor)
}

struct U32BytesVisitor;

impl<'de> Visitor<'de> for U32BytesVisitor {
    type Value = Vec<u32>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a byte string of little-endian u32 values")
    }

    fn visit_bytes<E: de::Error>(self, b: &[u8]) -> Result<Vec<u32>, E> {
        if b.len() % 4 != 0 {
            return Err(E::custom(format!(
                "index list of {} bytes is not a whole number of u32 values",
                b.len()
            )));
        }
        Ok(b.chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect())
    }

    fn visit_borrowed_bytes<E: de::Error>(self, b: &'de [u8]) -> Result<Vec<u32>, E> {
        self.visit_bytes(b)
    }

    fn visit_byte_buf<E: de::Error>(self, b: Vec<u8>) -> Result<Vec<u32>, E> {
        self.visit_bytes(&b)
    }
}
