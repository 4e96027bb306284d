"""Models: small built-in CNNs with shipped Fashion-MNIST weights, model loading, deterministic training.

``load_model(spec, weights)`` understands these specs:

=========================== ==================================================================
``lenet5-fmnist`` etc.      a built-in model with its shipped trained weights (``BUILTINS``)
``path/to/model.pt``        a TorchScript archive (``torch.jit.save``); ``.pt2``: a
                            ``torch.export`` archive
``package.module:factory``  import the module, call ``factory()`` (a class or a function that
                            returns an ``nn.Module``); weights from ``weights``
``torchvision:NAME``        ``torchvision.models.get_model(NAME)``, only where torchvision imports
``timm:NAME``               ``timm.create_model(NAME)``, only where timm imports
=========================== ==================================================================

Nothing is ever downloaded: pretrained weights come only from ``weights``, a ``.safetensors``
file or a state dict saved with ``torch.save`` (read with ``weights_only=True``). Every model
is returned on the CPU in eval mode (a torch.export module keeps the mode it was exported in).
"""

from __future__ import annotations

import contextlib
import importlib
import os
import time
import warnings
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

ASSETS = Path(__file__).resolve().with_name("assets")


# ---------------------------------------------------------------- architectures
def _max_pool2(x: torch.Tensor) -> torch.Tensor:
    """F.max_pool2d(x, 2), the same values (a zero's sign aside); without autograd as two
    elementwise maxima of strided views, 5-10x faster than max_pool2d on the CPU (measured
    on LeNet-5's activations, contiguous and channels_last; its evaluation: 67 -> 47 ms)."""
    if (torch.is_grad_enabled() and x.requires_grad) or min(x.shape[-2:]) < 2:  # too small: its error
        return F.max_pool2d(x, 2)
    x = x[..., :x.shape[-2] // 2 * 2, :x.shape[-1] // 2 * 2]
    x = torch.maximum(x[..., 0::2], x[..., 1::2])
    return torch.maximum(x[..., 0::2, :], x[..., 1::2, :])


class LeNet5(nn.Module):
    """LeNet-5 for 1x28x28 input: conv5x5(6, pad 2)-relu-pool, conv5x5(16)-relu-pool, fc120, fc84, fc10."""

    def __init__(self, num_classes: int = 10, in_channels: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 6, 5, padding=2)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = _max_pool2(F.relu(self.conv1(x)))
        x = _max_pool2(F.relu(self.conv2(x)))
        x = F.relu(self.fc1(torch.flatten(x, 1)))
        return self.fc3(F.relu(self.fc2(x)))


class LeNet300100(nn.Module):
    """LeNet-300-100: the MLP 784-300-100-10 with ReLU."""

    def __init__(self, num_classes: int = 10, in_features: int = 784):
        super().__init__()
        self.fc1 = nn.Linear(in_features, 300)
        self.fc2 = nn.Linear(300, 100)
        self.fc3 = nn.Linear(100, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.fc1(torch.flatten(x, 1)))
        return self.fc3(F.relu(self.fc2(x)))


def _separable(cin: int, cout: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(cin, cin, 3, stride=stride, padding=1, groups=cin, bias=False),  # depthwise
        nn.BatchNorm2d(cin), nn.ReLU(inplace=True),
        nn.Conv2d(cin, cout, 1, bias=False),  # pointwise
        nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
    )


class DepthwiseCNN(nn.Module):
    """A small depthwise-separable CNN for 1x28x28 input (MobileNet-style).

    stem conv3x3(16)-BN-ReLU; three blocks of depthwise conv3x3 + pointwise conv1x1, each with
    BN and ReLU (16->32 stride 2, 32->64 stride 2, 64->128); global average pool; linear.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 1):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, 16, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(16), nn.ReLU(inplace=True))
        self.blocks = nn.Sequential(_separable(16, 32, 2), _separable(32, 64, 2), _separable(64, 128, 1))
        self.classifier = nn.Linear(128, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(x))
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class RowGRU(nn.Module):
    """A recurrent classifier: a GRU reads a 1x28x28 image row by row (28 steps of 28 pixels);
    a linear layer classifies its last hidden state. Its weights (input and recurrent
    projections of three gates, and the classifier) live on different scales."""

    def __init__(self, num_classes: int = 10, rows: int = 28, hidden: int = 128):
        super().__init__()
        self.rows = rows
        self.gru = nn.GRU(rows, hidden, batch_first=True)
        self.classifier = nn.Linear(hidden, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = x.reshape(x.shape[0], -1, self.rows)
        _, h = self.gru(seq)
        return self.classifier(h[-1])


# ---------------------------------------------------------------- built-in trained models
@dataclass(frozen=True)
class Builtin:
    """A built-in model: its architecture, shipped weights file (in ``wsc/assets``) and dataset spec."""

    name: str
    factory: Callable[[], nn.Module]
    weights: str
    dataset: str


BUILTINS: Mapping[str, Builtin] = {
    b.name: b for b in (
        Builtin("lenet5-fmnist", LeNet5, "lenet5_fmnist.safetensors", "fashion-mnist"),
        Builtin("lenet300-fmnist", LeNet300100, "lenet300_fmnist.safetensors", "fashion-mnist"),
        Builtin("dwcnn-fmnist", DepthwiseCNN, "dwcnn_fmnist.safetensors", "fashion-mnist"),
        Builtin("gru-fmnist", RowGRU, "gru_fmnist.safetensors", "fashion-mnist"),
    )
}
DEFAULT_MODEL = "lenet5-fmnist"


def default_model() -> tuple[nn.Module, str]:
    """(LeNet-5 with its shipped Fashion-MNIST weights, the dataset spec ``"fashion-mnist"``)."""
    return load_model(DEFAULT_MODEL), BUILTINS[DEFAULT_MODEL].dataset


# ---------------------------------------------------------------- loading
def load_model(spec: str, weights: str | os.PathLike | None = None) -> nn.Module:
    """The model named by ``spec`` (see the module doc), with ``weights`` loaded when given."""
    if not isinstance(spec, str) or not spec:
        raise TypeError(f"spec must be a non-empty str; got {spec!r}")
    if spec in BUILTINS:
        b = BUILTINS[spec]
        model = b.factory()
        path = Path(weights) if weights is not None else ASSETS / b.weights
        if weights is None and not path.is_file():
            raise FileNotFoundError(f"the shipped weights of {spec} are missing: {path} (a broken install? "
                                    "bench/train_models.py writes them)")
        return _ready(load_weights(model, path))
    prefix, _, name = spec.partition(":")
    if prefix in ("torchvision", "timm") and name:
        model = _hub_model(prefix, name)
    elif Path(spec).is_file():
        model = _load_archive(Path(spec))
    elif ":" in spec and _looks_like_factory(spec):
        model = _call_factory(spec)
    elif spec.endswith((".pt", ".pth", ".pt2", ".safetensors")):
        raise FileNotFoundError(f"model file {spec} does not exist")
    else:
        raise ValueError(f"unknown model spec {spec!r}; expected a built-in name ({', '.join(BUILTINS)}), "
                         "a TorchScript .pt/.pth or torch.export .pt2 file, package.module:factory, "
                         "torchvision:NAME or timm:NAME")
    if weights is not None:
        load_weights(model, weights)
    return _ready(model)


def _ready(model: nn.Module) -> nn.Module:
    return _eval_mode(model.to("cpu"))


def _eval_mode(model: nn.Module) -> nn.Module:
    """``model.eval()``; a torch.export module refuses it, its train/eval behaviour being fixed at export."""
    try:
        model.eval()
    except NotImplementedError:
        pass
    return model


def _looks_like_factory(spec: str) -> bool:
    module, _, attr = spec.partition(":")
    parts = module.split(".") + attr.split(".")
    return all(p.isidentifier() for p in parts)


def _call_factory(spec: str) -> nn.Module:
    module_name, _, attr = spec.partition(":")
    try:
        obj = importlib.import_module(module_name)
    except ImportError as exc:
        raise ImportError(f"model spec {spec!r}: cannot import module {module_name!r} ({exc})") from exc
    for part in attr.split("."):
        if not hasattr(obj, part):
            owner = getattr(obj, "__name__", obj)
            raise AttributeError(f"model spec {spec!r}: {owner!r} has no attribute {part!r}")
        obj = getattr(obj, part)
    if isinstance(obj, nn.Module):
        return obj
    if not callable(obj):
        raise TypeError(f"model spec {spec!r}: {attr} is a {type(obj).__name__}, not a class or function")
    model = obj()
    if not isinstance(model, nn.Module):
        raise TypeError(f"model spec {spec!r}: {attr}() returned a {type(model).__name__}, "
                        "not a torch.nn.Module")
    return model


def _hub_model(package: str, name: str) -> nn.Module:
    try:
        lib = importlib.import_module(package)
    except Exception as exc:  # torchvision built for another torch fails with RuntimeError, not ImportError
        raise ImportError(f"{package}:{name} needs the {package} package, which does not import here "
                          f"({type(exc).__name__}: {exc}); use package.module:factory with a weights file "
                          "instead") from exc
    if package == "torchvision":
        try:
            return lib.models.get_model(name, weights=None)
        except ValueError as exc:
            raise ValueError(f"torchvision has no model named {name!r} ({exc})") from exc
    if not lib.is_model(name):
        raise ValueError(f"timm has no model named {name!r}")
    return lib.create_model(name, pretrained=False)


def _load_archive(path: Path) -> nn.Module:
    """A TorchScript (.pt/.pth) or torch.export (.pt2) archive; anything else is refused with the reason."""
    if path.suffix == ".safetensors":
        raise ValueError(f"{path} holds weights only; pass the architecture as the spec "
                         "(package.module:factory) and this file as weights")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"{path} is not a TorchScript, torch.export or torch.save archive (not a zip file)")
    with zipfile.ZipFile(path) as z:
        names = z.namelist()
    if path.suffix == ".pt2" or any(n.endswith("archive_format") for n in names):
        try:
            return torch.export.load(path).module()
        except Exception as exc:
            raise ValueError(f"{path}: cannot load the torch.export archive "
                             f"({type(exc).__name__}: {exc})") from exc
    if any("/code/" in n for n in names) and any(n.endswith("constants.pkl") for n in names):
        # the user chose the format: torch.jit.load's deprecation is not theirs to fix here
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r".*torch\.jit\.load.* is deprecated",
                                    category=DeprecationWarning)
            try:
                return torch.jit.load(str(path), map_location="cpu")
            except Exception as exc:
                raise ValueError(f"{path}: cannot load the TorchScript archive "
                                 f"({type(exc).__name__}: {exc})") from exc
    raise ValueError(f"{path} is a torch.save file, not a TorchScript or torch.export archive. A state "
                     "dict goes in weights, with the architecture as package.module:factory; a pickled "
                     "whole model is not loaded (unpickling can run code): save it with torch.jit.save "
                     "or torch.export")


def load_weights(model: nn.Module, path: str | os.PathLike) -> nn.Module:
    """Load the state dict in ``path`` into ``model``, strictly: a .safetensors file, or else a
    ``torch.save`` file read with ``weights_only=True``.

    A checkpoint dict that wraps the state dict under ``state_dict``/``model_state_dict``/``model``
    is unwrapped, and a ``module.`` prefix (DataParallel) is dropped when the model has none.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"weights file {path} does not exist")
    if path.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        try:
            state = load_file(str(path), device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise ValueError(f"{path}: not a valid safetensors file ({exc})") from exc
    else:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as exc:
            first = str(exc).splitlines()[0] if str(exc) else ""
            raise ValueError(f"{path}: cannot read it as a state dict with torch.load(weights_only=True) "
                             f"({type(exc).__name__}: {first})") from exc
    if isinstance(state, Mapping):
        for key in ("state_dict", "model_state_dict", "model"):
            if isinstance(state.get(key), Mapping):
                state = state[key]
                break
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(f"{path}: expected a state dict (names -> tensors); got {type(state).__name__}")
    own = model.state_dict()
    prefixed = [k.startswith("module.") for k in state]
    if state and all(prefixed) and not any(k.startswith("module.") for k in own):
        state = {k[len("module."):]: v for k, v in state.items()}
    missing, unexpected = sorted(set(own) - set(state)), sorted(set(state) - set(own))
    shapes = [f"{k}: {tuple(state[k].shape)} vs {tuple(own[k].shape)}" for k in own
              if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        def few(xs):
            return ", ".join(xs[:5]) + (f" (+{len(xs) - 5} more)" if len(xs) > 5 else "")
        problems = [f"missing {few(missing)}" if missing else "",
                    f"unexpected {few(unexpected)}" if unexpected else "",
                    f"shape mismatch {few(shapes)}" if shapes else ""]
        raise ValueError(f"{path} does not fit {type(model).__name__}: "
                         + "; ".join(p for p in problems if p))
    model.load_state_dict(state, strict=True)
    return model


# ---------------------------------------------------------------- training and accuracy
@contextlib.contextmanager
def _deterministic(seed: int, num_threads: int | None):
    """Seeded global RNG, deterministic algorithms and a thread count, all restored on exit."""
    was_det = torch.are_deterministic_algorithms_enabled()
    was_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    threads = torch.get_num_threads()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        torch.use_deterministic_algorithms(True)
        if num_threads is not None:
            torch.set_num_threads(num_threads)
        try:
            yield
        finally:
            torch.use_deterministic_algorithms(was_det, warn_only=was_warn)
            torch.set_num_threads(threads)


def train(model: nn.Module, train_dataset, epochs: int = 10, seed: int = 0, lr: float = 1e-3,
          batch_size: int = 128, *, weight_decay: float = 0.0, num_threads: int | None = None,
          log: Callable[[str], None] | None = None) -> nn.Module:
    """Train ``model`` in place on the CPU with Adam, a cosine learning-rate decay and cross-entropy.

    Deterministic: the same model, data, arguments and thread count give the same weights bit
    for bit (the shuffling, the global RNG and deterministic algorithms are all fixed by ``seed``;
    ``num_threads`` pins the thread count, which float reductions can depend on). The global RNG
    and torch's settings are restored afterwards. Returns ``model`` in eval mode.
    """
    for name, v in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
            raise ValueError(f"{name} must be a positive int; got {v!r}")
    if not lr > 0:
        raise ValueError(f"lr must be positive; got {lr!r}")
    n = len(train_dataset)
    if n == 0:
        raise ValueError("train_dataset is empty")
    tensors = getattr(train_dataset, "tensors", None)
    steps_per_epoch = -(-n // batch_size)
    with _deterministic(seed, num_threads):
        gen = torch.Generator().manual_seed(seed)
        model.to("cpu").train()
        opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs * steps_per_epoch)
        for epoch in range(epochs):
            start, total, correct, seen = time.perf_counter(), 0.0, 0, 0
            if tensors is not None:
                perm = torch.randperm(n, generator=gen)
                batches = ((tensors[0][i], tensors[1][i]) for i in perm.split(batch_size))
            else:
                batches = torch.utils.data.DataLoader(train_dataset, batch_size=batch_size, shuffle=True,
                                                      generator=gen, num_workers=0)
            for x, y in batches:
                out = model(x)
                loss = F.cross_entropy(out, y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                total += float(loss.detach()) * len(y)
                correct += int((out.detach().argmax(1) == y).sum())
                seen += len(y)
            if log is not None:
                log(f"epoch {epoch + 1}/{epochs}: loss {total / seen:.4f}, "
                    f"train accuracy {correct / seen:.4f}, {time.perf_counter() - start:.1f} s")
    return model.eval()


@torch.inference_mode()
def accuracy(model: nn.Module, dataset, indices=None, batch_size: int = 1000) -> float:
    """Top-1 accuracy of ``model`` (put in eval mode) on ``dataset`` or its ``indices``."""
    from wsc.data import loader

    _eval_mode(model)
    correct = seen = 0
    for x, y in loader(dataset, indices, batch_size):
        correct += int((model(x).argmax(1) == y).sum())
        seen += len(y)
    if seen == 0:
        raise ValueError("accuracy of no examples is undefined")
    return correct / seen


__all__ = [
    "LeNet5", "LeNet300100", "DepthwiseCNN", "RowGRU", "Builtin", "BUILTINS", "DEFAULT_MODEL", "default_model",
    "load_model", "load_weights", "train", "accuracy",
]
