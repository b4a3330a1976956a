"""imo.train.loop.fit and what the trainer gets from it: hooks, budgets, clean stops (also in
the final evaluation), run locks, allocation failures, checkpoint modes, reuse with a code
fingerprint, TensorBoard mirrors."""

import multiprocessing as mp
import os
import signal
import stat
from collections.abc import Sequence

import pytest
import torch

import imo.train.trainer as T
from imo.data.batches import random_batch
from imo.errors import ConfigError, ImoError, RunBusy
from imo.model import GPT, ModelConfig
from imo.runs.store import RunStore
from imo.train.checkpoint import checkpoint_dir
from imo.train.config import RunConfig
from imo.train.loop import FitConfig, fit, score

TINY = dict(n_layer=1, n_embd=16, n_head=2, context_length=16)
DATA = torch.randint(0, 64, (4000,)).numpy()


def cfg(**train_kw) -> RunConfig:
    t = dict(steps=8, batch_size=4, eval_every=4, eval_batches=1, log_every=2, ckpt_every=5, warmup=2)
    t.update(train_kw)
    return RunConfig.build(preset=None, model=dict(TINY, pos="rope"), train=t)


def model() -> GPT:
    torch.manual_seed(0)
    return GPT(ModelConfig(**TINY, pos="rope"))


def draw(gen, m):
    return random_batch(DATA, 16, 4, gen)


def test_fit_trains_and_calls_hooks():
    seen = []
    res = fit(model(), draw, FitConfig(steps=20, lr=1e-2, warmup=2, seed=1), quiet=True,
              callbacks=[lambda info: seen.append((info.step, info.lr, info.grad_norm)) or {"probe": 1.0}])
    assert res.steps == res.total == 20 and not res.stopped and len(res.losses) == 20
    assert sum(res.losses[-5:]) < sum(res.losses[:5])
    assert [s for s, _, _ in seen] == list(range(1, 21)) and all(n > 0 for _, _, n in seen)
    # the loss hook is what is minimised: an extra term changes the run
    extra = fit(model(), draw, FitConfig(steps=20, lr=1e-2, warmup=2, seed=1), quiet=True,
                loss_fn=lambda m, b: m(*b)[1] + 0.1 * m.transformer.wte.weight.pow(2).mean())
    assert extra.losses != res.losses
    with pytest.raises(ConfigError, match="either steps or minutes"):
        FitConfig(steps=3, minutes=1.0)


def test_fit_minutes_budget_counts_the_final_evaluation():
    final = [random_batch(DATA, 16, 4, torch.Generator().manual_seed(i)) for i in range(3)]
    res = fit(model(), draw, FitConfig(minutes=0.02, warmup=3, seed=1), final_eval=final, quiet=True)
    assert res.total >= 3 and res.steps == res.total and res.final_bpb is not None


class SignalAt(Sequence):
    """Final-evaluation batches that send this process `sig` when batch `at` is reached."""

    def __init__(self, batches, at: int, sig=signal.SIGTERM):
        self.batches, self.at, self.sig = list(batches), at, sig

    def __len__(self):
        return len(self.batches)

    def __getitem__(self, i):
        if i == self.at:
            os.kill(os.getpid(), self.sig)
        return self.batches[i]


def test_a_signal_during_the_final_evaluation_stops_cleanly_and_resume_finishes(monkeypatch):
    store = RunStore.open()
    ref = T.train(cfg(), quiet=True)
    real = T.Trainer.final_batches
    monkeypatch.setattr(T.Trainer, "final_batches", lambda self: SignalAt(real(self), at=1))
    out = T.run_training(cfg(), quiet=True)
    assert out.stopped and out.signal == signal.SIGTERM
    assert store.get(out.run_id)["status"] == "interrupted"
    assert checkpoint_dir(store.run_dir(out.run_id)).name == "ckpt-000008"  # all steps were saved
    monkeypatch.setattr(T.Trainer, "final_batches", real)
    assert T.train(None, resume=out.run_id, quiet=True) == out.run_id
    run = store.get(out.run_id)
    assert run["status"] == "finished" and run["figures"]["val_bpb"] == store.get(ref)["figures"]["val_bpb"]


def test_lr_and_grad_norm_are_logged_beside_the_loss():
    store = RunStore.open()
    rid = T.train(cfg(), quiet=True)
    keys = {k for _, k, _ in store.metrics(rid)}
    assert {"train/bpb", "lr", "grad_norm", "val/bpb"} <= keys
    assert [s for s, _, _ in store.metrics(rid, "grad_norm")] == [2, 4, 6, 8]  # log_every=2


