"""Launch plumbing for the CUDA kernels of wsc.ops: availability, stream and status buffer.

The kernels are torch-free (csrc/cuda/); this module hands them device addresses, the
device index, PyTorch's current stream on that device (public API) and a small status
buffer allocated through PyTorch's caching allocator.
"""

from __future__ import annotations

import torch

from wsc._native import _C


def unavailable_reason() -> str | None:
    """None when the CUDA kernels can run here, else why not (one line)."""
    if not _C.built_with_cuda:
        return "wsc was built without CUDA kernels (WSC_CUDA=OFF, or no nvcc at build time)"
    if not torch.cuda.is_available():
        cuda = torch.version.cuda
        return f"PyTorch sees no CUDA device (torch {torch.__version__}, built with CUDA {cuda})"
    if _C.cuda_device_count() == 0:
        return f"wsc's CUDA runtime sees no device: {_C.cuda_runtime_info()}"
    return None


def launch(name: str, device: torch.device, *args):
    """Call the native CUDA function ``name`` with ``args`` + (status, device index, stream) on ``device``."""
    if not _C.built_with_cuda:
        raise RuntimeError(
            f"a CUDA tensor ({device}) was passed, but wsc was built without CUDA kernels; "
            "rebuild with nvcc on the PATH (WSC_CUDA=ON) or move the tensors to the cpu"
        )
    index = device.index if device.index is not None else torch.cuda.current_device()
    stream = torch.cuda.current_stream(index).cuda_stream
    status = torch.empty(_C.cuda_status_bytes // 8, dtype=torch.int64, device=torch.device("cuda", index))
    return getattr(_C, name)(*args, status.data_ptr(), index, stream)
