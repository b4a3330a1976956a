"""The balance task: will this stack of blocks stand, and where is its centre of mass?

A stack is 2-4 boxes of uniform density on the floor. Each box sits on the one below, shifted
sideways by a fraction of the lower box's width drawn from the seed. The truth comes from pymunk:
- *stands*: run 2 s; the stack stands when no box's centre moved more than STAND_TOL;
- *centre of mass*: Σ m_i p_i / Σ m_i over pymunk's bodies at t = 0. The masses are pymunk's, from
  the shapes' density and area.

The baselines and the learned models see the boxes as a padded list (x, y, width, height) in the
same order, bottom first:
- stands: the constant majority answer; the statics rule (every sub-stack's centre of mass lies
  over the top face of the box under it), which is hand-written physics; gradient-boosted trees;
- centre of mass: the unweighted mean of the box centres; gradient-boosted trees (one per
  coordinate). The area-weighted mean of the centres would be exact for uniform boxes, so the
  learned row measures how much of that formula the trees find from 2,000 examples.

    s = make_stack(3); s.stands, s.com
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from imo.errors import ConfigError
from imo.physics import require_pymunk

MAX_BLOCKS = 4
STAND_TOL = 0.05   # metres a box centre may move in 2 s for the stack to count as standing
SECONDS = 2.0


@dataclass(frozen=True)
class Stack:
    seed: int
    boxes: np.ndarray    # (n, 4): centre x, centre y, width, height, bottom first
    stands: bool
    com: np.ndarray      # (2,)
    moved: float         # the largest centre displacement in SECONDS, metres

    def features(self) -> np.ndarray:
        f = np.zeros(4 * MAX_BLOCKS + 1)
        f[: self.boxes.size] = self.boxes.ravel()
        f[-1] = len(self.boxes)
        return f


def _boxes(seed: int) -> np.ndarray:
    rng = np.random.default_rng([7, seed])
    n = int(rng.integers(2, MAX_BLOCKS + 1))
    out, x, y = [], 5.0, 0.0
    for i in range(n):
        w, h = rng.uniform(0.4, 1.6), rng.uniform(0.2, 0.6)
        if i:
            x = out[-1][0] + rng.uniform(-0.65, 0.65) * out[-1][2]
        out.append((x, y + h / 2, w, h))
        y += h
    return np.array(out)


def simulate(boxes: np.ndarray) -> tuple[bool, np.ndarray, float]:
    pymunk = require_pymunk()
    space = pymunk.Space()
    space.gravity = (0.0, -9.81)
    floor = pymunk.Segment(space.static_body, (-50, 0), (60, 0), 0.0)
    floor.friction = 0.8
    space.add(floor)
    bodies = []
    for x, y, w, h in boxes:
        body = pymunk.Body()
        body.position = (float(x), float(y))
        shape = pymunk.Poly.create_box(body, (float(w), float(h)), 0.0)
        shape.density, shape.friction, shape.elasticity = 1.0, 0.8, 0.0
        space.add(body, shape)
        bodies.append(body)
    m = np.array([b.mass for b in bodies])
    p0 = np.array([(b.position.x, b.position.y) for b in bodies])
    com = (m[:, None] * p0).sum(0) / m.sum()
    for _ in range(int(SECONDS * 120)):
        space.step(1 / 120)
    p1 = np.array([(b.position.x, b.position.y) for b in bodies])
    moved = float(np.linalg.norm(p1 - p0, axis=1).max())
    return moved < STAND_TOL, com, moved


def make_stack(seed: int) -> Stack:
    if seed < 0:
        raise ConfigError(f"seed must be >= 0, got {seed}")
    boxes = _boxes(seed)
    stands, com, moved = simulate(boxes)
    return Stack(seed, boxes, stands, com, moved)


def statics_rule(boxes: np.ndarray) -> bool:
    """Stands when, for every box, the centre of mass of the boxes above it lies over its top."""
    area = boxes[:, 2] * boxes[:, 3]
    for k in range(len(boxes) - 1):
        above = slice(k + 1, None)
        cx = (area[above] * boxes[above, 0]).sum() / area[above].sum()
        if abs(cx - boxes[k, 0]) > boxes[k, 2] / 2:
            return False
    return True


def evaluate(train: int = 2000, test: int = 500, trees: int = 300, seed: int = 0) -> dict:
    """Stands (balanced accuracy) and centre of mass (mean error, metres) on stacks test seeds
    0.., with learned models trained on seeds 1000000.."""
    if train < 2 or test < 1:
        raise ConfigError("balance needs train >= 2 and test >= 1 stacks")
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from threadpoolctl import threadpool_limits

    from imo.physics.contact import balanced_accuracy

    tr = [make_stack(1_000_000 + i) for i in range(train)]
    te = [make_stack(i) for i in range(test)]
    xtr, xte = np.stack([s.features() for s in tr]), np.stack([s.features() for s in te])
    ytr, yte = np.array([s.stands for s in tr]), np.array([s.stands for s in te])
    ctr, cte = np.stack([s.com for s in tr]), np.stack([s.com for s in te])
    kw = {"max_iter": trees, "learning_rate": 0.05, "early_stopping": False, "random_state": seed}
    with threadpool_limits(1):
        clf = HistGradientBoostingClassifier(**kw).fit(xtr, ytr)
        com_hat = np.stack([HistGradientBoostingRegressor(**kw).fit(xtr, ctr[:, d]).predict(xte)
                            for d in range(2)], axis=1)
    majority = bool(ytr.mean() >= 0.5)
    stands = {"constant (majority)": [majority] * test,
              "statics rule": [statics_rule(s.boxes) for s in te],
              "learned (trees)": [bool(v) for v in clf.predict(xte)]}
    unweighted = np.stack([s.boxes[:, :2].mean(0) for s in te])
    err = lambda c: float(np.linalg.norm(c - cte, axis=1).mean())  # noqa: E731
    return {"train": train, "test": test, "test_standing_share": float(yte.mean()),
            "stands_balanced_accuracy": {k: balanced_accuracy(list(yte), v) for k, v in stands.items()},
            "com_error_m": {"unweighted mean of box centres": err(unweighted),
                            "learned (trees)": err(com_hat)}}
