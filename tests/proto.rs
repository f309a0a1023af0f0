//! The wire protocol: exact round trips, compact tensors, and every kind of bad frame refused
//! with its own error.

use bytes::Bytes;
use lagom::proto::{
    decode_payload, encode, encode_chunks, frame_limit, read_frame, read_frame_from, ChunkRead,
    Message, ProtoError, RefusalCode, Role, WireDtype, CONTROL_FRAME_LIMIT, PROTOCOL_VERSION,
};

fn every_message() -> Vec<Message> {
    let special = vec![
        0.0,
        -0.0,
        1.5,
        f32::MIN_POSITIVE / 2.0,
        f32::INFINITY,
        f32::from_bits(0x7fc0_1234),
    ];
    vec![
        Message::Hello {
            role: Role::Worker,
            worker: 3,
            incarnation: 7,
            layout_hash: 0x51f7_ae78_be47_2bf4,
            params_len: 206_922,
            device: "cuda:0".into(),
            peer_port: 7001,
            wire_dtype: lagom::proto::WireDtype::F32,
        },
        Message::Welcome {
            worker: 3,
            workers: 4,
            incarnation: 12,
            updates: 99,
            weight_decay: 5e-4,
        },
        Message::Refuse {
            code: RefusalCode::LayoutHash,
            detail: "layout 1 ≠ 2".into(),
        },
        Message::Params {
            index: 12,
            params: special.clone(),
        },
        Message::Gradient {
            worker: 1,
            incarnation: 2,
            seq: 3,
            ite: 4,
            loss: 0.25,
            samples: 128,
            grad: special,
        },
        Message::Heartbeat { at_ms: 123_456 },
        Message::Stop {
            reason: "done".into(),
        },
    ]
}

/// Equality that compares f32 tensors by bits (NaN payloads included).
fn same(a: &Message, b: &Message) -> bool {
    let bits = |v: &[f32]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
    match (a, b) {
        (
            Message::Params {
                index: i,
                params: p,
            },
            Message::Params {
                index: j,
                params: q,
            },
        ) => i == j && bits(p) == bits(q),
        (Message::Gradient { grad: g, .. }, Message::Gradient { grad: h, .. }) => {
            let strip = |m: &Message| match m {
                Message::Gradient {
                    worker,
                    incarnation,
                    seq,
                    ite,
                    loss,
                    samples,
                    ..
                } => (*worker, *incarnation, *seq, *ite, loss.to_bits(), *samples),
                _ => unreachable!(),
            };
            strip(a) == strip(b) && bits(g) == bits(h)
        }
        _ => a == b,
    }
}

#[tokio::test]
async fn every_message_round_trips_bit_for_bit_through_a_stream() {
    let messages = every_message();
    let mut stream = Vec::new();
    for m in &messages {
        stream.extend(encode(m).expect("encode"));
    }
    let mut reader = stream.as_slice();
    for m in &messages {
        let got = read_frame(&mut reader, CONTROL_FRAME_LIMIT)
            .await
            .expect("read")
            .expect("a frame");
        assert!(same(m, &got), "{} changed: {got:?}", m.kind());
    }
    assert!(
        read_frame(&mut reader, CONTROL_FRAME_LIMIT)
            .await
            .expect("clean end")
            .is_none(),
        "a clean end of stream is not an error"
    );
}

#[test]
fn tensors_cost_four_bytes_per_value() {
    let n = 272_474;
    let frame = encode(&Message::Params {
        index: 1,
        params: vec![0.5; n],
    })
    .expect("encode");
    assert!(
        frame.len() >= 4 * n && frame.len() < 4 * n + 64,
        "{} bytes",
        frame.len()
    );
    assert!(frame.len() <= frame_limit(n) + 4);
}

