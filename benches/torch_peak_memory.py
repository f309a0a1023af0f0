"""Runs a PyTorch benchmark script and prints its resident memory: the peak of the whole process
and the peak above the resident memory once torch is imported (what the script itself adds).

    python benches/torch_peak_memory.py SCRIPT [ARGS...]
"""
import resource
import runpy
import sys

import torch  # noqa: F401  (imported first so the baseline includes the library)


def rss_kib():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS in /proc/self/status")


baseline = rss_kib()
script = sys.argv[1]
sys.argv = sys.argv[1:]
runpy.run_path(script, run_name="__main__")
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
print(f"peak_rss_mib {peak / 1024:.1f} above_start_mib {(peak - baseline) / 1024:.1f}")
