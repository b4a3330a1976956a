"""Energy-gain violation-of-expectation quadruplets, built like quadruplets.py's minimal sets.

Possible clips: scene A, and scene B, the same seed rerun from t = 0 with ball k started
elsewhere and faster, chosen so that in free flight it reaches A's position at frame t with
`factor` times A's velocity there. Impossible clips: A up to t, then B (ball k speeds up in
mid-air: energy from nowhere), and B up to t, then A (it slows down for no reason). At every frame
the impossible pair shows the same two frames as the possible pair. Ball k's position is
continuous at t, to floating-point error, so the splice is no teleport. Only its speed jumps.

Ball k must be in free flight up to t in both A and B: it touches nothing there, so the other
balls move the same in A and B, and Chipmunk's free step (learned.free_step's formula) gives
its path exactly.

    quad = energy_gain(generate(4), ball=0, t=20)
    quad.impossible[0]     # the energy-gain clip
"""

from __future__ import annotations

import numpy as np

from imo.errors import ConfigError
from imo.physics.quadruplets import Clip, Quadruplet, _check, _minimal_set
from imo.physics.scenes import Scene, _above_ramp, _clear_of, generate


def _free_path(cfg, start: np.ndarray, frames: int) -> np.ndarray:
    """(frames, 2): a ball's free-flight positions under Chipmunk's update."""
    dt = 1.0 / (cfg.hz * cfg.substeps)
    n = np.arange(frames)[:, None] * cfg.substeps
    p = start[None, :2] + n * start[None, 2:] * dt
    p[:, 1] -= cfg.gravity * dt * dt * (n[:, 0] * (n[:, 0] - 1)) / 2
    return p


def _free_until(scene: Scene, ball: int) -> int:
    """The last frame up to which the ball follows free flight (to 1e-9 m)."""
    path = _free_path(scene.config, scene.states[0, ball], len(scene.states))
    off = np.nonzero(np.linalg.norm(path - scene.states[:, ball, :2], axis=1) > 1e-9)[0]
    return (off[0] - 1) if len(off) else len(scene.states) - 1


def _fits(scene: Scene, ball: int, p: np.ndarray) -> bool:
    cfg = scene.config
    r = cfg.radius
    if not (2 * r < p[0] < cfg.width - 2 * r and 2 * r < p[1] < cfg.height - 2 * r):
        return False
    if cfg.ramp and not (_above_ramp(p, scene.walls[4]) and _clear_of(p, scene.walls[4], 2 * r)):
        return False
    others = np.delete(scene.states[0, :, :2], ball, axis=0)
    return bool((np.linalg.norm(others - p, axis=1) > 2.5 * r).all())


def energy_gain(scene: Scene, ball: int, t: int = 20, factor: float = 1.5) -> Quadruplet:
    """The energy-gain minimal set at frame t or, if ball k is not free that long, the latest
    earlier frame (>= 3) where one can be built."""
    _check(scene, ball, t)
    if factor <= 1:
        raise ConfigError(f"factor must be > 1, got {factor}")
    cfg = scene.config
    dt = 1.0 / (cfg.hz * cfg.substeps)
    for tt in range(min(t, _free_until(scene, ball) - 2), 2, -1):
        n = tt * cfg.substeps
        v_t = scene.states[tt, ball, 2:] * factor
        v0 = v_t + np.array([0.0, n * cfg.gravity * dt])
        p0 = scene.states[tt, ball, :2] - n * v0 * dt + np.array(
            [0.0, cfg.gravity * dt * dt * n * (n - 1) / 2])
        if not _fits(scene, ball, p0):
            continue
        start = scene.states[0].copy()
        start[ball] = (*p0, *v0)
        other = generate(scene.seed, cfg, start=start)
        if _free_until(other, ball) < tt + 2:
            continue
        keep = [k for k in range(scene.states.shape[1]) if k != ball]
        if not np.array_equal(other.states[: tt + 1, keep], scene.states[: tt + 1, keep]):
            continue
        if np.linalg.norm(other.states[tt, ball, :2] - scene.states[tt, ball, :2]) > 1e-6:
            continue
        seen = np.ones(scene.states.shape[:2], bool)
        return _minimal_set("energy", scene, ball, tt, Clip(scene.states[:, :, :2], seen),
                            Clip(other.states[:, :, :2], seen))
    raise ConfigError(f"scene {scene.seed}: ball {ball} is never free long enough for an "
                      "energy-gain quadruplet")


def energy_surprise(clip: Clip, hz: int, gravity: float) -> float:
    """The largest one-frame rise of a ball's energy per unit mass, |v|^2 / 2 + g y, with v
    from finite differences: a baseline that knows energy should not grow in mid-air."""
    v = np.diff(clip.positions, axis=0) * hz
    e = 0.5 * (v ** 2).sum(-1) + gravity * clip.positions[1:, :, 1]
    return float(max(0.0, np.diff(e, axis=0).max())) if len(e) > 1 else 0.0
