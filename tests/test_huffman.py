"""Chunked canonical Huffman: native against the numpy reference bit for bit, optimality of the
code lengths, round trips, and corrupt or inconsistent streams that must raise ValueError."""

from __future__ import annotations

import dataclasses
import itertools

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import coder_inputs
import wsc
from wsc import huffman, reference
from wsc._native import U8, _C


def symbols(k: int, n: int, kind: str, seed: int = 0) -> np.ndarray:
    """n indices < k: 'uniform' (drawn by rng.integers, unlike coder_inputs.symbols), or 'skewed'
    (Laplace-like bins around the middle, rare tails) and 'one' as coder_inputs.symbols draws them."""
    if kind != "uniform":
        return coder_inputs.symbols(k, n, kind, seed)
    rng = np.random.default_rng(seed)
    return rng.integers(0, k, size=n).astype(np.uint8 if k <= 256 else np.uint16)


def cost(counts, lengths) -> int:
    return int(np.dot(np.asarray(counts, dtype=np.int64), np.asarray(lengths, dtype=np.int64)))


def check_against_reference(x: np.ndarray, k: int, chunk_size: int, max_len=None, ref_lengths=None):
    """Encode natively, compare lengths/bytes/offsets with the reference, decode and compare."""
    s = huffman.encode(x, k, chunk_size=chunk_size, max_len=max_len)
    if ref_lengths is None:
        ref_lengths = reference.huffman_code_lengths(np.bincount(x.ravel(), minlength=k), max_len or 24)
    np.testing.assert_array_equal(s.lengths, ref_lengths)
    data, offsets = reference.huffman_encode(x, s.lengths, chunk_size)
    np.testing.assert_array_equal(s.chunk_offsets, offsets)
    np.testing.assert_array_equal(s.data, data)
    out = huffman.decode(s)
    assert out.dtype == s.index_dtype
    np.testing.assert_array_equal(out, x.ravel())
    return s


# ---------------------------------------------------------------- code lengths
@pytest.mark.parametrize("k", [2, 3, 255, 256, 257, 65536])
@pytest.mark.parametrize("kind", ["uniform", "skewed", "zipf"])
def test_code_lengths_match_reference(k, kind):
    rng = np.random.default_rng(k)
    if kind == "zipf":
        counts = (1e7 / np.arange(1, k + 1) ** 1.5).astype(np.int64)
    else:
        counts = np.bincount(symbols(k, 4 * k + 7, kind, seed=k), minlength=k).astype(np.int64)
    counts[rng.random(k) < 0.1] = 0  # holes
    used = max(int(np.count_nonzero(counts)), 1)
    for max_len in sorted({max(1, int(np.ceil(np.log2(used)))), 17, 24, 32}):
        got = huffman.code_lengths(counts, max_len)
        np.testing.assert_array_equal(got, reference.huffman_code_lengths(counts, max_len))
        assert got.max() <= max_len
        assert (got[counts == 0] == 0).all()
        reference.check_huffman_lengths(got)


def test_code_lengths_unused_and_single():
    np.testing.assert_array_equal(huffman.code_lengths(np.zeros(4, np.int64)), [0, 0, 0, 0])
    np.testing.assert_array_equal(huffman.code_lengths(np.array([0, 0, 9, 0])), [0, 0, 1, 0])
    np.testing.assert_array_equal(huffman.code_lengths(np.array([5, 0, 9, 0])), [1, 0, 1, 0])


@pytest.mark.parametrize("seed", range(20))
def test_non_binding_limit_costs_what_heap_huffman_costs(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 300))
    counts = (rng.pareto(1.0 + seed / 10, size=k) * 100).astype(np.int64)
    counts[rng.random(k) < 0.2] = 0
    counts[rng.integers(0, k)] += 1
    heap = reference.huffman_lengths_unlimited(counts)
    assert heap.max() <= 32
    assert cost(counts, huffman.code_lengths(counts, 32)) == cost(counts, heap)


def test_fibonacci_counts_need_the_limit():
    fib = [1, 1]
    while len(fib) < 40:
        fib.append(fib[-1] + fib[-2])
    counts = np.array(fib, dtype=np.int64)
    assert reference.huffman_lengths_unlimited(counts).max() == 39  # unlimited Huffman is too deep
    for max_len in (6, 12, 24, 32):
        got = huffman.code_lengths(counts, max_len)
        assert got.max() == max_len
        np.testing.assert_array_equal(got, reference.huffman_code_lengths(counts, max_len))
        reference.check_huffman_lengths(got)


