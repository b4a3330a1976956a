"""A replay buffer: a fixed-size numpy ring of transitions, sampled uniformly with a seeded generator.

Mnih et al. 2015 ("Human-level control through deep reinforcement learning", Nature 518) store
the last N transitions and sample minibatches uniformly from them; CleanRL's dqn.py uses the same
design (a copy of Stable-Baselines3's ReplayBuffer). Once full, the newest transition overwrites
the oldest.

    buf = ReplayBuffer(capacity=10_000, obs_dim=4, n_actions=2, seed=1)
    buf.add(obs, action, reward, next_obs, terminated)
    batch = buf.sample(128)      # a Batch of numpy arrays, rows drawn from the stored transitions

`terminated` is stored, not `truncated`: a time-limit cut is not an end of the task, so its
target still bootstraps from the next state (gymnasium 1.x reports the two apart).
`next_mask` marks the actions that exist in the next state (all of them unless a multi-task
environment pads the action space); the target's max runs over those only.
"""

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Batch:
    obs: np.ndarray         # (B, obs_dim) float32
    actions: np.ndarray     # (B,) int64
    rewards: np.ndarray     # (B,) float32
    next_obs: np.ndarray    # (B, obs_dim) float32
    terminated: np.ndarray  # (B,) float32, 1.0 where the episode ended (no bootstrap)
    next_mask: np.ndarray   # (B, n_actions) bool, the actions allowed in next_obs
    index: np.ndarray       # (B,) int64, the slots the rows came from


class ReplayBuffer:
    def __init__(self, capacity: int, obs_dim: int, n_actions: int, seed: int = 0):
        if capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {capacity}")
        self.capacity = capacity
        self.obs = np.zeros((capacity, obs_dim), np.float32)
        self.actions = np.zeros(capacity, np.int64)
        self.rewards = np.zeros(capacity, np.float32)
        self.next_obs = np.zeros((capacity, obs_dim), np.float32)
        self.terminated = np.zeros(capacity, np.float32)
        self.next_mask = np.ones((capacity, n_actions), bool)
        self.pos = 0     # the slot the next add() writes
        self.size = 0    # how many slots hold a transition
        self.added = 0   # how many transitions were ever added
        self.rng = np.random.default_rng(seed)

    def __len__(self) -> int:
        return self.size

    def add(self, obs, action: int, reward: float, next_obs, terminated: bool,
            next_mask=None) -> None:
        i = self.pos
        self.obs[i] = obs
        self.actions[i] = action
        self.rewards[i] = reward
        self.next_obs[i] = next_obs
        self.terminated[i] = float(terminated)
        self.next_mask[i] = True if next_mask is None else next_mask
        self.pos = (i + 1) % self.capacity
        self.size = min(self.size + 1, self.capacity)
        self.added += 1

    def sample(self, batch_size: int) -> Batch:
        """`batch_size` rows drawn uniformly, with replacement, from the stored transitions."""
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        idx = self.rng.integers(0, self.size, size=batch_size)
        return Batch(self.obs[idx], self.actions[idx], self.rewards[idx], self.next_obs[idx],
                     self.terminated[idx], self.next_mask[idx], idx)
