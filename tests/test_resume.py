"""Ctrl-C during a search stops cleanly; the saved evaluation cache lets a rerun continue and
end exactly as an uninterrupted run (same fronts, byte-identical file), without evaluating a
cached configuration again."""

from __future__ import annotations

import copy
import json

import pytest

import wsc
from wsc import cli, evalcache
from wsc.evaluate import Evaluator

FAST = dict(k_range=(2, 40), pop_size=6, generations=3, seed=3, tolerance=0.01, progress=False)


class Counting(Evaluator):
    """Delegates to an evaluator, counts the calls, and raises KeyboardInterrupt at call ``stop``."""

    def __init__(self, inner, stop=None):
        self.inner, self.stop, self.calls = inner, stop, 0
        self.name = inner.name

    def _tick(self):
        self.calls += 1
        if self.stop is not None and self.calls >= self.stop:
            raise KeyboardInterrupt

    def prepare(self, model):
        self.inner.prepare(model)

    def search(self, model):
        self._tick()
        return self.inner.search(model)

    def heldout(self, model):
        self._tick()
        return self.inner.heldout(model)

    def outcome(self, model, split="search"):
        self._tick()
        return self.inner.outcome(model, split)

    def drop_bound(self, base, cand, confidence):
        return self.inner.drop_bound(base, cand, confidence)

    def describe(self):
        return self.inner.describe()


def _fronts(r):
    return [(s.k, s.values, s.search_score, s.heldout_score, s.file_bytes) for s in r.front_before + r.front_after]


@pytest.fixture(scope="module")
def uninterrupted(trained_mlp, digits_eval, tmp_path_factory):
    d = tmp_path_factory.mktemp("full")
    ev = Counting(digits_eval)
    r = wsc.compress(copy.deepcopy(trained_mlp), ev, cache=d / "evaluations.json", **FAST)
    r.save(d / "model.wsc")
    return r, ev.calls, (d / "model.wsc").read_bytes()


@pytest.mark.parametrize("stop", [3, 12, 25])
def test_interrupt_then_resume_equals_an_uninterrupted_run(trained_mlp, digits_eval, tmp_path, uninterrupted, stop):
    full, full_calls, full_bytes = uninterrupted
    cache = tmp_path / "evaluations.json"
    with pytest.raises(KeyboardInterrupt):
        wsc.compress(copy.deepcopy(trained_mlp), Counting(digits_eval, stop=stop), cache=cache, **FAST)
    saved = json.loads(cache.read_text())
    n_saved = len(saved["search"]) + len(saved["heldout"])
    assert n_saved == stop - 1 - 2  # every score but the interrupted one (and the 2 baseline calls)

    ev = Counting(digits_eval)
    r = wsc.compress(copy.deepcopy(trained_mlp), ev, cache=cache, resume=True, **FAST)
    assert ev.calls == full_calls - n_saved  # cached configurations are not evaluated again
    assert _fronts(r) == _fronts(full)
    assert r.evaluations == full.evaluations and r.history == full.history
    assert r.settings["evaluations_resumed"] == len(saved["search"])
    r.save(tmp_path / "model.wsc")
    assert (tmp_path / "model.wsc").read_bytes() == full_bytes


def test_interrupt_with_parallel_workers(trained_mlp, digits_eval, tmp_path, uninterrupted):
    full, _, full_bytes = uninterrupted
    cache = tmp_path / "evaluations.json"
    with pytest.raises(KeyboardInterrupt):
        wsc.compress(copy.deepcopy(trained_mlp), Counting(digits_eval, stop=12), cache=cache,
                     **{**FAST, "workers": 3})
    assert evalcache.count(cache) >= 5
    r = wsc.compress(copy.deepcopy(trained_mlp), digits_eval, cache=cache, resume=True, **{**FAST, "workers": 3})
    assert _fronts(r) == _fronts(full)
    r.save(tmp_path / "model.wsc")
    assert (tmp_path / "model.wsc").read_bytes() == full_bytes


def test_a_finished_cache_makes_a_rerun_free(trained_mlp, digits_eval, tmp_path, uninterrupted):
    full, _, full_bytes = uninterrupted
    cache = tmp_path / "evaluations.json"
    wsc.compress(copy.deepcopy(trained_mlp), digits_eval, cache=cache, **FAST)
    ev = Counting(digits_eval)
    r = wsc.compress(copy.deepcopy(trained_mlp), ev, cache=cache, resume=True, **FAST)
    assert ev.calls == 2  # the baseline only
    assert _fronts(r) == _fronts(full)
    stepped = [e for e in json.loads(cache.read_text())["search"] if len(e[0]) == 4]
    assert stepped and all(any(e[0][3]) for e in stepped)  # step levels are part of the keys kept


