"""Learning-rate schedule: linear warmup, then cosine decay to lr * min_lr_ratio.

During warmup the rate does not depend on the total step count, which is what lets a time budget
be turned into steps after timing the first (warmup) steps.
"""

import math


def lr_at(step: int, lr: float, warmup: int, total: int, min_lr_ratio: float) -> float:
    if step < warmup:
        return lr * (step + 1) / warmup
    span = max(1, total - warmup)
    progress = min(1.0, (step - warmup) / span)
    floor = lr * min_lr_ratio
    return floor + 0.5 * (1.0 + math.cos(math.pi * progress)) * (lr - floor)
