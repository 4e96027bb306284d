"""Pareto-front plot of a CompressionResult (matplotlib's Agg canvas: no display, no global backend change)."""

from __future__ import annotations

import os


def plot_fronts(result, path) -> None:
    """Search and held-out error against the number of shared values, before and after merging."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    series = [("before merge", result.front_before, "o", "tab:blue")]
    if result.front_after and result.settings.get("merge", True):
        series.append(("after merge", result.front_after, "^", "tab:red"))
    for label, front, marker, color in series:
        x = [s.values for s in front]
        ax.plot(x, [100 * s.search_error for s in front], marker=marker, color=color, linestyle="-",
                drawstyle="steps-post", label=f"{label}: search split")
        ax.plot(x, [100 * (1 - s.heldout_score) for s in front], marker=marker, color=color,
                linestyle="none", markerfacecolor="none", label=f"{label}: held-out")
    ax.axhline(100 * (1 - result.baseline_search), color="gray", linestyle="--", linewidth=1,
               label="uncompressed (search)")
    chosen = result.choose()
    ax.scatter([chosen.values], [100 * chosen.search_error], s=160, facecolors="none", edgecolors="black",
               label=f"chosen: {chosen.values} values, {chosen.ratio:.1f}x")
    ax.set_xscale("log")
    ax.set_xlabel("shared values (codebook size)")
    ax.set_ylabel(f"error (%) = 100 - {result.evaluator.get('metric', 'score')}")
    ax.set_title(f"wsc Pareto front ({result.evaluations} evaluations)")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(os.fspath(path))