def test_resume_with_compensation_searched(trained_mlp, digits, digits_eval, tmp_path):
    """Compensated candidates are cached with their rate level; the cache belongs to the
    calibration inputs (GPTQ depends on them); a resumed run ends as an uninterrupted one."""
    x, _ = digits
    opts = dict(FAST, calibration=[x[:300:2]], compensate="search")
    full = wsc.compress(copy.deepcopy(trained_mlp), digits_eval, **opts)
    cache = tmp_path / "evaluations.json"
    with pytest.raises(KeyboardInterrupt):
        wsc.compress(copy.deepcopy(trained_mlp), Counting(digits_eval, stop=20), cache=cache, **opts)
    ev = Counting(digits_eval)
    r = wsc.compress(copy.deepcopy(trained_mlp), ev, cache=cache, resume=True, **opts)
    assert _fronts(r) == _fronts(full) and r.evaluations == full.evaluations
    assert [s.codebook.key for s in r.front] == [s.codebook.key for s in full.front]
    tagged = [e for e in json.loads(cache.read_text())["search"] if len(e) == 6]
    assert tagged and all(e[3][0] == "gptq" and e[3][1] >= 1 for e in tagged)
    with pytest.raises(ValueError, match="another model"):  # other calibration inputs: other GPTQ scores
        wsc.compress(copy.deepcopy(trained_mlp), digits_eval, cache=cache, resume=True,
                     **{**opts, "calibration": [x[1:300:2]]})


@pytest.mark.parametrize("entry, ok", [
    ([["uniform", "global", 0], 4, [0, 2], 0.9, 0.01], True),
    ([["uniform", "global", 0, [1, 0]], 4, [0, 2], ["gptq", 2], 0.9, 0.01], True),
    ([["uniform", "global", 0], 4, [0, 2], ["gptq", 0], 0.9, 0.01], False),  # level 0 is the plain key
    ([["uniform", "global", 0], 4, [0, 2], ["rtn", 1], 0.9, 0.01], False),
    ([["uniform", "global", 0], 4, [0, 2], ["gptq", 1.5], 0.9, 0.01], False),
    ([["uniform", "global", 0], 4, [0, 2], ["gptq", 1], 0.9], False),
])
def test_cache_entries_with_a_rate_level(entry, ok):
    """A compensated codebook's entry carries ["gptq", level]; it reads back to the codebook's
    key, and malformed tags are refused."""
    if not ok:
        with pytest.raises(ValueError, match="malformed entry"):
            evalcache._key(entry, "f", 2)
        return
    key, score = evalcache._key(entry, "f", 2)
    assert score == (0.9, 0.01) and key[1:3] == (4, (0, 2))
    assert key[3:] == ((("gptq", 2),) if len(entry) == 6 else ())


def test_resume_refuses_a_cache_of_another_model_or_evaluator(trained_mlp, digits_eval, tmp_path):
    cache = tmp_path / "evaluations.json"
    wsc.compress(copy.deepcopy(trained_mlp), digits_eval, cache=cache, **FAST)
    other = copy.deepcopy(trained_mlp)
    with __import__("torch").no_grad():
        other.fc1.weight[0, 0] += 1
    with pytest.raises(ValueError, match="another model"):
        wsc.compress(other, digits_eval, cache=cache, resume=True, **FAST)
    with pytest.raises(ValueError, match="another model"):
        wsc.compress(copy.deepcopy(trained_mlp), digits_eval, cache=cache, resume=True, params="all", **FAST)
    with pytest.raises(ValueError, match="another model"):
        wsc.compress(copy.deepcopy(trained_mlp), lambda m: 0.5, cache=cache, resume=True, **FAST)
    with pytest.raises(ValueError, match="another model"):  # other unshared tensors: other scores
        wsc.compress(copy.deepcopy(trained_mlp), digits_eval, cache=cache, resume=True, stored="exact", **FAST)


