"""Contact prediction in the manner of Physion (Bear et al. 2021, arXiv:2106.08261): after watching
`context_s` seconds of a scene, will ball A touch ball B within the next `horizon_s` seconds?

The truth comes from pymunk's collision handler (Scene.contacts), not from the frames. The
baseline extrapolates both balls at constant velocity from the last context frame and answers
yes when their closest approach within the horizon is under two radii. Gravity accelerates both
balls alike, so it leaves their relative motion and this baseline unchanged; walls and other
balls are ignored.

    labels = [touches(s, 0, 1, 0.5, 3.0) for s in scenes]
    guesses = [constant_velocity_touches(s, 0, 1, 0.5, 3.0) for s in scenes]
    balanced_accuracy(labels, guesses)
"""

from __future__ import annotations

import numpy as np

from imo.physics.scenes import Scene


def _frames(scene: Scene, context_s: float, horizon_s: float) -> tuple[int, int]:
    hz = scene.config.hz
    return int(round(context_s * hz)), int(round((context_s + horizon_s) * hz))


def touches(scene: Scene, a: int, b: int, context_s: float = 0.5, horizon_s: float = 3.0) -> bool:
    """True when balls a and b begin a contact after the context and within the horizon."""
    c0, c1 = _frames(scene, context_s, horizon_s)
    if c1 >= len(scene.states):
        raise ValueError(f"scene {scene.seed} is shorter than {context_s + horizon_s} s")
    i, j = sorted((a, b))
    ev = scene.contacts
    return bool(((ev[:, 1] == i) & (ev[:, 2] == j) & (ev[:, 0] > c0) & (ev[:, 0] <= c1)).any())


def constant_velocity_touches(scene: Scene, a: int, b: int, context_s: float = 0.5,
                              horizon_s: float = 3.0) -> bool:
    c0, _ = _frames(scene, context_s, horizon_s)
    hz = scene.config.hz
    p = scene.states[c0, :, :2]
    v = (scene.states[c0, :, :2] - scene.states[c0 - 1, :, :2]) * hz
    dp, dv = p[b] - p[a], v[b] - v[a]
    # |dp + t dv| is smallest at t* = -dp.dv / |dv|^2, clipped to the horizon
    t = 0.0 if not dv.any() else float(np.clip(-dp @ dv / (dv @ dv), 0.0, horizon_s))
    return bool(np.linalg.norm(dp + t * dv) < 2 * scene.config.radius)


def balanced_accuracy(labels: list[bool], guesses: list[bool]) -> float:
    """The mean of the accuracy on positives and on negatives (0.5 for any constant answer)."""
    y, g = np.asarray(labels, bool), np.asarray(guesses, bool)
    parts = [float((g[y == k] == k).mean()) for k in (True, False) if (y == k).any()]
    return float(np.mean(parts)) if parts else float("nan")
