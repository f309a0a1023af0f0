//! The fuzz targets (`lagom::fuzzing`) on every `cargo test`: each runs over its saved corpus
//! (`fuzz/corpus/TARGET/`, what libFuzzer found interesting in the long runs the README reports)
//! and over a few thousand inputs generated here from a fixed seed — random bytes, valid frames,
//! and those with bytes flipped. A target panics only when one of its properties is broken.

use std::path::Path;

use lagom::decen::{NodeStats, ReduceKind};
use lagom::fuzzing::TARGETS;
use lagom::proto::{encode, encode_chunks, Message, RefusalCode, Role, WireDtype};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Generated inputs per target.
const GENERATED: usize = 3_000;

/// Frames of every shape of message, to start mutations from.
fn valid_frames() -> Vec<Vec<u8>> {
    let messages = [
        Message::Hello {
            role: Role::Worker,
            worker: 3,
            incarnation: 0,
            layout_hash: 7,
            params_len: 3,
            device: "cpu".into(),
            peer_port: 7001,
            wire_dtype: WireDtype::Bf16,
        },
        Message::Welcome {
            worker: 1,
            workers: 4,
            incarnation: 2,
            updates: 9,
            weight_decay: 5e-4,
        },
        Message::Refuse {
            code: RefusalCode::WorkerId,
            detail: "no".into(),
        },
        Message::Params {
            index: 4,
            params: vec![1.0, f32::NAN, -0.0],
        },
        Message::Gradient {
            worker: 1,
            incarnation: 2,
            seq: 3,
            ite: 4,
            loss: 0.5,
            samples: 8,
            grad: vec![0.25; 3],
        },
        Message::PeerHello {
            worker: 1,
            incarnation: 2,
            to: 0,
            layout_hash: 7,
        },
        Message::Gossip {
            from: 2,
            iteration: 10,
            lateness: 1,
            weight: 0.5,
            x: vec![1.0; 3],
        },
        Message::Reduce {
            worker: 0,
            iteration: 3,
            kind: ReduceKind::Params,
            values: vec![2.0; 3],
        },
        Message::Report {
            worker: 0,
            iteration: 3,
            stats: NodeStats::default(),
            params: vec![2.0; 3],
        },
        Message::Progress {
            worker: 1,
            iteration: 11,
        },
        Message::Heartbeat { at_ms: 5 },
        Message::Stop {
            reason: "done".into(),
        },
        Message::SparseGradient {
            worker: 1,
            incarnation: 2,
            seq: 5,
            ite: 4,
            loss: 0.5,
            samples: 8,
            indices: vec![0, 2],
            values: vec![0.75, -1.5],
        },
    ];
    let mut frames: Vec<Vec<u8>> = messages
        .iter()
        .map(|m| encode(m).expect("encode"))
        .collect();
    // The same messages with their tensors in half precision (odd-length, tagged `bin`s).
    for dtype in [WireDtype::Bf16, WireDtype::F16] {
        for m in messages.iter().filter(|m| m.tensor().is_some()) {
            let chunks = encode_chunks(m.clone(), dtype).expect("encode");
            frames.push(chunks.iter().flat_map(|c| c.iter().copied()).collect());
        }
    }
    frames
}

/// The corpus saved for `target`, if any.
fn corpus(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    files.sort();
    files
        .iter()
        .map(|f| std::fs::read(f).expect("a corpus file"))
        .collect()
}

/// `GENERATED` inputs: random bytes, valid frames (whole, as payloads, concatenated) and flipped.
fn generated(seed: u64) -> Vec<Vec<u8>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let frames = valid_frames();
    (0..GENERATED)
        .map(|i| {
            let mut input: Vec<u8> = match i % 4 {
                0 => (0..rng.random_range(0..600))
                    .map(|_| rng.random())
                    .collect(),
                1 => frames[rng.random_range(0..frames.len())][4..].to_vec(),
                2 => {
                    let mut v = vec![rng.random::<u8>() % 4, rng.random(), 255];
                    for _ in 0..rng.random_range(1..4) {
                        v.extend(&frames[rng.random_range(0..frames.len())]);
                    }
                    v
                }
                _ => frames[rng.random_range(0..frames.len())].clone(),
            };
            if i % 3 == 0 && !input.is_empty() {
                for _ in 0..rng.random_range(1..4) {
                    let at = rng.random_range(0..input.len());
                    input[at] ^= 1 << rng.random_range(0..8);
                }
            }
            input
        })
        .collect()
}

#[test]
fn every_fuzz_target_holds_over_its_corpus_and_generated_inputs() {
    for (i, (name, target)) in TARGETS.iter().enumerate() {
        let saved = corpus(name);
        let made = generated(i as u64);
        for input in saved.iter().chain(&made) {
            target(input);
        }
        println!(
            "{name}: {} saved + {} generated inputs",
            saved.len(),
            made.len()
        );
    }
}
