"""What the two entropy coders (chunked Huffman and chunked rANS) share, checked once for each:
counts arrays, torch and numpy in and out, the same bytes on any thread count, the stream's
properties, the argument checks of encode and decode, and decode + gather. What only one
coder does stays in test_huffman.py and test_rans.py."""

from __future__ import annotations

import dataclasses
from types import ModuleType
from typing import Callable

import numpy as np
import pytest
import torch

import wsc
from coder_inputs import symbols
from wsc import huffman, rans, reference


@dataclasses.dataclass(frozen=True)
class Coder:
    """Where one coder's API and messages differ from the other's."""

    module: ModuleType  # encode, decode, decode_gather
    table: str  # the stream's per-symbol table: code lengths or quantised frequencies
    no_code: str  # how encode says that an index has nothing in that table
    precision: str  # the encode keyword that bounds the table's precision
    max_precision: int
    table_of_counts: Callable  # counts -> the table (what encode builds its model with)
    beyond_codebook: str  # how decode_gather says that the stream holds symbols beyond the codebook


HUFFMAN = Coder(huffman, "lengths", "has no code", "max_len", 32, huffman.code_lengths,
                r"decoded index value\(s\) >= codebook size 2")
RANS = Coder(rans, "freqs", "has frequency 0", "scale_bits", 20, rans.quantize_freqs,
             "symbol 2 has a frequency but the codebook holds only 2 values")
CODERS = [pytest.param(HUFFMAN, id="huffman"), pytest.param(RANS, id="rans")]


# ---------------------------------------------------------------- streams
@pytest.mark.parametrize("coder", CODERS)
def test_threads_give_identical_bytes(coder):
    """1, 2 and 3 threads encode the same bytes and offsets, and each stream decodes back."""
    x = symbols(100, 300_000, "skewed", seed=1)
    streams = []
    for t in (1, 2, 3):
        wsc.set_num_threads(t)
        try:
            streams.append(coder.module.encode(x, 100, chunk_size=1000))
            np.testing.assert_array_equal(coder.module.decode(streams[-1]), x)
        finally:
            wsc.set_num_threads(0)
    for s in streams[1:]:
        np.testing.assert_array_equal(s.data, streams[0].data)
        np.testing.assert_array_equal(s.chunk_offsets, streams[0].chunk_offsets)


@pytest.mark.parametrize("coder", CODERS)
def test_empty_stream(coder):
    """No indices: no payload, no chunks, offsets [0], and an empty decode."""
    s = coder.module.encode(np.zeros(0, np.uint8), 4)
    assert s.data.size == 0 and s.n_chunks == 0 and s.nbits == 0
    np.testing.assert_array_equal(s.chunk_offsets, [0])
    assert coder.module.decode(s).shape == (0,)


@pytest.mark.parametrize("coder", CODERS)
def test_zero_counts_and_counts_array(coder):
    """A counts array sets k; symbols of count 0 get no table entry; counts may cover more than the data."""
    x = np.array([0, 2, 2, 5, 2, 0], dtype=np.uint8)
    counts = np.array([2, 0, 3, 0, 0, 1, 0, 0], dtype=np.int64)
    s = coder.module.encode(x, counts)
    assert s.k == 8
    assert (getattr(s, coder.table)[[1, 3, 4, 6, 7]] == 0).all()
    np.testing.assert_array_equal(coder.module.decode(s), x)
    s2 = coder.module.encode(x, np.array([2, 1, 3, 1, 1, 1, 1, 1]))  # counts may cover more than the data
    np.testing.assert_array_equal(coder.module.decode(s2), x)


@pytest.mark.parametrize("coder", CODERS)
def test_counts_that_do_not_cover_the_indices_raise(coder):
    """An index of count 0, or one >= k (from a counts array or an int k), raises naming the first one."""
    x = np.array([0, 2, 2, 5, 2, 1], dtype=np.uint8)
    with pytest.raises(ValueError, match=rf"indices\[5\] = 1 {coder.no_code}"):
        coder.module.encode(x, np.array([2, 0, 3, 0, 0, 1]))
    with pytest.raises(ValueError, match=r"indices\[3\] = 5 is >= k = 4"):
        coder.module.encode(x, np.array([2, 1, 3, 0]))
    with pytest.raises(ValueError, match=r"value\(s\) >= k = 4; the first is indices\[3\] = 5"):
        coder.module.encode(x, 4)


