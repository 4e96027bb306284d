"""CUDA-specific checks: device discovery without a GPU, the device binning rule and Huffman chunk
decoder (also run on the host), every kernel tier and memory-access path, error reporting,
streams and devices, Huffman decoding fused with the gather.

The oracle tests of test_ops.py and the opchecks of test_opcheck.py also run on CUDA; this file
covers what only the CUDA kernels have. GPU tests are skipped with the reason where none is usable.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import wsc
from wsc import _cuda, huffman
from wsc import reference as ref
from wsc._native import _C
from conftest import as_dtype, assert_sums_close, host, needs_cuda, weights_like
from test_huffman import mutate, native_or_error, symbols

needs_cuda_build = pytest.mark.skipif(not _C.built_with_cuda, reason="wsc was built without CUDA kernels")

DTYPES = [torch.float32, torch.float16, torch.bfloat16]


# ---------------------------------------------------------------- no GPU needed
def test_device_count_never_raises():
    n = _C.cuda_device_count()
    assert isinstance(n, int) and n >= 0
    assert isinstance(_C.cuda_runtime_info(), str)
    if not _C.built_with_cuda:
        assert n == 0


def test_cuda_available_agrees_with_reason():
    assert wsc.cuda_available() == (_cuda.unavailable_reason() is None)


def test_cuda_tensor_with_a_cpu_only_build_fails_clearly(monkeypatch):
    monkeypatch.setattr(_C, "built_with_cuda", False)
    assert "built without CUDA" in _cuda.unavailable_reason()
    with pytest.raises(RuntimeError, match="wsc was built without CUDA kernels"):
        _cuda.launch("cuda_range", torch.device("cuda", 0), 0, 0, 1)


def _host_rule(x: np.ndarray, lo: float, hi: float, k: int) -> np.ndarray:
    x = np.ascontiguousarray(x, dtype=np.float32)
    out = np.empty(x.shape, dtype=np.int32)
    _C.cuda_bin_rule_on_host(x.ctypes.data, x.size, lo, hi, k, out.ctypes.data)
    return out


@needs_cuda_build
@pytest.mark.parametrize("k", [2, 3, 10, 255, 256, 257, 4096, 65536])
def test_device_bin_rule_matches_reference_on_host(k):
    """The rule the CUDA kernels evaluate (bin_rule.cuh), run on the host: equal to the reference."""
    x = weights_like(200_003, seed=k)
    lo, hi = float(x.min()), float(x.max())
    width = (np.float64(hi) - np.float64(lo)) / k
    edges = (lo + np.arange(k + 1) * width).astype(np.float32)
    near = np.concatenate([edges, np.nextafter(edges, np.float32(-np.inf)), np.nextafter(edges, np.float32(np.inf)),
                           np.float32([lo, hi, lo - 1, hi + 1, -3e38, 3e38, 0.0, -0.0])])
    for values in (x, near):
        np.testing.assert_array_equal(_host_rule(values, lo, hi, k), ref.bin_index(values, lo, hi, k))


@needs_cuda_build
def test_device_bin_rule_constant_range_and_nan():
    x = np.float32([0.5, -1.0, 2.0, np.nan, np.inf])
    np.testing.assert_array_equal(_host_rule(x, 0.5, 0.5, 7), 0)
    assert _host_rule(np.float32([np.nan]), -1.0, 1.0, 8)[0] == 0  # NaN never indexes out of bounds


@needs_cuda_build
@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(width=32, allow_nan=False, allow_infinity=False), min_size=2, max_size=64), st.integers(2, 65536))
def test_device_bin_rule_property(values, k):
    x = np.array(values, dtype=np.float32)
    lo, hi = float(x.min()), float(x.max())
    np.testing.assert_array_equal(_host_rule(x, lo, hi, k), ref.bin_index(x, lo, hi, k))


# ---------------------------------------------------------------- GPU
@needs_cuda
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("k", [2, 16, 63, 64, 65, 256, 3072, 3073, 65536])
def test_bin_uniform_every_tier(dtype, k):
    """Private-column (k <= 64), shared-aggregated (k <= 3072) and global-aggregated kernels."""
    t = as_dtype(weights_like(1_000_003, seed=k), dtype)
    lo, hi = wsc.ops.range(t)
    got = wsc.ops.bin_uniform(t.cuda(), k, lo, hi)
    idx, counts, _ = ref.bin_uniform(t.float().numpy(), k, lo, hi)
    np.testing.assert_array_equal(host(got.indices).astype(np.int64), idx.astype(np.int64))
    np.testing.assert_array_equal(host(got.counts), counts)
    assert_sums_close(host(got.sums), t.float().numpy(), idx, k, "cuda")


@needs_cuda
@pytest.mark.parametrize("offset", [1, 3, 8])
def test_misaligned_views_take_the_scalar_path(offset):
    """Views that start off a 16-byte boundary are read and written element by element."""
    n = 100_000
    base = torch.from_numpy(weights_like(n + offset, seed=offset)).cuda()
    x = base[offset:]
    lo, hi = wsc.ops.range(x)
    assert (lo, hi) == ref.range(x.cpu().numpy())
    idx_buf = torch.empty(n + offset, dtype=torch.uint8, device="cuda")
    b = wsc.ops.bin_uniform(x, 200, lo, hi, out=idx_buf[offset:])
    want_idx, want_counts, _ = ref.bin_uniform(x.cpu().numpy(), 200, lo, hi)
    np.testing.assert_array_equal(host(idx_buf[offset:]), want_idx)
    np.testing.assert_array_equal(host(b.counts), want_counts)
    codebook = torch.linspace(-1, 1, 200, device="cuda")
    out = torch.empty(n + offset, dtype=torch.float16, device="cuda")
    wsc.ops.share(x, lo, hi, codebook, out=out[offset:])
    want = torch.from_numpy(ref.share(x.cpu().numpy(), lo, hi, codebook.cpu().numpy())).half()
    assert torch.equal(out[offset:].cpu(), want)
    g = torch.empty(n + offset, dtype=torch.bfloat16, device="cuda")
    wsc.ops.gather(idx_buf[offset:], codebook, out=g[offset:])
    assert torch.equal(g[offset:].cpu(), torch.from_numpy(ref.gather(want_idx, codebook.cpu().numpy())).bfloat16())


@needs_cuda
@pytest.mark.parametrize("k", [300, 20_000])
@pytest.mark.parametrize("out_dtype", DTYPES, ids=str)
def test_gather_and_share_global_table(k, out_dtype):
    """Codebooks too large for shared memory are read from global memory and converted per element."""
    rng = np.random.default_rng(k)
    codebook = rng.normal(size=k).astype(np.float32)
    codebook[:4] = [np.inf, -np.inf, np.nan, 6.5e4]  # conversions of special values match the CPU
    idx = rng.integers(0, k, size=50_001).astype(np.uint16)
    cb = torch.from_numpy(codebook)
    cpu = wsc.ops.gather(torch.from_numpy(idx), cb, dtype=out_dtype)
    gpu = wsc.ops.gather(torch.from_numpy(idx).cuda(), cb.cuda(), dtype=out_dtype)
    assert torch.equal(_bits(gpu), _bits(cpu))
    x = torch.from_numpy(weights_like(50_001, seed=k)).to(out_dtype)
    lo, hi = wsc.ops.range(x)
    assert torch.equal(_bits(wsc.ops.share(x.cuda(), lo, hi, cb.cuda())), _bits(wsc.ops.share(x, lo, hi, cb)))


def _bits(t: torch.Tensor) -> torch.Tensor:
    """The raw bits of a float tensor, on the CPU (NaN == NaN when the bits agree)."""
    return t.cpu().view(torch.int32 if t.dtype == torch.float32 else torch.int16)


@needs_cuda
@pytest.mark.parametrize("op", ["range", "bin", "share"])
def test_nonfinite_reported_with_count_and_first_index(op):
    x = torch.zeros(1_000_000, device="cuda")
    x[[654_321, 17_000, 999_999]] = torch.tensor([float("nan"), float("inf"), -float("inf")], device="cuda")
    with pytest.raises(ValueError, match=r"3 NaN/Inf value\(s\); the first is at flat index 17000"):
        if op == "range":
            wsc.ops.range(x)
        elif op == "bin":
            wsc.ops.bin_uniform(x, 300, -1.0, 1.0)
        else:
            wsc.ops.share(x, -1.0, 1.0, torch.zeros(4, device="cuda"))
    # the device is still usable after the error
    assert wsc.ops.range(torch.ones(3, device="cuda")) == (1.0, 1.0)


@needs_cuda
def test_empty_inputs():
    x = torch.empty(0, device="cuda")
    b = wsc.ops.bin_uniform(x, 5, -1.0, 1.0)
    assert b.indices.numel() == 0 and host(b.counts).tolist() == [0] * 5 and host(b.sums).tolist() == [0.0] * 5
    assert wsc.ops.gather(b.indices, torch.ones(5, device="cuda")).numel() == 0
    assert wsc.ops.share(x, -1.0, 1.0, torch.ones(5, device="cuda")).numel() == 0
    with pytest.raises(ValueError, match="x is empty"):
        wsc.ops.range(x)


@needs_cuda
def test_mixed_devices_are_rejected_naming_the_argument():
    x = torch.ones(10, device="cuda")
    with pytest.raises(ValueError, match=r"codebook must be on the same device as x \(cuda:0\); got cpu"):
        wsc.ops.share(x, 0.0, 1.0, torch.zeros(4))
    with pytest.raises(ValueError, match=r"codebook must be on the same device as indices \(cuda:0\); got cpu"):
        wsc.ops.gather(torch.zeros(10, dtype=torch.uint8, device="cuda"), np.zeros(4, dtype=np.float32))
    with pytest.raises(ValueError, match=r"indices must be on the same device as x"):
        wsc.ops.bin_uniform(x, 4, 0.0, 1.0, out=torch.empty(10, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"out must be on the same device as indices"):
        wsc.ops.gather(torch.zeros(10, dtype=torch.uint8, device="cuda"), torch.ones(4, device="cuda"),
                       out=torch.empty(10))


@needs_cuda
def test_runs_on_the_current_stream():
    x = torch.from_numpy(weights_like(2_000_001, seed=3)).cuda()
    want = wsc.ops.bin_uniform(x, 100, -1.0, 1.0)
    s = torch.cuda.Stream()
    s.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(s):
        y = x * 1.0  # queued on s: the kernel must see it finished
        got = wsc.ops.bin_uniform(y, 100, -1.0, 1.0)
        shared = wsc.ops.share(y, -1.0, 1.0, torch.linspace(-1, 1, 100, device="cuda"))
    torch.cuda.current_stream().wait_stream(s)
    assert torch.equal(got.indices, want.indices) and torch.equal(got.counts, want.counts)
    assert torch.equal(shared, wsc.ops.gather(want.indices, torch.linspace(-1, 1, 100, device="cuda")))


@needs_cuda
@pytest.mark.skipif(torch.cuda.device_count() < 2 if torch.cuda.is_available() else True,
                    reason="needs two CUDA devices")
def test_tensor_on_a_device_that_is_not_current():
    x = torch.from_numpy(weights_like(100_003, seed=4)).to("cuda:1")
    with torch.cuda.device(0):
        b = wsc.ops.bin_uniform(x, 64)
    assert b.indices.device == x.device
    np.testing.assert_array_equal(host(b.indices), ref.bin_uniform(x.cpu().numpy(), 64, b.lo, b.hi)[0])


@needs_cuda
def test_more_than_2_pow_31_elements():
    """64-bit indexing: results and the first NaN position past 2^31."""
    if torch.cuda.get_device_properties(0).total_memory < 24 * 2**30:
        pytest.skip("needs 24 GiB of GPU memory")
    n = 2**31 + 100
    x = torch.zeros(n, dtype=torch.float16, device="cuda")
    x[-3:] = torch.tensor([-1.0, 0.75, 1.0], dtype=torch.float16, device="cuda")
    assert wsc.ops.range(x) == (-1.0, 1.0)
    b = wsc.ops.bin_uniform(x, 4, -1.0, 1.0)
    assert host(b.indices[-4:]).tolist() == [2, 0, 3, 3]
    assert host(b.counts).tolist() == [1, 0, n - 3, 2]
    x[2**31 + 50] = float("nan")
    with pytest.raises(ValueError, match=r"1 NaN/Inf value\(s\); the first is at flat index 2147483698"):
        wsc.ops.range(x)
    del x, b
    torch.cuda.empty_cache()


# ---------------------------------------------------------------- Huffman decoding


def _host_decode(s: huffman.HuffmanStream, return_bits: bool = False):
    """The CUDA chunk decoder run on the host (cuda_huffman_decode_on_host)."""
    data, offsets, lengths = (np.ascontiguousarray(a) for a in (s.data, s.chunk_offsets, s.lengths))
    out = np.zeros(s.n_symbols, dtype=np.uint16)
    bits = _C.cuda_huffman_decode_on_host(data.ctypes.data, data.size, offsets.ctypes.data, offsets.size - 1,
                                          lengths.ctypes.data, lengths.size, s.n_symbols, s.chunk_size,
                                          out.ctypes.data)
    return (out, bits) if return_bits else out


def _host_or_error(s: huffman.HuffmanStream):
    try:
        return _host_decode(s)
    except ValueError as exc:
        return exc


def _long_code_stream(max_len: int) -> tuple[np.ndarray, huffman.HuffmanStream]:
    """30 symbols with Fibonacci counts: codes up to 29 bits, far past the 11-bit table."""
    fib = [1, 1]
    while len(fib) < 30:
        fib.append(fib[-1] + fib[-2])
    counts = np.array(fib[::-1], dtype=np.int64)
    x = np.repeat(np.arange(30, dtype=np.uint8), counts // 10 + 1)
    np.random.default_rng(0).shuffle(x)
    return x, huffman.encode(x, counts, max_len=max_len, chunk_size=5000)


STREAMS = [(k, kind, cs) for k in (2, 16, 256, 3000, 65536) for kind in ("uniform", "skewed", "one")
           for cs in (1, 7, 4096)]


@needs_cuda_build
@pytest.mark.parametrize("k,kind,chunk_size", STREAMS)
def test_device_huffman_decoder_on_host(k, kind, chunk_size):
    x = symbols(k, 20_011, kind, seed=k + chunk_size)
    s = huffman.encode(x, k, chunk_size=chunk_size)
    got, bits = _host_decode(s, return_bits=True)
    np.testing.assert_array_equal(got, x)
    assert bits == int(s.lengths.astype(np.int64)[x].sum())  # what the CPU's decode_gather reports


@needs_cuda_build
@pytest.mark.parametrize("max_len", [12, 14, 20, 29, 32])
def test_device_huffman_decoder_long_codes_on_host(max_len):
    x, s = _long_code_stream(max_len)
    assert s.lengths.max() > 11
    np.testing.assert_array_equal(_host_decode(s), x)


@needs_cuda_build
@pytest.mark.parametrize("k,max_len", [(3, None), (12, None), (40, None), (300, None), (40, 16)])
def test_device_huffman_decoder_fuzz_on_host(k, max_len):
    """Corrupt streams: the device decoder fails exactly when the CPU decoder does, else agrees."""
    rng = np.random.default_rng(100 + k)
    raised = 0
    for trial in range(1000):
        n = int(rng.integers(1, 200))
        x = symbols(k, n, "skewed" if trial % 2 else "uniform", seed=trial)
        s = huffman.encode(x, k, chunk_size=int(rng.choice([5, 16, 50, 1000])), max_len=max_len)
        bad = mutate(s, rng)
        want = native_or_error(bad)
        if isinstance(want, ValueError):
            raised += 1
            assert isinstance(_host_or_error(bad), ValueError), (trial, want)
        else:
            np.testing.assert_array_equal(_host_or_error(bad), want)
    assert raised > 400


def test_decode_gather_on_the_cpu():
    x = symbols(300, 10_001, "skewed", seed=2)
    s = huffman.encode(x, 300, chunk_size=999)
    codebook = np.random.default_rng(0).normal(size=300).astype(np.float32)
    got = huffman.decode_gather(s, codebook, dtype=torch.bfloat16)
    assert got.dtype == torch.bfloat16 and got.shape == (x.size,)
    assert torch.equal(got, torch.from_numpy(codebook[x.astype(np.int64)]).bfloat16())
    out = torch.empty(x.size)
    assert huffman.decode_gather(s, torch.from_numpy(codebook), out=out) is out
    with pytest.raises(ValueError, match=r"decoded index value\(s\) >= codebook size 10"):
        huffman.decode_gather(s, codebook[:10])
    with pytest.raises(ValueError, match="out must have stream.n_symbols = 10001 elements"):
        huffman.decode_gather(s, codebook, out=torch.empty(3))


@needs_cuda
@pytest.mark.parametrize("k,kind,chunk_size", STREAMS)
def test_huffman_decode_on_the_gpu(k, kind, chunk_size):
    x = symbols(k, 20_011, kind, seed=k + chunk_size)
    s = huffman.encode(x, k, chunk_size=chunk_size)
    got = huffman.decode(s, device="cuda")
    assert got.device.type == "cuda" and got.dtype == (torch.uint8 if k <= 256 else torch.uint16)
    np.testing.assert_array_equal(host(got), x)
    out = torch.zeros(x.size, dtype=torch.uint16, device="cuda")
    assert huffman.decode(s, out=out) is out
    np.testing.assert_array_equal(host(out), x)


@needs_cuda
@pytest.mark.parametrize("max_len", [14, 29, 32])
def test_huffman_decode_long_codes_on_the_gpu(max_len):
    x, s = _long_code_stream(max_len)
    np.testing.assert_array_equal(host(huffman.decode(s, device="cuda")), x)


@needs_cuda
@pytest.mark.parametrize("k", [16, 300, 20_000])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_huffman_decode_gather_on_the_gpu(k, dtype):
    """Fused decode + gather equals the CPU's decode then gather, bit for bit."""
    x = symbols(k, 100_003, "skewed", seed=k)
    s = huffman.encode(x, k, chunk_size=4096)
    codebook = torch.from_numpy(np.random.default_rng(k).normal(size=k).astype(np.float32))
    want = huffman.decode_gather(s, codebook, dtype=dtype)
    got, bits = huffman.decode_gather(s, codebook.cuda(), dtype=dtype, return_bits=True)
    assert got.device.type == "cuda" and got.dtype == dtype
    assert torch.equal(_bits(got), _bits(want))
    assert bits == huffman.decode_gather(s, codebook, dtype=dtype, return_bits=True)[1]


