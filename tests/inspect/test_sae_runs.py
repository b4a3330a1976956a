"""Resumable SAE training: the checkpointed loop equals train_sae, a run stopped and resumed ends
with the same SAE as one that was never stopped, and `imo inspect sae --resume` does this end to
end through the run store (a stop exits 130 and leaves a run marked interrupted)."""

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from imo.cli import main
from imo.errors import ConfigError
from imo.inspect import sae as S
from imo.inspect.sae_runs import STATE, train_resumable
from imo.runs.store import RunStore
from imo.train.config import RunConfig
from imo.train.trainer import train

HOOK = "blocks.1.hook_resid_post"


def acts(n=600, d=12, seed=0):
    g = np.random.default_rng(seed)
    return (g.standard_normal((n, 24)) * (g.random((n, 24)) < 0.15)) @ g.standard_normal((24, d))


def same(a: S.SAE, b: S.SAE) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("arch", ["topk", "batchtopk", "jumprelu"])
def test_uninterrupted_equals_train_sae_and_a_resume_equals_both(arch, tmp_path):
    # dead_after small so AuxK and the since-fired counters matter across the stop
    cfg = S.SAEConfig(arch=arch, latents=32, k=3, steps=30, batch=64, dead_after=128, seed=3)
    x = acts().astype(np.float32)
    plain = S.train_sae(x, cfg)
    whole, step, stopped = train_resumable(x, cfg, tmp_path / "a", every=7)
    assert (step, stopped) == (30, False) and same(plain, whole)

    part, step, stopped = train_resumable(x, cfg, tmp_path / "b", every=100, stop_at=11)
    assert (step, stopped) == (11, True) and (tmp_path / "b" / STATE).exists()
    assert not same(part, whole)
    resumed, step, stopped = train_resumable(x, cfg, tmp_path / "b", every=100)
    assert (step, stopped) == (30, False) and same(resumed, whole)


def test_a_checkpoint_of_another_config_or_data_is_refused(tmp_path):
    cfg = S.SAEConfig(latents=16, k=2, steps=10, batch=32)
    x = acts().astype(np.float32)
    train_resumable(x, cfg, tmp_path, stop_at=4)
    with pytest.raises(ConfigError, match="different SAE config"):
        train_resumable(x, S.SAEConfig(latents=16, k=3, steps=10, batch=32), tmp_path)
    with pytest.raises(ConfigError, match="shape"):
        train_resumable(x[:500], cfg, tmp_path)


class StopAtOnce:
    """Stands in for imo.train.loop.StopFlag: as if Ctrl-C came during the first step."""

    set, signum = True, 2

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def sae_cli(args, capsys):
    with pytest.raises(SystemExit) as e:
        main(["inspect", "sae", *args])
    return e.value.code or 0, capsys.readouterr()


def test_cli_stop_then_resume_matches_an_uninterrupted_run(monkeypatch, capsys):
    cfg = RunConfig.build(preset=None, model=dict(n_layer=2, n_embd=32, n_head=2, context_length=32),
                          train=dict(steps=4, batch_size=4, warmup=1, eval_every=4, eval_batches=1))
    rid = train(cfg, quiet=True)
    flags = ["--hook", HOOK, "--latents", "32", "--k", "4", "--tokens", "640", "--steps", "12",
             "--batch", "64", "--eval-windows", "2", "--checkpoint-every", "5", "-q"]
    code, _ = sae_cli([rid[:8], *flags], capsys)
    assert code == 0
    store = RunStore.open()
    (whole,) = store.list(kind="sae")
    whole = store.get(whole["id"])

    import imo.train.loop
    with monkeypatch.context() as m:
        m.setattr(imo.train.loop, "StopFlag", StopAtOnce)
        code, out = sae_cli([rid[:8], *flags], capsys)
    assert code == 130 and "--resume" in out.out
    (stopped,) = [r for r in store.list(kind="sae") if r["id"] != whole["id"]]
    assert stopped["status"] == "interrupted" and (store.run_dir(stopped["id"]) / STATE).exists()

    code, out = sae_cli(["--resume", stopped["id"][:8], "--latents", "64"], capsys)
    assert code == 2 and "--latents" in out.err and "Traceback" not in out.err
    code, _ = sae_cli(["--resume", stopped["id"][:8], "-q"], capsys)
    assert code == 0
    done = store.get(stopped["id"])
    assert done["status"] == "finished" and not (store.run_dir(done["id"]) / STATE).exists()
    a, b = load_file(whole["artifacts"]["sae"]), load_file(done["artifacts"]["sae"])
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert done["figures"]["fvu"] == whole["figures"]["fvu"]

    code, out = sae_cli(["--resume", done["id"][:8]], capsys)
    assert code == 2 and "nothing to resume" in out.err
    code, out = sae_cli(["--latents", "8"], capsys)
    assert code == 2 and "--hook" in out.err
