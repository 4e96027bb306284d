"""Fixtures of the pipeline tests: a small real model on real data (scikit-learn's 8x8 digits)."""

from __future__ import annotations

import copy
import json
import math
import zlib

import pytest
import safetensors.torch
import torch


class DigitsMLP(torch.nn.Module):
    def __init__(self, hidden: int = 32):
        super().__init__()
        self.fc1 = torch.nn.Linear(64, hidden)
        self.fc2 = torch.nn.Linear(hidden, 10)

    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x.reshape(len(x), -1))))


@pytest.fixture(scope="session")
def digits():
    """(inputs float32 [1797, 64], labels int64) of scikit-learn's real handwritten digits."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = torch.tensor(d.data / 16.0, dtype=torch.float32)
    return x, torch.tensor(d.target, dtype=torch.int64)


@pytest.fixture(scope="session")
def trained_mlp(digits):
    """A small MLP trained on the first 1,000 digits (deterministic, about a second)."""
    torch.manual_seed(0)
    x, y = digits
    model = DigitsMLP()
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(150):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x[:1000]), y[:1000]).backward()
        opt.step()
    return model.eval()


@pytest.fixture
def mlp(trained_mlp):
    return copy.deepcopy(trained_mlp)


@pytest.fixture(scope="session")
def digits_eval(digits):
    """Accuracy on the 797 digits the model never saw: 300 to search, the rest held out."""
    from wsc.evaluate import Accuracy

    x, y = digits
    return Accuracy((x[1000:], y[1000:]), search_size=300, seed=0)


def assert_state_equal(a: dict, b: dict) -> None:
    assert list(a) == list(b)
    for name in a:
        assert a[name].dtype == b[name].dtype, name
        assert torch.equal(a[name], b[name]), name




def resave(meta: dict, tensors: dict) -> bytes:
    """A .wsc file of ``meta`` and ``tensors`` with the metadata inline and its checksum right
    (how tests build files that lie in one place only)."""
    text = json.dumps(meta)
    return safetensors.torch.save({k: v.clone() for k, v in tensors.items()},
                                  metadata={"wsc": text, "wsc.crc32": str(zlib.crc32(text.encode()))})


def spelled_out(meta: dict) -> dict:
    """A version 7 metadata with what version 7 implies written out, as earlier versions
    record it (dtype, shared, numel, a one-chunk rANS stream's chunk size): for tests that
    relabel a file as an earlier version to reach that version's checks."""
    for e in meta["tensors"]:
        if "alias_of" in e:
            continue
        e.setdefault("dtype", "float32")
        e["shared"] = "crc32" in e
        if e["shared"]:
            e["numel"] = math.prod(e["shape"])
            if "states" in e:
                e.setdefault("chunk_size", e["numel"])
    return meta
