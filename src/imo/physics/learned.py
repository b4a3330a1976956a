"""Learned forecasters of the pymunk scenes: one-frame simulators rolled out from the last
context frame, in three shapes that see the same inputs.

Every model predicts the correction to a free-flight step. `free_step` moves each ball as
Chipmunk would with no contact (each substep moves by the velocity, then applies gravity), so
in free flight the true correction is exactly zero. The models only have to learn the
contacts: walls, the ramp and the other balls. Inputs per ball are position, velocity and mass.
Every scene also has its friction and elasticity, and the walls as segments.

- `mlp`: every ball's state, the ramp and the materials flattened into one vector, then an MLP.
  It has no notion of objects or relations.
- `in`: an interaction network (Battaglia et al. 2016, arXiv:1612.00222). A relation MLP reads
  each ordered ball pair: offset, gap, relative velocity, masses. A wall MLP reads each
  ball-segment pair: the offset from the segment's closest point, the gap and the normal
  speed. An object MLP maps a ball's velocity and mass and the summed effects to its correction.
  The object MLP never sees the absolute position, so the model is the same everywhere in the box.
  Relations act only across gaps under CUTOFF (0.5 m, more than a fast ball moves in a frame):
  a ball with nothing that near is in free flight and gets no correction at all.
- `transformer`: one token per ball and per wall segment; self-attention over them, and the
  correction is read off the ball tokens (the "no physics prior" set model).

Training is one-frame regression on corrections scaled to unit variance, with small Gaussian
noise on the inputs so that rollouts can recover from their own errors (Sanchez-Gonzalez et al.
2020, arXiv:2002.09405).

    model = fit(train_scenes, ForecastConfig(model="in"))
    forecast_errors(model, test_scenes)   # {0.25: radii, 0.5: ..., 1.0: ..., 2.0: ...}
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from imo.errors import ConfigError
from imo.physics.baselines import HORIZONS_S
from imo.physics.scenes import WALL_RADIUS, Scene

MODELS = ("mlp", "in", "transformer")
POS, VEL = 5.0, 4.0  # input scales: metres, metres per second
CUTOFF = 0.5  # metres: the interaction network's relations act only across gaps below this


@dataclass(frozen=True)
class ForecastConfig:
    model: str = "in"
    hidden: int = 64          # MLP widths; the transformer's model width
    layers: int = 2           # transformer layers (the MLPs have two hidden layers)
    steps: int = 3000         # gradient steps (Adam, cosine decay to 0)
    batch: int = 128          # frames per step
    lr: float = 3e-3
    noise_pos: float = 3e-4   # input noise, metres (well under the 3 mm spread of the corrections)
    noise_vel: float = 3e-3   # input noise, metres per second
    seed: int = 0

    def check(self) -> None:
        if self.model not in MODELS:
            raise ConfigError(f"unknown model {self.model!r}; known: {', '.join(MODELS)}")
        if min(self.hidden, self.layers, self.steps, self.batch) < 1 or self.lr <= 0:
            raise ConfigError("hidden, layers, steps and batch must be >= 1, lr > 0")


@dataclass
class Frames:
    """Scenes cut into frames: state (N, B, 4), nxt (N, B, 4), mass (N, B), walls (N, W, 4),
    material (N, 2) = friction, elasticity; the shared constants radius, hz, substeps, gravity."""
    state: torch.Tensor
    nxt: torch.Tensor
    mass: torch.Tensor
    walls: torch.Tensor
    material: torch.Tensor
    radius: float
    hz: int
    substeps: int
    gravity: float


def frames(scenes: list[Scene], first: int = 0) -> Frames:
    """Every (frame, next frame) pair from frame `first` on, of scenes sharing one config shape."""
    c = scenes[0].config
    s, n, m, w, mat = [], [], [], [], []
    for sc in scenes:
        k = len(sc.states) - 1 - first
        s.append(sc.states[first:-1])
        n.append(sc.states[first + 1:])
        m.append(np.repeat(sc.masses[None], k, 0))
        w.append(np.repeat(sc.walls[None], k, 0))
        mat.append(np.repeat([[sc.config.friction, sc.config.elasticity]], k, 0))
    t = [torch.as_tensor(np.concatenate(a), dtype=torch.float32) for a in (s, n, m, w, mat)]
    return Frames(*t, radius=c.radius, hz=c.hz, substeps=c.substeps, gravity=c.gravity)


def free_step(state: torch.Tensor, hz: int, substeps: int, gravity: float) -> torch.Tensor:
    """One frame with no contacts, integrated as Chipmunk does: per substep dt, x += v dt, then
    v += g dt. Over n substeps: v' = v + n g dt, x' = x + n v dt + g dt^2 n (n - 1) / 2."""
    dt = 1.0 / (hz * substeps)
    out = state.clone()
    out[..., 0:2] += substeps * dt * state[..., 2:4]
    out[..., 1] -= gravity * dt * dt * substeps * (substeps - 1) / 2
    out[..., 3] -= gravity * dt * substeps
    return out


def _mlp(inp: int, hidden: int, out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(inp, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                         nn.Linear(hidden, out))


def _wall_geometry(pos: torch.Tensor, walls: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """pos (N, B, 2), walls (N, W, 4) -> offset from each segment's closest point (N, B, W, 2)
    and its length (N, B, W)."""
    a, b = walls[:, None, :, 0:2], walls[:, None, :, 2:4]
    ab = b - a
    t = (((pos[:, :, None] - a) * ab).sum(-1) / (ab * ab).sum(-1)).clamp(0, 1)
    d = pos[:, :, None] - (a + t[..., None] * ab)
    return d, d.norm(dim=-1)


class MLPForecaster(nn.Module):
    def __init__(self, balls: int, hidden: int):
        super().__init__()
        self.balls = balls
        self.net = _mlp(balls * 5 + 4 + 2, hidden, balls * 4)

    def forward(self, state, mass, walls, material, radius):
        n = state.shape[0]
        x = torch.cat([state[..., :2] / POS, state[..., 2:] / VEL, mass[..., None]], -1)
        ramp = walls[:, 4] / POS if walls.shape[1] > 4 else torch.zeros(n, 4)
        return self.net(torch.cat([x.reshape(n, -1), ramp, material], -1)).view(n, self.balls, 4)


class InteractionNetwork(nn.Module):
    def __init__(self, hidden: int):
        super().__init__()
        self.relation = _mlp(2 + 1 + 2 + 2 + 2, hidden, hidden)   # ball pairs
        self.wall = _mlp(2 + 1 + 2 + 1 + 2, hidden, hidden)       # ball-segment pairs
        self.object = _mlp(2 + 1 + 2 * hidden, hidden, 4)

    def forward(self, state, mass, walls, material, radius):
        n, b = state.shape[:2]
        pos, vel = state[..., :2], state[..., 2:] / VEL
        mat = material[:, None, None, :]
        # ball pairs (i receives from j), the diagonal masked out
        dp = pos[:, None, :] - pos[:, :, None]                             # (N, B, B, 2): j - i
        gap = dp.norm(dim=-1, keepdim=True) - 2 * radius
        dv = vel[:, None, :] - vel[:, :, None]
        m_i, m_j = mass[:, :, None, None].expand(n, b, b, 1), mass[:, None, :, None].expand(n, b, b, 1)
        rel = torch.cat([dp, gap, dv, m_i, m_j, mat.expand(n, b, b, 2)], -1)
        near = (gap < CUTOFF) & ~torch.eye(b, dtype=torch.bool)[None, :, :, None]
        e_balls = (self.relation(rel) * near).sum(2)                          # (N, B, H)
        d, dist = _wall_geometry(pos, walls)                                # (N, B, W, 2), (N, B, W)
        normal = d / dist[..., None].clamp_min(1e-6)
        w = walls.shape[1]
        vn = (vel[:, :, None] * normal).sum(-1, keepdim=True)
        wall_gap = (dist - radius - WALL_RADIUS)[..., None]
        wall_in = torch.cat([d, wall_gap, vel[:, :, None].expand(n, b, w, 2), vn,
                             mat.expand(n, b, w, 2)], -1)
        near_wall = wall_gap < CUTOFF
        e_walls = (self.wall(wall_in) * near_wall).sum(2)                    # (N, B, H)
        # a ball with nothing within reach is in free flight: its correction is exactly zero
        touching = near.any(2) | near_wall.any(2)                            # (N, B, 1)
        return self.object(torch.cat([vel, mass[..., None], e_balls, e_walls], -1)) * touching


class TransformerForecaster(nn.Module):
    def __init__(self, hidden: int, layers: int):
        super().__init__()
        self.embed_ball = nn.Linear(5 + 2, hidden)
        self.embed_wall = nn.Linear(4 + 2, hidden)
        layer = nn.TransformerEncoderLayer(hidden, nhead=4, dim_feedforward=2 * hidden,
                                           dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        self.out = nn.Linear(hidden, 4)

    def forward(self, state, mass, walls, material, radius):
        n, b = state.shape[:2]
        w = walls.shape[1]
        balls = torch.cat([state[..., :2] / POS, state[..., 2:] / VEL, mass[..., None],
                           material[:, None].expand(n, b, 2)], -1)
        segs = torch.cat([walls / POS, material[:, None].expand(n, w, 2)], -1)
        h = self.encoder(torch.cat([self.embed_ball(balls), self.embed_wall(segs)], 1))
        return self.out(h[:, :b])


def build(cfg: ForecastConfig, balls: int) -> nn.Module:
    cfg.check()
    if cfg.model == "mlp":
        return MLPForecaster(balls, cfg.hidden)
    if cfg.model == "in":
        return InteractionNetwork(cfg.hidden)
    return TransformerForecaster(cfg.hidden, cfg.layers)


@dataclass
class Forecaster:
    """A trained model with the scale of its corrections and the scene constants it was fit on."""
    net: nn.Module
    scale: torch.Tensor     # (4,) standard deviation of the corrections
    config: ForecastConfig
    radius: float
    hz: int
    substeps: int
    gravity: float
    seconds: float = 0.0
    losses: tuple[float, ...] = ()

    @property
    def parameters(self) -> int:
        return sum(p.numel() for p in self.net.parameters())

    @torch.no_grad()
    def step(self, state, mass, walls, material) -> torch.Tensor:
        free = free_step(state, self.hz, self.substeps, self.gravity)
        return free + self.net(state, mass, walls, material, self.radius) * self.scale

    @torch.no_grad()
    def rollout(self, state, mass, walls, material, frames: int) -> torch.Tensor:
        """(frames + 1, N, B, 4): the start state, then each predicted frame."""
        out = [state]
        for _ in range(frames):
            out.append(self.step(out[-1], mass, walls, material))
        return torch.stack(out)

    def to_dict(self) -> dict:
        return {"config": asdict(self.config), "parameters": self.parameters,
                "train_seconds": round(self.seconds, 2)}


def fit(scenes: list[Scene], cfg: ForecastConfig) -> Forecaster:
    """Train `cfg.model` on every frame pair of `scenes` (one-frame corrections, MSE)."""
    cfg.check()
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    data = frames(scenes)
    c = scenes[0].config
    net = build(cfg, data.state.shape[1])
    target = data.nxt - free_step(data.state, c.hz, c.substeps, c.gravity)
    scale = target.reshape(-1, 4).std(0).clamp_min(1e-6)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, cfg.steps)
    noise = torch.tensor([cfg.noise_pos] * 2 + [cfg.noise_vel] * 2)
    losses = []
    t0 = time.perf_counter()
    for _ in range(cfg.steps):
        i = torch.randint(0, len(data.state), (cfg.batch,), generator=gen)
        s = data.state[i] + torch.randn(data.state[i].shape, generator=gen) * noise
        # the target is the step from the noisy state to the true next state
        y = (data.nxt[i] - free_step(s, c.hz, c.substeps, c.gravity)) / scale
        pred = net(s, data.mass[i], data.walls[i], data.material[i], c.radius)
        loss = nn.functional.mse_loss(pred, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
    net.eval()
    return Forecaster(net, scale, cfg, c.radius, c.hz, c.substeps, c.gravity,
                      time.perf_counter() - t0, tuple(losses))


def _starts(scenes: list[Scene], context: int):
    st = torch.as_tensor(np.stack([s.states[context] for s in scenes]), dtype=torch.float32)
    mass = torch.as_tensor(np.stack([s.masses for s in scenes]), dtype=torch.float32)
    walls = torch.as_tensor(np.stack([s.walls for s in scenes]), dtype=torch.float32)
    mat = torch.tensor([[s.config.friction, s.config.elasticity] for s in scenes])
    return st, mass, walls, mat


def forecast_errors(model: Forecaster, scenes: list[Scene], context_s: float = 0.5,
                    horizons_s: tuple[float, ...] = HORIZONS_S) -> dict[float, float]:
    """Mean position error in radii at each horizon, rolling out from the last context frame."""
    hz = scenes[0].config.hz
    c = int(round(context_s * hz))
    ks = [int(round(h * hz)) for h in horizons_s]
    if c + max(ks) >= len(scenes[0].states):
        raise ConfigError(f"scenes are shorter than {context_s + max(horizons_s)} s")
    roll = model.rollout(*_starts(scenes, c), max(ks)).numpy()
    truth = np.stack([s.states for s in scenes], 1)  # (frames, N, B, 4)
    out = {}
    for h, k in zip(horizons_s, ks, strict=True):
        d = np.linalg.norm(roll[k, ..., :2] - truth[c + k, ..., :2], axis=-1)
        out[h] = float(d.mean() / scenes[0].config.radius)
    return out


def rollout_touches(model: Forecaster, scenes: list[Scene], a: int = 0, b: int = 1,
                    context_s: float = 0.5, horizon_s: float = 3.0, margin: float = 0.0) -> list[bool]:
    """Contact prediction by simulation: roll the model out over the horizon and answer yes when
    balls a and b come within two radii (+ margin, in radii) of each other."""
    hz = scenes[0].config.hz
    c, k = int(round(context_s * hz)), int(round(horizon_s * hz))
    roll = model.rollout(*_starts(scenes, c), k)[1:]
    gap = (roll[..., a, :2] - roll[..., b, :2]).norm(dim=-1).min(0).values  # (N,)
    return (gap < (2 + margin) * scenes[0].config.radius).tolist()


def step_flops(model: Forecaster | nn.Module, scenes: list[Scene], batch: int) -> int:
    """FLOPs of one training step (forward and backward) on `batch` frames, as torch's
    FlopCounterMode counts them (matrix products and attention; element-wise work is left out)."""
    from torch.utils.flop_counter import FlopCounterMode

    net = model.net if isinstance(model, Forecaster) else model
    data = frames(scenes[:1])
    i = torch.arange(batch) % len(data.state)
    was = net.training
    net.train()
    with FlopCounterMode(display=False) as counter:
        out = net(data.state[i], data.mass[i], data.walls[i], data.material[i], data.radius)
        out.square().mean().backward()
    net.zero_grad(set_to_none=True)
    net.train(was)
    return int(counter.get_total_flops())
