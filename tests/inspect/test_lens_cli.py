"""`imo inspect lens|patch|attn|dla` end to end on a tiny trained run: PNGs written (and not blank),
the printed numbers agree with the library, and bad input is one line with exit code 2."""

import re

import matplotlib.image
import numpy as np
import pytest

from imo.cli import main
from imo.train.config import RunConfig
from imo.train.trainer import train


@pytest.fixture
def rid():
    cfg = RunConfig.build(preset=None, model=dict(n_layer=2, n_embd=32, n_head=2, context_length=32),
                          train=dict(steps=4, batch_size=2, warmup=1, eval_every=4, eval_batches=1))
    return train(cfg, quiet=True)[:8]


def run(capsys, *args) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as e:
        main(["inspect", *args])
    out = capsys.readouterr()
    return e.value.code or 0, out.out, out.err


def drawn(path) -> bool:
    rgb = np.asarray(matplotlib.image.imread(path))[..., :3]
    return rgb.std() > 0.02


def test_each_tool_writes_its_figure(rid, tmp_path, capsys):
    code, out, err = run(capsys, "lens", rid, "--prompt", "def main():", "-o", str(tmp_path / "lens.png"))
    assert code == 0, err
    assert drawn(tmp_path / "lens.png") and out.count(":") >= 3 and "block 1" in out

    code, out, err = run(capsys, "patch", rid, "--clean", "x = 1 + 2", "--corrupt", "y = 1 + 2",
                         "-o", str(tmp_path / "patch.png"))
    assert code == 0, err
    assert drawn(tmp_path / "patch.png") and "largest restoration" in out

    code, out, err = run(capsys, "attn", rid, "--prompt", "import os", "--layer", "1", "-o", str(tmp_path / "attn.png"))
    assert code == 0, err
    assert drawn(tmp_path / "attn.png") and "block 1" in out and "block 0" not in out

    code, out, err = run(capsys, "dla", rid, "--prompt", "import os", "-o", str(tmp_path / "dla.png"))
    assert code == 0, err
    logit, total = map(float, re.search(r": (-?[\d.]+); parts sum to (-?[\d.]+)", out).groups())
    assert drawn(tmp_path / "dla.png") and abs(logit - total) < 2e-3
    assert "L1H0" in out or "L0H0" in out or "mlp" in out


def test_bad_input_is_one_line_and_exit_2(rid, tmp_path, capsys):
    (tmp_path / "taken.png").write_bytes(b"x")
    cases = [
        (["patch", rid, "--clean", "abc", "--corrupt", "abcd"], "equal lengths"),
        (["patch", rid, "--clean", "abc", "--corrupt", "abd", "--answer", "xy"], "exactly one token"),
        (["patch", rid, "--clean", "abc", "--corrupt", "abd", "--kind", "nope"], "unknown --kind"),
        (["lens", rid, "--prompt", "x" * 40], "context is 32"),
        (["lens", rid, "--prompt", ""], "is empty"),
        (["attn", rid, "--prompt", "ab", "--layer", "5"], "--layer must be"),
        (["dla", rid, "--prompt", "ab", "--position", "7"], "outside the prompt"),
        (["dla", rid, "--prompt", "ab", "-o", str(tmp_path / "taken.png")], "exists"),
        (["lens", rid, "--prompt", "ab", "-o", str(tmp_path / "no" / "lens.png")], "does not exist"),
    ]
    for args, msg in cases:
        if "-o" not in args:
            args = [*args, "-o", str(tmp_path / "out.png")]
        code, _, err = run(capsys, *args)
        assert code == 2 and msg in err and "Traceback" not in err, (args, err)
        assert err.splitlines()[0].startswith("imo: error:")
    assert (tmp_path / "taken.png").read_bytes() == b"x" and not (tmp_path / "out.png").exists()
