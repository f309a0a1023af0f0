//! Encoding f32 tensors to bf16/f16 and decoding them back, in GB/s of f32 data: at a ResNet-20
//! tensor's size (272 186 values, 1.1 MB: in cache) and at 16 M values (64 MB: from memory),
//! beside a plain copy of the same f32 values — the memory-speed reference. Single thread.
//! `cargo bench --bench half_precision`.

use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use lagom::kernels::{
    append_bf16_le_as_f32, append_f32_as_bf16, bf16_to_f32, f16_to_f32, f32_to_bf16, f32_to_f16,
};
use lagom::proto::WireDtype;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

fn conversions(c: &mut Criterion) {
    println!("{}", lagom::kernels::describe_cpu());
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let mut group = c.benchmark_group("half_precision");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(3));
    for (size, n) in [("resnet20", 272_186usize), ("64MB", 16 << 20)] {
        let src: Vec<f32> = (0..n).map(|_| rng.random_range(-4.0f32..4.0)).collect();
        let mut halves = vec![0u16; n];
        let mut back = vec![0f32; n];
        group.throughput(Throughput::Bytes((n * 4) as u64));
        group.bench_function(BenchmarkId::new("copy_f32", size), |b| {
            b.iter(|| back.copy_from_slice(&src))
        });
        group.bench_function(BenchmarkId::new("encode_bf16", size), |b| {
            b.iter(|| f32_to_bf16(&src, &mut halves))
        });
        group.bench_function(BenchmarkId::new("decode_bf16", size), |b| {
            b.iter(|| bf16_to_f32(&halves, &mut back))
        });
        // The forms the wire uses: appended to a vector (here one whose capacity is kept), from
        // and to bytes at any alignment.
        let mut appended_halves = Vec::with_capacity(n);
        group.bench_function(BenchmarkId::new("append_encode_bf16", size), |b| {
            b.iter(|| {
                appended_halves.clear();
                append_f32_as_bf16(&src, &mut appended_halves)
            })
        });
        let bytes: Vec<u8> = halves.iter().flat_map(|h| h.to_le_bytes()).collect();
        let mut appended = Vec::with_capacity(n);
        group.bench_function(BenchmarkId::new("append_decode_bf16", size), |b| {
            b.iter(|| {
                appended.clear();
                append_bf16_le_as_f32(&bytes[1..], &mut appended)
            })
        });
        // An f32 tensor off the wire into a new vector (what a receiver does with every `f32`
        // gradient or parameter copy), from an odd address; beside `copy_f32`.
        let wire_f32: Vec<u8> = std::iter::once(0u8)
            .chain(src.iter().flat_map(|x| x.to_le_bytes()))
            .collect();
        group.bench_function(BenchmarkId::new("decode_wire_f32", size), |b| {
            b.iter(|| {
                let mut out = Vec::with_capacity(n);
                WireDtype::F32.append_decoded(&wire_f32[1..], &mut out);
                out
            })
        });
        group.bench_function(BenchmarkId::new("encode_f16", size), |b| {
            b.iter(|| f32_to_f16(&src, &mut halves))
        });
        group.bench_function(BenchmarkId::new("decode_f16", size), |b| {
            b.iter(|| f16_to_f32(&halves, &mut back))
        });
    }
    group.finish();
}

criterion_group!(benches, conversions);
criterion_main!(benches);
