"""Sparse autoencoders on cached activations: registered architectures (topk, relu-l1), their
training loop, and the evaluation (FVU, L0, dead fraction, loss recovered against zero ablation).

Sources: Gao et al. 2024, "Scaling and evaluating sparse autoencoders" (TopK, encoder = decoderᵀ
init, the AuxK loss on dead latents); Bricken et al. 2023, "Towards Monosemanticity" (ReLU + L1,
unit-norm decoder); SAELens's `ce_loss_score` = (CE_zero - CE_sae) / (CE_zero - CE_clean).

    sae, log = train_sae(acts, SAEConfig(arch="topk", latents=1024, k=16))
    evaluate(sae, acts)                      # {"fvu": ..., "l0": ..., "dead": ...}
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import Tensor, nn

from imo.errors import ConfigError
from imo.registry import Registry

ARCHS: Registry[type[SAE]] = Registry("SAE architecture")


@dataclass(frozen=True)
class SAEConfig:
    arch: str = "topk"
    latents: int = 1024
    k: int = 16                  # topk: active latents per token
    l1: float = 5.0              # relu-l1: L1 coefficient (on mse normalised by the data variance)
    aux_k: int = 256             # topk: latents the AuxK loss may use to explain the residual
    aux_coef: float = 1 / 32     # topk: weight of the AuxK loss (Gao et al.)
    dead_after: int = 50_000     # a latent that has not fired for this many tokens counts as dead
    steps: int = 2000
    batch: int = 4096
    lr: float = 1e-3
    seed: int = 0

    def check(self) -> None:
        ARCHS.get(self.arch)
        if self.latents < 1 or self.k < 1 or self.steps < 1 or self.batch < 1 or self.lr <= 0:
            raise ConfigError("latents, k, steps, batch and lr must be positive")
        if self.k > self.latents:
            raise ConfigError(f"k={self.k} exceeds latents={self.latents}")


class SAE(nn.Module):
    """x̂ = f(x) W_dec + b_dec with f the architecture's sparse code; decoder rows kept unit norm."""

    def __init__(self, d: int, cfg: SAEConfig, gen: torch.Generator):
        super().__init__()
        self.cfg = cfg
        dec = torch.randn(cfg.latents, d, generator=gen)
        dec /= dec.norm(dim=1, keepdim=True)
        self.W_dec = nn.Parameter(dec)
        self.W_enc = nn.Parameter(dec.T.clone())   # encoder = decoderᵀ at init
        self.b_enc = nn.Parameter(torch.zeros(cfg.latents))
        self.b_dec = nn.Parameter(torch.zeros(d))

    def pre(self, x: Tensor) -> Tensor:
        return (x - self.b_dec) @ self.W_enc + self.b_enc

    def code(self, pre: Tensor) -> Tensor:
        raise NotImplementedError

    def encode(self, x: Tensor) -> Tensor:
        return self.code(self.pre(x))

    def decode(self, f: Tensor) -> Tensor:
        return f @ self.W_dec + self.b_dec

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))

    def loss(self, x: Tensor, scale: float, dead: Tensor) -> tuple[Tensor, Tensor]:
        """(loss, code) for a batch; `scale` is the data's variance per token, so the mse term is
        an FVU and the coefficients do not depend on the activations' size."""
        raise NotImplementedError

    @torch.no_grad()
    def renorm(self) -> None:
        self.W_dec /= self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-8)


@ARCHS.register("topk")
class TopKSAE(SAE):
    def code(self, pre: Tensor) -> Tensor:
        vals, idx = pre.topk(self.cfg.k, dim=-1)
        return torch.zeros_like(pre).scatter(-1, idx, torch.relu(vals))

    def loss(self, x, scale, dead):
        pre = self.pre(x)
        f = self.code(pre)
        recon = self.decode(f)
        mse = ((recon - x) ** 2).sum(-1).mean() / scale
        n_dead = int(dead.sum())
        if n_dead == 0:
            return mse, f
        # AuxK: the dead latents' top activations try to explain what the live ones left over
        k = min(self.cfg.aux_k, n_dead)
        masked = pre.masked_fill(~dead, float("-inf"))
        vals, idx = masked.topk(k, dim=-1)
        aux_f = torch.zeros_like(pre).scatter(-1, idx, torch.relu(vals))
        resid = (x - recon).detach()
        aux = ((aux_f @ self.W_dec - resid) ** 2).sum(-1).mean() / scale
        return mse + self.cfg.aux_coef * aux, f


