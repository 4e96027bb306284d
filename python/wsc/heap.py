"""Keep freed memory in the process heap (glibc), so repeated CPU evaluations reuse it.

A search scores thousands of candidates, each a forward pass over the same evaluation
batches. Every layer's output is a new tensor of the same size as in the candidate before;
glibc's malloc serves such blocks (above its mmap threshold, 128 KiB to 32 MiB) from fresh
anonymous mappings and gives the memory back when they are freed (or trims it off the top
of the heap), so a pass may pay the page faults of zero-filling its activations again. With a high mmap threshold and no
trimming the blocks come from the heap and are reused as they are: the same arithmetic and
results. How much the page faults cost varies from process to process: the built-in
depthwise CNN's search evaluation took 98–236 ms with the default heap and 98–111 ms with
this (``bench/bench_heap.py``, 4 runs each), and its compression in one measurement 308 s
against 146 s; models with small activations (the LeNets, the GRU) see no difference. The
price: the resident memory no longer shrinks after a peak (LeNet-5's compression with GPTQ:
1,061 MiB peak instead of 896).
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLDS = (1 << 30, 32 << 20)  # blocks below this come from the heap: the largest glibc accepts
TRIM_THRESHOLD = (1 << 31) - 1  # free heap kept before trimming: in effect, never trim


def _glibc():
    """The C library when it is glibc (it has gnu_get_libc_version), else None."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    except OSError:
        return None
    return libc if hasattr(libc, "gnu_get_libc_version") and hasattr(libc, "mallopt") else None


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for reuse: blocks up to 1 GiB (or glibc's 32 MiB
    limit) from the heap, and the heap never trimmed. Process-wide and permanent (glibc has
    no way to restore its adaptive thresholds); ``wsc compress`` calls it, Python callers
    may before :func:`wsc.compress`. Returns whether it took effect (False on other C
    libraries, e.g. macOS or musl, where it does nothing)."""
    libc = _glibc()
    if libc is None:
        return False
    libc.mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    if not any(libc.mallopt(M_MMAP_THRESHOLD, t) == 1 for t in MMAP_THRESHOLDS):
        return False
    return libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1


__all__ = ["keep_freed_memory"]