def test_a_running_run_cannot_be_resumed_twice():
    store = RunStore.open()
    rid = T.train(cfg(), quiet=True, stop_at=3)
    with store.lock(f"run-{rid}", wait=False):  # as another process training it would
        with pytest.raises(RunBusy, match="being trained by another process"):
            T.train(None, resume=rid, quiet=True)
    assert store.get(rid)["status"] == "interrupted"
    T.train(None, resume=rid, quiet=True)
    assert store.get(rid)["status"] == "finished"


def test_allocation_failure_is_one_line_with_a_hint_and_leaves_no_run(monkeypatch):
    def oom(self, *a, **k):
        raise RuntimeError("[enforce fail at alloc_cpu.cpp:127] DefaultCPUAllocator: can't allocate memory")

    monkeypatch.setattr(GPT, "forward", oom)
    naive = RunConfig.build(preset=None, model=dict(TINY, pos="rope", attn="naive"), train=dict(steps=2, batch_size=2))
    with pytest.raises(ConfigError, match="--attn tiled"):
        T.train(naive, quiet=True)
    assert RunStore.open().list() == []


def test_init_from_mismatch_names_tensors_and_shapes():
    base = T.train(cfg(steps=2), quiet=True)
    wider = RunConfig.build(preset=None, model=dict(TINY, pos="rope", n_embd=32),
                            train=dict(steps=1, batch_size=2, init_from=base))
    with pytest.raises(ConfigError, match=r"transformer\.wte\.weight \(256, 16\) -> \(256, 32\)"):
        T.train(wider, quiet=True)


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_checkpoint_files_follow_the_umask(umask):
    old = os.umask(umask)
    try:
        rid = T.train(cfg(steps=2), quiet=True)
    finally:
        os.umask(old)
    ckpt = checkpoint_dir(RunStore.open().run_dir(rid))
    for f in ckpt.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o666 & ~umask, f.name


def test_reuse_matches_config_and_code_fingerprint():
    a = T.train_or_reuse(cfg(steps=2), code_fingerprint="abc")
    assert T.train_or_reuse(cfg(steps=2), code_fingerprint="abc") == a
    b = T.train_or_reuse(cfg(steps=2), code_fingerprint="def")
    c = T.train_or_reuse(cfg(steps=2))
    assert len({a, b, c}) == 3
    assert RunStore.open().get(a)["fingerprint"] == "abc"


def _reuse(store_path: str, out: str) -> None:
    os.environ["IMO_STORE"] = store_path
    rid = T.train_or_reuse(cfg(steps=3))
    with open(out, "a") as f:
        f.write(rid + "\n")


@pytest.mark.slow
def test_two_processes_reusing_one_config_train_once(tmp_path):
    out = tmp_path / "ids.txt"
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=_reuse, args=(os.environ["IMO_STORE"], str(out))) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
    assert [p.exitcode for p in procs] == [0, 0]
    ids = out.read_text().split()
    assert len(ids) == 2 and ids[0] == ids[1]
    assert len(RunStore.open().list()) == 1


def test_missing_store_folder_is_refused(monkeypatch, tmp_path):
    monkeypatch.setenv("IMO_STORE", str(tmp_path / "typo" / "store.sqlite"))
    with pytest.raises(ImoError, match="does not exist"):
        RunStore.open()
    assert not (tmp_path / "typo").exists()


def test_tensorboard_mirrors_the_logged_metrics(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    rid = T.run_training(cfg(), quiet=True, tensorboard=tmp_path / "tb").run_id
    acc = EventAccumulator(str(tmp_path / "tb" / rid))
    acc.Reload()
    assert {"train/bpb", "lr", "grad_norm", "val/bpb"} <= set(acc.Tags()["scalars"])
    stored = [v for _, _, v in RunStore.open().metrics(rid, "train/bpb")]
    assert [e.value for e in acc.Scalars("train/bpb")] == pytest.approx(stored)
    with pytest.raises(ConfigError, match="does not exist"):
        T.run_training(cfg(), quiet=True, tensorboard=tmp_path / "no" / "tb")


def test_score_is_token_weighted_bits():
    m = model().eval()
    batches = [random_batch(DATA, 16, 2, torch.Generator().manual_seed(i)) for i in range(2)]
    from imo.train.evaluate import mean_bpb
    assert score(m, batches) == pytest.approx(mean_bpb(m, batches))


def test_a_stopped_prune_fine_tune_saves_no_run(monkeypatch):
    import imo.compress.runs as C

    store = RunStore.open()
    base = T.train(cfg(steps=2), quiet=True)
    monkeypatch.setattr(C, "finetune_", lambda *a, **k: [3.0])  # as a Ctrl-C after one of 5 steps
    with pytest.raises(KeyboardInterrupt, match="no run was saved"):
        C.prune_run(store, base, "magnitude", 0.5, finetune_steps=5, eval_bytes=512)
    assert [r["id"] for r in store.list()] == [base]
