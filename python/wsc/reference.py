"""Plain numpy versions of every native kernel: the oracles the tests compare against.

Inputs are numpy arrays (float16 is numpy's; bfloat16 callers pass float32 values that
are exactly representable in bfloat16). Slow and obvious on purpose.
"""

from __future__ import annotations

import builtins

import numpy as np


def range(x: np.ndarray) -> tuple[float, float]:  # noqa: A001 - mirrors the kernel's name
    """(min, max) of x; ValueError on empty input or NaN/Inf."""
    x = np.asarray(x, dtype=np.float32).ravel()
    if x.size == 0:
        raise ValueError("x is empty")
    bad = ~np.isfinite(x)
    if bad.any():
        raise ValueError(f"x contains {int(bad.sum())} NaN/Inf value(s); first at {int(np.argmax(bad))}")
    return float(x.min()), float(x.max())


def bin_index(x: np.ndarray, lo: float, hi: float, k: int) -> np.ndarray:
    """The binning rule in float64: clamp(floor((x - lo) / ((hi - lo) / k)), 0, k - 1) as int64."""
    x64 = np.asarray(x, dtype=np.float32).astype(np.float64).ravel()
    lo64, hi64 = float(np.float32(lo)), float(np.float32(hi))
    width = (hi64 - lo64) / k
    if width == 0.0:
        return np.zeros(x64.shape, dtype=np.int64)
    t = np.floor((x64 - lo64) / width)
    return np.clip(t, 0, k - 1).astype(np.int64)


def bin_uniform(x: np.ndarray, k: int, lo: float, hi: float):
    """(indices uint8/uint16, counts int64[k], sums float64[k]) of k equal bins over [lo, hi]."""
    x = np.asarray(x)
    idx = bin_index(x, lo, hi, k)
    vals = x.astype(np.float64).ravel()
    counts = np.bincount(idx, minlength=k).astype(np.int64)
    sums = np.bincount(idx, weights=vals, minlength=k)
    itype = np.uint8 if k <= 256 else np.uint16
    return idx.astype(itype).reshape(x.shape), counts, sums


def gather(indices: np.ndarray, codebook: np.ndarray, dtype=np.float32) -> np.ndarray:
    """codebook[indices] (float32 codebook, result cast to ``dtype``)."""
    cb = np.asarray(codebook, dtype=np.float32)
    idx = np.asarray(indices)
    if idx.size and int(idx.max()) >= cb.size:
        raise ValueError("index >= codebook size")
    return cb[idx.astype(np.int64)].astype(dtype)


def share(x: np.ndarray, lo: float, hi: float, codebook: np.ndarray) -> np.ndarray:
    """codebook[bin(x)] with len(codebook) bins over [lo, hi], in x's dtype."""
    x = np.asarray(x)
    k = len(codebook)
    idx = bin_index(x, lo, hi, k).reshape(x.shape)
    return np.asarray(codebook, dtype=np.float32)[idx].astype(x.dtype)


# ---------------------------------------------------------------- Huffman
# The stream format is the one of csrc/include/wsc/huffman.h: canonical codes, MSB first,
# chunks of chunk_size symbols each padded with zero bits to a byte boundary.

HUFFMAN_MAX_LEN = 32
_range = builtins.range  # this module defines its own range()


def huffman_code_lengths(counts, max_len: int) -> np.ndarray:
    """Optimal code lengths (uint8) under ``max_len`` by package-merge; ties as in the kernel.

    Symbols are ordered by (count, value); at equal weight a leaf comes before a package.
    Unused symbols get 0, a single used symbol gets 1.
    """
    counts = np.asarray(counts, dtype=np.int64).ravel()
    if (counts < 0).any():
        raise ValueError("counts must be >= 0")
    lengths = np.zeros(counts.size, dtype=np.uint8)
    syms = np.flatnonzero(counts > 0)
    n = syms.size
    if n == 0:
        return lengths
    if n == 1:
        lengths[syms[0]] = 1
        return lengths
    if n > 2**max_len:
        raise ValueError(f"max_len {max_len} allows at most {2**max_len} used symbols, got {n}")
    order = syms[np.argsort(counts[syms], kind="stable")]
    leaf = counts[order]
    items = leaf
    is_leaf = {max_len: np.ones(n, dtype=bool)}
    for d in _range(max_len - 1, 0, -1):
        m = items.size // 2 * 2
        packages = items[0:m:2] + items[1:m:2]
        merged = np.concatenate([leaf, packages])
        flags = np.concatenate([np.ones(n, dtype=bool), np.zeros(packages.size, dtype=bool)])
        o = np.argsort(merged, kind="stable")  # leaves first in the concatenation: they win ties
        items, is_leaf[d] = merged[o], flags[o]
    depth = np.zeros(n, dtype=np.int64)
    take = 2 * n - 2
    for d in _range(1, max_len + 1):
        if take == 0:
            break
        leaves = int(np.count_nonzero(is_leaf[d][:take]))
        depth[:leaves] += 1
        take = 2 * (take - leaves)
    lengths[order] = depth
    return lengths


