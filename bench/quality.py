"""Compression-quality benchmark: the paper's method, each improvement, and their combination.

    python bench/quality.py                                  # four models, ten methods
    python bench/quality.py --methods "combined, values" "combined, all"   # the ablations
    python bench/quality.py --models lenet5-fmnist --methods paper combined --out /tmp/q
    python bench/quality.py --combine a/quality.json b/quality.json --out c   # one table of both

On the built-in models trained on Fashion-MNIST (LeNet-5, LeNet-300-100, a depthwise-separable
CNN and a row-by-row GRU), with a class-balanced search split of 2,000 test images (seed 0)
and the other 8,000 held out, every method runs the same NSGA-II budget and the same bar
(tolerance 1 point). Besides the paper's method, each improvement alone (``+compact``: the
unshared tensors stored compactly, :mod:`wsc.stored`; ``+steps``: a bin-width level per
group of tensors, :mod:`wsc.scheme`) and their combination (with calibration
data: BatchNorm statistics re-estimated for every codebook, and GPTQ on the final fronts),
and two variants of the combination, run on request: with the number of values as the size
objective (``"combined, values"``: is coded size the better default?) and sharing every
parameter (``"combined, all"``, ``params="all"``: biases and BatchNorm statistics in the
codebook too, instead of stored apart). For the solution each method selects on the search split alone it
reports the honest file size and ratio, the held-out drop and whether it kept the bar; for
the whole run the hypervolume of the held-out front (held-out error against file size, in
the box of at most 5 points of drop and at least 2x, normalised to 1), evaluations and wall
time; and the size against the paper's at the paper's chosen held-out accuracy (the smallest
file of the method whose held-out accuracy is at least that). Writes quality.json,
quality.md (the README table) and quality.png (held-out fronts) to --out; jobs run in
parallel processes (one job per model and method), one thread each; convolutional models and their inputs in channels_last
memory format (2-3x faster convolutions on the CPU).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import time
from pathlib import Path

import numpy as np

MODELS = ["lenet5-fmnist", "lenet300-fmnist", "dwcnn-fmnist", "gru-fmnist"]
CALIBRATION = 1024  # training images (never the test images the splits come from)
SEARCH_SIZE = 2000  # test images in the class-balanced search split; the rest are held out
FIXED_OPTIONS = ("tolerance", "progress", "pop_size", "generations", "k_range", "seed")  # the benchmark's budget and bar
_PAPER = {"codebook": "uniform", "clip": False, "steps": False, "size": "values", "confidence": None, "merge": "within",
          "stored": "exact"}
_COMBINED = {"codebook": "auto", "clip": True, "steps": True, "size": "bits", "confidence": 0.95, "merge": "within",
             "stored": "compact"}
METHODS = {  # the paper merges every front solution; the others only those within the bar
    "paper": {**_PAPER, "merge": True},
    "+confidence": {**_PAPER, "confidence": 0.95},
    "+scope": {**_PAPER, "codebook": ["uniform", "normalized"]},
    "+clip": {**_PAPER, "clip": True},
    "+steps": {**_PAPER, "steps": True},  # a step level (bin width) per group of tensors
    "+kmeans": {**_PAPER, "codebook": "kmeans"},
    "+bits": {**_PAPER, "size": "bits"},
    "+compact": {**_PAPER, "stored": "compact"},  # BatchNorm folded, vectors as 8-bit codes (wsc.stored)
    "combined": _COMBINED,
    "combined, values": {**_COMBINED, "size": "values"},
    "combined, all": {**_COMBINED, "params": "all"},
    # the combination with CALIBRATION training images: BatchNorm statistics re-estimated for
    # every codebook, and GPTQ error compensation chosen by the search
    "combined + gptq": {**_COMBINED, "calibration": True},
    # the same with GPTQ on the final fronts only (compensate="front"), not chosen by the search
    "combined + gptq front": {**_COMBINED, "calibration": True, "compensate": "front"},
}
COST = {"dwcnn-fmnist": 3.0, "lenet5-fmnist": 1.0, "gru-fmnist": 1.0, "lenet300-fmnist": 0.2}  # relative run time
METHOD_COST = {"combined + gptq": 4.0, "combined + gptq front": 4.0, "combined": 3.0}  # the others 1
ABLATIONS = ("combined, values", "combined, all", "combined + gptq front")  # run on request
DEFAULT_METHODS = [m for m in METHODS if m not in ABLATIONS]
DROP_BOX, SIZE_BOX = 0.05, 0.5  # the hypervolume's box: <= 5 points of drop, >= 2x


def hypervolume(points: list[tuple[float, float]], ref: tuple[float, float]) -> float:
    """Area dominated by (error, size) points (both minimised) inside the box below ``ref``:
    swept by increasing error, a point smaller than all before it adds the strip between its
    size and theirs, from its error to the reference's."""
    area, best_size = 0.0, ref[1]
    for e, s in sorted((e, s) for e, s in points if e < ref[0] and s < ref[1]):
        if s < best_size:
            area += (ref[0] - e) * (best_size - s)
            best_size = s
    return area


