"""The public entry points: ``wsc.compress`` (search, merge, measure) and loading a .wsc file into a model."""

from __future__ import annotations

import functools
import math
import os
import sys
import time
from typing import Callable

import torch

from wsc import container, evalcache, search
from wsc.codebook import Codebook
from wsc.compensate import RATES
from wsc.confidence import check_confidence
from wsc.evaluate import as_evaluator
from wsc.merge import merge as merge_codebook
from wsc.params import ParamSpec
from wsc.result import CompressionResult, Solution, keeps_bar, solution_info
from wsc.scheme import CLIP_MAX, STEP_MAX, Scheme, check_codebook
from wsc.workbench import Workbench

SIZES = ("values", "bits")
COMPENSATE = ("search", "front")  # where calibrated GPTQ enters: every candidate, or the final fronts
# The paper's method (MO-UB) as options of compress(): one global codebook of uniform bins
# over the full range, the number of values as the size, selection by the point estimate.
PAPER = {"codebook": "uniform", "clip": False, "steps": False, "size": "values", "confidence": None, "merge": True,
         "stored": "exact"}


def _int(name: str, v, lo: int, hi: int | None = None) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise TypeError(f"{name} must be an int; got {type(v).__name__}")
    if v < lo or (hi is not None and v > hi):
        raise ValueError(f"{name} must be in [{lo}, {hi if hi is not None else 'inf'}]; got {v}")
    return v


def _check_options(k_range, pop_size, generations, seed, tolerance, workers, size, coder) -> tuple[int, int]:
    if not isinstance(k_range, (tuple, list)) or len(k_range) != 2:
        raise TypeError(f"k_range must be a pair (k_min, k_max); got {k_range!r}")
    k_min = _int("k_range[0]", k_range[0], 2, 65536)
    k_max = _int("k_range[1]", k_range[1], 2, 65536)
    if k_min > k_max:
        raise ValueError(f"k_range must have k_min <= k_max; got {tuple(k_range)}")
    _int("pop_size", pop_size, 2)
    _int("generations", generations, 1)
    _int("seed", seed, 0)
    _int("workers", workers, 1)
    if isinstance(tolerance, bool) or not isinstance(tolerance, (int, float)) or not 0 <= tolerance < 1:
        raise ValueError(f"tolerance must be a number in [0, 1) (0.01 = one percentage point); got {tolerance!r}")
    if size not in SIZES:
        raise ValueError(f"size must be one of {SIZES}; got {size!r}")
    container.check_coder(coder)
    return k_min, k_max


