"""wsc.data: real Fashion-MNIST and MNIST, the CIFAR and ImageFolder formats on files the tests write,
clear errors on malformed input, class-balanced splits and the in-order loader."""

from __future__ import annotations

import gzip
import os
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import Subset, TensorDataset

from wsc import data

HAVE_FMNIST = Path(data.FASHION_MNIST_DIR, "t10k-images-idx3-ubyte.gz").is_file()
needs_fmnist = pytest.mark.skipif(
    not HAVE_FMNIST, reason=f"Fashion-MNIST not found in {data.FASHION_MNIST_DIR}: "
                            "apt-get install dataset-fashion-mnist")


# ---------------------------------------------------------------- real data
@needs_fmnist
def test_fashion_mnist_train_and_test():
    train, test = data.load("fashion-mnist", "train"), data.load("fashion-mnist")
    assert isinstance(train, TensorDataset) and isinstance(train, data.TensorImageDataset)
    for ds, n in ((train, 60000), (test, 10000)):
        x, y = ds.tensors
        assert x.shape == (n, 1, 28, 28) and x.dtype == torch.float32
        assert y.shape == (n,) and y.dtype == torch.int64
        assert np.array_equal(np.bincount(y.numpy()), np.full(10, n // 10))
        assert len(ds.classes) == 10
    x = train.images
    assert abs(float(x.mean())) < 1e-3 and abs(float(x.std()) - 1) < 1e-3  # normalised with train statistics
    img, label = test[0]
    assert img.shape == (1, 28, 28) and isinstance(int(label), int)


@needs_fmnist
def test_fashion_mnist_dir_spec_is_the_same_data():
    a = data.load("fashion-mnist")
    b = data.load(f"fashion-mnist:{data.FASHION_MNIST_DIR}")
    assert torch.equal(a.images, b.images) and torch.equal(a.labels, b.labels)


def test_mnist5k_is_a_fixed_balanced_split():
    train, test = data.load("mnist5k", "train"), data.load("mnist5k", "test")
    assert train.images.shape == (4000, 1, 28, 28) and test.images.shape == (1000, 1, 28, 28)
    assert np.array_equal(np.bincount(test.labels.numpy()), np.full(10, 100))
    assert np.array_equal(np.bincount(train.labels.numpy()), np.full(10, 400))
    again = data.load("mnist5k", "test")
    assert torch.equal(again.images, test.images)
    with pytest.raises(ValueError, match="no directory"):
        data.load("mnist5k:/tmp")


# ---------------------------------------------------------------- idx files written here
def _write_idx(d: Path, prefix: str, images: np.ndarray, labels: np.ndarray, compress: bool = True) -> None:
    n, rows, cols = images.shape
    dims = b"".join(v.to_bytes(4, "big") for v in (n, rows, cols))
    img = (0x803).to_bytes(4, "big") + dims + images.tobytes()
    lbl = (0x801).to_bytes(4, "big") + len(labels).to_bytes(4, "big") + labels.astype(np.uint8).tobytes()
    for name, raw in ((f"{prefix}-images-idx3-ubyte", img), (f"{prefix}-labels-idx1-ubyte", lbl)):
        if compress:
            with gzip.open(d / f"{name}.gz", "wb") as f:
                f.write(raw)
        else:
            (d / name).write_bytes(raw)


@pytest.mark.parametrize("compress", [True, False])
def test_idx_dir_roundtrip(tmp_path, compress):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    labels = np.array([0, 1, 2, 3, 9, 9, 4])
    _write_idx(tmp_path, "t10k", imgs, labels, compress)
    ds = data.load(f"fashion-mnist:{tmp_path}", "test")
    assert ds.images.shape == (7, 1, 28, 28)
    assert ds.labels.tolist() == labels.tolist()
    expect = (torch.from_numpy(imgs).float() / 255 - 0.2860) / 0.3530
    torch.testing.assert_close(ds.images[:, 0], expect)
    mn = data.load(f"mnist:{tmp_path}", "test", mean=[0.5], std=[0.25])
    torch.testing.assert_close(mn.images[:, 0], (torch.from_numpy(imgs).float() / 255 - 0.5) / 0.25)


def test_idx_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.load(f"fashion-mnist:{tmp_path / 'nowhere'}")
    with pytest.raises(FileNotFoundError, match="t10k-images-idx3-ubyte"):
        data.load(f"fashion-mnist:{tmp_path}")
    imgs, labels = np.zeros((3, 28, 28), np.uint8), np.zeros(3, np.uint8)
    _write_idx(tmp_path, "t10k", imgs, labels, compress=False)
    path = tmp_path / "t10k-images-idx3-ubyte"
    raw = path.read_bytes()
    path.write_bytes(raw[:-5])
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte: header says dimensions \(3, 28, 28\)"):
        data.load(f"fashion-mnist:{tmp_path}")
    path.write_bytes((0x801).to_bytes(4, "big") + raw[4:])
    with pytest.raises(ValueError, match="magic number is 0x00000801; expected 0x00000803"):
        data.load(f"fashion-mnist:{tmp_path}")
    path.write_bytes(raw[:6])
    with pytest.raises(ValueError, match="too short"):
        data.load(f"fashion-mnist:{tmp_path}")
    _write_idx(tmp_path, "t10k", imgs, np.zeros(2, np.uint8), compress=False)
    with pytest.raises(ValueError, match="3 images but .* 2 labels"):
        data.load(f"fashion-mnist:{tmp_path}")
    _write_idx(tmp_path, "t10k", imgs, np.array([0, 10, 1]), compress=False)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 9\]"):
        data.load(f"fashion-mnist:{tmp_path}")
    (tmp_path / "t10k-images-idx3-ubyte").unlink()
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match="cannot read the idx file"):
        data.load(f"fashion-mnist:{tmp_path}")


