"""Object properties from motion: the mass ratio, friction and elasticity of two boxes, read
from a 1 s trajectory that includes their collision.

Box A (0.5 m square) slides along the floor at 3-6 m/s into box B, which is at rest 0.3-1 m
ahead. Neither box can rotate (infinite moment of inertia). The seed draws the masses (each in
[0.5, 2] kg), the friction coefficient μ in [0.1, 0.6] and the restitution e in [0.1, 0.9]. In
pymunk, a pair's friction and elasticity are the products of the two shapes' values. So the
floor's friction is 1 and its elasticity 0, and each box gets friction μ and elasticity √e. The
trajectory is x and vx of both boxes at 60 Hz, 61 frames.

The answers, scored by mean absolute error on held-out seeds:
- prior: the training mean of each property (knows nothing about the clip);
- physicist: hand-written inversion. μ = −a/g from A's deceleration before the collision, the
  mass ratio m_B/m_A = −Δv_A/Δv_B and e = (v_B' − v_A')/(v_A − v_B) across the collision frame;
- learned: gradient-boosted trees on the 244 numbers of the trajectory, one per property.
The mass ratio is scored as |log(m_B/m_A) error|.

    traj = make_trajectory(5); traj.states.shape == (61, 2, 2)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from imo.errors import ConfigError
from imo.physics import require_pymunk

HZ, FRAMES, G, SIDE = 60, 61, 9.81, 0.5
PROPS = ("log_mass_ratio", "friction", "elasticity")


@dataclass(frozen=True)
class Trajectory:
    seed: int
    states: np.ndarray   # (FRAMES, 2, 2): x, vx of boxes A and B
    truth: dict          # log_mass_ratio, friction, elasticity
    collided: bool

    def features(self) -> np.ndarray:
        return self.states.ravel()


def make_trajectory(seed: int) -> Trajectory:
    if seed < 0:
        raise ConfigError(f"seed must be >= 0, got {seed}")
    pymunk = require_pymunk()
    rng = np.random.default_rng([11, seed])
    ma, mb = rng.uniform(0.5, 2.0, 2)
    mu, e = rng.uniform(0.1, 0.6), rng.uniform(0.1, 0.9)
    v0, gap = rng.uniform(3.0, 6.0), rng.uniform(0.3, 1.0)
    space = pymunk.Space()
    space.gravity = (0.0, -G)
    floor = pymunk.Segment(space.static_body, (-10, 0), (40, 0), 0.0)
    floor.friction, floor.elasticity = 1.0, 0.0
    space.add(floor)
    bodies = []
    for m, x, v in ((ma, 1.0, v0), (mb, 1.0 + SIDE + gap, 0.0)):
        body = pymunk.Body(float(m), float("inf"))
        body.position, body.velocity = (x, SIDE / 2), (v, 0.0)
        shape = pymunk.Poly.create_box(body, (SIDE, SIDE), 0.0)
        shape.friction, shape.elasticity = float(mu), math.sqrt(e)
        space.add(body, shape)
        bodies.append(body)
    hit = [False]
    out = np.empty((FRAMES, 2, 2))
    for f in range(FRAMES):
        for _ in range(2 if f else 0):
            space.step(1 / (2 * HZ))
        for i, b in enumerate(bodies):
            out[f, i] = (b.position.x, b.velocity.x)
        hit[0] = hit[0] or out[f, 1, 1] > 1e-6
    truth = {"log_mass_ratio": float(np.log(mb / ma)), "friction": float(mu), "elasticity": float(e)}
    return Trajectory(seed, out, truth, hit[0])


def physicist(t: Trajectory) -> dict:
    """The hand-written inversion (see the module docstring)."""
    va, vb = t.states[:, 0, 1], t.states[:, 1, 1]
    moved = np.nonzero(vb > 1e-6)[0]
    c = int(moved[0]) if len(moved) else FRAMES - 1      # the first frame after the collision
    acc = np.diff(va[: max(3, c)]).mean() * HZ if c > 2 else 0.0
    mu = float(np.clip(-acc / G, 0.0, 2.0))
    if len(moved) and c >= 1:
        dva, dvb = va[c] - va[c - 1], vb[c] - vb[c - 1]
        ratio = -dva / dvb if dvb > 1e-9 else 1.0
        e = (vb[c] - va[c]) / max(va[c - 1] - vb[c - 1], 1e-9)
    else:
        ratio, e = 1.0, 0.5
    return {"log_mass_ratio": float(np.log(max(ratio, 1e-3))), "friction": mu,
            "elasticity": float(np.clip(e, 0.0, 1.0))}


def evaluate(train: int = 2000, test: int = 500, trees: int = 300, seed: int = 0) -> dict:
    """Mean absolute error of prior, physicist and learned on test seeds 0.., training seeds
    1000000.."""
    if train < 2 or test < 1:
        raise ConfigError("properties need train >= 2 and test >= 1 trajectories")
    from sklearn.ensemble import HistGradientBoostingRegressor
    from threadpoolctl import threadpool_limits

    tr = [make_trajectory(1_000_000 + i) for i in range(train)]
    te = [make_trajectory(i) for i in range(test)]
    xtr, xte = np.stack([t.features() for t in tr]), np.stack([t.features() for t in te])
    out: dict = {"train": train, "test": test,
                 "test_collided_share": float(np.mean([t.collided for t in te])), "mae": {}}
    phys = [physicist(t) for t in te]
    for p in PROPS:
        ytr, yte = np.array([t.truth[p] for t in tr]), np.array([t.truth[p] for t in te])
        with threadpool_limits(1):
            m = HistGradientBoostingRegressor(max_iter=trees, learning_rate=0.05,
                                              early_stopping=False, random_state=seed).fit(xtr, ytr)
        out["mae"][p] = {"prior (training mean)": float(np.abs(ytr.mean() - yte).mean()),
                         "physicist (inversion)": float(np.abs(np.array([q[p] for q in phys]) - yte).mean()),
                         "learned (trees)": float(np.abs(m.predict(xte) - yte).mean())}
    return out
