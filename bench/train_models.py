"""Train the built-in models on Fashion-MNIST and write their weights to python/wsc/assets/.

    python bench/train_models.py                    # all four, full 60k training set
    python bench/train_models.py --models lenet5-fmnist --epochs 2 --out /tmp/w

Training is deterministic (fixed seed, deterministic algorithms, one thread), so a rerun on
the same torch build writes the same weights. Prints the time and the 10k test accuracy of
each model; the accuracies (all 10k, and the first 2000 that the tests recheck) are also
stored in the safetensors metadata.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from wsc import data, zoo

REPO = Path(__file__).resolve().parents[1]
# epochs, learning rate, batch size: a few minutes each on two CPU cores
RECIPES = {
    "lenet5-fmnist": (15, 2e-3, 128),
    "lenet300-fmnist": (20, 1e-3, 128),
    "dwcnn-fmnist": (8, 4e-3, 128),
    "gru-fmnist": (6, 3e-3, 128),
}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="+", default=list(RECIPES), choices=list(RECIPES))
    p.add_argument("--data", default="fashion-mnist", help="dataset spec (default: fashion-mnist)")
    p.add_argument("--out", type=Path, default=REPO / "python" / "wsc" / "assets")
    p.add_argument("--epochs", type=int, default=None, help="override every recipe's epochs")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1, help="torch threads while training (default 1)")
    args = p.parse_args(argv)

    train_set, test_set = data.load(args.data, "train"), data.load(args.data, "test")
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"{args.data}: {len(train_set)} train / {len(test_set)} test images; torch {torch.__version__}")
    for name in args.models:
        epochs, lr, batch = RECIPES[name]
        epochs = args.epochs or epochs
        torch.manual_seed(args.seed)
        model = zoo.BUILTINS[name].factory()
        start = time.perf_counter()
        zoo.train(model, train_set, epochs, args.seed, lr, batch, num_threads=args.threads,
                  log=lambda s, n=name: print(f"  {n} {s}", flush=True))
        seconds = time.perf_counter() - start
        acc = zoo.accuracy(model, test_set)
        acc_2000 = zoo.accuracy(model, test_set, range(2000))  # what the tests recheck, quickly
        path = args.out / zoo.BUILTINS[name].weights
        meta = {"model": name, "architecture": type(model).__name__, "dataset": args.data,
                "test_accuracy": f"{acc:.4f}", "test_accuracy_first2000": f"{acc_2000:.4f}",
                "epochs": str(epochs), "lr": str(lr), "batch_size": str(batch), "seed": str(args.seed),
                "threads": str(args.threads), "train_seconds": f"{seconds:.0f}", "torch": torch.__version__}
        save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path), metadata=meta)
        n_params = sum(p.numel() for p in model.parameters())
        print(f"{name}: test accuracy {acc:.4f} ({acc_2000:.4f} on the first 2000), {n_params} parameters, "
              f"{seconds:.0f} s training, {path.stat().st_size / 1024:.0f} KiB -> {path}", flush=True)


if __name__ == "__main__":
    main()
