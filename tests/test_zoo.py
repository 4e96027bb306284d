"""wsc.zoo: architectures, every kind of model spec, shipped weights, deterministic training."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn
from torch.nn import functional as F
from torch.utils.data import Subset, TensorDataset

from wsc import data, zoo

HAVE_FMNIST = Path(data.FASHION_MNIST_DIR, "t10k-images-idx3-ubyte.gz").is_file()
needs_fmnist = pytest.mark.skipif(
    not HAVE_FMNIST, reason=f"Fashion-MNIST not found in {data.FASHION_MNIST_DIR}: "
                            "apt-get install dataset-fashion-mnist")


def _same(a: nn.Module, b: nn.Module, x: torch.Tensor | None = None) -> None:
    x = torch.randn(3, 1, 28, 28, generator=torch.Generator().manual_seed(1)) if x is None else x
    with torch.no_grad():
        torch.testing.assert_close(a(x), b.eval()(x), rtol=0, atol=0)


@pytest.mark.parametrize("cls, n_params", [(zoo.LeNet5, 61706), (zoo.LeNet300100, 266610),
                                           (zoo.DepthwiseCNN, None)])
def test_architectures(cls, n_params):
    m = cls()
    assert m(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    if n_params is not None:
        assert sum(p.numel() for p in m.parameters()) == n_params
    if cls is zoo.DepthwiseCNN:
        groups = [c.groups for c in m.modules() if isinstance(c, nn.Conv2d)]
        assert groups.count(1) == 4 and sorted(g for g in groups if g > 1) == [16, 32, 64]
        assert any(isinstance(c, nn.BatchNorm2d) for c in m.modules())


@pytest.mark.parametrize("shape", [(3, 6, 28, 28), (2, 16, 10, 10), (2, 3, 7, 9), (1, 1, 2, 3)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_max_pool2_equals_max_pool2d(shape, channels_last):
    """LeNet-5's inference pooling (elementwise maxima) gives max_pool2d's values, NaN and
    infinities included (a zero's sign may differ: max_pool2d keeps the first of equal
    values); with autograd it is max_pool2d itself (same gradients)."""
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0))
    x.view(-1)[::13] = 0.0
    x.view(-1)[5::17] = float("nan")
    x.view(-1)[7::19] = -float("inf")
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        torch.testing.assert_close(zoo._max_pool2(x), F.max_pool2d(x, 2), rtol=0, atol=0, equal_nan=True)
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    zoo._max_pool2(a).nan_to_num().sum().backward()
    F.max_pool2d(b, 2).nan_to_num().sum().backward()
    assert torch.equal(a.grad, b.grad)
    with torch.no_grad(), pytest.raises(RuntimeError, match="Output size is too small"):
        zoo._max_pool2(x[..., :1, :])


# ---------------------------------------------------------------- module:factory + weights
def test_factory_with_pt_and_safetensors_weights(tmp_path):
    torch.manual_seed(3)
    src = zoo.LeNet5()
    torch.save(src.state_dict(), tmp_path / "w.pt")
    save_file(src.state_dict(), str(tmp_path / "w.safetensors"))
    torch.save({"epoch": 3, "state_dict": src.state_dict()}, tmp_path / "ckpt.pth")
    torch.save({f"module.{k}": v for k, v in src.state_dict().items()}, tmp_path / "ddp.pt")
    for w in ("w.pt", "w.safetensors", "ckpt.pth", "ddp.pt"):
        m = zoo.load_model("wsc.zoo:LeNet5", tmp_path / w)
        assert isinstance(m, zoo.LeNet5) and not m.training
        _same(m, src)


def test_factory_function_in_user_module(tmp_path, monkeypatch):
    (tmp_path / "my_models_for_wsc.py").write_text(
        "import torch\n"
        "def tiny():\n    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 10))\n"
        "def not_a_model():\n    return 42\n"
        "VALUE = 3\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    assert isinstance(zoo.load_model("my_models_for_wsc:tiny"), nn.Sequential)
    with pytest.raises(TypeError, match=r"not_a_model\(\) returned a int"):
        zoo.load_model("my_models_for_wsc:not_a_model")
    with pytest.raises(TypeError, match="VALUE is a int"):
        zoo.load_model("my_models_for_wsc:VALUE")
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        zoo.load_model("my_models_for_wsc:nope")
    with pytest.raises(ImportError, match="cannot import module 'no_such_module_xyz'"):
        zoo.load_model("no_such_module_xyz:f")


def test_weights_that_do_not_fit(tmp_path):
    save_file(zoo.LeNet300100().state_dict(), str(tmp_path / "mlp.safetensors"))
    with pytest.raises(ValueError, match="does not fit LeNet5: missing conv1.bias, conv1.weight"):
        zoo.load_model("wsc.zoo:LeNet5", tmp_path / "mlp.safetensors")
    sd = zoo.LeNet5().state_dict()
    sd["fc3.weight"] = torch.zeros(5, 84)
    torch.save(sd, tmp_path / "shape.pt")
    with pytest.raises(ValueError, match=r"shape mismatch fc3.weight: \(5, 84\) vs \(10, 84\)"):
        zoo.load_model("wsc.zoo:LeNet5", tmp_path / "shape.pt")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(ValueError, match="expected a state dict"):
        zoo.load_model("wsc.zoo:LeNet5", tmp_path / "list.pt")
    (tmp_path / "junk.safetensors").write_bytes(b"\x00" * 20)
    with pytest.raises(ValueError, match="not a valid safetensors file"):
        zoo.load_model("wsc.zoo:LeNet5", tmp_path / "junk.safetensors")
    with pytest.raises(FileNotFoundError, match="weights file .*absent.pt does not exist"):
        zoo.load_model("wsc.zoo:LeNet5", tmp_path / "absent.pt")


# ---------------------------------------------------------------- archives
def test_torchscript_file(tmp_path):
    torch.manual_seed(4)
    src = zoo.LeNet5().eval()
    with pytest.warns(DeprecationWarning, match="deprecated"):
        scripted = torch.jit.script(src)
    scripted.save(str(tmp_path / "lenet.pt"))
    m = zoo.load_model(str(tmp_path / "lenet.pt"))  # no warning escapes (pytest runs with -W error)
    _same(m, src)
    assert dict(m.named_parameters()).keys() == dict(src.named_parameters()).keys()


def test_torch_export_file(tmp_path):
    torch.manual_seed(5)
    src = zoo.LeNet300100().eval()
    x = torch.randn(3, 1, 28, 28)
    torch.export.save(torch.export.export(src, (x,)), str(tmp_path / "mlp.pt2"))
    m = zoo.load_model(str(tmp_path / "mlp.pt2"))
    _same(m, src, x)
    assert zoo.accuracy(m, _toy(3)) >= 0


def test_archives_that_are_refused(tmp_path):
    torch.save(zoo.LeNet5().state_dict(), tmp_path / "sd.pt")
    with pytest.raises(ValueError, match="torch.save file, not a TorchScript"):
        zoo.load_model(str(tmp_path / "sd.pt"))
    torch.save(zoo.LeNet5(), tmp_path / "pickled.pt")
    with pytest.raises(ValueError, match="a pickled whole model is not loaded"):
        zoo.load_model(str(tmp_path / "pickled.pt"))
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(ValueError, match="not a zip file"):
        zoo.load_model(str(tmp_path / "text.pt"))
    save_file(zoo.LeNet5().state_dict(), str(tmp_path / "w.safetensors"))
    with pytest.raises(ValueError, match="holds weights only"):
        zoo.load_model(str(tmp_path / "w.safetensors"))
    with pytest.raises(FileNotFoundError, match="does not exist"):
        zoo.load_model(str(tmp_path / "missing.pt"))
    with pytest.raises(ValueError, match="unknown model spec 'resnet-9000'"):
        zoo.load_model("resnet-9000")


# ---------------------------------------------------------------- torchvision / timm
def test_torchvision_absent_is_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "torchvision", None)  # importing it now raises ImportError
    with pytest.raises(ImportError, match="torchvision:resnet18 needs the torchvision package"):
        zoo.load_model("torchvision:resnet18")


def test_timm_names_go_through_create_model_without_download(tmp_path, monkeypatch):
    calls = []

    def create_model(name, pretrained):
        calls.append((name, pretrained))
        return zoo.LeNet5()

    fake = types.SimpleNamespace(is_model=lambda name: name == "lenet", create_model=create_model)
    monkeypatch.setitem(sys.modules, "timm", fake)
    src = zoo.LeNet5()
    save_file(src.state_dict(), str(tmp_path / "w.safetensors"))
    _same(zoo.load_model("timm:lenet", tmp_path / "w.safetensors"), src)
    assert calls == [("lenet", False)]
    with pytest.raises(ValueError, match="timm has no model named 'vit'"):
        zoo.load_model("timm:vit")


# ---------------------------------------------------------------- built-in models
@needs_fmnist
@pytest.mark.parametrize("name", list(zoo.BUILTINS))
def test_builtin_reproduces_its_recorded_accuracy(name):
    b = zoo.BUILTINS[name]
    path = zoo.ASSETS / b.weights
    with safe_open(str(path), "pt") as f:
        recorded = float(f.metadata()["test_accuracy_first2000"])
    model = zoo.load_model(name)
    assert isinstance(model, type(b.factory())) and not model.training
    acc = zoo.accuracy(model, data.load(b.dataset), range(2000))
    assert acc >= 0.85
    assert abs(acc - recorded) <= 0.002  # same weights, same data pipeline: same accuracy


def test_default_model_and_missing_assets(tmp_path, monkeypatch):
    model, spec = zoo.default_model()
    assert isinstance(model, zoo.LeNet5) and spec == "fashion-mnist"
    monkeypatch.setattr(zoo, "ASSETS", tmp_path)
    with pytest.raises(FileNotFoundError, match="shipped weights of lenet5-fmnist are missing"):
        zoo.load_model("lenet5-fmnist")


def test_builtin_with_other_weights(tmp_path):
    src = zoo.DepthwiseCNN()
    save_file(src.state_dict(), str(tmp_path / "w.safetensors"))
    _same(zoo.load_model("dwcnn-fmnist", tmp_path / "w.safetensors"), src)


# ---------------------------------------------------------------- training
def _toy(n: int = 256) -> TensorDataset:
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 10, (n,), generator=g)
    prototypes = torch.randn(10, 1, 28, 28, generator=g)
    x = prototypes[y] + torch.randn(n, 1, 28, 28, generator=g)
    return TensorDataset(x, y)


def _trained(seed: int, dataset=None, cls=zoo.LeNet5) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    model = cls()
    zoo.train(model, dataset if dataset is not None else _toy(), epochs=2, seed=seed, lr=1e-3,
              batch_size=32, num_threads=1)
    return model.state_dict()


def _equal(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("cls", [zoo.LeNet5, zoo.DepthwiseCNN])
def test_training_is_deterministic(cls):
    assert _equal(_trained(7, cls=cls), _trained(7, cls=cls))
    assert not _equal(_trained(7, cls=cls), _trained(8, cls=cls))


def test_training_restores_global_state_and_takes_any_dataset():
    model = zoo.LeNet5()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    threads, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    zoo.train(model, _toy(64), epochs=1, seed=5, batch_size=32, num_threads=1)
    assert torch.equal(torch.rand(3), expected)  # the global RNG is as it was
    assert torch.get_num_threads() == threads and torch.are_deterministic_algorithms_enabled() == det
    # a generic Dataset goes through a seeded DataLoader, just as reproducibly
    assert _equal(_trained(1, Subset(_toy(), range(256))), _trained(1, Subset(_toy(), range(256))))


def test_training_learns_and_validates():
    ds = _toy(512)
    model = zoo.LeNet300100()
    before = zoo.accuracy(model, ds)
    zoo.train(model, ds, epochs=3, seed=0, lr=3e-3, batch_size=64, num_threads=1)
    assert zoo.accuracy(model, ds) > max(0.5, before)
    with pytest.raises(ValueError, match="epochs must be a positive int"):
        zoo.train(model, ds, epochs=0)
    with pytest.raises(ValueError, match="lr must be positive"):
        zoo.train(model, ds, lr=0)
    with pytest.raises(ValueError, match="train_dataset is empty"):
        zoo.train(model, TensorDataset(torch.zeros(0, 1, 28, 28), torch.zeros(0, dtype=torch.long)))
