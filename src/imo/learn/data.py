"""Digit data for the learning-rule experiments, as float32 tensors with a seeded split.

`mnist` is the 8,000-digit MNIST cut in ../shared/data/mnist (two IDX files: images and labels;
the remaining 2,000 test digits are kept aside elsewhere, so we only ever split these 8,000 into
train and validation). `mnist:DIR` reads the same two files from DIR; `digits` is scikit-learn's
bundled 8x8 digits (imo.data.vision), the fast smoke version.

    d = load("mnist", seed=0)      # Split(x_train (6000, 784), y_train, x_val (2000, 784), y_val, shape)
"""

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from imo.data import vision
from imo.errors import DataError

MNIST_ENV = "IMO_MNIST"
N_VAL = {"mnist": 2000}  # the split the shared data notes suggest: 6,000 train / 2,000 validation


def default_mnist_dir() -> Path:
    """IMO_MNIST, else the shared data folder beside this checkout (../shared/data/mnist)."""
    env = os.environ.get(MNIST_ENV)
    if env:
        return Path(env).expanduser()
    return Path(__file__).resolve().parents[3].parent / "shared" / "data" / "mnist"


@dataclass(frozen=True)
class Split:
    x_train: torch.Tensor  # (n, pixels) float32 in [0, 1]
    y_train: torch.Tensor  # (n,) int64
    x_val: torch.Tensor
    y_val: torch.Tensor
    shape: tuple[int, int]  # image height, width
    source: str

    @property
    def n_in(self) -> int:
        return self.x_train.shape[1]

    @property
    def n_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_val.max())) + 1


def _find(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (folder / name).exists():
            return folder / name
    raise DataError(f"no {stem}[.gz] in {folder}", hint=f"set {MNIST_ENV}=DIR or pass --data mnist:DIR")


def load_mnist(folder: Path, seed: int = 0, n_val: int = 2000) -> Split:
    if not folder.is_dir():
        raise DataError(f"MNIST folder {folder} does not exist",
                        hint=f"set {MNIST_ENV}=DIR, pass --data mnist:DIR, or use --data digits")
    x = vision.read_idx(_find(folder, "images-idx3-ubyte"))
    y = vision.read_idx(_find(folder, "labels-idx1-ubyte"))
    if x.ndim != 3 or y.ndim != 1 or len(x) != len(y):
        raise DataError(f"the IDX files in {folder} do not fit together (images {x.shape}, labels {y.shape})")
    if not 0 < n_val < len(x):
        raise DataError(f"cannot keep {n_val} of {len(x)} digits for validation")
    xf = torch.from_numpy(x.reshape(len(x), -1).astype(np.float32) / 255.0)
    yf = torch.from_numpy(y.astype(np.int64))
    order = torch.from_numpy(np.random.default_rng(seed).permutation(len(x)))
    va, tr = order[:n_val], order[n_val:]
    return Split(xf[tr], yf[tr], xf[va], yf[va], tuple(x.shape[1:]), f"mnist:{folder}")


def load(spec: str = "mnist", seed: int = 0, max_train: int | None = None) -> Split:
    """`mnist`, `mnist:DIR` or `digits`; `max_train` keeps the first n training digits (after the shuffle)."""
    if spec == "digits":
        d = vision.load_digits(seed)
        s = Split(torch.from_numpy(d.x_train), torch.from_numpy(d.y_train), torch.from_numpy(d.x_test),
                  torch.from_numpy(d.y_test), d.shape, "digits")
    elif spec == "mnist" or spec.startswith("mnist:"):
        folder = default_mnist_dir() if spec == "mnist" else Path(spec[6:]).expanduser()
        s = load_mnist(folder, seed)
    else:
        raise DataError(f"unknown data {spec!r}; use 'mnist', 'mnist:DIR' or 'digits'")
    if max_train is not None:
        if max_train < 1:
            raise DataError(f"--max-train must be >= 1, got {max_train}")
        s = Split(s.x_train[:max_train], s.y_train[:max_train], s.x_val, s.y_val, s.shape, s.source)
    return s


def batches(n: int, batch: int, gen: torch.Generator):
    """Index tensors of a seeded shuffle of range(n), `batch` at a time (the last one may be short)."""
    order = torch.randperm(n, generator=gen)
    for i in range(0, n, batch):
        yield order[i:i + batch]
