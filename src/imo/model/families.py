"""Block families, registered by name: which module a ModelConfig builds.

  * `gpt`   imo's own byte models (imo/model/gpt.py): LayerNorm, GELU MLP, multi-head attention;
  * `llama` the Llama family (imo/model/llama.py): RMSNorm, SwiGLU, grouped-query attention,
            RoPE; the models `imo import gguf` brings in.

Both take the same forward(idx, targets, cache) and save/load their weights the same way, so the
engine, the hooks and the quantizers need not know which one they hold.

    model = build_model(ModelConfig(family="llama", n_kv_head=1, bias=False))
"""

from imo.registry import Registry

FAMILIES: Registry[str] = Registry("model family")
FAMILIES.register("gpt")("imo.model.gpt:GPT")
FAMILIES.register("llama")("imo.model.llama:Llama")


def build_model(cfg):
    """A freshly initialised model of cfg's family (imported lazily, so configs need no torch)."""
    import importlib

    module, name = FAMILIES.get(cfg.family).split(":")
    return getattr(importlib.import_module(module), name)(cfg)
