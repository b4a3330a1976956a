"""Training and evaluation batches drawn from a memory-mapped token array.

Random windows come from a seeded torch.Generator, so a run (and its resume, which restores the
generator's state) sees exactly the same batches. Under DDP every rank draws the same global
batch and keeps its own rows, so N processes see what one process would.

    xb, yb = random_batch(corpus.train, context_length=256, batch_size=16, gen=g)  # (16, 256) each
"""

import numpy as np
import torch
from torch import Tensor

from imo.errors import DataError


def random_batch(
    data: np.ndarray, context_length: int, batch_size: int, gen: torch.Generator,
    rows: slice = slice(None),
) -> tuple[Tensor, Tensor]:
    n = len(data) - context_length - 1
    if n < 0:
        raise DataError(
            f"a split of {len(data)} tokens is too short for context {context_length}; "
            f"use a context of at most {len(data) - 1} or a larger corpus"
        )
    ix = torch.randint(n + 1, (batch_size,), generator=gen)[rows]
    chunk = np.stack([data[i : i + context_length + 1] for i in ix.tolist()]).astype(np.int64)
    t = torch.from_numpy(chunk)  # (B, T+1)
    return t[:, :-1].contiguous(), t[:, 1:].contiguous()


def windows(data: np.ndarray, context_length: int, max_tokens: int | None = None, batch_size: int = 16):
    """Non-overlapping (x, y) windows covering a split in order (for evaluation), stacked
    `batch_size` at a time; the last, shorter window comes alone, so every byte is scored once."""
    n = len(data) - 1 if max_tokens is None else min(len(data) - 1, max_tokens)
    full = n // context_length
    arr = np.asarray(data[: n + 1]).astype(np.int64)
    for b in range(0, full, batch_size):
        starts = range(b * context_length, min(full, b + batch_size) * context_length, context_length)
        chunk = torch.from_numpy(np.stack([arr[s : s + context_length + 1] for s in starts]))  # (b, T+1)
        yield chunk[:, :-1], chunk[:, 1:]
    if n > full * context_length:
        chunk = torch.from_numpy(arr[full * context_length : n + 1])
        yield chunk[None, :-1], chunk[None, 1:]
