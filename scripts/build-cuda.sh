#!/usr/bin/env bash
# Builds the CUDA lagom: `cargo build --release --features cuda` with the toolkit from
# scripts/cuda-toolkit.sh (or your own: set CUDA_HOME and put nvcc on PATH, then SKIP_TOOLKIT=1).
# The result is target/cuda/release/lagom, beside the CPU build in target/release.
#
#   scripts/build-cuda.sh                    # PTX for compute capability 8.0, JIT-compiled by the
#                                            # driver on any newer GPU (A100, L4, H100, …)
#   CUDA_COMPUTE_CAP=90 scripts/build-cuda.sh    # for H100/H200 only (sm_90a)
#
# Running it needs the NVIDIA driver (libcuda.so.1) and the CUDA 13 libraries (libnvrtc, libcublas,
# libcublasLt, libcurand) on the library path; `lagom` built this way will not start without them.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "${SKIP_TOOLKIT:-0}" != 1 ]; then
  eval "$(scripts/cuda-toolkit.sh)"
fi
export CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-80}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/cuda}
cargo build --release --features cuda --bin lagom "$@"
echo "built $CARGO_TARGET_DIR/release/lagom (compute capability $CUDA_COMPUTE_CAP)" >&2
