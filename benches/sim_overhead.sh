#!/usr/bin/env bash
# The simulator's cost over the gradients themselves: seconds per update of `lagom sim` with a real
# model (K virtual workers, the server's algorithm, the virtual clock) against seconds per step of
# `lagom bench` (the same model, batch and threads: forward + backward only) and of `lagom train`
# (the same, plus reading the mini-batch and the optimizer step). The simulator's per-update time is
# the slope between two runs of different length, so start-up, data loading and the final
# evaluation cancel out. Rounds alternate the three. Target: sim / bench ≤ 1.05.
# On a small shared machine the side-by-side figures move by ±20 % between runs of one binary, so
# the script also prints the split the simulator measures in its own process (`host time:` line of
# `lagom sim` with a model): the time outside the gradient and loss calls — cores, scheduler,
# virtual clock, stale copies — over the time inside them, measured at the same moments.
#
#   benches/sim_overhead.sh                                  # cnn on Fashion-MNIST, batch 64, K=16, OrMo
#   MODEL=resnet20 DATA=synthetic BATCH=32 benches/sim_overhead.sh
set -euo pipefail
cd "$(dirname "$0")/.."
MODEL=${MODEL:-cnn}
DATA=${DATA:-fashion-mnist}
BATCH=${BATCH:-64}
WORKERS=${WORKERS:-16}
ALGORITHM=${ALGORITHM:-ormo}
SHORT=${SHORT:-100}
LONG=${LONG:-400}
ROUNDS=${ROUNDS:-3}
THREADS=${THREADS:-2}
cargo build --release --quiet
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); simd: $(grep -m1 -o -w -E 'avx512f|avx2|fma' /proc/cpuinfo | sort -u | tr '\n' ' ')"
export RAYON_NUM_THREADS=$THREADS CANDLE_NUM_THREADS=$THREADS
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
common=(--set "model.name=\"$MODEL\"" --set "data.name=\"$DATA\"" --set "train.batch_size=$BATCH"
  --set "compute.threads=$THREADS")
now() { date +%s.%N; }

for round in $(seq 1 "$ROUNDS"); do
  ./target/release/lagom bench "${common[@]}" --steps "$LONG" >"$tmp/bench-$round.txt" 2>&1
  ./target/release/lagom train --quiet --run-dir "$tmp/train-$round" "${common[@]}" --lr 0.01 \
    --set "train.max_steps=$LONG" --set train.eval_every=1000000 --set train.log_every=50 >/dev/null 2>&1
  for n in "$SHORT" "$LONG"; do
    start=$(now)
    ./target/release/lagom sim --quiet --run-dir "$tmp/sim-$round-$n" "${common[@]}" \
      --workers "$WORKERS" --algorithm "$ALGORITHM" --lr 0.01 --set 'sim.objective="model"' \
      --set "sim.updates=$n" --set sim.eval_every=1000000 \
      --set heterogeneity.slow_fraction=0.25 --set heterogeneity.slowdown=4 >"$tmp/sim-$round-$n.out" 2>&1
    echo "$n $(now) $start" >>"$tmp/sim-$round.txt"
  done
done

python3 - "$tmp" "$ROUNDS" "$MODEL" "$DATA" "$BATCH" "$WORKERS" "$ALGORITHM" "$LONG" <<'PY'
import json, re, statistics, sys
tmp, rounds, model, data, batch, workers, algorithm = sys.argv[1:8]
rounds = int(rounds)
def bench(r):
    # The mean step after the first 10 (warm-up): the sim's slope is a mean too.
    steps = [float(x) for x in re.findall(r"^step \d+: ([0-9.e-]+) s", open(f"{tmp}/bench-{r}.txt").read(), re.M)]
    return statistics.mean(steps[10:])
def bench_median(r):
    return float(re.search(r"median_step_s ([0-9.e-]+)", open(f"{tmp}/bench-{r}.txt").read()).group(1))
def train(r):
    pts = [(e["updates"], e["t_s"]) for e in map(json.loads, open(f"{tmp}/train-{r}/metrics.jsonl")) if e["event"] == "train"]
    (u0, t0), (u1, t1) = [p for p in pts if p[0] >= 50][0], pts[-1]
    return (t1 - t0) / (u1 - u0)
def own_share(r):
    line = re.search(r"own share ([0-9.]+) %", open(f"{tmp}/sim-{r}-{sys.argv[8]}.out").read())
    return float(line.group(1)) / 100
def core_share(r):
    line = re.search(r"parameters it sends: ([0-9.]+) %", open(f"{tmp}/sim-{r}-{sys.argv[8]}.out").read())
    return float(line.group(1)) / 100 if line else float("nan")
def sim(r):
    (n0, e0, s0), (n1, e1, s1) = [tuple(map(float, l.split())) for l in open(f"{tmp}/sim-{r}.txt")]
    return ((e1 - s1) - (e0 - s0)) / (n1 - n0)
b = [bench(r) for r in range(1, rounds + 1)]
bm = [bench_median(r) for r in range(1, rounds + 1)]
t = [train(r) for r in range(1, rounds + 1)]
s = [sim(r) for r in range(1, rounds + 1)]
mb, mt, ms = statistics.median(b), statistics.median(t), statistics.median(s)
fmt = lambda xs: ", ".join(f"{x*1000:.2f}" for x in xs)
print(f"{model} on {data}, batch {batch}; sim: {algorithm}, {workers} workers; median of {rounds} rounds")
print(f"  lagom bench (forward+backward):   {mb*1000:.2f} ms/step   ({fmt(b)}; mean after 10 steps)")
print(f"  lagom bench, median step:         {statistics.median(bm)*1000:.2f} ms/step   ({fmt(bm)})")
print(f"  lagom train (+ data, optimizer):  {mt*1000:.2f} ms/step   ({fmt(t)})")
print(f"  lagom sim (per update, slope):    {ms*1000:.2f} ms/update ({fmt(s)})")
# Rounds run one after another, so a round's sim and bench share the machine's state: the median
# of the per-round ratios is the figure least moved by a noisy neighbour.
ratios = [x / y for x, y in zip(s, b)]
print(f"  per-round sim / bench:            {', '.join(f'{r:.3f}' for r in ratios)}")
own = [own_share(r) for r in range(1, rounds + 1)]
print(f"  simulator's own share, in process: {statistics.median(own)*100:.2f} %   ({', '.join(f'{x*100:.2f}' for x in own)}; {sys.argv[8]} updates)")
core = [core_share(r) for r in range(1, rounds + 1)]
print(f"    of it the server core:          {statistics.median(core)*100:.2f} %   (its algorithm's update and the parameters it sends)")
print(f"    the rest (clock, scheduling):   {(statistics.median(own) - statistics.median(core))*100:.2f} %")
print(f"  sim / bench = {ms/mb:.3f} (median of per-round ratios {statistics.median(ratios):.3f})   sim / train = {ms/mt:.3f}")
PY
