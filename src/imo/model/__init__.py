"""The model: a GPT with registered position encodings and attention backends.

`from imo.model import GPT, ModelConfig` works; the names load on first use, so that importing
the package for the CLI does not import torch.
"""

__all__ = ["GPT", "ModelConfig", "PRESETS"]


def __getattr__(name: str):
    if name == "GPT":
        from imo.model.gpt import GPT

        return GPT
    if name in ("ModelConfig", "PRESETS"):
        from imo.model import config

        return getattr(config, name)
    raise AttributeError(name)
