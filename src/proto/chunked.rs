//! Frames as a list of chunks that share the tensor's memory: the head (length prefix, version,
//! header, tag) is encoded, the tensor is handed over as it is (in `f32`) or converted once (in a
//! half precision). Sending a `Params` or `Gradient` in `f32` then copies nothing of the tensor
//! before the transport encrypts it.

use std::borrow::Cow;

use bytes::Bytes;

use super::frame::encode_head;
use super::{Message, ProtoError, WireDtype, WireTensor};

/// The size in bytes of `msg`'s frame (length prefix included) with its tensor in `dtype`,
/// without encoding the tensor.
pub fn frame_size(msg: &mut Message, dtype: WireDtype) -> Result<usize, ProtoError> {
    let Some(tensor) = msg.tensor_mut().map(std::mem::take) else {
        return Ok(encode_head(msg, None)?.len());
    };
    let n = dtype.encoded_len(tensor.len());
    let head = encode_head(msg, Some((dtype, n)));
    if let Some(t) = msg.tensor_mut() {
        *t = tensor;
    }
    Ok(head?.len() + n)
}

/// The frame of `msg` with its tensor in `dtype`, as chunks: for a message with a tensor, the
/// head and then the tensor's values (for `f32` the vector's own memory); any other message is
/// one chunk.
pub fn encode_chunks(mut msg: Message, dtype: WireDtype) -> Result<Vec<Bytes>, ProtoError> {
    let tensor = match msg.tensor_mut() {
        Some(t) => std::mem::take(t),
        None => return Ok(vec![Bytes::from(encode_head(&msg, None)?)]),
    };
    encode_chunks_with(msg, dtype.wire_tensor(Cow::Owned(tensor)))
}

/// The frame of `msg` carrying `tensor` (already in its wire form) as its tensor, as chunks: the
/// head, then `tensor`'s bytes as they are. `msg` must be a message with a tensor, left empty;
/// anything else is refused.
pub fn encode_chunks_with(msg: Message, tensor: WireTensor) -> Result<Vec<Bytes>, ProtoError> {
    match msg.tensor() {
        Some(t) if t.is_empty() => {}
        Some(t) => {
            return Err(ProtoError::Malformed(format!(
                "a {} message given a wire tensor still holds {} values",
                msg.kind(),
                t.len()
            )))
        }
        None => {
            return Err(ProtoError::Malformed(format!(
                "a {} message carries no tensor",
                msg.kind()
            )))
        }
    }
    let head = encode_head(&msg, Some((tensor.dtype(), tensor.len())))?;
    Ok(vec![Bytes::from(head), tensor.into_bytes()])
}

#[cfg(test)]
mod tests {
    use super::super::encode;
    use super::*;

    fn concat(chunks: &[Bytes]) -> Vec<u8> {
        chunks.iter().flat_map(|c| c.iter().copied()).collect()
    }

    #[test]
    fn chunks_concatenate_to_the_encoded_frame_for_every_tensor_size() {
        for n in [0usize, 1, 3, 63, 64, 65_535, 65_536, 70_000] {
            let params: Vec<f32> = (0..n).map(|i| i as f32 * 0.5 - 7.0).collect();
            let messages = [
                Message::Params {
                    index: 12_345_678_901,
                    params: params.clone(),
                },
                Message::Gradient {
                    worker: 3,
                    incarnation: 1 << 40,
                    seq: 9,
                    ite: 8,
                    loss: 2.5,
                    samples: 128,
                    grad: params.clone(),
                },
                Message::Gossip {
                    from: 2,
                    iteration: 77,
                    lateness: 1,
                    weight: 0.25,
                    x: params.clone(),
                },
                Message::Reduced {
                    iteration: 5,
                    kind: super::super::ReduceKind::ParamsAndBuffers,
                    contributors: 3,
                    values: params.clone(),
                },
                Message::Start {
                    iteration: 0,
                    peers: vec![
                        Some(crate::decen::PeerEntry {
                            addr: "127.0.0.1:4000".into(),
                            incarnation: 3,
                        }),
                        None,
                    ],
                    shared: vec![0.5; 3],
                    params: params.clone(),
                },
                Message::State {
                    worker: 1,
                    iteration: 9,
                    shared: params.iter().map(|v| v * 2.0).collect(),
                    params: params.clone(),
                },
            ];
            for mut msg in messages {
                let whole = encode(&msg).unwrap();
                assert_eq!(
                    frame_size(&mut msg, WireDtype::F32).unwrap(),
                    whole.len(),
                    "{n} values"
                );
                for dtype in [WireDtype::Bf16, WireDtype::F16] {
                    let mut rounded = msg.clone();
                    if let Some(t) = rounded.tensor_mut() {
                        *t = dtype.rounded(t.clone());
                    }
                    let chunks = encode_chunks(msg.clone(), dtype).unwrap();
                    let frame = concat(&chunks);
                    assert_eq!(frame_size(&mut msg, dtype).unwrap(), frame.len());
                    let back = super::super::decode_payload(&frame[4..]).unwrap();
                    assert_eq!(encode(&back).unwrap(), encode(&rounded).unwrap(), "{dtype}");
                }
                let chunks = encode_chunks(msg, WireDtype::F32).unwrap();
                assert_eq!(chunks.len(), 2);
                assert_eq!(concat(&chunks), whole, "{n} values");
            }
        }
    }

    #[test]
    fn a_tensor_encoded_beforehand_makes_the_same_frame_and_a_full_message_is_refused() {
        let values: Vec<f32> = (0..1001).map(|i| i as f32 * 0.37 - 50.0).collect();
        for dtype in WireDtype::ALL {
            let whole = concat(
                &encode_chunks(
                    Message::Params {
                        index: 9,
                        params: values.clone(),
                    },
                    dtype,
                )
                .unwrap(),
            );
            let header = Message::Params {
                index: 9,
                params: Vec::new(),
            };
            let tensor = dtype.wire_tensor(Cow::Borrowed(&values));
            assert_eq!(
                concat(&encode_chunks_with(header, tensor.clone()).unwrap()),
                whole,
                "{dtype}"
            );
            let full = Message::Params {
                index: 9,
                params: vec![1.0],
            };
            assert!(encode_chunks_with(full, tensor.clone()).is_err());
            let control = Message::Heartbeat { at_ms: 1 };
            assert!(encode_chunks_with(control, tensor).is_err());
        }
    }

    #[test]
    fn control_messages_are_one_chunk_equal_to_the_frame() {
        let msg = Message::Stop {
            reason: "done".into(),
        };
        let chunks = encode_chunks(msg.clone(), WireDtype::Bf16).unwrap();
        assert_eq!(chunks.len(), 1);
        assert_eq!(concat(&chunks), encode(&msg).unwrap());
    }

    #[test]
    fn the_tensor_chunk_shares_the_vectors_memory() {
        let grad = vec![1.0f32; 1000];
        let address = grad.as_ptr() as usize;
        let chunks = encode_chunks(
            Message::Params {
                index: 1,
                params: grad,
            },
            WireDtype::F32,
        )
        .unwrap();
        assert_eq!(chunks[1].as_ptr() as usize, address);
    }
}
