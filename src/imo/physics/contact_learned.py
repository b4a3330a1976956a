"""A learned contact classifier: after 0.5 s of states, will ball A begin to touch ball B within
the next 3 s? It answers directly, without rolling a forecaster out, beside three references.

- `states`: gradient-boosted trees (scikit-learn's HistGradientBoostingClassifier) over what
  the context shows. That is the positions and velocities of every ball at the last context
  frame and 1, 5, 15 and 30 frames before it, the masses and the ramp's end points, and the gap,
  closing speed and relative speed of A and B. The balls are listed A first, B second, then the
  others in index order.
- `states+solo`: the same, plus features of each ball's *solo path*. That path is the ball
  alone in the box, pymunk run from its last context state with the walls and the ramp and no
  other ball. The features are the closest approach of each pair of solo paths, when it
  happens, and the closest approach of A and B within 0.5, 1, 1.5, 2 and 3 s. The engine here
  knows the walls but not the other balls, so this is a hybrid. The trees learn what the
  other balls change.
- `resume_touches`: the whole scene rerun in pymunk from the last context states, with every
  ball. It is the simulator in the loop, the ceiling for a model that sees only states. It is
  not exact: pymunk's cached contact impulses are not part of the state (scenes.py).
- `solo_touches`: the rule "the solo paths of A and B come within two radii", with no learning.

Training pairs: in a scene every ordered pair of balls is one example. The balls are drawn
alike, so this is data, not a trick. The score is balanced accuracy (contact.balanced_accuracy).

    clf = fit(train_scenes, ContactConfig(features="states"))
    clf.predict(test_scenes)          # [bool, ...] for balls 0 and 1
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, replace

import numpy as np

from imo.errors import ConfigError
from imo.physics import contact
from imo.physics.scenes import Scene, simulate

FEATURES = ("states", "states+solo")
LAGS = (0, 1, 5, 15, 30)  # frames before the last context frame whose states the trees see
SOLO_WITHIN_S = (0.5, 1.0, 1.5, 2.0, 3.0)


@dataclass(frozen=True)
class ContactConfig:
    features: str = "states"
    context_s: float = 0.5
    horizon_s: float = 3.0
    trees: int = 400           # boosting iterations
    lr: float = 0.05
    leaves: int = 31
    seed: int = 0

    def check(self) -> None:
        if self.features not in FEATURES:
            raise ConfigError(f"unknown contact features {self.features!r}; known: {', '.join(FEATURES)}")
        if self.trees < 1 or self.lr <= 0 or self.leaves < 2:
            raise ConfigError("trees must be >= 1, lr > 0 and leaves >= 2")
        if self.context_s * 60 < max(LAGS) or self.horizon_s <= 0:
            raise ConfigError(f"context_s must cover {max(LAGS)} frames and horizon_s be > 0")


def _context_frame(scene: Scene, context_s: float) -> int:
    c = int(round(context_s * scene.config.hz))
    if c < max(LAGS):
        raise ConfigError(f"the context must be at least {max(LAGS)} frames, got {c}")
    return c


def solo_paths(scene: Scene, context_s: float = 0.5, horizon_s: float = 3.0) -> np.ndarray:
    """(frames, balls, 2): each ball alone in the box from its last context state."""
    c = _context_frame(scene, context_s)
    cfg = replace(scene.config, balls=1, seconds=horizon_s)
    return np.stack([simulate(cfg, scene.walls, scene.masses[k:k + 1],
                              scene.states[c, k:k + 1])[0][:, 0, :2]
                     for k in range(scene.states.shape[1])], axis=1)


def resume_touches(scene: Scene, a: int = 0, b: int = 1, context_s: float = 0.5,
                   horizon_s: float = 3.0) -> bool:
    """Rerun every ball in pymunk from the last context states; do A and B begin to touch?"""
    c = _context_frame(scene, context_s)
    cfg = replace(scene.config, seconds=horizon_s)
    _, ev = simulate(cfg, scene.walls, scene.masses, scene.states[c])
    i, j = sorted((a, b))
    return bool(((ev[:, 1] == i) & (ev[:, 2] == j) & (ev[:, 0] > 0)).any())


def solo_touches(scene: Scene, a: int = 0, b: int = 1, context_s: float = 0.5,
                 horizon_s: float = 3.0, paths: np.ndarray | None = None) -> bool:
    p = solo_paths(scene, context_s, horizon_s) if paths is None else paths
    return bool(np.linalg.norm(p[1:, a] - p[1:, b], axis=-1).min() < 2 * scene.config.radius)


def features(scene: Scene, a: int, b: int, cfg: ContactConfig,
             paths: np.ndarray | None = None) -> np.ndarray:
    """One example's feature vector (see the module docstring)."""
    c = _context_frame(scene, cfg.context_s)
    st = scene.states
    order = [a, b] + [k for k in range(st.shape[1]) if k not in (a, b)]
    parts = [st[c - lag][order].ravel() for lag in LAGS]
    parts += [scene.masses[order], scene.walls[4] if len(scene.walls) > 4 else np.zeros(4)]
    dp, dv = st[c, b, :2] - st[c, a, :2], st[c, b, 2:] - st[c, a, 2:]
    parts.append(np.array([np.linalg.norm(dp), dp @ dv, np.linalg.norm(dv)]))
    if cfg.features == "states+solo":
        p = solo_paths(scene, cfg.context_s, cfg.horizon_s) if paths is None else paths
        hz, r = scene.config.hz, scene.config.radius
        solo = []
        for i, j in [(0, 1), (0, 2), (1, 2)][: 1 if len(order) < 3 else 3]:
            d = np.linalg.norm(p[1:, order[i]] - p[1:, order[j]], axis=-1)
            near = np.nonzero(d < 2 * r)[0]
            solo += [d.min(), d.argmin() / hz, near[0] / hz if len(near) else 2 * cfg.horizon_s]
        d = np.linalg.norm(p[1:, a] - p[1:, b], axis=-1)
        solo += [d[: max(1, int(round(w * hz)))].min() for w in SOLO_WITHIN_S]
        parts.append(np.array(solo))
    return np.concatenate(parts).astype(np.float64)


