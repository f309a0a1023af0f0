#!/usr/bin/env bash
# The GPU check: run on a machine with an NVIDIA GPU and the CUDA lagom (scripts/build-cuda.sh).
#   1. nvidia-smi: the GPU, its driver and CUDA version;
#   2. ResNet-20 on cuda:0 for a few steps (`lagom bench`), and its gradient on one batch
#      compared with the CPU's (relative L2 distance within $TOLERANCE, else the check fails);
#   3. the step time against PyTorch's on the same GPU (benches/torch_resnet20.py), rounds
#      alternating between the two, and the ratio of medians;
#   4. a mixed cluster for a short run: `lagom --role local` with worker 0 on cuda:0 and the
#      others on the CPU (the quick start's cnn on Fashion-MNIST), and each worker's share.
#
#   scripts/gpu-check.sh                         # everything; logs and summaries under $CHECK_OUT
#   LAGOM=/path/to/cuda/lagom FMNIST=/path/to/fashion-mnist scripts/gpu-check.sh
#
# Environment: LAGOM (default target/cuda/release/lagom), PYTHON (one with PyTorch for step 3;
# skipped without it), FMNIST (the IDX files for step 4; skipped without them), BATCHES (the batch
# sizes step 3 times, "128 512"; the first is step 2's), STEPS (20), ROUNDS (2), UPDATES (1500, the
# quick start's), CPU_WORKERS (3), TOLERANCE (3e-3), GPU (cuda:0), CHECK_OUT (runs/gpu-check).
# The CUDA 13 libraries (libcublas, libcublasLt, libcurand, libnvrtc) must be on the library path;
# where they are not, the script looks for them under PyTorch's site-packages (nvidia/cu13/lib).
# Exit status: 1 if any step failed, else 0.
set -uo pipefail
cd "$(dirname "$0")/.."
LAGOM=${LAGOM:-target/cuda/release/lagom}
PYTHON=${PYTHON:-python3}
FMNIST=${FMNIST:-/usr/share/datasets/fashion-mnist}
BATCHES=${BATCHES:-128 512}
BATCH=${BATCHES%% *}
STEPS=${STEPS:-20}
ROUNDS=${ROUNDS:-2}
UPDATES=${UPDATES:-1500}
CPU_WORKERS=${CPU_WORKERS:-3}
TOLERANCE=${TOLERANCE:-3e-3}
GPU=${GPU:-cuda:0}
CHECK_OUT=${CHECK_OUT:-runs/gpu-check}
mkdir -p "$CHECK_OUT"
failed=0
step() { echo; echo "== $*"; }
fail() { echo "FAILED: $*"; failed=1; }

# The CUDA libraries: PyTorch's wheels carry the same CUDA 13 ones.
if ! ldd "$LAGOM" 2>/dev/null | grep -q 'libcublasLt.so.13 => /'; then
  site=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])' 2>/dev/null || true)
  libdir=""
  if [ -n "$site" ] && [ -e "$site/nvidia/cu13/lib/libcublasLt.so.13" ]; then
    libdir="$site/nvidia/cu13/lib"
  else
    found=$(find / -xdev -name 'libcublasLt.so.13' 2>/dev/null | head -n 1)
    [ -z "$found" ] || libdir=$(dirname "$found")
  fi
  [ -z "$libdir" ] || export LD_LIBRARY_PATH="$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi

step "machine"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores"
nvidia-smi || fail "nvidia-smi"
nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv || true
ldd "$LAGOM" | grep -E 'cuda|cublas|curand|nvrtc' || true

step "ResNet-20 on $GPU: $STEPS steps of batch $BATCH, and its gradient against the CPU's"
bench() {
  "$LAGOM" bench --steps "$STEPS" --set 'model.name="resnet20"' --set 'data.name="cifar10"' \
    --set "train.batch_size=$BATCH" --set "compute.device=\"$GPU\"" "$@"
}
bench --compare-with cpu --tolerance "$TOLERANCE" 2>&1 | tee "$CHECK_OUT/bench.log" \
  || fail "lagom bench on $GPU or its gradient check"

