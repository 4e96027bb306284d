"""Peak memory of compressing a big synthetic model, against its float32 weight bytes.

Run: python bench/bench_memory.py [--weights 2e8] [--layers 3]

Each measurement runs in a fresh subprocess: build an MLP of square Linear layers holding
about ``--weights`` shared weights (weights drawn in place, no transient copies), note the
resident set size (RSS), run ``wsc.compress`` with a trivial evaluate callable and a tiny
search (pop_size 4, 2 generations, no merge), save the chosen solution, and read the peak
RSS (``resource.getrusage(RUSAGE_SELF).ru_maxrss``). Reported: peak RSS beyond the model
(peak minus the RSS once the model exists) divided by the float32 bytes of the shared
weights. The issue's bound is about 1.5x.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile

CHILD = r"""
import json, os, resource, sys, tempfile, time
import torch
import wsc

n_weights, layers, size = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
torch.set_num_threads(int(sys.argv[4]))
wsc.set_num_threads(int(sys.argv[4]))
width = int(round((n_weights / layers) ** 0.5))


def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def peak():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


with torch.device("meta"):
    model = torch.nn.Sequential(*[torch.nn.Linear(width, width) for _ in range(layers)])
model = model.to_empty(device="cpu")
g = torch.Generator().manual_seed(0)
with torch.no_grad():
    for p in model.parameters():
        p.normal_(0.0, 0.02, generator=g)
before, peak_before = rss(), peak()
t0 = time.perf_counter()
result = wsc.compress(model, lambda m: 0.5, k_range=(2, 256), pop_size=4, generations=2, merge=False,
                      progress=False, size=size)
t1 = time.perf_counter()
with tempfile.TemporaryDirectory() as d:
    sol = result.save(os.path.join(d, "big.wsc"))
t2 = time.perf_counter()
n_shared = result.n_shared
print(json.dumps({"n_shared": n_shared, "float32_bytes": 4 * n_shared, "rss_with_model": before,
                  "peak_before_compress": peak_before, "peak": peak(), "compress_s": t1 - t0,
                  "save_s": t2 - t1, "file_bytes": sol.file_bytes, "values": sol.values, "size": size}))
"""


def measure(n_weights: int, layers: int, size: str, threads: int) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, str(n_weights), str(layers), size, str(threads)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"the measurement failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    r["beyond_model"] = r["peak"] - r["rss_with_model"]
    r["ratio"] = r["beyond_model"] / r["float32_bytes"]
    return r


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--weights", type=float, default=2e8, help="shared weights (default 2e8)")
    p.add_argument("--layers", type=int, default=3, help="square Linear layers (default 3)")
    p.add_argument("--size", choices=("values", "bits"), default="values", help="second objective")
    p.add_argument("--threads", type=int, default=2, help="torch and wsc threads (default 2)")
    p.add_argument("--json", action="store_true")
    args = p.parse_args(argv)
    r = measure(int(args.weights), args.layers, args.size, args.threads)
    if args.json:
        print(json.dumps(r, indent=2))
    else:
        gib = 2.0**30
        print(f"{r['n_shared']:,} shared weights ({r['float32_bytes'] / gib:.2f} GiB as float32), size={r['size']}: "
              f"peak RSS {r['peak'] / gib:.2f} GiB, {r['rss_with_model'] / gib:.2f} GiB with the model built; "
              f"beyond the model {r['beyond_model'] / gib:.2f} GiB = {r['ratio']:.2f}x the float32 weights "
              f"(compress {r['compress_s']:.1f} s, save {r['save_s']:.1f} s, {r['values']} values, "
              f"{r['file_bytes']:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
