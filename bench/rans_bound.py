"""How close rANS comes to the order-0 entropy where one symbol dominates, against what no
coder can beat on average.

The order-0 entropy of a sample fits its counts exactly. A coder that knew the source's true
probabilities p would spend -sum(c log2 p) bits, on average n H(p); the gap to the sample's
entropy, n KL(counts / n || p) on average, is a lower bound on any coder's average overhead
over the sample's entropy (a real coder must also learn p, so it pays more). Streams: 1M
symbols, one symbol at 99% or 99.9%, the rest on a geometric ("dominant") or a flat tail,
8 seeds each. Run: python bench/rans_bound.py

Beside them, an estimate of what a table that describes the tail by a model instead of
symbol by symbol could reach at best ("model"): the dominant symbol, then on each side a
truncated geometric law fitted to the counts by maximum likelihood (a ratio of 1 is a flat
tail), coded at those fitted probabilities exactly, plus one flushed 32-bit state and a
table of 7 + log2(k) bits and, per side, a gamma-coded extent, 12 bits of mass and 8 of
ratio. It leaves out the parameters' quantisation, so a real coder of this kind pays more.
"""

from __future__ import annotations

import argparse

import numpy as np

from wsc import rans

N = 1_000_000
SEEDS = 8
CASES = [(2, "dominant", 0.999), (16, "dominant", 0.999), (16, "flat", 0.999), (64, "dominant", 0.999),
         (256, "dominant", 0.999), (256, "flat", 0.999), (1024, "dominant", 0.999), (256, "flat", 0.99),
         (1024, "dominant", 0.99), (1024, "flat", 0.99), (4096, "dominant", 0.99), (4096, "flat", 0.99)]


def source(k: int, tail: str, top: float) -> np.ndarray:
    """Probabilities: symbol k // 3 at `top`, the rest geometric around it or flat."""
    a, centre = np.arange(k), k // 3
    w = np.exp(-np.abs(a - centre) / max(k / 40, 0.7)) if tail == "dominant" else np.ones(k)
    w[centre] = 0
    w = (1 - top) * w / w.sum()
    w[centre] = top
    return w / w.sum()


def _side_bits(c: np.ndarray) -> float:
    """-sum(c log2 p) of a side's counts c[0..n) (c[0] beside the dominant symbol) under the
    truncated geometric law p_j ~ r^j of maximum likelihood (r on a grid of 2,000 in (0, 1])."""
    n = c.size
    if n == 0 or c.sum() == 0:
        return 0.0
    r = np.linspace(1e-3, 1.0, 2000)[:, None]
    j = np.arange(n)
    log_p = j[c > 0] * np.log2(r) - np.log2((r ** j).sum(axis=1, keepdims=True))  # the sum is >= r^0 = 1
    return float(-(log_p @ c[c > 0]).max())


def model_bits(c: np.ndarray) -> float:
    """The "model" estimate (module doc) for counts c: payload at the fitted probabilities,
    one flushed state and the table."""
    d, used = int(np.argmax(c)), np.flatnonzero(c)
    left, right = c[used[0]:d][::-1].astype(np.float64), c[d + 1:used[-1] + 1].astype(np.float64)
    parts = np.array([c[d], left.sum(), right.sum()], dtype=np.float64)
    split = float(-(parts[parts > 0] * np.log2(parts[parts > 0] / parts.sum())).sum())
    per_side = 12 + 8  # mass and ratio
    table = 7 + np.log2(c.size) + sum(2 * np.floor(np.log2(side.size + 1)) + 1 + per_side for side in (left, right))
    return split + _side_bits(left) + _side_bits(right) + 32 + table


def main(argv: list[str] | None = None) -> None:
    argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split())).parse_args(argv)  # --help
    print(f"{'k':>5} {'tail':>9} {'top':>6} {'entropy':>9} {'floor':>8} {'rANS':>8} {'model':>8} {'states':>6}")
    for k, tail, top in CASES:
        p = source(k, tail, top)
        log_p = np.log2(np.where(p > 0, p, 1.0))
        floor, over, model, h_all, states = [], [], [], [], set()
        for seed in range(SEEDS):
            x = np.random.default_rng(seed).choice(k, size=N, p=p).astype(np.uint8 if k <= 256 else np.uint16)
            c = np.bincount(x, minlength=k)
            h = float(-(c[c > 0] * np.log2(c[c > 0] / N)).sum())
            s = rans.encode(x, k)
            floor.append(float(-(c * log_p).sum()) - h)
            over.append(s.nbits + 8 * s.table_bytes - h)
            model.append(model_bits(c) - h)
            h_all.append(h)
            states.add(s.states)
        h = float(np.mean(h_all))
        print(f"{k:>5} {tail:>9} {top:>6.1%} {h / N:>9.4f} {np.mean(floor) / h:>+8.2%} {np.mean(over) / h:>+8.2%} "
              f"{np.mean(model) / h:>+8.2%} {','.join(map(str, sorted(states))):>6}")
    print("entropy: bits/symbol of the sample; floor: the average overhead of a coder that knows p; "
          "rANS: ours (payload, flushed states and table); model: the estimate of a modelled table (module doc); "
          "all over the sample's entropy")


if __name__ == "__main__":
    main()
