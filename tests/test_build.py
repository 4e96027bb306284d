"""The extension is torch-free, and a missing native build is reported at import with its reason."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

import wsc


@pytest.mark.skipif(shutil.which("ldd") is None, reason="ldd not available on this platform")
def test_extension_does_not_link_libtorch():
    libs = subprocess.run(["ldd", wsc._C.__file__], capture_output=True, text=True, check=True).stdout
    assert "libtorch" not in libs and "libc10" not in libs and "python" not in libs.lower()


def test_missing_native_build_is_reported_at_import():
    code = (
        "import sys, importlib.abc\n"
        "class Block(importlib.abc.MetaPathFinder):\n"
        "    def find_spec(self, name, path, target=None):\n"
        "        if name == 'wsc._C':\n"
        "            raise ImportError('simulated: undefined symbol foo')\n"
        "sys.meta_path.insert(0, Block())\n"
        "import wsc\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "the native extension wsc._C could not be loaded" in proc.stderr
    assert "simulated: undefined symbol foo" in proc.stderr


@pytest.mark.skipif(shutil.which("ldd") is None, reason="ldd not available on this platform")
def test_cuda_runtime_is_linked_statically():
    """A CUDA build imports where there is no GPU or driver: no libcudart/libcuda dependency."""
    libs = subprocess.run(["ldd", wsc._C.__file__], capture_output=True, text=True, check=True).stdout
    assert "libcudart" not in libs and "libcuda.so" not in libs
    assert wsc._C.cuda_device_count() >= 0  # never raises, with or without a driver
