import gzip
import struct

import numpy as np
import pytest

from imo.data import vision
from imo.errors import DataError


def _write_idx(path, arr, gz=False):
    code = {np.uint8: 0x08}[arr.dtype.type]
    raw = bytes([0, 0, code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()
    path.write_bytes(gzip.compress(raw) if gz else raw)


def test_digits_are_scaled_and_split_by_seed():
    a, b = vision.load("digits", seed=0), vision.load("digits", seed=1)
    assert a.x_train.shape[1] == 64 and a.shape == (8, 8) and a.n_classes == 10
    assert 0.0 <= a.x_train.min() and a.x_train.max() <= 1.0
    assert len(a.x_train) + len(a.x_test) == 1797
    assert not np.array_equal(a.y_test, b.y_test)
    np.testing.assert_array_equal(a.x_test, vision.load("digits", seed=0).x_test)


def test_idx_folder_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    xtr = rng.integers(0, 256, (5, 4, 3), dtype=np.uint8)
    ytr = rng.integers(0, 10, 5, dtype=np.uint8)
    _write_idx(tmp_path / "train-images-idx3-ubyte", xtr)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", ytr, gz=True)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", xtr[:2])
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", ytr[:2])
    d = vision.load(f"idx:{tmp_path}")
    assert d.shape == (4, 3) and d.x_train.shape == (5, 12)
    np.testing.assert_allclose(d.x_train, xtr.reshape(5, -1) / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(d.y_train, ytr)


def test_bad_idx_input_is_a_clear_error(tmp_path):
    (tmp_path / "train-images-idx3-ubyte").write_bytes(b"PK\x03\x04junk")
    with pytest.raises(DataError, match="bad magic"):
        vision.read_idx(tmp_path / "train-images-idx3-ubyte")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="needs the four MNIST IDX files"):
        vision.load(f"idx:{tmp_path / 'empty'}")
    with pytest.raises(DataError, match="unknown image data"):
        vision.load("cifar")