@pytest.mark.parametrize("text, message", [
    ("{", "not valid JSON"),
    ('{"format": "other"}', "not a wsc evaluation cache"),
    ('{"format": "wsc-evaluations", "version": 7}', "version 7"),
    ("[" * 5000 + "]" * 5000, "nested too deeply|not a wsc"),
])
def test_resume_refuses_a_damaged_cache(trained_mlp, digits_eval, tmp_path, text, message):
    cache = tmp_path / "evaluations.json"
    cache.write_text(text)
    with pytest.raises(ValueError, match=message):
        wsc.compress(copy.deepcopy(trained_mlp), digits_eval, cache=cache, resume=True, **FAST)


def test_resume_without_a_cache_starts_afresh(trained_mlp, digits_eval, tmp_path, uninterrupted):
    r = wsc.compress(copy.deepcopy(trained_mlp), digits_eval, cache=tmp_path / "none.json", resume=True, **FAST)
    assert _fronts(r) == _fronts(uninterrupted[0])
    with pytest.raises(ValueError, match="needs cache"):
        wsc.compress(copy.deepcopy(trained_mlp), digits_eval, resume=True, **FAST)


def test_an_error_in_evaluate_also_keeps_the_scores(trained_mlp, digits_eval, tmp_path):
    calls = {"n": 0}

    def flaky(model):
        calls["n"] += 1
        if calls["n"] == 8:
            raise RuntimeError("the GPU fell over")
        return digits_eval.search(model)

    cache = tmp_path / "evaluations.json"
    with pytest.raises(RuntimeError, match="fell over"):
        wsc.compress(copy.deepcopy(trained_mlp), flaky, cache=cache, **FAST)
    assert evalcache.count(cache) == 5  # 8 calls: 2 baseline, 5 scored, 1 failed


QUICK = ["--pop-size", "6", "--generations", "3", "--k-max", "40", "--seed", "3", "--quiet"]


@pytest.fixture
def cli_model(monkeypatch, trained_mlp, digits_eval):
    """`wsc compress` on the digits MLP, with an evaluator the test controls."""
    state = {"evaluator": digits_eval}
    monkeypatch.setattr(cli, "_load_model", lambda args: (copy.deepcopy(trained_mlp), "digits", "digits-mlp"))
    monkeypatch.setattr(cli, "_evaluator", lambda args, data: state["evaluator"])
    return state


def test_cli_ctrl_c_then_resume(cli_model, digits_eval, tmp_path, capsys):
    full = tmp_path / "full"
    assert cli.main(["compress", *QUICK, "--out", str(full)]) == 0
    capsys.readouterr()

    out = tmp_path / "out"
    cli_model["evaluator"] = Counting(digits_eval, stop=10)
    assert cli.main(["compress", *QUICK, "--out", str(out)]) == 130
    err = capsys.readouterr().err
    assert "interrupted" in err and "--resume" in err and "Traceback" not in err
    assert "7 scored configurations are saved" in err
    assert sorted(p.name for p in out.iterdir()) == ["evaluations.json"]  # no half-written model.wsc

    cli_model["evaluator"] = ev = Counting(digits_eval)
    assert cli.main(["compress", *QUICK, "--out", str(out), "--resume"]) == 0
    assert (out / "model.wsc").read_bytes() == (full / "model.wsc").read_bytes()
    full_report = json.loads((full / "report.json").read_text())
    report = json.loads((out / "report.json").read_text())
    assert report["front_after_merge"] == full_report["front_after_merge"]
    assert report["settings"]["evaluations_resumed"] == 7 and ev.calls > 2


def test_cli_nan_policy(cli_model, trained_mlp, tmp_path, capsys, monkeypatch):
    import torch

    bad = copy.deepcopy(trained_mlp)
    with torch.no_grad():
        bad.fc2.weight[1, 2] = float("nan")
    monkeypatch.setattr(cli, "_load_model", lambda args: (copy.deepcopy(bad), "digits", "digits-mlp"))
    assert cli.main(["compress", *QUICK, "--out", str(tmp_path / "a")]) == 1
    err = capsys.readouterr().err
    assert "'fc2.weight' (1 of 320 values)" in err and "--nan" in err
    assert cli.main(["compress", *QUICK, "--out", str(tmp_path / "b"), "--nan", "zero"]) == 0
    state = wsc.load_state_dict(tmp_path / "b" / "model.wsc")
    assert torch.isfinite(state["fc2.weight"]).all()
    assert cli.main(["compress", *QUICK, "--out", str(tmp_path / "c"), "--nan", "skip"]) == 0
    state = wsc.load_state_dict(tmp_path / "c" / "model.wsc")
    assert torch.isnan(state["fc2.weight"][1, 2]) and wsc.inspect(tmp_path / "c" / "model.wsc")["stored"]
