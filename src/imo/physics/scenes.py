"""Seeded scenes of balls in a walled box with a ramp, simulated by pymunk (Chipmunk2D).

Each scene is built in a fresh pymunk.Space and run from t = 0, never resumed from saved
states: pymunk keeps cached contact impulses that positions and velocities do not capture, so
a resumed run diverges (pymunk issue #181). Run from t = 0, the same seed gives bit-identical
trajectories (measured for pymunk 7.3.1, see WAVE2.md section 11).

    scene = generate(seed=3)          # Scene.states: (frames, balls, 4) = x, y, vx, vy
    scene = generate(3, SceneConfig(balls=1, seconds=1.0))

Units: metres, seconds, kilograms; gravity points down (-y).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from imo.errors import ConfigError
from imo.physics import require_pymunk

WALL_RADIUS = 0.05  # walls are segments with this thickness, so fast balls do not tunnel


@dataclass(frozen=True)
class SceneConfig:
    balls: int = 3
    seconds: float = 3.0
    hz: int = 60                 # frames per second
    substeps: int = 2            # pymunk steps per frame (smaller steps, less overlap at impacts)
    width: float = 10.0
    height: float = 10.0
    radius: float = 0.25
    gravity: float = 9.81
    max_speed: float = 4.0       # initial speeds are uniform in [0, max_speed]
    elasticity: float = 0.8
    friction: float = 0.4
    ramp: bool = True            # a static ramp across the lower-left corner
    mass_min: float = 0.5        # masses are uniform in [mass_min, mass_max] kg
    mass_max: float = 2.0

    def check(self) -> None:
        if not 1 <= self.balls <= 16:
            raise ConfigError(f"balls must be in 1..16, got {self.balls}")
        if self.seconds <= 0 or self.hz < 1 or self.substeps < 1:
            raise ConfigError("seconds must be > 0, hz and substeps >= 1")
        if not 0 < self.radius < min(self.width, self.height) / 8:
            raise ConfigError("radius must be > 0 and small against the box")
        if not 0 <= self.elasticity <= 1 or self.friction < 0:
            raise ConfigError("elasticity must be in [0, 1] and friction >= 0")
        if not 0 < self.mass_min <= self.mass_max:
            raise ConfigError("masses must satisfy 0 < mass_min <= mass_max")

    @property
    def frames(self) -> int:
        return int(round(self.seconds * self.hz)) + 1  # the initial state, then one per 1/hz s


@dataclass(frozen=True)
class Scene:
    seed: int
    config: SceneConfig
    states: np.ndarray   # (frames, balls, 4) float64: x, y, vx, vy every 1/hz s (frame 0 = start)
    masses: np.ndarray   # (balls,)
    walls: np.ndarray    # (segments, 4): x1, y1, x2, y2 of the static segments
    contacts: np.ndarray  # (events, 3) int: frame, i, j (i < j) where balls i and j began to touch

    def to_dict(self) -> dict:
        return {"seed": self.seed, "config": asdict(self.config), "masses": self.masses.tolist(),
                "walls": self.walls.tolist()}


def _walls(cfg: SceneConfig, rng: np.random.Generator) -> np.ndarray:
    w, h = cfg.width, cfg.height
    segs = [(0, 0, w, 0), (w, 0, w, h), (w, h, 0, h), (0, h, 0, 0)]
    if cfg.ramp:
        segs.append((0.0, float(rng.uniform(2, 4)), float(rng.uniform(3, 5)), 0.0))
    return np.array(segs, float)


def _clear_of(p: np.ndarray, seg: np.ndarray, r: float) -> bool:
    """True when a ball of radius r at p does not touch the segment."""
    a, b = seg[:2], seg[2:]
    t = np.clip(np.dot(p - a, b - a) / np.dot(b - a, b - a), 0, 1)
    return float(np.linalg.norm(p - (a + t * (b - a)))) > r


def _above_ramp(p: np.ndarray, ramp: np.ndarray) -> bool:
    # the ramp runs from (0, h0) to (w0, 0); the space under it is closed off
    h0, w0 = ramp[1], ramp[2]
    return p[0] / w0 + p[1] / h0 > 1


def _place(cfg: SceneConfig, rng: np.random.Generator, walls: np.ndarray) -> np.ndarray:
    r, out = cfg.radius, []
    for _ in range(10_000):
        p = rng.uniform([2 * r, 2 * r], [cfg.width - 2 * r, cfg.height - 2 * r])
        if cfg.ramp and not (_above_ramp(p, walls[4]) and _clear_of(p, walls[4], 2 * r)):
            continue
        if all(np.linalg.norm(p - q) > 2.5 * r for q in out):
            out.append(p)
            if len(out) == cfg.balls:
                return np.array(out)
    raise ConfigError(f"cannot place {cfg.balls} balls of radius {r} in the box")


def initial_state(seed: int, cfg: SceneConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(walls, masses, states0 (balls, 4)) drawn from the seed."""
    rng = np.random.default_rng(seed)
    walls = _walls(cfg, rng)
    pos = _place(cfg, rng, walls)
    speed = rng.uniform(0, cfg.max_speed, cfg.balls)
    angle = rng.uniform(0, 2 * np.pi, cfg.balls)
    vel = np.stack([speed * np.cos(angle), speed * np.sin(angle)], axis=1)
    masses = rng.uniform(cfg.mass_min, cfg.mass_max, cfg.balls)
    return walls, masses, np.concatenate([pos, vel], axis=1)


