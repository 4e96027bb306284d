"""The evaluation cache on disk: every configuration scored, so an interrupted search resumes.

``wsc.compress(..., cache=PATH)`` writes, atomically (temp file + rename), after every
generation, every merged solution and when it stops for any reason (Ctrl-C included), a
JSON file holding each configuration scored so far (scheme, k, the merge groups and, for a
codebook taken by GPTQ error compensation, its rate level) with its search score and drop
bound and its held-out score. ``resume=True`` loads it first: a configuration found there is
not evaluated again. The search is deterministic for a seed and the cached scores are the
very floats the evaluator returned, so a resumed run proposes the same configurations and
ends with the same result as one that was never interrupted.

A cache belongs to one model, selection and evaluator: it records a fingerprint (CRC-32 of
every tensor, names, shapes, dtypes, the parameter selection, the NaN policy and the
evaluator's description) and the baseline scores; resuming with anything different is
refused, with the reason. The file is data only (JSON), read with the same care as a .wsc.
"""

from __future__ import annotations

import hashlib
import json
import os
import zlib

import torch

from wsc import _safetensors
from wsc.container import write_bytes

FORMAT = "wsc-evaluations"
VERSION = 2


def _crc(t) -> int:
    t = t.detach()
    if t.device.type != "cpu" or not t.is_contiguous():
        t = t.cpu().contiguous()
    return zlib.crc32(t.reshape(-1).view(torch.uint8).numpy())


def fingerprint(bench, evaluator, params_label: str, confidence: float | None = None) -> str:
    """SHA-256 (hex) of what the scores depend on: every tensor's bytes (CRC-32), names, shapes
    and dtypes, which are shared, the NaN policy, how unshared tensors are stored, the
    calibration inputs (GPTQ and BatchNorm statistics depend on them), the evaluator's
    description and the confidence level of the drop bounds."""
    tensors = [[n, list(t.shape), str(t.dtype), _crc(t), n in bench.originals]
               for n, t in {**bench.originals, **bench.stored}.items()]
    what = {"tensors": tensors, "aliases": sorted(bench.selection.aliases.items()), "params": params_label,
            "nan": bench.nan, "evaluator": evaluator.describe(), "confidence": confidence,
            "stored": bench.stored_policy, "recalibration": bench.calibration_digest()}
    return hashlib.sha256(json.dumps(what, sort_keys=True, default=str).encode()).hexdigest()


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _scheme_key(s) -> tuple | None:
    """A scheme key [placement, scope, clip] or [placement, scope, clip, [steps]] as a tuple; None if malformed."""
    ok = (isinstance(s, list) and len(s) in (3, 4) and isinstance(s[0], str) and isinstance(s[1], str)
          and _safetensors.is_int(s[2]))
    if ok and len(s) == 4:
        ok = isinstance(s[3], list) and all(_safetensors.is_int(j) for j in s[3])
        return (*s[:3], tuple(s[3])) if ok else None
    return tuple(s) if ok else None


def _compensation(v) -> bool:
    """Whether ``v`` is a compensation tag ["gptq", level >= 1]."""
    return isinstance(v, list) and len(v) == 2 and v[0] == "gptq" and _safetensors.is_int(v[1]) and v[1] >= 1


def _key(entry, where: str, scores: int) -> tuple:
    """(key, score) of an entry [scheme key, k, [groups], *scores], or of a compensated
    codebook's [scheme key, k, [groups], ["gptq", level], *scores]."""
    tagged = isinstance(entry, list) and len(entry) == 4 + scores and _compensation(entry[3])
    head = 4 if tagged else 3
    ok = (isinstance(entry, list) and len(entry) == head + scores and _scheme_key(entry[0]) is not None
          and _safetensors.is_int(entry[1]) and isinstance(entry[2], list)
          and all(_safetensors.is_int(g) for g in entry[2]) and all(_number(v) for v in entry[head:]))
    if not ok:
        raise ValueError(f"{where}: a malformed entry {str(entry)[:80]}; remove the file to start afresh")
    values = tuple(float(v) for v in entry[head:])
    key = (_scheme_key(entry[0]), entry[1], tuple(entry[2])) + ((tuple(entry[3]),) if tagged else ())
    return key, (values if scores > 1 else values[0])


def load(path, fp: str) -> dict:
    """{"search": {key: (score, bound)}, "heldout": {key: score}, "baseline": [search, heldout]} of a cache
    file made for fingerprint ``fp``; ValueError if it is not one, or made for something else."""
    where = os.fspath(path)
    with open(where, "rb") as f:
        data = _safetensors.loads(f.read(), f"{where}: evaluation cache")
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValueError(f"{where}: not a wsc evaluation cache")
    if data.get("version") != VERSION or isinstance(data.get("version"), bool):
        raise ValueError(f"{where}: evaluation cache version {data.get('version')!r}, this wsc reads {VERSION}")
    if data.get("fingerprint") != fp:
        raise ValueError(f"{where}: the evaluation cache was made for another model, parameter selection, "
                         "NaN policy or evaluator; remove it (or drop --resume) to start afresh")
    base = data.get("baseline")
    if not (isinstance(base, list) and len(base) == 2 and all(isinstance(v, (int, float)) for v in base)):
        raise ValueError(f"{where}: the evaluation cache has no baseline scores")
    out = {"baseline": [float(v) for v in base]}
    for side, scores in (("search", 2), ("heldout", 1)):
        entries = data.get(side)
        if not isinstance(entries, list):
            raise ValueError(f"{where}: the evaluation cache has no {side!r} list")
        out[side] = dict(_key(e, where, scores) for e in entries)
    return out


def save(path, fp: str, baseline, search: dict, heldout: dict, settings: dict) -> None:
    """Write the cache atomically (temp file + rename)."""
    def entries(scores):
        return [[list(k[0]), k[1], list(k[2]), *(list(t) for t in k[3:]), *(s if isinstance(s, tuple) else (s,))]
                for k, s in sorted(scores.items(), key=lambda kv: kv[0])]

    data = {"format": FORMAT, "version": VERSION, "fingerprint": fp, "settings": settings,
            "baseline": list(baseline), "search": entries(search), "heldout": entries(heldout)}
    write_bytes(path, json.dumps(data, separators=(",", ":"), default=str).encode())


def count(path) -> int:
    """How many search scores a cache file holds (0 if it cannot be read)."""
    try:
        with open(path, "rb") as f:
            return len(json.loads(f.read()).get("search", []))
    except (OSError, ValueError, AttributeError, RecursionError):
        return 0


__all__ = ["fingerprint", "load", "save", "count", "FORMAT", "VERSION"]
