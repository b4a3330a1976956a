"""Training a sparse autoencoder as a resumable run: `imo.inspect.sae.train_sae`'s loop, step for
step, with checkpoints.

Every `every` steps, and at the step where Ctrl-C or SIGTERM arrives, the whole training state
goes into one safetensors file, `train-state.safetensors`, in the SAE run's folder:
- the SAE's parameters and buffers;
- Adam's moments and step counts;
- the batch sampler's generator state;
- each latent's count of tokens since it last fired (what AuxK calls dead).
Its JSON metadata holds the step, the config and the data's shape. Nothing is pickled. A
resumed run draws the same batches and makes the same updates, so its SAE equals the
uninterrupted one bit for bit, and that SAE equals `train_sae`'s (tests/inspect/test_sae_runs.py).

    sae, step, stopped = train_resumable(acts, cfg, run_dir)      # resumes if a checkpoint is there
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_file, save_file

from imo.atomic import atomic_path
from imo.errors import ConfigError
from imo.inspect import sae as S

STATE = "train-state.safetensors"


def _save(path: Path, step: int, sae: S.SAE, opt: torch.optim.Optimizer, gen: torch.Generator,
          since: torch.Tensor, shape: tuple[int, int]) -> None:
    tensors = {f"sae.{k}": v.detach().clone().contiguous() for k, v in sae.state_dict().items()}
    for i, st in opt.state_dict()["state"].items():
        for key, v in st.items():
            tensors[f"adam.{i}.{key}"] = torch.as_tensor(v).detach().clone().contiguous()
    tensors["gen_state"] = gen.get_state()
    tensors["since"] = since.clone()
    meta = {"step": str(step), "config": json.dumps(asdict(sae.cfg)), "shape": json.dumps(list(shape))}
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        save_file(tensors, str(tmp), metadata=meta)


def _load(path: Path, sae: S.SAE, opt: torch.optim.Optimizer, gen: torch.Generator,
          shape: tuple[int, int]) -> tuple[int, torch.Tensor]:
    from safetensors import safe_open

    with safe_open(str(path), "pt") as f:
        meta = f.metadata() or {}
    if json.loads(meta.get("config", "null")) != asdict(sae.cfg):
        raise ConfigError(f"{path} was written by a different SAE config; it cannot be resumed with this one")
    if json.loads(meta.get("shape", "null")) != list(shape):
        raise ConfigError(f"{path} was trained on activations of shape {meta.get('shape')}, not {list(shape)}")
    t = load_file(str(path))
    sae.load_state_dict({k[4:]: v for k, v in t.items() if k.startswith("sae.")})
    state: dict[int, dict] = {}
    for k, v in t.items():
        if k.startswith("adam."):
            _, i, key = k.split(".", 2)
            state.setdefault(int(i), {})[key] = v
    opt.load_state_dict({"state": state, "param_groups": opt.state_dict()["param_groups"]})
    gen.set_state(t["gen_state"])
    return int(meta["step"]), t["since"]


def train_resumable(acts: np.ndarray, cfg: S.SAEConfig, folder: Path, *, every: int = 250,
                    log: Callable[[int, float], None] | None = None, stop=None,
                    stop_at: int | None = None) -> tuple[S.SAE, int, bool]:
    """(SAE, step reached, stopped). Continues from folder/train-state.safetensors when it is
    there. `stop`: an object whose `.set` turns true on a signal (imo.train.loop.StopFlag);
    `stop_at`: stop after that step (tests). A stop writes the state first."""
    cfg.check()
    if every < 1:
        raise ConfigError("the checkpoint interval must be positive")
    data = torch.from_numpy(np.array(acts, dtype=np.float32))
    n, d = data.shape
    sae = S.build(d, cfg)   # the same construction and draws, in the same order, as train_sae
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    scale = float(((data - data.mean(0)) ** 2).sum(-1).mean())
    sae.prepare(data.mean(0), scale)
    opt = torch.optim.Adam(sae.parameters(), lr=cfg.lr)
    since = torch.zeros(cfg.latents, dtype=torch.long)   # tokens since each latent last fired
    path = folder / STATE
    start = 0
    if path.exists():
        start, since = _load(path, sae, opt, gen, (n, d))
    for step in range(start, cfg.steps):
        x = data[torch.randint(0, n, (min(cfg.batch, n),), generator=gen)]
        loss, fired = sae.loss(x, scale, since >= cfg.dead_after)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sae.renorm()
        since = torch.where(fired, 0, since + len(x))
        if log and (step % max(1, cfg.steps // 10) == 0 or step == cfg.steps - 1):
            log(step, float(loss.detach()))
        done = step + 1
        halted = (stop is not None and stop.set) or (stop_at is not None and done >= stop_at)
        if done < cfg.steps and (halted or done % every == 0):
            _save(path, done, sae, opt, gen, since, (n, d))
        if halted and done < cfg.steps:
            return sae.eval(), done, True
    return sae.eval(), cfg.steps, False
