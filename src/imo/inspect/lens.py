"""The everyday tools of interpretability on imo's model families (gpt and llama share the
layout `transformer.h[i].attn`, `transformer.ln_f`, `lm_head` and the hook points):

  * `logit_lens`: every layer's residual read through the final norm and the unembedding
    (nostalgebraist 2020, "interpreting GPT: the logit lens");
  * `patch_scan`: activation patching (denoising) from a clean prompt into a corrupted one, one
    (layer, position) at a time, scored by the normalised logit difference (Meng et al. 2022;
    Heimersheim & Nanda 2024, "How to use and interpret activation patching");
  * `attention_patterns`: every head's pattern, read at `blocks.i.attn.hook_pattern`;
  * `direct_logit_attribution`: the final residual split into embedding, per-head outputs,
    attention biases and MLP outputs, each read through the final norm with its scale frozen at the
    real one, so the parts sum to the logit exactly (Elhage et al. 2021, "A Mathematical
    Framework for Transformer Circuits").

    lens = logit_lens(model, idx)            # (L + 1, B, T, vocab) logits; lens[-1] == model(idx)
    dla = direct_logit_attribution(model, idx, token=ord("e"))
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from imo.errors import ConfigError
from imo.model.hooks import hooks, run_with_cache

KINDS = ("resid_pre", "attn_out", "mlp_out", "resid_post")  # per-layer hook points patch_scan takes


def _parts(model: nn.Module):
    """(blocks, final norm, unembedding weight (vocab, C)) of a gpt or llama model."""
    try:
        return model.transformer.h, model.transformer.ln_f, model.lm_head.weight
    except AttributeError:
        raise ConfigError(f"{type(model).__name__} lacks the transformer.h / ln_f / lm_head layout "
                          "the lens tools read") from None


def out_proj(block: nn.Module) -> nn.Linear:
    """The attention's output projection: c_proj (gpt) or o_proj (llama)."""
    return block.attn.c_proj if hasattr(block.attn, "c_proj") else block.attn.o_proj


def final_norm_linear(model: nn.Module, x: Tensor, scale: Tensor | None = None) -> Tensor:
    """The final norm as a linear map of x with the per-token scale frozen: LayerNorm centres x
    and divides by `scale` (its real value, sqrt(var + eps), unless given), RMSNorm only divides;
    both multiply by their weight. The bias (LayerNorm only) is left out: `norm_bias` adds it."""
    _, ln, _ = _parts(model)
    if isinstance(ln, nn.LayerNorm):
        x = x - x.mean(-1, keepdim=True)
    if scale is not None:
        x = x / scale
    return x * ln.weight


def norm_scale(model: nn.Module, resid: Tensor) -> Tensor:
    """The per-token divisor the final norm applies to `resid` (..., 1)."""
    _, ln, _ = _parts(model)
    if isinstance(ln, nn.LayerNorm):
        return (resid.var(-1, unbiased=False, keepdim=True) + ln.eps).sqrt()
    return (resid.float().pow(2).mean(-1, keepdim=True) + ln.eps).sqrt()


def norm_bias(model: nn.Module) -> Tensor | None:
    _, ln, _ = _parts(model)
    return getattr(ln, "bias", None)


def unembed(model: nn.Module, resid: Tensor) -> Tensor:
    """Logits of a residual stream (..., C): the final norm, then the unembedding."""
    _, ln, _ = _parts(model)
    return model.lm_head(ln(resid))


def direction_logits(model: nn.Module, direction: Tensor) -> Tensor:
    """What writing `direction` (..., C) into the final residual does to each logit, up to the
    positive norm scale: W_U (w ⊙ centre(d)). Used for an SAE feature's decoder row."""
    _, _, W_U = _parts(model)
    return final_norm_linear(model, direction) @ W_U.T


def residual_names(model: nn.Module) -> list[str]:
    """The residual stream after the embedding and after each block: the logit lens's layers."""
    blocks, _, _ = _parts(model)
    return ["hook_embed"] + [f"blocks.{i}.hook_resid_post" for i in range(len(blocks))]


@torch.no_grad()
def logit_lens(model: nn.Module, idx: Tensor) -> Tensor:
    """(L + 1, B, T, vocab) logits of each residual (embedding, then after each block). The last
    one is the model's own output: the final residual goes through the same norm and head."""
    names = residual_names(model)
    _, cache = run_with_cache(model, idx, names)
    return torch.stack([unembed(model, cache[n]) for n in names])


def _hook(kind: str, layer: int) -> str:
    if kind not in KINDS:
        raise ConfigError(f"unknown activation kind {kind!r}; choose one of: {', '.join(KINDS)}")
    return f"blocks.{layer}.hook_{kind}"


@torch.no_grad()
def run_patched(model: nn.Module, idx: Tensor, patches: dict[str, tuple[Tensor, Tensor]]) -> Tensor:
    """Logits of `idx` with, at each hook, the activation replaced by `values` where `mask` is
    true: patches = {hook: (values (B, T, C), mask (B, T) bool)}."""
    def replace(values: Tensor, mask: Tensor):
        return lambda a: torch.where(mask[..., None], values.to(a.dtype), a)

    with hooks(model, {h: replace(v, m) for h, (v, m) in patches.items()}), model.attention_backend("naive"):
        logits, _ = model(idx)
    return logits


