"""Data: built-in and user corpora (corpora.py), the byte tokenizer (tokenizer.py) and batching
(batches.py). Import from the submodules; this package stays light so the CLI starts fast."""
