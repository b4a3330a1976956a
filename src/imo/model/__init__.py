"""The model: a GPT with registered position encodings and attention backends."""

from imo.model.config import PRESETS, ModelConfig
from imo.model.gpt import GPT

__all__ = ["GPT", "ModelConfig", "PRESETS"]
