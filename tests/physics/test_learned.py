"""The learned forecasters: the free step is Chipmunk's own, the set models treat balls alike,
training learns and repeats under its seed, and the scores come out in the right shapes."""

import numpy as np
import pytest
import torch

pytest.importorskip("pymunk")

from imo.errors import ConfigError  # noqa: E402
from imo.physics import learned  # noqa: E402
from imo.physics.scenes import SceneConfig, generate  # noqa: E402

CFG = SceneConfig(balls=3, seconds=3.5)


def _touching_nothing(scene, t, margin=0.3):
    p = scene.states[t, :, :2]
    d, dist = learned._wall_geometry(torch.tensor(p[None]), torch.tensor(scene.walls[None]))
    far_walls = bool((dist > scene.config.radius + margin).all())
    pair = np.linalg.norm(p[:, None] - p[None], axis=-1) + np.eye(len(p)) * 99
    return far_walls and bool((pair > 2 * scene.config.radius + margin).all())


def test_free_step_is_chipmunks_step_in_free_flight():
    scene = generate(5, CFG)
    frames = [t for t in range(len(scene.states) - 1) if _touching_nothing(scene, t)]
    assert len(frames) > 20
    s = torch.tensor(scene.states[frames])
    pred = learned.free_step(s, CFG.hz, CFG.substeps, CFG.gravity)
    np.testing.assert_allclose(pred.numpy(), scene.states[[t + 1 for t in frames]], atol=1e-9)
    # a ballistic step (x + h v - g h^2 / 2) is not: it misses Chipmunk's substep order
    h = 1 / CFG.hz
    ballistic = s[..., 1] + h * s[..., 3] - 0.5 * CFG.gravity * h * h
    assert (ballistic - torch.tensor(scene.states[[t + 1 for t in frames]])[..., 1]).abs().max() > 1e-4


@pytest.mark.parametrize("model", ["in", "transformer"])
def test_set_models_treat_balls_alike(model):
    torch.manual_seed(0)
    net = learned.build(learned.ForecastConfig(model=model, hidden=16, layers=1), 3)
    data = learned.frames([generate(1, CFG)])
    s, m, w, mat = data.state[:8], data.mass[:8], data.walls[:8], data.material[:8]
    perm = torch.tensor([2, 0, 1])
    out = net(s, m, w, mat, data.radius)
    out_p = net(s[:, perm], m[:, perm], w, mat, data.radius)
    torch.testing.assert_close(out_p, out[:, perm], atol=1e-5, rtol=1e-5)


def test_fit_learns_repeats_and_scores():
    scenes = [generate(s, CFG) for s in range(6)]
    cfg = learned.ForecastConfig(model="in", hidden=32, steps=300, batch=64)
    a = learned.fit(scenes, cfg)
    d = learned.frames(scenes)  # one-step velocity error on the training frames
    model_err = (a.step(d.state, d.mass, d.walls, d.material) - d.nxt)[..., 2:].square().mean()
    free_err = (learned.free_step(d.state, CFG.hz, CFG.substeps, CFG.gravity) - d.nxt)[..., 2:].square().mean()
    assert model_err < 0.7 * free_err  # it has learned something about the contacts
    b = learned.fit(scenes, cfg)
    assert a.losses == b.losses  # the same seed gives the same run
    errors = learned.forecast_errors(a, scenes[:3])
    assert list(errors) == [0.25, 0.5, 1.0, 2.0] and all(e >= 0 for e in errors.values())
    roll = a.rollout(*learned._starts(scenes[:2], 30), 5)
    assert roll.shape == (6, 2, 3, 4) and torch.equal(roll[0], torch.tensor(
        np.stack([s.states[30] for s in scenes[:2]]), dtype=torch.float32))
    answers = learned.rollout_touches(a, scenes[:3])
    assert len(answers) == 3 and all(isinstance(v, bool) for v in answers)
    with pytest.raises(ConfigError, match="shorter than"):
        learned.forecast_errors(a, [generate(0, SceneConfig(seconds=1.0))])


def test_flops_and_bad_config():
    scenes = [generate(0, SceneConfig(seconds=0.5))]
    flops = {m: learned.step_flops(learned.build(learned.ForecastConfig(model=m, hidden=16), 3),
                                   scenes, 8) for m in learned.MODELS}
    assert all(f > 0 for f in flops.values()) and flops["in"] > flops["mlp"]
    with pytest.raises(ConfigError, match="unknown model"):
        learned.ForecastConfig(model="gnn").check()
