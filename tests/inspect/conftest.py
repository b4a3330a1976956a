"""A tiny trained byte model and a 64-latent SAE on it, shared by the browser and route tests."""

import pytest

from imo.cli import main
from imo.runs.store import RunStore
from imo.train.config import RunConfig
from imo.train.trainer import train

HOOK = "blocks.1.hook_resid_post"


@pytest.fixture
def lm_and_sae(capsys):
    cfg = RunConfig.build(preset=None, model=dict(n_layer=2, n_embd=32, n_head=2, context_length=32),
                          train=dict(steps=20, batch_size=4, warmup=2, eval_every=20, eval_batches=1))
    rid = train(cfg, quiet=True)
    with pytest.raises(SystemExit) as e:
        main(["inspect", "sae", rid[:8], "--hook", HOOK, "--latents", "64", "--k", "4", "--tokens", "1024",
              "--steps", "40", "--batch", "256", "--eval-windows", "2", "-q"])
    assert (e.value.code or 0) == 0, capsys.readouterr().err
    capsys.readouterr()
    (run,) = RunStore.open().list(kind="sae")
    return rid, run["id"]
