"""The Llama family: pre-RMSNorm decoder blocks with grouped-query attention, RoPE and a SwiGLU MLP.

Follows the Llama papers (Touvron et al. 2023; GQA: Ainslie et al. 2023; SwiGLU: Shazeer 2020)
and keeps imo's GPT layout around the new parts (`transformer.wte`, `transformer.h.{i}.attn`,
`transformer.ln_f`, `lm_head`), so hook names, `--keep lm_head` in the quantizers and the
engine's KV cache read it as they read a GPT. RoPE rotates channel pairs (2i, 2i+1), the layout
GGUF files store q and k weights in (llama.cpp permutes Hugging Face's halves into pairs).

    model = Llama(ModelConfig(family="llama", n_head=9, n_kv_head=3, n_embd=576, bias=False))
    logits, loss = model(idx, targets)
"""


import torch
import torch.nn.functional as F
from torch import Tensor, nn

from imo.errors import ConfigError
from imo.model.attention import BACKENDS
from imo.model.base import SavedWeights
from imo.model.config import ModelConfig
from imo.model.hooks import HookPoint
from imo.model.positions import RoPE


def rope_tables(rope: RoPE, pos: Tensor) -> Tensor:
    """RoPE's rotations at positions pos as one complex (T, hs/2) table, cos + i sin of
    RoPE.rotate's own angles (imo/model/positions.py), computed once per forward pass for all
    2 * n_layer rotations instead of once per rotation. Always in float32: a model cast to
    bfloat16 has its inv_freq buffer rounded too, so the frequencies are then recomputed (RoPE's
    formula) rather than read (a rounded inv_freq moves the angle at position 500 by ~1 radian)."""
    inv_freq = rope.inv_freq
    if inv_freq.dtype != torch.float32:
        hs = 2 * inv_freq.numel()
        inv_freq = rope.cfg.rope_base ** (-torch.arange(0, hs, 2, dtype=torch.float32, device=pos.device) / hs)
    angle = (pos.float() * rope.cfg.rope_scale)[:, None] * inv_freq[None, :]  # (T, hs/2)
    return torch.polar(torch.ones_like(angle), angle)


def rotate_pairs(x: Tensor, table: Tensor) -> Tensor:
    """RoPE.rotate with its table given: channel pairs (2i, 2i+1) of x (B, nh, T, hs) rotated by
    the table's angles. A pair read as the complex number x_2i + i x_2i+1 and multiplied by
    cos + i sin is the rotated pair (one fused product instead of the eight ops of the real
    form; equal to float32 rounding). Computed in float32 whatever x's dtype, then cast back."""
    xf = x.float()
    if xf.stride(-1) != 1 or xf.storage_offset() % 2 or any(st % 2 for st in xf.stride()[:-1]):
        xf = xf.contiguous()  # view_as_complex needs (re, im) adjacent
    out = torch.view_as_real(torch.view_as_complex(xf.unflatten(-1, (-1, 2))) * table).flatten(-2)
    return out.to(x.dtype)


class RMSNorm(nn.Module):
    """x / sqrt(mean(x^2) + eps) * weight (Zhang & Sennrich 2019): LayerNorm without centring or bias.
    Computed in float32 whatever the input dtype, as llama.cpp and transformers do."""

    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        y = F.rms_norm(x.float(), x.shape[-1:], eps=self.eps)  # torch's fused kernel, the same formula
        return self.weight * y.to(x.dtype)


