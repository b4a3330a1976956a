"""Capsules: routing by agreement equals a brute-force loop over every (input, output) pair, one
iteration is uniform coupling, squash keeps direction and bounds length, and the slim CapsNet and
its CNN twin have the same classifier size."""

import math

import pytest
import torch

from imo.learn.capsules import (
    CapsNet,
    ConvNet,
    affine_distort,
    fit_capsules,
    margin_loss,
    route,
    squash,
)
from imo.learn.data import load


def brute_force_route(u_hat, iterations):
    """Sabour et al.'s Procedure 1, one scalar at a time, in plain Python floats."""
    B, n_in, n_out, d = u_hat.shape
    u = u_hat.tolist()
    vs, cs = [], []
    for bi in range(B):
        logit = [[0.0] * n_out for _ in range(n_in)]
        for r in range(iterations):
            c = []
            for i in range(n_in):
                e = [math.exp(v) for v in logit[i]]
                c.append([v / sum(e) for v in e])
            v = []
            for j in range(n_out):
                s = [sum(c[i][j] * u[bi][i][j][k] for i in range(n_in)) for k in range(d)]
                n2 = sum(t * t for t in s)
                v.append([n2 / (1 + n2) * t / math.sqrt(n2) for t in s])
            if r < iterations - 1:
                for i in range(n_in):
                    for j in range(n_out):
                        logit[i][j] += sum(u[bi][i][j][k] * v[j][k] for k in range(d))
        vs.append(v)
        cs.append(c)
    return torch.tensor(vs, dtype=torch.float64), torch.tensor(cs, dtype=torch.float64)


@pytest.mark.parametrize("iterations", [1, 2, 3, 5])
def test_routing_agrees_with_brute_force(iterations):
    u_hat = torch.randn(2, 5, 3, 4, generator=torch.Generator().manual_seed(iterations), dtype=torch.float64)
    v, c = route(u_hat, iterations)
    v_ref, c_ref = brute_force_route(u_hat, iterations)
    torch.testing.assert_close(v, v_ref, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(c, c_ref, rtol=1e-6, atol=1e-6)


def test_one_iteration_is_uniform_coupling():
    u_hat = torch.randn(3, 6, 4, 5)
    v, c = route(u_hat, 1)
    torch.testing.assert_close(c, torch.full_like(c, 0.25))
    torch.testing.assert_close(v, squash(u_hat.sum(1) / 4))


def test_inner_iterations_change_values_not_the_forward():
    u_hat = torch.randn(2, 5, 3, 4)
    torch.testing.assert_close(route(u_hat, 3, detach_inner=True)[0], route(u_hat, 3, detach_inner=False)[0])
    with pytest.raises(ValueError):
        route(u_hat, 0)


def test_squash_and_margin_loss():
    s = torch.randn(10, 8) * torch.logspace(-2, 2, 10)[:, None]
    v = squash(s)
    assert torch.all(v.norm(dim=-1) < 1)
    torch.testing.assert_close(torch.nn.functional.normalize(v, dim=-1), torch.nn.functional.normalize(s, dim=-1))
    perfect = torch.tensor([[0.95, 0.05, 0.0]])
    assert margin_loss(perfect, torch.tensor([0])) == 0
    assert margin_loss(perfect, torch.tensor([1])) > 0


@pytest.mark.parametrize("side", [8, 28])
def test_capsnet_and_cnn_shapes_and_equal_size(side):
    caps = CapsNet(side=side, routing=2)
    x, y = torch.rand(3, side * side), torch.tensor([0, 3, 9])
    lengths, recon = caps(x, y)
    assert lengths.shape == (3, 10) and recon.shape == (3, side * side)
    assert torch.all((lengths >= 0) & (lengths < 1))
    cnn = ConvNet(side=side, match=caps.classifier_params())
    assert cnn(x).shape == (3, 10)
    assert abs(cnn.classifier_params() - caps.classifier_params()) / caps.classifier_params() < 0.01


def test_capsnet_learns_digits_and_repeats():
    data = load("digits", max_train=400)
    rec, _ = fit_capsules("capsnet", data, epochs=2, batch=50, routing=2, seed=0)
    assert rec["final"]["error"] < 0.65  # chance is 0.9; 2 epochs of 400 digits gave 0.49
    small = load("digits", max_train=100)
    runs = [fit_capsules("capsnet", small, epochs=1, batch=50, routing=3, seed=1)[0] for _ in range(2)]
    assert runs[0]["final"]["error"] == runs[1]["final"]["error"]
    assert runs[0]["final"]["train_loss"] == runs[1]["final"]["train_loss"]


def test_affine_distortion_is_seeded_and_bounded():
    data = load("digits", max_train=50)
    x = data.x_val[:20]
    a, b = affine_distort(x, 8, seed=3), affine_distort(x, 8, seed=3)
    assert torch.equal(a, b) and a.shape == x.shape
    assert float(a.min()) >= 0 and float(a.max()) <= 1
    assert not torch.equal(a, affine_distort(x, 8, seed=4))
    # the identity map (no rotation, scale 1, no shear) gives the images back
    same = affine_distort(x, 8, seed=0, degrees=0.0, scale=(1.0, 1.0), shear=0.0)
    torch.testing.assert_close(same, x, rtol=0, atol=1e-5)
    # the default maps move pixels
    assert (a - x).abs().mean() > 0.05