@pytest.mark.parametrize("coder", CODERS)
def test_torch_input_and_output(coder):
    """A 2-D tensor encodes like the flat array; decode fills a given tensor or array (uint16 also for k <= 256)."""
    x = symbols(300, 5000, "skewed", seed=2)
    s = coder.module.encode(torch.from_numpy(x).reshape(50, 100), 300)
    np.testing.assert_array_equal(s.data, coder.module.encode(x, 300).data)
    out = torch.empty(5000, dtype=torch.uint16)
    assert coder.module.decode(s, out) is out
    np.testing.assert_array_equal(out.numpy(), x)
    s8 = coder.module.encode(torch.from_numpy(x % 200).to(torch.uint8), 256)
    out8 = np.empty((50, 100), dtype=np.uint16)  # uint16 output also takes k <= 256
    coder.module.decode(s8, out8)
    np.testing.assert_array_equal(out8.ravel(), x % 200)


@pytest.mark.parametrize("coder", CODERS)
def test_stream_properties(coder):
    """k, chunk counts, index dtype and bit count of a stream; the stream is frozen and its data read-only."""
    s = coder.module.encode(np.arange(100, dtype=np.uint16) % 300, 300, chunk_size=40)
    assert (s.k, s.n_chunks, s.n_symbols, s.chunk_size) == (300, 3, 100, 40)
    assert s.index_dtype == np.uint16 and s.nbits == 8 * s.data.size
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.n_symbols = 3
    with pytest.raises(ValueError):
        s.data[0] = 1  # read-only


# ---------------------------------------------------------------- argument checks
@pytest.mark.parametrize("coder", CODERS)
def test_encode_argument_errors(coder):
    """encode (and the table-of-counts function) reject bad indices, counts, precision and chunk size."""
    encode, precision, top = coder.module.encode, coder.precision, coder.max_precision
    x = np.zeros(10, np.uint8)
    with pytest.raises(TypeError, match="indices must have dtype uint8, uint16; got int32"):
        encode(np.zeros(10, np.int32), 4)
    with pytest.raises(ValueError, match="indices must be C-contiguous"):
        encode(np.zeros((4, 4), np.uint8)[:, ::2], 4)
    with pytest.raises(ValueError, match="indices must be on the cpu device"):
        encode(torch.zeros(4, dtype=torch.uint8, device="meta"), 4)
    with pytest.raises(TypeError, match="indices must be a torch.Tensor or numpy.ndarray, got list"):
        encode([0, 1], 4)
    for k in (1, 0, 65537):
        with pytest.raises(ValueError, match=r"counts_or_k must be in \[2, 65536\]"):
            encode(x, k)
    with pytest.raises(TypeError, match="counts_or_k must be an int k or an integer array"):
        encode(x, 4.0)
    with pytest.raises(TypeError, match="counts_or_k must have an integer dtype; got float64"):
        encode(x, np.ones(4))
    with pytest.raises(ValueError, match="counts_or_k must be >= 0; got -1"):
        encode(x, np.array([10, -1]))
    with pytest.raises(ValueError, match="counts_or_k has no non-zero count"):
        encode(x, np.zeros(4, np.int64))
    for value in (0, top + 1):
        with pytest.raises(ValueError, match=rf"{precision} must be in \[1, {top}\]"):
            encode(x, 4, **{precision: value})
    with pytest.raises(TypeError, match=f"{precision} must be an int"):
        encode(x, 4, **{precision: 3.0})
    with pytest.raises(ValueError, match=f"{precision} 2 is too small for 5 used symbols"):
        encode(np.arange(5, dtype=np.uint8), 5, **{precision: 2})
    with pytest.raises(ValueError, match=r"chunk_size must be in \[1, "):
        encode(x, 4, chunk_size=0)
    with pytest.raises(TypeError, match="chunk_size must be an int"):
        encode(x, 4, chunk_size=True)
    with pytest.raises(TypeError, match="counts must be an integer array of counts, got int"):
        coder.table_of_counts(4)