def _check_scenes(scenes: list[Scene], cfg: ContactConfig) -> int:
    if not scenes:
        raise ConfigError("no scenes")
    balls = {s.states.shape[1] for s in scenes}
    if len(balls) != 1 or min(balls) < 2:
        raise ConfigError(f"contact scenes need one ball count >= 2, got {sorted(balls)}")
    need = int(round((cfg.context_s + cfg.horizon_s) * scenes[0].config.hz))
    if any(len(s.states) <= need for s in scenes):
        raise ConfigError(f"contact scenes must last more than {cfg.context_s + cfg.horizon_s} s")
    return balls.pop()


@dataclass
class ContactClassifier:
    cfg: ContactConfig
    balls: int
    model: object
    train_examples: int
    positive_share: float
    seconds: float

    def predict(self, scenes: list[Scene], a: int = 0, b: int = 1) -> list[bool]:
        if _check_scenes(scenes, self.cfg) != self.balls:
            raise ConfigError(f"the classifier was trained on {self.balls}-ball scenes")
        x = np.stack([features(s, a, b, self.cfg) for s in scenes])
        return [bool(v) for v in self.model.predict(x)]

    def to_dict(self) -> dict:
        return {"config": asdict(self.cfg), "balls": self.balls, "train_examples": self.train_examples,
                "train_positive_share": self.positive_share, "seconds": self.seconds}


def fit(scenes: list[Scene], cfg: ContactConfig | None = None) -> ContactClassifier:
    """Train on every ordered ball pair of `scenes` (labels from their pymunk contacts)."""
    cfg = cfg or ContactConfig()
    cfg.check()
    balls = _check_scenes(scenes, cfg)
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    t0 = time.perf_counter()
    pairs = [(a, b) for a in range(balls) for b in range(balls) if a != b]
    xs, ys = [], []
    for s in scenes:
        paths = solo_paths(s, cfg.context_s, cfg.horizon_s) if cfg.features == "states+solo" else None
        for a, b in pairs:
            xs.append(features(s, a, b, cfg, paths))
            ys.append(contact.touches(s, a, b, cfg.context_s, cfg.horizon_s))
    x, y = np.stack(xs), np.array(ys)
    if y.all() or not y.any():
        raise ConfigError("the training scenes have only one class of contact label")
    model = HistGradientBoostingClassifier(max_iter=cfg.trees, learning_rate=cfg.lr,
                                           max_leaf_nodes=cfg.leaves, early_stopping=False,
                                           random_state=cfg.seed)
    with threadpool_limits(1):
        model.fit(x, y)
    return ContactClassifier(cfg, balls, model, len(y), float(y.mean()), time.perf_counter() - t0)


def evaluate(train: list[Scene], test: list[Scene], trees: int = 400, seed: int = 0) -> dict:
    """Every contact answer on `test` for balls 0 and 1: {name: balanced accuracy}, with the
    class balance and plain accuracies."""
    labels = [contact.touches(s, 0, 1) for s in test]
    answers = {"constant (always yes)": [True] * len(test),
               "constant velocity": [contact.constant_velocity_touches(s, 0, 1) for s in test]}
    info = {}
    for f in FEATURES:
        clf = fit(train, ContactConfig(features=f, trees=trees, seed=seed))
        answers[f"learned ({f})"] = clf.predict(test)
        info[f"learned ({f})"] = clf.to_dict()
    answers["solo paths rule"] = [solo_touches(s) for s in test]
    answers["pymunk resumed (simulator in the loop)"] = [resume_touches(s) for s in test]
    y = np.array(labels)
    return {"test_scenes": len(test), "train_scenes": len(train), "positive_share": float(y.mean()),
            "balanced_accuracy": {k: contact.balanced_accuracy(labels, v) for k, v in answers.items()},
            "accuracy": {k: float((np.array(v) == y).mean()) for k, v in answers.items()},
            "models": info}
