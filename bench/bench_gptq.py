"""GPTQ's column loop: the native block kernel against its numpy twin, and a whole layer.

Run: python -m pytest bench/bench_gptq.py --benchmark-columns=median,iqr,rounds
One block of 128 columns over 300 rows (LeNet-300-100's first layer has 300 rows of 784
inputs), 16 values, rate 0.1; then that whole layer through compensate.assign from its
factor (what the search runs per candidate), on one thread.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import wsc
from wsc import compensate, reference


@pytest.fixture(scope="module")
def layer():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 784)) @ rng.normal(size=(784, 784)) * 0.05
    w = torch.from_numpy(rng.laplace(0, 0.05, size=(300, 784)))
    h = torch.from_numpy(x.T @ x / len(x))[None]
    values = torch.linspace(float(w.min()), float(w.max()), 16, dtype=torch.float64)
    return w, compensate.factor(h), values


@pytest.fixture(scope="module")
def block(layer):
    w, f, values = layer
    u = f.u[..., :128, :128].contiguous()
    pivots = torch.diagonal(u, dim1=1, dim2=2).contiguous()
    bits = compensate.code_lengths(w, values)
    return w[None, :, :128].contiguous(), u, pivots, values, bits


@pytest.fixture(autouse=True)
def one_thread():
    torch_threads = torch.get_num_threads()
    torch.set_num_threads(1)
    wsc.set_num_threads(1)
    yield
    wsc.set_num_threads(0)
    torch.set_num_threads(torch_threads)


def test_gptq_block_native(benchmark, block):
    got = benchmark(compensate._solve_block, *block, 0.1)
    want = reference.gptq_block(*(t.numpy() for t in block), 0.1)
    assert np.array_equal(got[0].numpy(), want[0])


def test_gptq_block_numpy(benchmark, block):
    benchmark(reference.gptq_block, *(t.numpy() for t in block), 0.1)


def test_gptq_layer(benchmark, layer):
    w, f, values = layer
    q = benchmark(compensate.assign, w, f, values, 0.1)
    assert q.shape == w.shape
