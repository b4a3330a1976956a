"""Choosing the next token and ending a row: the pieces every decoding path shares (the engine's
batched loop, branching alternatives, the server's worker), kept apart so none of them imports
another for them.

Sampling is temperature, then top-k, then nucleus top-p (Holtzman et al. 2020) over the logits;
greedy is the argmax. Stop strings are bytes: a `str` stop is UTF-8 with surrogateescape, so a
stop typed as raw bytes on a command line (`--stop $'\\xff'`) is the byte it names. They are
matched on a row's text, whatever the tokenizer, by imo.engine.text.

    tok = sample_tokens(logits, cfg, [make_generator(0)]); stops = stop_bytes(cfg.stop)
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable

import torch
from torch import Tensor


def sample_tokens(logits: Tensor, cfg, gens: list[torch.Generator]) -> Tensor:
    """Next tokens (B,) from logits (B, V) under a GenerationConfig: argmax for greedy, else a draw
    from the tempered, top-k and top-p truncated distribution. One generator for all rows, or one
    per row (then each row's draw is independent of the others in the batch)."""
    if cfg.strategy == "greedy":
        return logits.argmax(dim=-1)
    logits = logits / cfg.temperature
    if cfg.top_k is not None and cfg.top_k < logits.size(-1):
        kth = torch.topk(logits, cfg.top_k, dim=-1).values[:, -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if cfg.top_p < 1.0:  # drop the tail beyond mass top_p
        sp, si = probs.sort(dim=-1, descending=True)
        before = sp.cumsum(dim=-1) - sp  # mass of the tokens ranked above each one
        sp = sp.masked_fill(before >= cfg.top_p, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, si, sp)
    if len(gens) == 1:
        return torch.multinomial(probs, 1, generator=gens[0])[:, 0]
    return torch.cat([torch.multinomial(p[None], 1, generator=g)[:, 0] for p, g in zip(probs, gens, strict=True)])


def make_generator(seed: int | None) -> torch.Generator:
    """A private generator: seeded, or freshly random; the global RNG is left alone."""
    g = torch.Generator()
    if seed is None:
        g.seed()
    else:
        g.manual_seed(seed)
    return g


def row_seed(seed: int | None, *parts: int) -> int | None:
    """A seed for one row of a seeded request (prompt i, sample j, ...): rows differ from each
    other, and a row's seed does not depend on which other rows share its batch."""
    if seed is None:
        return None
    return zlib.crc32(":".join(map(str, (seed, *parts))).encode())


def stop_bytes(stops: Iterable[str | bytes]) -> list[bytes]:
    """Stop strings as bytes (str: UTF-8, lone surrogates from argv back to their raw bytes)."""
    return [s if isinstance(s, bytes) else s.encode("utf-8", "surrogateescape") for s in stops]
