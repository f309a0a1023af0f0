//! The wire protocol: exact round trips, compact tensors, and every kind of bad frame refused
//! with its own error.

use lagom::proto::{
    decode_payload, encode, frame_limit, read_frame, Message, ProtoError, RefusalCode, Role,
    CONTROL_FRAME_LIMIT, PROTOCOL_VERSION,
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

#[test]
fn a_tensor_that_is_not_a_whole_number_of_floats_is_malformed() {
    let frame = encode(&Message::Params {
        index: 9,
        params: vec![f32::from_bits(0x1122_3344)],
    })
    .expect("encode");
    // The tensor is `bin8` of 4 bytes: 0xc4 0x04 then the value's bytes. Make it 3 bytes long.
    let value = 0x1122_3344u32.to_le_bytes();
    let at = frame
        .windows(6)
        .position(|w| w[..2] == [0xc4, 0x04] && w[2..] == value)
        .expect("bin marker");
    let mut payload = frame[4..].to_vec();
    let at = at - 4;
    payload[at + 1] = 3;
    payload.remove(at + 2);
    // An odd length is a half-precision tensor, whose last byte (here 0x11) is its dtype tag.
    let err = decode_payload(&payload).expect_err("3-byte tensor");
    assert!(
        err.to_string()
            .contains("tensor of 3 bytes has unknown dtype tag 17"),
        "{err}"
    );
    // An even length that is not whole f32 values is no tensor at all.
    let mut payload = frame[4..].to_vec();
    payload[at + 1] = 2;
    payload.truncate(at + 4);
    let err = decode_payload(&payload).expect_err("2-byte tensor");
    assert!(
        err.to_string()
            .contains("tensor of 2 bytes is neither whole f32 values"),
        "{err}"
    );
}
