"""Violation-of-expectation quadruplets in the manner of IntPhys (Riochet et al. 2018,
arXiv:1803.07616): two possible clips and two impossible ones built from the same frames.

IntPhys's "minimal sets" make the impossible clips out of frames the possible clips also
show, so that no single frame tells them apart; only how frames follow each other does. Here a
clip is states, not video: positions (frames, balls, 2) and a visibility mask (frames, balls).
At every frame t the pair of impossible frames equals the pair of possible frames:

- vanish:   possible = ball k seen throughout / never seen; impossible = seen, then gone at t /
            absent, then appearing at t (object permanence).
- teleport: possible = scene A / scene B, where B starts ball k elsewhere; impossible = A up to
            t then B / B up to t then A (spatio-temporal continuity).

    quad = vanish(generate(4), ball=0, t=90)
    quad.possible[0].positions, quad.impossible[1].visible
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from imo.errors import ConfigError
from imo.physics.scenes import Scene, _place, generate, initial_state


@dataclass(frozen=True)
class Clip:
    positions: np.ndarray  # (frames, balls, 2)
    visible: np.ndarray    # (frames, balls) bool

    def frame(self, t: int) -> bytes:
        """Frame t as bytes (what is seen: visible balls' positions and the mask)."""
        return self.visible[t].tobytes() + np.where(self.visible[t, :, None],
                                                    self.positions[t], 0.0).tobytes()


@dataclass(frozen=True)
class Quadruplet:
    kind: str
    seed: int
    ball: int
    t: int                              # the first frame after the event
    possible: tuple[Clip, Clip]
    impossible: tuple[Clip, Clip]


def _splice(a: Clip, b: Clip, t: int) -> Clip:
    return Clip(np.concatenate([a.positions[:t], b.positions[t:]]),
                np.concatenate([a.visible[:t], b.visible[t:]]))


def _check(scene: Scene, ball: int, t: int) -> None:
    frames, balls = scene.states.shape[:2]
    if not 0 <= ball < balls:
        raise ConfigError(f"ball {ball} out of range (the scene has {balls})")
    if not 0 < t < frames:
        raise ConfigError(f"t must be in 1..{frames - 1}, got {t}")


def _minimal_set(kind, scene, ball, t, a: Clip, b: Clip) -> Quadruplet:
    return Quadruplet(kind, scene.seed, ball, t, (a, b), (_splice(a, b, t), _splice(b, a, t)))


def vanish(scene: Scene, ball: int, t: int) -> Quadruplet:
    _check(scene, ball, t)
    pos = scene.states[:, :, :2]
    seen = np.ones(pos.shape[:2], bool)
    unseen = seen.copy()
    unseen[:, ball] = False
    return _minimal_set("vanish", scene, ball, t, Clip(pos, seen), Clip(pos, unseen))


def teleport(scene: Scene, ball: int, t: int) -> Quadruplet:
    """B is the same seed rerun from t = 0 with ball k started at another free place."""
    _check(scene, ball, t)
    cfg = scene.config
    _, _, start = initial_state(scene.seed, cfg)
    rng = np.random.default_rng([scene.seed, ball, 1])
    for _ in range(100):  # a new place for ball k, clear of the others and at least 4 radii away
        p = _place(replace(cfg, balls=1), rng, scene.walls)[0]
        others = np.delete(start[:, :2], ball, axis=0)
        if (np.linalg.norm(others - p, axis=1) > 2.5 * cfg.radius).all() and \
                np.linalg.norm(p - start[ball, :2]) > 4 * cfg.radius:
            break
    else:
        raise ConfigError(f"scene {scene.seed}: no free place to move ball {ball} to")
    moved = start.copy()
    moved[ball, :2] = p
    other = generate(scene.seed, cfg, start=moved)
    seen = np.ones(scene.states.shape[:2], bool)
    return _minimal_set("teleport", scene, ball, t, Clip(scene.states[:, :, :2], seen),
                        Clip(other.states[:, :, :2], seen))
