#!/usr/bin/env bash
# ResNet-20 training step (forward + backward + SGD momentum) at one batch size and thread count,
# lagom (candle) against PyTorch (bench/torch_resnet20.py), measured side by side: rounds
# alternate between the two so both see the same machine. Prints the ratio of median step times.
#
#   benches/resnet20_vs_torch.sh                 # batch 128, 2 threads, 6 steps, 2 rounds
#   PYTHON=/path/to/venv/bin/python ROUNDS=3 benches/resnet20_vs_torch.sh
#
# Needs PyTorch for $PYTHON (`pip install torch`). The PyTorch script fixes 2 threads, so THREADS
# must be 2 unless TORCH_SCRIPT points at a copy that reads it.
set -euo pipefail
cd "$(dirname "$0")/.."
BATCH=${BATCH:-128}
STEPS=${STEPS:-6}
ROUNDS=${ROUNDS:-2}
THREADS=${THREADS:-2}
PYTHON=${PYTHON:-python3}
TORCH_SCRIPT=${TORCH_SCRIPT:-../shared/bench/torch_resnet20.py}

if ! "$PYTHON" -c 'import torch' 2>/dev/null; then
  echo "PyTorch is not importable by $PYTHON: pip install torch, or set PYTHON=..." >&2
  exit 1
fi
if [ ! -f "$TORCH_SCRIPT" ]; then
  echo "PyTorch reference not found at $TORCH_SCRIPT (set TORCH_SCRIPT=...)" >&2
  exit 1
fi
cargo build --release --quiet
export RAYON_NUM_THREADS=$THREADS CANDLE_NUM_THREADS=$THREADS OMP_NUM_THREADS=$THREADS

candle_times=()
torch_times=()
for round in $(seq 1 "$ROUNDS"); do
  # lagom bench: one untimed warm-up step, then "step i: T s" lines.
  out=$(./target/release/lagom bench --steps "$STEPS" \
        --set 'model.name="resnet20"' --set 'data.name="cifar10"' \
        --set "train.batch_size=$BATCH" --set 'compute.device="cpu"' 2>/dev/null)
  c=$(grep '^step ' <<<"$out" | awk '{print $3}')
  # torch: "it i total Ts" lines; the first is a warm-up.
  out=$("$PYTHON" "$TORCH_SCRIPT" "$BATCH" "$((STEPS + 1))")
  t=$(grep '^it ' <<<"$out" | tail -n +2 | sed 's/.*total \([0-9.]*\)s/\1/')
  candle_times+=($c)
  torch_times+=($t)
  echo "round $round: candle $(tr '\n' ' ' <<<"$c")| torch $(tr '\n' ' ' <<<"$t")"
done

python3 - "$BATCH" "$THREADS" "${candle_times[*]}" "${torch_times[*]}" <<'PY'
import statistics, sys
batch, threads = sys.argv[1], sys.argv[2]
candle = [float(x) for x in sys.argv[3].split()]
torch = [float(x) for x in sys.argv[4].split()]
c, t = statistics.median(candle), statistics.median(torch)
print(f"ResNet-20 training step, batch {batch}, {threads} threads, median of {len(candle)} steps each:")
print(f"  lagom/candle {c:.3f} s ({int(batch) / c:.1f} images/s)")
print(f"  PyTorch      {t:.3f} s ({int(batch) / t:.1f} images/s)")
print(f"  ratio lagom/PyTorch = {c / t:.2f}x")
PY
