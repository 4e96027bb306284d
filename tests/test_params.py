"""Which tensors are shared: by parameter rank, 'all', predicates; tied tensors stored once."""

from __future__ import annotations

import pytest
import torch

from wsc.params import select


class Net(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = torch.nn.Embedding(20, 8)
        self.conv = torch.nn.Conv1d(8, 8, 3)
        self.bn = torch.nn.BatchNorm1d(8)
        self.custom = torch.nn.Parameter(torch.randn(4, 4))  # a custom module's matrix
        self.scale = torch.nn.Parameter(torch.ones(8))
        self.head = torch.nn.Linear(8, 20)
        self.head.weight = self.emb.weight  # tied
        self.register_buffer("table", torch.randn(3, 3))


def test_weights_are_the_floating_parameters_of_rank_two_or_more():
    sel = select(Net(), "weights")
    assert sel.shared == ("custom", "emb.weight", "conv.weight")
    assert sel.aliases == {"head.weight": "emb.weight"}
    assert "bn.num_batches_tracked" in sel.unshared and "table" in sel.unshared
    assert set(sel.shared) | set(sel.unshared) | set(sel.aliases) == set(sel.order)


def test_all_takes_floating_buffers_but_never_integers():
    sel = select(Net(), "all")
    assert "bn.running_var" in sel.shared and "table" in sel.shared and "conv.bias" in sel.shared
    assert sel.unshared == ("bn.num_batches_tracked",)


def test_predicate():
    sel = select(Net(), lambda name, t: name.startswith("conv"))
    assert sel.shared == ("conv.weight", "conv.bias")


def test_bad_params():
    with pytest.raises(ValueError, match="'weights', 'all'"):
        select(Net(), "biases")
    with pytest.raises(TypeError):
        select(Net(), 3)
