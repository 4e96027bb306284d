"""Pareto-front plot of a CompressionResult (matplotlib's Agg canvas: no display, no global backend change)."""

from __future__ import annotations

import os


def plot_fronts(result, path) -> None:
    """Error against the file size, before and after merging: all of it on the left, and on
    the right a close-up around the uncompressed model's error."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import LogLocator, NullFormatter, ScalarFormatter

    fig = Figure(figsize=(11, 4.5), dpi=110)
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    series = [("before merge", result.front_before, "o", "tab:blue")]
    if result.front_after:
        series.append(("after merge", result.front_after, "^", "tab:red"))
    if result.front_compensated:
        series.append(("compensated", result.front_compensated, "s", "tab:green"))
    base = 100 * (1 - result.baseline_search)
    chosen = result.choose()
    for ax in axes:
        for label, front, marker, color in series:
            front = sorted(front, key=lambda s: s.file_bytes)
            x = [s.file_bytes for s in front]
            ax.plot(x, [100 * s.search_error for s in front], marker=marker, color=color,
                    drawstyle="steps-post", label=f"{label}: search split")
            ax.plot(x, [100 * (1 - s.heldout_score) for s in front], marker=marker, color=color,
                    linestyle="none", markerfacecolor="none", label=f"{label}: held-out")
        ax.axhline(base, color="gray", linestyle="--", linewidth=1, label="uncompressed (search split)")
        ax.scatter([chosen.file_bytes], [100 * chosen.search_error], s=180, facecolors="none", edgecolors="black",
                   zorder=5, label=f"chosen: {chosen.values} values, {chosen.ratio:.1f}x honest")
        ax.set_xscale("log")
        ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
        ax.xaxis.set_major_formatter(ScalarFormatter())
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("file size (bytes)")
        ax.grid(True, alpha=0.3)
    metric = result.evaluator.get("metric", "score")
    axes[0].set_ylabel(f"error (%) = 100 - {metric}")
    axes[0].set_title(f"Pareto fronts ({result.evaluations} evaluations)")
    axes[1].set_ylim(base - 3, base + 6)
    axes[1].set_title("close-up around the uncompressed model")
    axes[1].legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    fig.savefig(os.fspath(path))
