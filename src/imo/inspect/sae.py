"""Sparse autoencoders on cached activations: registered architectures (topk, batchtopk,
jumprelu, relu-l1), their training loop, and the evaluation (FVU, L0, dead fraction, loss
recovered against zero ablation).

Sources: Gao et al. 2024, "Scaling and evaluating sparse autoencoders" (TopK, encoder = decoderᵀ
init, the AuxK loss on dead latents); Bussmann et al. 2024, "BatchTopK Sparse Autoencoders";
Rajamanoharan et al. 2024, "Jumping Ahead: Improving Reconstruction Fidelity with JumpReLU Sparse
Autoencoders" (thresholds and L0 trained through straight-through estimators); Bricken et al.
2023, "Towards Monosemanticity" (ReLU + L1, unit-norm decoder); SAELens's `ce_loss_score` =
(CE_zero - CE_sae) / (CE_zero - CE_clean).

    sae = train_sae(acts, SAEConfig(arch="topk", latents=1024, k=16))
    evaluate(sae, acts)                      # {"fvu": ..., "l0": ..., "dead": ...}
"""

from __future__ import annotations

import math
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
    k: int = 16                  # topk, batchtopk: active latents per token (batchtopk: on average)
    l1: float = 5.0              # relu-l1: L1 coefficient (on mse normalised by the data variance)
    l0_coef: float = 3e-3        # jumprelu: coefficient of the L0 penalty
    threshold: float = 1.0       # jumprelu: initial threshold, in units of the data's per-dim std
    bandwidth: float = 0.1       # jumprelu: width of the straight-through kernel, same units
    aux_k: int = 256             # AuxK: latents the auxiliary loss may use to explain the residual
    aux_coef: float = 1 / 32     # weight of the AuxK loss (Gao et al.); 0 turns it off
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
        if self.threshold <= 0 or self.bandwidth <= 0 or self.l0_coef < 0 or self.l1 < 0:
            raise ConfigError("threshold and bandwidth must be positive, l0_coef and l1 non-negative")


class SAE(nn.Module):
    """x̂ = f(x) W_dec + b_dec with f the architecture's sparse code; decoder rows kept unit norm.

    Subclasses give `code` (pre-activations -> dense code, for evaluation and the browser) and
    `loss`. The pre-activation is written x W_enc + (b_enc - b_dec W_enc), which equals
    (x - b_dec) W_enc + b_enc but spares backward a second [batch, latents] product."""

    def __init__(self, d: int, cfg: SAEConfig, gen: torch.Generator):
        super().__init__()
        self.cfg = cfg
        dec = torch.randn(cfg.latents, d, generator=gen)
        dec /= dec.norm(dim=1, keepdim=True)
        self.W_dec = nn.Parameter(dec)
        self.W_enc = nn.Parameter(dec.T.clone())   # encoder = decoderᵀ at init
        self.b_enc = nn.Parameter(torch.zeros(cfg.latents))
        self.b_dec = nn.Parameter(torch.zeros(d))

    def prepare(self, mean: Tensor, scale: float) -> None:
        """Called once before training with the data mean and variance per token."""
        with torch.no_grad():
            self.b_dec.copy_(mean)

    def pre(self, x: Tensor) -> Tensor:
        return x @ self.W_enc + (self.b_enc - self.b_dec @ self.W_enc)

    def code(self, pre: Tensor) -> Tensor:
        raise NotImplementedError

    def encode(self, x: Tensor) -> Tensor:
        return self.code(self.pre(x))

    def decode(self, f: Tensor) -> Tensor:
        return f @ self.W_dec + self.b_dec

    def decode_sparse(self, idx: Tensor, vals: Tensor) -> Tensor:
        """decode() of a code given as k (index, value) pairs per row: a gather of k decoder rows
        instead of a [batch, latents] product."""
        return nn.functional.embedding_bag(idx, self.W_dec, per_sample_weights=vals, mode="sum") + self.b_dec

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(self.encode(x))

    def loss(self, x: Tensor, scale: float, dead: Tensor) -> tuple[Tensor, Tensor]:
        """(loss, fired[latents]) for a batch; `scale` is the data's variance per token, so the
        mse term is an FVU and the coefficients do not depend on the activations' size."""
        raise NotImplementedError

    def aux_loss(self, pre: Tensor, resid: Tensor, scale: float, dead: Tensor) -> Tensor:
        """AuxK (Gao et al. 2024): the `aux_k` largest pre-activations among the dead latents
        reconstruct the residual x - x̂ that the live ones leave. Zero when none is dead."""
        n_dead = int(dead.sum())
        if n_dead == 0 or self.cfg.aux_coef == 0:
            return pre.new_zeros(())
        with torch.no_grad():
            idx = pre.masked_fill(~dead, float("-inf")).topk(min(self.cfg.aux_k, n_dead), dim=-1).indices
        vals = torch.relu(pre.gather(-1, idx))
        aux = nn.functional.embedding_bag(idx, self.W_dec, per_sample_weights=vals, mode="sum")
        return self.cfg.aux_coef * ((aux - resid.detach()) ** 2).sum(-1).mean() / scale

    @torch.no_grad()
    def renorm(self) -> None:
        self.W_dec /= self.W_dec.norm(dim=1, keepdim=True).clamp_min(1e-8)


