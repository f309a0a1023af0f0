//! Framing: `[u32 LE payload length][u16 LE protocol version][u32 LE header length][MessagePack
//! header][tensor]`. The header is the message with its tensor (if its kind has one) left empty;
//! the tensor follows as one tag byte ([`WireDtype::tag`]) and its values, so a reader converts
//! them straight from the transport's buffers into `f32`s ([`read_frame_from`]), never gathering
//! the frame first. Lengths are checked against the bound before anything is allocated, and the
//! version before the header is decoded (so a peer from another version gets "wrong version",
//! not "malformed").

use std::future::Future;
use std::io;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

use super::{encode_chunks, Message, TensorDecoder, WireDtype};

/// The protocol this build speaks.
pub const PROTOCOL_VERSION: u16 = 6;

/// Largest control frame (every message without a tensor).
pub const CONTROL_FRAME_LIMIT: usize = 64 * 1024;

/// Bytes after the length prefix before the header: the version and the header's length.
const HEAD_FIELDS: usize = 6;

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

/// The complete frame (length prefix included) of `msg`, its tensor in `f32`, as one buffer.
pub fn encode(msg: &Message) -> Result<Vec<u8>, ProtoError> {
    let chunks = encode_chunks(msg.clone(), WireDtype::F32)?;
    let mut frame = Vec::with_capacity(chunks.iter().map(Bytes::len).sum());
    for chunk in &chunks {
        frame.extend_from_slice(chunk);
    }
    Ok(frame)
}

/// The head of a frame: length prefix, version, header length, the header (`msg`, whose tensor
/// must be empty) and, when a tensor of `tensor_bytes` bytes in `dtype` follows, its tag byte.
pub(super) fn encode_head(
    msg: &Message,
    tensor: Option<(WireDtype, usize)>,
) -> Result<Vec<u8>, ProtoError> {
    let mut head = Vec::with_capacity(64);
    head.extend_from_slice(&[0u8; 4]);
    head.extend_from_slice(&PROTOCOL_VERSION.to_le_bytes());
    head.extend_from_slice(&[0u8; 4]);
    rmp_serde::encode::write_named(&mut head, msg)
        .map_err(|e| ProtoError::Malformed(e.to_string()))?;
    let header_len = head.len() - 4 - HEAD_FIELDS;
    let mut tensor_bytes = 0;
    if let Some((dtype, bytes)) = tensor {
        head.push(dtype.tag());
        tensor_bytes = bytes;
    }
    let payload_len = (head.len() - 4).saturating_add(tensor_bytes);
    let too_big = |len| ProtoError::Oversized {
        len,
        limit: u32::MAX as usize,
    };
    let payload = u32::try_from(payload_len).map_err(|_| too_big(payload_len))?;
    let header = u32::try_from(header_len).map_err(|_| too_big(header_len))?;
    head[..4].copy_from_slice(&payload.to_le_bytes());
    head[6..10].copy_from_slice(&header.to_le_bytes());
    Ok(head)
}

/// The header length a payload of `payload_len` bytes announces in `fields` (version and header
/// length), checked: the right version, and a header that fits the payload and the bound.
fn header_len(fields: [u8; HEAD_FIELDS], payload_len: usize) -> Result<usize, ProtoError> {
    let got = u16::from_le_bytes([fields[0], fields[1]]);
    if got != PROTOCOL_VERSION {
        return Err(ProtoError::Version { got });
    }
    let len = u32::from_le_bytes([fields[2], fields[3], fields[4], fields[5]]) as usize;
    if len > payload_len - HEAD_FIELDS {
        return Err(ProtoError::Malformed(format!(
            "a header of {len} bytes in a payload of {payload_len} bytes"
        )));
    }
    Ok(len)
}

/// The message in `header`, whose tensor (if its kind has one) must be empty.
fn decode_header(header: &[u8]) -> Result<Message, ProtoError> {
    let msg: Message =
        rmp_serde::from_slice(header).map_err(|e| ProtoError::Malformed(e.to_string()))?;
    if let Some(t) = msg.tensor().filter(|t| !t.is_empty()) {
        return Err(ProtoError::Malformed(format!(
            "a {} header carries {} tensor values itself",
            msg.kind(),
            t.len()
        )));
    }
    Ok(msg)
}

/// After `msg`'s header, `rest` payload bytes remain: none for a message without a tensor; for
/// one with a tensor, at least the tag byte.
fn check_rest(msg: &Message, rest: usize) -> Result<(), ProtoError> {
    match (msg.tensor().is_some(), rest) {
        (false, 0) | (true, 1..) => Ok(()),
        (false, n) => Err(ProtoError::Malformed(format!(
            "{n} bytes follow the header of a {} message, which has no tensor",
            msg.kind()
        ))),
        (true, 0) => Err(ProtoError::Malformed(format!(
            "a {} frame ends before its tensor",
            msg.kind()
        ))),
    }
}

