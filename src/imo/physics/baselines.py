"""Forecasting baselines that need no training, and the surprise they assign to a clip.

- constant velocity: x(t + h) = x(t) + h v(t), with v(t) the last finite-difference velocity;
- ballistic: the same plus gravity, x(t + h) = x(t) + h v(t) - h^2 g / 2 ŷ, no collisions.

`forecast_errors` scores them as WAVE2.md section 11 asks: from 0.5 s of states, the mean
position error at +0.25, 0.5, 1 and 2 s, in ball radii. `surprise` is the largest one-frame
forecast error of a clip (a jump or a vanishing shows up as one large error), the score a
violation-of-expectation test compares within a quadruplet.
"""

from __future__ import annotations

import numpy as np

from imo.physics.quadruplets import Clip, Quadruplet
from imo.physics.scenes import Scene

HORIZONS_S = (0.25, 0.5, 1.0, 2.0)


def predict(history: np.ndarray, h: float, hz: int, gravity: float) -> np.ndarray:
    """history: (frames, balls, 2) positions; the positions h seconds after the last frame."""
    v = (history[-1] - history[-2]) * hz
    out = history[-1] + h * v
    out[..., 1] -= 0.5 * gravity * h * h
    return out


def forecast_errors(scenes: list[Scene], context_s: float = 0.5,
                    horizons_s: tuple[float, ...] = HORIZONS_S) -> dict[str, dict[float, float]]:
    """Mean error in radii, {"constant velocity": {h: err}, "ballistic": {h: err}}."""
    out: dict[str, dict[float, float]] = {"constant velocity": {}, "ballistic": {}}
    for h in horizons_s:
        errs: dict[str, list[float]] = {k: [] for k in out}
        for s in scenes:
            hz, c = s.config.hz, int(round(context_s * s.config.hz))
            target = c + int(round(h * hz))
            if target >= len(s.states):
                continue
            hist, truth = s.states[: c + 1, :, :2], s.states[target, :, :2]
            for name, g in (("constant velocity", 0.0), ("ballistic", s.config.gravity)):
                d = np.linalg.norm(predict(hist, h, hz, g) - truth, axis=-1) / s.config.radius
                errs[name].extend(d.tolist())
        for name in out:
            if errs[name]:
                out[name][h] = float(np.mean(errs[name]))
    return out


def surprise(clip: Clip, hz: int, gravity: float) -> float:
    """The largest one-frame ballistic forecast error of the clip, in the clip's units; a ball
    that appears or vanishes costs as much as the largest error seen for a visible ball + 1."""
    pos, vis = clip.positions, clip.visible
    worst = 0.0
    for t in range(2, len(pos)):
        both = vis[t - 2] & vis[t - 1] & vis[t]
        if both.any():
            pred = predict(pos[t - 2:t], 1.0 / hz, hz, gravity)
            worst = max(worst, float(np.linalg.norm(pred[both] - pos[t][both], axis=-1).max()))
    changes = int((vis[1:] != vis[:-1]).sum())
    return worst + changes * (1.0 + worst)  # appear/vanish outweighs any motion error


def relative_error(quads: list[Quadruplet], hz: int, gravity: float) -> float:
    """IntPhys's relative error: the share of quadruplets where the two impossible clips do not
    score more surprise in total than the two possible ones."""
    wrong = 0
    for q in quads:
        s_pos = sum(surprise(c, hz, gravity) for c in q.possible)
        s_imp = sum(surprise(c, hz, gravity) for c in q.impossible)
        wrong += s_imp <= s_pos
    return wrong / len(quads) if quads else float("nan")
