"""PyTorch's all-reduce of a ResNet-20-sized vector over gloo (TCP): the anchor for lagom's exact
average through the rendezvous (benches/exact_average.rs; benches/wire_vs_torch.sh runs both).

    torch_allreduce.py [WORKERS] [PARAMS] [ROUNDS] [DTYPE]

WORKERS processes each all-reduce (sum, then divide: an average) a vector of PARAMS values ROUNDS
times after a warm-up of 20, over gloo's TCP transport (no encryption). DTYPE is float32 (the
default) or bfloat16. Prints `rounds R seconds S averages_per_s A`
(benches/wire_vs_torch.sh prints the CPU).
"""
import os
import sys
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

WARMUP = 20


def run(rank, workers, params, rounds, dtype_name):
    torch.set_num_threads(1)
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype_name]
    dist.init_process_group("gloo", init_method="tcp://127.0.0.1:29518", rank=rank,
                            world_size=workers)
    x = torch.full((params,), 0.001 * (rank + 1), dtype=dtype)
    for _ in range(WARMUP):
        dist.all_reduce(x)
        x /= workers
    dist.barrier()
    started = time.perf_counter()
    for _ in range(rounds):
        dist.all_reduce(x)
        x /= workers
    dist.barrier()
    seconds = time.perf_counter() - started
    if rank == 0:
        print(f"torch {torch.__version__} gloo dtype {dtype_name} workers {workers} params {params}")
        print(f"rounds {rounds} seconds {seconds:.3f} averages_per_s {rounds / seconds:.1f}",
              flush=True)
    dist.destroy_process_group()


def main():
    workers = int(sys.argv[1]) if len(sys.argv) > 1 else 8
    params = int(sys.argv[2]) if len(sys.argv) > 2 else 272_186
    rounds = int(sys.argv[3]) if len(sys.argv) > 3 else 400
    dtype = sys.argv[4] if len(sys.argv) > 4 else "float32"
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    mp.spawn(run, args=(workers, params, rounds, dtype), nprocs=workers, join=True)


if __name__ == "__main__":
    main()