class GroupedQueryAttention(nn.Module):
    """n_head query heads share n_kv_head key/value heads (each K/V head serves n_head / n_kv_head
    queries). Keys and values are repeated up to n_head before the cache and the backend, so the
    KV cache and every attention backend see ordinary multi-head tensors."""

    # what imo.model.qlinear.pack_ may fuse into one packed product (one kernel call, one cast)
    FUSABLE = {"qkv": ("q_proj", "k_proj", "v_proj")}

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        hs, nkv = cfg.head_size, cfg.kv_heads
        self.q_proj = nn.Linear(cfg.n_embd, cfg.n_head * hs, bias=cfg.bias)
        self.k_proj = nn.Linear(cfg.n_embd, nkv * hs, bias=cfg.bias)
        self.v_proj = nn.Linear(cfg.n_embd, nkv * hs, bias=cfg.bias)
        self.o_proj = nn.Linear(cfg.n_head * hs, cfg.n_embd, bias=cfg.bias)
        self.qkv: nn.Module | None = None  # set by qlinear.pack_ in place of the three above
        self.backend = cfg.attn
        self.hook_q, self.hook_k, self.hook_v = HookPoint(), HookPoint(), HookPoint()
        self.hook_pattern = HookPoint()  # (B, nh, Tq, Tk), only on the naive path
        self.hook_z = HookPoint()  # per-head outputs (B, nh, T, hs)

    def forward(self, x: Tensor, rot: Tensor, cache=None, layer: int = 0) -> Tensor:
        B, T, C = x.size()
        nh, nkv, hs = self.cfg.n_head, self.cfg.kv_heads, self.cfg.head_size
        if self.qkv is not None:  # a packed model: q, k and v from one product
            q, k, v = self.qkv(x).split([nh * hs, nkv * hs, nkv * hs], dim=-1)
        else:
            q, k, v = self.q_proj(x), self.k_proj(x), self.v_proj(x)
        q = q.view(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, nkv, hs).transpose(1, 2)  # (B, nkv, T, hs)
        v = v.view(B, T, nkv, hs).transpose(1, 2)  # (B, nkv, T, hs)
        q, k = rotate_pairs(q, rot), rotate_pairs(k, rot)
        if nkv != nh:  # query head h reads K/V head h // (nh / nkv)
            k = k.repeat_interleave(nh // nkv, dim=1)  # (B, nh, T, hs)
            v = v.repeat_interleave(nh // nkv, dim=1)
        q, k, v = self.hook_q(q), self.hook_k(k), self.hook_v(v)
        q_offset = 0
        if cache is not None:
            q_offset = cache.length
            k, v = cache.update(layer, k, v)  # (B, nh, q_offset + T, hs)
        y = BACKENDS.get(self.backend)(
            q, k, v,
            q_offset=q_offset,
            alibi_slopes=None,
            tile=self.cfg.attn_tile,
            pattern_hook=self.hook_pattern if self.backend == "naive" else None,
        )
        y = self.hook_z(y)
        return self.o_proj(y.transpose(1, 2).contiguous().view(B, T, nh * hs))


class SwiGLU(nn.Module):
    """down(silu(gate(x)) * up(x)): a gated MLP with ffn_hidden units."""

    FUSABLE = {"gate_up": ("gate_proj", "up_proj")}

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        hidden = cfg.ffn_hidden or 4 * cfg.n_embd
        self.gate_proj = nn.Linear(cfg.n_embd, hidden, bias=cfg.bias)
        self.up_proj = nn.Linear(cfg.n_embd, hidden, bias=cfg.bias)
        self.down_proj = nn.Linear(hidden, cfg.n_embd, bias=cfg.bias)
        self.gate_up: nn.Module | None = None  # set by qlinear.pack_ in place of gate_proj and up_proj
        self.hook_post = HookPoint()  # (B, T, hidden) gated neuron activations

    def forward(self, x: Tensor) -> Tensor:
        if self.gate_up is not None:  # a packed model: both from one product
            gate, up = self.gate_up(x).chunk(2, dim=-1)
        else:
            gate, up = self.gate_proj(x), self.up_proj(x)
        return self.down_proj(self.hook_post(F.silu(gate) * up))


class LlamaBlock(nn.Module):
    """x + attn(rmsnorm(x)), then x + mlp(rmsnorm(x))."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.ln_1 = RMSNorm(cfg.n_embd, cfg.norm_eps)
        self.attn = GroupedQueryAttention(cfg)
        self.ln_2 = RMSNorm(cfg.n_embd, cfg.norm_eps)
        self.mlp = SwiGLU(cfg)
        self.hook_resid_pre, self.hook_attn_out = HookPoint(), HookPoint()
        self.hook_mlp_out, self.hook_resid_post = HookPoint(), HookPoint()

    def forward(self, x: Tensor, rot: Tensor, cache=None, layer: int = 0) -> Tensor:
        x = self.hook_resid_pre(x)
        x = x + self.hook_attn_out(self.attn(self.ln_1(x), rot, cache, layer))
        x = x + self.hook_mlp_out(self.mlp(self.ln_2(x)))
        return self.hook_resid_post(x)


class Llama(SavedWeights, nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        if cfg.pos != "rope":
            raise ConfigError(f"the llama family uses rope positions, got pos={cfg.pos!r}")
        if cfg.n_future != 1:
            raise ConfigError("the llama family has one prediction head (n_future=1)")
        self.cfg = cfg
        self.positions = RoPE(cfg)
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(cfg.vocab_size, cfg.n_embd),
                h=nn.ModuleList([LlamaBlock(cfg) for _ in range(cfg.n_layer)]),
                ln_f=RMSNorm(cfg.n_embd, cfg.norm_eps),
            )
        )
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        if cfg.tie_weights:
            self.lm_head.weight = self.transformer.wte.weight
        self.hook_embed = HookPoint()
        for m in self.modules():  # a fresh model (tests, fine-tunes from scratch); imports overwrite it
            if isinstance(m, nn.Linear | nn.Embedding):
                nn.init.normal_(m.weight, mean=0.0, std=0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)

    def num_params(self, non_embedding: bool = False) -> int:
        n = sum(p.numel() for p in self.parameters())
        return n - self.transformer.wte.weight.numel() if non_embedding else n

    def forward(
        self, idx: Tensor, targets: Tensor | None = None, cache=None
    ) -> tuple[Tensor, Tensor | None]:
        """idx, targets: (B, T) token ids -> logits (B, T, vocab) and the mean cross-entropy in
        nats. With a KV cache holding cache.length earlier positions, idx are the next T tokens
        (the same contract as GPT.forward)."""
        B, T = idx.size()
        offset = 0 if cache is None else cache.length
        pos = torch.arange(offset, offset + T, device=idx.device)  # (T,)
        x = self.hook_embed(self.transformer.wte(idx))  # (B, T, C)
        rot = rope_tables(self.positions, pos)  # once per forward, shared by every layer
        for i, block in enumerate(self.transformer.h):
            x = block(x, rot, cache, i)
        logits = self.lm_head(self.transformer.ln_f(x))  # (B, T, vocab)
        if cache is not None:
            cache.advance(T)
        if targets is None:
            return logits, None
        return logits, F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))
