"""The SAE's "dark matter" (Olah's phrase for what a dictionary leaves unexplained): which tokens'
loss the SAE fails to recover.

With the hook point replaced by the SAE's reconstruction, each position's next-token loss rises
by some amount over the clean model's. Grouped by the kind of token being predicted (letters,
digits, spaces, newlines, punctuation, other), this says where the unexplained part of the
activations matters: each kind's share of the total rise, beside its share of the tokens.

    dark_matter(model, sae, "blocks.2.hook_resid_post", windows, tokenizer)
    # {"letter": {"tokens": 0.61, "loss_gap": 0.48, "ce_clean": ..., "ce_sae": ...}, ...}
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from imo.model.hooks import hooks

KINDS = ("letter", "digit", "space", "newline", "punctuation", "other")


def token_kind(piece: bytes) -> str:
    """The kind of a token, by its first character that is not a space (a BPE token often starts
    with one); a token of spaces only is "space"."""
    text = piece.decode("utf-8", "replace")
    if "\n" in text:
        return "newline"
    core = text.lstrip(" \t")
    if not core:
        return "space" if text else "other"
    c = core[0]
    if c.isalpha() and c.isascii():
        return "letter"
    if c.isdigit():
        return "digit"
    if c.isascii() and not c.isalnum():
        return "punctuation"
    return "other"


@torch.no_grad()
def dark_matter(model: nn.Module, sae: nn.Module, hook: str, windows: Tensor, tok) -> dict[str, dict[str, float]]:
    """Per kind of predicted token: share of tokens, mean CE clean and with the SAE (nats), and
    share of the total loss rise (CE_sae - CE_clean, summed over positions)."""
    def losses(fn=None) -> Tensor:
        with hooks(model, {hook: fn} if fn else {}):
            logits, _ = model(windows[:, :-1])
        return nn.functional.cross_entropy(logits.transpose(1, 2).float(), windows[:, 1:], reduction="none")

    clean = losses().reshape(-1)
    with_sae = losses(lambda a: sae(a.float()).to(a.dtype)).reshape(-1)
    kinds = [token_kind(tok.token_bytes(int(t))) for t in windows[:, 1:].reshape(-1)]
    total = float((with_sae - clean).sum())
    out = {}
    for kind in KINDS:
        mask = torch.tensor([k == kind for k in kinds])
        if not mask.any():
            continue
        gap = float((with_sae[mask] - clean[mask]).sum())
        out[kind] = {"tokens": float(mask.float().mean()), "ce_clean": float(clean[mask].mean()),
                     "ce_sae": float(with_sae[mask].mean()),
                     "loss_gap": gap / total if total else float("nan")}
    return out
