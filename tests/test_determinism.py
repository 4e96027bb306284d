"""The same seed gives a byte-identical .wsc file across runs, processes and thread counts."""

from __future__ import annotations

import copy
import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import wsc

FAST = dict(k_range=(2, 40), pop_size=6, generations=3, seed=5, tolerance=0.01, progress=False)


def _file_bytes(model, evaluator, tmp_path, name, **kw):
    r = wsc.compress(copy.deepcopy(model), evaluator, **{**FAST, **kw})
    path = tmp_path / name
    r.save(path)
    return path.read_bytes(), r


@pytest.mark.parametrize("size", ["values", "bits"])
def test_same_bytes_for_any_thread_count(trained_mlp, digits_eval, tmp_path, size):
    runs = []
    torch_threads = torch.get_num_threads()
    try:
        for wsc_threads, t_threads, workers in ((1, 1, 1), (2, 2, 1), (3, 1, 2), (0, 2, 3)):
            wsc.set_num_threads(wsc_threads)
            torch.set_num_threads(t_threads)
            runs.append(_file_bytes(trained_mlp, digits_eval, tmp_path, f"t{wsc_threads}-{workers}.wsc",
                                    workers=workers, size=size))
    finally:
        wsc.set_num_threads(0)
        torch.set_num_threads(torch_threads)
    first, r0 = runs[0]
    for data, r in runs[1:]:
        assert data == first
        assert r.to_dict()["front_after_merge"] == r0.to_dict()["front_after_merge"]


@pytest.mark.parametrize("codebooks", ["sorted", "streamed"])
def test_the_coded_file_does_not_depend_on_the_thread_count(codebooks, monkeypatch):
    """A big tensor (many native blocks and Huffman chunks), coded with 1, 2 and 4 threads,
    with codebooks from sorted copies and from streaming passes."""
    from wsc import container, workbench
    from wsc.workbench import Workbench

    if codebooks == "streamed":
        monkeypatch.setattr(workbench, "SORT_LIMIT", 0)
    g = torch.Generator().manual_seed(0)
    lin = torch.nn.Linear(1000, 1200)
    with torch.no_grad():
        lin.weight.copy_(torch.randn(1200, 1000, generator=g) * 0.05)
    bench = Workbench(lin)
    out = []
    try:
        for t in (1, 2, 4):
            wsc.set_num_threads(t)
            getattr(bench.weights, "_recent", {}).clear()
            cb = bench.codebook(300)
            out.append((cb.values.tobytes(), container.to_bytes(bench.payload(cb), chunk_size=4096)))
    finally:
        wsc.set_num_threads(0)
    assert out[0] == out[1] == out[2]


SCRIPT = r"""
import hashlib, sys, tempfile, os
import torch, wsc
torch.set_num_threads(int(sys.argv[1]))
wsc.set_num_threads(int(sys.argv[1]))
torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(30, 40), torch.nn.ReLU(), torch.nn.Linear(40, 5))
x = torch.randn(200, 30)
y = model(x).argmax(1)
def accuracy(m):
    with torch.no_grad():
        return float((m(x).argmax(1) == y).double().mean())
r = wsc.compress(model, accuracy, k_range=(2, 64), pop_size=6, generations=3, seed=7, progress=False)
with tempfile.TemporaryDirectory() as d:
    r.save(os.path.join(d, "m.wsc"))
    print(hashlib.sha256(open(os.path.join(d, "m.wsc"), "rb").read()).hexdigest())
"""


def test_same_bytes_across_processes():
    """Fresh interpreters (different hash seeds, different thread counts) write the same file."""
    root = Path(wsc.__file__).parents[1]
    digests = []
    for threads, hash_seed in ((1, "1"), (2, "2")):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed,
               "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
        proc = subprocess.run([sys.executable, "-c", SCRIPT, str(threads)], capture_output=True, text=True,
                              env=env, check=False, timeout=300)
        assert proc.returncode == 0, proc.stderr
        digests.append(proc.stdout.strip().splitlines()[-1])
    assert digests[0] == digests[1]


def test_same_metadata_order_whatever_the_insertion_order():
    from wsc import _safetensors

    a = _safetensors.serialize({"x": (torch.float32, (2,), [torch.zeros(2)])}, {"b": "1", "a": "2"})
    b = _safetensors.serialize({"x": (torch.float32, (2,), [torch.zeros(2)])}, {"a": "2", "b": "1"})
    assert a[0] == b[0]
    assert hashlib.sha256(a[0]).digest() == hashlib.sha256(b[0]).digest()
