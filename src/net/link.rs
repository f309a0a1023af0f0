//! Messages over a QUIC connection: one unidirectional stream per message, so a multi-megabyte
//! tensor never delays a heartbeat or a refusal queued behind it.

use anyhow::{Context, Result};
use bytes::Bytes;
use quinn::Connection;

use crate::proto::{
    encode_chunks, encode_chunks_with, read_frame_from, ChunkRead, Message, WireDtype, WireTensor,
};

/// Sends `msg` (its tensor, if any, in `f32`) on a fresh stream and waits until the peer has
/// received all of it; returns the frame's size in bytes.
pub async fn send(conn: &Connection, msg: Message) -> Result<usize> {
    send_as(conn, msg, WireDtype::F32).await
}

/// [`send`] with the message's tensor in `dtype`. An `f32` tensor goes to the transport without
/// being copied into a frame first; a half-precision one is converted once.
pub async fn send_as(conn: &Connection, msg: Message, dtype: WireDtype) -> Result<usize> {
    let kind = msg.kind();
    let chunks = encode_chunks(msg, dtype).with_context(|| format!("cannot encode {kind}"))?;
    send_chunks(conn, kind, chunks).await
}

/// [`send`] of `msg` (a message with a tensor, left empty) carrying `tensor`, already in its
/// wire form — sent as it is, without a conversion or a copy.
pub async fn send_encoded(conn: &Connection, msg: Message, tensor: WireTensor) -> Result<usize> {
    let kind = msg.kind();
    let chunks =
        encode_chunks_with(msg, tensor).with_context(|| format!("cannot encode {kind}"))?;
    send_chunks(conn, kind, chunks).await
}

/// Sends one frame's chunks on a fresh stream and waits until the peer has received them all.
async fn send_chunks(conn: &Connection, kind: &str, mut chunks: Vec<Bytes>) -> Result<usize> {
    let mut stream = conn
        .open_uni()
        .await
        .with_context(|| format!("cannot open a stream for {kind}"))?;
    let bytes = chunks.iter().map(|c| c.len()).sum();
    stream
        .write_all_chunks(&mut chunks)
        .await
        .with_context(|| format!("cannot send {kind}"))?;
    stream.finish().context("cannot finish the stream")?;
    // `finish` only queues the end; `stopped` resolves once the peer has read it all.
    let _ = stream.stopped().await;
    crate::monitor::bytes_sent(bytes);
    Ok(bytes)
}

/// Receives the next message, at most `limit` bytes. `Ok(None)` when the connection closed
/// cleanly (the peer said goodbye); an error for anything else, including a malformed frame.
pub async fn recv(conn: &Connection, limit: usize) -> Result<Option<Message>> {
    Ok(recv_sized(conn, limit).await?.map(|(m, _)| m))
}

/// [`recv`], with the frame's size in bytes.
pub async fn recv_sized(conn: &Connection, limit: usize) -> Result<Option<(Message, usize)>> {
    let mut stream = match conn.accept_uni().await {
        Ok(s) => s,
        Err(quinn::ConnectionError::ApplicationClosed(_))
        | Err(quinn::ConnectionError::LocallyClosed) => return Ok(None),
        Err(e) => return Err(e).context("connection lost"),
    };
    match read_frame_from(&mut QuicChunks(&mut stream), limit).await? {
        Some((m, bytes)) => {
            crate::monitor::bytes_received(bytes);
            Ok(Some((m, bytes)))
        }
        None => anyhow::bail!("a stream ended before its message started"),
    }
}

/// A QUIC receive stream as a [`ChunkRead`]: its chunks are quinn's own buffers (no copy).
struct QuicChunks<'a>(&'a mut quinn::RecvStream);

impl ChunkRead for QuicChunks<'_> {
    async fn read_chunk(&mut self, max: usize) -> std::io::Result<Option<Bytes>> {
        Ok(self.0.read_chunk(max, true).await?.map(|c| c.bytes))
    }
}