def brute_force_cost(counts, max_len: int) -> int:
    """Least sum(count * length) over all length vectors with lengths <= max_len and Kraft <= 1."""
    w = sorted((int(c) for c in counts if c > 0), reverse=True)
    best = None
    # an optimal code gives more frequent symbols lengths that are not longer: non-decreasing
    for lens in itertools.combinations_with_replacement(range(1, max_len + 1), len(w)):
        if sum(2.0**-l for l in lens) <= 1.0:
            c = sum(a * b for a, b in zip(w, lens))
            best = c if best is None else min(best, c)
    return best


@pytest.mark.parametrize("seed", range(30))
def test_package_merge_is_optimal_under_a_binding_limit(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(2, 9))
    counts = np.maximum(1, (rng.pareto(0.7, size=n) * 10).astype(np.int64))
    need = int(np.ceil(np.log2(n)))
    for max_len in range(max(1, need), need + 4):
        got = huffman.code_lengths(counts, max_len)
        assert got.max() <= max_len
        assert cost(counts, got) == brute_force_cost(counts, max_len)


# ---------------------------------------------------------------- streams
@pytest.mark.parametrize("k", [2, 3, 255, 256, 257, 65536])
@pytest.mark.parametrize("n", [0, 1, 7, 1001, 40_003])
@pytest.mark.parametrize("kind", ["uniform", "skewed"])
def test_stream_matches_reference(k, n, kind, threads):
    x = symbols(k, n, kind, seed=n + k)
    ref_lengths = reference.huffman_code_lengths(np.bincount(x, minlength=k), 24)
    for chunk_size in (1, 3, 64, 1000, 16384):
        if n // chunk_size > 2000:
            continue  # the reference loops per chunk
        check_against_reference(x, k, chunk_size, ref_lengths=ref_lengths)


@pytest.mark.parametrize("k,kind", [(16, "skewed"), (256, "skewed"), (65536, "uniform")])
def test_large_stream_matches_reference(k, kind, threads):
    x = symbols(k, 1_000_003, kind, seed=k)
    s = check_against_reference(x, k, 16384)
    assert s.n_chunks == 62


def test_small_length_limits_match_reference():
    x = symbols(200, 20_000, "skewed", seed=3)
    for max_len in (8, 9, 11, 12, 13, 20):
        check_against_reference(x, 200, 777, max_len=max_len)


