"""wsc.compress end to end on a small real model: honest numbers that the saved file reproduces."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import os

import pytest
import torch

import wsc
from wsc import cli
from wsc.evaluate import Accuracy
from wsc.search import non_dominated

from pipeline_fixtures import DigitsMLP, assert_state_equal

FAST = dict(k_range=(2, 48), pop_size=8, generations=4, progress=False)


@pytest.fixture(scope="module")
def result(trained_mlp, digits_eval):
    return wsc.compress(copy.deepcopy(trained_mlp), digits_eval, tolerance=0.01, **FAST)


def test_caller_model_is_untouched(trained_mlp, digits_eval):
    model = copy.deepcopy(trained_mlp).train()
    before = copy.deepcopy(model.state_dict())
    flags = [p.requires_grad for p in model.parameters()]
    wsc.compress(model, digits_eval, **FAST)
    assert_state_equal(model.state_dict(), before)
    assert model.training and flags == [p.requires_grad for p in model.parameters()]


def test_saved_file_reproduces_the_reported_scores_and_size(result, digits_eval, tmp_path):
    for sol in result.front_before[:2] + result.front_after:
        path = tmp_path / f"k{sol.k}-{sol.values}.wsc"
        assert result.save(path, sol) is sol
        assert os.path.getsize(path) == sol.file_bytes
        model = wsc.load_into(DigitsMLP(), path)
        assert digits_eval.heldout(model) == sol.heldout_score
        assert digits_eval.search(model) == sol.search_score
        info = wsc.inspect(path)
        assert info["codebook_size"] == sol.values
        assert info["bits_per_weight"] == pytest.approx(sol.bits_per_weight)
        assert info["ratio"] == pytest.approx(sol.ratio)


def test_reported_numbers_are_consistent(result, trained_mlp):
    original = sum(t.numel() * t.element_size() for t in trained_mlp.state_dict().values())
    assert result.original_bytes == original
    assert result.n_shared == sum(p.numel() for p in trained_mlp.parameters() if p.dim() >= 2)
    for s in result.front_before + result.front_after:
        assert s.ratio == pytest.approx(original / s.file_bytes)
        assert s.paper_style_ratio == pytest.approx(32 / s.bits_per_weight)
        # per-tensor Huffman codes can beat the global order-0 entropy, never by a bit per weight
        assert 0 < s.entropy_bits < s.bits_per_weight + 1 and s.bits_per_weight < s.entropy_bits + 1
        assert s.values <= s.k and s.search_score == 1 - s.search_error
    for front in (result.front_before, result.front_after):  # in the objectives' space
        pts = [(s.search_bound if result.confidence is not None else s.search_error, s.size) for s in front]
        assert len(non_dominated(pts)) == len(pts)
    assert result.evaluations >= len(result.front_before) and result.wall_time > 0


def test_default_choice_uses_the_search_split_only(result, tmp_path):
    chosen = result.choose()
    ok = [s for s in result.front if s.search_bound <= result.tolerance]  # the default: by the 95% bound
    if ok:
        assert chosen.file_bytes == min(s.file_bytes for s in ok)
    assert result.save(tmp_path / "default.wsc") is chosen
    strict = result.choose(tolerance=0.0)
    assert strict.search_bound <= 0.0 or strict.search_bound == min(s.search_bound for s in result.front)


def test_json_report_and_plot(result, tmp_path):
    report = json.loads(result.to_json())
    assert report["evaluations"] == result.evaluations
    assert len(report["front_after_merge"]) == len(result.front_after)
    assert report["chosen"]["file_bytes"] == result.choose().file_bytes
    assert report["settings"]["pop_size"] == 8 and report["evaluator"]["metric"] == "accuracy"
    assert all("group_first_bins" in s for s in report["front_after_merge"] if s["merged"])
    result.plot(tmp_path / "front.png")
    assert (tmp_path / "front.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_each_coder_measures_what_it_writes(trained_mlp, digits_eval, tmp_path):
    """The same search (size="values" does not depend on the coder) measured with each coder:
    the files hold the reported coder and size; rANS spends the entropy plus its flushed
    states (4 to 32 bytes per tensor, a lot on this small model), Huffman at least one bit
    per weight; auto is never larger than either."""
    runs = {}
    for coder in ("auto", "huffman", "rans"):
        runs[coder] = wsc.compress(copy.deepcopy(trained_mlp), digits_eval, tolerance=0.01, coder=coder,
                                   size="values", **FAST)
    result = runs["auto"]
    assert result.settings["coder"] == "auto" and runs["rans"].settings["coder"] == "rans"
    for h, r, a in zip(runs["huffman"].front_before, runs["rans"].front_before, result.front_before):
        assert h.k == r.k == a.k and h.coder == "huffman" and r.coder == "rans"
        assert a.file_bytes <= min(h.file_bytes, r.file_bytes)
        flush = 2 * 256 / runs["rans"].n_shared
        assert r.bits_per_weight < r.entropy_bits + flush + 0.02
        assert h.bits_per_weight >= 1.0
        for sol, run in ((h, runs["huffman"]), (r, runs["rans"])):
            path = tmp_path / f"{sol.coder}-{sol.k}.wsc"
            run.save(path, sol)
            info = wsc.inspect(path)
            assert os.path.getsize(path) == sol.file_bytes and info["coders"] == {sol.coder: 2}
            assert info["bits_per_weight"] == pytest.approx(sol.bits_per_weight)
    bits = wsc.compress(copy.deepcopy(trained_mlp), digits_eval, size="bits", coder="rans", **FAST)
    assert all(s.coder == "rans" for s in bits.front)


class DigitsCNN(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(1, 8, 3, padding=1)
        self.bn = torch.nn.BatchNorm2d(8)
        self.fc = torch.nn.Linear(8 * 16, 10)

    def forward(self, x):
        x = torch.relu(self.bn(self.conv(x.reshape(-1, 1, 8, 8))))
        return self.fc(torch.nn.functional.max_pool2d(x, 2).flatten(1))


def test_params_all_with_batchnorm_and_a_callable(digits, tmp_path):
    torch.manual_seed(1)
    x, y = digits
    model = DigitsCNN()
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(40):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x[:1000]), y[:1000]).backward()
        opt.step()
    model.eval()
    acc = Accuracy(search=(x[1000:1300], y[1000:1300]), heldout=(x[1300:], y[1300:]))
    r = wsc.compress(model, acc.search, params="all", **FAST)
    assert r.evaluator["same_splits"] and r.baseline_search == r.baseline_heldout
    assert r.n_shared == sum(t.numel() for n, t in model.state_dict().items() if t.is_floating_point())
    sol = r.save(tmp_path / "cnn.wsc")
    state = wsc.load_state_dict(tmp_path / "cnn.wsc")
    assert state["bn.num_batches_tracked"].dtype == torch.int64
    assert acc.search(wsc.load_into(DigitsCNN(), tmp_path / "cnn.wsc")) == sol.search_score


def test_fidelity_needs_no_labels(trained_mlp, digits):
    from wsc.evaluate import Fidelity

    x, _ = digits
    r = wsc.compress(copy.deepcopy(trained_mlp), Fidelity(x[1000:], search_size=0.4), **FAST)
    assert r.baseline_search == r.baseline_heldout == 1.0
    assert r.evaluator["metric"] == "fidelity" and max(s.search_score for s in r.front) <= 1.0


@pytest.mark.parametrize("kwargs, error, message", [
    (dict(k_range=(1, 10)), ValueError, "k_range"),
    (dict(k_range=(20, 10)), ValueError, "k_min <= k_max"),
    (dict(k_range=5), TypeError, "pair"),
    (dict(pop_size=1), ValueError, "pop_size"),
    (dict(generations=0), ValueError, "generations"),
    (dict(tolerance=-0.1), ValueError, "tolerance"),
    (dict(workers=0), ValueError, "workers"),
    (dict(size="bytes"), ValueError, "size"),
    (dict(coder="zstd"), ValueError, "coder must be one of"),
    (dict(params="biases"), ValueError, "params"),
    (dict(params=lambda n, t: False), ValueError, "no tensor selected"),
    (dict(progress="loud"), TypeError, "progress"),
])
def test_bad_options(mlp, digits_eval, kwargs, error, message):
    with pytest.raises(error, match=message):
        wsc.compress(mlp, digits_eval, **{**FAST, **kwargs})


def test_bad_model_and_evaluator(mlp):
    with pytest.raises(TypeError, match="torch.nn.Module"):
        wsc.compress("model", lambda m: 1.0, **FAST)
    with pytest.raises(TypeError, match="Evaluator or a callable"):
        wsc.compress(mlp, 0.9, **FAST)


@pytest.mark.parametrize("confidence", [0.95, None])
def test_a_selection_split_decides_beside_the_search_split(trained_mlp, digits, confidence):
    """With select=, the search, the merge and the fronts are those without it; afterwards
    each final solution within the bar on the search split (only those) is scored on the
    selection examples, and the choice is the smallest file within the bar on both."""
    x, y = digits
    xs, ys = x[1000:], y[1000:]
    splits = dict(search=(xs[:300], ys[:300]), heldout=(xs[500:], ys[500:]))
    plain, ev = Accuracy(**splits), Accuracy(**splits, select=(xs[300:500], ys[300:500]))
    assert ev.selects and not plain.selects and ev.describe()["select_examples"] == 200
    calls, outcome = [], ev.outcome
    ev.outcome = lambda m, split="search": calls.append(split) or outcome(m, split)
    kw = dict(FAST, tolerance=0.01, confidence=confidence)
    a = wsc.compress(copy.deepcopy(trained_mlp), plain, **kw)
    b = wsc.compress(copy.deepcopy(trained_mlp), ev, **kw)
    assert [s.codebook.key for s in a.front] == [s.codebook.key for s in b.front]
    assert "select" in calls and "search" not in calls[calls.index("select"):]
    bar = (lambda s: s.search_bound <= 0.01) if confidence else (lambda s: s.search_score >= b.baseline_search - 0.01)
    scored = {s.codebook.key for s in b.front if bar(s)}
    assert scored and calls.count("select") == 1 + len(scored) == 1 + b.settings["select_evaluations"]
    with b._bench.model(None) as m:
        base = outcome(m, "select")
    for s in b.front:
        assert (s.codebook.key in scored) == (s.select_bound == s.select_bound)  # NaN where not scored
        if s.codebook.key in scored:
            with b._bench.model(s.codebook) as m:
                got = outcome(m, "select")
            assert s.select_score == got.value
            assert s.select_bound == (ev.drop_bound(base, got, confidence) if confidence else base.value - got.value)
    both = [s for s in b.front if b.within(s)]
    assert all(s.codebook.key in scored for s in both)
    chosen = b.choose()
    if both:
        assert chosen.file_bytes == min(s.file_bytes for s in both)
    else:  # none keeps the bar there: the scored solution that drops least on the selection split
        assert chosen.select_bound == min(s.select_bound for s in b.front if s.codebook.key in scored)
    assert chosen.file_bytes >= a.choose().file_bytes
    assert b.choose(select=False).codebook.key == a.choose().codebook.key  # the search split's own choice
    assert "select_bound" in b.to_dict()["chosen"] and "select_bound" not in a.to_dict()["chosen"]
    table_a, table_b = cli._table(a).splitlines(), cli._table(b).splitlines()  # wsc compress's printed front
    assert "select bound" in table_b[3] and "select" not in table_a[2] and "selection" in table_b[0]
    unscored = dataclasses.replace(b.front[0], select_score=math.nan, select_bound=math.nan)
    table_c = cli._table(dataclasses.replace(b, front_before=[unscored], front_after=[], front_compensated=[]))
    assert len(table_b) == 4 + len(b.front) and len(table_c.splitlines()) == 5
    for s, line in [*zip(b.front, table_b[4:]), (unscored, table_c.splitlines()[4])]:
        cells = line.split()  # the selection columns follow the search split's drop bound
        at = cells.index(f"{100 * s.search_bound:.2f}", 9) + 1
        assert cells[at:at + 2] == (["–", "–"] if math.isnan(s.select_bound) else
                                    [f"{100 * s.select_score:.2f}", f"{100 * s.select_bound:.2f}"])
    with pytest.raises(ValueError, match="select must hold at least one example"):
        Accuracy(**splits, select=(xs[:0], ys[:0]))


def _scored(file_bytes, search_bound, select_bound, select_score=math.nan, search_score=0.9):
    """A Solution with only what choose() reads (no codebook: never written)."""
    return wsc.Solution(4, 4, False, search_score, 0.9, 1.0, 1.0, 1.0, file_bytes, 1.0, 1.0, None,
                        search_bound=search_bound, select_score=select_score, select_bound=select_bound)


def _result(front, confidence, **select):
    settings = {"confidence": confidence, **({"select_evaluations": len(front), **select} if select else {})}
    return wsc.CompressionResult(0.905, 0.9, front, [], 0, 0, 0.0, 0.01, 1, 100, settings, {})


def test_choose_keeps_the_bar_on_both_splits():
    """The smallest file within the bound on the search and the selection split; if none,
    the scored one with the least selection drop; select=False: the search split alone."""
    small = _scored(10, 0.005, 0.02)  # fails the selection bar
    middle = _scored(20, 0.008, 0.009)
    safe = _scored(30, 0.001, 0.001)
    unscored = _scored(5, 0.02, math.nan)  # outside the search bar: never scored there
    r = _result([small, middle, safe, unscored], 0.95, select_baseline=0.9)
    assert r.choose() is middle and r.choose(select=False) is small
    assert r.choose(tolerance=0.025) is small  # within both at 0.025; the unscored one never
    assert _result([small, _scored(20, 0.008, 0.03), _scored(30, 0.001, 0.015)], 0.95,
                   select_baseline=0.9).choose().file_bytes == 30  # none passes: least selection drop
    assert _result([small, middle], 0.95).choose() is small  # no selection split


def test_without_confidence_a_drop_of_exactly_the_tolerance_keeps_the_bar():
    """Point drops compare scores, as on the search split: 2 of 200 examples is 1 point."""
    base = 181 / 200
    at_bar = _scored(10, math.nan, base - 179 / 200, select_score=179 / 200)
    over = _scored(5, math.nan, base - 178 / 200, select_score=178 / 200)
    r = _result([at_bar, over], None, select_baseline=base)
    assert at_bar.select_bound > 0.01 and r.within(at_bar) and not r.within(over) and r.choose() is at_bar
