"""Integrity: `wsc inspect --verify` checks every checksum and decodes every stream; writing is atomic."""

from __future__ import annotations

import json
import os

import pytest
import torch

from wsc import container
from wsc.cli import main
from wsc.workbench import Workbench

from pipeline_fixtures import resave


class Two(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a = torch.nn.Linear(20, 30)
        self.b = torch.nn.Linear(30, 10)


@pytest.fixture
def good(tmp_path):
    bench = Workbench(Two())
    path = tmp_path / "good.wsc"
    container.write(path, bench.payload(bench.codebook(16)), coder="huffman")  # payload bits checked when decoded
    return bench, path


def _damaged(src, dst, edit):
    meta, tensors, _, _ = container._read_raw(src)
    edit(meta, tensors)
    dst.write_bytes(resave(meta, tensors))
    return dst


def test_verify_a_sound_file(good, capsys):
    _, path = good
    assert container.verify(path) == []
    assert main(["inspect", "--verify", str(path)]) == 0
    assert "verify: every stream decodes and every checksum matches" in capsys.readouterr().out
    assert main(["inspect", "--verify", "--json", str(path)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["verified"] is True and info["problems"] == []


@pytest.mark.parametrize("edit, bad", [
    (lambda m, t: t["data"].__setitem__(len(t["data"]) - 1, int(t["data"][-1]) ^ 0x01), "'b.weight': checksum mismatch"),
    (lambda m, t: t["data"].__setitem__(0, int(t["data"][0]) ^ 0x80), "'a.weight': checksum mismatch"),
    # one CRC-32 covers the unshared tensors (version 6): all of them are named, none blamed
    (lambda m, t: t["stored.float32"].__setitem__(0, 7.0), r"stored tensors \('a.bias', 'b.bias'\): checksum mismatch"),
    (lambda m, t: t["codebook"].__setitem__(0, 0.0), "codebook: checksum mismatch"),
    (lambda m, t: m["tensors"][2].update(bits=m["tensors"][2]["bits"] - 1), "'b.weight': .* payload bits"),
])
def test_verify_names_the_bad_part(good, tmp_path, capsys, edit, bad):
    _, path = good
    broken = _damaged(path, tmp_path / "bad.wsc", edit)
    problems = container.verify(broken)
    assert len(problems) == 1 and problems[0].startswith(str(broken)), problems
    assert main(["inspect", "--verify", str(broken)]) == 1
    out = capsys.readouterr().out
    assert "1 problem(s): the file is corrupt" in out
    import re

    assert re.search(bad, out), out


def test_verify_of_an_unreadable_file(tmp_path, capsys):
    junk = tmp_path / "junk.wsc"
    junk.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    assert container.verify(junk)[0].startswith(str(junk))
    assert main(["inspect", "--verify", str(junk)]) == 1
    assert "wsc inspect: error:" in capsys.readouterr().err


@pytest.mark.parametrize("where", ["write", "fsync", "replace"])
@pytest.mark.parametrize("error", [OSError("disk full"), KeyboardInterrupt()])
def test_an_interrupted_write_leaves_nothing_behind(good, tmp_path, monkeypatch, where, error):
    bench, _ = good
    out = tmp_path / "out"
    out.mkdir()
    final = out / "model.wsc"
    payload = bench.payload(bench.codebook(8))

    def boom(*a, **k):
        raise error

    if where == "write":
        real = os.fdopen

        class Broken:
            def __init__(self, f):
                self.f = f

            def __enter__(self):
                return self

            def fileno(self):
                return self.f.fileno()

            def __exit__(self, *exc):
                self.f.close()

            def write(self, data):
                self.f.write(data[: len(data) // 2])
                raise error

        monkeypatch.setattr(os, "fdopen", lambda fd, mode: Broken(real(fd, mode)))
    else:
        monkeypatch.setattr(os, where, boom)
    with pytest.raises(type(error)):
        container.write(final, payload)
    monkeypatch.undo()
    assert os.listdir(out) == []  # no file under the final name, no temp file
    # an older file under the final name survives a failed rewrite untouched
    final.write_bytes(b"old")
    monkeypatch.setattr(os, "fsync", boom)
    with pytest.raises(type(error)):
        container.write(final, payload)
    monkeypatch.undo()
    assert os.listdir(out) == ["model.wsc"] and final.read_bytes() == b"old"


def test_written_files_have_the_usual_mode(good):
    _, path = good
    mask = os.umask(0)
    os.umask(mask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~mask
