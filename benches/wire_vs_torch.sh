#!/usr/bin/env bash
# Tensors over the wire, lagom against PyTorch, side by side, loopback, 8 workers, a vector of
# 272 186 values (ResNet-20's size):
# - a parameter server: workers answer every parameter copy at once with a gradient; updates per
#   second. lagom: `cargo bench --bench server_capacity -- --quic DTYPE` (QUIC with mutual TLS 1.3,
#   one process: the server on one thread, the workers on another); PyTorch:
#   benches/torch_rpc_ps.py (torch.distributed.rpc over TensorPipe's TCP transport, no
#   encryption, a server process and 8 worker processes).
# - an exact average (all-reduce) every worker waits for; averages per second. lagom:
#   `cargo bench --bench exact_average -- DTYPE` (through the rendezvous, as AR-SGD averages);
#   PyTorch: benches/torch_allreduce.py (gloo's all-reduce over TCP, 8 processes).
# Rounds alternate so both see the same machine; the medians and their ratios are printed, with
# the CPU they came from.
#
#   benches/wire_vs_torch.sh                        # 3 rounds; lagom in f32 and bf16
#   PYTHON=/path/to/venv/bin/python ROUNDS=5 benches/wire_vs_torch.sh
#   TORCH_DTYPES="float32 bfloat16" benches/wire_vs_torch.sh   # PyTorch sending bf16 too
#
# Needs PyTorch for $PYTHON (`pip install torch`).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
PYTHON=${PYTHON:-python3}
WORKERS=8
PARAMS=272186
UPDATES=${UPDATES:-4000}
LAGOM_DTYPES=${LAGOM_DTYPES:-"f32 bf16"}
TORCH_DTYPES=${TORCH_DTYPES:-float32}

if ! "$PYTHON" -c 'import torch.distributed.rpc' 2>/dev/null; then
  echo "PyTorch (with torch.distributed.rpc) is not importable by $PYTHON: pip install torch" >&2
  exit 1
fi
cargo bench --bench server_capacity --bench exact_average --no-run --quiet 2>/dev/null
BENCH=$(ls -t target/release/deps/server_capacity-* | grep -v '\.d$' | head -1)
AVERAGE=$(ls -t target/release/deps/exact_average-* | grep -v '\.d$' | head -1)

echo "cpu: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//'); cores: $(nproc); simd: $(grep -m1 -o -w -E 'avx512f|avx2|vaes|aes' /proc/cpuinfo | sort -u | tr '\n' ' ')"
"$PYTHON" -c 'import torch; print("pytorch", torch.__version__)'

results=$(mktemp)
trap 'rm -f "$results"' EXIT
for round in $(seq 1 "$ROUNDS"); do
  for dtype in $TORCH_DTYPES; do
    rate=$(OMP_NUM_THREADS=1 "$PYTHON" benches/torch_rpc_ps.py "$WORKERS" "$PARAMS" "$UPDATES" uv "$dtype" 2>/dev/null \
           | sed -n 's/.*updates_per_s \([0-9.]*\).*/\1/p')
    echo "torch-$dtype $rate" >>"$results"
    echo "round $round: PyTorch RPC (TCP) $dtype: $rate updates/s"
  done
  for dtype in $LAGOM_DTYPES; do
    line=$(RAYON_NUM_THREADS=1 "$BENCH" --quic "$dtype" | grep '^over QUIC')
    rate=$(sed -n 's/.*: \([0-9.]*\) updates\/s.*/\1/p' <<<"$line")
    echo "lagom-$dtype $rate" >>"$results"
    echo "round $round: lagom QUIC+TLS $dtype: $rate updates/s ${line#*updates/s }"
  done
  for dtype in $TORCH_DTYPES; do
    rate=$(OMP_NUM_THREADS=1 "$PYTHON" benches/torch_allreduce.py "$WORKERS" "$PARAMS" 400 "$dtype" 2>/dev/null \
           | sed -n 's/.*averages_per_s \([0-9.]*\).*/\1/p')
    echo "average:torch-gloo-$dtype $rate" >>"$results"
    echo "round $round: PyTorch gloo all-reduce $dtype: $rate averages/s"
  done
  for dtype in $LAGOM_DTYPES; do
    rate=$(RAYON_NUM_THREADS=1 "$AVERAGE" "$dtype" | sed -n 's/.*: \([0-9.]*\) averages\/s.*/\1/p')
    echo "average:lagom-$dtype $rate" >>"$results"
    echo "round $round: lagom exact average (QUIC+TLS) $dtype: $rate averages/s"
  done
done

python3 - "$results" <<'PY'
import statistics, sys
runs = {}
for line in open(sys.argv[1]):
    name, rate = line.split()
    runs.setdefault(name, []).append(float(rate))
med = {k: statistics.median(v) for k, v in runs.items()}
rounds = len(next(iter(runs.values())))
for title, prefix, anchor_name, unit in [
        ("parameter server", "", "torch-float32", "updates/s, vs PyTorch RPC float32"),
        ("exact average", "average:", "average:torch-gloo-float32",
         "averages/s, vs PyTorch gloo float32")]:
    anchor = med.get(anchor_name)
    print(f"{title}, medians of {rounds} rounds, {unit} (8 workers, 272 186 values):")
    for name, m in med.items():
        if name.startswith("average:") != (prefix == "average:"):
            continue
        ratio = f"  {m / anchor:.2f}x" if anchor else ""
        print(f"  {name.removeprefix(prefix):20} {m:8.1f}{ratio}")
PY
