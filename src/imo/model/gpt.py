"""A GPT: pre-LayerNorm transformer decoder over bytes, with pluggable positions and attention.

Follows nanoGPT's model.py (Karpathy) in layout and parameter names (`transformer.wte`,
`transformer.h.{i}.attn.c_attn`, `lm_head`), so tools that read nanoGPT checkpoints read ours.
Positions (imo/model/positions.py) and attention backends (imo/model/attention.py) are looked up
by name from the config.

    model = GPT(ModelConfig.preset("tiny", pos="rope")); logits, loss = model(idx, targets)
"""

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from imo.model.attention import BACKENDS
from imo.model.base import SavedWeights
from imo.model.config import ModelConfig
from imo.model.hooks import HookPoint
from imo.model.positions import POSITIONS, PositionEncoding


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: ModelConfig, positions: PositionEncoding) -> None:
        super().__init__()
        self.cfg = cfg
        self.positions = [positions]  # a list, so the shared module is not registered once per block
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.resid_dropout = nn.Dropout(cfg.dropout)
        self.backend = cfg.attn
        self.hook_q, self.hook_k, self.hook_v = HookPoint(), HookPoint(), HookPoint()
        self.hook_pattern = HookPoint()  # (B, nh, Tq, Tk), only on the naive path
        self.hook_z = HookPoint()  # per-head outputs (B, nh, T, hs)

    def forward(self, x: Tensor, pos: Tensor, cache=None, layer: int = 0) -> Tensor:
        """x: (B, T, C) at positions pos (T,). With a KV cache (imo.engine.cache.KVCache) the new
        keys/values are stored in it as layer `layer` and the queries attend to every cached
        position before them as well."""
        B, T, C = x.size()
        nh, hs = self.cfg.n_head, C // self.cfg.n_head
        q, k, v = self.c_attn(x).split(C, dim=2)
        q = q.view(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        k = k.view(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        v = v.view(B, T, nh, hs).transpose(1, 2)  # (B, nh, T, hs)
        enc = self.positions[0]
        q, k = enc.rotate(q, pos), enc.rotate(k, pos)
        q, k, v = self.hook_q(q), self.hook_k(k), self.hook_v(v)
        q_offset = 0
        if cache is not None:
            q_offset = cache.length
            k, v = cache.update(layer, k, v)  # (B, nh, q_offset + T, hs): cached positions first
        y = BACKENDS.get(self.backend)(
            q, k, v,
            q_offset=q_offset,
            alibi_slopes=enc.alibi_slopes,
            tile=self.cfg.attn_tile,
            pattern_hook=self.hook_pattern if self.backend == "naive" else None,
        )
        y = self.hook_z(y)
        y = y.transpose(1, 2).contiguous().view(B, T, C)  # (B, T, C): heads side by side
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.dropout = nn.Dropout(cfg.dropout)
        self.hook_post = HookPoint()  # (B, T, 4C) neuron activations

    def forward(self, x: Tensor) -> Tensor:
        return self.dropout(self.c_proj(self.hook_post(self.gelu(self.c_fc(x)))))


class Block(nn.Module):
    """Pre-LayerNorm: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, cfg: ModelConfig, positions: PositionEncoding) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg, positions)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.mlp = MLP(cfg)
        self.hook_resid_pre, self.hook_attn_out = HookPoint(), HookPoint()
        self.hook_mlp_out, self.hook_resid_post = HookPoint(), HookPoint()

    def forward(self, x: Tensor, pos: Tensor, cache=None, layer: int = 0) -> Tensor:
        x = self.hook_resid_pre(x)
        x = x + self.hook_attn_out(self.attn(self.ln_1(x), pos, cache, layer))
        x = x + self.hook_mlp_out(self.mlp(self.ln_2(x)))
        return self.hook_resid_post(x)


class GPT(SavedWeights, nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.positions = POSITIONS.get(cfg.pos)(cfg)
        self.transformer = nn.ModuleDict(
            dict(
                wte=nn.Embedding(cfg.vocab_size, cfg.n_embd),
                drop=nn.Dropout(cfg.dropout),
                h=nn.ModuleList([Block(cfg, self.positions) for _ in range(cfg.n_layer)]),
                ln_f=nn.LayerNorm(cfg.n_embd, bias=cfg.bias),
            )
        )
        if cfg.pos == "learned":  # nanoGPT's name for the learned table
            self.transformer["wpe"] = self.positions.wpe
        # multi-token prediction: head i (i >= 1) is one more block beside the last one, reading the
        # shared trunk (all blocks but the last) and predicting the byte i + 1 positions ahead
        self.future = nn.ModuleList([Block(cfg, self.positions) for _ in range(cfg.n_future - 1)])
        self.lm_head = nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        if cfg.tie_weights:
            self.lm_head.weight = self.transformer.wte.weight
        self.hook_embed = HookPoint()
        self.apply(self._init_weights)
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):  # GPT-2: scale residual projections by depth
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, mean=0.0, std=0.02)

    def num_params(self, non_embedding: bool = False) -> int:
        n = sum(p.numel() for p in self.parameters())
        if non_embedding:
            n -= self.transformer.wte.weight.numel()
            if "wpe" in self.transformer:
                n -= self.transformer.wpe.weight.numel()
        return n

    def forward(
        self, idx: Tensor, targets: Tensor | None = None, cache=None
    ) -> tuple[Tensor, Tensor | None]:
        """idx, targets: (B, T) token ids -> next-token logits (B, T, vocab) and the mean
        cross-entropy in nats. With n_future > 1 the training loss averages all heads; in eval
        mode the loss is always the next-token loss, so evaluations compare across models.

        With a KV cache (imo.engine.cache.KVCache holding `cache.length` earlier positions of the
        same B rows), idx are the next T tokens: they sit at positions cache.length .. + T - 1,
        attend to the cached ones, and are stored in the cache. The logits equal those of a full
        forward pass over the whole sequence, within float rounding."""
        B, T = idx.size()
        offset = 0 if cache is None else cache.length
        self.positions.check_length(offset + T)
        pos = torch.arange(offset, offset + T, device=idx.device)  # (T,) absolute positions
        x = self.transformer.wte(idx)  # (B, T, C)
        pe = self.positions.embed(pos)
        if pe is not None:
            x = x + pe  # (T, C) broadcast over the batch
        x = self.transformer.drop(self.hook_embed(x))
        blocks = self.transformer.h
        for i, block in enumerate(blocks[:-1]):
            x = block(x, pos, cache, i)
        trunk = x  # (B, T, C)
        logits = self.lm_head(self.transformer.ln_f(blocks[-1](trunk, pos, cache, len(blocks) - 1)))  # (B, T, vocab)
        if cache is not None:
            cache.advance(T)
        if targets is None:
            return logits, None
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))
        if self.training and len(self.future):
            losses = [loss]
            for i, head in enumerate(self.future, start=1):  # head i predicts targets i steps later
                if i >= T:
                    break
                logits_i = self.lm_head(self.transformer.ln_f(head(trunk, pos)))[:, : T - i]
                losses.append(F.cross_entropy(logits_i.reshape(-1, logits_i.size(-1)), targets[:, i:].reshape(-1)))
            loss = torch.stack(losses).mean()
        return logits, loss

    def state_dict_for_save(self) -> dict[str, Tensor]:
        sd = super().state_dict_for_save()
        # the learned table is registered twice (positions.wpe and transformer.wpe); keep nanoGPT's name
        sd.pop("positions.wpe.weight", None)
        return sd

    def _restore_aliases(self, sd: dict[str, Tensor]) -> dict[str, Tensor]:
        if "transformer.wpe.weight" in sd:
            sd["positions.wpe.weight"] = sd["transformer.wpe.weight"]
        return sd
