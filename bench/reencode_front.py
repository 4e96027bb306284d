"""Re-encode the solutions of a ``wsc compress`` report with each entropy coder.

    python bench/reencode_front.py wsc-out/report.json [--model lenet5-fmnist]

The coder changes only the bytes, never the shared weights, so the front of a finished run
can be measured with every coder without repeating the search: each solution's codebook is
rebuilt from the report (k, and for a merged solution the first bin of every group), the
payload is written with ``coder="huffman"``, ``"rans"`` and ``"auto"``, and the exact file
sizes, honest ratios and payload bits per weight are printed as a markdown table. The
rebuilt codebook is checked against the report (number of values; with the report's own
coder, the very same file size when the report was written by this format version).
Solutions whose weights GPTQ placed (``compensated``) depend on the run's calibration data,
which a report does not hold: they are listed as skipped (``--calibration 0`` or ``--paper``
runs have none).
"""

from __future__ import annotations

import argparse
import json
from types import SimpleNamespace

import numpy as np

from wsc import container, zoo
from wsc.codebook import Codebook
from wsc.result import solution_info
from wsc.scheme import PAPER, Scheme
from wsc.workbench import Workbench


def rebuild(bench: Workbench, sol: dict) -> Codebook:
    """The codebook of a reported solution: its scheme's k values, merged into the reported groups."""
    sch = sol.get("scheme")
    scheme = Scheme(sch["placement"], sch["scope"], sch["clip"], tuple(sch.get("steps", ()))) if sch else PAPER
    cb = bench.codebook(sol["k"], scheme)
    if sol["merged"]:
        firsts = sol["group_first_bins"]
        groups = tuple(int(i) for i in np.searchsorted(cb.bins, firsts))
        if not np.array_equal(cb.bins[list(groups)], firsts) or groups[0] != 0:
            raise ValueError(f"k={sol['k']}: the reported groups do not match the bins of this model")
        cb = cb.regroup(groups, merges=1)
    if cb.size != sol["values"]:
        raise ValueError(f"k={sol['k']}: rebuilt {cb.size} values, the report says {sol['values']}")
    return cb


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("report", help="report.json written by wsc compress")
    p.add_argument("--model", default=None, help="built-in model name (default: the report's)")
    args = p.parse_args(argv)
    with open(args.report) as f:
        report = json.load(f)
    name = args.model or report["model"].split(" ")[0]
    settings = report["settings"]
    bench = Workbench(zoo.load_model(name), settings["params"], nan=settings.get("nan", "error"),
                      stored=settings.get("stored", "exact"))
    run_coder = settings.get("coder", "huffman")
    chosen = report["chosen"]

    def is_chosen(sol: dict) -> bool:
        return all(sol.get(f) == chosen.get(f) for f in ("k", "values", "compensated", "file_bytes"))

    print(f"{name}: {bench.n_shared} shared weights, {bench.original_bytes} bytes of parameters")
    print("| k | values | entropy | Huffman bits/w | Huffman bytes | Huffman ratio | rANS bits/w | rANS bytes "
          "| rANS ratio | `auto` bytes | paper-style (Huffman / rANS) | search acc. | held-out acc. |")
    print("|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    listed = set()
    for sol in (report["front_after_merge"] or report["front_before_merge"]) + report.get("front_compensated", []):
        key = json.dumps(sol, sort_keys=True)
        if key in listed:  # a solution on both fronts
            continue
        listed.add(key)
        if sol.get("compensated"):
            print(f"<!-- k={sol['k']}, {sol['values']} values, {sol['file_bytes']:,} bytes"
                  f"{' (chosen)' if is_chosen(sol) else ''}: weights placed "
                  "by GPTQ from the run's calibration data, not in the report: skipped -->")
            continue
        cb = rebuild(bench, sol)
        draft = SimpleNamespace(k=sol["k"], values=sol["values"], merged=sol["merged"], codebook=cb, scheme=cb.scheme,
                                compensated=False)
        payload = bench.payload(cb, solution_info(draft, settings))
        row = {}
        for coder in container.CODER_OPTIONS:
            lay = container.layout(payload, coder=coder)
            row[coder] = (lay.size, bench.original_bytes / lay.size, lay.bits / bench.n_shared,
                          "+".join(sorted(set(lay.coders))))
        if row[run_coder][0] != sol["file_bytes"]:
            print(f"<!-- k={sol['k']}: {run_coder} re-encoded to {row[run_coder][0]} bytes, the run wrote "
                  f"{sol['file_bytes']} (another format version, or stored tensors that depend on calibration "
                  "data: re-estimated BatchNorm statistics) -->")
        h, r, a = row["huffman"], row["rans"], row["auto"]
        mixed = " (mixed)" if a[3] == "huffman+rans" else ""
        print(f"| {sol['k']}{' **(chosen)**' if is_chosen(sol) else ''} | {sol['values']} | {sol['entropy_bits']:.3f} "
              f"| {h[2]:.3f} | {h[0]:,} | {h[1]:.2f}x | {r[2]:.3f} | {r[0]:,} | {r[1]:.2f}x | {a[0]:,}{mixed} "
              f"| {32 / h[2]:.2f}x / {32 / r[2]:.2f}x | {100 * sol['search_score']:.2f} | {100 * sol['heldout_score']:.2f} |")


if __name__ == "__main__":
    main()