@pytest.mark.parametrize("coder", CODERS)
def test_decode_argument_errors(coder):
    """decode rejects bad data and offset dtypes, a table shorter than 2, offsets that do not fit, and a bad out."""
    decode = coder.module.decode
    x = symbols(10, 100, "skewed")
    s = coder.module.encode(x, 10, chunk_size=30)
    with pytest.raises(TypeError, match="stream.data must have dtype uint8; got int8"):
        decode(dataclasses.replace(s, data=s.data.view(np.int8)))
    with pytest.raises(TypeError, match="stream.chunk_offsets must have dtype int64; got int32"):
        decode(dataclasses.replace(s, chunk_offsets=s.chunk_offsets.astype(np.int32)))
    with pytest.raises(ValueError, match=r"stream.k must be in \[2, 65536\]"):
        decode(dataclasses.replace(s, **{coder.table: getattr(s, coder.table)[:1]}))
    with pytest.raises(ValueError, match=r"must have ceil\(n_symbols / chunk_size\) \+ 1 = 6 entries; got 5"):
        decode(dataclasses.replace(s, n_symbols=121))
    with pytest.raises(ValueError, match="stream.chunk_offsets must run from 0 to len"):
        decode(dataclasses.replace(s, data=s.data[:-1]))
    with pytest.raises(ValueError, match="out must have stream.n_symbols = 100 elements; got 99"):
        decode(s, np.empty(99, np.uint8))
    with pytest.raises(TypeError, match="out must have dtype uint8, uint16; got int64"):
        decode(s, np.empty(100, np.int64))
    with pytest.raises(ValueError, match="out must be writeable"):
        decode(s, np.broadcast_to(np.uint8(0), (100,)))
    s16 = coder.module.encode(np.arange(300, dtype=np.uint16), 300)
    with pytest.raises(TypeError, match="out must have dtype uint16 for k = 300 > 256; got uint8"):
        decode(s16, np.empty(300, np.uint8))


# ---------------------------------------------------------------- decode + gather
GATHER_CASES = [  # coder, k, n, the stream's layout
    pytest.param(HUFFMAN, 2, 5, {"chunk_size": 3}, id="huffman-k2"),
    pytest.param(HUFFMAN, 16, 1_000_003, {"chunk_size": 1000}, id="huffman-k16"),
    pytest.param(HUFFMAN, 300, 100_000, {"chunk_size": 16384}, id="huffman-k300"),
    pytest.param(HUFFMAN, 65536, 200_000, {"chunk_size": 777}, id="huffman-k65536"),
    pytest.param(RANS, 2, 5, {"chunk_size": 3, "states": 1}, id="rans-k2"),
    pytest.param(RANS, 16, 1_000_003, {"chunk_size": None, "states": 8}, id="rans-k16"),
    pytest.param(RANS, 300, 100_000, {"chunk_size": 16384, "states": 4}, id="rans-k300"),
    pytest.param(RANS, 65536, 200_000, {"chunk_size": 777, "states": 2}, id="rans-k65536"),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("coder,k,n,layout", GATHER_CASES)
def test_decode_gather_equals_decode_then_gather(dtype, coder, k, n, layout, threads):
    """decode_gather (new tensor or given out) equals gathering the decoded indices, in each dtype."""
    rng = np.random.default_rng(k + n)
    idx = rng.integers(0, k, n).astype(np.uint8 if k <= 256 else np.uint16)
    stream = coder.module.encode(idx, k, **layout)
    codebook = rng.normal(size=k).astype(np.float32)
    want = torch.from_numpy(reference.gather(idx, codebook)).to(dtype)
    assert torch.equal(coder.module.decode_gather(stream, codebook, dtype=dtype), want)
    out = torch.empty(n, dtype=dtype)
    assert coder.module.decode_gather(stream, torch.from_numpy(codebook), out=out) is out
    assert torch.equal(out, want)


@pytest.mark.parametrize("coder", CODERS)
def test_decode_gather_rejects_symbols_beyond_codebook_and_bad_args(coder):
    """decode_gather rejects a codebook too short for the stream's symbols, a float64 codebook and a short out."""
    idx = np.array([0, 1, 2, 1], dtype=np.uint8)
    stream = coder.module.encode(idx, 3)
    with pytest.raises(ValueError, match=coder.beyond_codebook):
        coder.module.decode_gather(stream, np.zeros(2, dtype=np.float32))
    with pytest.raises(TypeError, match="codebook must have dtype float32"):
        coder.module.decode_gather(stream, np.zeros(3))
    with pytest.raises(ValueError, match="out must have stream.n_symbols = 4 elements"):
        coder.module.decode_gather(stream, np.zeros(3, dtype=np.float32), out=torch.empty(3))
