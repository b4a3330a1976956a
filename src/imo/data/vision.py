"""Small image-classification data for the MLP experiments (lottery tickets, trickability).

The default is scikit-learn's bundled 8x8 digits (1,797 images, no download). Users who have
MNIST in its original IDX files can pass `idx:DIR` instead. Pixels are float32 in [0, 1], images
flattened; the split is seeded and stratified-free (a seeded permutation).

    d = load("digits", seed=0)          # Images(x_train, y_train, x_test, y_test, shape, source)
    d = load("idx:/data/mnist")         # train-images-idx3-ubyte etc. (optionally .gz)
"""

import gzip
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from imo.errors import DataError

IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclass(frozen=True)
class Images:
    x_train: np.ndarray  # (n, pixels) float32 in [0, 1]
    y_train: np.ndarray  # (n,) int64
    x_test: np.ndarray
    y_test: np.ndarray
    shape: tuple[int, int]  # image height, width
    source: str

    @property
    def n_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max())) + 1


def read_idx(path: str | Path) -> np.ndarray:
    """An array from an IDX file (the format MNIST is distributed in), gzipped or not."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DataError(f"cannot read IDX file {path}: {e.strerror}") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise DataError(f"{path} is not a valid gzip file: {e}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES:
        raise DataError(f"{path} is not an IDX file (bad magic number)")
    ndim = raw[3]
    if len(raw) < 4 + 4 * ndim:
        raise DataError(f"{path} is truncated (header)")
    dims = struct.unpack(f">{ndim}I", raw[4:4 + 4 * ndim])
    dtype = np.dtype(IDX_DTYPES[raw[2]])
    count = int(np.prod(dims)) if dims else 0
    body = raw[4 + 4 * ndim:]
    if len(body) != count * dtype.itemsize:
        raise DataError(f"{path} has {len(body)} data bytes, its header says {count * dtype.itemsize}")
    return np.frombuffer(body, dtype=dtype).reshape(dims)


def _find(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (folder / name).exists():
            return folder / name
    raise DataError(f"no {stem}[.gz] in {folder}; an idx: folder needs the four MNIST IDX files")


def load_idx_folder(folder: str | Path) -> Images:
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"idx: data folder {folder} does not exist")
    parts = [read_idx(_find(folder, s)) for s in
             ("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
              "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")]
    xtr, ytr, xte, yte = parts
    if xtr.ndim != 3 or xte.ndim != 3 or len(xtr) != len(ytr) or len(xte) != len(yte):
        raise DataError(f"the IDX files in {folder} do not fit together (images vs labels)")
    scale = 255.0 if xtr.dtype == np.uint8 else 1.0
    flat = lambda x: (x.reshape(len(x), -1).astype(np.float32) / scale)  # noqa: E731
    return Images(flat(xtr), ytr.astype(np.int64), flat(xte), yte.astype(np.int64),
                  tuple(xtr.shape[1:]), f"idx:{folder}")


def load_digits(seed: int = 0, test_fraction: float = 0.25) -> Images:
    """scikit-learn's bundled 8x8 digits, pixels scaled from 0..16 to [0, 1], a seeded split."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    x = (d.data / 16.0).astype(np.float32)
    y = d.target.astype(np.int64)
    order = np.random.default_rng(seed).permutation(len(x))
    n_test = int(round(len(x) * test_fraction))
    te, tr = order[:n_test], order[n_test:]
    return Images(x[tr], y[tr], x[te], y[te], (8, 8), "digits")


def load(spec: str = "digits", seed: int = 0) -> Images:
    """`digits` (bundled) or `idx:DIR` (MNIST-format IDX files)."""
    if spec == "digits":
        return load_digits(seed)
    if spec.startswith("idx:"):
        return load_idx_folder(spec[4:])
    raise DataError(f"unknown image data {spec!r}; use 'digits' or 'idx:DIR' (MNIST IDX files)")
