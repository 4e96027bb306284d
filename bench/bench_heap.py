"""Search-evaluation time of the built-in models with glibc's default heap and with
``wsc.heap.keep_freed_memory()``.

Run: python bench/bench_heap.py [--models ...] [--repeats 9] [--runs 3]

Each model is measured in fresh subprocesses (the setting is process-wide and cannot be
undone), ``--runs`` of each kind, alternating, one thread each, as bench/quality.py runs
them: the 2,000-image search split of the Fashion-MNIST test set (channels_last for
convolutional models), scored with ``Accuracy.search`` ``--repeats`` times after one
warm-up. Reported per kind: the lowest and highest of the runs' median seconds per
evaluation (the default heap's cost of page faults varies from run to run), and the ratio of
the medians over runs. The scores must agree exactly (the same arithmetic).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

MODELS = ["lenet5-fmnist", "lenet300-fmnist", "dwcnn-fmnist", "gru-fmnist"]

CHILD = r"""
import json, statistics, sys, time
import torch
import wsc
from wsc import heap, zoo

name, keep, repeats, bench = sys.argv[1], sys.argv[2] == "1", int(sys.argv[3]), sys.argv[4]
kept = heap.keep_freed_memory() if keep else False
torch.set_num_threads(1)
wsc.set_num_threads(1)
sys.path.insert(0, bench)
from quality import search_setup

ev, conv = search_setup(name)
model = zoo.load_model(name).eval()
if conv:
    model = model.to(memory_format=torch.channels_last)
score = ev.search(model)
times = []
for _ in range(repeats):
    t0 = time.perf_counter()
    assert ev.search(model) == score
    times.append(time.perf_counter() - t0)
print(json.dumps({"kept": kept, "median_s": statistics.median(times), "score": score}))
"""


def measure(name: str, keep: bool, repeats: int) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, name, "1" if keep else "0", str(repeats),
                           os.path.dirname(os.path.abspath(__file__))],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{name}: the measurement failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=MODELS)
    p.add_argument("--repeats", type=int, default=9)
    p.add_argument("--runs", type=int, default=3, help="subprocesses of each kind per model")
    args = p.parse_args(argv)
    print("| model | default heap, ms/evaluation | keep_freed_memory, ms/evaluation | speed-up (medians) |")
    print("|:--|--:|--:|--:|")
    for name in args.models:
        runs = [(measure(name, False, args.repeats), measure(name, True, args.repeats)) for _ in range(args.runs)]
        base, kept = [r[0] for r in runs], [r[1] for r in runs]
        if not all(k["kept"] for k in kept):
            raise SystemExit("keep_freed_memory() did not take effect (not glibc?)")
        if len({r["score"] for r in base + kept}) != 1:
            raise SystemExit(f"{name}: the scores differ: {[r['score'] for r in base + kept]}")
        b, k = ([1e3 * r["median_s"] for r in rs] for rs in (base, kept))
        print(f"| {name} | {min(b):.1f}–{max(b):.1f} | {min(k):.1f}–{max(k):.1f} | "
              f"{statistics.median(b) / statistics.median(k):.2f}x |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