def huffman_lengths_unlimited(counts) -> np.ndarray:
    """Classic heap Huffman code lengths (no limit): the optimum package-merge must match in cost."""
    import heapq

    counts = np.asarray(counts, dtype=np.int64).ravel()
    lengths = np.zeros(counts.size, dtype=np.int64)
    heap = [(int(c), i, [i]) for i, c in enumerate(counts) if c > 0]
    if len(heap) == 1:
        lengths[heap[0][2][0]] = 1
    heapq.heapify(heap)
    tie = counts.size
    while len(heap) > 1:
        w1, _, s1 = heapq.heappop(heap)
        w2, _, s2 = heapq.heappop(heap)
        lengths[s1 + s2] += 1
        heapq.heappush(heap, (w1 + w2, tie, s1 + s2))
        tie += 1
    return lengths


def check_huffman_lengths(lengths) -> None:
    """ValueError unless lengths form a complete code, one symbol of length 1, or no symbol."""
    lengths = np.asarray(lengths).astype(np.int64)
    used = lengths[lengths > 0]
    if (used > HUFFMAN_MAX_LEN).any():
        raise ValueError("code length exceeds the maximum of 32")
    if used.size == 1:
        if used[0] != 1:
            raise ValueError("a single used symbol must have code length 1")
        return
    kraft = sum(1 << (HUFFMAN_MAX_LEN - int(v)) for v in used)
    if used.size and kraft != 1 << HUFFMAN_MAX_LEN:
        raise ValueError("code lengths are not a complete prefix code")


def canonical_codes(lengths) -> np.ndarray:
    """Canonical codes (uint64, right-aligned; 0 for unused symbols): by (length, value), from 0."""
    lengths = np.asarray(lengths).astype(np.int64)
    codes = np.zeros(lengths.size, dtype=np.uint64)
    code, prev = 0, 0
    for sym in sorted(np.flatnonzero(lengths > 0), key=lambda s: (lengths[s], s)):
        code <<= int(lengths[sym]) - prev
        prev = int(lengths[sym])
        codes[sym] = code
        code += 1
    return codes