def _mse(recon: Tensor, x: Tensor, scale: float) -> Tensor:
    return ((recon - x) ** 2).sum(-1).mean() / scale


def _fired(idx: Tensor, vals: Tensor, latents: int) -> Tensor:
    fired = torch.zeros(latents, dtype=torch.bool)
    fired[idx[vals > 0]] = True
    return fired


@ARCHS.register("topk")
class TopKSAE(SAE):
    """The k largest pre-activations of each token, through a ReLU (Gao et al. 2024), with AuxK."""

    def code(self, pre: Tensor) -> Tensor:
        vals, idx = pre.topk(self.cfg.k, dim=-1)
        return torch.zeros_like(pre).scatter(-1, idx, torch.relu(vals))

    def loss(self, x, scale, dead):
        pre = self.pre(x)
        with torch.no_grad():
            idx = pre.topk(self.cfg.k, dim=-1).indices
        vals = torch.relu(pre.gather(-1, idx))
        recon = self.decode_sparse(idx, vals)
        return _mse(recon, x, scale) + self.aux_loss(pre, x - recon, scale, dead), _fired(idx, vals, self.cfg.latents)


@ARCHS.register("batchtopk")
class BatchTopKSAE(SAE):
    """TopK over the whole batch (Bussmann et al. 2024): the k·B largest pre-activations of a
    batch of B tokens are kept, so a token may use more or fewer than k latents. At inference
    (eval mode) a fixed threshold replaces the batch: a running mean of the smallest value kept
    in training. AuxK as in topk."""

    def __init__(self, d, cfg, gen):
        super().__init__(d, cfg, gen)
        self.register_buffer("threshold", torch.zeros(()))

    def code(self, pre: Tensor) -> Tensor:
        if self.training:
            return self._batch_code(pre)[0]
        return pre * (pre > self.threshold)

    def _batch_code(self, pre: Tensor) -> tuple[Tensor, Tensor]:
        flat = torch.relu(pre).flatten()
        keep = min(self.cfg.k * pre.shape[0], flat.numel())
        with torch.no_grad():
            idx = flat.topk(keep).indices
            mask = torch.zeros_like(flat, dtype=torch.bool)
            mask[idx] = True
            mask &= flat > 0
        f = (flat * mask).view_as(pre)
        smallest = flat[idx].min().detach() if keep else flat.new_zeros(())
        return f, smallest

    def loss(self, x, scale, dead):
        pre = self.pre(x)
        f, smallest = self._batch_code(pre)
        with torch.no_grad():
            self.threshold.lerp_(smallest, 0.01 if self.threshold > 0 else 1.0)
        recon = self.decode(f)
        return _mse(recon, x, scale) + self.aux_loss(pre, x - recon, scale, dead), (f > 0).any(0)


class _JumpReLU(torch.autograd.Function):
    """pre · H(pre - θ), with the straight-through pseudo-derivative of Rajamanoharan et al. 2024
    for θ: -(θ/ε) K((pre - θ)/ε), K the rectangle kernel on [-1/2, 1/2]."""

    @staticmethod
    def forward(ctx, pre, theta, eps):
        ctx.save_for_backward(pre, theta)
        ctx.eps = eps
        return pre * (pre > theta)

    @staticmethod
    def backward(ctx, g):
        pre, theta = ctx.saved_tensors
        window = ((pre - theta).abs() < ctx.eps / 2).to(g.dtype)
        return g * (pre > theta), (-(theta / ctx.eps) * window * g).sum(0), None


class _Step(torch.autograd.Function):
    """H(pre - θ) for the L0 count; its pseudo-derivative reaches θ only: -(1/ε) K((pre - θ)/ε)."""

    @staticmethod
    def forward(ctx, pre, theta, eps):
        ctx.save_for_backward(pre, theta)
        ctx.eps = eps
        return (pre > theta).to(pre.dtype)

    @staticmethod
    def backward(ctx, g):
        pre, theta = ctx.saved_tensors
        window = ((pre - theta).abs() < ctx.eps / 2).to(g.dtype)
        return None, (-(1 / ctx.eps) * window * g).sum(0), None


