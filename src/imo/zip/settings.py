"""Settings of `imo zip`: what the encoder used and the decoder must use (stored in the header).

`--level` picks a preset (table sizes, orders, network width); `--predictor` picks which part
of the model codes: `stats` (context statistics alone), `net` (the online network alone) or
`mix` (both, mixed). The streams are the parallel segments of each block.

    s = ZipSettings.build(level=2, predictor="mix")
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from imo.errors import ConfigError

PREDICTORS = ("stats", "net", "mix", "cm")
# the cm predictor's models (imo.zip.cm.MODELS) by level: 1 "fast", 2 "full", 3 "max". Files
# written before the levels had their own models name none and are "full" (at any level).
CM_MODELS = ("full", "fast", "max")

# level -> (max_order, table_bits, net width); level 2 is the default.
LEVELS: dict[int, dict[str, int]] = {
    1: dict(max_order=4, table_bits=16, net_width=128),
    2: dict(max_order=5, table_bits=18, net_width=256),
    3: dict(max_order=6, table_bits=20, net_width=384),
}


@dataclass(frozen=True)
class ZipSettings:
    predictor: str = "mix"
    level: int = 2
    streams: int = 64
    block_size: int = 1 << 22
    max_order: int = 5
    table_bits: int = 18
    discount: float = 0.6
    count_limit: int = 1023
    mixer_lr: float = 0.001
    net_context: int = 12
    net_width: int = 256
    net_lr: float = 0.002
    net_window: int = 64  # pretrained mode: bytes of context the run's model reads per step
    seed: int = 0
    cm_model: str = ""  # predictor cm: "fast", "full" or "max" (levels 1-3); empty for the float ones

    @classmethod
    def build(cls, level: int = 2, predictor: str = "mix", **over: Any) -> ZipSettings:
        if level not in LEVELS:
            raise ConfigError(f"--level must be one of {', '.join(map(str, LEVELS))}, got {level}")
        cm_model = {1: "fast", 2: "full", 3: "max"}[level] if predictor == "cm" else ""
        return cls.from_dict({**LEVELS[level], "level": level, "predictor": predictor, "cm_model": cm_model, **over})

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ZipSettings:
        known = set(cls.__dataclass_fields__)
        extra = set(d) - known
        if extra:
            raise ConfigError(f"unknown zip settings {sorted(extra)}; known: {', '.join(sorted(known))}")
        s = replace(cls(), **d)
        s.validate()
        return s

    def validate(self) -> None:
        def need(ok: bool, what: str) -> None:
            if not ok:
                raise ConfigError(what)

        need(self.predictor in PREDICTORS, f"predictor must be one of {', '.join(PREDICTORS)}, got {self.predictor!r}")
        need(self.level in LEVELS, f"level must be one of {', '.join(map(str, LEVELS))}, got {self.level}")
        for name in ("streams", "block_size", "max_order", "table_bits", "count_limit", "net_context",
                     "net_width", "net_window", "seed"):
            need(isinstance(getattr(self, name), int), f"{name} must be an integer")
        need(1 <= self.streams <= 1024, f"streams must be in 1..1024, got {self.streams}")
        need(1 <= self.block_size <= 1 << 26, f"block_size must be in 1..{1 << 26}, got {self.block_size}")
        need(1 <= self.max_order <= 8, f"max_order must be in 1..8, got {self.max_order}")
        need(12 <= self.table_bits <= 24, f"table_bits must be in 12..24, got {self.table_bits}")
        need(0.0 < self.discount < 1.0, f"discount must be in (0, 1), got {self.discount}")
        need(2 <= self.count_limit <= 60000, f"count_limit must be in 2..60000, got {self.count_limit}")
        need(1 <= self.net_context <= 64 and 8 <= self.net_width <= 4096, "net_context must be in 1..64 and net_width in 8..4096")
        need(0 < self.mixer_lr < 1 and 0 < self.net_lr < 1, "learning rates must be in (0, 1)")
        need(1 <= self.net_window <= 4096, f"net_window must be in 1..4096, got {self.net_window}")
        if self.predictor == "cm":
            need(self.cm_model in CM_MODELS, f"cm_model must be one of {', '.join(CM_MODELS)}, got {self.cm_model!r}")
        else:
            need(self.cm_model == "", f"cm_model applies to the cm predictor only, got {self.cm_model!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_header(self) -> dict[str, Any]:
        """Level, predictor and the fields that differ from that level's preset (a short header;
        a preset that changed between versions shows up as a fingerprint mismatch, never as
        garbage)."""
        base = ZipSettings.build(self.level, self.predictor).to_dict()
        named = {"cm_model": self.cm_model} if self.predictor == "cm" else {}  # always: see from_header
        return {"level": self.level, "predictor": self.predictor, **named,
                **{k: v for k, v in self.to_dict().items() if v != base[k]}}

    @classmethod
    def from_header(cls, d: dict[str, Any]) -> ZipSettings:
        d = dict(d)
        level, predictor = d.pop("level", None), d.pop("predictor", None)
        if not isinstance(level, int) or not isinstance(predictor, str):
            raise ConfigError("corrupt header: settings without a level and a predictor")
        if predictor == "cm":
            d.setdefault("cm_model", "full")  # written before the levels had their own models
        return cls.build(level, predictor, **d)