BALL = 1  # pymunk collision type of the balls (walls keep the default, 0)


def simulate(cfg: SceneConfig, walls: np.ndarray, masses: np.ndarray,
             start: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Run a fresh pymunk Space from `start` (balls, 4). Returns the states (frames, balls, 4)
    and the ball-ball contacts (events, 3): the frame whose steps saw balls i < j begin to
    touch, as pymunk's collision handler reports it (exact, not read off the frames)."""
    pymunk = require_pymunk()
    space = pymunk.Space()
    space.gravity = (0.0, -cfg.gravity)
    index: dict = {}
    events: list[tuple[int, int, int]] = []
    frame = [0]

    def begin(arbiter, space, data) -> None:  # the collision is still processed as usual
        i, j = sorted(index[s] for s in arbiter.shapes)
        events.append((frame[0], i, j))

    space.on_collision(BALL, BALL, begin=begin)
    for x1, y1, x2, y2 in walls:
        seg = pymunk.Segment(space.static_body, (x1, y1), (x2, y2), WALL_RADIUS)
        seg.elasticity, seg.friction = cfg.elasticity, cfg.friction
        space.add(seg)
    bodies = []
    for m, (x, y, vx, vy) in zip(masses, start, strict=True):
        body = pymunk.Body(float(m), pymunk.moment_for_circle(float(m), 0, cfg.radius))
        body.position, body.velocity = (float(x), float(y)), (float(vx), float(vy))
        shape = pymunk.Circle(body, cfg.radius)
        shape.elasticity, shape.friction = cfg.elasticity, cfg.friction
        shape.collision_type = BALL
        index[shape] = len(bodies)
        space.add(body, shape)
        bodies.append(body)
    out = np.empty((cfg.frames, len(bodies), 4))
    dt = 1.0 / (cfg.hz * cfg.substeps)
    for f in range(cfg.frames):
        frame[0] = f
        for _ in range(cfg.substeps if f else 0):
            space.step(dt)
        for i, b in enumerate(bodies):
            out[f, i] = (b.position.x, b.position.y, b.velocity.x, b.velocity.y)
    return out, np.array(events, np.int64).reshape(-1, 3)


def generate(seed: int, cfg: SceneConfig | None = None, start: np.ndarray | None = None) -> Scene:
    """The scene of `seed`; `start` replaces its initial states (balls, 4), e.g. to move one ball."""
    cfg = cfg or SceneConfig()
    cfg.check()
    walls, masses, states0 = initial_state(seed, cfg)
    if start is not None:
        states0 = np.asarray(start, float)
    states, contacts = simulate(cfg, walls, masses, states0)
    return Scene(seed, cfg, states, masses, walls, contacts)
