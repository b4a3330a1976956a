"""The model's configuration: a typed dataclass, validated on construction, with presets.

    cfg = ModelConfig.preset("tiny", pos="rope", attn="tiled")
"""

from dataclasses import asdict, dataclass, replace
from typing import Any

from imo.config import from_dict
from imo.errors import ConfigError

# Field names of earlier versions, read from stored configs and config files (see the glossary in
# docs/architecture.md: "block" was the context, the zip block and the attention tile at once).
RENAMED: dict[str, str] = {"block_size": "context_length", "attn_block": "attn_tile"}


def migrate_fields(d: dict[str, Any]) -> dict[str, Any]:
    """`d` with the fields of earlier versions under their current names."""
    d = dict(d)
    for old, new in RENAMED.items():
        if old in d:
            if new in d:
                raise ConfigError(f"model config gives both {old} (its name before v0.2) and {new}; keep {new}")
            d[new] = d.pop(old)
    return d


PRESETS: dict[str, dict[str, Any]] = {
    # ~0.8M parameters: trains in minutes on 2 CPU cores.
    "tiny": dict(n_layer=4, n_embd=128, n_head=4, context_length=256),
    # ~5M parameters.
    "small": dict(n_layer=6, n_embd=256, n_head=8, context_length=512),
    # ~25M parameters: a GPU-sized model; slow on a CPU.
    "base": dict(n_layer=8, n_embd=512, n_head=8, context_length=1024),
}


@dataclass(frozen=True)
class ModelConfig:
    vocab_size: int = 256  # bytes
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    context_length: int = 256  # the training context; a learned position table has exactly this many rows
    pos: str = "rope"  # none | learned | sinusoidal | rope | alibi (export to GPT-2 needs learned)
    rope_scale: float = 1.0  # RoPE position interpolation: positions are multiplied by this (L/L' < 1)
    rope_base: float = 10000.0
    attn: str = "sdpa"  # naive | tiled | sdpa
    attn_tile: int = 64  # key/value tile of the tiled backend
    dropout: float = 0.0
    bias: bool = True
    tie_weights: bool = True
    n_future: int = 1  # multi-token prediction heads (Gloeckle et al. 2024); 1 = plain next-byte model
    # The block family (imo.model.families): gpt (LayerNorm, GELU MLP, one K/V head per query head)
    # or llama (RMSNorm, SwiGLU, grouped-query attention; imported models, imo/importers). Configs
    # stored before the field existed load as gpt. The fields below are read by llama only.
    family: str = "gpt"
    n_kv_head: int = 0  # key/value heads of grouped-query attention; 0 = n_head
    ffn_hidden: int = 0  # SwiGLU hidden width; 0 = 4 * n_embd
    norm_eps: float = 1e-5  # RMSNorm epsilon

    def __post_init__(self) -> None:
        from imo.model.attention import BACKENDS
        from imo.model.families import FAMILIES
        from imo.model.positions import POSITIONS

        POSITIONS.get(self.pos)  # raises with the list of choices
        BACKENDS.get(self.attn)
        FAMILIES.get(self.family)
        if self.n_kv_head < 0 or (self.n_kv_head and self.n_head % self.n_kv_head):
            raise ConfigError(f"n_kv_head={self.n_kv_head} must divide n_head={self.n_head} (0 = n_head)")
        if self.ffn_hidden < 0 or not self.norm_eps > 0:
            raise ConfigError(f"ffn_hidden must be >= 0 and norm_eps > 0, got {self.ffn_hidden}, {self.norm_eps}")
        for name in ("vocab_size", "n_layer", "n_head", "n_embd", "context_length", "attn_tile", "n_future"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.n_embd % self.n_head:
            raise ConfigError(
                f"n_head={self.n_head} does not divide n_embd={self.n_embd}; "
                f"pick a head count among the divisors of {self.n_embd}"
            )
        if self.pos == "rope" and (self.n_embd // self.n_head) % 2:
            raise ConfigError(f"rope needs an even head size, got {self.n_embd // self.n_head}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if not self.rope_scale > 0:
            raise ConfigError(f"rope_scale must be > 0, got {self.rope_scale}")
        if not self.rope_base > 1:
            raise ConfigError(f"rope_base must be > 1, got {self.rope_base}")

    @property
    def head_size(self) -> int:
        return self.n_embd // self.n_head

    @property
    def kv_heads(self) -> int:
        return self.n_kv_head or self.n_head

    @classmethod
    def preset(cls, name: str, **overrides: Any) -> "ModelConfig":
        if name not in PRESETS:
            raise ConfigError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
        return cls.from_dict({**PRESETS[name], **migrate_fields(overrides)})

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "ModelConfig":
        return from_dict(cls, migrate_fields(d), "model")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def replace(self, **changes: Any) -> "ModelConfig":
        return replace(self, **changes)
