"""Loss in bits per byte (tokens are bytes, so this is a compression rate).

    bpb = evaluate_split(model, corpus.val, context=256)
"""

import math

import numpy as np
import torch
from torch import Tensor, nn

from imo.data.batches import random_batch, windows

LN2 = math.log(2)
EVAL_SEED = 12345  # the fixed validation windows every run logs "val/bpb" on


def fixed_eval_set(val: np.ndarray, context_length: int, batch_size: int, eval_batches: int) -> list:
    """The validation windows a run with this context and batch size is evaluated on during
    training: fixed, so figures compare across steps and across runs."""
    gen = torch.Generator().manual_seed(EVAL_SEED)
    return [random_batch(val, context_length, batch_size, gen) for _ in range(eval_batches)]


@torch.no_grad()
def mean_bpb(model: nn.Module, batches: list[tuple[Tensor, Tensor]], device: str = "cpu") -> float:
    """Mean cross-entropy over fixed (x, y) batches, in bits per token."""
    was_training = model.training
    model.eval()
    total, count = 0.0, 0
    for x, y in batches:
        _, loss = model(x.to(device), y.to(device))
        total += loss.item() * y.numel()
        count += y.numel()
    model.train(was_training)
    return total / count / LN2


@torch.no_grad()
def evaluate_split(
    model: nn.Module, data: np.ndarray, context: int, max_tokens: int | None = None, device: str = "cpu"
) -> float:
    """Bits per byte over a whole split (or its first max_tokens), in non-overlapping windows."""
    return mean_bpb(model, list(windows(data, context, max_tokens)), device)
