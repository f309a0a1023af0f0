//! Fuzz targets of the wire format: the frame reader over arbitrary short reads, and message
//! decoding and encoding.

use std::future::Future;
use std::io;
use std::pin::{pin, Pin};
use std::task::{Context, Poll, Waker};

use tokio::io::{AsyncRead, ReadBuf};

use super::input::Input;
use crate::proto::{
    decode_payload, encode, encode_chunks, frame_limit, frame_size, read_frame_sized, Message,
    WireDtype,
};

/// A reader that hands out its bytes a few at a time, as a network stream may.
struct ShortReads<'a> {
    data: &'a [u8],
    sizes: Vec<usize>,
    call: usize,
}

impl AsyncRead for ShortReads<'_> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        _: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let size = self.sizes[self.call % self.sizes.len()];
        self.call += 1;
        let n = size.min(buf.remaining()).min(self.data.len());
        let (now, later) = self.data.split_at(n);
        buf.put_slice(now);
        self.data = later;
        Poll::Ready(Ok(()))
    }
}

/// Runs a future that never waits (its reader is always ready) to completion.
fn ready<F: Future>(f: F) -> F::Output {
    let mut f = pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        if let Poll::Ready(out) = f.as_mut().poll(&mut cx) {
            return out;
        }
    }
}

/// The frame reader over `data` split into short reads (sizes from the first bytes): it never
/// panics, never reads a frame over its limit, and every frame it decodes is exactly what the
/// same bytes decode to in one piece.
pub fn frame_reader(data: &[u8]) {
    let mut input = Input::new(data);
    let sizes: Vec<usize> = (0..1 + input.below(4))
        .map(|_| 1 + input.below(9))
        .collect();
    let limit = frame_limit(usize::from(input.u8()));
    let stream = input.rest();
    let mut reader = ShortReads {
        data: stream,
        sizes,
        call: 0,
    };
    let mut offset = 0;
    while let Ok(Some((message, size))) = ready(read_frame_sized(&mut reader, limit)) {
        assert!(
            size - 4 <= limit,
            "a frame of {size} bytes over the limit {limit}"
        );
        let whole = decode_payload(&stream[offset + 4..offset + size]);
        assert_eq!(
            whole.map(|m| encode(&m).ok()).ok().flatten(),
            encode(&message).ok(),
            "short reads decoded another message than the whole payload"
        );
        offset += size;
    }
}

/// Message decoding of arbitrary bytes never panics; whatever decodes encodes back to bytes that
/// decode to the same encoding; the chunked encoding and the size estimate agree with it; a
/// sparse gradient densifies (as the server does) only when it describes one.
pub fn message_codec(data: &[u8]) {
    let Ok(message) = decode_payload(data) else {
        return;
    };
    if let Message::SparseGradient {
        indices, values, ..
    } = &message
    {
        check_densify(indices, values);
    }
    check_encodings(message);
}

/// The model size sparse gradients are densified against here.
const SPARSE_MODEL_LEN: usize = 4096;

/// `densify` accepts exactly the increasing, in-range coordinate lists with one value each, and
/// then places every value at its coordinate and zeros elsewhere.
fn check_densify(indices: &[u32], values: &[f32]) {
    let valid = indices.len() == values.len()
        && indices.windows(2).all(|w| w[0] < w[1])
        && indices.iter().all(|&i| (i as usize) < SPARSE_MODEL_LEN);
    match crate::compress::densify(SPARSE_MODEL_LEN, indices, values) {
        Ok(dense) => {
            assert!(valid, "densify accepted {indices:?}");
            assert_eq!(dense.len(), SPARSE_MODEL_LEN);
            let placed = indices
                .iter()
                .zip(values)
                .all(|(&i, v)| dense[i as usize].to_bits() == v.to_bits());
            let nonzero = dense.iter().filter(|d| d.to_bits() != 0).count();
            let sent = values.iter().filter(|v| v.to_bits() != 0).count();
            assert!(placed && nonzero == sent, "densify misplaced values");
        }
        Err(_) => assert!(!valid, "densify refused {indices:?}"),
    }
}

/// The encodings of `message` agree with each other and decode back to it.
fn check_encodings(mut message: Message) {
    let Ok(frame) = encode(&message) else {
        return;
    };
    let again = decode_payload(&frame[4..]).expect("an encoded message decodes");
    assert_eq!(
        encode(&again).ok(),
        Some(frame.clone()),
        "re-encoding differs"
    );
    for dtype in [WireDtype::Bf16, WireDtype::F16] {
        let size = frame_size(&mut message, dtype).expect("a size");
        let chunks = encode_chunks(message.clone(), dtype).expect("chunks");
        let joined: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
        assert_eq!(
            size,
            joined.len(),
            "frame_size disagrees with the {dtype} encoding"
        );
        let mut rounded = message.clone();
        if let Some(t) = rounded.tensor_mut() {
            *t = dtype.rounded(std::mem::take(t));
        }
        let back = decode_payload(&joined[4..]).expect("a half-precision frame decodes");
        assert_eq!(
            encode(&back).ok(),
            encode(&rounded).ok(),
            "a {dtype} frame decodes to another message than its rounded tensor"
        );
    }
    let size = frame_size(&mut message, WireDtype::F32).expect("a size");
    assert_eq!(size, frame.len(), "frame_size disagrees with encode");
    let chunks = encode_chunks(message, WireDtype::F32).expect("chunks");
    let joined: Vec<u8> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
    assert_eq!(joined, frame, "chunked encoding differs from the plain one");
}