step "step time against PyTorch on the same GPU, $ROUNDS rounds alternating"
if "$PYTHON" -c 'import torch; assert torch.cuda.is_available()' 2>/dev/null; then
  for BATCH in $BATCHES; do
  lagom_times=(); torch_times=()
  for round in $(seq 1 "$ROUNDS"); do
    out=$(bench 2>&1) || fail "lagom bench, batch $BATCH, round $round"
    lagom_times+=($(grep '^step ' <<<"$out" | awk '{print $3}'))
    out=$("$PYTHON" benches/torch_resnet20.py "$BATCH" "$((STEPS + 1))" "$GPU" 2>&1) \
      || fail "PyTorch, batch $BATCH, round $round"
    torch_times+=($(grep '^it ' <<<"$out" | tail -n +2 | sed 's/.*total \([0-9.]*\)s/\1/'))
  done
  "$PYTHON" - "$BATCH" "${lagom_times[*]}" "${torch_times[*]}" <<'PY' | tee -a "$CHECK_OUT/vs_torch.txt"
import statistics, sys
batch = int(sys.argv[1])
lagom = [float(x) for x in sys.argv[2].split()]
torch = [float(x) for x in sys.argv[3].split()]
l, t = statistics.median(lagom), statistics.median(torch)
print(f"ResNet-20 step on the GPU, batch {batch}, median of {len(lagom)} / {len(torch)} steps:")
print(f"  lagom   {l * 1e3:.2f} ms ({batch / l:.0f} images/s)")
print(f"  PyTorch {t * 1e3:.2f} ms ({batch / t:.0f} images/s)")
print(f"  ratio lagom/PyTorch = {l / t:.2f}x time")
PY
  done
else
  echo "skipped: $PYTHON has no PyTorch with CUDA"
fi

step "mixed cluster: worker 0 on $GPU, $CPU_WORKERS workers on the CPU, $UPDATES updates"
if [ -f "$FMNIST/train-images-idx3-ubyte.gz" ] || [ -f "$FMNIST/train-images-idx3-ubyte" ]; then
  cfg="$CHECK_OUT/mixed.toml"
  threads=$(( $(nproc) / (CPU_WORKERS + 1) )); [ "$threads" -ge 1 ] || threads=1
  {
    grep -v -E '^(updates|eval_every|dir|slow_fraction|slowdown|workers) *=' config/quickstart.toml
    echo
    echo "[supervisor]"
    echo "[[supervisor.workers]]"; echo "worker = 0"; echo "device = \"$GPU\""
    for w in $(seq 1 "$CPU_WORKERS"); do
      echo "[[supervisor.workers]]"; echo "worker = $w"; echo 'device = "cpu"'; echo "threads = $threads"
    done
  } > "$cfg"
  "$LAGOM" --role local --config "$cfg" --set "cluster.workers=$((CPU_WORKERS + 1))" \
    --set "server.updates=$UPDATES" --set "server.eval_every=$(( (UPDATES + 2) / 3 ))" \
    --set "algorithm.lr_decay_at=[$(( UPDATES * 4 / 5 ))]" --set 'heterogeneity.slow_fraction=0.0' \
    --set "data.dir=\"$FMNIST\"" --set "run.dir=\"$CHECK_OUT/mixed\"" 2>&1 | tail -n 20 \
    || fail "the mixed cluster"
  if [ -f "$CHECK_OUT/mixed/summary.json" ]; then
    "$PYTHON" - "$CHECK_OUT/mixed/summary.json" <<'PY' | tee "$CHECK_OUT/mixed.txt"
import json, sys
s = json.load(open(sys.argv[1]))
print(f"updates {s['updates']} in {s['wall_s']:.1f} s, test accuracy {s.get('final_test_accuracy')}")
for w in s.get("per_worker", []):
    print("  " + ", ".join(f"{k} {v}" for k, v in w.items() if not isinstance(v, (list, dict))))
PY
  else
    fail "the mixed cluster wrote no summary"
  fi
else
  echo "skipped: no Fashion-MNIST at $FMNIST (set FMNIST=)"
fi

echo
[ "$failed" = 0 ] && echo "gpu-check: all steps passed" || echo "gpu-check: some steps FAILED"
exit "$failed"
