#!/usr/bin/env bash
# CI's check of the CUDA build on a machine without a GPU: builds `--features cuda`
# (scripts/build-cuda.sh) and runs the binary against the driver stand-in — `device = "auto"`
# must fall back to the CPU and train, an explicit `cuda:0` must fail with a clear error.
#
#   scripts/check-cuda-build.sh          # CARGO_TARGET_DIR as set, else target/cuda
set -euo pipefail
cd "$(dirname "$0")/.."
eval "$(scripts/cuda-toolkit.sh)"
SKIP_TOOLKIT=1 scripts/build-cuda.sh --quiet
bin="${CARGO_TARGET_DIR:-target/cuda}/release/lagom"
export LD_LIBRARY_PATH="$CUDA_TOOLKIT_STUBS:$CUDA_TOOLKIT_LIB${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
run() {
  "$bin" bench --steps 1 --set 'model.name="mlp"' --set 'data.name="synthetic"' \
    --set 'train.batch_size=8' --set "compute.device=\"$1\"" 2>&1
}
out=$(run auto) || { echo "$out"; echo "FAILED: the CUDA build did not fall back to the CPU" >&2; exit 1; }
grep -q 'device cpu' <<<"$out" || { echo "$out"; echo "FAILED: auto did not pick the CPU" >&2; exit 1; }
if out=$(run cuda:0); then
  echo "$out"; echo "FAILED: cuda:0 opened without a GPU" >&2; exit 1
fi
grep -q 'cannot open CUDA device 0' <<<"$out" || { echo "$out"; echo "FAILED: unclear error" >&2; exit 1; }
echo "CUDA build: $(du -h "$bin" | cut -f1) binary; without a GPU, auto falls back to the CPU and cuda:0 says: $(head -n 1 <<<"$out")"
