"""`imo lottery` on MNIST-format IDX files (a tiny fake set) and its refusals."""

import struct

import numpy as np
import pytest

from imo.cli import main


def _idx(path, arr: np.ndarray) -> None:
    path.write_bytes(bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
                     + arr.astype(np.uint8).tobytes())


def _run(capsys, *args):
    with pytest.raises(SystemExit) as e:
        main(list(args))
    return e.value.code, capsys.readouterr()


def test_lottery_reads_idx_data(tmp_path, capsys):
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, 60)
    x = (rng.random((60, 4, 4)) * 60 + y[:, None, None] * 60).astype(np.uint8)  # learnable classes
    _idx(tmp_path / "train-images-idx3-ubyte", x[:40])
    _idx(tmp_path / "train-labels-idx1-ubyte", y[:40])
    _idx(tmp_path / "t10k-images-idx3-ubyte", x[40:])
    _idx(tmp_path / "t10k-labels-idx1-ubyte", y[40:])
    code, cap = _run(capsys, "lottery", "--data", f"idx:{tmp_path}", "--rounds", "2", "--epochs", "2",
                     "--hidden", "8", "-q")
    assert code in (0, None), cap.err
    assert "MLP 16-8-3" in cap.out
    rows = [line.split("\t") for line in cap.out.strip().splitlines()[2:]]
    assert [r[0] for r in rows] == ["0", "1", "2"] and rows[0][1] == "100.00%"


@pytest.mark.parametrize("args, msg", [
    (("--criterion", "largest"), "unknown mask criterion"),
    (("--rate", "1.5"), "rate"),
    (("--hidden", "a,b"), "comma-separated"),
    (("--data", "idx:/no/such/dir"), "does not exist"),
])
def test_lottery_bad_input(capsys, args, msg):
    code, cap = _run(capsys, "lottery", *args)
    assert code == 2 and msg in cap.err and len(cap.err.strip().splitlines()) == 1
