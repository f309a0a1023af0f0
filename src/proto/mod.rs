//! The wire protocol: versioned, length-prefixed, bounded frames of a MessagePack header and a
//! tensor of raw little-endian values after it.

mod chunked;
mod f32_bytes;
mod frame;
mod message;
mod u32_bytes;
mod wire_dtype;

pub use crate::decen::{NodeStats, ReduceKind};
pub use chunked::{encode_chunks, encode_chunks_with, frame_size};
pub use frame::{
    decode_payload, encode, frame_limit, read_frame, read_frame_from, read_frame_sized, ChunkRead,
    ProtoError, ReadChunks, CONTROL_FRAME_LIMIT, PROTOCOL_VERSION,
};
pub use message::{Message, RefusalCode, Role};
pub use wire_dtype::{TensorDecoder, WireDtype, WireTensor};

#[cfg(not(target_endian = "little"))]
compile_error!("lagom's wire format and tensor copies assume a little-endian machine");
