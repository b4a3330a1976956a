"""A mock language model with known logits, for engine tests (nanochat tests its engine this way).

The logits after a sequence are a fixed function of the whole sequence (seeded by a checksum of
its tokens), so a brute-force computation can ask for them directly. The mock keeps its history
in the KV cache like a real model (the token ids are its one-dimensional keys), so forks, row
selection and the prefix tree are exercised for real: a wrong cache gives wrong logits.
"""

import zlib
from types import SimpleNamespace

import torch
from torch import Tensor, nn


def known_logits(seq: tuple[int, ...], vocab: int, scale: float = 2.0) -> Tensor:
    g = torch.Generator().manual_seed(zlib.crc32(bytes(seq)) if seq else 12345)
    return torch.randn(vocab, generator=g) * scale


class MockLM(nn.Module):
    def __init__(self, vocab: int = 5, context_length: int = 64, scale: float = 2.0) -> None:
        super().__init__()
        self.cfg = SimpleNamespace(n_layer=1, n_head=1, n_embd=1, context_length=context_length, vocab_size=vocab)
        self.scale = scale
        self.dummy = nn.Parameter(torch.zeros(1))  # device and dtype come from the parameters
        self.calls = 0

    def logits_of(self, seq) -> Tensor:
        return known_logits(tuple(int(t) for t in seq), self.cfg.vocab_size, self.scale)

    def forward(self, idx: Tensor, targets=None, cache=None):
        self.calls += 1
        B, T = idx.shape
        if cache is None:
            hist, offset = idx, 0
        else:
            offset = cache.length
            k = idx.float()[:, None, :, None]  # (B, 1, T, 1): the token ids are the keys
            k_all, _ = cache.update(0, k, k)
            cache.advance(T)
            hist = k_all[:, 0, :, 0].round().long()  # (B, offset + T)
        out = torch.stack([torch.stack([self.logits_of(hist[b, : offset + t + 1]) for t in range(T)])
                           for b in range(B)])
        return out, None