def search_setup(name: str, search_size: int = SEARCH_SIZE, split_seed: int = 0, select_size: int = 0):
    """(evaluator on the class-balanced search split of ``search_size`` test images, drawn with
    ``split_seed``, and the rest held out; whether the model is convolutional) of a built-in
    model; with ``select_size``, that many of the held-out images are its selection split
    instead (``Accuracy(select=...)``). The inputs of a convolutional model are
    channels_last: 2-3x faster convolutions on the CPU (same model, same splits)."""
    import torch

    from wsc import data, zoo
    from wsc.evaluate import Accuracy, gather_data

    x, y = gather_data(data.load(zoo.BUILTINS[name].dataset, split="test"))
    conv = any(p.dim() == 4 for p in zoo.load_model(name).parameters())
    if conv:
        x = x.contiguous(memory_format=torch.channels_last)
    search, heldout = data.balanced_split(y.numpy(), search_size, split_seed)
    select = None
    if select_size:  # a class-balanced part of the held-out images, as `wsc compress --select-size` takes it
        pick, rest = data.balanced_split(y.numpy()[heldout], select_size, split_seed + 2)
        select, heldout = (x[heldout[pick]], y[heldout[pick]]), heldout[rest]
    return Accuracy(search=(x[search], y[search]), heldout=(x[heldout], y[heldout]), select=select), conv


def check_options(options) -> None:
    """Raise ValueError unless ``options`` is a dict of ``wsc.compress`` options that leaves
    the benchmark's budget and bar (:data:`FIXED_OPTIONS`) alone."""
    if not isinstance(options, dict):
        raise ValueError(f"options must be a JSON object (a dict); got {options!r}")
    fixed = set(options) & set(FIXED_OPTIONS)
    if fixed:
        raise ValueError(f"options cannot set {sorted(fixed)}: the benchmark fixes its budget and bar")