def _finite(value, what: str) -> float:
    """The score as a float; ValueError for NaN/Inf or a non-number (a score must order models)."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"{what}: the evaluator returned {type(value).__name__}, not a number") from None
    if not math.isfinite(v):
        raise ValueError(f"{what}: the evaluator returned {v}; scores must be finite numbers "
                         "(a model with NaN/Inf weights? see nan=)")
    return v


def _printer(event: dict) -> None:
    if event["stage"] == "search":
        print(f"search  generation {event['generation']:>3}/{event['generations']}: "
              f"{event['evaluations']} evaluations, best error {event['best_error']:.4f}, "
              f"front {event['front_size']}", file=sys.stderr, flush=True)
    elif event["stage"] == "merge":
        print(f"merge   solution {event['solution']:>3}/{event['of']}: k={event['k']}, "
              f"values {event['values_before']} -> {event['values_after']}, search score "
              f"{event['score_before']:.4f} -> {event['score_after']:.4f} "
              f"({event['evaluations']} evaluations so far)", file=sys.stderr, flush=True)
    elif event["stage"] == "resume":
        print(f"resume  {event['search']} search and {event['heldout']} held-out scores from {event['path']}",
              file=sys.stderr, flush=True)
    elif event["stage"] == "compensate":
        print(f"compensate {event['solutions']} codebooks with GPTQ ({event['evaluations']} evaluations with the "
              f"merge), {event['kept']} on the front", file=sys.stderr, flush=True)
    elif event["stage"] == "measure":
        print(f"measure {event['solutions']} solutions on the held-out split and in bytes",
              file=sys.stderr, flush=True)


def _reporter(progress) -> Callable[[dict], None]:
    if progress is True:
        return _printer
    if progress is False or progress is None:
        return lambda event: None
    if callable(progress):
        return progress
    raise TypeError(f"progress must be a bool or a callable(event dict); got {type(progress).__name__}")


def _params_label(params: ParamSpec) -> str:
    return params if isinstance(params, str) else getattr(params, "__name__", "predicate")


def compress(model: torch.nn.Module, evaluate, *, params: ParamSpec = "weights",
             k_range: tuple[int, int] = (2, 1024), pop_size: int = 100, generations: int = 100,
             seed: int = 0, merge: bool | str = "within", tolerance: float = 0.01, confidence: float | None = 0.95,
             codebook: str = "auto", scale: str = "channel", clip: bool = True, steps: bool = True, workers: int = 1,
             progress=True, size: str = "bits", nan: str = "error", cache=None,
             resume: bool = False, coder: str = container.DEFAULT_CODER, calibration=None,
             compensate: str = "search", stored: str = "compact") -> CompressionResult:
    """Compress ``model`` by weight sharing: NSGA-II over k (and the scheme), then the iterative merge.

    ``evaluate``: a :class:`wsc.evaluate.Evaluator` (search and held-out splits; an
    ``Accuracy(..., select=...)`` also has a selection split, on which the final solutions
    within the bar on the search split are scored once more, and the choice must keep the
    bar there too) or a callable ``model -> float`` (higher is better; then used for both). ``params``:
    ``"weights"``, ``"all"`` or a predicate ``(name, tensor) -> bool`` (see
    :mod:`wsc.params`). ``size``: the second objective, ``"bits"`` (estimated coded size of
    the file) or ``"values"`` (number of shared values, the paper's). ``tolerance``: allowed
    drop of the search score, for a merge step and for the default choice of
    :meth:`CompressionResult.save`. ``confidence``: select and merge by the upper bound of
    the drop at this confidence, paired over the search examples (:mod:`wsc.confidence`);
    None: by the point estimate (the paper's). ``codebook``: ``"uniform"`` (the paper's single
    global codebook), ``"normalized"`` (over weights divided by a scale per tensor or per
    channel, ``scale``), ``"kmeans"`` (k-means centres, O(N)) or ``"auto"`` (the search
    chooses among all of them, both scales included); ``clip``: the search also chooses the
    fraction of the range the bins cover; ``steps``: it also chooses, per group of shared
    tensors, how many times wider (1, 1.4, 2, 2.8 or 4) that group's bins are, so the one
    codebook spends fewer values where accuracy allows (:mod:`wsc.scheme`). ``merge``: ``"within"`` (merge
    the front solutions within the bar: the only ones :meth:`CompressionResult.choose` can
    pick, at a fraction of the evaluations), True (every front solution, the paper's) or
    False. ``wsc.PAPER`` holds the options of the paper's method. ``workers``: threads that
    score in parallel.
    ``progress``: print progress to stderr (True), stay silent (False), or a callable
    receiving event dicts. ``nan``: shared tensors holding NaN or Inf raise ValueError
    naming them (``"error"``), have those values replaced by 0 before sharing (``"zero"``),
    or are stored unchanged (``"skip"``). ``cache``: a path where every score is saved
    (atomically, after each generation and merged solution, and when the run stops for any
    reason, Ctrl-C included); with ``resume=True`` the scores already there are reused, so
    an interrupted run continues where it stopped and ends as an uninterrupted one would
    (see :mod:`wsc.evalcache`). ``coder``: entropy coder of the index streams, ``"huffman"``,
    ``"rans"`` (within a fraction of a percent of the order-0 entropy) or ``"auto"`` (the
    smaller file, per tensor); every solution is measured with it. ``calibration``: model
    inputs (an iterable of batches: tensors, tuples whose first element is the input, as a
    DataLoader yields, or dicts of keyword inputs; or one tensor of inputs, batched by 256;
    a few hundred examples, not the evaluation data): every solution of the fronts before
    and after merging is also scored with its Linear / Conv / RNN weights assigned by GPTQ
    error compensation on those inputs, at each rate weight of
    ``wsc.compensate.RATES`` (:mod:`wsc.compensate`); the best of them within the bar are
    merged further (unless ``merge=False``), and the non-dominated ones join the final front
    (``front_compensated``); and the running statistics of the model's BatchNorm layers are
    re-estimated on them for every codebook, the search's included (:mod:`wsc.stored`).
    ``compensate``: with calibration, ``"search"`` (the search also chooses, for every
    candidate, whether its layers are compensated and at which rate weight, so it explores the
    front GPTQ makes rather than the front of plain rounding; each evaluation then pays one
    GPTQ pass: milliseconds on small models, more on large ones) or ``"front"`` (only the
    final fronts are compensated).
    ``stored``: the unshared tensors (biases, BatchNorm) go into the file bit for bit
    (``"exact"``), or with each BatchNorm folded into its affine map and in float16
    (``"float16"``), or so and vectors of more than 32 values as 8-bit codes over their
    range (``"compact"``); every score is of the model so stored (:mod:`wsc.stored`). The caller's model is never modified; the result reads its
    weights until saved, so leave them unchanged until then.
    """
    t0 = time.perf_counter()
    k_min, k_max = _check_options(k_range, pop_size, generations, seed, tolerance, workers, size, coder)
    confidence = check_confidence(confidence)
    if merge not in (True, False, "within"):
        raise ValueError(f"merge must be True, False or 'within'; got {merge!r}")
    kinds = check_codebook(codebook, scale)
    for name, flag in (("clip", clip), ("steps", steps)):
        if not isinstance(flag, bool):
            raise TypeError(f"{name} must be a bool; got {type(flag).__name__}")
    if compensate not in COMPENSATE:
        raise ValueError(f"compensate must be one of {COMPENSATE}; got {compensate!r}")
    if resume and cache is None:
        raise ValueError("resume=True needs cache=PATH (where the scores of the interrupted run are)")
    if isinstance(calibration, torch.Tensor):  # one tensor of inputs: batches of 256
        calibration = list(calibration.split(256))
    if calibration is not None and (isinstance(calibration, (str, bytes)) or not hasattr(calibration, "__iter__")):
        raise TypeError(f"calibration must be an iterable of input batches, a tensor of inputs or None; "
                        f"got {type(calibration).__name__}")
    report = _reporter(progress)
    evaluator = as_evaluator(evaluate)
    bench = Workbench(model, params, nan=nan, stored=stored)
    calibrated = bench.calibrate(calibration) if calibration is not None else []
    settings = {"params": _params_label(params), "k_range": [k_min, k_max], "pop_size": pop_size,
                "generations": generations, "seed": seed, "merge": merge, "tolerance": tolerance,
                "confidence": confidence, "codebook": codebook, "scale": scale, "clip": clip, "steps": steps,
                "workers": workers, "size": size, "nan": nan, "coder": coder, "compensated": calibrated,
                "compensate": compensate if calibrated else None,
                "stored": stored, "batchnorm_recalibrated": bench.recalibrating}
    if bench.non_finite:
        settings["non_finite"] = dict(bench.non_finite)

    with bench.model(None) as m:
        evaluator.prepare(m)
        base = evaluator.outcome(m, "search")
        base_search = _finite(base.value, "the search score of the uncompressed model")
        base_heldout = _finite(evaluator.heldout(m), "the held-out score of the uncompressed model")

    known = {"search": {}, "heldout": {}}
    fp = None
    if cache is not None:
        fp = evalcache.fingerprint(bench, evaluator, _params_label(params), confidence)
        if resume and os.path.exists(cache):
            known = evalcache.load(cache, fp)
            if known["baseline"] != [base_search, base_heldout]:
                raise ValueError(f"{os.fspath(cache)}: the evaluation cache was made with other data or another "
                                 f"evaluator (baseline scores {known['baseline']} there, "
                                 f"{[base_search, base_heldout]} now); remove it or drop resume to start afresh")
            report({"stage": "resume", "path": os.fspath(cache), "search": len(known["search"]),
                    "heldout": len(known["heldout"])})

    def search_score(key, cb: Codebook) -> tuple[float, float]:
        """(score, upper bound of the drop; the point drop without confidence) on the search split."""
        with bench.model(cb) as m:
            out = evaluator.outcome(m, "search")
        value = _finite(out.value, f"the search score of k={cb.target} with {cb.size} values")
        bound = _drop_bound(evaluator, base, out, confidence)
        if cb.compensated:  # sized now, while its GPTQ indices are still kept
            size_of(cb)
        return value, bound

    def heldout_score(key, cb: Codebook) -> float:
        with bench.model(cb) as m:
            return _finite(evaluator.heldout(m), f"the held-out score of k={cb.target} with {cb.size} values")

    search_cache = search.ScoreCache(search_score, workers, known["search"])
    heldout_cache = search.ScoreCache(heldout_score, workers, known["heldout"])

    def checkpoint() -> None:
        if cache is not None:
            evalcache.save(cache, fp, [base_search, base_heldout], search_cache.snapshot(),
                           heldout_cache.snapshot(), settings)

    bits_cache: dict[tuple, int] = {}
    groups = bench.step_group_count if steps else 0
    searched = bool(calibrated) and compensate == "search"  # the last variable: the GPTQ rate level (0: none)
    space = ([(k_min, k_max), (0, CLIP_MAX if clip else 0), (0, len(kinds) - 1)] + [(0, STEP_MAX)] * groups
             + [(0, len(RATES))] * searched)

    @functools.lru_cache(maxsize=64)  # recent ones only: a k-means codebook holds up to 65,536 bins
    def make(config: tuple[int, ...]) -> Codebook:
        k, level, kind, *rest = config
        levels, rate = (rest[:-1], rest[-1]) if searched else (rest, 0)
        return bench.codebook(k, Scheme(*kinds[kind], clip=level, steps=tuple(levels))).compensate(rate)

    def objective(s: tuple[float, float]) -> float:
        return 1.0 - s[0] if confidence is None else s[1]

    def merge_scorer(cache: search.ScoreCache):
        """What merge() scores codebooks with: (value, bound) pairs, or values alone without a
        confidence level."""
        def score_many(cbs):
            got = cache.many([(c.key, c) for c in cbs])
            return got if confidence is not None else [v for v, _ in got]
        return score_many

    def inside(s: tuple[float, float]) -> bool:
        """Whether search scores ``s`` keep the bar (the test CompressionResult.choose() applies)."""
        return keeps_bar(*s, base_search, tolerance, confidence)

    def size_of(cb: Codebook) -> float:
        if size == "values":
            return float(cb.size)
        if cb.key not in bits_cache:
            bits_cache[cb.key] = bench.coded_bits(cb, coder)
        return float(bits_cache[cb.key])

    def objectives(configs: list[tuple[int, ...]]) -> list[tuple[float, float]]:
        cbs = [make(c) for c in configs]
        scores = search_cache.many([(cb.key, cb) for cb in cbs])
        return [(objective(s), size_of(cb)) for cb, s in zip(cbs, scores)]

    def generation_done(e: dict) -> None:
        checkpoint()
        report({"stage": "search", **e})

    finished = False
    try:
        outcome = search.run(objectives, space=space, pop_size=pop_size, generations=generations, seed=seed,
                             on_generation=generation_done, zero_half=range(3, 3 + groups + searched))
        before = [(make(c), search_cache.get(make(c).key, None)) for c in outcome.front]

        after: list[tuple[Codebook, tuple[float, float]]] = []
        if merge:
            # merge="within": only the solutions within the bar (the only ones choose() can pick;
            # the merge costs most of the evaluations); True: every front solution (the paper's)
            todo = [(cb, s) for cb, s in before if merge is True or inside(s)]
            for i, (cb, s) in enumerate(todo, 1):
                merged, _ = merge_codebook(cb, merge_scorer(search_cache), tolerance=tolerance,
                                           bounded=confidence is not None)
                ms = search_cache.get(merged.key, merged)
                after.append((merged, ms))
                checkpoint()
                report({"stage": "merge", "solution": i, "of": len(todo), "k": cb.target,
                        "values_before": cb.size, "values_after": merged.size, "score_before": s[0],
                        "score_after": ms[0], "evaluations": len(search_cache)})
            keep = search.non_dominated([(objective(s), size_of(c)) for c, s in after])
            after = [after[i] for i in keep]

        comp: list[tuple[Codebook, tuple[float, float]]] = []
        if calibrated:  # every front codebook at every rate level; then the merge of the best within the bar
            start = len(search_cache)
            plain = list({cb.key: cb for cb, _ in before + after}.values())
            rated = (cb.compensate(level) for cb in plain for level in range(1, len(RATES) + 1))
            cands = list({c.key: c for c in rated}.values())  # a searched front holds some already
            comp = list(zip(cands, search_cache.many([(c.key, c) for c in cands])))
            if merge:
                within = [(c, s) for c, s in comp if inside(s)]
                best = search.non_dominated([(objective(s), size_of(c)) for c, s in within])
                for cb, s in (within[i] for i in best):
                    merged, _ = merge_codebook(cb, merge_scorer(search_cache), tolerance=tolerance,
                                               bounded=confidence is not None)
                    comp.append((merged, search_cache.get(merged.key, merged)))
            keep = search.non_dominated([(objective(s), size_of(c)) for c, s in comp])
            comp = [comp[i] for i in keep]
            checkpoint()
            report({"stage": "compensate", "solutions": len(cands), "evaluations": len(search_cache) - start,
                    "kept": len(comp)})

        final = (after or before) + comp  # what CompressionResult.choose() picks from, and its bar test
        selected = {}
        if evaluator.selects:
            kept = [cb for cb, s in final if inside(s)]
            base_select, selected = _select_scores(bench, evaluator, kept, confidence)
            settings["select_baseline"], settings["select_evaluations"] = base_select, len(selected)
        report({"stage": "measure", "solutions": len(before) + len(after) + len(comp)})
        measured: dict[tuple, Solution] = {}

        def solution(cb: Codebook, s: tuple[float, float]) -> Solution:
            if cb.key not in measured:
                held = heldout_cache.get(cb.key, cb)
                measured[cb.key] = _measure(bench, cb, s, held, size_of(cb), settings, selected.get(cb.key))
            return measured[cb.key]

        heldout_cache.many([(cb.key, cb) for cb, _ in before + after + comp])
        checkpoint()
        front_before = [solution(cb, s) for cb, s in before]
        front_after = [solution(cb, s) for cb, s in after]
        front_compensated = [solution(cb, s) for cb, s in comp]
        finished = True
    finally:
        for c in (search_cache, heldout_cache):
            c.close(cancel=not finished)
        if not finished:  # an error or Ctrl-C: keep every score so far for resume
            try:
                checkpoint()
            except Exception as exc:  # never hide the error that stopped the run
                print(f"wsc: could not save the evaluation cache {os.fspath(cache)}: {exc}",
                      file=sys.stderr, flush=True)

    settings["evaluations_resumed"] = search_cache.preloaded
    return CompressionResult(
        baseline_search=base_search, baseline_heldout=base_heldout, front_before=front_before,
        front_after=front_after, front_compensated=front_compensated,
        evaluations=len(search_cache), heldout_evaluations=len(heldout_cache),
        wall_time=time.perf_counter() - t0, tolerance=float(tolerance), n_shared=bench.n_shared,
        original_bytes=bench.original_bytes, settings=settings, evaluator=evaluator.describe(),
        history=outcome.history, _bench=bench)


def _drop_bound(evaluator, base, got, confidence: float | None) -> float:
    """Upper ``confidence`` bound of the drop from outcome ``base`` to ``got`` on one split;
    without a confidence level, the point drop."""
    return base.value - got.value if confidence is None else float(evaluator.drop_bound(base, got, confidence))


def _select_scores(bench: Workbench, evaluator, kept: list[Codebook],
                   confidence: float | None) -> tuple[float, dict[tuple, tuple[float, float]]]:
    """The uncompressed model's score on the evaluator's selection split, and (score, drop
    bound; the point drop without confidence) there of each codebook in ``kept`` (those
    within the bar on the search split)."""
    with bench.model(None) as m:
        base = evaluator.outcome(m, "select")
    _finite(base.value, "the selection score of the uncompressed model")
    out = {}
    for cb in kept:
        if cb.key not in out:
            with bench.model(cb) as m:
                got = evaluator.outcome(m, "select")
            value = _finite(got.value, f"the selection score of k={cb.target} with {cb.size} values")
            out[cb.key] = (value, _drop_bound(evaluator, base, got, confidence))
    return float(base.value), out


def _measure(bench: Workbench, cb: Codebook, search: tuple[float, float], heldout_score: float, size: float,
             settings: dict, select: tuple[float, float] | None = None) -> Solution:
    draft = Solution(cb.target, cb.size, cb.merged, search[0], heldout_score, size, 0.0, 0.0, 0, 0.0, 0.0, cb,
                     search_bound=search[1])
    lay = container.layout(bench.payload(cb, solution_info(draft, settings)), coder=settings["coder"])  # measured
    bpw = lay.bits / bench.n_shared
    coder = "+".join(sorted(set(lay.coders)))
    select_score, select_bound = select if select is not None else (math.nan, math.nan)
    return Solution(cb.target, cb.size, cb.merged, search[0], heldout_score, size, bpw, bench.entropy(cb),
                    lay.size, bench.original_bytes / lay.size, 32.0 / bpw, cb, coder, search[1], select_score,
                    select_bound)


# ---------------------------------------------------------------- loading
def load_state_dict(path) -> dict[str, torch.Tensor]:
    """The state dict stored in a .wsc file (shared tensors rebuilt in their original dtype)."""
    return container.load_state_dict(path)


def load_into(model: torch.nn.Module, path) -> torch.nn.Module:
    """Load a .wsc file into ``model`` (strict: same names, shapes and dtypes); returns the model."""
    state = container.load_state_dict(path)
    own = model.state_dict()
    missing = [n for n in own if n not in state]
    unexpected = [n for n in state if n not in own]
    if missing or unexpected:
        raise ValueError(f"the .wsc file does not match the model: missing {missing[:10]}, "
                         f"unexpected {unexpected[:10]}")
    for name, t in state.items():
        if t.shape != own[name].shape:
            raise ValueError(f"{name}: shape {tuple(t.shape)} in the file, {tuple(own[name].shape)} in the model")
        if t.dtype != own[name].dtype:
            raise ValueError(f"{name}: dtype {t.dtype} in the file, {own[name].dtype} in the model")
    model.load_state_dict(state, strict=True)
    return model


__all__ = ["compress", "load_state_dict", "load_into", "PAPER"]
