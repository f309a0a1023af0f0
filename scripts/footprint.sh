#!/usr/bin/env bash
# Peak resident memory (VmHWM) of every process of a `lagom --role local` run — the local
# process (server + supervisor) and each worker — sampled from /proc every 50 ms until the run
# ends, with each worker's time from process start to its first gradient (from its log).
#
#   scripts/footprint.sh                     # the quick start as it is (cnn, Fashion-MNIST)
#   scripts/footprint.sh resnet20            # ResNet-20 on CIFAR-10-sized data, 60 updates
#
# Environment: LAGOM (default target/release/lagom), UPDATES, BATCH (resnet20's batch size, 128),
# ACTIVATIONS (resnet20's compute.activations: keep or recompute), OUT_DIR (default runs/footprint),
# CIFAR_DIR (for resnet20: a folder of CIFAR-10 binary files; made once from random bytes, in
# the exact format and size of CIFAR-10, when absent). Needs a built lagom (cargo build --release).
set -euo pipefail
cd "$(dirname "$0")/.."
SCENARIO=${1:-quickstart}
LAGOM=${LAGOM:-target/release/lagom}
OUT_DIR=${OUT_DIR:-runs/footprint}
mkdir -p "$OUT_DIR"
echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'), $(nproc) cores; simd: $(grep -m1 -o -w -E 'avx512f|avx2' /proc/cpuinfo | sort -u | tr '\n' ' ')"
case "$SCENARIO" in
  quickstart)
    args=(--config config/quickstart.toml)
    [ -z "${UPDATES:-}" ] || args+=(--set "server.updates=$UPDATES") ;;
  resnet20)
    CIFAR_DIR=${CIFAR_DIR:-$OUT_DIR/cifar-10-batches-bin}
    if [ ! -f "$CIFAR_DIR/test_batch.bin" ]; then
      mkdir -p "$CIFAR_DIR"
      python3 - "$CIFAR_DIR" <<'PY'
import os, random, sys
rng = random.Random(7)
for name in [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]:
    with open(os.path.join(sys.argv[1], name), "wb") as f:
        for _ in range(10000):
            f.write(bytes([rng.randrange(10)]) + rng.randbytes(3072))
PY
    fi
    args=(--config config/quickstart.toml --set 'model.name="resnet20"' --set 'data.name="cifar10"'
          --set "data.dir=\"$CIFAR_DIR\"" --set "server.updates=${UPDATES:-60}"
          --set "server.eval_every=${UPDATES:-60}" --set 'algorithm.lr_decay_at=[]'
          --set "train.batch_size=${BATCH:-128}"
          --set "compute.activations=\"${ACTIVATIONS:-keep}\"") ;;
  *) echo "unknown scenario $SCENARIO: quickstart or resnet20" >&2; exit 2 ;;
esac
log="$OUT_DIR/$SCENARIO.log"
RUST_LOG=info "$LAGOM" --role local "${args[@]}" --set "run.dir=\"$OUT_DIR/$SCENARIO\"" \
  >"$log" 2>&1 &
root=$!
declare -A peak name
descendants() { local p; for p in $(cat /proc/"$1"/task/*/children 2>/dev/null); do echo "$p"; descendants "$p"; done; }
while kill -0 "$root" 2>/dev/null; do
  for p in "$root" $(descendants "$root"); do
    hwm=$(awk '/^VmHWM:/ { print $2 }' /proc/"$p"/status 2>/dev/null || true)
    [ -n "$hwm" ] || continue
    if [ -z "${name[$p]:-}" ]; then
      cmd=$(tr '\0' ' ' </proc/"$p"/cmdline 2>/dev/null || true)
      case "$cmd" in
        *"--role worker"*) name[$p]="worker $(grep -o -E -- '--worker [0-9]+' <<<"$cmd" | cut -d' ' -f2)" ;;
        *"--role local"*) name[$p]="local (server + supervisor)" ;;
        *) name[$p]="${cmd:0:40}" ;;
      esac
    fi
    [ "${peak[$p]:-0}" -ge "$hwm" ] || peak[$p]=$hwm
  done
  sleep 0.05
done
wait "$root" || { echo "the run failed; see $log" >&2; tail -n 20 "$log" >&2; exit 1; }
echo "scenario $SCENARIO: $(tail -n 1 "$log")"
for p in "${!peak[@]}"; do
  printf '%-30s pid %-8s peak RSS %6.1f MiB\n' "${name[$p]}" "$p" "$(echo "${peak[$p]} / 1024" | bc -l)"
done | sort
grep -o -E 'worker [0-9]+: first gradient sent [0-9.]+ s after the process started' "$log" | sort -u || true
