"""The activation store on a tiny trained run: the rows equal run_with_cache, an interrupted
cache resumes to the same file, a different cache is refused, and the CLI end to end."""

import numpy as np
import pytest
import torch

from imo.cli import main
from imo.data.corpora import load_corpus
from imo.errors import ConfigError
from imo.inspect.activations import cache_activations, open_activations
from imo.model.hooks import run_with_cache
from imo.runs.store import RunStore
from imo.train.checkpoint import load_model
from imo.train.config import RunConfig
from imo.train.trainer import train

HOOK = "blocks.1.hook_resid_post"


@pytest.fixture
def run_and_model():
    cfg = RunConfig.build(preset=None, model=dict(n_layer=2, n_embd=32, n_head=2, context_length=16),
                          train=dict(steps=2, batch_size=2, warmup=1, eval_every=2, eval_batches=1))
    rid = train(cfg, quiet=True)
    model, _ = load_model(RunStore.open().run_dir(rid))
    return rid, model, np.asarray(load_corpus("python-docs").train)


def test_rows_match_run_with_cache_and_resume(run_and_model, tmp_path):
    _, model, tokens = run_and_model
    meta = cache_activations(model, tokens, HOOK, 40, tmp_path / "a", context=16, batch=1)
    assert meta["filled"] == 40 and meta["d"] == 32
    acts = open_activations(tmp_path / "a")
    with torch.no_grad():
        _, cache = run_with_cache(model, torch.tensor(tokens[:48].reshape(3, 16).astype(np.int64)), [HOOK])
    assert np.allclose(acts, cache[HOOK].reshape(-1, 32)[:40].numpy(), atol=1e-5)

    # stop after one batch (as a crash would), then resume: same file as the uninterrupted one
    class Stop(Exception):
        pass

    def stop(done, total):
        raise Stop

    with pytest.raises(Stop):
        cache_activations(model, tokens, HOOK, 40, tmp_path / "b", context=16, batch=1, progress=stop)
    assert open_activations(tmp_path / "b").shape == (16, 32)
    seen = []
    cache_activations(model, tokens, HOOK, 40, tmp_path / "b", context=16, batch=1,
                      progress=lambda d, t: seen.append(d))
    assert seen == [32, 40]  # it did not redo the first window
    assert np.array_equal(open_activations(tmp_path / "b"), acts)


def test_bad_requests_are_config_errors(run_and_model, tmp_path):
    _, model, tokens = run_and_model
    with pytest.raises(ConfigError, match="unknown hook"):
        cache_activations(model, tokens, "blocks.9.nope", 10, tmp_path / "c", context=16)
    cache_activations(model, tokens, HOOK, 16, tmp_path / "c", context=16)
    with pytest.raises(ConfigError, match="different cache"):
        cache_activations(model, tokens, "blocks.0.hook_resid_post", 16, tmp_path / "c", context=16)
    with pytest.raises(ConfigError, match="tokens in whole windows"):
        cache_activations(model, tokens[:20], HOOK, 32, tmp_path / "d", context=16)


def test_cli_cache(run_and_model, tmp_path, capsys):
    rid, _, _ = run_and_model
    with pytest.raises(SystemExit) as e:
        main(["inspect", "cache", rid[:8], "--hook", HOOK, "--tokens", "24", "-o", str(tmp_path / "x"), "-q"])
    assert (e.value.code or 0) == 0
    assert "24 x 32" in capsys.readouterr().out
    assert open_activations(tmp_path / "x").shape == (24, 32)
    with pytest.raises(SystemExit) as e:
        main(["inspect", "cache", rid[:8], "--hook", "nope", "--tokens", "24", "-o", str(tmp_path / "y")])
    assert e.value.code == 2 and "unknown hook" in capsys.readouterr().err


def test_cli_sae_trains_evaluates_and_saves_a_run(run_and_model, capsys):
    from safetensors.torch import load_file

    from imo.inspect import sae as S

    rid, model, _ = run_and_model
    with pytest.raises(SystemExit) as e:
        main(["inspect", "sae", rid[:8], "--hook", HOOK, "--latents", "64", "--k", "4", "--tokens", "512",
              "--steps", "30", "--batch", "128", "--eval-windows", "2", "-q"])
    assert (e.value.code or 0) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    assert "FVU" in out and "loss recovered" in out and "vs mean" in out and "dark matter" in out
    store = RunStore.open()
    (run,) = store.list(kind="sae")
    figs = run["figures"]
    assert run["parent"] == rid and 0 <= figs["dead"] <= 1 and figs["l0"] <= 4
    gaps = [v for k, v in figs.items() if k.startswith("dark_") and k.endswith("_loss_gap")]
    shares = [v for k, v in figs.items() if k.startswith("dark_") and k.endswith("_tokens")]
    assert gaps and sum(gaps) == pytest.approx(1.0) and sum(shares) == pytest.approx(1.0)
    assert 0 < figs["decoder_dims_per_feature_median"] < 1   # 64 unit rows in 32 dimensions
    tensors = load_file(str(store.run_dir(run["id"]) / "sae.safetensors"))
    assert S.load(tensors, run["config"]["sae"]).W_dec.shape == (64, 32)


def test_capture_stops_the_forward_pass_at_the_hook(run_and_model):
    from imo.inspect.activations import capture

    _, model, tokens = run_and_model
    idx = torch.tensor(tokens[:32].reshape(2, 16).astype(np.int64))
    calls = []
    model.transformer.h[1].register_forward_hook(lambda *a: calls.append(1))
    model.lm_head.register_forward_hook(lambda *a: calls.append(2))
    got = capture(model, idx, "blocks.0.hook_resid_post")
    assert calls == []      # neither the second block nor the unembedding ran
    _, cache = run_with_cache(model, idx, ["blocks.0.hook_resid_post"])
    assert torch.equal(got, cache["blocks.0.hook_resid_post"])
    assert calls == [1, 2]  # run_with_cache runs them (the check above can fail)
