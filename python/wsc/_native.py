"""Loads the compiled extension ``wsc._C`` and reports a missing or broken build with its reason."""

from __future__ import annotations

try:
    from wsc import _C
except ImportError as exc:  # pragma: no cover - exercised only on a broken install
    raise ImportError(
        "wsc: the native extension wsc._C could not be loaded "
        f"({type(exc).__name__}: {exc}). Build and install the package with "
        "`pip install .` (or `pip install --no-build-isolation -e .` for development)."
    ) from exc

# dtype codes shared with csrc/include/wsc/common.h
F32, F16, BF16 = 0, 1, 2
U8, U16 = 0, 1

__all__ = ["_C", "F32", "F16", "BF16", "U8", "U16"]
