"""hf-gpt2 export: Hugging Face's GPT2LMHeadModel loads the folder and computes imo's logits;
shapes GPT-2 cannot express and non-empty output folders are refused with one-line errors."""

from __future__ import annotations

import json

import pytest
import torch
import typer
from safetensors.torch import load_file
from typer.testing import CliRunner

from imo.errors import ConfigError
from imo.model import GPT, ModelConfig
from imo.model.cli import export_command
from imo.model.export import export_hf_gpt2
from imo.runs.store import RunStore
from imo.train.checkpoint import save_checkpoint

TINY = dict(n_layer=2, n_embd=32, n_head=4, context_length=16, pos="learned")


def make_run(run_dir, seed: int = 0, **overrides) -> GPT:
    """A random model saved as a run's checkpoint. Biases and LayerNorms are made non-trivial,
    so a dropped or misplaced tensor changes the logits, and the other weights 10x larger than
    GPT's init: at std 0.02, erf GELU and tanh GELU ("gelu_new") agree to 1e-7 in the logits,
    at 0.2 they differ by ~1e-3, so the wrong activation fails the comparison."""
    torch.manual_seed(seed)
    cfg = ModelConfig(**{**TINY, **overrides})
    model = GPT(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias") or "ln_" in name:
                p.add_(0.1 * torch.randn_like(p))
            else:
                p.mul_(10.0)
    save_checkpoint(run_dir, 7, model.state_dict_for_save(), {}, {"config": {"model": cfg.to_dict(), "train": {}}})
    return model.eval()


def hf_logits(out_dir, idx: torch.Tensor) -> torch.Tensor:
    transformers = pytest.importorskip(
        "transformers", reason="transformers is not installed (pip install -e '.[bench]')"
    )
    hf = transformers.GPT2LMHeadModel.from_pretrained(out_dir).eval()
    with torch.no_grad():
        return hf(idx).logits


@pytest.mark.parametrize("tie", [True, False])
def test_hf_gpt2_logits_equal_imo(tmp_path, tie):
    model = make_run(tmp_path / "run", tie_weights=tie)
    out = export_hf_gpt2(tmp_path / "run", tmp_path / "hf")
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    idx = torch.randint(0, 256, (3, 16), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, _ = model(idx)
    theirs = hf_logits(out, idx)
    assert theirs.shape == ours.shape == (3, 16, 256)
    torch.testing.assert_close(theirs, ours, atol=1e-4, rtol=0)


def test_files_names_and_config(tmp_path):
    model = make_run(tmp_path / "run")
    out = export_hf_gpt2(tmp_path / "run", tmp_path / "hf")
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["activation_function"] == "gelu" and cfg["n_positions"] == 16
    assert (cfg["vocab_size"], cfg["n_embd"], cfg["n_layer"], cfg["n_head"], cfg["n_inner"]) == (256, 32, 2, 4, 128)
    sd = load_file(out / "model.safetensors")
    assert "lm_head.weight" not in sd  # tied: HF ties it to wte
    assert sd["transformer.h.0.attn.c_attn.weight"].shape == (32, 96)  # Conv1D: (in, out)
    torch.testing.assert_close(sd["transformer.h.1.mlp.c_fc.weight"], model.transformer.h[1].mlp.c_fc.weight.t())
    assert "list(text.encode())" in (out / "README.md").read_text()


@pytest.mark.parametrize(
    "overrides, words",
    [
        (dict(pos="rope"), "pos='learned'"),
        (dict(pos="alibi"), "pos='learned'"),
        (dict(bias=False), "always has biases"),
    ],
)
def test_refuses_shapes_gpt2_cannot_express(tmp_path, overrides, words):
    make_run(tmp_path / "run", **overrides)
    with pytest.raises(ConfigError, match=words) as e:
        export_hf_gpt2(tmp_path / "run", tmp_path / "hf")
    assert "\n" not in str(e.value)
    assert not (tmp_path / "hf").exists() and [p.name for p in tmp_path.iterdir()] == ["run"]


def test_non_empty_dir_needs_force(tmp_path):
    make_run(tmp_path / "run", seed=0)
    out = tmp_path / "hf"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="exists; pass --force to overwrite"):
        export_hf_gpt2(tmp_path / "run", out)
    assert (out / "notes.txt").read_text() == "mine"

    model = make_run(tmp_path / "run", seed=1)  # a new checkpoint replaces the old export
    export_hf_gpt2(tmp_path / "run", out, force=True)
    assert not (out / "notes.txt").exists()
    sd = load_file(out / "model.safetensors")
    torch.testing.assert_close(sd["transformer.wte.weight"], model.transformer.wte.weight)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["hf", "run"]  # no temporary folders left


def test_empty_dir_is_fine(tmp_path):
    make_run(tmp_path / "run")
    (tmp_path / "hf").mkdir()
    assert (export_hf_gpt2(tmp_path / "run", tmp_path / "hf") / "model.safetensors").exists()


def test_cli_resolves_run_and_checks_format(tmp_path):
    app = typer.Typer()
    app.command("export")(export_command)
    with RunStore.open() as s:
        rid = s.create_run("train", "tiny-learned-export", {})
        make_run(s.run_dir(rid))
    runner = CliRunner()
    res = runner.invoke(app, [rid[:6], "--format", "hf-gpt2", str(tmp_path / "hf")])
    assert res.exit_code == 0, res.output
    assert res.stdout.strip() == str((tmp_path / "hf").resolve())
    res = runner.invoke(app, ["tiny-learned-export", "--format", "onnx", str(tmp_path / "x")])
    assert isinstance(res.exception, ConfigError) and "hf-gpt2" in str(res.exception)


def test_a_missing_parent_folder_is_refused_like_zip_and_report(tmp_path, capsys):
    from imo.cli import main

    with RunStore.open() as s:
        rid = s.create_run("train", "tiny-export-parent", {})
        make_run(s.run_dir(rid))
    out = tmp_path / "no" / "such" / "hf"
    with pytest.raises(SystemExit) as e:
        main(["export", rid, str(out)])
    err = capsys.readouterr().err
    assert e.value.code == 2 and err.count("\n") == 1 and "does not exist" in err, err
    assert not (tmp_path / "no").exists()  # nothing created
