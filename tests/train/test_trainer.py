"""Trainer contracts: checkpoints round-trip exactly, corrupt ones are refused clearly, an
interrupted run resumes onto the same curve, and a 2-process DDP run matches 1 process."""

import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from imo.errors import CheckpointError, ConfigError, DataError
from imo.runs.store import RunStore
from imo.train.checkpoint import checkpoint_dir, load_model, read_checkpoint
from imo.train.config import RunConfig
from imo.train.trainer import train

TINY = dict(n_layer=2, n_embd=32, n_head=4, context_length=32)


def cfg(**train_kw) -> RunConfig:
    t = dict(steps=12, batch_size=4, eval_every=4, eval_batches=2, log_every=1, ckpt_every=5, warmup=3)
    t.update(train_kw)
    return RunConfig.build(preset=None, model=dict(TINY, pos="rope"), train=t)


def curve(store: RunStore, run_id: str, key: str = "train/bpb") -> list[tuple[int, float]]:
    return [(s, v) for s, _, v in store.metrics(run_id, key)]


def test_train_records_run_and_checkpoint():
    rid = train(cfg(), quiet=True)
    store = RunStore.open()
    run = store.get(rid)
    assert run["status"] == "finished"
    assert run["figures"]["steps"] == 12 and run["figures"]["val_bpb"] < 8.5
    assert [s for s, _ in curve(store, rid)] == list(range(1, 13))
    assert [s for s, _ in curve(store, rid, "val/bpb")] == [4, 8, 12]
    assert len(list(store.run_dir(rid).glob("ckpt-*"))) == 1  # older checkpoints are pruned


def test_seeded_runs_repeat_exactly():
    store = RunStore.open()
    a, b = train(cfg(), quiet=True), train(cfg(), quiet=True)
    assert curve(store, a) == curve(store, b)


def test_checkpoint_round_trip_is_exact():
    rid = train(cfg(steps=3), quiet=True)
    store = RunStore.open()
    model, meta = load_model(store.run_dir(rid))
    _, weights, _ = read_checkpoint(checkpoint_dir(store.run_dir(rid)))
    for name, t in model.state_dict_for_save().items():
        assert torch.equal(t, weights[name]), name
    x = torch.randint(0, 256, (2, 16))
    again, _ = load_model(store.run_dir(rid))
    assert torch.equal(model(x)[0], again(x)[0])
    assert meta["step"] == 3 and meta["config"]["model"]["pos"] == "rope"


def test_corrupt_checkpoint_gives_clear_error():
    rid = train(cfg(steps=2), quiet=True)
    run_dir = RunStore.open().run_dir(rid)
    weights = checkpoint_dir(run_dir) / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match="corrupt"):
        load_model(run_dir)
    weights.write_bytes(b"")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_model(run_dir)
    (run_dir / "checkpoint.json").write_text("{nope")
    with pytest.raises(CheckpointError, match="pointer"):
        load_model(run_dir)
    (run_dir / "checkpoint.json").unlink()
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_model(run_dir)


def test_interrupt_and_resume_reproduce_the_uninterrupted_run():
    store = RunStore.open()
    full = train(cfg(), quiet=True)
    part = train(cfg(), quiet=True, stop_at=7)  # stops as Ctrl-C would, after step 7
    assert store.get(part)["status"] == "interrupted"
    assert checkpoint_dir(store.run_dir(part)).name == "ckpt-000007"
    assert train(None, resume=part, quiet=True) == part
    assert store.get(part)["status"] == "finished"
    assert curve(store, part) == curve(store, full)
    assert curve(store, part, "val/bpb") == curve(store, full, "val/bpb")
    assert store.get(part)["figures"]["val_bpb"] == store.get(full)["figures"]["val_bpb"]


def test_minutes_budget_becomes_steps_in_the_config():
    store = RunStore.open()
    rid = train(cfg(steps=None, minutes=0.05), quiet=True)
    steps = store.get(rid)["config"]["train"]["steps"]
    assert steps >= 3 and store.get(rid)["figures"]["steps"] == steps


def test_short_corpus_is_refused_before_a_run_is_recorded(tmp_path):
    small = tmp_path / "small.txt"
    small.write_text("x" * 200)
    with pytest.raises(DataError, match="too short for context"):
        train(cfg(corpus=f"file:{small}"), quiet=True)
    assert RunStore.open().list() == []


def test_batch_must_split_over_accumulation():
    with pytest.raises(ConfigError, match="grad_accum=3 must divide batch_size=4"):
        cfg(grad_accum=3)


