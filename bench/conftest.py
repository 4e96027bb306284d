"""Benchmark fixtures and the closing table: medians, bandwidths and ratios from one run."""

from __future__ import annotations

import numpy as np
import pytest

N_WEIGHTS = 25_000_000
RESULTS: dict[str, dict] = {}


def weights_25m(seed: int = 0) -> np.ndarray:
    """25M float32 Laplace-like weights with 0.01% outliers (x20), fixed seed."""
    rng = np.random.default_rng(seed)
    x = rng.laplace(0.0, 0.05, size=N_WEIGHTS).astype(np.float32)
    x[rng.choice(N_WEIGHTS, N_WEIGHTS // 10_000, replace=False)] *= 20
    return x


@pytest.fixture(scope="session")
def weights() -> np.ndarray:
    return weights_25m()


def record(name: str, benchmark, nbytes: int | None = None, **extra) -> None:
    """Keep a benchmark's median (s) and the bytes it moves, for the closing table."""
    RESULTS[name] = {"median": benchmark.stats.stats.median, "bytes": nbytes, **extra}


def pytest_terminal_summary(terminalreporter):
    if not RESULTS:
        return
    tr = terminalreporter
    copy = RESULTS.get("copy")
    copy_bw = copy["bytes"] / copy["median"] if copy else None
    tr.section("wsc benchmark summary (medians, this run)")
    tr.write_line(f"{'benchmark':<28}{'median ms':>11}{'GB/s':>9}{'x copy bw':>11}  notes")
    for name, r in RESULTS.items():
        gbs = r["bytes"] / r["median"] / 1e9 if r["bytes"] else float("nan")
        frac = (r["bytes"] / r["median"]) / copy_bw if (r["bytes"] and copy_bw) else float("nan")
        notes = "  ".join(f"{k}={v}" for k, v in r.items() if k not in ("median", "bytes"))
        tr.write_line(f"{name:<28}{r['median'] * 1e3:>11.2f}{gbs:>9.2f}{frac:>11.2f}  {notes}")
