"""PyTorch's parameter server over `torch.distributed.rpc`: the anchor for lagom's over-the-wire
capacity (benches/wire_vs_torch.sh runs both side by side).

    torch_rpc_ps.py [WORKERS] [PARAMS] [UPDATES] [TRANSPORT] [DTYPE]

Rank 0 is the server: it holds PARAMS float32 parameters and applies each gradient it receives as
one SGD step under a lock (asynchronous SGD), then returns a copy of the parameters. Ranks
1..WORKERS are worker processes that, like lagom's bench workers, answer every parameter copy at
once with a precomputed gradient. TRANSPORT is TensorPipe's: `uv` (TCP, the default; tensors go
through the `basic` channel, so every byte crosses the TCP connection) or `shm` (shared memory).
DTYPE is the tensor's type on the wire: float32 (default) or bfloat16 (the server keeps float32
parameters and converts both ways, as lagom's `net.wire_dtype = "bf16"` does). Prints
`updates U seconds S updates_per_s R` for the UPDATES updates after a warm-up of WORKERS x 20
(benches/wire_vs_torch.sh prints the CPU). No encryption on this side.
"""
import os
import sys
import threading
import time

import torch
import torch.distributed.rpc as rpc
import torch.multiprocessing as mp

WARMUP_PER_WORKER = 20


class Server:
    """The parameters and the lock that serializes updates (ASGD applies one gradient at a time)."""

    def __init__(self, params, dtype, total):
        self.params = torch.zeros(params, dtype=torch.float32)
        self.lock = threading.Lock()
        self.dtype = dtype
        self.applied = 0
        self.total = total

    def push_pull(self, grad):
        with self.lock:
            self.params.add_(grad.to(torch.float32), alpha=-1e-6)
            self.applied += 1
            return self.params.to(self.dtype, copy=True), self.applied >= self.total


SERVER = None


def push_pull(grad):
    """Applies `grad` on the server; returns the parameters and whether the run is over (rank 0)."""
    return SERVER.push_pull(grad)


def run(rank, workers, params, updates, transport, dtype_name):
    global SERVER
    torch.set_num_threads(1)
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype_name]
    channels = ["basic"] if transport == "uv" else ["basic", "cma"]
    options = rpc.TensorPipeRpcBackendOptions(
        num_worker_threads=16, init_method="tcp://127.0.0.1:29517",
        _transports=[transport], _channels=channels, rpc_timeout=300)
    name = "server" if rank == 0 else f"worker{rank}"
    if rank == 0:
        SERVER = Server(params, dtype, workers * WARMUP_PER_WORKER + updates)
    rpc.init_rpc(name, rank=rank, world_size=workers + 1, rpc_backend_options=options)
    if rank == 0:
        # Warm-up: every worker sends its first WARMUP_PER_WORKER gradients; the clock starts
        # once they are applied and stops when UPDATES more are.
        start_at = workers * WARMUP_PER_WORKER
        while SERVER.applied < start_at:
            time.sleep(0.0005)
        started, first = time.perf_counter(), SERVER.applied
        while SERVER.applied < first + updates:
            time.sleep(0.0005)
        seconds = time.perf_counter() - started
        print(f"torch {torch.__version__} transport {transport} channels {','.join(channels)} "
              f"dtype {dtype_name} workers {workers} params {params}")
        print(f"updates {updates} seconds {seconds:.3f} updates_per_s {updates / seconds:.1f}",
              flush=True)
    else:
        grad = torch.full((params,), 0.5, dtype=dtype)
        done = False
        while not done:
            _, done = rpc.rpc_sync("server", push_pull, args=(grad,))
    rpc.shutdown()


def main():
    workers = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    params = int(sys.argv[2]) if len(sys.argv) > 2 else 272_186
    updates = int(sys.argv[3]) if len(sys.argv) > 3 else 4000
    transport = sys.argv[4] if len(sys.argv) > 4 else "uv"
    dtype = sys.argv[5] if len(sys.argv) > 5 else "float32"
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    mp.spawn(run, args=(workers, params, updates, transport, dtype), nprocs=workers + 1, join=True)


if __name__ == "__main__":
    main()