def _run(args: list[str], env: dict, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.slow
def test_sigterm_checkpoints_and_resume_matches(tmp_path):
    """A real signal: SIGTERM mid-run leaves a checkpoint; resuming finishes on the same curve."""
    env = {**os.environ}
    args = [sys.executable, "-m", "imo", "train", "--preset", "tiny", "--layers", "2", "--width", "32",
            "--context", "32", "--batch-size", "4", "--steps", "400", "--eval-every", "100", "--quiet"]
    ref = _run(args, env)
    assert ref.returncode == 0, ref.stderr
    proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    store = RunStore.open()
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until the second run has logged a few steps
        runs = [r for r in store.list() if r["status"] == "running"]
        if runs and store.metrics(runs[0]["id"], "train/bpb")[-1:] and store.metrics(runs[0]["id"], "train/bpb")[-1][0] >= 20:
            break
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err  # 128 + SIGTERM, so `imo train ... && imo eval ...` stops
    assert "imo train --resume" in out
    rid = [r["id"] for r in store.list() if r["status"] == "interrupted"][0]
    res = _run([sys.executable, "-m", "imo", "train", "--resume", rid, "--quiet"], env)
    assert res.returncode == 0, res.stderr
    ref_id = [r["id"] for r in store.list() if r["id"] != rid][0]
    assert curve(store, rid) == curve(store, ref_id)


@pytest.mark.slow
def test_two_process_ddp_matches_one_process(tmp_path):
    """torchrun with 2 gloo processes, each taking half of the same global batch, ends with the
    weights of a 1-process run (up to the float rounding of the gradient all-reduce)."""
    common = ["--preset", "tiny", "--layers", "2", "--width", "32", "--context", "32", "--batch-size", "8",
              "--steps", "6", "--eval-every", "3", "--quiet", "--device", "cpu",
              "--dtype", "float32"]  # bf16 rounds differently per micro-batch split
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    one = _run([sys.executable, "-m", "imo", "train", *common], env)
    assert one.returncode == 0, one.stderr
    two = _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                "-m", "imo", "train", *common], env)
    assert two.returncode == 0, two.stderr[:3000] + "\n...\n" + two.stderr[-3000:]
    store = RunStore.open()
    runs = store.list()
    assert len(runs) == 2 and all(r["status"] == "finished" for r in runs)
    (m2, _), (m1, _) = (load_model(store.run_dir(r["id"])) for r in runs)  # newest first
    for (name, a), b in zip(m1.state_dict().items(), m2.state_dict().values(), strict=True):
        torch.testing.assert_close(b, a, atol=1e-5, rtol=1e-4, msg=name)
    c1, c2 = curve(store, runs[1]["id"]), curve(store, runs[0]["id"])
    assert [s for s, _ in c1] == [s for s, _ in c2]
    assert max(abs(a - b) for (_, a), (_, b) in zip(c1, c2, strict=True)) < 1e-4
    # a --minutes budget: rank 0 decides the step total and broadcasts it, so both ranks stop at
    # the same step and the run finishes (ranks timing themselves could differ and hang)
    timed = [a for a in common if a not in ("--steps", "6")] + ["--minutes", "0.05", "--warmup", "3"]
    res = _run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
                "-m", "imo", "train", *timed], env)
    assert res.returncode == 0, res.stderr[-3000:]
    run = store.list()[0]
    assert run["status"] == "finished" and run["figures"]["steps"] == run["config"]["train"]["steps"] >= 3


def test_identical_configs_reuse_the_finished_run():
    from imo.train.trainer import train_or_reuse

    a = train_or_reuse(cfg(steps=3))
    assert train_or_reuse(cfg(steps=3)) == a
    assert train_or_reuse(cfg(steps=4)) != a
    assert len(RunStore.open().list()) == 2


def test_reuse_never_hands_back_an_interrupted_run(monkeypatch):
    import imo.train.trainer as T

    real = T.train
    monkeypatch.setattr(T, "train", lambda c, **kw: real(c, stop_at=2, **kw))  # as SIGTERM would
    with pytest.raises(KeyboardInterrupt, match="interrupted"):
        T.train_or_reuse(cfg(steps=6))
    monkeypatch.setattr(T, "train", real)
    done = T.train_or_reuse(cfg(steps=6))  # the interrupted run is not reused: a new one finishes
    assert RunStore.open().get(done)["status"] == "finished"


def test_fine_tune_from_a_run_with_longer_context_and_interpolation():
    store = RunStore.open()
    base = train(cfg(steps=3), quiet=True)
    longer = RunConfig.build(preset=None, model=dict(TINY, pos="rope", context_length=128, rope_scale=0.25),
                             train=dict(steps=2, batch_size=2, eval_batches=1, init_from=base[:6]))
    child = train(longer, quiet=True)
    run = store.get(child)
    assert run["parent"] == base and run["config"]["train"]["init_from"] == base
    learned = RunConfig.build(preset=None, model=dict(TINY, pos="learned", context_length=64),
                              train=dict(steps=1, batch_size=2, eval_batches=1, init_from=base))
    with pytest.raises(ConfigError, match="does not fit"):
        train(learned, quiet=True)
    assert len(store.list()) == 2  # the refused fine-tune left no run behind
