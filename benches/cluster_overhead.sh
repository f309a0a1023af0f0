#!/usr/bin/env bash
# System overhead: time per update of a 1-worker cluster over loopback QUIC (lagom --role local)
# divided by the time per step of single-process training (lagom train), same model, data and
# batch, measured side by side (alternating rounds). Target ≤ 1.03.
#
#   benches/cluster_overhead.sh                       # cnn on Fashion-MNIST, batch 128
#   MODEL=mlp DATA=synthetic ROUNDS=3 benches/cluster_overhead.sh
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${MODEL:-cnn}
DATA=${DATA:-fashion-mnist}
STEPS=${STEPS:-300}
ROUNDS=${ROUNDS:-2}
THREADS=${THREADS:-2}
cargo build --release --quiet
# The machine every figure below comes from.
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); simd: $(grep -m1 -o -w -E 'avx512f|avx2|fma' /proc/cpuinfo | sort -u | tr '\n' ' ')"
export RAYON_NUM_THREADS=$THREADS CANDLE_NUM_THREADS=$THREADS
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
common=(--set "model.name=\"$MODEL\"" --set "data.name=\"$DATA\"" --set train.batch_size=128 --algorithm asgd --lr 0.01)

for round in $(seq 1 "$ROUNDS"); do
  ./target/release/lagom train --quiet --run-dir "$tmp/train-$round" "${common[@]}" \
    --set "train.max_steps=$STEPS" --set train.eval_every=1000000 --set train.log_every=100 >/dev/null 2>&1
  ./target/release/lagom --role local --run-dir "$tmp/local-$round" "${common[@]}" --workers 1 \
    --set "server.updates=$STEPS" --set server.eval_every=0 --set server.checkpoint_every=0 \
    --set server.checkpoint_every_s=0 >/dev/null 2>&1
done

python3 - "$tmp" "$ROUNDS" "$STEPS" "$MODEL" "$DATA" <<'PY'
import json, statistics, sys
tmp, rounds, steps, model, data = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
def per_step(path, event):
    # Seconds per step between the 100th step and the last: start-up and the first steps excluded.
    pts = [(e["updates"], e["t_s"]) for e in map(json.loads, open(path)) if e["event"] == event]
    (u0, t0), (u1, t1) = [p for p in pts if p[0] >= 100][0], pts[-1]
    return (t1 - t0) / (u1 - u0)
train = [per_step(f"{tmp}/train-{r}/metrics.jsonl", "train") for r in range(1, rounds + 1)]
local = [per_step(f"{tmp}/local-{r}/metrics.jsonl", "progress") for r in range(1, rounds + 1)]
t, l = statistics.median(train), statistics.median(local)
print(f"{model} on {data}, batch 128, {steps} steps, {rounds} rounds each:")
print(f"  lagom train:            {t*1000:.1f} ms/step   (rounds: {', '.join(f'{x*1000:.1f}' for x in train)})")
print(f"  1-worker cluster (QUIC): {l*1000:.1f} ms/update (rounds: {', '.join(f'{x*1000:.1f}' for x in local)})")
print(f"  overhead ratio = {l/t:.3f}")
PY