def run_model(job: tuple) -> list[dict]:
    """Methods on one model (in a worker process, one thread): job = (model, methods, budget[,
    setup]); setup may set ``search_size``, ``split_seed``, ``calibration`` (images),
    ``select_size`` (held-out images set apart as the evaluator's selection split) and
    ``options`` (``wsc.compress`` options that replace the methods' own) apart from the
    defaults. A row's choice is the search split's alone; with a selection split, the
    choice that keeps the bar on it too is the row's ``select_choice``."""
    name, methods, budget, *rest = job
    setup = {"search_size": SEARCH_SIZE, "split_seed": 0, "calibration": CALIBRATION, "select_size": 0, "options": {}}
    unknown = set(rest[0] if rest else {}) - set(setup)
    if unknown:
        raise ValueError(f"run_model: unknown setup keys {sorted(unknown)}; known: {sorted(setup)}")
    setup.update(rest[0] if rest else {})
    check_options(setup["options"])
    import torch

    import wsc
    from wsc import data, zoo
    from wsc.evaluate import gather_data
    from wsc.heap import keep_freed_memory

    keep_freed_memory()  # as wsc compress: no page faults for the activations of every evaluation
    torch.set_num_threads(1)
    wsc.set_num_threads(1)
    evaluator, conv = search_setup(name, setup["search_size"], setup["split_seed"], setup["select_size"])
    rows = []
    for method in methods:
        model = zoo.load_model(name)
        if conv:
            model = model.to(memory_format=torch.channels_last)
        options = {**METHODS[method], **setup["options"]}
        if options.get("calibration"):  # training images spread over the split, in batches of 256
            train_x, _ = gather_data(data.load(zoo.BUILTINS[name].dataset, split="train"))
            n = setup["calibration"]
            cal = train_x[::len(train_x) // n][:n]
            if conv:
                cal = cal.contiguous(memory_format=torch.channels_last)
            options["calibration"] = list(cal.split(256))
        t0 = time.perf_counter()
        r = wsc.compress(model, evaluator, tolerance=0.01, progress=False, **budget, **options)
        wall = time.perf_counter() - t0
        chosen = r.choose(select=False)
        measured = {s.codebook.key: s for s in r.front_before + r.front_after + r.front_compensated}.values()
        front = [(1 - s.heldout_score, s.file_bytes) for s in measured]
        rows.append({
            "model": name, "method": method, "baseline_search": r.baseline_search,
            "baseline_heldout": r.baseline_heldout, "original_bytes": r.original_bytes,
            "file_bytes": chosen.file_bytes, "ratio": chosen.ratio, "bits_per_weight": chosen.bits_per_weight,
            "values": chosen.values, "k": chosen.k, "scheme": chosen.scheme.describe(), "coder": chosen.coder,
            "compensated": chosen.compensated,
            "search_drop": r.baseline_search - chosen.search_score, "search_bound": chosen.search_bound,
            "heldout_drop": r.baseline_heldout - chosen.heldout_score,
            "kept_bar": r.baseline_heldout - chosen.heldout_score <= 0.01,
            "front": [{"heldout_error": e, "file_bytes": b} for e, b in sorted(front)],
            "evaluations": r.evaluations, "heldout_evaluations": r.heldout_evaluations, "wall_s": wall,
        })
        if evaluator.selects:  # the choice within the bar on the selection split too
            c = r.choose()
            drop = r.baseline_heldout - c.heldout_score
            rows[-1]["select_choice"] = ({"ratio": c.ratio, "file_bytes": c.file_bytes, "search_bound": c.search_bound,
                                          "select_bound": c.select_bound, "heldout_drop": drop, "kept_bar": drop <= 0.01}
                                         if r.within(c) else None)
        print(f"{name:16} {method:12} {chosen.ratio:6.2f}x drop {100 * rows[-1]['heldout_drop']:5.2f} pp "
              f"{r.evaluations:5d} evals {wall:6.0f} s", flush=True)
    return rows


def add_hypervolume(rows: list[dict]) -> None:
    """The held-out front's hypervolume in the box, normalised to 1."""
    for r in rows:
        ref = (1 - r["baseline_heldout"] + DROP_BOX, SIZE_BOX)
        pts = [(f["heldout_error"], f["file_bytes"] / r["original_bytes"]) for f in r["front"]]
        r["hypervolume"] = hypervolume(pts, ref) / (DROP_BOX * SIZE_BOX)


def at_paper_accuracy(rows: list[dict]) -> None:
    """Add to each row its smallest file whose held-out accuracy is at least that of the
    paper's chosen solution on the same model, and the paper's size over it."""
    paper = {r["model"]: r for r in rows if r["method"] == "paper"}
    for r in rows:
        p = paper.get(r["model"])
        if p is None:
            continue
        target = 1 - p["baseline_heldout"] + p["heldout_drop"]  # the paper's held-out error
        ok = [f["file_bytes"] for f in r["front"] if f["heldout_error"] <= target + 1e-12]
        r["bytes_at_paper_accuracy"] = min(ok) if ok else None
        r["x_smaller_than_paper"] = p["file_bytes"] / min(ok) if ok else None


def table(rows: list[dict]) -> str:
    head = ("| model | method | file bytes | ratio (honest) | held-out drop | kept ≤ 1 pp | "
            "size vs paper at its held-out accuracy | HV (held-out) | evaluations | wall s | chosen |")
    lines = [head, "|:--|:--|--:|--:|--:|:-:|--:|--:|--:|--:|:--|"]
    for r in rows:
        s = r["scheme"]
        chosen = f"{s['placement']} {s['scope']}, range {s['range_kept']:.2g}, {r['values']} values"
        chosen += f", steps {''.join(map(str, s['steps']))}" if s.get("steps") else ""
        chosen += ", GPTQ" if r.get("compensated") else ""
        vs = f"{r['x_smaller_than_paper']:.2f}x smaller" if r.get("x_smaller_than_paper") else "–"
        lines.append(f"| {r['model']} | {r['method']} | {r['file_bytes']:,} | {r['ratio']:.2f}x | "
                     f"{100 * r['heldout_drop']:.2f} pp | {'yes' if r['kept_bar'] else 'no'} | {vs} | "
                     f"{r['hypervolume']:.3f} | {r['evaluations']:,} | {r['wall_s']:.0f} | {chosen} |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    models = list(dict.fromkeys(r["model"] for r in rows))
    fig = Figure(figsize=(5 * len(models), 4.2), dpi=100)
    FigureCanvasAgg(fig)
    axes = np.atleast_1d(fig.subplots(1, len(models)))
    for ax, m in zip(axes, models):
        for r in (r for r in rows if r["model"] == m):
            pts, best = [], np.inf
            for f in r["front"]:  # the held-out front: non-dominated in (error, size)
                if f["file_bytes"] < best:
                    pts.append((r["original_bytes"] / f["file_bytes"], 100 * f["heldout_error"]))
                    best = f["file_bytes"]
            ax.plot(*zip(*pts), marker=".", drawstyle="steps-post", label=r["method"])
        base = 100 * (1 - next(r for r in rows if r["model"] == m)["baseline_heldout"])
        ax.axhline(base, color="gray", linestyle="--", linewidth=1)
        ax.axhline(base + 1, color="gray", linestyle=":", linewidth=1)
        ax.set_ylim(base - 1, base + 6)
        ax.set_xscale("log")
        ax.set_xlabel("compression ratio (honest, file bytes)")
        ax.set_ylabel("held-out error (%)")
        ax.set_title(m)
        ax.grid(True, alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=MODELS)
    p.add_argument("--methods", nargs="+", default=DEFAULT_METHODS, choices=list(METHODS))
    p.add_argument("--pop-size", type=int, default=24)
    p.add_argument("--generations", type=int, default=12)
    p.add_argument("--k-max", type=int, default=256)
    p.add_argument("--seed", type=int, default=0, help="of the search (the splits keep seed 0)")
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("bench-out/quality"))
    p.add_argument("--combine", nargs="+", default=None, metavar="JSON",
                   help="no runs: rebuild the table and plot from these quality.json files")
    args = p.parse_args(argv)
    methods = args.methods if "paper" in args.methods else ["paper", *args.methods]
    budget = {"pop_size": args.pop_size, "generations": args.generations, "k_range": (2, args.k_max),
              "seed": args.seed}
    args.out.mkdir(parents=True, exist_ok=True)
    if args.combine:  # tables and plot again from earlier runs (later runs' rows replace earlier ones)
        runs = [json.loads(Path(f).read_text()) for f in args.combine]
        merged = {(r["model"], r["method"]): r for run in runs for r in run["rows"]}
        rows = sorted(merged.values(), key=lambda r: (MODELS.index(r["model"]) if r["model"] in MODELS else 99,
                                                      list(METHODS).index(r["method"])))
        budget, total = runs[-1]["budget"], sum(run["wall_s"] for run in runs)
    else:
        t0 = time.perf_counter()
        # one job per model and method, the slowest first, so the processes end together
        jobs = sorted(((m, [method], budget) for m in args.models for method in methods),
                      key=lambda j: -COST.get(j[0], 1.0) * METHOD_COST.get(j[1][0], 1.0))
        with mp.get_context("spawn").Pool(min(args.processes, len(jobs))) as pool:
            rows = [r for part in pool.imap_unordered(run_model, jobs) for r in part]
        rows.sort(key=lambda r: (args.models.index(r["model"]), methods.index(r["method"])))
        total = time.perf_counter() - t0
    add_hypervolume(rows)
    at_paper_accuracy(rows)
    (args.out / "quality.json").write_text(json.dumps({"budget": budget, "wall_s": total, "rows": rows}, indent=1))
    md = table(rows)
    (args.out / "quality.md").write_text(md + "\n")
    plot(rows, args.out / "quality.png")
    print(md)
    print(f"total {total:.0f} s; wrote {args.out}/quality.json, quality.md, quality.png")


if __name__ == "__main__":
    main()