def huffman_encode(indices, lengths, chunk_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(payload uint8, chunk byte offsets int64[n_chunks + 1]) of the flattened indices."""
    lengths = np.asarray(lengths).astype(np.int64)
    check_huffman_lengths(lengths)
    idx = np.asarray(indices).ravel().astype(np.int64)
    n = idx.size
    n_chunks = -(-n // chunk_size)
    if n and (idx.max() >= lengths.size or (lengths[np.minimum(idx, lengths.size - 1)] == 0).any()):
        raise ValueError("indices hold a symbol without a code")
    codes = canonical_codes(lengths).astype(np.int64)
    lens, cds = lengths[idx], codes[idx]
    # Bits of every code, most significant first, in blocks to bound memory.
    parts = []
    for s in np.arange(0, n, 1 << 16):
        ln, cd = lens[s : s + (1 << 16)], cds[s : s + (1 << 16)]
        shift = ln[:, None] - 1 - np.arange(int(ln.max()))[None, :]
        parts.append(((cd[:, None] >> np.maximum(shift, 0)) & 1)[shift >= 0].astype(np.uint8))
    bits = np.concatenate(parts) if parts else np.zeros(0, dtype=np.uint8)
    chunk_bits = np.add.reduceat(lens, np.arange(0, n, chunk_size)) if n else np.zeros(0, np.int64)
    chunk_bytes = (chunk_bits + 7) // 8
    offsets = np.concatenate([[0], np.cumsum(chunk_bytes)]).astype(np.int64)
    # Move every chunk's bits to its byte-aligned start; the gaps stay zero (the padding).
    start = np.concatenate([[0], np.cumsum(chunk_bits)[:-1]]) if n else np.zeros(0, np.int64)
    padded = np.zeros(int(offsets[-1]) * 8, dtype=np.uint8)
    padded[np.arange(bits.size) + np.repeat(offsets[:-1] * 8 - start, chunk_bits)] = bits
    assert offsets.size == n_chunks + 1
    return np.packbits(padded), offsets


def huffman_decode(data, chunk_offsets, lengths, n: int, chunk_size: int) -> np.ndarray:
    """Decode n symbols (uint8 for k <= 256, else uint16); ValueError on any inconsistency."""
    data = np.asarray(data, dtype=np.uint8)
    offsets = np.asarray(chunk_offsets, dtype=np.int64)
    lengths = np.asarray(lengths).astype(np.int64)
    check_huffman_lengths(lengths)
    n_chunks = -(-n // chunk_size)
    if offsets.size != n_chunks + 1 or offsets[0] != 0 or offsets[-1] != data.size:
        raise ValueError("chunk offsets do not match the stream")
    if (np.diff(offsets) < 0).any():
        raise ValueError("chunk offsets decrease")
    codes = canonical_codes(lengths)
    table = {(int(lengths[s]), int(codes[s])): s for s in np.flatnonzero(lengths > 0)}
    max_len = int(lengths.max()) if lengths.size else 0
    out = np.zeros(n, dtype=np.uint8 if lengths.size <= 256 else np.uint16)
    for c in _range(n_chunks):
        bits = np.unpackbits(data[offsets[c] : offsets[c + 1]]).tolist()
        pos = 0
        for i in _range(c * chunk_size, min(n, (c + 1) * chunk_size)):
            value, length = 0, 0
            while (length, value) not in table:
                if length == max_len or pos == len(bits):
                    raise ValueError(f"chunk {c}: no code / runs past the end")
                value, length, pos = value * 2 + bits[pos], length + 1, pos + 1
            out[i] = table[(length, value)]
        if (pos + 7) // 8 != len(bits) // 8 or any(bits[pos:]):
            raise ValueError(f"chunk {c}: unused bytes or non-zero padding")
    return out


# ---------------------------------------------------------------- rANS
# The format of csrc/include/wsc/rans.h: frequencies summing to 2^scale_bits, 32-bit states in
# [2^23, 2^31), byte-wise renormalisation, 1, 2, 4 or 8 interleaved states per chunk.

RANS_LOW = 1 << 23
RANS_MAX_SCALE = 20


def rans_log2fx(v: int) -> int:
    """log2(v) in 32.32 fixed point by repeated squaring on integers (the kernel's rule)."""
    v = int(v)
    e = v.bit_length() - 1
    y = v << (62 - e)
    r = e
    for _ in _range(32):
        y = (y * y) >> 62
        r <<= 1
        if y >= 1 << 63:
            y >>= 1
            r |= 1
    return r


def rans_quantize_freqs(counts, scale_bits: int) -> np.ndarray:
    """Frequencies (uint32) summing to 2**scale_bits: max(1, round(c * M / n)) for used symbols,
    then the excess (deficit) removed (added) one unit at a time where it costs (gains) least
    (most), cost in 32.32 fixed-point bits, ties to the smallest symbol."""
    import heapq

    counts = [int(c) for c in np.asarray(counts, dtype=np.int64).ravel()]
    if any(c < 0 for c in counts):
        raise ValueError("counts must be >= 0")
    if not any(counts):
        counts = [1] + [0] * (len(counts) - 1)
    m, n = 1 << scale_bits, sum(counts)
    used = sum(c > 0 for c in counts)
    if used > m:
        raise ValueError(f"{used} used symbols do not fit scale_bits {scale_bits}")
    f = [max(1, (2 * c * m + n) // (2 * n)) if c else 0 for c in counts]

    def step(c: int, lo: int) -> int:  # cost of the unit between lo and lo + 1
        return c * (rans_log2fx(lo + 1) - rans_log2fx(lo))

    d = sum(f) - m
    if d > 0:
        heap = [(step(c, v - 1), s) for s, (c, v) in enumerate(zip(counts, f)) if v > 1]
        heapq.heapify(heap)
        for _ in _range(d):
            _, s = heapq.heappop(heap)
            f[s] -= 1
            if f[s] > 1:
                heapq.heappush(heap, (step(counts[s], f[s] - 1), s))
    elif d < 0:
        heap = [(-step(c, v), s) for s, (c, v) in enumerate(zip(counts, f)) if c > 0]
        heapq.heapify(heap)
        for _ in _range(-d):
            _, s = heapq.heappop(heap)
            f[s] += 1
            heapq.heappush(heap, (-step(counts[s], f[s]), s))
    return np.array(f, dtype=np.uint32)


def _gamma(v: int) -> str:
    b = bin(v)[2:]
    return "0" * (len(b) - 1) + b


RANS_GRIDS = 32


def rans_grid_value(level: int, q: int) -> int:
    """Frequency of a level on grid q: l + l^2 / 2^(q - 4) (shifted right, or left for q < 4)."""
    sq = level * level
    return level + (sq >> (q - 4) if q >= 4 else sq << (4 - q))


def rans_grid_floor(v: int, q: int) -> int:
    """The largest level whose grid value is at most v."""
    lo, hi = 0, v + 1  # rans_grid_value(lo) <= v < rans_grid_value(hi)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if rans_grid_value(mid, q) <= v else (lo, mid)
    return lo


RANS_LOG2E_FX = 6196328019  # log2(e) in 32.32 fixed point


def rans_quantize_grid(counts, scale_bits: int, q: int):
    """Frequencies on grid q: the symbol of largest count (the first) at the rest of M; every
    other used symbol, in order, at the level (of: the one below c * M / n, at least 1; the
    one above; the previous used symbol's) of least c * log2(1 / f) + lambda * f + order-0
    exp-Golomb bits of the step from the previous level, lambda = n * log2(e) / M, in 32.32
    fixed point, ties to the earlier candidate; None unless the rest is >= 1 and the largest
    frequency, first among equals."""
    counts = [int(c) for c in np.asarray(counts, dtype=np.int64).ravel()]
    m, n = 1 << scale_bits, sum(counts)
    if n == 0:
        return None
    top = counts.index(max(counts))
    lam = n * RANS_LOG2E_FX // m
    f, prev = [0] * len(counts), 0
    for s, c in enumerate(counts):
        if s == top or c == 0:
            continue
        below = max(1, rans_grid_floor(c * m // n, q))
        best = None
        for level in (below, below + 1, prev):
            v = rans_grid_value(level, q)
            if level == 0 or v >= m:
                continue
            z = 2 * (level - prev) if level >= prev else 2 * (prev - level) - 1
            cost = lam * v - c * rans_log2fx(v) + (_gamma_len(z + 1) << 32)
            if best is None or cost < best[0]:
                best = (cost, level)
        if best is None:
            return None
        prev = best[1]
        f[s] = rans_grid_value(prev, q)
    rest = m - sum(f)
    if rest < 1 or any(v > rest or (v == rest and s < top) for s, v in enumerate(f) if s != top):
        return None
    f[top] = rest
    return np.array(f, dtype=np.uint32)


def _exact_codes(freqs) -> list[tuple[int, int]]:
    """(value, zero run) codes of the exact mode: the frequencies, a run after a zero."""
    codes, k, s = [], len(freqs), 0
    while s < k:
        if freqs[s]:
            codes.append((freqs[s], 0))
            s += 1
            continue
        run = 1
        while s + run < k and freqs[s + run] == 0:
            run += 1
        codes.append((0, run))
        s += run
    return codes


def _level_codes(freqs, q: int):
    """(value, zero run) codes of the level mode on grid q (zigzagged level steps), or None."""
    k = len(freqs)
    top = freqs.index(max(freqs))
    levels = [0] * k
    for s, f in enumerate(freqs):
        if s != top and f:
            level = rans_grid_floor(f, q)
            if rans_grid_value(level, q) != f:
                return None
            levels[s] = level
    before = max(levels[:top], default=0)
    after = max(levels[top + 1:], default=0)
    levels[top] = max(1, after, before + 1)
    codes, prev, s = [], 0, 0
    while s < k:
        d = levels[s] - prev
        z = 2 * d if d >= 0 else -2 * d - 1
        if levels[s]:
            codes.append((z, 0))
            prev = levels[s]
            s += 1
            continue
        run = 1
        while s + run < k and levels[s + run] == 0:
            run += 1
        codes.append((z, run))
        s += run
    return codes


def _code_bits(codes, r: int) -> str:
    out = []
    for v, run in codes:
        out.append(_gamma((v >> r) + 1) + (format(v & ((1 << r) - 1), f"0{r}b") if r else ""))
        if run:
            out.append(_gamma(run))
    return "".join(out)


def _gamma_len(v: int) -> int:
    return 2 * v.bit_length() - 1


def _best_order(codes, max_r: int) -> tuple[int, int]:
    """(order, bits) of the cheapest exp-Golomb order (the smallest on ties)."""
    runs = sum(_gamma_len(run) for _, run in codes if run)
    best = None
    for r in _range(max_r + 1):
        bits = runs + sum(_gamma_len((v >> r) + 1) + r for v, _ in codes)
        if best is None or bits < best[1]:
            best = (r, bits)
    return best


def _rans_table(freqs, scale_bits: int) -> str:
    """The packed table's bit string (encoding 2), without padding: the smallest of the exact
    mode (r in [0, min(15, scale_bits)]) and the level mode on every grid that holds the table
    (r in [0, 15]); ties: exact, the smallest grid, the smallest r."""
    codes = _exact_codes(freqs)
    r, bits = _best_order(codes, min(15, scale_bits))
    best = (6 + 4 + bits, -1, r, codes)
    for q in _range(RANS_GRIDS):
        codes = _level_codes(freqs, q)
        if codes is None:
            continue
        r, bits = _best_order(codes, 15)
        if 6 + 9 + bits < best[0]:
            best = (6 + 9 + bits, q, r, codes)
    _, q, r, codes = best
    head = format(scale_bits, "05b") + ("1" + format(q, "05b") if q >= 0 else "0") + format(r, "04b")
    return head + _code_bits(codes, r)


def rans_pack_freqs(freqs, scale_bits: int) -> bytes:
    """The packed table (encoding 2, zero padding to whole bytes)."""
    freqs = [int(f) for f in np.asarray(freqs).ravel()]
    if sum(freqs) != 1 << scale_bits:
        raise ValueError("frequencies do not sum to 2**scale_bits")
    bits = _rans_table(freqs, scale_bits)
    bits += "0" * (-len(bits) % 8)
    return bytes(int(bits[i:i + 8], 2) for i in _range(0, len(bits), 8))


def rans_unpack_freqs(data, k: int, encoding: int = 2) -> tuple[np.ndarray, int]:
    """(freqs uint32[k], scale_bits) of a packed table in encoding 1 or 2; ValueError on any
    inconsistency."""
    bits = "".join(format(b, "08b") for b in bytes(np.asarray(data, dtype=np.uint8)))
    pos = 0

    def get(n: int) -> int:
        nonlocal pos
        if pos + n > len(bits):
            raise ValueError("the table runs past its bytes")
        v = int(bits[pos:pos + n], 2) if n else 0
        pos += n
        return v

    def gamma(max_len: int) -> int:
        zeros = 0
        while get(1) == 0:
            zeros += 1
            if zeros >= max_len:
                raise ValueError("code too long")
        return (1 << zeros) | get(zeros)

    def run(s: int) -> int:
        n = gamma(18)
        if n > k - s:
            raise ValueError("zero run past k")
        return n

    scale = get(5)
    if not 1 <= scale <= RANS_MAX_SCALE:
        raise ValueError("bad scale_bits")
    m = 1 << scale
    q = get(5) if encoding == 2 and get(1) else -1
    r = get(4)
    freqs, s = np.zeros(k, dtype=np.int64), 0
    if q < 0:
        while s < k:
            f = ((gamma(24) - 1) << r) | get(r)
            if f > m:
                raise ValueError("frequency exceeds 2**scale_bits")
            if f:
                freqs[s] = f
                s += 1
            else:
                s += run(s)
    else:
        prev, top = 0, -1
        while s < k:
            z = ((gamma(24) - 1) << r) | get(r)
            level = prev + (-((z + 1) >> 1) if z & 1 else z >> 1)
            if not 0 <= level <= m:
                raise ValueError("level outside [0, 2**scale_bits]")
            if level:
                if top < 0 or level > freqs[top]:
                    top = s
                freqs[s] = prev = level
                s += 1
            else:
                s += run(s)
        if top < 0:
            raise ValueError("no used symbol")
        for i in np.flatnonzero(freqs):
            if i != top:
                freqs[i] = rans_grid_value(int(freqs[i]), q)
        rest = m - int(freqs.sum()) + int(freqs[top])
        if rest < 1:
            raise ValueError("the levels leave the implicit symbol nothing")
        freqs[top] = rest
    if -(-pos // 8) != len(bits) // 8 or "1" in bits[pos:]:
        raise ValueError("bytes left or non-zero padding")
    if int(freqs.sum()) != m:
        raise ValueError("frequencies do not sum to 2**scale_bits")
    return freqs.astype(np.uint32), scale


def _rans_cost(counts, freqs, scale_bits: int, q: int = -1) -> int:
    """Payload plus packed table (whole bytes; in exact mode, or in level mode on grid q when
    q >= 0) in 32.32 fixed-point bits."""
    freqs = [int(f) for f in freqs]
    bits = sum(int(c) * ((scale_bits << 32) - rans_log2fx(v)) for c, v in zip(counts, freqs) if c > 0)
    if q < 0:
        table = 10 + _best_order(_exact_codes(freqs), min(15, scale_bits))[1]
    else:
        table = 15 + _best_order(_level_codes(freqs, q), 15)[1]
    return bits + (-(-table // 8) * 8 << 32)


def rans_choose_scale(counts) -> tuple[int, int]:
    """The kernel's choice of (scale_bits, grid): per precision the exact model (its table in
    exact mode) or, where one symbol holds at least half and 3 or more are used, a model on one
    of the six grids from q = log2(n) - scale_bits + 1 (in [0, 26]) if it codes smaller (ties:
    exact, the smallest grid); then the smallest precision in [max(1, ceil(log2(used))), cap]
    whose cost (payload plus packed table, 32.32 fixed-point bits) is within 0.01% of the best;
    cap 16, or 20 when a precision above 16 codes more than 0.1% smaller."""
    counts = np.asarray(counts, dtype=np.int64).ravel()
    used = max(int(np.count_nonzero(counts)), 1)
    grids = used >= 3 and 2 * int(counts.max()) >= int(counts.sum())
    lo = max(1, (used - 1).bit_length())
    total, grid = {}, {}
    for s in _range(lo, RANS_MAX_SCALE + 1):
        total[s], grid[s] = _rans_cost(counts, rans_quantize_freqs(counts, s), s), -1
        q0 = min(max(int(counts.sum()).bit_length() - 1 - s + 1, 0), RANS_GRIDS - 6)
        for q in _range(q0, q0 + 6 if grids else q0):
            f = rans_quantize_grid(counts, s, q)
            if f is not None and (cost := _rans_cost(counts, f, s, q)) < total[s]:
                total[s], grid[s] = cost, q
    best = min(total.values())
    best16 = min((v for s, v in total.items() if s <= 16), default=None)
    limit = RANS_MAX_SCALE if lo > 16 or best16 * 1000 > best * 1001 else 16
    best = min(v for s, v in total.items() if s <= limit)
    for s in _range(lo, limit):
        if total[s] * 10000 <= best * 10001:
            return s, grid[s]
    return limit, grid[limit]


def _rans_model(freqs, scale_bits: int):
    freqs = np.asarray(freqs).astype(np.int64).ravel()
    if not 1 <= scale_bits <= RANS_MAX_SCALE or (freqs < 0).any() or int(freqs.sum()) != 1 << scale_bits:
        raise ValueError("the frequencies do not sum to 2**scale_bits")
    cum = np.concatenate([[0], np.cumsum(freqs)]).astype(np.int64)
    return [int(v) for v in freqs], [int(v) for v in cum]


def rans_encode(indices, freqs, scale_bits: int, chunk_size: int, states: int) -> tuple[np.ndarray, np.ndarray]:
    """(payload uint8, chunk byte offsets int64[n_chunks + 1]) of the flattened indices."""
    f, cum = _rans_model(freqs, scale_bits)
    idx = [int(v) for v in np.asarray(indices).ravel()]
    if any(v >= len(f) or f[v] == 0 for v in idx):
        raise ValueError("indices hold a symbol without a frequency")
    m_total = 1 << scale_bits
    chunks, offsets = [], [0]
    for start in _range(0, len(idx), chunk_size):
        sym = idx[start:start + chunk_size]
        x = [RANS_LOW] * states
        rev = []  # bytes in the order the encoder emits them (the reverse of the stream's order)
        for i in _range(len(sym) - 1, -1, -1):
            s, j = sym[i], i % states
            xmax = f[s] << (31 - scale_bits)
            emitted = []
            while x[j] >= xmax:
                emitted.append(x[j] & 0xFF)
                x[j] >>= 8
            rev.extend(reversed(emitted))  # in the stream: least significant byte first
            x[j] = (x[j] // f[s]) * m_total + x[j] % f[s] + cum[s]
        body = b"".join(v.to_bytes(4, "little") for v in x) + bytes(reversed(rev))
        chunks.append(body)
        offsets.append(offsets[-1] + len(body))
    data = np.frombuffer(b"".join(chunks), dtype=np.uint8).copy()
    return data, np.array(offsets, dtype=np.int64)


def rans_decode(data, chunk_offsets, freqs, scale_bits: int, n: int, chunk_size: int, states: int) -> np.ndarray:
    """Decode n symbols (uint8 for k <= 256, else uint16); ValueError on any inconsistency."""
    f, cum = _rans_model(freqs, scale_bits)
    data = bytes(np.asarray(data, dtype=np.uint8))
    offsets = [int(v) for v in np.asarray(chunk_offsets, dtype=np.int64)]
    n_chunks = -(-n // chunk_size)
    if len(offsets) != n_chunks + 1 or offsets[0] != 0 or offsets[-1] != len(data):
        raise ValueError("chunk offsets do not match the stream")
    if any(b < a for a, b in zip(offsets, offsets[1:])):
        raise ValueError("chunk offsets decrease")
    slot_sym = np.repeat(np.arange(len(f)), f).tolist()
    mask = (1 << scale_bits) - 1
    out = np.zeros(n, dtype=np.uint8 if len(f) <= 256 else np.uint16)
    for c in _range(n_chunks):
        p = data[offsets[c]:offsets[c + 1]]
        if len(p) < 4 * states:
            raise ValueError(f"chunk {c}: too short for its states")
        x = [int.from_bytes(p[4 * j:4 * j + 4], "little") for j in _range(states)]
        if any(not RANS_LOW <= v < RANS_LOW << 8 for v in x):
            raise ValueError(f"chunk {c}: initial state out of range")
        pos = 4 * states
        for i in _range(c * chunk_size, min(n, (c + 1) * chunk_size)):
            j = (i - c * chunk_size) % states
            slot = x[j] & mask
            s = slot_sym[slot]
            v = f[s] * (x[j] >> scale_bits) + slot - cum[s]
            nb = 0
            while v << (8 * nb) < RANS_LOW:
                nb += 1
            if pos + nb > len(p):
                raise ValueError(f"chunk {c}: runs past its bytes")
            x[j] = (v << (8 * nb)) | int.from_bytes(p[pos:pos + nb], "little")
            pos += nb
            out[i] = s
        if pos != len(p) or any(v != RANS_LOW for v in x):
            raise ValueError(f"chunk {c}: bytes left or final states not 2^23")
    return out


def gptq_block(block, u, pivots, values, bits, rate: float):
    """One block of GPTQ columns (float64 [groups, rows, width], not modified; u [groups,
    width, width], pivots [groups, width]): (indices int64, errors) column by column, each
    x taking the nearest value (rate 0) or the cheaper of the two around it in
    ((x - v) / spacing)^2 + rate * bits[v] (ties: the lower), its error moved onto the
    block's later columns through u."""
    x = np.array(block, dtype=np.float64)
    u, pivots, values = (np.asarray(a, dtype=np.float64) for a in (u, pivots, values))
    bits = None if bits is None else np.asarray(bits, dtype=np.float64)
    k = len(values)
    q = np.zeros(x.shape, dtype=np.int64)
    err = np.zeros(x.shape)
    spacing = (values[-1] - values[0]) / (k - 1) if k > 1 else 0.0
    for i in _range(x.shape[-1]):
        col = x[..., i]
        if k == 1:
            idx = np.zeros(col.shape, dtype=np.int64)
        else:
            j = np.clip(np.searchsorted(values, col), 1, k - 1)
            if rate == 0:
                idx = np.where(np.abs(col - values[j - 1]) <= np.abs(values[j] - col), j - 1, j)
            else:
                lower = ((col - values[j - 1]) / spacing) ** 2 + rate * bits[j - 1]
                upper = ((col - values[j]) / spacing) ** 2 + rate * bits[j]
                idx = np.where(upper < lower, j, j - 1)
        q[..., i] = idx
        err[..., i] = (col - values[idx]) / pivots[:, None, i]
        x[..., i + 1:] -= err[..., i:i + 1] * u[:, None, i, i + 1:]
    return q, err
