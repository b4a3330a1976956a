"""Sampling text from a model: temperature, top-k, a seed, streamed byte by byte, through the
KV-cached engine (imo.engine.decode).

When the context is full the window slides (the engine drops the oldest half and prefills the
rest again), so generation can run past the training length for every position encoding.

    for text in generate(model, "def ", max_new_tokens=100, temperature=0.8, seed=0): print(text, end="")
"""

import codecs
from collections.abc import Iterable, Iterator

from imo.data.tokenizer import ByteTokenizer
from imo.engine.config import GenerationConfig
from imo.engine.decode import Engine
from imo.errors import ConfigError


def generate_ids(
    model, ids: list[int], max_new_tokens: int, temperature: float = 0.8, top_k: int | None = None,
    seed: int | None = None,
) -> Iterator[int]:
    """Token ids one at a time, decoded with a KV cache (temperature 0 is greedy)."""
    if temperature < 0:
        raise ConfigError(f"temperature must be >= 0 (0 is greedy), got {temperature}")
    if max_new_tokens < 0:
        raise ConfigError(f"tokens must be >= 0, got {max_new_tokens}")
    if not ids:
        raise ConfigError("the prompt is empty; give at least one character")
    if temperature == 0:
        cfg = GenerationConfig(strategy="greedy", max_tokens=max_new_tokens)
    else:
        cfg = GenerationConfig(strategy="sample", max_tokens=max_new_tokens, temperature=temperature,
                               top_k=top_k, seed=seed)
    ids = ids[-model.cfg.context_length :]  # a longer prompt keeps its last context_length tokens
    for ev in Engine(model).stream(ids, cfg):
        yield ev.token


def decode_stream(ids: Iterable[int]) -> Iterator[str]:
    """Text pieces of a stream of byte tokens; bytes that do not yet form a character wait."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    for i in ids:
        piece = decoder.decode(bytes([i]))
        if piece:
            yield piece
    tail = decoder.decode(b"", final=True)
    if tail:
        yield tail


def generate(model, prompt: str, max_new_tokens: int = 200, **kw) -> Iterator[str]:
    """Decoded text pieces as they come; bytes that do not yet form a character wait."""
    yield from decode_stream(generate_ids(model, ByteTokenizer().encode(prompt), max_new_tokens, **kw))