def logit_diff(logits: Tensor, answer: int, wrong: int) -> Tensor:
    """logit[answer] - logit[wrong] at the last position, per row."""
    return logits[:, -1, answer] - logits[:, -1, wrong]


@torch.no_grad()
def patch_scan(model: nn.Module, clean: Tensor, corrupt: Tensor, answer: int, wrong: int,
               kind: str = "resid_pre") -> dict:
    """Denoising: run `corrupt` (1, T) with one (layer, position) of `kind` taken from the `clean`
    run, for every layer and position. score = (LD_patched - LD_corrupt) / (LD_clean - LD_corrupt),
    LD the logit difference answer - wrong at the last position: 1 restores the clean behaviour,
    0 changes nothing. Returns {"score": (L, T), "ld_clean", "ld_corrupt"}."""
    if clean.shape != corrupt.shape or clean.shape[0] != 1:
        raise ConfigError(f"clean and corrupted prompts must be one row of equal length, got "
                          f"{tuple(clean.shape)} and {tuple(corrupt.shape)} tokens")
    blocks, _, _ = _parts(model)
    T = clean.shape[1]
    names = [_hook(kind, i) for i in range(len(blocks))]
    clean_logits, cache = run_with_cache(model, clean, names)
    ld_clean = float(logit_diff(clean_logits, answer, wrong)[0])
    ld_corrupt = float(logit_diff(run_with_cache(model, corrupt, [])[0], answer, wrong)[0])
    denom = ld_clean - ld_corrupt
    rows = corrupt.expand(T, T)        # row p patches position p only
    mask = torch.eye(T, dtype=torch.bool)
    score = torch.zeros(len(blocks), T)
    for layer, name in enumerate(names):
        values = cache[name].expand(T, -1, -1)
        ld = logit_diff(run_patched(model, rows, {name: (values, mask)}), answer, wrong)
        score[layer] = (ld - ld_corrupt) / denom if denom != 0 else torch.nan
    return {"score": score, "ld_clean": ld_clean, "ld_corrupt": ld_corrupt, "kind": kind}


@torch.no_grad()
def attention_patterns(model: nn.Module, idx: Tensor) -> Tensor:
    """(L, nh, T, T) attention patterns of one prompt idx (1, T): row q is where query q looks."""
    blocks, _, _ = _parts(model)
    names = [f"blocks.{i}.attn.hook_pattern" for i in range(len(blocks))]
    _, cache = run_with_cache(model, idx, names)
    return torch.stack([cache[n][0] for n in names])


@torch.no_grad()
def direct_logit_attribution(model: nn.Module, idx: Tensor, token: int, position: int = -1,
                             against: int | None = None) -> dict:
    """Each component's direct contribution to logit[token] (minus logit[against] if given) at
    `position` of idx (1, T). The final residual is embed + Σ_l (Σ_h head_lh + attn bias_l + mlp_l);
    the final norm is linear once its scale is frozen at the real value, so
    Σ contributions + the norm's bias term = the model's logit (difference), exactly.
    Returns {"heads": (L, nh), "embed", "attn_bias": (L,), "mlp": (L,), "norm_bias", "logit"}."""
    blocks, _, W_U = _parts(model)
    L = len(blocks)
    names = (["hook_embed"] + [f"blocks.{i}.attn.hook_z" for i in range(L)]
             + [f"blocks.{i}.hook_mlp_out" for i in range(L)] + [f"blocks.{L - 1}.hook_resid_post"])
    logits, cache = run_with_cache(model, idx, names)
    u = W_U[token] - (W_U[against] if against is not None else 0)            # (C,)
    scale = norm_scale(model, cache[f"blocks.{L - 1}.hook_resid_post"][0, position])

    def read(x: Tensor) -> Tensor:  # direct effect of residual part(s) x (..., C) on the logit
        return final_norm_linear(model, x.float(), scale) @ u.float()

    heads = torch.zeros(L, blocks[0].attn.cfg.n_head)
    attn_bias, mlp = torch.zeros(L), torch.zeros(L)
    for i, block in enumerate(blocks):
        z = cache[f"blocks.{i}.attn.hook_z"][0, :, position]                   # (nh, hs)
        proj = out_proj(block)
        nh, hs = z.shape
        W_O = proj.weight.view(proj.weight.shape[0], nh, hs)                    # (C, nh, hs)
        heads[i] = read(torch.einsum("hs,chs->hc", z.float(), W_O.float()))    # (nh,)
        if proj.bias is not None:
            attn_bias[i] = read(proj.bias)
        mlp[i] = read(cache[f"blocks.{i}.hook_mlp_out"][0, position])
    bias = norm_bias(model)
    target = logits[0, position, token] - (logits[0, position, against] if against is not None else 0)
    return {"heads": heads, "embed": float(read(cache["hook_embed"][0, position])),
            "attn_bias": attn_bias, "mlp": mlp,
            "norm_bias": float(bias.float() @ u.float()) if bias is not None else 0.0,
            "logit": float(target)}


def dla_total(d: dict) -> float:
    """The sum of every part of a direct_logit_attribution: equals d["logit"]."""
    return float(d["heads"].sum() + d["attn_bias"].sum() + d["mlp"].sum()) + d["embed"] + d["norm_bias"]