def test_long_codes_take_the_slow_path():
    """Codes longer than the 11-bit decode table, mixed in with short ones."""
    fib = [1, 1]
    while len(fib) < 30:
        fib.append(fib[-1] + fib[-2])
    counts = np.array(fib[::-1], dtype=np.int64)  # symbol 0 most frequent
    x = np.repeat(np.arange(30, dtype=np.uint8), counts // 10 + 1)
    np.random.default_rng(0).shuffle(x)
    for max_len in (14, 20, 29, 32):
        s = huffman.encode(x, counts, max_len=max_len, chunk_size=5000)
        assert s.lengths.max() == min(max_len, 29)  # 30 Fibonacci counts: unlimited depth 29
        np.testing.assert_array_equal(huffman.decode(s), x)
        data, offsets = reference.huffman_encode(x, s.lengths, 5000)
        np.testing.assert_array_equal(s.data, data)


@pytest.mark.parametrize("k", [16, 100, 3000])
def test_bursts_of_long_codes_in_a_stream_of_short_ones(k):
    """The encoder groups symbols by the chunk's mean code length; bursts of rare symbols
    overflow a group and take the symbol-by-symbol path."""
    rng = np.random.default_rng(k)
    x = np.zeros(50_000, dtype=np.uint8 if k <= 256 else np.uint16)
    for start in rng.integers(0, x.size - 40, size=300):
        x[start : start + rng.integers(1, 40)] = rng.integers(1, k, size=1)[0]
    x[rng.random(x.size) < 0.01] = 1
    s = check_against_reference(x, k, 4096)
    assert s.lengths.max() >= 5  # a group of 14 such codes overflows the accumulator


@pytest.mark.parametrize("k", [2, 16, 300])
def test_total_bits_are_code_bits_plus_chunk_padding(k):
    x = symbols(k, 123_457, "skewed", seed=k)
    s = huffman.encode(x, k, chunk_size=999)
    lens = s.lengths.astype(np.int64)[x]
    chunk_bits = np.add.reduceat(lens, np.arange(0, x.size, 999))
    assert chunk_bits.sum() == cost(np.bincount(x, minlength=k), s.lengths)
    assert s.nbits == int(((chunk_bits + 7) // 8 * 8).sum())
    np.testing.assert_array_equal(np.diff(s.chunk_offsets), (chunk_bits + 7) // 8)


def test_single_used_symbol_costs_one_bit():
    x = np.full(1000, 3, dtype=np.uint8)
    s = check_against_reference(x, 5, 300)
    np.testing.assert_array_equal(s.lengths, [0, 0, 0, 1, 0])
    np.testing.assert_array_equal(s.chunk_offsets, [0, 38, 76, 114, 127])
    assert not s.data.any()  # the code of the only symbol is 0
    bad = s.data.copy()
    bad[5] = 0x10  # a 1 bit: no symbol has the code "1"
    with pytest.raises(ValueError, match="not a code"):
        huffman.decode(dataclasses.replace(s, data=bad))


@settings(max_examples=150, deadline=None)
@given(
    data=st.data(),
    k=st.sampled_from([2, 3, 5, 17, 255, 256, 257, 1000]),
    n=st.integers(0, 3000),
    chunk_size=st.sampled_from([1, 2, 7, 64, 333, 4096, 16384]),
    skew=st.floats(0.05, 5.0),
)
def test_round_trip_property(data, k, n, chunk_size, skew):
    rng = np.random.default_rng(data.draw(st.integers(0, 2**32 - 1)))
    w = np.exp(-np.arange(k) / (skew * k / 4)) * (rng.random(k) < data.draw(st.floats(0.05, 1.0)))
    w[rng.integers(0, k)] += 1.0
    narrow = k <= 256 and data.draw(st.booleans())
    x = rng.choice(k, size=n, p=w / w.sum()).astype(np.uint8 if narrow else np.uint16)
    used = max(len(np.unique(x)), 1)
    max_len = data.draw(st.one_of(st.none(), st.integers(max(1, int(np.ceil(np.log2(used)))), 32)))
    s = huffman.encode(x, k, chunk_size=chunk_size, max_len=max_len)
    np.testing.assert_array_equal(huffman.decode(s), x)
    ref_data, ref_offsets = reference.huffman_encode(x, s.lengths, chunk_size)
    np.testing.assert_array_equal(s.data, ref_data)
    np.testing.assert_array_equal(s.chunk_offsets, ref_offsets)


# ---------------------------------------------------------------- corrupt streams
def native_or_error(s: huffman.HuffmanStream):
    try:
        return huffman.decode(s)
    except ValueError as exc:
        return exc


def reference_or_error(s: huffman.HuffmanStream):
    try:
        return reference.huffman_decode(s.data, s.chunk_offsets, s.lengths, s.n_symbols, s.chunk_size)
    except ValueError as exc:
        return exc


def mutate(s: huffman.HuffmanStream, rng: np.random.Generator) -> huffman.HuffmanStream:
    kind = rng.integers(0, 7)
    data, offsets, lengths = s.data.copy(), s.chunk_offsets.copy(), s.lengths.copy()
    if kind <= 2 and data.size:  # flip bits in 1..3 bytes
        for _ in range(1 + kind):
            data[rng.integers(0, data.size)] ^= np.uint8(1 << rng.integers(0, 8))
    elif kind == 3 and data.size:  # truncate, the offsets follow (or not)
        cut = int(rng.integers(0, data.size))
        data = data[:cut]
        if rng.random() < 0.7:
            offsets = np.minimum(offsets, cut)
    elif kind == 4:  # move one offset
        i = int(rng.integers(0, offsets.size))
        offsets[i] += int(rng.integers(-3, 4))
    elif kind == 5:  # change one code length
        i = int(rng.integers(0, lengths.size))
        if rng.random() < 0.3:
            lengths[i] = rng.integers(0, 34)
        else:
            lengths[i] = max(0, int(lengths[i]) + int(rng.integers(-1, 2)))
    else:  # add or drop a byte at the end
        data = np.append(data, np.uint8(rng.integers(0, 256))) if rng.random() < 0.5 else data[:-1]
        if rng.random() < 0.5:
            offsets[-1] = data.size
    return dataclasses.replace(s, data=data, chunk_offsets=offsets, lengths=lengths)


@pytest.mark.parametrize("k,max_len", [(3, None), (12, None), (40, None), (300, None), (40, 16)])
def test_fuzz_corrupt_streams_raise_or_agree_with_reference(k, max_len):
    """Thousands of mutations: the native decoder raises exactly when the reference does, and
    otherwise returns the reference's symbols (Huffman has no checksum: some flips decode)."""
    rng = np.random.default_rng(k)
    raised = 0
    for trial in range(2000):
        n = int(rng.integers(1, 200))
        x = symbols(k, n, "skewed" if trial % 2 else "uniform", seed=trial)
        s = huffman.encode(x, k, chunk_size=int(rng.choice([5, 16, 50, 1000])), max_len=max_len)
        bad = mutate(s, rng)
        got, want = native_or_error(bad), reference_or_error(bad)
        if isinstance(want, ValueError):
            assert isinstance(got, ValueError), (trial, want)
            raised += 1
        else:
            assert not isinstance(got, ValueError), (trial, got)
            np.testing.assert_array_equal(got, want)
    assert raised > 1000


@pytest.mark.parametrize("seed", range(3))
def test_fuzz_large_chunks_through_the_fast_path(seed):
    """Bit flips in long chunks (the lock-step fast path) never crash; results match the reference."""
    rng = np.random.default_rng(seed)
    x = symbols(20, 3000, "skewed", seed=seed)
    s = huffman.encode(x, 20, chunk_size=700, max_len=9)
    for _ in range(60):
        data = s.data.copy()
        for _ in range(int(rng.integers(1, 4))):
            data[rng.integers(0, data.size)] ^= np.uint8(1 << rng.integers(0, 8))
        bad = dataclasses.replace(s, data=data)
        got, want = native_or_error(bad), reference_or_error(bad)
        assert isinstance(got, ValueError) == isinstance(want, ValueError)
        if not isinstance(want, ValueError):
            np.testing.assert_array_equal(got, want)


def test_native_decoder_checks_without_the_python_layer():
    """The C++ kernel rejects inconsistent offsets and lengths itself (ValueError, no crash)."""
    x = symbols(10, 500, "skewed")
    s = huffman.encode(x, 10, chunk_size=100)
    out = np.empty(500, np.uint8)

    def dec(data=s.data, offsets=s.chunk_offsets, n_chunks=5, lengths=s.lengths, n=500, cs=100):
        data, offsets, lengths = (np.ascontiguousarray(a) for a in (data, offsets, lengths))
        _C.huffman_decode(data.ctypes.data, data.size, offsets.ctypes.data, n_chunks,
                          lengths.ctypes.data, lengths.size, n, cs, out.ctypes.data, U8)

    dec()
    np.testing.assert_array_equal(out, x)
    bad = s.chunk_offsets.copy()
    bad[2], bad[3] = bad[3], bad[2]
    with pytest.raises(ValueError, match="chunk_offsets must not decrease"):
        dec(offsets=bad)
    with pytest.raises(ValueError, match=r"chunk_offsets\[-1\] = .* must equal the payload size"):
        dec(data=s.data[:-1])
    with pytest.raises(ValueError, match="make 5 chunks, but n_chunks is 4"):
        dec(n_chunks=4)
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        dec(cs=0)
    lengths = s.lengths.copy()
    lengths[np.argmax(lengths)] += 1
    with pytest.raises(ValueError, match=r"not a complete prefix code \(Kraft sum < 1\)"):
        dec(lengths=lengths)
    lengths[lengths > 0] = 1
    with pytest.raises(ValueError, match=r"Kraft sum > 1"):
        dec(lengths=lengths)
    lengths[:] = 0
    lengths[0] = 2
    with pytest.raises(ValueError, match="single used symbol must have code length 1"):
        dec(lengths=lengths)
    lengths[0] = 33
    with pytest.raises(ValueError, match="exceeds the maximum of 32"):
        dec(lengths=lengths)


def test_native_encoder_never_writes_outside_its_buffer():
    x = symbols(10, 500, "skewed")
    s = huffman.encode(x, 10, chunk_size=100)
    lengths = np.ascontiguousarray(s.lengths)
    for delta in (-1, 1):
        offsets = s.chunk_offsets.copy()
        offsets[1:-1] += delta  # chunk 0 one byte shorter or longer, the last one the other way
        buf = np.zeros(s.data.size + 16, np.uint8)
        with pytest.raises(ValueError, match="chunk_offsets do not match the indices"):
            _C.huffman_encode(x.ctypes.data, U8, x.size, lengths.ctypes.data, 10, 100, offsets.ctypes.data,
                              buf.ctypes.data, s.data.size)
        assert not buf[s.data.size:].any()


# ---------------------------------------------------------------- argument checks (the shared ones: test_coders)
def test_encode_rejects_int64_and_strided_tensors_and_bad_count_shapes():
    """encode refuses an int64 or non-contiguous tensor, and counts that are not 1-D or too short."""
    x = np.zeros(10, np.uint8)
    with pytest.raises(TypeError, match="indices must have dtype uint8, uint16; got int64"):
        huffman.encode(torch.zeros(10, dtype=torch.int64), 4)
    with pytest.raises(ValueError, match="indices must be contiguous"):
        huffman.encode(torch.zeros(4, 4, dtype=torch.uint8)[:, ::2], 4)
    with pytest.raises(ValueError, match="counts_or_k must be 1-D"):
        huffman.encode(x, np.ones((2, 2), np.int64))
    with pytest.raises(ValueError, match=r"len\(counts_or_k\) must be in \[2, 65536\]"):
        huffman.encode(x, np.ones(1, np.int64))


def test_decode_rejects_a_tuple_and_bad_lengths_sizes_or_offsets():
    """decode refuses a tuple, lengths that are a list or above 32, n_symbols < 0 and decreasing offsets."""
    x = symbols(10, 100, "skewed")
    s = huffman.encode(x, 10, chunk_size=30)
    with pytest.raises(TypeError, match="stream must be a HuffmanStream, got tuple"):
        huffman.decode((s.data, s.lengths))
    with pytest.raises(TypeError, match="stream.lengths must be a numpy.ndarray, got list"):
        huffman.decode(dataclasses.replace(s, lengths=list(s.lengths)))
    with pytest.raises(ValueError, match=r"stream.n_symbols must be in \[0, "):
        huffman.decode(dataclasses.replace(s, n_symbols=-1))
    bad = s.chunk_offsets.copy()
    bad[1], bad[2] = bad[2], bad[1]
    with pytest.raises(ValueError, match="stream.chunk_offsets must not decrease"):
        huffman.decode(dataclasses.replace(s, chunk_offsets=bad))
    lengths = s.lengths.copy()
    lengths[0] = 40
    with pytest.raises(ValueError, match="stream.lengths must be <= 32; got 40"):
        huffman.decode(dataclasses.replace(s, lengths=lengths))


# ---------------------------------------------------------------- decode + gather (the shared checks: test_coders)
def test_decode_gather_op_opcheck():
    idx = np.random.default_rng(0).integers(0, 16, 5000).astype(np.uint8)
    s = wsc.huffman.encode(idx, 16, chunk_size=512)
    args = (torch.from_numpy(s.data.copy()), torch.from_numpy(s.lengths.copy()), torch.from_numpy(s.chunk_offsets.copy()),
            s.n_symbols, s.chunk_size, torch.randn(16))
    torch.library.opcheck(torch.ops.wsc.decode_gather.default, (*args, torch.bfloat16))
    torch.library.opcheck(torch.ops.wsc.decode_gather_into.default, (*args, torch.empty(5000)))


def test_decode_gather_reports_payload_bits():
    idx = np.random.default_rng(3).integers(0, 40, 100_001).astype(np.uint8)
    stream = wsc.huffman.encode(idx, 40, chunk_size=999)
    _, bits = wsc.huffman.decode_gather(stream, np.zeros(40, dtype=np.float32), return_bits=True)
    assert bits == int((np.bincount(idx, minlength=40) * stream.lengths.astype(np.int64)).sum())
