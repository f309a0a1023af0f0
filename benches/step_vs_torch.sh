#!/usr/bin/env bash
# A training step (forward + backward + SGD momentum) of one of lagom's models at one batch size
# and thread count, lagom (`lagom bench`) against PyTorch, measured side by side: rounds alternate
# between the two so both see the same machine. Prints the ratio of median step times and the
# peak resident memory of each process (whole process, and above its resident memory before the
# model is built — for PyTorch, once torch is imported). PyTorch runs benches/torch_resnet20.py
# for resnet20 and benches/torch_step.py (the networks of benches/torch_models.py) for mlp and cnn.
#
#   benches/step_vs_torch.sh                     # resnet20, batch 128, 2 threads, 6 steps, 2 rounds
#   MODEL=cnn benches/step_vs_torch.sh           # the cnn on Fashion-MNIST-shaped inputs
#   PYTHON=/path/to/venv/bin/python ROUNDS=3 benches/step_vs_torch.sh
#   KERNELS=candle benches/step_vs_torch.sh      # lagom on candle's reference ops instead
#   ISA=avx2 benches/step_vs_torch.sh            # both sides capped at AVX2 on an AVX-512 CPU
#   FEATURES=avx512-gemm benches/step_vs_torch.sh   # lagom with gemm's AVX-512 kernels
#
# ISA=avx2 measures what an AVX2-only machine would see: lagom's elementwise kernels capped by
# LAGOM_SIMD=avx2 (its default build has only gemm's AVX2 kernels), PyTorch capped by
# ATEN_CPU_CAPABILITY=avx2 and ONEDNN_MAX_CPU_ISA=AVX2. FEATURES builds lagom with those cargo
# features into target/features-NAME; BINARY=path runs that lagom binary instead of building one.
#
# Needs PyTorch for $PYTHON (`pip install torch`). Both sides run THREADS threads (the PyTorch
# script reads OMP_NUM_THREADS).
set -euo pipefail
cd "$(dirname "$0")/.."
BATCH=${BATCH:-128}
STEPS=${STEPS:-6}
ROUNDS=${ROUNDS:-2}
THREADS=${THREADS:-2}
PYTHON=${PYTHON:-python3}
MODEL=${MODEL:-resnet20}
KERNELS=${KERNELS:-fast}
case "$MODEL" in
  resnet20) DATA=cifar10; TORCH_SCRIPT=${TORCH_SCRIPT:-benches/torch_resnet20.py}; TORCH_ARGS=() ;;
  mlp|cnn) DATA=fashion-mnist; TORCH_SCRIPT=${TORCH_SCRIPT:-benches/torch_step.py}
           TORCH_ARGS=("$MODEL") ;;
  *) echo "MODEL=$MODEL: mlp, cnn or resnet20" >&2; exit 2 ;;
esac

if ! "$PYTHON" -c 'import torch' 2>/dev/null; then
  echo "PyTorch is not importable by $PYTHON: pip install torch, or set PYTHON=..." >&2
  exit 1
fi
if [ ! -f "$TORCH_SCRIPT" ]; then
  echo "PyTorch reference not found at $TORCH_SCRIPT (set TORCH_SCRIPT=...)" >&2
  exit 1
fi
ISA=${ISA:-native}
case "$ISA" in
  native) ;;
  avx2) export LAGOM_SIMD=avx2 ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 ;;
  *) echo "ISA=$ISA: native or avx2" >&2; exit 2 ;;
esac
if [ -z "${BINARY:-}" ]; then
  if [ -n "${FEATURES:-}" ]; then
    dir="target/features-${FEATURES//[^a-z0-9]/-}"
    cargo build --release --quiet --bin lagom --features "$FEATURES" --target-dir "$dir"
    BINARY=$dir/release/lagom
  else
    cargo build --release --quiet
    BINARY=target/release/lagom
  fi
fi
# The machine every figure below comes from.
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); simd: $(grep -m1 -o -w -E 'avx512f|avx2|fma' /proc/cpuinfo | sort -u | tr '\n' ' ')"
echo "isa: $ISA; lagom: $BINARY"
"$PYTHON" -c 'import torch; print("pytorch", torch.__version__, "cpu capability", torch.backends.cpu.get_cpu_capability())'
export RAYON_NUM_THREADS=$THREADS CANDLE_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS

lagom_times=()
torch_times=()
lagom_mem=""
torch_mem=""
for round in $(seq 1 "$ROUNDS"); do
  # lagom bench: one untimed warm-up step, then "step i: T s" lines.
  out=$("$BINARY" bench --steps "$STEPS" \
        --set "model.name=\"$MODEL\"" --set "data.name=\"$DATA\"" \
        --set "train.batch_size=$BATCH" --set 'compute.device="cpu"' \
        --set "compute.cpu_kernels=\"$KERNELS\"" 2>/dev/null)
  c=$(grep '^step ' <<<"$out" | awk '{print $3}')
  [ "$round" != 1 ] || echo "lagom's $(grep -m1 '^cpu:' <<<"$out")"
  lagom_mem=$(grep '^peak_rss_mib' <<<"$out" || true)
  # torch: "it i total Ts" lines; the first is a warm-up.
  out=$("$PYTHON" benches/torch_peak_memory.py "$TORCH_SCRIPT" "${TORCH_ARGS[@]}" "$BATCH" "$((STEPS + 1))")
  t=$(grep '^it ' <<<"$out" | tail -n +2 | sed 's/.*total \([0-9.]*\)s/\1/')
  torch_mem=$(grep '^peak_rss_mib' <<<"$out" || true)
  lagom_times+=($c)
  torch_times+=($t)
  echo "round $round: lagom $(tr '\n' ' ' <<<"$c")| torch $(tr '\n' ' ' <<<"$t")"
done

python3 - "$BATCH" "$THREADS" "${lagom_times[*]}" "${torch_times[*]}" "$KERNELS" \
  "$lagom_mem" "$torch_mem" "$MODEL" <<'PY'
import statistics, sys
batch, threads, kernels, model = sys.argv[1], sys.argv[2], sys.argv[5], sys.argv[8]
lagom = [float(x) for x in sys.argv[3].split()]
torch = [float(x) for x in sys.argv[4].split()]
def mem(line):
    f = line.split()
    return (float(f[1]), float(f[3])) if len(f) == 4 else (float("nan"), float("nan"))
(cp, ca), (tp, ta) = mem(sys.argv[6]), mem(sys.argv[7])
c, t = statistics.median(lagom), statistics.median(torch)
print(f"{model} training step, batch {batch}, {threads} threads, median of {len(lagom)} steps each:")
print(f"  lagom ({kernels} kernels) {c:.4f} s ({int(batch) / c:.1f} images/s), "
      f"peak RSS {cp:.0f} MiB ({ca:.0f} MiB above start)")
print(f"  PyTorch {t:.4f} s ({int(batch) / t:.1f} images/s), "
      f"peak RSS {tp:.0f} MiB ({ta:.0f} MiB above start)")
print(f"  ratio lagom/PyTorch = {c / t:.2f}x time, {ca / ta:.2f}x memory above start")
PY