@needs_cuda
def test_huffman_corrupt_streams_on_the_gpu():
    rng = np.random.default_rng(7)
    raised = 0
    for trial in range(300):
        x = symbols(40, int(rng.integers(1, 300)), "skewed", seed=trial)
        s = huffman.encode(x, 40, chunk_size=int(rng.choice([5, 50, 1000])))
        bad = mutate(s, rng)
        want = native_or_error(bad)
        try:
            got = host(huffman.decode(bad, device="cuda"))
        except ValueError as exc:
            got = exc
        if isinstance(want, ValueError):
            raised += 1
            assert isinstance(got, ValueError), (trial, want)
        else:
            np.testing.assert_array_equal(got, want)
    assert raised > 100
    x = symbols(40, 1000, "skewed")
    s = huffman.encode(x, 40, chunk_size=100)
    data = s.data.copy()
    data[s.chunk_offsets[3]:s.chunk_offsets[4]] = 0xFF
    with pytest.raises(ValueError, match=r"chunk\(s\) are corrupt .* the first is chunk 3"):
        huffman.decode(dataclasses.replace(s, data=data), device="cuda")


@needs_cuda
def test_huffman_decode_gather_beyond_codebook_on_the_gpu():
    """A symbol >= the codebook size is counted (its read clamped) and raises, as on the CPU."""
    s = huffman.encode(np.array([0, 1, 2, 1, 2], dtype=np.uint8), 3)
    with pytest.raises(ValueError, match=r"2 decoded index value\(s\) >= codebook size 2"):
        huffman.decode_gather(s, torch.zeros(2, device="cuda"))
    with pytest.raises(ValueError, match=r"out must be on the same device as codebook"):
        huffman.decode_gather(s, torch.zeros(3, device="cuda"), out=torch.empty(5))


@needs_cuda
def test_decode_gather_op_on_the_gpu():
    """torch.ops.wsc.decode_gather with every tensor on the GPU: opcheck and equality with the CPU."""
    x = symbols(16, 5000, "skewed")
    s = huffman.encode(x, 16, chunk_size=512)
    cpu_args = (torch.from_numpy(s.data.copy()), torch.from_numpy(s.lengths.copy()),
                torch.from_numpy(s.chunk_offsets.copy()), s.n_symbols, s.chunk_size, torch.randn(16))
    args = tuple(a.cuda() if isinstance(a, torch.Tensor) else a for a in cpu_args)
    torch.library.opcheck(torch.ops.wsc.decode_gather.default, (*args, torch.bfloat16))
    torch.library.opcheck(torch.ops.wsc.decode_gather_into.default,
                          (*args, torch.empty(5000, device="cuda")))
    got = torch.ops.wsc.decode_gather(*args, torch.float16)
    assert got.device.type == "cuda"
    assert torch.equal(got.cpu(), torch.ops.wsc.decode_gather(*cpu_args, torch.float16))
    with pytest.raises(ValueError, match=r"lengths must be on the same device as data"):
        torch.ops.wsc.decode_gather(args[0], cpu_args[1], *args[2:], torch.float32)
