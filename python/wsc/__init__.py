"""wsc: weight-sharing compression of trained neural networks."""

from wsc._native import _C
from wsc import huffman, ops, rans, reference
from wsc.errors import FormatError
from wsc import evaluate
from wsc.api import PAPER, compress, load_into, load_state_dict
from wsc.container import inspect
from wsc.result import CompressionResult, Solution
from wsc import heap, nn
from wsc.nn import load_shared

__version__ = "0.1.0"


def get_num_threads() -> int:
    """Number of threads the native kernels use."""
    return _C.get_num_threads()


def set_num_threads(n: int) -> None:
    """Set the native kernels' thread count; ``n < 1`` restores the default (all cores)."""
    if not isinstance(n, int) or isinstance(n, bool):
        raise TypeError(f"n must be an int, got {type(n).__name__}")
    _C.set_num_threads(n)


def cuda_available() -> bool:
    """True when the extension was built with CUDA kernels and a CUDA device is visible.

    wsc.ops then runs CUDA tensors on the GPU. ``wsc._cuda.unavailable_reason()`` says why not.
    """
    from wsc import _cuda

    return _cuda.unavailable_reason() is None


__all__ = ["huffman", "rans", "ops", "reference", "evaluate", "compress", "PAPER", "load_state_dict", "load_into", "inspect",
           "heap", "nn", "load_shared", "CompressionResult", "Solution", "FormatError", "get_num_threads", "set_num_threads",
           "cuda_available"]
