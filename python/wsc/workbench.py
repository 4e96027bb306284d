"""Working copies of the model, and turning a codebook into shared weights or a file payload.

The caller's model is deep-copied once; further copies (one per worker thread) are made
from that copy. Applying a codebook writes ``wsc.ops.share`` of the original weights into
a copy's tensors in place (one O(N) pass); the originals are kept apart and never change.
"""

from __future__ import annotations

import contextlib
import copy
import queue
import threading

import numpy as np
import torch

from wsc import ops
from wsc.codebook import Codebook, SortedWeights, entropy_bits, huffman_bits
from wsc.container import Payload, SharedTensor
from wsc.params import ParamSpec, Selection, select

_NATIVE = (torch.float32, torch.float16, torch.bfloat16)


class Workbench:
    """The shared tensors of one model, their sorted values, and a pool of working copies."""

    def __init__(self, model: torch.nn.Module, params: ParamSpec = "weights"):
        if not isinstance(model, torch.nn.Module):
            raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
        self.selection: Selection = select(model, params)
        if not self.selection.shared:
            raise ValueError("no tensor selected for sharing: the model has no floating parameters "
                             "matching params (use params='all' or a predicate)")
        base = copy.deepcopy(model)  # the only copy made of the caller's model
        state = base.state_dict()
        self.originals = {n: state[n].detach().to("cpu", copy=True).contiguous() for n in self.selection.shared}
        self.stored = {n: state[n].detach().to("cpu", copy=True).contiguous() for n in self.selection.unshared}
        # float64 weights are binned as float32 (the codebook is float32 anyway)
        self._work = {n: (t if t.dtype in _NATIVE else t.float()).reshape(-1) for n, t in self.originals.items()}
        self.weights = SortedWeights(torch.cat([w.float() for w in self._work.values()]).numpy())
        self.lo, self.hi = self.weights.lo, self.weights.hi
        self._per_tensor: dict[str, SortedWeights] | None = None
        self._pool: queue.SimpleQueue = queue.SimpleQueue()
        self._base = base
        self._pool.put(self._targets(base))
        self._copy_lock = threading.Lock()

    # ------------------------------------------------------------ sizes
    @property
    def n_shared(self) -> int:
        return self.weights.n

    @property
    def original_bytes(self) -> int:
        """Bytes of every tensor the file represents, in its own dtype (tied tensors once)."""
        ts = list(self.originals.values()) + list(self.stored.values())
        return sum(t.numel() * t.element_size() for t in ts)

    def codebook(self, k: int) -> Codebook:
        return Codebook.uniform(self.weights, k)

    def tensor_counts(self, cb: Codebook) -> list[np.ndarray]:
        """Per shared tensor, how many of its weights fall in each codebook group."""
        if self._per_tensor is None:
            self._per_tensor = {n: SortedWeights(w.float().numpy(), self.lo, self.hi) for n, w in self._work.items()}
        out = []
        for sw in self._per_tensor.values():
            counts = np.diff(sw.starts(cb.k))[cb.bins]
            out.append(np.add.reduceat(counts, list(cb.groups)))
        return out

    def coded_bits(self, cb: Codebook, coder: str = "huffman") -> int:
        """Estimated coded size in bits: payloads, code tables and the codebook.

        ``coder``: ``"huffman"`` (Huffman payloads, one byte of code length per value and
        tensor), ``"rans"`` (order-0 entropy of each tensor, its 32 bytes of flushed states,
        about two bytes of frequency table per value) or ``"auto"`` (the smaller per tensor).
        """
        total = 32 * cb.size
        for c in self.tensor_counts(cb):
            huffman = huffman_bits(c) + 8 * cb.size
            rans = int(np.ceil(entropy_bits(c) * c.sum())) + 256 + 16 * int(np.count_nonzero(c))
            total += {"huffman": huffman, "rans": rans, "auto": min(huffman, rans)}[coder]
        return int(total)

    # ------------------------------------------------------------ models
    @staticmethod
    def _targets(model: torch.nn.Module) -> tuple[torch.nn.Module, dict[str, torch.Tensor]]:
        return model, model.state_dict()

    def _new_copy(self):
        with self._copy_lock:
            return self._targets(copy.deepcopy(self._base))

    def apply(self, target: dict[str, torch.Tensor], cb: Codebook | None) -> None:
        """Write the shared weights of ``cb`` (or the originals when None) into a copy's tensors."""
        table = None if cb is None else torch.from_numpy(cb.table())
        with torch.no_grad():
            for name, work in self._work.items():
                t = target[name]
                if table is None:
                    t.copy_(self.originals[name])
                else:
                    t.copy_(ops.share(work, self.lo, self.hi, table).reshape(t.shape))

    @contextlib.contextmanager
    def model(self, cb: Codebook | None):
        """A working copy of the model holding the shared weights of ``cb`` (None: the originals)."""
        try:
            item = self._pool.get_nowait()
        except queue.Empty:
            item = self._new_copy()
        try:
            self.apply(item[1], cb)
            yield item[0]
        finally:
            self._pool.put(item)

    # ------------------------------------------------------------ files
    def indices(self, cb: Codebook) -> dict[str, np.ndarray]:
        """Flat codebook indices (uint8 for <= 256 values, else uint16) of every shared tensor."""
        itype = np.uint8 if cb.size <= 256 else np.uint16
        lut = cb.index_map.astype(itype)
        out = {}
        for name, work in self._work.items():
            b = ops.bin_uniform(work, cb.k, self.lo, self.hi)
            out[name] = lut[b.indices.numpy().astype(np.int64)]
        return out

    def payload(self, cb: Codebook, info: dict | None = None) -> Payload:
        shared = [SharedTensor(n, idx, tuple(self.originals[n].shape), self.originals[n].dtype)
                  for n, idx in self.indices(cb).items()]
        return Payload(cb.values, shared, dict(self.stored), dict(self.selection.aliases),
                       list(self.selection.order), info or {})


__all__ = ["Workbench"]
