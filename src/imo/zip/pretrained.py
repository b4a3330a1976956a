"""Pretrained mode of `imo zip` (ts_zip's idea, Bellard 2023): a trained imo run predicts the
next byte; it is not stored in the file, only named (run id, config hash, checkpoint SHA-256), so
the decoder needs the same run. The reported size is then given with and without the model's bytes.

The model is frozen. At each step it reads the last `window` bytes of every stream (zeros before
a stream's start) in one (m, window) forward pass and takes the last position's logits: the same
shapes in the encoder and the decoder, so the same arithmetic.

    net, info = load_pretrained("a1b2c3", streams=32, window=64)
    Predictor(settings, net=net)
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from imo.errors import CheckpointError


class PretrainedNet:
    """A frozen GPT run behind the predict/update interface of imo.zip.net.OnlineNet."""

    def __init__(self, model: torch.nn.Module, streams: int, window: int):
        self.model, self.window = model.eval(), window
        self.ctx = torch.zeros(streams, window, dtype=torch.long)

    def reset_streams(self) -> None:
        self.ctx.zero_()

    def predict(self, m: int) -> np.ndarray:
        with torch.no_grad():
            logits, _ = self.model(self.ctx[:m])  # (m, window, 256)
            return torch.log_softmax(logits[:, -1].float(), dim=1).numpy()

    def update(self, symbols: np.ndarray) -> None:
        m = len(symbols)
        new = torch.from_numpy(symbols.astype(np.int64))[:, None]
        self.ctx[:m] = torch.cat([self.ctx[:m, 1:], new], dim=1)

    def flops_per_byte(self) -> int:
        n = sum(p.numel() for p in self.model.parameters())
        return 2 * n * self.window  # a full window forward per coded byte


def run_info(run: str, store=None) -> tuple[Any, dict[str, Any]]:
    """(run folder, header info) of a run: id, config hash, checkpoint SHA-256, model bytes."""
    from imo.runs.store import RunStore
    from imo.train.checkpoint import checkpoint_dir

    store = store or RunStore.open()
    run_id = store.resolve(run)
    row = store.get(run_id)
    folder = store.run_dir(run_id)
    ckpt = checkpoint_dir(folder)
    weights = ckpt / "model.safetensors"
    if not weights.is_file():
        raise CheckpointError(f"run {run_id} has no model.safetensors")
    import hashlib

    sha = hashlib.sha256(weights.read_bytes()).hexdigest()
    return folder, {"run": run_id, "config_hash": row.get("config_hash"), "sha256": sha,
                    "model_bytes": weights.stat().st_size}


def load_pretrained(info: dict[str, Any], streams: int, window: int, store=None) -> PretrainedNet:
    """The run named in `info`, after checking that its weights are the ones the file was made with."""
    from imo.train.checkpoint import load_model

    folder, here = run_info(info["run"], store)
    if here["sha256"] != info.get("sha256"):
        raise CheckpointError(f"run {info['run']}'s weights differ from those the file was compressed with "
                              "(checkpoint SHA-256 mismatch)")
    model, meta = load_model(folder)
    model_cfg = meta.get("config", {}).get("model", {})
    block = model_cfg.get("context_length", model_cfg.get("block_size", window))  # block_size: before v0.2
    return PretrainedNet(model, streams, min(window, block))
