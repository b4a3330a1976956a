"""Bits per byte of a token model on a text, so BPE and byte models compare directly.

The text is tokenized once and cut into consecutive windows of `context` tokens; each window is
one forward pass and predicts its tokens 2..context from the ones before them in the window (the
first token of a window has no context and is not scored; its bytes are left out of the count).
Bits/byte = sum of -log2 p(token) over the scored tokens / the bytes those tokens stand for
(`tokenizer.token_bytes`). With the byte tokenizer this is the usual bits per byte.

    bpb = bits_per_byte(model, tok, Path("alice29.txt").read_text(), context=512)
"""

import math

import torch
import torch.nn.functional as F

from imo.errors import ConfigError


@torch.no_grad()
def bits_per_byte(model, tokenizer, text: str, context: int = 512, batch: int = 4) -> tuple[float, int]:
    """(bits per byte, bytes scored)."""
    if context < 2:
        raise ConfigError(f"context must be >= 2 tokens, got {context}")
    ids = tokenizer.encode(text)
    windows = [ids[i : i + context] for i in range(0, len(ids), context)]
    windows = [w for w in windows if len(w) >= 2]
    if not windows:
        raise ConfigError("the text is too short to score (fewer than 2 tokens)")
    nats, nbytes = 0.0, 0
    for lo in range(0, len(windows), batch):
        group = windows[lo : lo + batch]
        for w in sorted({len(w) for w in group}):  # a shorter last window runs on its own
            rows = torch.tensor([g for g in group if len(g) == w])
            logits, _ = model(rows[:, :-1])
            nll = F.cross_entropy(logits.float().reshape(-1, logits.size(-1)), rows[:, 1:].reshape(-1), reduction="sum")
            nats += float(nll)
            nbytes += sum(len(tokenizer.token_bytes(int(t))) for t in rows[:, 1:].reshape(-1))
    return nats / math.log(2) / nbytes, nbytes


def evaluate_run_split(run_dir, model, meta, data, context: int, max_bytes: int | None = None) -> float:
    """`imo eval` on an imported run: the split's bytes (a uint8 array) as text, scored in
    windows of `context` tokens with the run's own tokenizer."""
    from imo.data.tokenizer import load_tokenizer

    raw = bytes(data[:max_bytes] if max_bytes else data)
    batch = max(1, 2048 // context)  # long contexts one window at a time (memory)
    return bits_per_byte(model, load_tokenizer(run_dir, meta), raw.decode("utf-8", "replace"), context, batch)[0]
