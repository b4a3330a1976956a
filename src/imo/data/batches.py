"""Training and evaluation batches drawn from a memory-mapped token array.

Random windows come from a seeded torch.Generator, so a run (and its resume, which restores the
generator's state) sees exactly the same batches. Under DDP every rank draws the same global
batch and keeps its own rows, so N processes see what one process would.

    xb, yb = random_batch(corpus.train, block_size=256, batch_size=16, gen=g)  # (16, 256) each
"""

import numpy as np
import torch
from torch import Tensor

from imo.errors import DataError


def random_batch(
    data: np.ndarray, block_size: int, batch_size: int, gen: torch.Generator,
    rows: slice = slice(None),
) -> tuple[Tensor, Tensor]:
    n = len(data) - block_size - 1
    if n < 0:
        raise DataError(
            f"a split of {len(data)} tokens is too short for context {block_size}; "
            f"use a context below {len(data) - 1} or a larger corpus"
        )
    ix = torch.randint(n + 1, (batch_size,), generator=gen)[rows]
    chunk = np.stack([data[i : i + block_size + 1] for i in ix.tolist()]).astype(np.int64)
    t = torch.from_numpy(chunk)  # (B, T+1)
    return t[:, :-1].contiguous(), t[:, 1:].contiguous()


def windows(data: np.ndarray, block_size: int, max_tokens: int | None = None):
    """Non-overlapping (x, y) windows covering a split in order (for evaluation); the last,
    shorter window is kept so that every byte is scored once."""
    n = len(data) - 1 if max_tokens is None else min(len(data) - 1, max_tokens)
    for start in range(0, n, block_size):
        end = min(start + block_size, n)
        chunk = torch.from_numpy(np.asarray(data[start : end + 1]).astype(np.int64))
        yield chunk[None, :-1], chunk[None, 1:]
