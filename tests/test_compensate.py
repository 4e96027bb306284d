"""GPTQ error compensation (wsc.compensate): against a plain reference, the layer-output error
it saves, second moments of Linear / Conv inputs, and compensated codebooks through the
workbench, the file and wsc.compress on real data."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
from torch import nn

import wsc
from wsc import compensate, container, reference
from wsc.scheme import Scheme
from wsc import workbench as workbench_module
from wsc.workbench import Workbench


def reference_assign(w: np.ndarray, h: np.ndarray, values: np.ndarray, rate: float = 0.0) -> np.ndarray:
    """GPTQ written out one column at a time on the inverse of H (no Cholesky, no blocks), in
    order of decreasing H diagonal; with a rate, the cheaper of the two values around."""
    order = np.argsort(-np.diag(h), kind="stable")
    spacing = (values[-1] - values[0]) / (len(values) - 1)
    near = np.argmin(np.abs(w.reshape(-1, 1) - values[None, :]), axis=1)
    c = np.bincount(near, minlength=len(values)) + 0.5
    bits = -np.log2(c / c.sum())
    w, h = w[:, order].astype(np.float64), h[order][:, order].astype(np.float64)
    dead = np.diag(h) == 0
    h[dead, dead] = 1.0
    h += compensate.DAMP * np.diag(h).mean() * np.eye(len(h))
    q = np.zeros(w.shape, dtype=np.int64)
    hinv = np.linalg.inv(h)
    for i in range(w.shape[1]):
        if rate == 0:
            q[:, i] = np.argmin(np.abs(w[:, i:i + 1] - values[None, :]), axis=1)  # ties: the lower
        else:
            j = np.clip(np.searchsorted(values, w[:, i]), 1, len(values) - 1)
            cand = np.stack([j - 1, j], 1)
            cost = ((w[:, i:i + 1] - values[cand]) / spacing) ** 2 + rate * bits[cand]
            q[:, i] = cand[np.arange(len(cand)), np.argmin(cost, axis=1)]
        err = (w[:, i] - values[q[:, i]]) / hinv[i, i]
        w[:, i + 1:] -= np.outer(err, hinv[i, i + 1:])
        # the remaining columns' inverse: H^-1 with row and column i eliminated
        hinv = hinv - np.outer(hinv[:, i], hinv[i, :]) / hinv[i, i]
    out = np.empty_like(q)
    out[:, order] = q
    return out


def random_layer(rows: int, cols: int, seed: int):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(400, cols)) @ rng.normal(size=(cols, cols)) * 0.3  # correlated inputs
    x[:, 0] = 0  # an input that is always 0
    w = rng.laplace(0, 0.1, size=(rows, cols))
    return w, x.T @ x / len(x), x


@pytest.mark.parametrize("rows,cols,block", [(5, 7, 128), (8, 300, 128), (8, 300, 7), (1, 1, 128)])
@pytest.mark.parametrize("rate", compensate.RATES)
def test_assign_matches_the_reference(rows, cols, block, rate, monkeypatch):
    monkeypatch.setattr(compensate, "BLOCK", block)
    w, h, _ = random_layer(rows, cols, seed=rows + cols)
    values = np.linspace(-0.3, 0.25, 6)
    got = compensate.assign(torch.from_numpy(w), torch.from_numpy(h), torch.from_numpy(values), rate).numpy()
    np.testing.assert_array_equal(got, reference_assign(w, h, values, rate))


@pytest.mark.parametrize("cols,block", [(9, 128), (40, 16)])
@pytest.mark.parametrize("rate", compensate.RATES)
def test_groups_solved_together_match_each_alone(cols, block, rate, monkeypatch):
    """A grouped convolution's groups go through GPTQ in one batch: each group's indices are
    those of the group alone (and of the reference), with one shared code length table."""
    monkeypatch.setattr(compensate, "BLOCK", block)
    layers = [random_layer(6, cols, seed=g) for g in range(5)]
    w = torch.from_numpy(np.stack([lay[0] for lay in layers]))
    h = torch.from_numpy(np.stack([lay[1] for lay in layers]))
    h[3] *= 40.0  # groups on different scales
    values = torch.linspace(-0.3, 0.25, 7, dtype=torch.float64)
    bits = compensate.code_lengths(w.reshape(-1, cols), values)
    together = compensate.assign(w, h, values, rate, bits)
    for g in range(5):
        alone = compensate.assign(w[g], h[g], values, rate, bits)
        np.testing.assert_array_equal(together[g].numpy(), alone.numpy())
        if rate == 0:
            np.testing.assert_array_equal(alone.numpy(), reference_assign(w[g].numpy(), h[g].numpy(), values.numpy()))
    assert compensate.assign_tensor(w.reshape(30, cols), h, values, rate).reshape(5, 6, cols).equal(
        compensate.assign(w, h, values, rate, bits if rate else None))


def random_block(groups: int, rows: int, width: int, k: int, seed: int):
    """A block of weights, an upper-triangular factor with positive pivots, k sorted dyadic
    values and their bits: some weights exactly halfway between the first two values, whose
    bits are equal (exact ties of distance and of cost: the lower wins), some beyond the ends
    and one NaN (it takes the last pair and spreads along its line)."""
    rng = np.random.default_rng(seed)
    block = rng.laplace(0, 0.1, size=(groups, rows, width))
    values = np.sort(rng.choice(np.arange(-160, 160), size=k, replace=False)) / 512
    bits = rng.uniform(0.1, 6.0, size=k)
    if k > 1 and block.size:
        bits[1] = bits[0]
        block.reshape(-1)[::7] = (values[0] + values[1]) / 2
        block.reshape(-1)[1::11] = values[-1] + 1.0
        block.reshape(-1)[-1] = np.nan
    u = np.triu(rng.normal(size=(groups, width, width))) * 0.3
    for g in range(groups):
        np.fill_diagonal(u[g], rng.uniform(0.5, 2.0, size=width))
    pivots = np.diagonal(u, axis1=1, axis2=2).copy()
    return block, u, pivots, values, bits


@pytest.mark.parametrize("groups,rows,width,k", [(1, 5, 7, 6), (3, 4, 33, 2), (2, 9, 128, 16), (1, 3, 5, 1),
                                                 (1, 0, 4, 3), (2, 3, 0, 3), (1, 64, 1, 255)])
@pytest.mark.parametrize("rate", [0.0, *compensate.RATES[1:], 2.0])
def test_gptq_block_kernel_matches_the_reference(groups, rows, width, k, rate, threads):
    """The native block solver gives the numpy twin's indices and errors bit for bit, on any
    thread count: exact ties, weights beyond the ends, NaN, one value, empty blocks."""
    block, u, pivots, values, bits = random_block(groups, rows, width, k, seed=groups * 100 + width + k)
    want_q, want_err = reference.gptq_block(block, u, pivots, values, bits, rate)
    t = lambda a: torch.from_numpy(np.array(a))  # noqa: E731
    q, err = compensate._solve_block(t(block), t(u), t(pivots), t(values), t(bits) if rate else None, rate)
    np.testing.assert_array_equal(q.numpy(), want_q)
    np.testing.assert_array_equal(err.numpy(), want_err)


def test_gptq_block_kernel_refuses_bad_values():
    block, u, pivots, values, bits = (torch.from_numpy(a) for a in random_block(1, 2, 3, 4, seed=0))
    with pytest.raises(ValueError, match="sorted ascending"):
        compensate._solve_block(block, u, pivots, values.flip(0), None, 0.0)
    with pytest.raises(ValueError, match="a rate needs bits"):
        compensate._solve_block(block, u, pivots, values, None, 0.1)


def test_a_factor_once_per_layer_gives_the_same_indices(monkeypatch):
    """Assigning from a layer's factor or from its H is the same, and the workbench factors
    each layer once, at calibration, whatever the codebooks it assigns after."""
    w, h, _ = random_layer(8, 60, seed=4)
    values = torch.linspace(-0.3, 0.25, 6, dtype=torch.float64)
    f = compensate.factor(torch.from_numpy(h))
    for rate in compensate.RATES:
        assert compensate.assign(torch.from_numpy(w), f, values, rate).equal(
            compensate.assign(torch.from_numpy(w), torch.from_numpy(h), values, rate))
    calls = []
    monkeypatch.setattr(workbench_module, "factor", lambda h: calls.append(h) or compensate.factor(h))
    bench = Workbench(Convs(), params="all")
    layers = bench.calibrate([torch.randn(16, 2, 16)])
    for k in (4, 6, 9):
        for level in (1, 2):
            bench.indices(bench.codebook(k).compensate(level))
    assert len(calls) == len(layers) == 4


def test_assign_refuses_what_it_cannot_solve():
    """Bad arguments raise errors that name them (never reach the kernel); one H serves
    every group of a grouped weight."""
    w, h, _ = random_layer(4, 9, seed=5)
    w, h = torch.from_numpy(w), torch.from_numpy(h)
    values = torch.linspace(-0.3, 0.25, 5, dtype=torch.float64)
    with pytest.raises(ValueError, match="values must be on the cpu"):
        compensate.assign(w, h, values.to("meta"))
    with pytest.raises(ValueError, match="sorted ascending"):
        compensate.assign(w, h, values.flip(0))
    with pytest.raises(ValueError, match="finite values"):
        compensate.assign(w, h, torch.tensor([0.0, float("nan")], dtype=torch.float64))
    with pytest.raises(ValueError, match="bits must hold one length per value"):
        compensate.assign(w, h, values, 0.1, torch.ones(3))
    with pytest.raises(ValueError, match=r"h must be \[9, 9\]"):
        compensate.assign(w, h[:8, :8], values)
    with pytest.raises(ValueError, match="w must be"):
        compensate.assign(w[None, None], h, values)
    with pytest.raises(ValueError, match="a Factor holds"):
        compensate.Factor(torch.zeros(1, 9, dtype=torch.int64), torch.zeros(1, 9, 9))
    grouped = torch.stack([w, 2 * w])
    shared = compensate.assign(grouped, h, values)
    assert shared[1].equal(compensate.assign(2 * w, h, values)) and shared[0].equal(compensate.assign(w, h, values))


def test_a_rate_spends_fewer_bits():
    """Entropy-constrained rounding: the higher the rate weight, the lower the entropy of the
    indices (at some cost in output error)."""
    w, h, _ = random_layer(64, 200, seed=2)
    values = torch.linspace(-0.3, 0.3, 7, dtype=torch.float64)
    entropy = []
    for rate in (0.0, 0.25, 1.0):
        q = compensate.assign(torch.from_numpy(w), torch.from_numpy(h), values, rate)
        p = torch.bincount(q.reshape(-1)).double() / q.numel()
        entropy.append(float(-(p[p > 0] * p[p > 0].log2()).sum()))
    assert entropy[0] > entropy[1] > entropy[2]


def test_compensation_cuts_the_layer_output_error():
    w, h, x = random_layer(64, 200, seed=1)
    values = np.linspace(-0.3, 0.3, 5)
    q = compensate.assign(torch.from_numpy(w), torch.from_numpy(h), torch.from_numpy(values)).numpy()
    near = compensate.nearest(torch.from_numpy(w), torch.from_numpy(values)).numpy()
    out_err = lambda idx: float(np.square((w - values[idx]) @ x.T).mean())  # noqa: E731
    assert out_err(q) < 0.5 * out_err(near)
    # with uncorrelated inputs of equal power nothing moves: plain nearest rounding
    same = compensate.assign(torch.from_numpy(w), torch.eye(200, dtype=torch.float64), torch.from_numpy(values))
    np.testing.assert_array_equal(same.numpy(), near)


def test_nearest_and_one_value():
    v = torch.tensor([-1.0, 0.0, 2.0], dtype=torch.float64)
    x = torch.tensor([-5.0, -0.5, -0.49, 1.0, 1.01, 9.0], dtype=torch.float64)
    assert compensate.nearest(x, v).tolist() == [0, 0, 1, 1, 2, 2]
    assert compensate.nearest(x, v[:1]).tolist() == [0] * 6


class Convs(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.c1 = nn.Conv1d(2, 4, 3, padding=1)
        self.c2 = nn.Conv2d(4, 8, 3, stride=2, padding=1, dilation=1)
        self.dw = nn.Conv2d(8, 8, 3, padding=1, groups=8)
        self.fc = nn.Linear(8, 3)
        self.emb = nn.Parameter(torch.randn(5, 5))  # not a layer weight: never compensated

    def forward(self, x):
        x = self.c1(x)  # [N, 4, 16]
        x = self.dw(self.c2(x.reshape(len(x), 4, 4, 4)))
        return self.fc(x.mean((2, 3)))


def test_second_moments_of_every_layer_kind():
    m = Convs()
    batches = [torch.randn(6, 2, 16), (torch.randn(2, 2, 16), "label"), {"x": torch.randn(1, 2, 16)}]
    got = compensate.second_moments(m, [n for n, _ in m.named_parameters()], batches)
    assert sorted(got) == ["c1.weight", "c2.weight", "dw.weight", "fc.weight"]
    x = torch.cat([batches[0], batches[1][0], batches[2]["x"]]).double()
    cols = nn.functional.unfold(x.unsqueeze(2), (1, 3), padding=(0, 1))  # c1's patches
    p = cols.transpose(1, 2).reshape(-1, 6)
    torch.testing.assert_close(got["c1.weight"][0], p.T @ p / len(p))
    assert got["c2.weight"].shape == (1, 36, 36) and got["dw.weight"].shape == (8, 9, 9)
    assert got["fc.weight"].shape == (1, 8, 8)
    with torch.no_grad():  # the depthwise layer's group 3 sees only channel 3 of its input
        h = m.c2(m.c1(x.float()).reshape(9, 4, 4, 4)).double()
    pd = nn.functional.unfold(h[:, 3:4], 3, padding=1).transpose(1, 2).reshape(-1, 9)
    torch.testing.assert_close(got["dw.weight"][3], pd.T @ pd / len(pd))


@pytest.mark.parametrize("scheme", [Scheme(), Scheme("uniform", "channel", 2), Scheme("kmeans", "tensor", 0)],
                         ids=lambda s: "-".join(map(str, s.key)))
def test_compensated_codebook_through_the_workbench_and_the_file(scheme):
    m = Convs()
    bench = Workbench(m, params="all")
    assert bench.calibrate([torch.randn(16, 2, 16)]) == ["c1.weight", "c2.weight", "dw.weight", "fc.weight"]
    cb = bench.codebook(6, scheme)
    cc = cb.compensate()
    assert cc.key != cb.key and cc.compensated and not cb.compensated and cc.compensate(0).key == cb.key
    assert cc.merge(0).compensation == 1 and cb.compensate(2).key != cc.key
    plain = bench.indices(cb)
    comp = bench.indices(cc)
    assert not np.array_equal(comp["c2.weight"], plain["c2.weight"])  # GPTQ moved some
    np.testing.assert_array_equal(comp["emb"], plain["emb"])  # not a layer weight: its bins
    counts = bench.tensor_counts(cc)
    assert [c.tolist() for c in counts] == [np.bincount(i, minlength=cc.size).tolist() for i in comp.values()]
    raw = container.to_bytes(bench.payload(cc), coder="rans")
    state = wsc.load_state_dict(raw)
    with bench.model(cc) as working:
        for name, t in working.state_dict().items():
            assert torch.equal(state[name], t), name


def test_calibration_needs_a_layer_that_sees_inputs():
    class OnlyParam(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.randn(4, 4))

        def forward(self, x):
            return x @ self.w

    bench = Workbench(OnlyParam())
    with pytest.raises(ValueError, match="no shared weight of a Linear or Conv layer received inputs"):
        bench.calibrate([torch.randn(2, 4)])
    with pytest.raises(RuntimeError, match="calibrate"):
        bench.indices(bench.codebook(4).compensate())


@pytest.mark.parametrize("where", ["front", "search"])
def test_compress_with_calibration_on_real_digits(trained_mlp, digits, digits_eval, tmp_path, where):
    """On a real MLP and real digits: the final front is scored again with compensation; at a
    small codebook compensation scores better than plain rounding; with compensate="search"
    the search itself picks compensated candidates; the chosen solution is saved and read back
    with the scores the report gives."""
    x, _ = digits
    fast = dict(k_range=(2, 48), pop_size=8, generations=4, progress=False)
    r = wsc.compress(copy.deepcopy(trained_mlp), digits_eval, calibration=[x[:500:2]], compensate=where, **fast)
    assert r.settings["compensated"] == ["fc1.weight", "fc2.weight"] and r.settings["compensate"] == where
    assert r.front_compensated and all(s.compensated for s in r.front_compensated)
    assert set(map(id, r.front_compensated)) <= set(map(id, r.front))
    searched = [s for s in r.front_before if s.compensated]
    if where == "front":
        assert not searched
        plain = {s.codebook.key: s for s in r.front_before + r.front_after}
        gains = [s.search_score - plain[s.codebook.key[:3]].search_score for s in r.front_compensated
                 if s.codebook.key[:3] in plain]  # not those merged further
        assert max(gains) > 0.01  # the same values, better placed
    else:
        assert searched  # GPTQ wins at small codebooks, so the search front holds compensated ones
    chosen = r.choose()
    r.save(tmp_path / "m.wsc", chosen)
    model = wsc.load_into(copy.deepcopy(trained_mlp), tmp_path / "m.wsc")
    assert digits_eval.heldout(model) == pytest.approx(chosen.heldout_score)
    d = r.to_dict()
    assert len(d["front_compensated"]) == len(r.front_compensated) and "compensated" in d["chosen"]
    with pytest.raises(TypeError, match="calibration must be an iterable"):
        wsc.compress(trained_mlp, digits_eval, calibration=3, **fast)
    with pytest.raises(ValueError, match="compensate must be one of"):
        wsc.compress(trained_mlp, digits_eval, calibration=[x[:10]], compensate="all", **fast)


class Recurrent(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.gru = nn.GRU(3, 5, batch_first=True)
        self.lstm = nn.LSTM(5, 4)  # time first
        self.deep = nn.GRU(4, 4, num_layers=2)  # two layers: not compensated

    def forward(self, x):
        y, _ = self.gru(x)
        h0 = (torch.ones(1, len(x), 4), torch.zeros(1, len(x), 4))
        z, _ = self.lstm(y.transpose(0, 1), h0)
        return self.deep(z)[0]


def test_second_moments_of_recurrent_layers():
    """weight_ih_l0 sees the input at every step; weight_hh_l0 the hidden state before it (the
    initial state, given or zero, then the outputs but the last)."""
    m = Recurrent()
    x = torch.randn(6, 7, 3)
    got = compensate.second_moments(m, [n for n, _ in m.named_parameters()], [x])
    assert sorted(got) == ["gru.weight_hh_l0", "gru.weight_ih_l0", "lstm.weight_hh_l0", "lstm.weight_ih_l0"]

    def moment(rows):
        rows = rows.reshape(-1, rows.shape[-1]).double()
        return rows.T @ rows / len(rows)

    with torch.no_grad():
        y, _ = m.gru(x)
        z, _ = m.lstm(y.transpose(0, 1), (torch.ones(1, 6, 4), torch.zeros(1, 6, 4)))
    torch.testing.assert_close(got["gru.weight_ih_l0"][0], moment(x))
    torch.testing.assert_close(got["gru.weight_hh_l0"][0], moment(torch.cat([torch.zeros(6, 1, 5), y[:, :-1]], 1)))
    torch.testing.assert_close(got["lstm.weight_ih_l0"][0], moment(y))
    torch.testing.assert_close(got["lstm.weight_hh_l0"][0], moment(torch.cat([torch.ones(1, 6, 4), z[:-1]], 0)))


@pytest.mark.parametrize("conv", [nn.Conv2d(3, 4, (2, 3), padding="same", padding_mode="reflect"),
                                  nn.Conv2d(3, 4, 3, padding="valid", stride=2),
                                  nn.Conv1d(3, 4, 4, padding="same", dilation=2, padding_mode="circular")],
                         ids=["same-reflect", "valid", "1d-same-circular"])
def test_patches_reproduce_the_convolution(conv):
    """Any padding (numbers, 'same' with its odd extra on the right, 'valid') and padding
    mode: the unfolded patches times the weight give the layer's output."""
    x = torch.randn(2, 3, 7, 9) if isinstance(conv, nn.Conv2d) else torch.randn(2, 3, 11)
    p = compensate._patches(conv, x)  # [samples, 1, fan_in]
    with torch.no_grad():
        want = conv(x) - conv.bias.reshape(-1, *[1] * (x.dim() - 2))
    got = p[:, 0] @ conv.weight.reshape(4, -1).T  # [N * positions, out]
    torch.testing.assert_close(got, want.reshape(2, 4, -1).transpose(1, 2).reshape(-1, 4), rtol=1e-5, atol=1e-5)


