"""wsc.heap.keep_freed_memory: freed blocks stay in the process for reuse (glibc), measured
in fresh subprocesses, since the setting is process-wide and permanent."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from wsc import heap

GLIBC = heap._glibc() is not None

CHILD = r"""
import ctypes, json, os, sys
from wsc import heap

kept = heap.keep_freed_memory() if sys.argv[1] == "1" else None
libc = ctypes.CDLL("libc.so.6")
libc.malloc.restype, libc.malloc.argtypes, libc.free.argtypes = ctypes.c_void_p, (ctypes.c_size_t,), (ctypes.c_void_p,)
page = os.sysconf("SC_PAGE_SIZE")

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * page

n = 256 << 20  # above glibc's largest adaptive mmap threshold (32 MiB)
before = rss()
p = libc.malloc(n)
ctypes.memset(p, 1, n)
touched = rss() - before
libc.free(p)
print(json.dumps({"kept": kept, "touched": touched, "after_free": rss() - before, "n": n}))
"""


def _run(keep: bool) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, "1" if keep else "0"], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not GLIBC, reason="needs glibc (keep_freed_memory does nothing elsewhere)")
def test_freed_memory_stays_resident_only_when_kept():
    default, kept = _run(False), _run(True)
    n = default["n"]
    assert default["touched"] > 0.9 * n and kept["touched"] > 0.9 * n  # the block was really touched
    assert default["after_free"] < 0.1 * n  # glibc unmapped it: the next block page-faults again
    assert kept["kept"] is True and kept["after_free"] > 0.9 * n  # kept in the heap for reuse


def test_other_c_libraries_are_left_alone(monkeypatch):
    monkeypatch.setattr(heap, "_glibc", lambda: None)
    assert heap.keep_freed_memory() is False
