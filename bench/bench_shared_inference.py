"""Shared-weight inference: peak memory, forward time and load time, compact/cached vs float32.

A synthetic MLP of 32 Linear(1280, 1280) layers (52.4M shared weights, 16 shared values)
is compressed once; then each mode runs in a fresh process that builds the model on the
meta device, loads it, and runs inference on a batch:

- float32: torch.load of the float32 state dict (assign), plain layers;
- compact / cached: wsc.load_shared from the .wsc file.

Memory: VmRSS before any weight is loaded (after one warm-up call of a wsc op), VmHWM (peak) after loading; then freed heap is
returned to the OS (malloc_trim, every mode alike), the peak is reset
(/proc/self/clear_refs), and VmHWM is read again after inference. The weights' share
is (peak during inference - RSS before weights) / float32 weight bytes.

Run: python bench/bench_shared_inference.py [--layers 32 --width 1280 --batch 64]

glibc's malloc raises its mmap threshold after a large block is freed, then serves the next
gathered weights from the heap and keeps them resident; with layers of several MiB set
MALLOC_MMAP_THRESHOLD_=1048576 to measure (and run) compact mode without that retention.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import torch
from torch import nn


def mlp(layers: int, width: int) -> nn.Module:
    return nn.Sequential(*[m for _ in range(layers) for m in (nn.Linear(width, width), nn.ReLU())])


def status_kb(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak() -> None:
    """Return freed heap to the OS (glibc malloc_trim, all modes alike), then reset VmHWM."""
    import ctypes
    import gc

    gc.collect()
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def child(mode: str, d: str, layers: int, width: int, batch: int) -> dict:
    import wsc

    torch.set_num_threads(2)
    x = torch.randn(batch, width, generator=torch.Generator().manual_seed(0))
    with torch.device("meta"):
        model = mlp(layers, width).eval()
    cold = status_kb("VmRSS")
    # The first call of any torch.library custom op imports torch's op machinery (a fixed
    # ~70 MiB of code and data, whatever the model size): pay it before the baseline.
    torch.ops.wsc.gather(torch.zeros(4, dtype=torch.uint8), torch.zeros(2), torch.float32)
    torch.ops.wsc.gather_u4(torch.zeros(2, dtype=torch.uint8), torch.zeros(2), [4], torch.float32)
    before = status_kb("VmRSS")
    t0 = time.perf_counter()
    if mode == "float32":
        model.load_state_dict(torch.load(os.path.join(d, "model.pt"), weights_only=True, mmap=False), assign=True)
    else:
        wsc.load_shared(model, os.path.join(d, "model.wsc"), mode=mode)
    load_s = time.perf_counter() - t0
    load_peak = status_kb("VmHWM")
    reset_peak()
    loaded = status_kb("VmRSS")
    times = []
    with torch.inference_mode():
        for _ in range(7):
            t = time.perf_counter()
            y = model(x)
            times.append(time.perf_counter() - t)
    infer_peak = status_kb("VmHWM")
    return {"mode": mode, "op_warmup_kb": before - cold, "rss_before_kb": before, "load_peak_kb": load_peak, "loaded_kb": loaded, "infer_peak_kb": infer_peak,
            "load_s": load_s, "forward_ms": statistics.median(times) * 1e3, "checksum": float(y.double().sum())}


def setup(d: str, layers: int, width: int) -> dict:
    import wsc

    torch.manual_seed(0)
    model = mlp(layers, width).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.distributions.Laplace(0.0, 0.02).sample(p.shape))
    torch.save(model.state_dict(), os.path.join(d, "model.pt"))
    result = wsc.compress(model, lambda m: 0.0, k_range=(15, 16), pop_size=2, generations=1, merge=False,
                          progress=False)
    sol = result.save(os.path.join(d, "model.wsc"))
    n = sum(p.numel() for n_, p in model.named_parameters() if n_.endswith("weight"))
    return {"shared_weights": n, "float32_weight_bytes": 4 * n, "values": sol.values,
            "wsc_bytes": os.path.getsize(os.path.join(d, "model.wsc")),
            "pt_bytes": os.path.getsize(os.path.join(d, "model.pt"))}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=32)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--dir", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        print(json.dumps(child(a.child, a.dir, a.layers, a.width, a.batch)))
        return
    with tempfile.TemporaryDirectory() as d:
        info = setup(d, a.layers, a.width)
        print(json.dumps(info))
        rows = []
        for mode in ("float32", "compact", "cached"):
            out = subprocess.run([sys.executable, __file__, "--child", mode, "--dir", d, "--layers", str(a.layers),
                                  "--width", str(a.width), "--batch", str(a.batch)],
                                 capture_output=True, text=True, check=True)
            rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    w = info["float32_weight_bytes"] / 1024
    base = rows[0]
    print(f"\n{info['shared_weights']:,} shared weights ({w / 1024:.1f} MiB float32), {info['values']} values, "
          f".wsc {info['wsc_bytes'] / 2**20:.1f} MiB, .pt {info['pt_bytes'] / 2**20:.1f} MiB")
    print(f"{'mode':<9}{'RSS before':>12}{'load peak':>11}{'loaded':>9}{'infer peak':>12}{'weights share':>15}"
          f"{'forward ms':>12}{'x float32':>10}{'load s':>8}{'x torch.load':>13}")
    for r in rows:
        share = (r["infer_peak_kb"] - r["rss_before_kb"]) / w
        print(f"{r['mode']:<9}{r['rss_before_kb'] / 1024:>10.0f}Mi{r['load_peak_kb'] / 1024:>9.0f}Mi"
              f"{r['loaded_kb'] / 1024:>7.0f}Mi"
              f"{r['infer_peak_kb'] / 1024:>10.0f}Mi{share:>14.0%}{r['forward_ms']:>12.2f}"
              f"{r['forward_ms'] / base['forward_ms']:>10.2f}{r['load_s']:>8.3f}{r['load_s'] / base['load_s']:>13.2f}")
    print(f"one-time cost of torch's custom-op machinery (first op call): {rows[1]['op_warmup_kb'] / 1024:.0f} MiB")
    same = len({round(r["checksum"], 3) for r in rows[1:]}) == 1
    print(f"compact and cached outputs agree: {same}")


if __name__ == "__main__":
    main()
