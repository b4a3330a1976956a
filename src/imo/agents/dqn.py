"""DQN (Mnih et al. 2015, Nature 518) in one file, written for the gymnasium 1.x step API.

The layout follows CleanRL's dqn.py (vwxyzjn/cleanrl, docs/rl-algorithms/dqn.md): an MLP Q-network
(120-84 ReLU), a uniform replay buffer, a target network refreshed every `target_every` steps with
Polyak weight `tau` (tau = 1 is Mnih's hard copy), an epsilon that falls linearly over
`exploration_fraction` of the steps, and the squared TD error. CleanRL's defaults are
DQNConfig's defaults. CleanRL itself does not run on gymnasium 1.x (it reads
info["final_observation"], which 1.x no longer sets), so this loop steps one env and resets it
itself: on `terminated` the target does not bootstrap, on `truncated` (a time limit) it does.

    result = train(envs.make("CartPole-v1"), DQNConfig(steps=50_000, seed=1))
    returns = evaluate(result.q, "CartPole-v1", seeds=range(10))
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import nn

from imo.agents.popart import PopArt
from imo.agents.replay import ReplayBuffer
from imo.errors import ConfigError


@dataclass(frozen=True)
class DQNConfig:
    steps: int = 500_000            # environment steps
    lr: float = 2.5e-4              # Adam
    buffer_size: int = 10_000       # replay capacity (transitions)
    gamma: float = 0.99
    tau: float = 1.0                # target <- tau * online + (1 - tau) * target; 1 = hard copy
    target_every: int = 500         # steps between target updates
    batch_size: int = 128
    start_e: float = 1.0
    end_e: float = 0.05
    exploration_fraction: float = 0.5  # share of the steps over which epsilon falls
    learning_starts: int = 10_000   # steps of acting before the first update
    train_every: int = 10           # steps between updates
    gradient_steps: int = 1         # updates each time (SB3's train_freq / gradient_steps)
    hidden: tuple[int, ...] = (120, 84)
    per_task_heads: bool = False    # several tasks: one output head per task on a shared trunk
    popart: bool = False            # per-task normalised values (needs per_task_heads)
    popart_beta: float = 3e-4       # step size of PopArt's running mean and second moment
    select_every: int = 0           # > 0: every so many steps, play greedy validation episodes
    select_episodes: int = 5        # (seeds 20000, ...) and keep the best network (0: the last)
    seed: int = 1

    def check(self) -> None:
        bad = [f"{k} must be >= 1" for k in ("steps", "buffer_size", "target_every",
                                              "batch_size", "train_every", "gradient_steps") if getattr(self, k) < 1]
        if not 0 < self.tau <= 1:
            bad.append("tau must be in (0, 1]")
        if not 0 <= self.gamma < 1:
            bad.append("gamma must be in [0, 1)")
        if self.lr <= 0:
            bad.append("lr must be > 0")
        if not (0 <= self.end_e <= 1 and 0 <= self.start_e <= 1):
            bad.append("epsilons must be in [0, 1]")
        if not 0 < self.exploration_fraction <= 1:
            bad.append("exploration_fraction must be in (0, 1]")
        if self.learning_starts < 0 or self.learning_starts >= self.steps:
            bad.append(f"learning_starts must be in [0, steps), got {self.learning_starts} "
                       f"with {self.steps} steps")
        if self.popart and not self.per_task_heads:
            bad.append("popart needs per_task_heads")
        if not 0 < self.popart_beta <= 1:
            bad.append("popart_beta must be in (0, 1]")
        if self.select_every < 0 or self.select_episodes < 1:
            bad.append("select_every must be >= 0 and select_episodes >= 1")
        if not self.hidden or min(self.hidden) < 1:
            bad.append("hidden sizes must be >= 1")
        if bad:
            raise ConfigError("; ".join(bad))

    def to_dict(self) -> dict:
        return {**asdict(self), "hidden": list(self.hidden)}


class QNetwork(nn.Module):
    """obs (B, obs_dim) -> Q-values (B, n_actions).

    tasks = 0: one MLP. tasks = T > 0: the observation ends in a one-hot of T tasks (the
    MultiTaskEnv layout); a shared trunk feeds T heads and each row reads its own task's head,
    so a task's TD error never moves another task's head."""

    def __init__(self, obs_dim: int, n_actions: int, hidden: tuple[int, ...] = (120, 84),
                 tasks: int = 0):
        super().__init__()
        layers: list[nn.Module] = []
        width = obs_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.ReLU()]
            width = h
        self.tasks, self.n_actions = tasks, n_actions
        layers.append(nn.Linear(width, n_actions * max(tasks, 1)))
        self.net = nn.Sequential(*layers)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        out = self.net(obs)
        if not self.tasks:
            return out
        out = out.view(obs.shape[0], self.tasks, self.n_actions)  # (B, T, A)
        task = obs[:, -self.tasks:].argmax(dim=1)                   # (B,)
        return out[torch.arange(obs.shape[0]), task]                 # (B, A)


def linear_schedule(start: float, end: float, duration: float, t: int) -> float:
    """start at t = 0, moving linearly to end at t = duration, then staying at end."""
    frac = min(t / duration, 1.0) if duration > 0 else 1.0
    return start + frac * (end - start)


@torch.no_grad()
def hard_update(target: nn.Module, online: nn.Module) -> None:
    """target <- online (Mnih et al. 2015: copy every C steps)."""
    target.load_state_dict(online.state_dict())


@torch.no_grad()
def polyak_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """target <- tau * online + (1 - tau) * target, parameter by parameter (Lillicrap et al. 2016)."""
    for t, o in zip(target.parameters(), online.parameters(), strict=True):
        t.mul_(1.0 - tau).add_(o, alpha=tau)


def td_targets(target_q: torch.Tensor, rewards: torch.Tensor, terminated: torch.Tensor,
               next_mask: torch.Tensor, gamma: float) -> torch.Tensor:
    """r + gamma * max_a' Q_target(s', a') over the allowed a', and just r where the episode ended.
    target_q: (B, A) Q_target(s', .); rewards, terminated: (B,); next_mask: (B, A) bool."""
    best = target_q.masked_fill(~next_mask, float("-inf")).max(dim=1).values
    return rewards + gamma * (1.0 - terminated) * best


def greedy(q: nn.Module, obs: np.ndarray, mask: np.ndarray | None = None) -> int:
    with torch.no_grad():
        values = q(torch.as_tensor(obs, dtype=torch.float32).unsqueeze(0))[0]
    if mask is not None:
        values = values.masked_fill(~torch.as_tensor(mask), float("-inf"))
    return int(values.argmax())


def _mask(env) -> np.ndarray | None:
    return env.action_mask() if hasattr(env, "action_mask") else None


@dataclass
class TrainResult:
    q: QNetwork
    config: DQNConfig
    episodes: list[dict] = field(default_factory=list)  # step, return, length, task, goal
    losses: list[tuple[int, float]] = field(default_factory=list)  # (step, mean TD loss)
    seconds: float = 0.0
    selected: dict | None = None  # with select_every: {"step", "score"} of the network kept

    @property
    def steps_per_s(self) -> float:
        return self.config.steps / self.seconds if self.seconds else float("nan")


def task_count(env, cfg: DQNConfig) -> int:
    """The number of heads beyond one: the env's task count with per-task heads, else 0."""
    if not cfg.per_task_heads:
        return 0
    if not hasattr(env, "names"):
        raise ConfigError("per-task heads need several tasks (--env A,B,...)")
    return len(env.names)


def _update(q: QNetwork, target: QNetwork, opt, popart: PopArt | None, buf: ReplayBuffer,
            cfg: DQNConfig, tasks: int, n_actions: int) -> float:
    """One gradient step on a sampled batch; returns the TD loss."""
    b = buf.sample(cfg.batch_size)
    obs_t, next_t = torch.from_numpy(b.obs), torch.from_numpy(b.next_obs)
    with torch.no_grad():
        q_next = target(next_t)
        if popart is not None:  # the heads give normalised values; targets are not
            task = obs_t[:, -tasks:].argmax(dim=1)
            q_next = popart.unnormalise(q_next, task)
        y = td_targets(q_next, torch.from_numpy(b.rewards), torch.from_numpy(b.terminated),
                       torch.from_numpy(b.next_mask), cfg.gamma)
        if popart is not None:
            popart.update_(y, task, [q.net[-1], target.net[-1]], n_actions)
            y = popart.normalise(y, task)
    pred = q(obs_t).gather(1, torch.from_numpy(b.actions)[:, None])[:, 0]
    loss = nn.functional.mse_loss(pred, y)
    opt.zero_grad()
    loss.backward()
    opt.step()
    return loss.item()


def fresh_copy(env):
    """A new env like `env` (a MultiTaskEnv or a registered gymnasium env), for validation."""
    from imo.agents import envs

    if hasattr(env, "names"):
        return envs.MultiTaskEnv(env.names)
    return envs.make(env.spec.id)


def train(env, cfg: DQNConfig, progress: Callable[[int, dict], None] | None = None,
          goal_on_terminate: bool | list[bool] = False) -> TrainResult:
    """Train a DQN on `env` (a gymnasium env, or a MultiTaskEnv) for cfg.steps steps.
    `progress(step, episode)` is called at the end of every episode."""
    cfg.check()
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    obs_dim = int(np.prod(env.observation_space.shape))
    n_actions = int(env.action_space.n)
    tasks = task_count(env, cfg)
    q = QNetwork(obs_dim, n_actions, cfg.hidden, tasks)
    target = QNetwork(obs_dim, n_actions, cfg.hidden, tasks)
    hard_update(target, q)
    popart = PopArt(tasks, cfg.popart_beta) if cfg.popart else None
    opt = torch.optim.Adam(q.parameters(), lr=cfg.lr)
    buf = ReplayBuffer(cfg.buffer_size, obs_dim, n_actions, seed=cfg.seed + 1)
    result = TrainResult(q, cfg)
    goals = goal_on_terminate if isinstance(goal_on_terminate, list) else [goal_on_terminate]
    val_env = fresh_copy(env) if cfg.select_every else None

    start = time.perf_counter()
    obs, info = env.reset(seed=cfg.seed)
    mask = _mask(env)
    ep_return, ep_len, loss_sum, loss_n = 0.0, 0, 0.0, 0
    for step in range(cfg.steps):
        eps = linear_schedule(cfg.start_e, cfg.end_e, cfg.exploration_fraction * cfg.steps, step)
        if rng.random() < eps:
            allowed = np.flatnonzero(mask) if mask is not None else np.arange(n_actions)
            action = int(rng.choice(allowed))
        else:
            action = greedy(q, obs, mask)
        next_obs, reward, terminated, truncated, info = env.step(action)
        # an episode keeps its task, so the next state's allowed actions are this state's
        buf.add(np.ravel(obs), action, reward, np.ravel(next_obs), terminated, mask)
        ep_return += float(reward)
        ep_len += 1
        if terminated or truncated:
            task = int(info.get("task", 0))
            episode = {"step": step + 1, "return": ep_return, "length": ep_len, "task": task,
                       "goal": bool(terminated and goals[min(task, len(goals) - 1)])}
            result.episodes.append(episode)
            if progress:
                progress(step + 1, episode)
            obs, info = env.reset()
            mask = _mask(env)
            ep_return, ep_len = 0.0, 0
        else:
            obs = next_obs

        if step >= cfg.learning_starts:
            if step % cfg.train_every == 0:
                for _ in range(cfg.gradient_steps):
                    loss_sum += _update(q, target, opt, popart, buf, cfg, tasks, n_actions)
                    loss_n += 1
            if step % cfg.target_every == 0:
                if cfg.tau >= 1.0:
                    hard_update(target, q)
                else:
                    polyak_update(target, q, cfg.tau)
                if loss_n:
                    result.losses.append((step, loss_sum / loss_n))
                    loss_sum, loss_n = 0.0, 0
        if cfg.select_every and (step + 1) % cfg.select_every == 0 and step >= cfg.learning_starts:
            score = validation_score(q, val_env, cfg.select_episodes)
            if result.selected is None or score >= result.selected["score"]:  # ties: the later
                result.selected = {"step": step + 1, "score": score}
                best = copy.deepcopy(q.state_dict())
    if result.selected is not None:
        q.load_state_dict(best)
    result.seconds = time.perf_counter() - start
    return result


VALIDATION_SEED0 = 20_000  # validation episodes (selection) start here; evaluation uses 10000+


def validation_score(q: nn.Module, env, episodes: int) -> float:
    """Mean greedy return over `episodes` validation seeds (a MultiTaskEnv: each task's episodes,
    the mean over tasks of their mean return)."""
    tasks = range(len(env.names)) if hasattr(env, "names") else [None]
    seeds = range(VALIDATION_SEED0, VALIDATION_SEED0 + episodes)
    means = [np.mean([e["return"] for e in evaluate(q, env, seeds, task=t)]) for t in tasks]
    return float(np.mean(means))


def evaluate(q: nn.Module, env, seeds: Iterable[int], goal_on_terminate: bool = False,
             epsilon: float = 0.0, task: int | None = None) -> list[dict]:
    """Greedy episodes (epsilon = 0 unless given), one per seed: env.reset(seed=s) each time, so
    the same seeds give the same episodes. `task`: which task of a MultiTaskEnv.
    Returns [{seed, return, length, goal}]."""
    out = []
    rng = np.random.default_rng(0)
    for s in seeds:
        obs, _ = env.reset(seed=int(s), options=None if task is None else {"task": task})
        total, n, done = 0.0, 0, False
        while not done:
            mask = _mask(env)
            if epsilon and rng.random() < epsilon:
                allowed = np.flatnonzero(mask) if mask is not None else np.arange(env.action_space.n)
                action = int(rng.choice(allowed))
            else:
                action = greedy(q, obs, mask)
            obs, r, term, trunc, _ = env.step(action)
            total += float(r)
            n += 1
            done = term or trunc
        out.append({"seed": int(s), "return": total, "length": n,
                    "goal": bool(term and goal_on_terminate)})
    return out
