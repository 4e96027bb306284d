"""Bad or unusual model inputs: NaN/Inf, empty and scalar tensors, integer and bool tensors,
tied parameters, float16/bfloat16 models, the meta device, nothing to share, weights that
change under the result."""

from __future__ import annotations

import pytest
import torch

import wsc
from wsc.workbench import Workbench

TINY = dict(k_range=(2, 16), pop_size=4, generations=2, merge=False, progress=False)


def score(model) -> float:
    """A deterministic stand-in for an accuracy: 1 / (1 + the summed weights' magnitude)."""
    with torch.no_grad():
        total = sum(float(p.detach().double().abs().nansum()) for p in model.parameters() if p.is_floating_point())
    return 1.0 / (1.0 + total)


class Net(torch.nn.Module):
    def __init__(self, dtype=torch.float32):
        super().__init__()
        torch.manual_seed(0)
        self.a = torch.nn.Linear(12, 10).to(dtype)
        self.b = torch.nn.Linear(10, 6).to(dtype)


def _roundtrip(model, tmp_path, **kw):
    r = wsc.compress(model, score, **{**TINY, **kw})
    path = tmp_path / "m.wsc"
    r.save(path)
    return r, path


# ---------------------------------------------------------------- NaN / Inf
@pytest.mark.parametrize("value", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_weights_are_an_error_naming_the_tensor(value):
    m = Net()
    with torch.no_grad():
        m.b.weight[2, 3] = value
        m.b.weight[0, 0] = value
    with pytest.raises(ValueError, match=r"'b.weight' \(2 of 60 values\).*nan='zero'.*nan='skip'"):
        wsc.compress(m, score, **TINY)


def test_nan_zero_replaces_them_before_sharing(tmp_path):
    m = Net()
    with torch.no_grad():
        m.b.weight[2, 3] = float("nan")
        m.a.weight[0, 0] = float("inf")
    r, path = _roundtrip(m, tmp_path, nan="zero")
    assert r.settings["non_finite"] == {"a.weight": 1, "b.weight": 1}
    state = wsc.load_state_dict(path)
    assert all(torch.isfinite(t).all() for t in state.values())
    assert wsc.inspect(path)["info"]["nan"] == "zero"
    assert torch.isnan(m.b.weight[2, 3])  # the caller's model keeps its NaN


def test_nan_skip_stores_such_tensors_unchanged(tmp_path):
    m = Net()
    with torch.no_grad():
        m.b.weight[2, 3] = float("nan")
    r, path = _roundtrip(m, tmp_path, nan="skip")
    info = wsc.inspect(path)
    assert [s["name"] for s in info["shared"]] == ["a.weight"]
    state = wsc.load_state_dict(path)
    assert torch.equal(state["b.weight"].isnan(), m.b.weight.isnan())
    assert torch.equal(torch.nan_to_num(state["b.weight"]), torch.nan_to_num(m.b.weight.detach()))
    wsc.load_into(Net(), path)


def test_nan_everywhere_with_skip_leaves_nothing_to_share():
    m = Net()
    with torch.no_grad():
        m.a.weight[0, 0] = m.b.weight[0, 0] = float("nan")
    with pytest.raises(ValueError, match="no tensor selected for sharing .*NaN or Inf"):
        wsc.compress(m, score, nan="skip", **TINY)
    with pytest.raises(ValueError, match="nan must be one of"):
        wsc.compress(m, score, nan="ignore", **TINY)


def test_an_evaluator_returning_nan_is_a_clear_error():
    with pytest.raises(ValueError, match="uncompressed model: the evaluator returned nan"):
        wsc.compress(Net(), lambda m: float("nan"), **TINY)
    calls = []

    def later(m):
        calls.append(1)
        return 0.5 if len(calls) <= 2 else float("inf")

    with pytest.raises(ValueError, match=r"search score of k=\d+ .* returned inf"):
        wsc.compress(Net(), later, **TINY)
    with pytest.raises(TypeError, match="must return a number; got str"):
        wsc.compress(Net(), lambda m: "high", **TINY)


def test_nan_in_an_unshared_tensor_is_left_alone(tmp_path):
    m = Net()
    with torch.no_grad():
        m.a.bias[1] = float("nan")
    _, path = _roundtrip(m, tmp_path)
    assert torch.isnan(wsc.load_state_dict(path)["a.bias"][1])


# ---------------------------------------------------------------- odd tensors
class Odd(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.w = torch.nn.Parameter(torch.randn(8, 6))
        self.empty = torch.nn.Parameter(torch.zeros(0, 5))
        self.scalar = torch.nn.Parameter(torch.tensor(0.25))
        self.ints = torch.nn.Parameter(torch.arange(6, dtype=torch.int64).reshape(2, 3), requires_grad=False)
        self.flags = torch.nn.Parameter(torch.tensor([[True, False], [False, True]]), requires_grad=False)
        self.register_buffer("codes", torch.tensor([-3, 4], dtype=torch.int8))
        self.register_buffer("steps", torch.tensor(12))
        self.register_buffer("mask", torch.ones(3, 3, dtype=torch.bool))
        self.register_buffer("nothing", torch.zeros(0))


@pytest.mark.parametrize("params", ["weights", "all", lambda name, t: True])
def test_empty_scalar_integer_and_bool_tensors_are_stored_unchanged(tmp_path, params):
    m = Odd()
    _, path = _roundtrip(m, tmp_path, params=params)
    info = wsc.inspect(path)
    assert [s["name"] for s in info["shared"]] == ["w"]
    state = wsc.load_state_dict(path)
    for name, t in m.state_dict().items():
        if name != "w":
            assert state[name].dtype == t.dtype and state[name].shape == t.shape, name
            assert torch.equal(state[name], t), name
    fresh = Odd()
    wsc.load_into(fresh, path)
    assert torch.equal(fresh.flags, m.flags) and fresh.ints.dtype == torch.int64


def test_a_model_with_nothing_to_share():
    class NoWeights(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.bias = torch.nn.Parameter(torch.zeros(4))
            self.register_buffer("idx", torch.arange(3))

    with pytest.raises(ValueError, match="no tensor selected for sharing"):
        wsc.compress(NoWeights(), score, **TINY)
    with pytest.raises(ValueError, match="no tensor selected for sharing"):
        wsc.compress(torch.nn.Module(), score, **TINY)
    with pytest.raises(TypeError, match="torch.nn.Module"):
        wsc.compress({"w": torch.zeros(3, 3)}, score, **TINY)


# ---------------------------------------------------------------- ties
class Tied(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(2)
        self.emb = torch.nn.Embedding(30, 8)
        self.mid = torch.nn.Linear(8, 8)
        self.head = torch.nn.Linear(8, 30, bias=False)
        self.head.weight = self.emb.weight


def test_tied_parameters_are_stored_once_and_restored_tied(tmp_path):
    m = Tied()
    r, path = _roundtrip(m, tmp_path)
    info = wsc.inspect(path)
    assert info["aliases"] == {"head.weight": "emb.weight"}
    assert [s["name"] for s in info["shared"]] == ["emb.weight", "mid.weight"]
    state = wsc.load_state_dict(path)
    assert state["head.weight"] is state["emb.weight"]
    fresh = Tied()
    wsc.load_into(fresh, path)
    assert fresh.head.weight is fresh.emb.weight
    assert torch.equal(fresh.emb.weight, state["emb.weight"])
    shared = wsc.load_shared(Tied(), path)
    assert torch.equal(shared.head.weight, shared.emb.weight)
    # the tied tensor counts once
    assert r.original_bytes == sum(t.numel() * t.element_size() for n, t in m.state_dict().items()
                                   if n != "head.weight")


# ---------------------------------------------------------------- dtypes
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_low_and_high_precision_models_round_trip_in_their_dtype(tmp_path, dtype):
    m = Net(dtype)
    r, path = _roundtrip(m, tmp_path)
    chosen = r.choose()
    state = wsc.load_state_dict(path)
    with r._bench.model(chosen.codebook) as shared:
        expect = shared.state_dict()
    for name, t in state.items():
        assert t.dtype == dtype, name
        assert torch.equal(t, expect[name]), name
    fresh = Net(dtype)
    wsc.load_into(fresh, path)
    assert fresh.a.weight.dtype == dtype
    x = torch.randn(3, 12).to(dtype)
    fresh.b(fresh.a(x))  # runs in its dtype


# ---------------------------------------------------------------- devices, layout
def test_meta_device_is_a_clear_error():
    with torch.device("meta"):
        m = Net()
    with pytest.raises(ValueError, match=r"meta device .*'a.weight'.*to_empty"):
        wsc.compress(m, score, **TINY)
    partly = Net()
    partly.b.weight = torch.nn.Parameter(torch.empty(6, 10, device="meta"))
    with pytest.raises(ValueError, match=r"1 tensor\(s\) .* meta device .*'b.weight'"):
        wsc.compress(partly, score, **TINY)


def test_non_contiguous_weights(tmp_path):
    m = Net()
    m.a.weight = torch.nn.Parameter(torch.randn(12, 10).t())  # a transposed view
    assert not m.a.weight.is_contiguous()
    r, path = _roundtrip(m, tmp_path)
    with r._bench.model(r.choose().codebook) as shared:
        assert torch.equal(wsc.load_state_dict(path)["a.weight"], shared.a.weight.detach())


def test_weights_changed_after_compress_are_refused(tmp_path):
    m = Net()
    r = wsc.compress(m, score, **TINY)
    with torch.no_grad():
        m.a.weight.mul_(2)
    with pytest.raises(RuntimeError, match="changed after compress"):
        r.save(tmp_path / "m.wsc")


def test_the_callers_model_is_not_copied_twice():
    """The workbench reads the caller's float32 weights in place: no second copy."""
    m = Net()
    bench = Workbench(m)
    assert bench._work["a.weight"].data_ptr() == m.a.weight.data_ptr()
    with bench.model(None) as work:
        assert work.a.weight.data_ptr() != m.a.weight.data_ptr()
    assert bench.lo == min(float(m.a.weight.detach().min()), float(m.b.weight.detach().min()))
