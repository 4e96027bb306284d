"""How much the chosen solution of one method moves with the search's seed, and how optimistic
its search-split drop is.

    python bench/quality_seeds.py                                   # the LeNets, seeds 0-3
    python bench/quality_seeds.py --search-size 5000 --out bench-out/seeds-5000
    python bench/quality_seeds.py --calibration 4096 --models lenet300-fmnist
    python bench/quality_seeds.py --vary-split --out bench-out/seeds-splits
    python bench/quality_seeds.py --vary-split --select-size 2000 --out bench-out/seeds-select
    python bench/quality_seeds.py --options '{"merge": false}' --out bench-out/seeds-nomerge

Runs one method of ``bench/quality.py`` (default "combined + gptq") on each model with each
seed of the search, in parallel processes of one thread. The splits keep seed 0, as in
``quality.py``, unless ``--vary-split`` draws each run's split with its search seed: then
the gap between held-out and search drops averages over splits too, instead of carrying
the one split's own noise, which every run on it shares. Per run:
the chosen file's ratio, its drop on the search split and its upper bound there, its
held-out drop, and the best ratio of the held-out front within 1 point (what a selection
that could see the held-out data would reach). Per model: the mean, minimum and maximum of
the chosen ratio, the runs that kept the bar, and the mean gap of held-out drop over search
drop of the chosen file (the search and the merge fit the search split's noise, so the
chosen file's search drop is optimistic). With ``--select-size N``, N of the held-out
images are the evaluator's selection split (``Accuracy(select=...)``): the choice within
the bound on both splits is reported beside the search split's own (both with their
held-out drop on the images left). ``--options`` takes ``wsc.compress`` options as JSON
that replace the method's own (a variant of it). Writes seeds.json and seeds.md to --out.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import time
from pathlib import Path

import numpy as np

import quality


def oracle_ratio(row: dict, tolerance: float = 0.01) -> float:
    """The largest ratio of the run's held-out front within ``tolerance`` of the baseline."""
    bar = 1 - row["baseline_heldout"] + tolerance + 1e-12
    ok = [row["original_bytes"] / f["file_bytes"] for f in row["front"] if f["heldout_error"] <= bar]
    return max(ok, default=float("nan"))


def _select(r: dict) -> str:
    """The choice on the selection split: ratio, held-out drop, kept."""
    c = r.get("select_choice")
    if c is None:
        return "none within both bounds" if "select_choice" in r else "–"
    return f"{c['ratio']:.2f}x, {100 * c['heldout_drop']:.2f} pp, {'yes' if c['kept_bar'] else 'no'}"


def table(rows: list[dict]) -> str:
    lines = ["| model | seed | ratio | search drop | search bound | held-out drop | kept | held-out front ≤ 1 pp | "
             "chosen on a selection split | evaluations | wall s |", "|:--|--:|--:|--:|--:|--:|:-:|--:|:--|--:|--:|"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['seed']} | {r['ratio']:.2f}x | {100 * r['search_drop']:.2f} pp | "
                     f"{100 * r['search_bound']:.2f} pp | {100 * r['heldout_drop']:.2f} pp | "
                     f"{'yes' if r['kept_bar'] else 'no'} | {oracle_ratio(r):.2f}x | {_select(r)} | "
                     f"{r['evaluations']:,} | {r['wall_s']:.0f} |")
    lines += ["", "| model | runs | ratio mean (min–max) | kept the bar | held-out − search drop, mean | "
              "held-out front ≤ 1 pp, mean | chosen on a selection split: mean, kept |", "|:--|--:|--:|--:|--:|--:|:--|"]
    for m in dict.fromkeys(r["model"] for r in rows):
        rs = [r for r in rows if r["model"] == m]
        ratio = np.array([r["ratio"] for r in rs])
        gap = np.mean([r["heldout_drop"] - r["search_drop"] for r in rs])
        sel = [r["select_choice"] for r in rs if r.get("select_choice")]
        sel_text = (f"{np.mean([c['ratio'] for c in sel]):.2f}x, {sum(c['kept_bar'] for c in sel)} of {len(rs)}"
                    if sel else "–")
        lines.append(f"| {m} | {len(rs)} | {ratio.mean():.2f}x ({ratio.min():.2f}–{ratio.max():.2f}) | "
                     f"{sum(r['kept_bar'] for r in rs)} of {len(rs)} | {100 * gap:+.2f} pp | "
                     f"{np.mean([oracle_ratio(r) for r in rs]):.2f}x | {sel_text} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=["lenet5-fmnist", "lenet300-fmnist"], choices=quality.MODELS)
    p.add_argument("--method", default="combined + gptq", choices=list(quality.METHODS))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2, 3])
    p.add_argument("--search-size", type=int, default=quality.SEARCH_SIZE, help="test images searched on")
    p.add_argument("--calibration", type=int, default=quality.CALIBRATION, help="training images")
    p.add_argument("--vary-split", action="store_true", help="each run's split drawn with its search seed")
    p.add_argument("--select-size", type=int, default=0, help="held-out images set apart to choose on")
    p.add_argument("--options", type=json.loads, default={},
                   help="JSON object of wsc.compress options that replace the method's own")
    p.add_argument("--pop-size", type=int, default=24)
    p.add_argument("--generations", type=int, default=12)
    p.add_argument("--k-max", type=int, default=256)
    p.add_argument("--processes", type=int, default=2)
    p.add_argument("--out", type=Path, default=Path("bench-out/seeds"))
    args = p.parse_args(argv)
    if any(s < 0 for s in args.seeds):
        p.error(f"--seeds must be non-negative; got {args.seeds}")
    if not 1 <= args.search_size < 10_000:
        p.error(f"--search-size must be in [1, 9999] (of the 10,000 test images); got {args.search_size}")
    if not 0 <= args.select_size < 10_000 - args.search_size:
        p.error(f"--select-size must leave held-out images (at most {9_999 - args.search_size}); got {args.select_size}")
    try:
        quality.check_options(args.options)
    except ValueError as exc:
        p.error(f"--{exc}")
    if not 1 <= args.calibration <= 60_000:
        p.error(f"--calibration must be in [1, 60000] (training images); got {args.calibration}")
    common = {"search_size": args.search_size, "calibration": args.calibration, "select_size": args.select_size,
              "options": args.options}  # run_model's setup, but the split seed
    setup = {**common, "vary_split": args.vary_split, "pop_size": args.pop_size, "generations": args.generations,
             "k_max": args.k_max}
    jobs = [(m, [args.method], {"pop_size": args.pop_size, "generations": args.generations,
                                "k_range": (2, args.k_max), "seed": s},
             {**common, "split_seed": s if args.vary_split else 0})
            for m in args.models for s in args.seeds]
    jobs.sort(key=lambda j: -quality.COST.get(j[0], 1.0))  # the slowest first, so the processes end together
    t0 = time.perf_counter()
    with mp.get_context("spawn").Pool(min(args.processes, len(jobs))) as pool:
        parts = pool.map(quality.run_model, jobs, chunksize=1)
    total = time.perf_counter() - t0
    rows = [{**r, "seed": job[2]["seed"]} for job, part in zip(jobs, parts) for r in part]
    rows.sort(key=lambda r: (args.models.index(r["model"]), r["seed"]))
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "seeds.json").write_text(json.dumps({"setup": setup, "method": args.method, "wall_s": total,
                                                     "rows": rows}, indent=1))
    md = table(rows)
    (args.out / "seeds.md").write_text(md + "\n")
    print(md)
    print(f"total {total:.0f} s; wrote {args.out}/seeds.json, seeds.md")


if __name__ == "__main__":
    main()
