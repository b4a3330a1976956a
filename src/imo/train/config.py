"""The training configuration and the full run configuration (model + training).

Precedence: preset < config file (TOML with [model] and [train] tables) < command-line flags.

    cfg = RunConfig.build(preset="tiny", file="run.toml", model={"pos": "rope"}, train={"steps": 500})
"""

import tomllib
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from imo.config import from_dict
from imo.errors import ConfigError
from imo.model.config import ModelConfig, migrate_fields


@dataclass(frozen=True)
class TrainConfig:
    corpus: str = "python-docs"
    batch_size: int = 16  # sequences per optimizer step (global, across all processes)
    grad_accum: int = 1  # micro-batches per step; batch_size is split among them
    steps: int | None = None  # a step budget ...
    minutes: float | None = None  # ... or a time budget, turned into `steps` once at the start
    lr: float = 3e-3
    min_lr_ratio: float = 0.1  # cosine decays to lr * min_lr_ratio
    warmup: int = 50
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0  # 0 disables
    eval_every: int = 100
    eval_batches: int = 8
    log_every: int = 10
    ckpt_every: int = 500
    seed: int = 1337
    init_from: str | None = None  # start from this run's weights (fine-tuning); it becomes the parent
    device: str = "auto"  # auto | cpu | cuda | cuda:N
    dtype: str = "auto"  # auto | float32 | bfloat16 (mixed: fp32 weights, bf16 autocast); see train/precision.py

    def __post_init__(self) -> None:
        for name in ("batch_size", "grad_accum", "eval_every", "eval_batches", "log_every", "ckpt_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.batch_size % self.grad_accum:
            raise ConfigError(f"grad_accum={self.grad_accum} must divide batch_size={self.batch_size}")
        if self.steps is not None and self.steps < 1:
            raise ConfigError(f"steps must be a positive integer, got {self.steps}")
        if self.minutes is not None and not self.minutes > 0:
            raise ConfigError(f"minutes must be > 0, got {self.minutes}")
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        if self.warmup < 0:
            raise ConfigError(f"warmup must be >= 0, got {self.warmup}")
        for name in ("beta1", "beta2", "min_lr_ratio"):
            if not 0.0 <= getattr(self, name) < 1.0 + (name == "min_lr_ratio"):
                raise ConfigError(f"{name} must be in [0, 1{']' if name == 'min_lr_ratio' else ')'}, got {getattr(self, name)}")
        for name in ("weight_decay", "grad_clip"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.dtype not in ("auto", "float32", "bfloat16"):
            raise ConfigError(f"unknown dtype {self.dtype!r}; choose auto, float32 or bfloat16")
        if not (self.device in ("auto", "cpu", "cuda") or self.device.startswith("cuda:")):
            raise ConfigError(f"unknown device {self.device!r}; choose auto, cpu, cuda or cuda:N")


@dataclass(frozen=True)
class RunConfig:
    model: ModelConfig
    train: TrainConfig
    preset: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"preset": self.preset, "model": self.model.to_dict(), "train": asdict(self.train)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "RunConfig":
        return cls(
            model=ModelConfig.from_dict(d["model"]),
            train=from_dict(TrainConfig, d["train"], "train"),
            preset=d.get("preset"),
        )

    def with_train(self, **changes: Any) -> "RunConfig":
        return replace(self, train=replace(self.train, **changes))

    def name(self) -> str:
        """A readable slug plus a hash of the config (as given: a --minutes run keeps its name
        after the budget is turned into steps)."""
        from imo.runs.store import config_hash

        corpus = self.train.corpus.split(":")[-1].split("/")[-1].removesuffix(".txt")
        return f"{self.preset or 'custom'}-{self.model.pos}-{self.model.attn}-{corpus}-{config_hash(self.to_dict())[:6]}"

    @classmethod
    def build(
        cls,
        preset: str | None = "tiny",
        file: str | Path | None = None,
        model: dict[str, Any] | None = None,
        train: dict[str, Any] | None = None,
    ) -> "RunConfig":
        m: dict[str, Any] = {}
        t: dict[str, Any] = {}
        if file is not None:
            loaded = load_toml(file)
            file_preset = loaded.pop("preset", None)
            preset = preset if preset is not None else file_preset
            m.update(migrate_fields(loaded.pop("model", {})))
            t.update(loaded.pop("train", {}))
            if loaded:
                raise ConfigError(
                    f"unknown table(s) {', '.join(sorted(loaded))} in {file}; allowed: preset, [model], [train]"
                )
        m.update({k: v for k, v in (model or {}).items() if v is not None})
        t.update({k: v for k, v in (train or {}).items() if v is not None})
        mcfg = ModelConfig.preset(preset, **m) if preset else ModelConfig.from_dict(m)
        tcfg = from_dict(TrainConfig, t, "train")
        if tcfg.steps is not None and tcfg.minutes is not None:
            raise ConfigError("give either steps or minutes, not both")
        if tcfg.steps is None and tcfg.minutes is None:
            tcfg = replace(tcfg, steps=1000)
        return cls(model=mcfg, train=tcfg, preset=preset)


def load_toml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    try:
        return tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise ConfigError(f"config file '{p}' does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read config file '{p}': {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"config file '{p}' is not valid TOML: {e}") from None
