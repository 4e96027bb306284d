"""Shared-weight inference: compact/cached layers equal wsc.load_into bit for bit, for any module."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

import wsc
import wsc.nn as wnn


class Custom(nn.Module):
    """A custom module: its parameter is read as an attribute in forward (no nn.Linear)."""

    def __init__(self):
        super().__init__()
        self.kernel = nn.Parameter(torch.randn(12, 10) * 0.1)
        self.scale = nn.Parameter(torch.ones(12))

    def forward(self, x):
        return torch.nn.functional.linear(x, self.kernel) * self.scale


class Zoo(nn.Module):
    """Every supported kind of layer in one model, plus a tied embedding/output pair."""

    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(20, 10)
        self.c1 = nn.Conv1d(10, 10, 3, padding=1)
        self.c2 = nn.Conv2d(1, 4, 3, padding=1)
        self.c3 = nn.Conv3d(1, 2, 3, padding=1)
        self.custom = Custom()
        self.head = nn.Linear(10, 20, bias=False)
        self.head.weight = self.emb.weight  # tied

    def forward(self, tokens):
        e = self.emb(tokens)                                   # (B, T, 10)
        h = self.c1(e.transpose(1, 2)).transpose(1, 2)         # (B, T, 10)
        img = self.c2(h.unsqueeze(1)).mean(1)                  # (B, T, 10)
        vol = self.c3(img.unsqueeze(1).unsqueeze(1).expand(-1, 1, 2, -1, -1)).mean((1, 2))
        return self.head(vol) + self.custom(vol).sum(-1, keepdim=True)


@pytest.fixture(scope="module", params=[(40, 80), (4, 12)], ids=["uint8", "packed4"])
def zoo_file(tmp_path_factory, request):
    """(model, .wsc path, result): more than 16 values (uint8 indices) or at most 16 (packed)."""
    torch.manual_seed(0)
    model = Zoo().eval()
    result = wsc.compress(model, lambda m: 0.0, k_range=request.param, pop_size=4, generations=1, merge=False,
                          progress=False)
    path = tmp_path_factory.mktemp("nn") / "zoo.wsc"
    result.save(path)
    return model, path, result


def tokens():
    return torch.randint(0, 20, (3, 7), generator=torch.Generator().manual_seed(1))


def loaded(model, path):
    return wsc.load_into(copy.deepcopy(model), path)


@pytest.mark.parametrize("mode", ["compact", "cached"])
def test_shared_model_equals_load_into_bit_for_bit(zoo_file, mode):
    model, path, _ = zoo_file
    want = loaded(model, path)(tokens())
    shared = wsc.load_shared(copy.deepcopy(model), path, mode=mode)
    for _ in range(2):  # cached mode: second call from the cache
        assert torch.equal(shared(tokens()), want)
    kinds = {type(m).__name__ for _, m in wnn.shared_modules(shared)}
    assert {"SharedEmbedding", "SharedConv1d", "SharedConv2d", "SharedConv3d", "SharedCustom", "SharedLinear"} <= kinds
    assert all(isinstance(p, nn.Parameter) for p in shared.parameters())
    assert not any(n.endswith(".weight") or n.endswith("kernel") for n, _ in shared.named_parameters())


def test_compact_mode_keeps_no_float_weight_and_cached_does(zoo_file):
    model, path, _ = zoo_file
    compact = wsc.load_shared(copy.deepcopy(model), path, mode="compact")
    cached = wsc.load_shared(copy.deepcopy(model), path, mode="cached")
    compact(tokens()), cached(tokens())
    assert all(not m._wsc_cache for _, m in wnn.shared_modules(compact))
    assert all(m._wsc_cache for _, m in wnn.shared_modules(cached))
    idx, cb = compact.c2.weight_indices, compact.c2.weight_codebook
    n = model.c2.weight.numel()
    assert idx.dtype == torch.uint8
    assert idx.shape == ((n + 1) // 2,) if cb.numel() <= 16 else idx.shape == model.c2.weight.shape
    assert cb.data_ptr() == compact.c3.weight_codebook.data_ptr()  # one codebook


def test_packing_can_be_turned_off(zoo_file):
    model, path, _ = zoo_file
    plain = wsc.load_shared(copy.deepcopy(model), path, pack=False)
    assert plain.c2.weight_indices.shape == model.c2.weight.shape
    assert torch.equal(plain(tokens()), loaded(model, path)(tokens()))


def test_gather_u4_matches_reference():
    rng = torch.Generator().manual_seed(0)
    for n in (1, 2, 7, 10_001):
        idx = torch.randint(0, 11, (n,), dtype=torch.uint8, generator=rng)
        cb = torch.randn(11, generator=rng)
        for dtype in (torch.float32, torch.float16, torch.bfloat16):
            got = torch.ops.wsc.gather_u4(wsc.ops.pack_u4(idx), cb, [n], dtype)
            assert torch.equal(got, cb[idx.long()].to(dtype))
    torch.library.opcheck(torch.ops.wsc.gather_u4.default, (wsc.ops.pack_u4(idx), cb, [n], torch.float32))
    with pytest.raises(ValueError, match="indices must be < 16"):
        wsc.ops.pack_u4(torch.tensor([3, 16], dtype=torch.uint8))
    with pytest.raises(ValueError, match="packed must have ceil"):
        torch.ops.wsc.gather_u4(torch.zeros(3, dtype=torch.uint8), cb, [7], torch.float32)


def test_tied_weights_share_one_index_buffer(zoo_file):
    model, path, _ = zoo_file
    shared = wsc.load_shared(copy.deepcopy(model), path)
    assert shared.head.weight_indices.data_ptr() == shared.emb.weight_indices.data_ptr()


def test_meta_device_model_loads_without_float_weights(zoo_file):
    model, path, _ = zoo_file
    torch.manual_seed(0)
    with torch.device("meta"):
        skeleton = Zoo()
    shared = wsc.load_shared(skeleton.eval(), path)
    assert not any(t.is_meta for t in shared.state_dict().values())
    assert torch.equal(shared(tokens()), loaded(model, path)(tokens()))


def test_share_from_result_equals_file(zoo_file):
    model, path, result = zoo_file
    a = wnn.share_(copy.deepcopy(model), result)
    b = wnn.share_(copy.deepcopy(model), path)
    assert torch.equal(a(tokens()), b(tokens()))


def test_torch_compile_on_shared_model(zoo_file):
    model, path, _ = zoo_file
    shared = wsc.load_shared(copy.deepcopy(model), path)
    compiled = torch.compile(shared, backend="eager", fullgraph=True)
    assert torch.equal(compiled(tokens()), loaded(model, path)(tokens()))


@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_torch_compile_inductor_on_shared_model(zoo_file):
    model, path, _ = zoo_file
    shared = wsc.load_shared(copy.deepcopy(model), path)
    compiled = torch.compile(shared)
    torch.testing.assert_close(compiled(tokens()), loaded(model, path)(tokens()), rtol=1e-5, atol=1e-6)


def test_state_dict_round_trip_of_compact_form(zoo_file):
    model, path, _ = zoo_file
    shared = wsc.load_shared(copy.deepcopy(model), path)
    sd = shared.state_dict()
    assert sd["c2.weight_indices"].dtype == torch.uint8 and "c2.weight" not in sd
    other = wsc.load_shared(copy.deepcopy(model), path)
    with torch.no_grad():
        other.c2.weight_indices.zero_()
    assert not torch.equal(other(tokens()), shared(tokens()))
    other.load_state_dict(sd)
    assert torch.equal(other(tokens()), shared(tokens()))


def test_unshare_restores_parameters(zoo_file):
    model, path, _ = zoo_file
    shared = wsc.load_shared(copy.deepcopy(model), path)
    want = shared(tokens())
    wnn.unshare_(shared)
    assert not wnn.shared_modules(shared)
    assert type(shared.c2) is nn.Conv2d and isinstance(shared.c2.weight, nn.Parameter)
    assert torch.equal(shared(tokens()), want)
    assert sorted(shared.state_dict()) == sorted(model.state_dict())


def test_errors(zoo_file, tmp_path):
    model, path, _ = zoo_file
    with pytest.raises(ValueError, match="mode must be one of"):
        wsc.load_shared(copy.deepcopy(model), path, mode="fast")
    with pytest.raises(ValueError, match="does not match the model"):
        wsc.load_shared(nn.Linear(3, 3), path)
    with pytest.raises(TypeError, match="source must be a .wsc path"):
        wnn.share_(copy.deepcopy(model), 42)
    shared = wsc.load_shared(copy.deepcopy(model), path)
    with pytest.raises(AttributeError, match="weight is shared"):
        shared.c2.weight = nn.Parameter(torch.zeros(4, 1, 3, 3))
    with pytest.raises(wsc.FormatError):
        wsc.load_shared(copy.deepcopy(model), path.read_bytes()[:-10])