@ARCHS.register("relu-l1")
class ReluL1SAE(SAE):
    def code(self, pre: Tensor) -> Tensor:
        return torch.relu(pre)

    def loss(self, x, scale, dead):
        f = self.encode(x)
        mse = ((self.decode(f) - x) ** 2).sum(-1).mean() / scale
        # decoder rows are unit norm, so this is the usual Σ f_i ‖W_dec,i‖; normalised by √scale
        return mse + self.cfg.l1 * f.sum(-1).mean() / (scale ** 0.5) / self.cfg.latents ** 0.5, f


def build(d: int, cfg: SAEConfig) -> SAE:
    cfg.check()
    return ARCHS.get(cfg.arch)(d, cfg, torch.Generator().manual_seed(cfg.seed))


def train_sae(acts: np.ndarray, cfg: SAEConfig, log=None) -> SAE:
    """Adam on random batches of `acts` [N, d]; b_dec starts at the data mean."""
    cfg.check()
    data = torch.from_numpy(np.array(acts, dtype=np.float32))
    n, d = data.shape
    sae = build(d, cfg)
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    with torch.no_grad():
        sae.b_dec.copy_(data.mean(0))
    scale = float(((data - data.mean(0)) ** 2).sum(-1).mean())
    opt = torch.optim.Adam(sae.parameters(), lr=cfg.lr)
    since = torch.zeros(cfg.latents, dtype=torch.long)   # tokens since each latent last fired
    for step in range(cfg.steps):
        x = data[torch.randint(0, n, (min(cfg.batch, n),), generator=gen)]
        loss, f = sae.loss(x, scale, since >= cfg.dead_after)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sae.renorm()
        fired = (f > 0).any(0)
        since = torch.where(fired, 0, since + len(x))
        if log and (step % max(1, cfg.steps // 10) == 0 or step == cfg.steps - 1):
            log(step, float(loss.detach()))
    return sae


@torch.no_grad()
def evaluate(sae: SAE, acts: np.ndarray, chunk: int = 8192) -> dict[str, float]:
    """FVU = Σ‖x - x̂‖² / Σ‖x - mean‖² (the conventional one), mean L0, and the fraction of latents
    that never fire on `acts` (dead) or fire on fewer than 1e-5 of tokens (ultra-low)."""
    data = torch.from_numpy(np.array(acts, dtype=np.float32))
    mean = data.mean(0)
    err = tot = l0 = 0.0
    counts = torch.zeros(sae.cfg.latents)
    for i in range(0, len(data), chunk):
        x = data[i:i + chunk]
        f = sae.encode(x)
        err += float(((sae.decode(f) - x) ** 2).sum())
        tot += float(((x - mean) ** 2).sum())
        active = f > 0
        l0 += float(active.sum())
        counts += active.sum(0)
    n = len(data)
    return {"fvu": err / tot, "l0": l0 / n, "dead": float((counts == 0).float().mean()),
            "ultra_low": float((counts < 1e-5 * n).float().mean())}


@torch.no_grad()
def loss_recovered(model: nn.Module, sae: SAE, hook: str, windows: Tensor) -> dict[str, float]:
    """Next-token CE of the clean model, with `hook` replaced by the SAE's reconstruction, and by
    zeros; score = (CE_zero - CE_sae) / (CE_zero - CE_clean)."""
    from imo.model.hooks import hooks

    def ce(fn=None) -> float:
        ctx = hooks(model, {hook: fn}) if fn else _nothing()
        with ctx:
            logits, _ = model(windows[:, :-1])
        return float(nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(),
                                                 windows[:, 1:].reshape(-1)))

    clean = ce()
    with_sae = ce(lambda a: sae(a.float()).to(a.dtype))
    zero = ce(lambda a: torch.zeros_like(a))
    return {"ce_clean": clean, "ce_sae": with_sae, "ce_zero": zero,
            "loss_recovered": (zero - with_sae) / (zero - clean) if zero != clean else float("nan")}


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def state(sae: SAE) -> tuple[dict[str, Tensor], dict]:
    """Tensors and JSON config for safetensors."""
    return {k: v.detach().contiguous() for k, v in sae.state_dict().items()}, asdict(sae.cfg)


def load(tensors: dict[str, Tensor], cfg: dict) -> SAE:
    c = SAEConfig(**cfg)
    sae = build(tensors["W_dec"].shape[1], c)
    sae.load_state_dict(tensors)
    return sae.eval()