/// A decoder for the `bytes` tensor bytes after a tag byte `tag`.
fn tensor_decoder(tag: u8, bytes: usize) -> Result<TensorDecoder, ProtoError> {
    WireDtype::from_tag(tag)
        .and_then(|dtype| TensorDecoder::new(dtype, bytes))
        .map_err(ProtoError::Malformed)
}

/// `msg` with its tensor set to what `decoder` converted.
fn with_tensor(mut msg: Message, decoder: TensorDecoder) -> Result<Message, ProtoError> {
    let values = decoder
        .finish()
        .map_err(|missing| ProtoError::Truncated { expected: missing })?;
    if let Some(t) = msg.tensor_mut() {
        *t = values;
    }
    Ok(msg)
}

/// Decodes a payload (everything after the length prefix).
pub fn decode_payload(payload: &[u8]) -> Result<Message, ProtoError> {
    let Some((fields, body)) = payload.split_first_chunk::<HEAD_FIELDS>() else {
        return Err(ProtoError::Malformed(format!(
            "payload of {} bytes has no version and header length",
            payload.len()
        )));
    };
    let len = header_len(*fields, payload.len())?;
    let (header, rest) = body.split_at(len);
    let msg = decode_header(header)?;
    check_rest(&msg, rest.len())?;
    let Some((&tag, values)) = rest.split_first() else {
        return Ok(msg);
    };
    let mut decoder = tensor_decoder(tag, values.len())?;
    decoder.push(values).map_err(ProtoError::Malformed)?;
    with_tensor(msg, decoder)
}

/// A stream's bytes, a chunk at a time — the transport's own buffers where it has them (a QUIC
/// stream), so a tensor is converted from them without being gathered first.
pub trait ChunkRead {
    /// At most `max` (> 0) of the next bytes; `None` at the end of the stream.
    fn read_chunk(&mut self, max: usize) -> impl Future<Output = io::Result<Option<Bytes>>>;
}

/// Any [`AsyncRead`] as a [`ChunkRead`], through a buffer of its own (tests, fuzzing).
pub struct ReadChunks<R>(pub R);

impl<R: AsyncRead + Unpin> ChunkRead for ReadChunks<R> {
    async fn read_chunk(&mut self, max: usize) -> io::Result<Option<Bytes>> {
        let mut buf = BytesMut::with_capacity(max.min(64 * 1024));
        let n = (&mut self.0).take(max as u64).read_buf(&mut buf).await?;
        Ok((n > 0).then(|| buf.freeze()))
    }
}

/// Appends exactly `n` more bytes of `src` to `out`; `Ok(false)` if the stream ends first.
async fn read_exactly<C: ChunkRead>(src: &mut C, n: usize, out: &mut Vec<u8>) -> io::Result<bool> {
    let end = out.len() + n;
    while out.len() < end {
        match src.read_chunk(end - out.len()).await? {
            Some(chunk) => out.extend_from_slice(&chunk),
            None => return Ok(false),
        }
    }
    Ok(true)
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
    read_frame_from(&mut ReadChunks(r), limit).await
}

/// [`read_frame_sized`] from a [`ChunkRead`]: the small fields are gathered, the tensor is
/// converted chunk by chunk as it arrives.
pub async fn read_frame_from<C: ChunkRead>(
    src: &mut C,
    limit: usize,
) -> Result<Option<(Message, usize)>, ProtoError> {
    let mut head = Vec::with_capacity(64);
    if !read_exactly(src, 4, &mut head).await? {
        return if head.is_empty() {
            Ok(None)
        } else {
            Err(ProtoError::Truncated { expected: 4 })
        };
    }
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    if len > limit {
        return Err(ProtoError::Oversized { len, limit });
    }
    let truncated = || ProtoError::Truncated { expected: len };
    if len < HEAD_FIELDS {
        return Err(ProtoError::Malformed(format!(
            "payload of {len} bytes has no version and header length"
        )));
    }
    head.clear();
    if !read_exactly(src, HEAD_FIELDS, &mut head).await? {
        return Err(truncated());
    }
    let mut fields = [0u8; HEAD_FIELDS];
    fields.copy_from_slice(&head);
    let header_len = header_len(fields, len)?;
    head.clear();
    if !read_exactly(src, header_len, &mut head).await? {
        return Err(truncated());
    }
    let msg = decode_header(&head)?;
    let rest = len - HEAD_FIELDS - header_len;
    check_rest(&msg, rest)?;
    if rest == 0 {
        return Ok(Some((msg, len + 4)));
    }
    head.clear();
    if !read_exactly(src, 1, &mut head).await? {
        return Err(truncated());
    }
    let mut decoder = tensor_decoder(head[0], rest - 1)?;
    while decoder.remaining() > 0 {
        let chunk = src
            .read_chunk(decoder.remaining())
            .await?
            .ok_or_else(truncated)?;
        decoder.push(&chunk).map_err(ProtoError::Malformed)?;
    }
    with_tensor(msg, decoder).map(|m| Some((m, len + 4)))
}
