"""Length extrapolation: bits/byte of a trained run at multiples of its training context.

Follows Press et al. 2022 ("Train Short, Test Long", ALiBi): a model trained at context L is
evaluated, unchanged, on non-overlapping windows of f * L bytes of the validation split, for
growing f. The same first `max_tokens` bytes are scored at every factor, so the figures compare.
A learned position table has exactly L rows and cannot be evaluated past it: those factors give
None (shown as n/a).

    curve = extrapolation_curve(run_id, store, factors=(1, 2, 4, 8, 16), max_tokens=16384)
"""

from collections.abc import Sequence

from imo.data.corpora import load_corpus
from imo.errors import DataError
from imo.train.checkpoint import load_model
from imo.train.evaluate import evaluate_split

FACTORS = (1, 2, 4, 8, 16)


def max_factor(pos: str, factors: Sequence[int]) -> int:
    """The largest factor an encoding can be evaluated at: 1 for a learned table, else any."""
    return 1 if pos == "learned" else max(factors)


def extrapolation_curve(
    run_id: str,
    store,
    factors: Sequence[int] = FACTORS,
    max_tokens: int | None = None,
    device: str = "cpu",
) -> dict[int, float | None]:
    """{factor: validation bits/byte at context factor * L, or None where the encoding cannot go}.

    max_tokens (default 4 windows of the longest context) bounds the bytes scored; round it to a
    multiple of the longest context so that no factor scores a shorter last window."""
    model, meta = load_model(store.run_dir(run_id), device=device)
    cfg = meta["config"]
    L = cfg["model"]["context_length"]
    corpus = load_corpus(cfg["train"]["corpus"])
    longest = L * max(factors)
    if max_tokens is None:
        max_tokens = 4 * longest
    max_tokens = min(max_tokens, (len(corpus.val) - 1) // longest * longest)
    if max_tokens < longest:
        raise DataError(f"the validation split of {corpus.name!r} ({len(corpus.val)} bytes) is "
                        f"shorter than the longest context {longest}; use smaller factors")
    limit = max_factor(model.cfg.pos, factors)
    return {
        f: evaluate_split(model, corpus.val, f * L, max_tokens=max_tokens, device=device)
        if f <= limit else None
        for f in factors
    }
