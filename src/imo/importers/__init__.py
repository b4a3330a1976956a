"""Importers: pretrained models from other formats into imo runs (GGUF today: imo/importers/gguf.py)."""
