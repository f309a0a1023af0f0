#!/usr/bin/env bash
# A mixed-architecture cluster on loopback: an x86-64 server and two x86-64 workers, and one
# aarch64 worker running under qemu (scripts/aarch64.sh build first), training the quick start's
# `cnn` to the end of its update budget. Checks that the aarch64 worker joined — same protocol,
# same layout hash — contributed gradients, and shows up as the slow worker it is.
#
#   scripts/mixed-arch-cluster.sh          # UPDATES (300), OUT_DIR (runs/mixed-arch)
set -euo pipefail
cd "$(dirname "$0")/.."
X86=${X86_LAGOM:-target/release/lagom}
ARM=${ARM_LAGOM:-target/aarch64-unknown-linux-gnu/release/lagom}
SYSROOT=${AARCH64_SYSROOT:-/usr/aarch64-linux-gnu}
UPDATES=${UPDATES:-300}
OUT_DIR=${OUT_DIR:-runs/mixed-arch}
rm -rf "$OUT_DIR"; mkdir -p "$OUT_DIR"
[ -x "$X86" ] && [ -x "$ARM" ] || { echo "build both first: cargo build --release; scripts/aarch64.sh build" >&2; exit 2; }
data=(--set 'data.name="synthetic"')
[ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || data=()
port=$((20000 + RANDOM % 20000))
common=(--config config/quickstart.toml "${data[@]}" --set cluster.workers=3
        --set "net.certs=\"$OUT_DIR/certs\"" --set 'heterogeneity.slow_fraction=0.0'
        --set "server.updates=$UPDATES" --set "server.eval_every=$UPDATES" --set 'algorithm.lr_decay_at=[]'
        --set 'net.hello_timeout_s=120')
"$X86" certs --dir "$OUT_DIR/certs" --server server --workers x86a:0,x86b:1,arm:2 >/dev/null
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
RAYON_NUM_THREADS=1 "$X86" --role server "${common[@]}" --set 'net.node="server"' \
  --set "net.listen=\"127.0.0.1:$port\"" --set "run.dir=\"$OUT_DIR/run\"" >"$OUT_DIR/server.log" 2>&1 &
server=$!
worker() { # NAME SLOT LOG BINARY...
  local name=$1 slot=$2 log=$3; shift 3
  RAYON_NUM_THREADS=1 RUST_LOG=info "$@" --role worker "${common[@]}" --set "net.node=\"$name\"" \
    --set "net.server=\"127.0.0.1:$port\"" --worker "$slot" >"$log" 2>&1 &
  pids+=($!)
}
# The emulated worker first, alone until its first gradient is on the wire: under emulation its
# first step can take longer than the fast workers need for the whole budget (measured: 240
# updates in 6.9 s), and the check is that its gradients count, not that it wins a race.
worker arm 2 "$OUT_DIR/arm.log" qemu-aarch64 -L "$SYSROOT" "$ARM"
wait_for() { # PATTERN WHAT: up to 180 s
  for _ in $(seq 1 900); do grep -q "$1" "$OUT_DIR/arm.log" && return 0; sleep 0.2; done
  cat "$OUT_DIR/arm.log"; echo "FAILED: the aarch64 worker $2" >&2; exit 1
}
wait_for 'joined the server' "did not join"
wait_for 'first gradient sent' "sent no gradient"

worker x86a 0 "$OUT_DIR/x86a.log" "$X86"
worker x86b 1 "$OUT_DIR/x86b.log" "$X86"
wait "$server" || { tail -n 20 "$OUT_DIR/server.log"; echo "FAILED: the server" >&2; exit 1; }
for p in "${pids[@]}"; do wait "$p" || true; done
python3 - "$OUT_DIR/run/summary.json" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
w = {x["id"]: x for x in s["per_worker"]}
print(f"{s['updates']} updates in {s['wall_s']:.1f} s, test accuracy {s.get('final_test_accuracy')}")
for i in sorted(w):
    arch = "aarch64 (qemu)" if i == 2 else "x86-64"
    print(f"  worker {i} {arch}: {w[i]['gradients']} gradients, effective speed {w[i]['effective_speed']:.3f}")
assert s["updates"] == s["gradients_applied"], "the run did not reach its budget"
assert w.get(2, {}).get("gradients", 0) >= 1, "the aarch64 worker sent no gradient"
assert w[2]["gradients"] < min(w[0]["gradients"], w[1]["gradients"]), "the emulated worker is not the slow one"
print("mixed-architecture cluster: ok")
PY