#[tokio::test]
async fn an_oversized_length_prefix_is_refused_before_reading_the_body() {
    let mut frame = (u32::MAX).to_le_bytes().to_vec();
    frame.extend_from_slice(&[0u8; 16]);
    let err = read_frame(&mut frame.as_slice(), frame_limit(1000))
        .await
        .expect_err("oversized");
    assert!(
        matches!(err, ProtoError::Oversized { len, limit } if len == u32::MAX as usize && limit == 4000 + 65_536),
        "{err}"
    );
    // A legal Params frame is refused under the control limit.
    let big = encode(&Message::Params {
        index: 0,
        params: vec![1.0; 20_000],
    })
    .expect("encode");
    let err = read_frame(&mut big.as_slice(), CONTROL_FRAME_LIMIT)
        .await
        .expect_err("over the control limit");
    assert!(matches!(err, ProtoError::Oversized { .. }), "{err}");
}

#[tokio::test]
async fn truncated_frames_wrong_versions_and_garbage_get_their_own_errors() {
    let frame = encode(&Message::Heartbeat { at_ms: 5 }).expect("encode");
    for cut in [2, frame.len() - 1] {
        let err = read_frame(&mut &frame[..cut], CONTROL_FRAME_LIMIT)
            .await
            .expect_err("truncated");
        assert!(
            matches!(err, ProtoError::Truncated { .. }),
            "cut {cut}: {err}"
        );
    }
    let mut other = frame.clone();
    other[4..6].copy_from_slice(&(PROTOCOL_VERSION + 1).to_le_bytes());
    let err = read_frame(&mut other.as_slice(), CONTROL_FRAME_LIMIT)
        .await
        .expect_err("version");
    assert!(
        matches!(err, ProtoError::Version { got } if got == PROTOCOL_VERSION + 1),
        "{err}"
    );
    let want = format!("this node speaks version {PROTOCOL_VERSION}");
    assert!(err.to_string().contains(&want), "{err}");

    let mut garbage = 7u32.to_le_bytes().to_vec();
    garbage.extend_from_slice(&PROTOCOL_VERSION.to_le_bytes());
    garbage.extend_from_slice(&[0xc1, 0xff, 0x00, 0x13, 0x37]);
    let err = read_frame(&mut garbage.as_slice(), CONTROL_FRAME_LIMIT)
        .await
        .expect_err("garbage");
    assert!(matches!(err, ProtoError::Malformed(_)), "{err}");
    assert!(matches!(
        decode_payload(&[1]),
        Err(ProtoError::Malformed(_))
    ));
}

/// The payload of `msg`'s frame with its tensor in `dtype`.
fn payload_of(msg: Message, dtype: WireDtype) -> Vec<u8> {
    let chunks = encode_chunks(msg, dtype).expect("encode");
    let frame: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
    frame[4..].to_vec()
}

fn malformed(payload: &[u8]) -> String {
    match decode_payload(payload) {
        Err(ProtoError::Malformed(why)) => why,
        other => panic!("not malformed: {other:?}"),
    }
}

#[test]
fn a_tensor_that_is_not_whole_values_or_of_no_known_dtype_is_malformed() {
    let params = Message::Params {
        index: 9,
        params: vec![f32::from_bits(0x1122_3344), 2.0],
    };
    // The payload ends in the tag byte and 8 bytes of values: drop one byte.
    let mut payload = payload_of(params.clone(), WireDtype::F32);
    payload.pop();
    let why = malformed(&payload);
    assert!(
        why.contains("f32 tensor of 7 bytes is not whole 4-byte values"),
        "{why}"
    );
    let mut payload = payload_of(params.clone(), WireDtype::Bf16);
    payload.pop();
    let why = malformed(&payload);
    assert!(
        why.contains("bf16 tensor of 3 bytes is not whole 2-byte values"),
        "{why}"
    );
    // The tag byte is the 9th byte from the end in f32.
    let mut payload = payload_of(params, WireDtype::F32);
    let at = payload.len() - 9;
    payload[at] = 9;
    let why = malformed(&payload);
    assert!(why.contains("unknown tensor dtype tag 9"), "{why}");
}

