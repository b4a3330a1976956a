"""Activation store: one hook point's activations over a token stream, streamed into a
memory-mapped float32 file [tokens, d], resumable.

Windows are consecutive, non-overlapping `context`-token slices of the split, so window i always
holds the same tokens and a resumed cache continues exactly where it stopped. `meta.json` records
how many rows are filled; it is rewritten (atomically) only after the rows it counts are flushed,
so a crash loses at most one batch and never leaves a count ahead of the data. The forward pass
stops at the hook point (the blocks after it and the unembedding are never run), which halves
the cost of caching a middle layer.

    meta = cache_activations(model, tokens, "blocks.2.hook_resid_post", 100_000, Path("acts/"))
    acts = open_activations(Path("acts/"))      # np.memmap [filled, d]
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from imo.atomic import write_text
from imo.errors import ConfigError, DataError
from imo.model.hooks import hook_points, hooks

FORMAT = 1


class _Taken(Exception):
    """Raised by the capturing hook once it holds the activation, to end the forward pass there."""


@torch.no_grad()
def capture(model: torch.nn.Module, idx: torch.Tensor, hook: str) -> torch.Tensor:
    """`hook`'s activation for token ids `idx`, as run_with_cache gives it (naive attention path),
    without computing anything the activation does not depend on."""
    box: dict[str, torch.Tensor] = {}

    def take(a: torch.Tensor) -> None:
        box["x"] = a.detach()
        raise _Taken

    try:
        with hooks(model, {hook: take}), model.attention_backend("naive"):
            model(idx)
    except _Taken:
        pass
    if "x" not in box:
        raise ConfigError(f"hook point {hook!r} was not reached in the forward pass")
    return box["x"]


def _read_meta(folder: Path) -> dict | None:
    path = folder / "meta.json"
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        raise DataError(f"{path} is not valid JSON") from None


def cache_activations(model: torch.nn.Module, tokens: np.ndarray, hook: str, n_tokens: int, folder: Path, *,
                      context: int, batch: int = 8, source: dict | None = None, force: bool = False,
                      progress: Callable[[int, int], None] | None = None) -> dict:
    """Fill folder/acts.f32 with `n_tokens` rows of `hook`'s activation (the last dimension).
    An unfinished cache with the same settings resumes; a different one needs `force`."""
    if hook not in hook_points(model):
        raise ConfigError(f"unknown hook point {hook!r}", hint="e.g. blocks.0.hook_resid_post")
    if n_tokens < 1 or context < 1 or batch < 1:
        raise ConfigError("tokens, context and batch must be positive")
    windows = len(tokens) // context
    if windows * context < n_tokens:
        raise ConfigError(f"the split has {windows * context} tokens in whole windows of {context}; "
                          f"{n_tokens} were asked")
    settings = {"format": FORMAT, "hook": hook, "tokens": n_tokens, "context": context,
                "source": source or {}}
    folder.mkdir(parents=True, exist_ok=True)
    meta = _read_meta(folder)
    if meta is not None and not force:
        if {k: meta.get(k) for k in settings} != settings:
            raise ConfigError(f"{folder} holds a different cache ({meta.get('hook')}, {meta.get('tokens')} tokens)",
                              hint="pass --force to replace it")
        filled = int(meta["filled"])
    else:
        meta, filled = None, 0
    probe = capture(model, torch.tensor(np.array(tokens[:context], dtype=np.int64))[None], hook)
    d = probe.shape[-1]
    path = folder / "acts.f32"
    mode = "r+" if meta is not None and path.exists() else "w+"
    acts = np.memmap(path, dtype=np.float32, mode=mode, shape=(n_tokens, d))
    meta = {**settings, "d": d, "dtype": "float32", "filled": filled}
    write_text(folder / "meta.json", json.dumps(meta, indent=1))
    w = filled // context  # rows are whole windows except the very last one
    while filled < n_tokens:
        idx = np.stack([np.array(tokens[(w + j) * context:(w + j + 1) * context], dtype=np.int64)
                        for j in range(min(batch, -(-(n_tokens - filled) // context)))])
        rows = capture(model, torch.as_tensor(idx, dtype=torch.long), hook).reshape(-1, d)[: n_tokens - filled].float().numpy()
        acts[filled:filled + len(rows)] = rows
        acts.flush()
        filled += len(rows)
        w += len(idx)
        meta["filled"] = filled
        write_text(folder / "meta.json", json.dumps(meta, indent=1))
        if progress:
            progress(filled, n_tokens)
    del acts
    return meta


def open_activations(folder: Path) -> np.memmap:
    """The filled rows of a cache, read-only."""
    meta = _read_meta(folder)
    if meta is None:
        raise DataError(f"{folder} holds no activation cache (no meta.json)")
    full = np.memmap(folder / "acts.f32", dtype=np.float32, mode="r", shape=(meta["tokens"], meta["d"]))
    return full[: meta["filled"]]
