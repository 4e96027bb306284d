"""torch.library.opcheck on every wsc custom op (schema, fake kernel, autograd registration), once per
device (cuda skipped with the reason where no GPU is usable)."""

from __future__ import annotations

import pytest
import torch

import wsc  # noqa: F401 - registers torch.ops.wsc
from conftest import DEVICES, weights_like


def _x(dtype, device):
    return torch.from_numpy(weights_like(3003, seed=1)).to(dtype).reshape(3, 7, 143).to(device)


CASES = {
    "range": lambda d, dev: (torch.ops.wsc.range.default, (_x(d, dev),)),
    "bin_uniform": lambda d, dev: (torch.ops.wsc.bin_uniform.default, (_x(d, dev), -0.5, 0.5, 300)),
    "gather": lambda d, dev: (torch.ops.wsc.gather.default,
                              (torch.randint(0, 16, (7, 9), dtype=torch.uint8, device=dev),
                               torch.randn(16, device=dev), d)),
    "gather_into": lambda d, dev: (torch.ops.wsc.gather_into.default,
                                   (torch.randint(0, 16, (63,), dtype=torch.uint8, device=dev),
                                    torch.randn(16, device=dev), torch.empty(63, dtype=d, device=dev))),
    "bin_uniform_into": lambda d, dev: (torch.ops.wsc.bin_uniform_into.default,
                                        (_x(d, dev), -0.5, 0.5, 300,
                                         torch.empty(3003, dtype=torch.uint16, device=dev))),
    "share_into": lambda d, dev: (torch.ops.wsc.share_into.default,
                                  (_x(d, dev), -0.5, 0.5, torch.randn(16, device=dev),
                                   torch.empty(3, 7, 143, dtype=d, device=dev))),
    "share": lambda d, dev: (torch.ops.wsc.share.default, (_x(d, dev), -0.5, 0.5, torch.randn(16, device=dev))),
}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("name", sorted(CASES))
def test_opcheck(name, dtype, device):
    op, args = CASES[name](dtype, device)
    torch.library.opcheck(op, args)


@pytest.mark.parametrize("device", DEVICES)
def test_ops_compile_with_fake_kernels(device):
    def f(x, codebook):
        idx, counts, sums = torch.ops.wsc.bin_uniform(x, -1.0, 1.0, 16)
        return torch.ops.wsc.gather(idx, codebook, torch.float32) + torch.ops.wsc.share(x, -1.0, 1.0, codebook)

    x, cb = torch.from_numpy(weights_like(1000)).to(device), torch.linspace(-1, 1, 16, device=device)
    compiled = torch.compile(f, backend="eager", fullgraph=True)
    assert torch.equal(compiled(x, cb), f(x, cb))
