"""Sampling text from a model: temperature, top-k, a seed, streamed byte by byte.

The context is the last block_size tokens (a sliding window), so generation can run past the
training length for every position encoding.

    for text in generate(model, "def ", max_new_tokens=100, temperature=0.8, seed=0): print(text, end="")
"""

import codecs
from collections.abc import Iterator

import torch

from imo.data.tokenizer import ByteTokenizer
from imo.errors import ConfigError


@torch.no_grad()
def generate_ids(
    model, ids: list[int], max_new_tokens: int, temperature: float = 0.8, top_k: int | None = None,
    seed: int | None = None,
) -> Iterator[int]:
    if temperature < 0:
        raise ConfigError(f"temperature must be >= 0 (0 is greedy), got {temperature}")
    if top_k is not None and top_k < 1:
        raise ConfigError(f"top-k must be >= 1, got {top_k}")
    if max_new_tokens < 0:
        raise ConfigError(f"tokens must be >= 0, got {max_new_tokens}")
    if not ids:
        raise ConfigError("the prompt is empty; give at least one character")
    gen = torch.Generator()
    if seed is not None:
        gen.manual_seed(seed)
    else:
        gen.seed()  # a fresh seed for this generator only; the global RNG is left alone
    device = next(model.parameters()).device
    x = torch.tensor([ids], device=device)
    for _ in range(max_new_tokens):
        logits, _ = model(x[:, -model.cfg.block_size :])
        logits = logits[0, -1].float().cpu()  # (vocab,)
        if temperature == 0:
            nxt = int(torch.argmax(logits))
        else:
            logits = logits / temperature
            if top_k is not None:
                kth = torch.topk(logits, min(top_k, logits.numel())).values[-1]
                logits = logits.masked_fill(logits < kth, float("-inf"))
            nxt = int(torch.multinomial(torch.softmax(logits, -1), 1, generator=gen))
        yield nxt
        x = torch.cat([x, torch.tensor([[nxt]], device=device)], dim=1)


def generate(model, prompt: str, max_new_tokens: int = 200, **kw) -> Iterator[str]:
    """Decoded text pieces as they come; bytes that do not yet form a character wait."""
    tok = ByteTokenizer()
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    for i in generate_ids(model, tok.encode(prompt), max_new_tokens, **kw):
        piece = decoder.decode(bytes([i]))
        if piece:
            yield piece
    tail = decoder.decode(b"", final=True)
    if tail:
        yield tail