def test_bad_specs_and_splits():
    with pytest.raises(ValueError, match="unknown dataset spec 'svhn'"):
        data.load("svhn")
    with pytest.raises(ValueError, match="split must be one of"):
        data.load("mnist5k", "val")
    with pytest.raises(ValueError, match="needs a directory"):
        data.load("cifar10")
    with pytest.raises(TypeError):
        data.load("")


# ---------------------------------------------------------------- CIFAR python batches written here
def _cifar_images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8)


def _dump(path: Path, obj, protocol: int) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f, protocol=protocol)


def _write_cifar10(d: Path, protocol: int = 2, n: int = 4) -> dict[str, tuple[np.ndarray, list[int]]]:
    """The layout of cifar-10-batches-py: dicts with bytes keys, data uint8 (N, 3072) row = R, G, B planes."""
    d.mkdir(parents=True, exist_ok=True)
    written = {}
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        x = _cifar_images(n, i)
        y = [(i + j) % 10 for j in range(n)]
        _dump(d / name, {b"batch_label": name.encode(), b"labels": y, b"data": x.reshape(n, 3072),
                         b"filenames": [f"img{j}.png".encode() for j in range(n)]}, protocol)
        written[name] = (x, y)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer",
             b"dog", b"frog", b"horse", b"ship", b"truck"]
    _dump(d / "batches.meta", {b"num_cases_per_batch": n, b"label_names": names, b"num_vis": 3072}, protocol)
    return written


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_cifar10_batches(tmp_path, protocol):
    written = _write_cifar10(tmp_path, protocol)
    test = data.load(f"cifar10:{tmp_path}")
    x, y = written["test_batch"]
    assert test.images.shape == (4, 3, 32, 32) and test.labels.tolist() == y
    mean = torch.tensor(data.CIFAR10_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(data.CIFAR10_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(test.images, (torch.from_numpy(x).float() / 255 - mean) / std)
    assert test.classes[0] == "airplane" and test.classes[9] == "truck"
    train = data.load(f"cifar10:{tmp_path}", "train")
    assert len(train) == 20
    assert train.labels.tolist() == sum((written[f"data_batch_{k}"][1] for k in range(1, 6)), [])


def test_cifar10_finds_the_archive_folder(tmp_path):
    _write_cifar10(tmp_path / "cifar-10-batches-py")
    assert len(data.load(f"cifar10:{tmp_path}")) == 4


def test_cifar100_fine_labels(tmp_path):
    x_train, x_test = _cifar_images(6, 1), _cifar_images(3, 2)
    for name, x, fine in (("train", x_train, [0, 99, 5, 6, 7, 8]), ("test", x_test, [42, 0, 99])):
        _dump(tmp_path / name, {b"filenames": [b"a"] * len(x), b"batch_label": b"x", b"fine_labels": fine,
                                b"coarse_labels": [f // 5 for f in fine], b"data": x.reshape(len(x), -1)}, 2)
    _dump(tmp_path / "meta", {b"fine_label_names": [f"c{i}".encode() for i in range(100)],
                              b"coarse_label_names": [f"s{i}".encode() for i in range(20)]}, 2)
    test = data.load(f"cifar100:{tmp_path}")
    assert test.labels.tolist() == [42, 0, 99] and test.classes[42] == "c42"
    mean = torch.tensor(data.CIFAR100_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(data.CIFAR100_STD).view(1, 3, 1, 1)
    torch.testing.assert_close(test.images, (torch.from_numpy(x_test).float() / 255 - mean) / std)
    assert len(data.load(f"cifar100:{tmp_path}", "train")) == 6


class _Evil:
    def __reduce__(self):
        return (os.getcwd, ())


def test_cifar_pickle_is_restricted(tmp_path):
    _write_cifar10(tmp_path)
    _dump(tmp_path / "test_batch", {b"data": np.zeros((1, 3072), np.uint8), b"labels": [_Evil()]}, 2)
    with pytest.raises(ValueError, match="refusing to load global posix.getcwd"):
        data.load(f"cifar10:{tmp_path}")
    _dump(tmp_path / "test_batch", {b"data": np.array([None, 1], dtype=object), b"labels": [0]}, 2)
    with pytest.raises(ValueError, match="arrays of Python objects are not allowed"):
        data.load(f"cifar10:{tmp_path}")


def test_cifar_malformed_files(tmp_path):
    _write_cifar10(tmp_path)
    (tmp_path / "test_batch").write_bytes(b"garbage")
    with pytest.raises(ValueError, match="test_batch: not a valid CIFAR python batch"):
        data.load(f"cifar10:{tmp_path}")
    _dump(tmp_path / "test_batch", [1, 2, 3], 2)
    with pytest.raises(ValueError, match="must hold a dict; got list"):
        data.load(f"cifar10:{tmp_path}")
    _dump(tmp_path / "test_batch", {b"data": np.zeros((2, 3072), np.uint8)}, 2)
    with pytest.raises(ValueError, match="no 'labels' entry"):
        data.load(f"cifar10:{tmp_path}")
    _dump(tmp_path / "test_batch", {b"data": np.zeros((2, 100), np.uint8), b"labels": [0, 1]}, 2)
    with pytest.raises(ValueError, match=r"uint8 array \(N, 3072\); got uint8 \(2, 100\)"):
        data.load(f"cifar10:{tmp_path}")
    _dump(tmp_path / "test_batch", {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0]}, 2)
    with pytest.raises(ValueError, match="2 images but 'labels' has shape"):
        data.load(f"cifar10:{tmp_path}")
    _dump(tmp_path / "test_batch", {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 10]}, 2)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 9\]"):
        data.load(f"cifar10:{tmp_path}")
    (tmp_path / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="missing data_batch_3"):
        data.load(f"cifar10:{tmp_path}", "train")
    with pytest.raises(FileNotFoundError, match="missing train"):
        data.load(f"cifar100:{tmp_path}", "train")


# ---------------------------------------------------------------- ImageFolder written here
def _write_tree(root: Path) -> None:
    from PIL import Image

    colours = {"n001": (255, 0, 0), "n002": (0, 128, 255), "n003": (10, 20, 30)}
    sizes = [(300, 260), (200, 400), (224, 224)]
    for c, (cls, rgb) in enumerate(colours.items()):
        (root / cls).mkdir(parents=True)
        for j, size in enumerate(sizes[: c + 1]):
            Image.new("RGB", size, rgb).save(root / cls / f"img{j}.png")
    (root / "n001" / "notes.txt").write_text("not an image")


def test_imagefolder_lazy_resize_crop_normalise(tmp_path):
    pytest.importorskip("PIL", reason="Pillow is an optional dependency (wsc[data])")
    _write_tree(tmp_path / "val")
    ds = data.load(f"imagenet:{tmp_path}")  # finds DIR/val
    assert isinstance(ds, data.ImageFolderDataset)
    assert ds.classes == ("n001", "n002", "n003") and len(ds) == 6
    assert data.labels_of(ds).tolist() == [0, 1, 1, 2, 2, 2]
    mean, std = torch.tensor(data.IMAGENET_MEAN), torch.tensor(data.IMAGENET_STD)
    for i in (0, 2, 5):
        x, y = ds[i]
        assert x.shape == (3, 224, 224) and x.dtype == torch.float32
        rgb = torch.tensor([(255, 0, 0), (0, 128, 255), (10, 20, 30)][y], dtype=torch.float32)
        torch.testing.assert_close(x, ((rgb / 255 - mean) / std).view(3, 1, 1).expand(3, 224, 224))
    xb, yb = next(iter(data.loader(ds, [1, 3], batch_size=2)))
    assert xb.shape == (2, 3, 224, 224) and yb.tolist() == [1, 2]
    assert len(data.load(f"imagenet:{tmp_path / 'val'}")) == 6  # the folder itself


def test_imagefolder_errors(tmp_path):
    pytest.importorskip("PIL", reason="Pillow is an optional dependency (wsc[data])")
    with pytest.raises(FileNotFoundError, match="no class subfolders"):
        data.load(f"imagenet:{tmp_path}")
    with pytest.raises(FileNotFoundError, match="needs DIR/train"):
        data.load(f"imagenet:{tmp_path}", "train")
    (tmp_path / "cls_a").mkdir()
    with pytest.raises(FileNotFoundError, match="cls_a: class folder holds no image"):
        data.load(f"imagenet:{tmp_path}")
    (tmp_path / "cls_a" / "broken.jpg").write_bytes(b"not a jpeg")
    ds = data.load(f"imagenet:{tmp_path}")  # lazy: nothing decoded yet
    with pytest.raises(ValueError, match="broken.jpg: cannot decode the image"):
        ds[0]
    with pytest.raises(FileNotFoundError, match="does not exist"):
        data.load(f"imagenet:{tmp_path / 'missing'}")


# ---------------------------------------------------------------- labels, splits, loader
def test_labels_of_every_kind():
    y = torch.tensor([3, 1, 2, 0])
    ds = TensorDataset(torch.zeros(4, 2), y)
    assert data.labels_of(ds).tolist() == [3, 1, 2, 0]
    assert data.labels_of(Subset(ds, [2, 0])).tolist() == [2, 3]

    class Plain(torch.utils.data.Dataset):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return torch.zeros(1), 2 - i

    assert data.labels_of(Plain()).tolist() == [2, 1, 0]
    assert data.labels_of(Plain()).dtype == np.int64


@settings(max_examples=60, deadline=None)
@given(counts=st.lists(st.integers(0, 30), min_size=1, max_size=8), frac=st.floats(0, 1),
       seed=st.integers(0, 2**32 - 1))
def test_balanced_split_properties(counts, frac, seed):
    labels = np.repeat(np.arange(len(counts)), counts)
    np.random.default_rng(seed).shuffle(labels)
    if len(labels) == 0:
        return
    size = max(1, round(frac * len(labels)))
    search, held = data.balanced_split(labels, size, seed)
    assert search.dtype == np.int64 and held.dtype == np.int64
    assert len(search) == size
    assert np.array_equal(np.sort(np.concatenate([search, held])), np.arange(len(labels)))
    assert np.all(np.diff(search) > 0) and np.all(np.diff(held) > 0)
    present = np.unique(labels)
    per_class = np.array([(labels[search] == c).sum() for c in present])
    avail = np.array([(labels == c).sum() for c in present])
    not_full = per_class < avail  # classes with examples left over
    if not_full.any():
        # no class short of its size holds fewer than the others minus one
        assert per_class.max() - per_class[not_full].min() <= 1
    again, _ = data.balanced_split(labels, size, seed)
    assert np.array_equal(search, again)


def test_balanced_split_examples_and_errors():
    labels = np.array([0] * 50 + [1] * 30 + [2] * 5)
    search, held = data.balanced_split(labels, 15, seed=1)
    assert np.bincount(labels[search]).tolist() == [5, 5, 5] and len(held) == 70
    search, _ = data.balanced_split(labels, 40, seed=1)  # class 2 runs out: the others share the rest
    assert sorted(np.bincount(labels[search]).tolist()) == [5, 17, 18]
    search, _ = data.balanced_split(labels, 85, seed=1)
    assert len(search) == 85
    a, _ = data.balanced_split(labels, 30, seed=1)
    b, _ = data.balanced_split(labels, 30, seed=2)
    assert not np.array_equal(a, b)
    with pytest.raises(ValueError, match=r"search_size must be in \[1, 85\]"):
        data.balanced_split(labels, 86, 0)
    with pytest.raises(ValueError, match="search_size must be in"):
        data.balanced_split(labels, 0, 0)
    with pytest.raises(ValueError, match="1-D integer array"):
        data.balanced_split(labels.astype(float), 3, 0)
    with pytest.raises(TypeError, match="search_size must be an int"):
        data.balanced_split(labels, 3.0, 0)


def test_loader_in_order_and_batched():
    x = torch.arange(10, dtype=torch.float32).view(10, 1)
    ds = TensorDataset(x, torch.arange(10))
    batches = list(data.loader(ds, batch_size=4))
    assert [b[1].tolist() for b in batches] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert batches[0][0].shape == (4, 1)
    batches[0][0].zero_()  # a batch is a copy: the dataset is untouched
    assert x[1, 0] == 1
    picked = list(data.loader(ds, np.array([7, 2, 5]), batch_size=2))
    assert [b[1].tolist() for b in picked] == [[7, 2], [5]]
    assert len(list(data.loader(ds, batch_size=4, drop_last=True))) == 2
    generic = list(data.loader(Subset(ds, range(10)), [1, 2, 3], batch_size=2))
    assert [b[1].tolist() for b in generic] == [[1, 2], [3]]
    with pytest.raises(ValueError, match="batch_size must be a positive int"):
        data.loader(ds, batch_size=0)
    with pytest.raises(IndexError, match=r"indices must lie in \[0, 10\)"):
        data.loader(ds, [10])
