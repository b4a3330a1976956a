"""The memory of a block-recurrent model: which mechanism, the block length and the state sizes.

Kept apart from imo.model.config.ModelConfig (the GPT trunk the memory models reuse), and saved
beside it in a run's config under "memory" (JSON), so a memory run loads without pickles.

    mem = MemoryConfig(arch="fam", block=64, fam_tokens=8)
"""

from dataclasses import asdict, dataclass
from typing import Any

from imo.config import from_dict
from imo.errors import ConfigError

ARCHS = ("bswa", "fam", "infini")


@dataclass(frozen=True)
class MemoryConfig:
    arch: str = "fam"  # bswa | fam | infini (the plain GPT is `imo train --arch gpt`)
    block: int = 64  # tokens per block (segment); attention never reaches further than the window
    # BSWA: each block also attends to this many previous blocks (their keys and values are kept).
    # FAM runs on top of BSWA (Hwang et al. 2024), so it reads the same field.
    mem_blocks: int = 2
    fam_tokens: int = 8  # FAM: feedback memory tokens per layer
    delta: bool = False  # Infini: the delta rule (write only what the memory does not yet return)
    # Infini: the gate logit beta per layer and head starts here; sigmoid(beta) is the share of the
    # memory read-out (0 -> one half; lucidrains starts at 10, i.e. local attention only)
    gate_init: float = 0.0

    def __post_init__(self) -> None:
        if self.arch not in ARCHS:
            raise ConfigError(f"unknown memory arch {self.arch!r}; choose one of: {', '.join(ARCHS)} (or gpt)")
        if self.block < 1:
            raise ConfigError(f"block must be a positive integer, got {self.block}")
        if self.mem_blocks < 0 or self.fam_tokens < 0:
            raise ConfigError(f"mem_blocks and fam_tokens must be >= 0, got {self.mem_blocks}, {self.fam_tokens}")
        if self.arch == "fam" and self.fam_tokens < 1:
            raise ConfigError("fam needs fam_tokens >= 1 (with 0 it is bswa)")

    @property
    def window(self) -> int:
        """Tokens the local attention of one block can see at most (its own block included)."""
        return self.block * (1 + (self.mem_blocks if self.arch in ("bswa", "fam") else 0))

    def state_floats(self, n_layer: int, n_embd: int, n_head: int) -> int:
        """Floats carried from one block to the next, per sequence (the 'state size')."""
        hs = n_embd // n_head
        if self.arch == "infini":
            return n_layer * n_head * (hs * hs + hs)  # the matrix M and normaliser z per head
        kv = n_layer * 2 * self.mem_blocks * self.block * n_embd  # kept keys and values
        return kv + (n_layer * self.fam_tokens * n_embd if self.arch == "fam" else 0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "MemoryConfig":
        return from_dict(cls, d, "memory")
