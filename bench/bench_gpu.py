"""GPU benchmarks of the wsc CUDA kernels against a device-to-device copy measured in the same run.

Run: python bench/bench_gpu.py [--n 1e9] [--reps 20] [--markdown FILE]
(bench/gpu_check.sh builds the package and runs this.)

Every figure is the median of --reps runs timed with CUDA events. Bandwidth counts bytes read
plus bytes written once each; "x copy" divides it by the copy's bandwidth (read + write), the
practical peak of the GPU. Targets (issue 6): binning and share >= 0.70 x copy; chunked Huffman
decode fused with the gather >= 100 GB/s of output weights (its GB/s column counts the output
only; the payload is already on the GPU, the code tables are built on the host per call).
Exits 2 with the reason when no usable CUDA device is present.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
import torch

import wsc
from wsc import _cuda, huffman


def timed(fn, reps: int, device: str, warmup: int = 3) -> float:
    """Median seconds of fn() over reps runs (CUDA events on the current stream; wall clock on the CPU)."""
    for _ in range(warmup):
        fn()
    times = []
    if device == "cpu":
        for _ in range(reps):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return statistics.median(times)
    torch.cuda.synchronize()
    for _ in range(reps):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end) / 1e3)
    return statistics.median(times)


def weights(n: int, device: str, seed: int = 0) -> torch.Tensor:
    """n Laplace(0, 0.05) float32 weights with 0.01% outliers (x20), made on ``device``."""
    g = torch.Generator(device=device).manual_seed(seed)
    x = torch.empty(n, device=device).exponential_(generator=g).mul_(0.05)
    sign = torch.randint(0, 2, (n,), device=device, generator=g, dtype=torch.int8).mul_(2).sub_(1)
    x.mul_(sign)
    out = torch.randint(0, n, (max(1, n // 10_000),), device=device, generator=g)
    x[out] *= 20
    return x


class Table:
    """Rows of (name, median ms, GB/s, fraction of the copy bandwidth, target, verdict, notes)."""

    def __init__(self) -> None:
        self.rows: list[tuple] = []
        self.copy_bw: float | None = None

    def add(self, name: str, seconds: float, nbytes: int, *, target: float | None = None,
            target_gbs: float | None = None, note: str = "", baseline: bool = False) -> None:
        """target: fraction of the copy bandwidth; target_gbs: absolute GB/s."""
        bw = nbytes / seconds
        if baseline:
            self.copy_bw = bw
        frac = bw / self.copy_bw if self.copy_bw else None
        verdict, shown = "", None
        if target is not None and frac is not None:
            verdict, shown = ("ok" if frac >= target else "BELOW TARGET"), f"{target:.2f}x"
        elif target_gbs is not None:
            verdict, shown = ("ok" if bw / 1e9 >= target_gbs else "BELOW TARGET"), f"{target_gbs:.0f}GB/s"
        self._row((name, seconds * 1e3, bw / 1e9, frac, shown, verdict, note))

    def skip(self, name: str, note: str) -> None:
        self._row((name, None, None, None, None, "not run", note))

    def _row(self, row: tuple) -> None:
        self.rows.append(row)
        print(self.format_row(row), flush=True)

    @staticmethod
    def header() -> str:
        return (f"| {'benchmark':<34} | {'median ms':>9} | {'GB/s':>8} | {'x copy':>6} | {'target':>8} | "
                f"{'verdict':<12} | notes |")

    @staticmethod
    def format_row(r: tuple) -> str:
        name, ms, gbs, frac, target, verdict, note = r

        def f(v, spec):
            return format(v, spec) if v is not None else "-"

        return (f"| {name:<34} | {f(ms, '9.3f'):>9} | {f(gbs, '8.1f'):>8} | {f(frac, '6.2f'):>6} | "
                f"{f(target, ''):>8} | {verdict:<12} | {note} |")

    def markdown(self) -> str:
        widths = (36, 11, 10, 8, 10, 14, 7)
        sep = "|" + "|".join("-" * w for w in widths) + "|"
        return "\n".join([self.header(), sep] + [self.format_row(r) for r in self.rows])


def run(n: int, reps: int, device: str) -> Table:
    table = Table()
    print(table.header())

    def t(fn):
        return timed(fn, reps, device)

    x = weights(n, device)
    lo, hi = wsc.ops.range(x)
    dst = torch.empty_like(x)
    table.add("copy float32 (baseline)", t(lambda: dst.copy_(x)), 8 * n, note="read + write", baseline=True)
    table.add("range", t(lambda: wsc.ops.range(x)), 4 * n, note="min/max back to the host")

    idx8 = torch.empty(n, dtype=torch.uint8, device=device)
    idx16 = torch.empty(n, dtype=torch.uint16, device=device)
    for k in (16, 64, 256, 4096):
        idx = idx8 if k <= 256 else idx16
        tier = "" if device == "cpu" else (
            "private columns" if k <= 64 else "warp-aggregated, shared" if k <= 3072 else "warp-aggregated, global")
        table.add(f"bin_uniform k={k} -> uint{8 * idx.element_size()}",
                  t(lambda: wsc.ops.bin_uniform(x, k, lo, hi, out=idx)), 4 * n + idx.element_size() * n,
                  target=0.70, note=f"+ counts and sums; {tier}".rstrip("; "))
    del idx16

    b = wsc.ops.bin_uniform(x, 16, lo, hi, out=idx8)
    codebook = (b.sums / b.counts.clamp(min=1)).float()
    for k in (16, 256):
        cb = codebook if k == 16 else torch.linspace(lo, hi, k, device=device)
        table.add(f"share k={k} float32", t(lambda: wsc.ops.share(x, lo, hi, cb, out=dst)), 8 * n, target=0.70)
    for dtype in (torch.float32, torch.bfloat16):
        out = dst if dtype == torch.float32 else torch.empty(n, dtype=dtype, device=device)
        sec = t(lambda: wsc.ops.gather(idx8, codebook, out=out))
        table.add(f"gather k=16 uint8 -> {str(dtype)[6:]}", sec, n + out.element_size() * n,
                  note=f"{n / sec / 1e9:.0f} G weights/s")
    for k in (16, 256):
        b = wsc.ops.bin_uniform(x, k, lo, hi, out=idx8)
        cb = (b.sums / b.counts.clamp(min=1)).float()
        t0 = time.perf_counter()
        s = huffman.encode(idx8.cpu().numpy(), k)  # the CPU encoder
        enc = time.perf_counter() - t0
        fused = decode_gather_fn(s, cb, dst)
        sec = t(fused)
        table.add(f"decode+gather k={k} -> float32", sec, 4 * n, target_gbs=100.0,
                  note=f"{n / sec / 1e9:.0f} G weights/s; {8 * s.data.size / n:.2f} bits/weight, "
                       f"chunks of {s.chunk_size}; CPU encode {enc:.1f} s")
        for part in (slice(0, 1000), slice(n - 1000, n)):  # spot check, both ends of the stream
            np.testing.assert_array_equal(dst[part].cpu().numpy(), cb[idx8[part].long()].cpu().numpy())
    table.skip("wsc compress search on the GPU", "not wired: Workbench.apply shares on CPU copies (follow-up)")
    return table


def decode_gather_fn(s: huffman.HuffmanStream, codebook: torch.Tensor, out: torch.Tensor):
    """The fused decoder (torch.ops.wsc.decode_gather_into) on a payload already on ``device``."""
    dev = out.device
    args = (torch.tensor(s.data, device=dev), torch.tensor(s.lengths, device=dev),
            torch.tensor(s.chunk_offsets, device=dev), s.n_symbols, s.chunk_size, codebook)
    return lambda: torch.ops.wsc.decode_gather_into(*args, out)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=float, default=1e9, help="weights per benchmark (default 1e9)")
    ap.add_argument("--reps", type=int, default=20, help="timed runs per benchmark (median reported)")
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"],
                    help="cpu runs the same table on the CPU kernels (a dry run of this script)")
    ap.add_argument("--markdown", help="also write the table to this file")
    args = ap.parse_args()

    if args.device == "cuda":
        reason = _cuda.unavailable_reason()
        if reason is not None:
            print(f"bench_gpu: no usable CUDA device: {reason}", file=sys.stderr)
            return 2
        props = torch.cuda.get_device_properties(0)
        where = f"{props.name}, {props.total_memory / 2**30:.0f} GiB, {props.multi_processor_count} SMs"
    else:
        where = f"CPU, {wsc.get_num_threads()} threads"
    n, reps = int(args.n), args.reps
    print(f"device: {where}; torch {torch.__version__}; {wsc._C.cuda_runtime_info()}")
    print(f"n = {n:,} float32 weights, median of {reps} runs\n")
    t0 = time.perf_counter()
    table = run(n, reps, args.device)
    print(f"\nbenchmarks took {time.perf_counter() - t0:.0f} s")
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table.markdown() + "\n")
    below = [r[0] for r in table.rows if r[5] == "BELOW TARGET"]
    if below:
        print("below target: " + ", ".join(below))
    return 0


if __name__ == "__main__":
    sys.exit(main())
