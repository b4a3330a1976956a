"""The SAE's dark matter: each kind of predicted token's share of the loss the SAE adds."""

import pytest
import torch

from imo.data.tokenizer import ByteTokenizer
from imo.inspect import sae as S
from imo.inspect.darkmatter import dark_matter, token_kind
from imo.model import GPT, ModelConfig


def test_token_kinds():
    assert [token_kind(b) for b in (b"a", b" the", b"7", b" ", b"\n", b"  \n", b"(", b"\xc3\xa9", b"")] == \
        ["letter", "letter", "digit", "space", "newline", "newline", "punctuation", "other", "other"]


def test_shares_add_up_and_match_the_per_position_losses():
    torch.manual_seed(0)
    model = GPT(ModelConfig(n_layer=2, n_embd=16, n_head=2, context_length=32)).eval()
    windows = torch.tensor([list(b"def f(x):\n    return x + 12  # ok")[:32]] * 2)
    sae = S.build(16, S.SAEConfig(latents=32, k=2)).eval()
    got = dark_matter(model, sae, "blocks.0.hook_resid_post", windows, ByteTokenizer())
    assert set(got) <= {"letter", "digit", "space", "newline", "punctuation", "other"} and "digit" in got
    assert sum(r["tokens"] for r in got.values()) == pytest.approx(1.0)
    assert sum(r["loss_gap"] for r in got.values()) == pytest.approx(1.0)
    digits = [i for i, b in enumerate(windows[0, 1:].tolist()) if chr(b).isdigit()]
    assert got["digit"]["tokens"] == pytest.approx(len(digits) / 31)
    # CE rows: the SAE's loss minus the clean one, summed by kind, over the total
    rise = {k: (r["ce_sae"] - r["ce_clean"]) * r["tokens"] for k, r in got.items()}
    total = sum(rise.values())
    for k, r in got.items():
        assert r["loss_gap"] == pytest.approx(rise[k] / total, abs=1e-3)
