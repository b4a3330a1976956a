"""The neural part of `imo zip`: a small byte MLP that learns online while coding (NNCP's idea,
Bellard 2019, with a feed-forward net instead of an LSTM/transformer to keep it fast on a CPU).

The net sees the last `context` bytes of a stream (each embedded), one hidden layer, and gives
logits over the next byte. It starts from a seeded initialisation; after each step it takes one
Adam step on the cross-entropy of the bytes just coded in all streams (one batch, fixed order).
The decoder starts from the same seed and takes the same steps on the same bytes, so it holds the
same weights at every step: exact by construction, given the same threads, dtype and kernels
(recorded in the container header and checked by a fingerprint).

    net = OnlineNet(streams=32, context=12, width=384, lr=2e-3, seed=0)
    logp = net.predict(m)     # (m, 256) float32 numpy log-probabilities
    net.update(symbols)       # one training step on the m bytes just coded
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class ByteMLP(nn.Module):
    """Embeddings of the last `context` bytes -> GELU hidden layer -> next-byte logits."""

    def __init__(self, context: int, width: int, emb: int = 16):
        super().__init__()
        self.context = context
        self.wte = nn.Embedding(256, emb)
        self.fc = nn.Linear(context * emb, width)
        self.out = nn.Linear(width, 256)

    def forward(self, ctx: torch.Tensor) -> torch.Tensor:
        x = self.wte(ctx).flatten(1)  # (m, context * emb)
        return self.out(torch.nn.functional.gelu(self.fc(x)))  # (m, 256)

    def flops_per_byte(self) -> int:
        """Multiply-adds x 2 of one forward, x 3 for forward + backward (the usual estimate)."""
        fwd = 2 * (self.fc.in_features * self.fc.out_features + self.out.in_features * self.out.out_features)
        return 3 * fwd


class OnlineNet:
    """ByteMLP plus per-stream byte histories and its optimiser (see module doc)."""

    def __init__(self, streams: int, context: int = 12, width: int = 384, lr: float = 2e-3, seed: int = 0):
        gen = torch.Generator().manual_seed(seed)
        self.model = ByteMLP(context, width)
        with torch.no_grad():  # seeded init that does not touch the global RNG
            for p in self.model.parameters():
                if p.dim() > 1:
                    p.copy_(torch.randn(p.shape, generator=gen) * (1.0 / p.shape[-1]) ** 0.5)
                else:
                    p.zero_()
        self.opt = torch.optim.Adam(self.model.parameters(), lr=lr, foreach=False)
        self.ctx = torch.zeros(streams, context, dtype=torch.long)
        self._logits: torch.Tensor | None = None

    def reset_streams(self) -> None:
        self.ctx.zero_()

    def flops_per_byte(self) -> int:
        """Forward + backward of the MLP per byte, plus Adam's ~10 operations per parameter once
        per step (shared by the streams of the step)."""
        n = sum(p.numel() for p in self.model.parameters())
        return self.model.flops_per_byte() + 10 * n // self.ctx.shape[0]

    def predict(self, m: int) -> np.ndarray:
        self._logits = self.model(self.ctx[:m])
        return torch.log_softmax(self._logits.detach(), dim=1).numpy()

    def update(self, symbols: np.ndarray) -> None:
        m = len(symbols)
        target = torch.from_numpy(symbols.astype(np.int64))
        loss = torch.nn.functional.cross_entropy(self._logits, target)
        self.opt.zero_grad(set_to_none=False)
        loss.backward()
        self.opt.step()
        self.ctx[:m] = torch.cat([self.ctx[:m, 1:], target[:, None]], dim=1)
