"""Inference: text generation (KV cache, branching alternatives and serving grow here)."""
