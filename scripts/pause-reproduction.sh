#!/usr/bin/env bash
# Issue 15's reproduction, side by side with a calm run: 4 worker processes on this machine
# (`--role local`, the mlp on Fashion-MNIST, config/decen/ALGORITHM.toml), one worker paused with
# SIGSTOP for PAUSE_S seconds AT_S seconds into the run, then SIGCONT. Prints each algorithm's
# final test accuracy calm and paused, their difference, and the paused run's leaves and joins.
#
#   scripts/pause-reproduction.sh                       # sgp dpsgd slowmo, 4 000 iterations
#   ALGORITHMS="sgp" ITERATIONS=1000 scripts/pause-reproduction.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ALGORITHMS=${ALGORITHMS:-sgp dpsgd slowmo}
ITERATIONS=${ITERATIONS:-4000}
PAUSE_S=${PAUSE_S:-25}
AT_S=${AT_S:-15}
SEED=${SEED:-1}
cargo build --release --quiet
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); simd: $(grep -m1 -o -w -E 'avx512f|avx2|fma' /proc/cpuinfo | sort -u | tr '\n' ' ')"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export RAYON_NUM_THREADS=1

# The pid of worker slot $2 among the children of the local run $1 (empty until it is started).
worker_pid() {
  for child in $(cat "/proc/$1/task/$1/children" 2>/dev/null); do
    if tr '\0' ' ' <"/proc/$child/cmdline" 2>/dev/null | grep -q -- "--worker $2 "; then
      echo "$child"
      return
    fi
  done
}

# run ALGORITHM DIR PAUSE(0|1): one local run; prints its final test accuracy.
run() {
  ./target/release/lagom --role local --config "config/decen/$1.toml" --workers 4 \
    --run-dir "$2" --set "server.updates=$ITERATIONS" --set "run.seed=$SEED" >"$2.log" 2>&1 &
  local pid=$!
  if [ "$3" = 1 ]; then
    sleep "$AT_S"
    local w
    w=$(worker_pid "$pid" 1)
    if [ -z "$w" ]; then
      echo "worker 1 of the $1 run not found at ${AT_S} s" >&2
      kill "$pid"
      return 1
    fi
    kill -STOP "$w"
    sleep "$PAUSE_S"
    kill -CONT "$w" 2>/dev/null || true
  fi
  wait "$pid" || { echo "the $1 run failed: $(tail -n 5 "$2.log")" >&2; return 1; }
  python3 -c "import json,sys; print(json.load(open(sys.argv[1]))['final_test_accuracy'])" "$2/summary.json"
}

printf '%-8s %10s %10s %8s %s\n' algorithm calm paused diff "paused run"
for alg in $ALGORITHMS; do
  calm=$(run "$alg" "$tmp/$alg-calm" 0)
  hit=$(run "$alg" "$tmp/$alg-paused" 1)
  events=$(python3 - "$tmp/$alg-paused/metrics.jsonl" <<'PY'
import json, sys
ev = [json.loads(l) for l in open(sys.argv[1])]
count = lambda k: sum(1 for e in ev if e["event"] == k)
print(f"{count('leave')} leaves, {count('join')} joins")
PY
)
  python3 -c "import sys; c, h = map(float, sys.argv[1:3]); print(f'{sys.argv[3]:<8} {100*c:9.2f}% {100*h:9.2f}% {100*(h-c):+7.2f}  ' + sys.argv[4])" \
    "$calm" "$hit" "$alg" "$events"
done
