//! The wire protocol: versioned, length-prefixed, bounded MessagePack frames; tensors as raw
//! little-endian bytes.

mod chunked;
mod f32_bytes;
mod frame;
mod message;
mod u32_bytes;
mod wire_dtype;

pub use crate::decen::{NodeStats, ReduceKind};
pub use chunked::{encode_chunks, encode_chunks_with, frame_size};
pub use frame::{
    decode_payload, encode, frame_limit, read_frame, read_frame_sized, ProtoError,
    CONTROL_FRAME_LIMIT, PROTOCOL_VERSION,
};
pub use message::{Message, RefusalCode, Role};
pub use wire_dtype::{WireDtype, WireTensor};

#[cfg(not(target_endian = "little"))]
compile_error!("lagom's wire format and tensor copies assume a little-endian machine");
