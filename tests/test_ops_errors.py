"""Bad input gets a clear error naming the argument; NaN/Inf are reported with count and position."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import wsc


@pytest.mark.parametrize("op", ["range", "bin", "share"])
def test_nonfinite_input_is_reported_with_count_and_first_index(op):
    x = np.zeros(1000, dtype=np.float32)
    x[[17, 400]] = [np.nan, np.inf]
    with pytest.raises(ValueError, match=r"2 NaN/Inf value\(s\); the first is at flat index 17"):
        if op == "range":
            wsc.ops.range(x)
        elif op == "bin":
            wsc.ops.bin_uniform(x, 4, -1.0, 1.0)
        else:
            wsc.ops.share(x, -1.0, 1.0, np.zeros(4, dtype=np.float32))


@pytest.mark.parametrize("k", [1, 0, -3, 65537])
def test_k_out_of_range(k):
    with pytest.raises(ValueError, match=r"k must be in \[2, 65536\]"):
        wsc.ops.bin_uniform(np.ones(3, dtype=np.float32), k)


def test_k_wrong_type():
    with pytest.raises(TypeError, match="k must be an int"):
        wsc.ops.bin_uniform(np.ones(3, dtype=np.float32), 4.0)


@pytest.mark.parametrize("bad", [np.arange(4, dtype=np.int32), np.ones(4, dtype=np.float64), np.ones(4, dtype=bool)])
def test_wrong_dtype_names_argument(bad):
    with pytest.raises(TypeError, match="x must have dtype float32, float16, bfloat16"):
        wsc.ops.bin_uniform(bad, 4)


def test_non_contiguous_input():
    x = np.ones((4, 4), dtype=np.float32)[:, ::2]
    with pytest.raises(ValueError, match="x must be C-contiguous"):
        wsc.ops.range(x)
    t = torch.ones(4, 4)[:, ::2]
    with pytest.raises(ValueError, match="x must be contiguous"):
        wsc.ops.bin_uniform(t, 4)


def test_meta_device_tensor_is_rejected_by_the_kernel_wrapper():
    with pytest.raises(ValueError, match="x must be on the cpu device"):
        wsc.ops.bin_uniform(torch.ones(4, device="meta"), 4, 0.0, 1.0)


def test_not_an_array():
    with pytest.raises(TypeError, match="x must be a torch.Tensor or numpy.ndarray, got list"):
        wsc.ops.range([1.0, 2.0])


def test_empty_input_without_bounds():
    with pytest.raises(ValueError, match="x is empty"):
        wsc.ops.bin_uniform(np.zeros(0, dtype=np.float32), 4)


@pytest.mark.parametrize("lo,hi,msg", [(1.0, 0.0, "lo must be <= hi"), (float("nan"), 1.0, "lo must be finite"),
                                       (0.0, float("inf"), "hi must be finite")])
def test_bad_bounds(lo, hi, msg):
    with pytest.raises(ValueError, match=msg):
        wsc.ops.bin_uniform(np.ones(3, dtype=np.float32), 4, lo, hi)


def test_only_one_bound():
    with pytest.raises(ValueError, match="pass both lo and hi"):
        wsc.ops.bin_uniform(np.ones(3, dtype=np.float32), 4, lo=0.0)


def test_codebook_checks():
    x = np.ones(3, dtype=np.float32)
    with pytest.raises(TypeError, match="codebook must have dtype float32"):
        wsc.ops.share(x, 0.0, 1.0, np.zeros(4, dtype=np.float64))
    with pytest.raises(ValueError, match="codebook must be 1-D"):
        wsc.ops.share(x, 0.0, 1.0, np.zeros((2, 2), dtype=np.float32))
    with pytest.raises(ValueError, match=r"len\(codebook\) must be in \[2, 65536\]"):
        wsc.ops.share(x, 0.0, 1.0, np.zeros(1, dtype=np.float32))


def test_gather_checks():
    cb = np.zeros(4, dtype=np.float32)
    with pytest.raises(TypeError, match="indices must have dtype uint8, uint16"):
        wsc.ops.gather(np.zeros(3, dtype=np.int64), cb)
    with pytest.raises(ValueError, match="out must have 3 elements"):
        wsc.ops.gather(np.zeros(3, dtype=np.uint8), cb, out=np.zeros(2, dtype=np.float32))
    with pytest.raises(TypeError, match="out must have dtype"):
        wsc.ops.gather(np.zeros(3, dtype=np.uint8), cb, out=np.zeros(3, dtype=np.float64))
    with pytest.raises(TypeError, match="dtype must be torch.float32"):
        wsc.ops.gather(np.zeros(3, dtype=np.uint8), cb, dtype=torch.int32)
    with pytest.raises(TypeError, match="dtype torch.bfloat16 needs indices as a torch tensor"):
        wsc.ops.gather(np.zeros(3, dtype=np.uint8), cb, dtype=torch.bfloat16)  # numpy has no bfloat16
    assert wsc.ops.gather(np.zeros(3, dtype=np.uint8), cb, dtype=torch.float16).dtype == np.float16
    assert wsc.ops.gather(torch.zeros(3, dtype=torch.uint8), cb, dtype=torch.bfloat16).dtype == torch.bfloat16


def test_direct_op_call_is_validated_too():
    with pytest.raises(TypeError, match="x must have dtype"):
        torch.ops.wsc.bin_uniform(torch.ones(3, dtype=torch.float64), 0.0, 1.0, 4)


def test_thread_count_api():
    wsc.set_num_threads(1)
    assert wsc.get_num_threads() == 1
    wsc.set_num_threads(0)
    assert wsc.get_num_threads() >= 1
    with pytest.raises(TypeError, match="n must be an int"):
        wsc.set_num_threads(1.5)