def test_calibration_leaves_the_model_as_it_was():
    """A model in train mode: calibration runs it in eval mode (BatchNorm statistics do not
    move, dropout is off) and gives the mode back; batches are moved to the model's device;
    a tensor of inputs is batched; a LSTM's initial state given by keyword is used."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 3)).train()
    bench = Workbench(model, params="weights")
    before = {n: t.clone() for n, t in bench._base.state_dict().items()}
    bench.calibrate([torch.randn(16, 4) * 5 + 3])
    assert all(torch.equal(before[n], t) for n, t in bench._base.state_dict().items())
    assert bench._base.training and model.training
    u = bench.factors["3.weight"].u
    bench.calibrate([torch.randn(16, 4) * 5 + 3])  # the same again: eval mode is deterministic
    assert u.shape == (1, 8, 8)

    class Seq(nn.Module):
        def __init__(self):
            super().__init__()
            self.lstm = nn.LSTM(2, 3, batch_first=True)

        def forward(self, x):
            h0 = (torch.full((1, len(x), 3), 2.0), torch.zeros(1, len(x), 3))
            return self.lstm(x, hx=h0)[0]

    seq = Seq()
    x = torch.randn(4, 5, 2)
    got = compensate.second_moments(seq, ["lstm.weight_hh_l0"], [x])
    with torch.no_grad():
        out = seq(x)
    prev = torch.cat([torch.full((4, 1, 3), 2.0), out[:, :-1]], 1).reshape(-1, 3).double()
    torch.testing.assert_close(got["lstm.weight_hh_l0"][0], prev.T @ prev / len(prev))
    with pytest.raises(ValueError, match=r"level must be an int in \[0, 3\]"):
        bench.codebook(4).compensate(4)


def test_compress_takes_a_tensor_of_calibration_inputs(trained_mlp, digits, digits_eval):
    x, _ = digits
    r = wsc.compress(copy.deepcopy(trained_mlp), digits_eval, calibration=x[:300], k_range=(2, 16), pop_size=4,
                     generations=2, progress=False)
    assert r.settings["compensated"] == ["fc1.weight", "fc2.weight"] and r.front_compensated
