"""The ``wsc`` command: compress, inspect, decompress, evaluate.

``wsc compress`` with no arguments compresses the built-in default (LeNet-5 trained on
Fashion-MNIST) and writes model.wsc, report.json and pareto.png to ./wsc-out. Bad options
exit with code 2 (argparse); failures at run time print one line on stderr and exit 1
(set WSC_TRACEBACK=1 to see the traceback instead). Ctrl-C (or SIGTERM) stops cleanly with
exit code 130: ``wsc compress`` keeps every score in OUT/evaluations.json, and ``--resume``
continues from there.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import threading

from wsc.scheme import CODEBOOKS, SCALES

DEFAULT_OUT = "wsc-out"
CACHE = "evaluations.json"
DEFAULT_SEARCH = 2000
DEFAULT_CALIBRATION = 1024  # training examples for GPTQ error compensation
METRICS = ("accuracy", "macro-f1")


class CliError(Exception):
    """A failure worth one line on stderr (exit code 1)."""


def _positive(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {v}")
    return v


def _nonneg(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a non-negative integer, got {v}")
    return v


def _population(text: str) -> int:
    v = _positive(text)
    if v < 2:
        raise argparse.ArgumentTypeError(f"expected a population of at least 2, got {v}")
    return v


def _bins(text: str) -> int:
    v = _positive(text)
    if not 2 <= v <= 65536:
        raise argparse.ArgumentTypeError(f"expected a number of bins in [2, 65536], got {v}")
    return v


def _fraction(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0.0 <= v < 1.0:
        raise argparse.ArgumentTypeError(f"expected a score difference in [0, 1) (0.01 = 1 point), got {v}")
    return v


def _confidence(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (v == 0 or 0.5 <= v < 1):
        raise argparse.ArgumentTypeError(f"expected 0 (point estimate) or a confidence in [0.5, 1), got {v}")
    return v


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="wsc", description="Weight-sharing compression of trained PyTorch models.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser("compress", help="search, merge and write the smallest good solution",
                       description="Compress a model; without --model, the built-in LeNet-5 on Fashion-MNIST.")
    _model_args(c)
    c.add_argument("--search-size", type=_positive, default=None,
                   help=f"class-balanced search split size (default {DEFAULT_SEARCH}, at most half the data)")
    c.add_argument("--heldout-size", type=_positive, default=None,
                   help="class-balanced held-out subset of the rest (default: all the rest)")
    c.add_argument("--select-size", type=_nonneg, default=0,
                   help="class-balanced selection split taken from the rest before the held-out one: the final "
                        "solutions are scored on it and the choice must keep the bar there too (default 0: none)")
    c.add_argument("--seed", type=_nonneg, default=0, help="seed of the split and the search (default 0)")
    c.add_argument("--pop-size", type=_population, default=100, help="NSGA-II population (default 100)")
    c.add_argument("--generations", type=_positive, default=100, help="NSGA-II generations (default 100)")
    c.add_argument("--k-min", type=_bins, default=2, help="smallest number of bins (default 2)")
    c.add_argument("--k-max", type=_bins, default=1024, help="largest number of bins (default 1024)")
    c.add_argument("--tolerance", type=_fraction, default=0.01,
                   help="allowed search-split score drop for merging and choosing (default 0.01 = 1 point)")
    c.add_argument("--confidence", type=_confidence, default=0.95,
                   help="choose and merge by the upper bound of the drop at this confidence, paired over the "
                        "search examples (default 0.95; 0: by the point estimate, the paper's rule)")
    c.add_argument("--codebook", choices=CODEBOOKS, default="auto",
                   help="uniform (one global codebook, the paper's), normalized (over weights / a scale per "
                        "tensor or channel), kmeans, or auto (the search chooses; default)")
    c.add_argument("--scale", choices=SCALES, default="channel",
                   help="the scale of --codebook normalized: per tensor or per output channel (default)")
    c.add_argument("--no-clip", action="store_true", help="bins always cover the full range (no clipping variable)")
    c.add_argument("--no-steps", action="store_true",
                   help="every tensor's bins equally wide (no step level per group of tensors)")
    c.add_argument("--paper", action="store_true",
                   help="the paper's method: --codebook uniform --no-clip --no-steps --size values --confidence 0 "
                        "--merge-all --stored exact")
    c.add_argument("--params", choices=("weights", "all"), default="weights", help="tensors to share")
    c.add_argument("--size", choices=("values", "bits"), default="bits",
                   help="second objective: estimated coded bits of the file (default) or shared values")
    c.add_argument("--coder", choices=("huffman", "rans", "auto"), default="auto",
                   help="entropy coder of the indices: huffman, rans, or auto (the smaller file; default)")
    c.add_argument("--no-merge", action="store_true", help="skip the iterative merge")
    c.add_argument("--merge-all", action="store_true",
                   help="merge every front solution (the paper's), not only those within the bar")
    c.add_argument("--calibration", type=_nonneg, default=None,
                   help=f"training examples for GPTQ error compensation of Linear/Conv weights and for "
                        f"re-estimating BatchNorm statistics (default {DEFAULT_CALIBRATION} when the data has a "
                        f"train split; 0: off)")
    c.add_argument("--compensate", choices=("search", "front"), default="search",
                   help="with calibration, GPTQ is a choice of the search for every candidate (search; default) "
                        "or applied to the final fronts only (front: one GPTQ pass per front solution, for "
                        "models where a pass per evaluation is too slow)")
    c.add_argument("--stored", choices=("exact", "float16", "compact"), default=None,
                   help="unshared tensors (biases, BatchNorm) in the file: compact (each BatchNorm folded into "
                        "its affine map, vectors of more than 32 values as 8-bit codes, the rest float16; "
                        "default), float16 (folded, float16) or exact (bit for bit; the default with --paper)")
    c.add_argument("--workers", type=_positive, default=1, help="parallel scoring threads (default 1)")
    c.add_argument("--nan", choices=("error", "zero", "skip"), default="error",
                   help="NaN/Inf in a shared tensor: stop naming it (default), replace them by 0 before "
                        "sharing, or store that tensor unchanged")
    c.add_argument("--resume", action="store_true",
                   help="reuse the scores in OUT/evaluations.json (saved after every generation and on "
                        "Ctrl-C): an interrupted run continues and ends as an uninterrupted one would")
    c.add_argument("--out", default=DEFAULT_OUT, help=f"output directory (default ./{DEFAULT_OUT})")
    _output_args(c)

    i = sub.add_parser("inspect", help="sizes, ratios and checksums of a .wsc file")
    i.add_argument("file")
    i.add_argument("--json", action="store_true", help="print JSON")
    i.add_argument("--verify", action="store_true",
                   help="also decode every stream and check every checksum; exit 1 naming each bad part")

    d = sub.add_parser("decompress", help="write the restored weights as a .safetensors file")
    d.add_argument("file")
    d.add_argument("-o", "--output", required=True, help="output .safetensors path")

    e = sub.add_parser("evaluate", help="score a model (optionally with weights from a .wsc file)")
    _model_args(e)
    e.add_argument("--wsc", default=None, help="load these compressed weights into the model first")
    e.add_argument("--search-size", type=_positive, default=None, help="as for compress")
    e.add_argument("--heldout-size", type=_positive, default=None, help="as for compress")
    e.add_argument("--select-size", type=_nonneg, default=0, help="as for compress (the held-out split excludes it)")
    e.add_argument("--seed", type=_nonneg, default=0, help="as for compress")
    e.add_argument("--json", action="store_true", help="print JSON")
    return p


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default=None, help="built-in name, package.module:factory, TorchScript file, "
                   "torchvision:NAME or timm:NAME (default: the built-in LeNet-5 on Fashion-MNIST)")
    p.add_argument("--weights", default=None, help="weights for --model (.safetensors or a torch.save state dict)")
    p.add_argument("--data", default=None, help="fashion-mnist[:DIR], mnist5k, cifar10:DIR, cifar100:DIR, imagenet:DIR")
    p.add_argument("--metric", choices=METRICS, default="accuracy", help="score (default accuracy)")
    p.add_argument("--batch-size", type=_positive, default=500, help="evaluation batch size (default 500)")


def _output_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--quiet", action="store_true", help="no progress and no table")
    p.add_argument("--json", action="store_true", help="print the report as JSON on stdout")


# ---------------------------------------------------------------- helpers
def _load_model(args):
    from wsc import zoo

    if args.model is None:
        if args.weights is not None:
            raise CliError("--weights needs --model")
        model, data = zoo.default_model()
        return model, args.data or data, "lenet5-fmnist (built-in default)"
    model = zoo.load_model(args.model, args.weights)
    data = args.data
    if data is None:
        builtin = getattr(zoo, "BUILTINS", {}).get(args.model)
        if builtin is None:
            raise CliError(f"--data is needed for --model {args.model}")
        data = builtin.dataset
    return model, data, args.model


def _evaluator(args, data_spec: str):
    """The search split (class-balanced, --search-size, --seed), the selection split
    (--select-size of the rest) and the held-out rest."""
    from torch.utils.data import Subset

    from wsc import data
    from wsc.evaluate import Accuracy, MacroF1

    ds = data.load(data_spec, split="test")
    n = len(ds)
    if n < 2:
        raise CliError(f"{data_spec}: {n} test examples are too few to split")
    size = args.search_size if args.search_size is not None else min(DEFAULT_SEARCH, n // 2)
    if size >= n:
        raise CliError(f"--search-size {size} leaves no held-out examples ({data_spec} has {n})")
    labels = data.labels_of(ds)
    search, heldout = data.balanced_split(labels, size, args.seed)
    select = None
    if args.select_size:
        if args.select_size >= len(heldout):
            raise CliError(f"--select-size {args.select_size} leaves no held-out examples ({len(heldout)} after the "
                           "search split)")
        pick, rest = data.balanced_split(labels[heldout], args.select_size, args.seed + 2)
        select, heldout = Subset(ds, heldout[pick].tolist()), heldout[rest]
    if args.heldout_size is not None and args.heldout_size < len(heldout):
        heldout = heldout[data.balanced_split(labels[heldout], args.heldout_size, args.seed + 1)[0]]
    cls = Accuracy if args.metric == "accuracy" else MacroF1
    return cls(search=Subset(ds, search.tolist()), heldout=Subset(ds, heldout.tolist()), select=select,
               batch_size=args.batch_size)


def _calibration(args, data_spec: str):
    """Batches of --calibration training examples spread over the train split, or None (off;
    by default with --paper, or when the data has no train split: said on stderr)."""
    import numpy as np

    from wsc import data

    n = DEFAULT_CALIBRATION if args.calibration is None else args.calibration
    if n == 0 or (args.paper and args.calibration is None):  # the paper's method rounds to the bins
        return None
    try:
        train = data.load(data_spec, split="train")
    except (OSError, ValueError) as exc:
        if args.calibration is not None:
            raise CliError(f"--calibration needs the train split of {data_spec}: {exc}") from None
        print(f"wsc compress: no train split of {data_spec} ({exc}); no calibration (GPTQ compensation off)",
              file=sys.stderr)
        return None
    n = min(n, len(train))
    return data.loader(train, np.linspace(0, len(train) - 1, n).round().astype(np.int64), args.batch_size)


def _table(result) -> str:
    chosen = result.choose()

    def pct(v: float) -> str:  # NaN: not scored on that split
        return "–" if math.isnan(v) else f"{100 * v:.2f}"

    columns = ["k", "values", "codebook", "coder", "bits/w", "entropy", "bytes", "ratio", "paper", "search", "drop bound"]
    columns += ["select", "select bound"] if result.selects else []
    rows = [(*columns, "held-out", "")]
    for s in result.front:
        sc = s.scheme
        kind = f"{sc.placement}/{sc.scope}" + (f"/clip {sc.fraction:.2g}" if sc.clip else "")
        kind += f"/steps {''.join(map(str, sc.steps))}" if sc.steps else ""
        kind += "/GPTQ" if s.compensated else ""
        select_cells = [pct(s.select_score), pct(s.select_bound)] if result.selects else []
        rows.append((str(s.k), str(s.values), kind, s.coder, f"{s.bits_per_weight:.3f}", f"{s.entropy_bits:.3f}",
                     str(s.file_bytes), f"{s.ratio:.2f}x", f"{s.paper_style_ratio:.2f}x",
                     pct(s.search_score), pct(s.search_bound), *select_cells, pct(s.heldout_score),
                     "<- chosen" if s is chosen else ""))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    select_base = f", selection {100 * result.settings['select_baseline']:.2f}" if result.selects else ""
    head = (f"baseline: search {100 * result.baseline_search:.2f}{select_base}, held-out {100 * result.baseline_heldout:.2f} "
            f"({result.evaluator.get('metric')}); {result.evaluations} evaluations, {result.wall_time:.1f} s\n"
            "ratio: original bytes / .wsc file bytes (honest); paper: 32 / bits per shared weight (paper-style); "
            "drop bound: upper confidence bound of the search-split drop (the point drop without --confidence)")
    if result.selects:
        head += ("\nselect, select bound: score and drop bound on the selection split (– : not within the bar on "
                 "the search split, so not scored there); the choice keeps the bar on both (if none does: the "
                 "least drop bound on the selection split)")
    return head + "\n" + "\n".join(lines)


# ---------------------------------------------------------------- commands
def _compress(args) -> int:
    import wsc
    from wsc.heap import keep_freed_memory

    if args.k_min > args.k_max:
        raise CliError(f"--k-min {args.k_min} is larger than --k-max {args.k_max}")
    model, data_spec, model_name = _load_model(args)
    evaluator = _evaluator(args, data_spec)
    calibration = _calibration(args, data_spec)
    progress = not (args.quiet or args.json)
    keep_freed_memory()  # repeated evaluations reuse their activations' memory (wsc.heap)
    os.makedirs(args.out, exist_ok=True)
    cache = os.path.join(args.out, CACHE)
    try:
        method = (dict(wsc.PAPER) if args.paper else
                  {"codebook": args.codebook, "clip": not args.no_clip, "steps": not args.no_steps, "size": args.size,
                   "confidence": args.confidence or None, "stored": "compact"})
        if args.stored is not None:
            method["stored"] = args.stored
        method["merge"] = False if args.no_merge else (True if args.paper or args.merge_all else "within")
        result = wsc.compress(model, evaluator, params=args.params, k_range=(args.k_min, args.k_max),
                              pop_size=args.pop_size, generations=args.generations, seed=args.seed,
                              tolerance=args.tolerance, workers=args.workers,
                              progress=progress, nan=args.nan, cache=cache, resume=args.resume,
                              coder=args.coder, scale=args.scale, calibration=calibration,
                              compensate=args.compensate, **method)
    except KeyboardInterrupt:
        from wsc.evalcache import count

        print(f"wsc compress: interrupted; {count(cache)} scored configurations are saved in {cache}; "
              "run the same command with --resume to continue", file=sys.stderr)
        return 130
    path = os.path.join(args.out, "model.wsc")
    chosen = result.save(path)
    report = result.to_dict()
    report["model"], report["data"], report["file"] = model_name, data_spec, os.path.abspath(path)
    from wsc.container import write_bytes

    write_bytes(os.path.join(args.out, "report.json"), json.dumps(report, indent=2, default=str).encode())
    result.plot(os.path.join(args.out, "pareto.png"))
    if args.json:
        print(json.dumps(report, indent=2, default=str))
    elif not args.quiet:
        print(_table(result))
        drop = 100 * (result.baseline_heldout - chosen.heldout_score)
        kept = "kept" if drop <= 100 * result.tolerance else "missed"
        print(f"wrote {path}: {chosen.file_bytes} bytes, {chosen.ratio:.2f}x (honest), "
              f"{chosen.paper_style_ratio:.2f}x (paper-style), held-out drop {drop:.2f} points ({kept} the "
              f"{100 * result.tolerance:g}-point bar); report.json and pareto.png in {args.out}")
    return 0


def _inspect(args) -> int:
    from wsc.container import inspect, verify

    info = inspect(args.file)
    if args.verify:
        info["problems"] = verify(args.file)
        info["verified"] = not info["problems"]
    ok = info["checksums_ok"] and not info.get("problems")
    if args.json:
        print(json.dumps(info, indent=2))
        return 0 if ok else 1
    coders = ", ".join(f"{n} {c}" for c, n in info["coders"].items())
    print(f"{args.file}: .wsc v{info['version']}, coder {info['coder']} ({coders}), {info['file_bytes']} bytes")
    print(f"codebook: {info['codebook_size']} values; {info['shared_weights']} shared weights at "
          f"{info['bits_per_weight']:.3f} bits each")
    print(f"ratio: {info['ratio']:.2f}x honest ({info['original_bytes']} original bytes / file bytes), "
          f"{info['paper_style_ratio']:.2f}x paper-style (32 / bits per weight)")
    for s in info["shared"]:
        print(f"  shared  {s['name']:<40} {str(s['shape']):<18} {s['dtype']:<8} {s['bytes']:>10} B "
              f"{s['bits_per_weight']:6.3f} b/w  {s['coder']:<7} checksum {'ok' if s['checksum_ok'] else 'BAD'}")
    for s in info["stored"]:
        print(f"  stored  {s['name']:<40} {str(s['shape']):<18} {s['dtype']:<8} {s['bytes']:>10} B "
              f"{'':>10}  {'':<7} checksum {'ok' if s['checksum_ok'] else 'BAD'}")
    if not info["codebook_checksum_ok"]:
        print("  codebook checksum BAD")
    print("checksums: " + ("all ok" if info["checksums_ok"] else "MISMATCH (the file is corrupt)"))
    if args.verify:
        for p in info["problems"]:
            print(f"  BAD {p}")
        print("verify: " + ("every stream decodes and every checksum matches" if info["verified"]
                            else f"{len(info['problems'])} problem(s): the file is corrupt"))
    return 0 if ok else 1


def _decompress(args) -> int:
    import safetensors.torch

    from wsc.container import load_state_dict, write_bytes

    state = load_state_dict(args.file)
    seen: dict[int, str] = {}
    out = {}
    for name, t in state.items():  # safetensors stores no aliases: tied tensors are written twice
        out[name] = t.clone() if id(t) in seen else t.contiguous()
        seen[id(t)] = name
    write_bytes(args.output, safetensors.torch.save(out))
    print(f"wrote {args.output}: {len(out)} tensors")
    return 0


def _evaluate(args) -> int:
    import wsc

    model, data_spec, model_name = _load_model(args)
    if args.wsc:
        wsc.load_into(model, args.wsc)
    ev = _evaluator(args, data_spec)
    scores = {"model": model_name, "data": data_spec, "wsc": args.wsc, "metric": ev.name,
              "search": ev.search(model), "heldout": ev.heldout(model),
              **({"select": ev.outcome(model, "select").value} if ev.selects else {}), **ev.describe()}
    if args.json:
        print(json.dumps(scores, indent=2))
    else:
        print(f"{model_name}{' + ' + args.wsc if args.wsc else ''} on {data_spec}: {ev.name} "
              f"search {100 * scores['search']:.2f} ({scores['search_examples']} examples), "
              f"held-out {100 * scores['heldout']:.2f} ({scores['heldout_examples']} examples)"
              + (f", selection {100 * scores['select']:.2f} ({scores['select_examples']} examples)" if ev.selects else ""))
    return 0


COMMANDS = {"compress": _compress, "inspect": _inspect, "decompress": _decompress, "evaluate": _evaluate}


def _terminate(signum, frame):
    raise KeyboardInterrupt  # SIGTERM stops as cleanly as Ctrl-C


def main(argv=None) -> int:
    args = _parser().parse_args(argv)
    previous = None
    if threading.current_thread() is threading.main_thread():
        previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print(f"wsc {args.command}: interrupted", file=sys.stderr)
        return 130
    except (CliError, ValueError, TypeError, OSError, RuntimeError, ImportError) as exc:
        if os.environ.get("WSC_TRACEBACK"):
            raise
        print(f"wsc {args.command}: error: {exc}", file=sys.stderr)
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


__all__ = ["main"]
