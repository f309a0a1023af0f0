//! Framing: `[u32 LE length][u16 LE protocol version][MessagePack message]`, with a bound on the
//! length checked before anything is allocated, and the version checked before the body is
//! decoded (so a peer from another version gets "wrong version", not "malformed").

use tokio::io::{AsyncRead, AsyncReadExt};

use super::Message;

/// The protocol this build speaks.
pub const PROTOCOL_VERSION: u16 = 5;

/// Largest control frame (every message without a tensor).
pub const CONTROL_FRAME_LIMIT: usize = 64 * 1024;

/// Largest legal frame for a model of `params_len` values: the tensor plus slack for the header.
pub fn frame_limit(params_len: usize) -> usize {
    params_len
        .saturating_mul(4)
        .saturating_add(CONTROL_FRAME_LIMIT)
}

/// What can be wrong with a frame.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    /// The length prefix exceeds what any legal message can need.
    #[error("frame of {len} bytes exceeds the limit of {limit} bytes")]
    Oversized {
        /// Announced length.
        len: usize,
        /// The limit in force.
        limit: usize,
    },
    /// The stream ended inside a frame.
    #[error("stream ended inside a frame (expected {expected} bytes)")]
    Truncated {
        /// Bytes the frame announced.
        expected: usize,
    },
    /// The peer speaks another protocol version.
    #[error("protocol version {got}, this node speaks version {PROTOCOL_VERSION}")]
    Version {
        /// The version in the frame.
        got: u16,
    },
    /// The body is not a valid message.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// Reading or writing failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// The complete frame (length prefix included) of `msg`, encoded in place (no copy of the body).
pub fn encode(msg: &Message) -> Result<Vec<u8>, ProtoError> {
    let mut frame = Vec::with_capacity(64 + tensor_bytes(msg));
    frame.extend_from_slice(&[0u8; 4]);
    frame.extend_from_slice(&PROTOCOL_VERSION.to_le_bytes());
    rmp_serde::encode::write_named(&mut frame, msg)
        .map_err(|e| ProtoError::Malformed(e.to_string()))?;
    let payload_len = frame.len() - 4;
    let len = u32::try_from(payload_len).map_err(|_| ProtoError::Oversized {
        len: payload_len,
        limit: u32::MAX as usize,
    })?;
    frame[..4].copy_from_slice(&len.to_le_bytes());
    Ok(frame)
}

/// Bytes of the tensor a message carries (for sizing buffers).
fn tensor_bytes(msg: &Message) -> usize {
    msg.tensor().map_or(0, |t| t.len() * 4)
}

/// Decodes a payload (version + body, without the length prefix).
pub fn decode_payload(payload: &[u8]) -> Result<Message, ProtoError> {
    let Some((version, body)) = payload.split_first_chunk::<2>() else {
        return Err(ProtoError::Malformed(format!(
            "payload of {} bytes has no version",
            payload.len()
        )));
    };
    let got = u16::from_le_bytes(*version);
    if got != PROTOCOL_VERSION {
        return Err(ProtoError::Version { got });
    }
    rmp_serde::from_slice(body).map_err(|e| ProtoError::Malformed(e.to_string()))
}

/// Reads one frame of at most `limit` payload bytes. `Ok(None)` at a clean end of stream
/// (before the first byte of a frame).
pub async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    limit: usize,
) -> Result<Option<Message>, ProtoError> {
    Ok(read_frame_sized(r, limit).await?.map(|(m, _)| m))
}

/// [`read_frame`], with the frame's size in bytes (length prefix included).
pub async fn read_frame_sized<R: AsyncRead + Unpin>(
    r: &mut R,
    limit: usize,
) -> Result<Option<(Message, usize)>, ProtoError> {
    let mut prefix = [0u8; 4];
    let mut got = 0;
    while got < 4 {
        let n = r.read(&mut prefix[got..]).await?;
        if n == 0 {
            return if got == 0 {
                Ok(None)
            } else {
                Err(ProtoError::Truncated { expected: 4 })
            };
        }
        got += n;
    }
    let len = u32::from_le_bytes(prefix) as usize;
    if len > limit {
        return Err(ProtoError::Oversized { len, limit });
    }
    // Read into uninitialised capacity (no zero-fill of a megabyte first), never past the frame.
    let mut payload = Vec::with_capacity(len);
    let mut body = (&mut *r).take(len as u64);
    while payload.len() < len {
        if body.read_buf(&mut payload).await? == 0 {
            return Err(ProtoError::Truncated { expected: len });
        }
    }
    decode_payload(&payload).map(|m| Some((m, len + 4)))
}
