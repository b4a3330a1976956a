"""MeZO: its step is the analytic SPSA estimate on a quadratic, it stores no perturbation, and
seeded runs repeat exactly."""

import torch

from imo.learn.data import load
from imo.learn.loop import fit
from imo.learn.mezo import mezo_step_, perturb_
from imo.learn.rules import RuleConfig


def quadratic(seed=0):
    g = torch.Generator().manual_seed(seed)
    M = torch.randn(7, 7, generator=g, dtype=torch.float64)
    A = M @ M.T + torch.eye(7, dtype=torch.float64)  # positive definite
    b = torch.randn(7, generator=g, dtype=torch.float64)
    # the 7 parameters live in two tensors, so the per-tensor draw order matters
    params = [torch.randn(2, 2, generator=g, dtype=torch.float64), torch.randn(3, generator=g, dtype=torch.float64)]
    flat = lambda: torch.cat([p.reshape(-1) for p in params])  # noqa: E731
    loss = lambda: 0.5 * flat() @ A @ flat() + b @ flat()  # noqa: E731
    return params, flat, loss, A, b


def direction(seed: int, params) -> torch.Tensor:
    """z as the seed trick draws it: one tensor after another from one generator."""
    g = torch.Generator().manual_seed(seed)
    return torch.cat([torch.randn(p.shape, generator=g, dtype=p.dtype).reshape(-1) for p in params])


def test_step_equals_the_analytic_spsa_estimate_on_a_quadratic():
    params, flat, loss, A, b = quadratic()
    theta = flat().clone()
    lr, eps, seed = 0.01, 1e-3, 1234
    grads, _ = mezo_step_(params, loss, lr=lr, eps=eps, seeds=[seed])
    z = direction(seed, params)
    # a central difference is exact on a quadratic: (L(θ+εz) − L(θ−εz)) / 2ε = zᵀ(Aθ + b)
    expected_g = float(z @ (A @ theta + b))
    assert abs(grads[0] - expected_g) < 1e-7 * max(1.0, abs(expected_g))
    torch.testing.assert_close(flat(), theta - lr * expected_g * z, rtol=0, atol=1e-9)


def test_n_spsa_averages_the_directions_at_the_same_point():
    params, flat, loss, A, b = quadratic(1)
    theta = flat().clone()
    seeds = [5, 6, 7]
    grads, _ = mezo_step_(params, loss, lr=0.02, eps=1e-3, seeds=seeds)
    step = torch.zeros_like(theta)
    for s, g in zip(seeds, grads, strict=True):
        z = direction(s, params)
        assert abs(g - float(z @ (A @ theta + b))) < 1e-6
        step += g * z / len(seeds)
    torch.testing.assert_close(flat(), theta - 0.02 * step, rtol=0, atol=1e-9)


def test_the_expected_estimate_is_the_gradient():
    # E[(zᵀ∇L) z] = ∇L for z ~ N(0, I): the average of many one-direction estimates approaches it
    params, flat, loss, A, b = quadratic(2)
    theta = flat().clone()
    est = torch.zeros_like(theta)
    n = 4000
    for s in range(n):
        z = direction(s, params)
        est += float(z @ (A @ theta + b)) * z / n
    grad = A @ theta + b
    assert torch.nn.functional.cosine_similarity(est, grad, dim=0) > 0.95


def test_perturbation_is_undone_and_regenerated_from_the_seed():
    params, flat, *_ = quadratic()
    before = flat().clone()
    perturb_(params, 99, 0.5)
    torch.testing.assert_close(flat() - before, 0.5 * direction(99, params), rtol=0, atol=1e-12)
    perturb_(params, 99, -0.5)
    torch.testing.assert_close(flat(), before, rtol=0, atol=1e-12)


def test_mezo_rule_builds_no_graph_and_repeats_exactly():
    data = load("digits", max_train=300)
    cfg = lambda: RuleConfig(hidden=(32,), seed=3, samples=2, lr=1e-2)  # noqa: E731
    rec1, r1 = fit("mezo", data, cfg(), epochs=2, batch=50)
    rec2, r2 = fit("mezo", data, cfg(), epochs=2, batch=50)
    assert all(p.grad is None and not p.requires_grad for p in r1.net.parameters())
    untimed = lambda rec: [{k: v for k, v in h.items() if k != "seconds"} for h in rec["history"]]  # noqa: E731
    assert untimed(rec1) == untimed(rec2)
    for a, b in zip(r1.net.parameters(), r2.net.parameters(), strict=True):
        assert torch.equal(a, b)
    assert r1.describe()["forward_passes_per_step"] == 4
