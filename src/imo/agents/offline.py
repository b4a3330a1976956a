"""Offline DQN: the same network, loss and update schedule as `dqn.train`, but learning from a
fixed log of transitions instead of acting.

    buf = log_transitions(envs.make("CartPole-v1"), policy=None, n=50_000, seed=1)   # random
    q = train_offline(buf, cfg, obs_dim=4, n_actions=2)

With the same `cfg`, an offline run makes exactly as many gradient steps and target updates as
the online run would: the online schedule is replayed step by step, with no environment.
Offline DQN is known to fail from narrow data: its max over actions bootstraps from actions the
log never took (Fujimoto et al. 2019, "Off-policy deep reinforcement learning without
exploration", arXiv:1812.02900). Diverse logs do much better (Agarwal et al. 2020,
arXiv:1907.04543).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from imo.agents.dqn import DQNConfig, QNetwork, _update, hard_update, polyak_update
from imo.agents.replay import ReplayBuffer


def log_transitions(env, policy: Callable[[np.ndarray], int] | None, n: int, seed: int,
                    epsilon: float = 0.0) -> tuple[ReplayBuffer, list[float]]:
    """n transitions from `policy` (None: uniformly random actions), taking a random action with
    probability epsilon. Returns the buffer and the returns of the episodes that finished."""
    rng = np.random.default_rng(seed)
    obs_dim = int(np.prod(env.observation_space.shape))
    n_actions = int(env.action_space.n)
    buf = ReplayBuffer(n, obs_dim, n_actions, seed=seed + 1)
    obs, _ = env.reset(seed=seed)
    returns, total = [], 0.0
    for _ in range(n):
        if policy is None or rng.random() < epsilon:
            action = int(rng.integers(n_actions))
        else:
            action = policy(obs)
        nxt, r, term, trunc, _ = env.step(action)
        buf.add(np.ravel(obs), action, r, np.ravel(nxt), term)
        total += float(r)
        if term or trunc:
            returns.append(total)
            total = 0.0
            obs, _ = env.reset()
        else:
            obs = nxt
    return buf, returns


def train_offline(buf: ReplayBuffer, cfg: DQNConfig, obs_dim: int, n_actions: int) -> QNetwork:
    """A Q-network trained on `buf` alone, on the online schedule of `cfg` (gradient steps every
    train_every steps from learning_starts, target updates every target_every steps)."""
    cfg.check()
    torch.manual_seed(cfg.seed)
    q = QNetwork(obs_dim, n_actions, cfg.hidden)
    target = QNetwork(obs_dim, n_actions, cfg.hidden)
    hard_update(target, q)
    opt = torch.optim.Adam(q.parameters(), lr=cfg.lr)
    for step in range(cfg.learning_starts, cfg.steps):
        if step % cfg.train_every == 0:
            for _ in range(cfg.gradient_steps):
                _update(q, target, opt, None, buf, cfg, 0, n_actions)
        if step % cfg.target_every == 0:
            if cfg.tau >= 1.0:
                hard_update(target, q)
            else:
                polyak_update(target, q, cfg.tau)
    q.eval()
    return q
