"""Trickability: FGSM equals the hand-computed gradient sign of a linear model, PGD stays in its
ball and in [0, 1], attacks never touch the labels, minimal epsilons are found, and bad input
is a clear error."""

import pytest
import torch
from torch import nn

from imo.errors import ConfigError, DataError
from imo.exams.trick import (
    VisionSize,
    adversarial_training_effect,
    check_eps,
    fgsm,
    minimal_eps,
    pgd,
    vision_exam,
)


def linear(seed: int = 0) -> nn.Linear:
    torch.manual_seed(seed)
    return nn.Linear(5, 3)


def test_fgsm_is_the_hand_computed_gradient_sign():
    model = linear()
    x = torch.full((4, 5), 0.5) + 0.1 * torch.randn(4, 5)
    y = torch.tensor([0, 1, 2, 1])
    with torch.no_grad():
        p = torch.softmax(model(x), -1)
        # d/dx of -log softmax(Wx + b)_y = W^T (p - onehot(y))
        grad = (p - nn.functional.one_hot(y, 3).float()) @ model.weight
    eps = 0.1
    assert torch.equal(fgsm(model, x, y, eps), (x + eps * grad.sign()).clamp(0, 1))
    assert torch.allclose(fgsm(model, x, y, 0.0), x)


def test_pgd_stays_in_the_ball_and_in_pixel_range():
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    x = torch.rand(16, 6)
    y = torch.randint(3, (16,))
    for eps in (0.05, 0.3):
        adv = pgd(model, x, y, eps, steps=7)
        assert (adv - x).abs().max() <= eps + 1e-6
        assert adv.min() >= 0 and adv.max() <= 1
    with torch.no_grad():  # it ascends the loss
        ce = nn.functional.cross_entropy
        assert ce(model(pgd(model, x, y, 0.3)), y) > ce(model(x), y)


def test_attacks_never_change_the_labels():
    model = linear()
    x, y = torch.rand(8, 5), torch.tensor([0, 1, 2, 0, 1, 2, 0, 1])
    before = y.clone()
    fgsm(model, x, y, 0.2)
    pgd(model, x, y, 0.2)
    minimal_eps(model, x, y, "pgd", iters=4)
    assert torch.equal(y, before) and not x.requires_grad


def test_minimal_eps_flips_and_smaller_does_not():
    model = linear(1)
    x = torch.rand(32, 5)
    with torch.no_grad():
        y = model(x).argmax(-1)  # every clean answer is "right"
    e = minimal_eps(model, x, y, "fgsm", iters=14)
    ok = torch.isfinite(e)
    assert ok.any()
    e_col = e[ok].unsqueeze(1)
    with torch.no_grad():
        assert (model(fgsm(model, x[ok], y[ok], e_col)).argmax(-1) != y[ok]).all()
        below = model(fgsm(model, x[ok], y[ok], e_col * 0.98)).argmax(-1) != y[ok]
    assert below.float().mean() < 0.2  # FGSM on a linear model is monotone up to clipping


def test_vision_exam_on_digits():
    out = vision_exam("digits", eps=(0.0, 0.25), seed=0, archs=("softmax",),
                      size=VisionSize(epochs=2, max_test=60))
    rows = out["rows"]
    assert len(rows) == 4 and out["n_test"] == 60
    at0 = [r for r in rows if r["eps"] == 0.0]
    assert all(abs(r["error"] - r["clean_error"]) < 1e-9 for r in at0)
    eff = adversarial_training_effect(rows, "softmax", 0.25)
    assert 0.0 <= eff["adv_error_after"] <= 1.0
    assert out["paper_mnist"]["softmax"]["fgsm_error"] == 0.999


def test_bad_input():
    with pytest.raises(ConfigError, match=r"epsilon must be in \[0, 1\]"):
        check_eps([0.1, 1.5])
    with pytest.raises(ConfigError, match="unknown attack 'cw'"):
        vision_exam("digits", attack="cw")
    with pytest.raises(DataError, match="unknown image data"):
        vision_exam("cifar")
