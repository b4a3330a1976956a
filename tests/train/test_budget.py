"""`imo train --minutes M` without --preset: the model sized for the budget (train/cli.py's
table), flags winning field by field, and the warm-up steps that leave the run's numbers alone."""

import os
import subprocess
import sys

from imo.runs.store import RunStore
from imo.train.cli import BUDGETS, budget_row, sized_for_budget, warm_up
from imo.train.config import RunConfig
from imo.train.trainer import train

NO_MODEL = dict(pos=None, attn=None, n_layer=None, n_embd=None, n_head=None, context_length=None)
NO_TRAIN = dict(batch_size=None, lr=None, minutes=5.0)


def test_a_budget_within_the_table_gets_its_row_and_a_longer_one_none():
    most, row_model, row_train = BUDGETS[0]
    model, tr = sized_for_budget(5.0, NO_MODEL, NO_TRAIN)
    assert model == row_model and tr == {**row_train, "minutes": 5.0}
    cfg = RunConfig.build(preset="tiny", model=model, train=tr)
    assert cfg.model.context_length == row_model["context_length"] and cfg.train.lr == row_train["lr"]
    assert budget_row(BUDGETS[-1][0] * 2) is None


def test_flags_win_and_width_takes_its_head_count_with_it():
    model, tr = sized_for_budget(5.0, {**NO_MODEL, "n_embd": 64, "context_length": 64}, {**NO_TRAIN, "lr": 1e-3})
    assert model["n_embd"] == 64 and model["context_length"] == 64 and "n_head" not in model
    assert tr["lr"] == 1e-3 and tr["batch_size"] == BUDGETS[0][2]["batch_size"]
    cfg = RunConfig.build(preset="tiny", model=model, train=tr)  # tiny's 4 heads divide 64
    assert cfg.model.n_head == 4


def small(**train_kw) -> RunConfig:
    t = dict(steps=4, batch_size=4, eval_every=2, eval_batches=1, warmup=2, **train_kw)
    return RunConfig.build(preset=None, model=dict(n_layer=1, n_embd=32, n_head=2, context_length=32), train=t)


def test_warm_up_leaves_a_seeded_run_unchanged():
    store = RunStore.open()
    plain = train(small(), quiet=True)
    warm_up(small())
    warmed = train(small(), quiet=True)
    a, b = store.get(plain)["figures"], store.get(warmed)["figures"]
    assert a["val_bpb"] == b["val_bpb"] and a["train_bpb"] == b["train_bpb"]


def test_cli_minutes_without_preset_trains_the_sized_model(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 400)
    args = [sys.executable, "-m", "imo", "train", "--corpus", f"file:{text}", "--minutes", "0.01",
            "--layers", "1", "--batch-size", "4", "--eval-every", "5"]
    res = subprocess.run(args, capture_output=True, text=True, env=os.environ.copy(), timeout=300)
    assert res.returncode == 0, res.stderr
    assert "budget 0.01 min without --preset" in res.stdout
    run = RunStore.open().get(RunStore.open().resolve(res.stdout.split("run ", 1)[1].split()[0]))
    m, t = run["config"]["model"], run["config"]["train"]
    row_model, row_train = BUDGETS[0][1], BUDGETS[0][2]
    assert m["n_layer"] == 1 and m["n_embd"] == row_model["n_embd"] and m["context_length"] == row_model["context_length"]
    assert t["batch_size"] == 4 and t["lr"] == row_train["lr"]
    res = subprocess.run(args + ["--preset", "tiny", "--width", "32", "--context", "32", "-q"],
                         capture_output=True, text=True, env=os.environ.copy(), timeout=300)
    assert res.returncode == 0, res.stderr
    plain = RunStore.open().get(res.stdout.strip())["config"]
    assert plain["preset"] == "tiny" and plain["train"]["lr"] == 3e-3 and plain["model"]["n_head"] == 4