#[test]
fn headers_and_what_follows_them_must_agree_with_the_message_kind() {
    // A header that carries the tensor itself (as version 5 frames did) is refused.
    let mut payload = PROTOCOL_VERSION.to_le_bytes().to_vec();
    let mut header = Vec::new();
    rmp_serde::encode::write_named(
        &mut header,
        &Message::Params {
            index: 1,
            params: vec![1.0, 2.0],
        },
    )
    .expect("header");
    payload.extend_from_slice(&(header.len() as u32).to_le_bytes());
    payload.extend_from_slice(&header);
    payload.extend_from_slice(&[WireDtype::F32.tag()]);
    let why = malformed(&payload);
    assert!(
        why.contains("params header carries 2 tensor values itself"),
        "{why}"
    );
    // A message without a tensor followed by bytes.
    let mut payload = payload_of(Message::Heartbeat { at_ms: 5 }, WireDtype::F32);
    payload.push(0);
    let why = malformed(&payload);
    assert!(
        why.contains("1 bytes follow the header of a heartbeat"),
        "{why}"
    );
    // A message with a tensor that ends at its header.
    let mut payload = payload_of(
        Message::Params {
            index: 1,
            params: Vec::new(),
        },
        WireDtype::F32,
    );
    assert_eq!(payload.pop(), Some(WireDtype::F32.tag()));
    let why = malformed(&payload);
    assert!(why.contains("params frame ends before its tensor"), "{why}");
    // A header length beyond the payload.
    let mut payload = payload_of(Message::Heartbeat { at_ms: 5 }, WireDtype::F32);
    payload[2..6].copy_from_slice(&1000u32.to_le_bytes());
    let why = malformed(&payload);
    assert!(
        why.contains("a header of 1000 bytes in a payload of"),
        "{why}"
    );
}

/// Hands out a byte string in chunks of a fixed size, as a transport's buffers may split it.
struct Chunks {
    data: Vec<u8>,
    at: usize,
    size: usize,
}

impl ChunkRead for Chunks {
    async fn read_chunk(&mut self, max: usize) -> std::io::Result<Option<Bytes>> {
        let n = self.size.min(max).min(self.data.len() - self.at);
        let chunk = Bytes::copy_from_slice(&self.data[self.at..self.at + n]);
        self.at += n;
        Ok((n > 0).then_some(chunk))
    }
}

#[tokio::test]
async fn a_tensor_split_anywhere_between_chunks_decodes_to_the_same_values() {
    let values: Vec<f32> = (0..1000).map(|i| (i as f32 - 500.5) * 0.013).collect();
    for dtype in WireDtype::ALL {
        let msg = Message::Gradient {
            worker: 1,
            incarnation: 2,
            seq: 3,
            ite: 4,
            loss: 0.5,
            samples: 8,
            grad: values.clone(),
        };
        let chunks = encode_chunks(msg, dtype).expect("encode");
        let frame: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        let whole = decode_payload(&frame[4..]).expect("decodes");
        for size in [1, 2, 3, 5, 7, 64, 4097] {
            let mut src = Chunks {
                data: frame.clone(),
                at: 0,
                size,
            };
            let (got, bytes) = read_frame_from(&mut src, frame_limit(values.len()))
                .await
                .expect("read")
                .expect("a frame");
            assert_eq!(bytes, frame.len());
            assert_eq!(
                encode(&got).expect("encode"),
                encode(&whole).expect("encode"),
                "{dtype}, chunks of {size}"
            );
        }
        let mut cut = Chunks {
            data: frame[..frame.len() - 1].to_vec(),
            at: 0,
            size: 3,
        };
        let err = read_frame_from(&mut cut, frame_limit(values.len()))
            .await
            .expect_err("truncated");
        assert!(
            matches!(err, ProtoError::Truncated { .. }),
            "{dtype}: {err}"
        );
    }
}
