"""`imo learn`: help for every command, clean one-line errors (exit 2) that write nothing,
seeded runs that repeat exactly, and the MNIST split (skipped where the shared data is absent)."""

import json

import pytest

from imo.cli import main
from imo.learn import data as learn_data


def run(capsys, args: list[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as e:
        main(args)
    out = capsys.readouterr()
    return e.value.code or 0, out.out, out.err


@pytest.mark.parametrize("cmd", [["learn"], ["learn", "train"], ["learn", "capsules"], ["learn", "rules"],
                                 ["learn", "memory"], ["learn", "decoders"], ["learn", "courses"], ["learn", "rewire"]])
def test_help(capsys, cmd):
    code, out, _ = run(capsys, [*cmd, "--help"])
    assert code == 0 and "Usage" in out


@pytest.mark.parametrize("args, fragment", [
    (["train", "nope", "--data", "digits"], "unknown learning rule 'nope'"),
    (["train", "ff", "--data", "digits", "--hidden", "8,x"], "--hidden"),
    (["train", "mezo", "--data", "digits", "--eps", "0"], "--eps"),
    (["train", "set", "--data", "digits", "--sparsity", "1.5"], "--sparsity"),
    (["train", "backprop", "--data", "mnist:/no/such/dir"], "does not exist"),
    (["train", "backprop", "--data", "cifar"], "unknown data"),
    (["train", "backprop", "--data", "digits", "--epochs", "0"], "--epochs"),
    (["capsules", "--data", "digits", "--arch", "vit"], "--arch"),
    (["capsules", "--data", "digits", "--routing", "0"], "--routing"),
    (["train", "backprop", "--data", "digits", "--optimizer", "lion"], "--optimizer"),
    (["memory", "--optimizer", "lion"], "--optimizer"),
    (["decoders", "--heads", "many"], "--heads"),
    (["decoders", "--skills", "copy,fly"], "--skills"),
    (["decoders", "--new-skill", "grid", "--skills", "copy,sort"], "--new-skill"),
    (["courses", "--orders", "sideways"], "--orders"),
    (["courses", "--threshold", "2"], "--threshold"),
    (["rewire", "--targets", "0"], "--targets"),
    (["rewire", "--rate", "1.5"], "--rate"),
])
def test_bad_input_is_one_line_exit_2(capsys, args, fragment):
    code, _, err = run(capsys, ["learn", *args])
    assert code == 2 and fragment in err and "Traceback" not in err
    assert err.startswith("imo: error:")


def test_train_is_seeded_and_refuses_to_overwrite(tmp_path, capsys):
    out = tmp_path / "run.json"
    args = ["learn", "train", "fa", "--data", "digits", "--hidden", "32", "--epochs", "2", "--max-train", "300",
            "--seed", "4", "-o", str(out)]
    code, stdout, _ = run(capsys, args)
    assert code == 0 and "fa epoch 2/2" in stdout and "validation error" in stdout
    first = json.loads(out.read_text())
    code, _, err = run(capsys, args)
    assert code == 2 and "exists" in err
    assert json.loads(out.read_text()) == first  # untouched
    assert run(capsys, [*args, "--force"])[0] == 0
    again = json.loads(out.read_text())
    for a, b in zip(first["history"], again["history"], strict=True):
        assert {k: v for k, v in a.items() if k != "seconds"} == {k: v for k, v in b.items() if k != "seconds"}


def test_capsules_command_runs(tmp_path, capsys):
    out = tmp_path / "caps.json"
    code, stdout, _ = run(capsys, ["learn", "capsules", "--data", "digits", "--arch", "cnn", "--epochs", "1",
                                   "--max-train", "200", "-o", str(out)])
    assert code == 0 and "cnn epoch 1/1" in stdout
    assert json.loads(out.read_text())["arch"] == "cnn"


def test_mnist_split():
    folder = learn_data.default_mnist_dir()
    if not folder.is_dir():
        pytest.skip(f"needs the 8,000 MNIST digits in {folder} (absent here)")
    d = learn_data.load("mnist", seed=0)
    assert d.x_train.shape == (6000, 784) and d.x_val.shape == (2000, 784) and d.shape == (28, 28)
    assert float(d.x_train.max()) == 1.0 and float(d.x_train.min()) == 0.0
    # a seeded split: the same seed gives the same digits, another seed others
    assert (learn_data.load("mnist", seed=0).y_val == d.y_val).all()
    assert not (learn_data.load("mnist", seed=1).y_val == d.y_val).all()
