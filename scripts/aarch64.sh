#!/usr/bin/env bash
# The aarch64 (Raspberry Pi 4/5, Jetson, Graviton) build of lagom, cross-compiled on an x86-64
# machine, and its tests run under qemu's user-mode emulation.
#
#   scripts/aarch64.sh setup     # once: Rust's aarch64 target, Debian's cross gcc and qemu-user
#   scripts/aarch64.sh build     # → target/aarch64-unknown-linux-gnu/release/lagom
#   scripts/aarch64.sh test      # the pure cores' and kernels' tests, on the emulated CPU
#
# On an aarch64 board itself, a plain `cargo build --release` is all it takes. The kernels
# dispatch at run time; on aarch64 they take the portable paths (the compiler vectorizes them for
# NEON), and no x86 intrinsic is compiled in.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET=aarch64-unknown-linux-gnu
SYSROOT=${AARCH64_SYSROOT:-/usr/aarch64-linux-gnu}
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
export CC_aarch64_unknown_linux_gnu=aarch64-linux-gnu-gcc
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="qemu-aarch64 -L $SYSROOT"
# The subset that runs under emulation in CI: the unit tests of the data readers, sampling, the
# kernels, the layout and the cores; the integration tests of the pure cores (the exact
# equivalences of the algorithms, the parameter-server core, the decentralized family, the wire
# protocol, the flat layout and its hash); the data readers (files read back exactly, a shard
# read per image); and the kernels against candle's ops with ResNet-20's hand-written step on
# tiny images (the portable code paths aarch64 takes) — what differs between architectures is
# arithmetic, byte order and dispatch, and these pin all three. Not under emulation: anything
# that trains a real model for many steps (minutes each at qemu's speed); the mixed-architecture
# cluster runs a real aarch64 worker instead (scripts/mixed-arch-cluster.sh,
# tests/mixed_arch_cluster.rs).
UNIT_FILTERS=(algo:: server:: decen:: proto:: data:: kernels:: model::layout)
CORE_TESTS=(algorithm_state server_core decentralized_exact proto ormo momentum_variants model_layout
            data_readers fast_kernels activation_recompute)
case "${1:-build}" in
  setup)
    rustup target add "$TARGET"
    if ! command -v aarch64-linux-gnu-gcc >/dev/null || ! command -v qemu-aarch64 >/dev/null; then
      apt-get update -qq
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gcc-aarch64-linux-gnu \
        libc6-dev-arm64-cross qemu-user
    fi ;;
  build)
    cargo build --release --target "$TARGET" --bin lagom "${@:2}"
    echo "built target/$TARGET/release/lagom" >&2 ;;
  test)
    cargo test --release --target "$TARGET" --lib "${@:2}" -- "${UNIT_FILTERS[@]}"
    cargo test --release --target "$TARGET" "${CORE_TESTS[@]/#/--test=}" "${@:2}" ;;
  *) echo "usage: scripts/aarch64.sh setup|build|test" >&2; exit 2 ;;
esac
