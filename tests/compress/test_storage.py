"""Compact checkpoints and the CLI: outputs identical after saving, files really smaller, parent
links, `imo eval` and `imo runs show` on transformed runs, and bad input -> exit 2, one line."""

import json

import pytest
import torch

from imo.cli import main
from imo.compress import storage
from imo.compress.prune import get_mask, prune_
from imo.compress.quantize import QuantConfig, quantize_
from imo.compress.runs import checkpoint_bytes
from imo.errors import CheckpointError
from imo.model import GPT, ModelConfig
from imo.runs.store import RunStore
from imo.train.checkpoint import checkpoint_dir, load_model
from imo.train.config import RunConfig
from imo.train.trainer import train

CFG = ModelConfig(n_layer=2, n_embd=32, n_head=2, context_length=16)


def _model(seed=0):
    torch.manual_seed(seed)
    return GPT(CFG).eval()


def _round_trip(model):
    tensors, layout = storage.encode(model)
    meta = {"config": {"model": CFG.to_dict()}, "compress": json.loads(json.dumps(layout))}
    return storage.build_gpt(meta, tensors).eval(), tensors


@pytest.mark.parametrize("transform", ["prune", "int8", "int4", "prune+int8", "int8-split-keep", "int4-tinygemm"])
def test_saved_and_loaded_outputs_are_identical(transform):
    model = _model()
    if "prune" in transform:
        prune_(model, "magnitude", 0.6)
    if "int8" in transform:
        keep = ["lm_head", "transformer.wte"] if "keep" in transform else []
        quantize_(model, QuantConfig(bits=8, kernel="vectorwise",
                                     outlier_threshold=6.0 if "split" in transform else None), skip=keep)
    if "int4" in transform:
        kernel = "tinygemm" if "tinygemm" in transform else "auto"
        quantize_(model, QuantConfig(bits=4, group_size=32 if kernel == "tinygemm" else 16, kernel=kernel))
    x = torch.randint(0, 256, (2, 16))
    loaded, _ = _round_trip(model)
    assert torch.equal(model(x)[0], loaded(x)[0])
    kernels = {n: m.kernel for n, m in loaded.named_modules() if hasattr(m, "kernel")}
    assert kernels == {n: m.kernel for n, m in model.named_modules() if hasattr(m, "kernel")}
    if transform == "prune":  # masks come back, so further training keeps the zeros
        for name, m in model.named_modules():
            if hasattr(m, "weight_mask"):
                assert torch.equal(get_mask(dict(loaded.named_modules())[name]), m.weight_mask)


def test_corrupt_mask_is_refused():
    model = _model()
    prune_(model, "magnitude", 0.6)
    tensors, layout = storage.encode(model)
    key = "transformer.h.0.attn.c_attn.weight"
    assert layout["tensors"][key]["encoding"] == "bitmask"
    bits = tensors[f"{key}::mask"].clone()
    bits[0] ^= 0xFF
    with pytest.raises(CheckpointError, match="corrupt mask"):
        storage.build_gpt({"config": {"model": CFG.to_dict()}, "compress": layout}, {**tensors, f"{key}::mask": bits})


@pytest.fixture
def trained():
    cfg = RunConfig.build(preset=None, model=dict(n_layer=2, n_embd=64, n_head=2, context_length=32),
                          train=dict(steps=3, batch_size=2, warmup=1, eval_every=3, eval_batches=1))
    return train(cfg, quiet=True)


def _cli(capsys, *args):
    with pytest.raises(SystemExit) as e:
        main(list(args))
    return e.value.code, capsys.readouterr()


def _ok(capsys, *args) -> str:
    code, cap = _cli(capsys, *args)
    assert code in (0, None), (args, cap.err)
    return cap.out


def test_cli_prune_quantize_eval_show(trained, capsys):
    store = RunStore.open()
    parent_bytes = checkpoint_bytes(store.run_dir(trained))
    pruned = _ok(capsys, "prune", trained, "--sparsity", "0.5", "--eval-bytes", "2048", "--finetune-steps", "2", "-q").strip()
    both = _ok(capsys, "quantize", pruned, "--bits", "8", "--eval-bytes", "2048", "-q").strip()
    int4 = _ok(capsys, "quantize", trained, "--bits", "4", "--group-size", "32", "--eval-bytes", "2048", "-q").strip()
    for rid, limit in ((pruned, 0.62), (both, 0.20), (int4, 0.20)):
        r = store.get(rid)
        assert r["kind"] in ("prune", "quantize") and r["status"] == "finished"
        assert checkpoint_bytes(store.run_dir(rid)) < limit * parent_bytes
        assert r["figures"]["bytes_on_disk"] == checkpoint_bytes(store.run_dir(rid))
    assert store.get(both)["parent"] == pruned and store.get(pruned)["parent"] == trained
    assert [s["op"] for s in store.get(both)["config"]["compress"]["steps"]] == ["prune", "quantize"]
    # the stored figure is the loaded model's bits/byte on the same bytes
    out = _ok(capsys, "eval", both, "--max-bytes", "2048")
    assert float(out.split()[0]) == pytest.approx(store.get(both)["figures"]["val_bpb"], abs=1e-4)
    model, _ = load_model(store.run_dir(both))
    assert (model.transformer.h[0].attn.c_attn.qweight.q == 0).float().mean() >= 0.3
    show = _ok(capsys, "runs", "show", both)
    assert "bytes on disk" in show and "bits/byte" in show
    out = _ok(capsys, "inspect-outliers", trained, "--windows", "1")
    assert "transformer.h.0.mlp.c_proj" in out


def test_cli_bad_input_exits_2_with_one_line(trained, capsys):
    store = RunStore.open()
    q = _ok(capsys, "quantize", trained, "--eval-bytes", "512", "-q").strip()
    cases = [
        (("prune", trained, "--sparsity", "1"), "[0, 1)"),
        (("prune", trained, "--method", "biggest"), "choose one of"),
        (("prune", trained, "--scope", "block"), "scope"),
        (("prune", trained, "--skip", "nothing.*"), "matches no layer"),
        (("quantize", q), "already quantized"),
        (("quantize", trained, "--bits", "2"), "bits must be one of"),
        (("quantize", trained, "--keep", "decoder"), "matches no layer"),
        (("quantize", trained, "--keep", "lm_head"), "tied"),
        (("inspect-outliers", trained, "--threshold", "0"), "threshold"),
        (("train", "--init-from", q, "--steps", "1", "--quiet"), "pruned or quantized run"),
    ]
    n_runs = len(store.list())
    for args, msg in cases:
        code, cap = _cli(capsys, *args)
        assert code == 2, args
        lines = cap.err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("imo: error:") and msg in lines[0], (args, cap.err)
    assert len(store.list()) == n_runs  # nothing half-made
    # a corrupted weights file is caught by the checksum
    f = checkpoint_dir(store.run_dir(q)) / "model.safetensors"
    f.write_bytes(f.read_bytes()[:-10] + b"0123456789")
    code, cap = _cli(capsys, "eval", q)
    assert code == 2 and "corrupt" in cap.err