@ARCHS.register("jumprelu")
class JumpReLUSAE(SAE):
    """A ReLU with a learned threshold per latent and an L0 penalty (Rajamanoharan et al. 2024),
    trained through straight-through estimators. Thresholds and the kernel width are in units of
    the data's per-dimension standard deviation (`unit`, set from the data before training). AuxK
    as in topk."""

    def __init__(self, d, cfg, gen):
        super().__init__(d, cfg, gen)
        self.register_buffer("unit", torch.ones(()))
        self.log_threshold = nn.Parameter(torch.full((cfg.latents,), math.log(cfg.threshold)))

    def prepare(self, mean, scale):
        super().prepare(mean, scale)
        self.unit.fill_((scale / mean.numel()) ** 0.5)

    def theta(self) -> Tensor:
        return self.log_threshold.exp() * self.unit

    def code(self, pre: Tensor) -> Tensor:
        return _JumpReLU.apply(pre, self.theta(), float(self.cfg.bandwidth * self.unit))

    def loss(self, x, scale, dead):
        pre = self.pre(x)
        eps = float(self.cfg.bandwidth * self.unit)
        f = _JumpReLU.apply(pre, self.theta(), eps)
        l0 = _Step.apply(pre, self.theta(), eps).sum(-1).mean()
        recon = self.decode(f)
        loss = _mse(recon, x, scale) + self.cfg.l0_coef * l0 + self.aux_loss(pre, x - recon, scale, dead)
        return loss, (f > 0).any(0)


@ARCHS.register("relu-l1")
class ReluL1SAE(SAE):
    """A ReLU encoder with an L1 penalty (Bricken et al. 2023); no AuxK."""

    def code(self, pre: Tensor) -> Tensor:
        return torch.relu(pre)

    def loss(self, x, scale, dead):
        f = self.encode(x)
        mse = _mse(self.decode(f), x, scale)
        # decoder rows are unit norm, so this is the usual Σ f_i ‖W_dec,i‖; normalised by √scale
        return mse + self.cfg.l1 * f.sum(-1).mean() / (scale ** 0.5) / self.cfg.latents ** 0.5, (f > 0).any(0)


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
    scale = float(((data - data.mean(0)) ** 2).sum(-1).mean())
    sae.prepare(data.mean(0), scale)
    opt = torch.optim.Adam(sae.parameters(), lr=cfg.lr)
    since = torch.zeros(cfg.latents, dtype=torch.long)   # tokens since each latent last fired
    for step in range(cfg.steps):
        x = data[torch.randint(0, n, (min(cfg.batch, n),), generator=gen)]
        loss, fired = sae.loss(x, scale, since >= cfg.dead_after)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sae.renorm()
        since = torch.where(fired, 0, since + len(x))
        if log and (step % max(1, cfg.steps // 10) == 0 or step == cfg.steps - 1):
            log(step, float(loss.detach()))
    return sae.eval()


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
    """Next-token CE of the clean model, and with `hook` replaced by the SAE's reconstruction, by
    zeros and by the activation's mean over these windows (per position in the residual's last
    dimension); loss recovered = (CE_abl - CE_sae) / (CE_abl - CE_clean) against each ablation,
    and the mean KL(clean || with the SAE) of the next-token distributions, in nats."""
    from imo.model.hooks import hooks

    def run(fn=None) -> Tensor:
        with hooks(model, {hook: fn}) if fn else _nothing():
            logits, _ = model(windows[:, :-1])
        return logits.reshape(-1, logits.shape[-1]).float()

    def ce(logits: Tensor) -> float:
        return float(nn.functional.cross_entropy(logits, windows[:, 1:].reshape(-1)))

    seen: dict[str, Tensor] = {}
    clean_logits = run(lambda a: seen.__setitem__("mean", a.float().mean((0, 1))))
    sae_logits = run(lambda a: sae(a.float()).to(a.dtype))
    clean, with_sae = ce(clean_logits), ce(sae_logits)
    zero = ce(run(lambda a: torch.zeros_like(a)))
    mean = ce(run(lambda a: seen["mean"].to(a.dtype).expand_as(a)))
    kl = float(nn.functional.kl_div(sae_logits.log_softmax(-1), clean_logits.log_softmax(-1),
                                    log_target=True, reduction="batchmean"))

    def score(abl: float) -> float:
        return (abl - with_sae) / (abl - clean) if abl != clean else float("nan")

    return {"ce_clean": clean, "ce_sae": with_sae, "ce_zero": zero, "ce_mean": mean,
            "loss_recovered": score(zero), "loss_recovered_mean": score(mean), "kl_sae": kl}


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
