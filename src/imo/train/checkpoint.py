"""Checkpoints: safetensors weights + JSON metadata, written atomically, verified on load.

Loading never unpickles: weights and optimizer moments are safetensors, the rest is JSON. Layout
inside a run folder:

    checkpoint.json              pointer: {"format": 1, "step": 500, "dir": "ckpt-000500"}
    ckpt-000500/model.safetensors
    ckpt-000500/state.safetensors  optimizer moments, RNG states (absent in exported weights)
    ckpt-000500/meta.json          format, step, run config, sha256 of both files

A checkpoint folder is complete before it is renamed into place, and the pointer is replaced
(os.replace) only after that, so an interrupted write leaves the previous checkpoint intact.

    save_checkpoint(run_dir, step, weights, state, meta)   # weights/state: name -> tensor
    model, meta = load_model(run_dir)   # also pruned/quantized runs (imo.compress.storage)
"""

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from imo.atomic import default_mode, write_text
from imo.errors import CheckpointError

FORMAT = 1
POINTER = "checkpoint.json"


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def optimizer_tensors(opt: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Flatten an optimizer state dict into named tensors plus JSON-able param groups."""
    sd = opt.state_dict()
    tensors = {}
    for idx, state in sd["state"].items():
        for key, val in state.items():
            tensors[f"opt.{idx}.{key}"] = torch.as_tensor(val).detach().clone().contiguous()
    return tensors, {"param_groups": sd["param_groups"]}


def restore_optimizer(opt: torch.optim.Optimizer, tensors: dict[str, torch.Tensor], groups: dict) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, t in tensors.items():
        if name.startswith("opt."):
            _, idx, key = name.split(".", 2)
            state.setdefault(int(idx), {})[key] = t
    opt.load_state_dict({"state": state, "param_groups": groups["param_groups"]})


def save_checkpoint(
    run_dir: Path,
    step: int,
    weights: dict[str, torch.Tensor],
    state: dict[str, torch.Tensor],
    meta: dict[str, Any],
    keep: int = 1,
) -> Path:
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    name = f"ckpt-{step:06d}"
    final = run_dir / name
    tmp = run_dir / f".{name}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file({k: v.detach().cpu().contiguous() for k, v in weights.items()}, tmp / "model.safetensors")
    files = {"model.safetensors": _sha256(tmp / "model.safetensors")}
    if state:
        save_file({k: v.detach().cpu().contiguous() for k, v in state.items()}, tmp / "state.safetensors")
        files["state.safetensors"] = _sha256(tmp / "state.safetensors")
    write_text(tmp / "meta.json", json.dumps({**meta, "format": FORMAT, "step": step, "files": files}, indent=2))
    for f in tmp.iterdir():  # flush file contents before the rename makes them visible
        with open(f, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(f, default_mode())  # safetensors writes 0600; the umask decides, as for any file
    if final.exists():
        shutil.rmtree(final)
    os.rename(tmp, final)
    write_text(run_dir / POINTER, json.dumps({"format": FORMAT, "step": step, "dir": name}))
    old = sorted(p for p in run_dir.glob("ckpt-*") if p.is_dir() and p.name != name)
    for p in old[: max(0, len(old) - (keep - 1))]:
        shutil.rmtree(p, ignore_errors=True)
    return final


def checkpoint_dir(run_dir: Path) -> Path:
    pointer = Path(run_dir) / POINTER
    if not pointer.exists():
        raise CheckpointError(f"no checkpoint in '{run_dir}' (missing {POINTER}); was the run started?")
    try:
        ptr = json.loads(pointer.read_text())
        return Path(run_dir) / ptr["dir"]
    except (json.JSONDecodeError, KeyError, TypeError):
        raise CheckpointError(f"checkpoint pointer '{pointer}' is corrupt") from None


def read_checkpoint(ckpt: Path, with_state: bool = True) -> tuple[dict, dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """Return (meta, weights, state), verifying format and checksums."""
    meta_path = ckpt / "meta.json"
    try:
        meta = json.loads(meta_path.read_text())
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint '{ckpt}' is missing meta.json") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise CheckpointError(f"checkpoint '{ckpt}' has a corrupt meta.json") from None
    if meta.get("format") != FORMAT:
        raise CheckpointError(
            f"checkpoint '{ckpt}' has format {meta.get('format')!r}; this imo reads format {FORMAT}"
        )
    wanted = ["model.safetensors"] + (["state.safetensors"] if with_state and "state.safetensors" in meta["files"] else [])
    loaded = {}
    for fname in wanted:
        path = ckpt / fname
        if not path.exists():
            raise CheckpointError(f"checkpoint '{ckpt}' is missing {fname}")
        if _sha256(path) != meta["files"][fname]:
            raise CheckpointError(f"checkpoint file '{path}' is corrupt (checksum mismatch)")
        try:
            loaded[fname] = load_file(path)
        except (SafetensorError, OSError) as e:
            raise CheckpointError(f"checkpoint file '{path}' is unreadable: {e}") from None
    return meta, loaded["model.safetensors"], loaded.get("state.safetensors", {})


def load_model(run_dir: Path, device: str = "cpu"):
    """The model of a run's latest checkpoint, in eval mode, and its metadata."""
    from imo.model import ModelConfig
    from imo.model.families import build_model

    meta, weights, _ = read_checkpoint(checkpoint_dir(run_dir), with_state=False)
    if "compress" in meta:  # a pruned or quantized run (imo prune / imo quantize): its own layout
        from imo.compress.storage import build_gpt

        return build_gpt(meta, weights).to(device).eval(), meta
    model = build_model(ModelConfig.from_dict(meta["config"]["model"]))  # gpt, or llama for imports
    try:
        model.load_saved_state(weights)
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint in '{run_dir}' does not match its config: {str(e).splitlines()[0]}") from None
    return model.to(device).eval(), meta
