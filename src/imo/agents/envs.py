"""The environments imo's agents train on, and a wrapper that makes several of them one task set.

Classic control from gymnasium 1.x (CartPole-v1, Acrobot-v1, MountainCar-v0) plus two small
environments of our own, registered under the `imo/` namespace:

- `imo/Chain-v0`: a deterministic corridor of N cells; action 1 moves right, 0 left; each step
  costs 0.05, and stepping onto the last cell pays 1 instead and ends the episode. Its optimal Q-function is known exactly
  (`chain_q_star`, by value iteration), which is what the DQN tests check the learner against.
- `imo/Reach-v0`: a point on [-1, 1] must reach a target drawn at reset; actions step -0.1, 0 or
  +0.1; each step costs 0.05 and arriving within 0.05 pays 1 and ends the episode.

`MultiTaskEnv` runs several of them round-robin, one task per episode, with one observation
format: the observation padded with zeros to the widest task's size, then a one-hot of the task
(the layout suggested in WAVE2.md section 10). Its action space is the largest task's;
`action_mask()` says which actions the current task has.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from imo.agents import require_gymnasium
from imo.errors import ConfigError

CHAIN_STEP_COST = -0.05


@dataclass(frozen=True)
class EnvSpec:
    name: str
    about: str
    goal_on_terminate: bool  # an episode that terminates (not truncates) reached the goal
    recipe: dict = field(default_factory=dict)  # DQNConfig fields that differ from the defaults
    recipe_name: str = "CleanRL dqn.py"          # where the recipe comes from


# Recipes. Acrobot keeps CleanRL dqn.py's published settings (DQNConfig's defaults, 500k steps).
# CartPole and MountainCar take the shape of rl-baselines3-zoo's DQN hyperparameters
# (hyperparams/dqn.yml): 256-256 networks, bursts of gradient steps, short exploration, because
# CleanRL's settings end CartPole on a dip at 500k steps and never reach MountainCar's flag.
# CartPole also keeps the best of its greedy validation checks (seeds 20000+), not the last.
_SMALL = {"steps": 3000, "learning_starts": 500, "buffer_size": 5000, "target_every": 100,
          "train_every": 1, "batch_size": 64, "lr": 1e-3, "exploration_fraction": 0.3, "gamma": 0.9}
CARTPOLE = {"steps": 50_000, "lr": 2.3e-3, "batch_size": 64, "buffer_size": 100_000,
            "learning_starts": 1000, "gamma": 0.99, "target_every": 10, "train_every": 256,
            "gradient_steps": 128, "exploration_fraction": 0.16, "end_e": 0.04,
            "hidden": (256, 256), "select_every": 2500, "select_episodes": 10}
MOUNTAINCAR = {"steps": 120_000, "lr": 4e-3, "batch_size": 128, "buffer_size": 10_000,
               "learning_starts": 1000, "gamma": 0.98, "target_every": 600, "train_every": 16,
               "gradient_steps": 8, "exploration_fraction": 0.2, "end_e": 0.07,
               "hidden": (256, 256)}
ENVS: dict[str, EnvSpec] = {
    "CartPole-v1": EnvSpec("CartPole-v1", "balance a pole on a cart (gymnasium)", False,
                           CARTPOLE, "zoo-shaped, best of validation"),
    "Acrobot-v1": EnvSpec("Acrobot-v1", "swing a two-link arm up (gymnasium)", True, {},
                          "CleanRL dqn.py"),
    "MountainCar-v0": EnvSpec("MountainCar-v0", "drive an underpowered car up a hill (gymnasium)",
                              True, MOUNTAINCAR, "zoo-shaped"),
    "imo/Chain-v0": EnvSpec("imo/Chain-v0", "walk right along a 5-cell corridor (known Q*)", True,
                            _SMALL, "small"),
    "imo/Reach-v0": EnvSpec("imo/Reach-v0", "move a point to a target on a line", True,
                            {**_SMALL, "steps": 20000}, "small"),
}


def spec(name: str) -> EnvSpec:
    if name not in ENVS:
        raise ConfigError(f"unknown env {name!r}; known: {', '.join(ENVS)}")
    return ENVS[name]


def _register() -> None:
    gym = require_gymnasium()
    if "imo/Chain-v0" not in gym.registry:
        gym.register("imo/Chain-v0", entry_point=ChainEnv, max_episode_steps=50)
        gym.register("imo/Reach-v0", entry_point=ReachEnv, max_episode_steps=100)


def make(name: str, render_mode: str | None = None):
    """A gymnasium env by name (one of ENVS), with its time limit."""
    spec(name)
    _register()
    return require_gymnasium().make(name, render_mode=render_mode)


def make_tasks(names: list[str]):
    """One env, or a MultiTaskEnv when several names are given."""
    if len(names) != len(set(names)):
        raise ConfigError(f"--env lists a task twice: {','.join(names)}")
    for n in names:
        spec(n)
    return make(names[0]) if len(names) == 1 else MultiTaskEnv(names)


def _chain_class():
    gym = require_gymnasium()

    class Chain(gym.Env):
        metadata = {"render_modes": []}

        def __init__(self, n: int = 5, render_mode=None):
            if n < 2:
                raise ValueError("a chain needs at least 2 cells")
            self.n = n
            self.observation_space = gym.spaces.Box(0.0, 1.0, (n,), np.float32)
            self.action_space = gym.spaces.Discrete(2)
            self.state = 0

        def _obs(self):
            o = np.zeros(self.n, np.float32)
            o[self.state] = 1.0
            return o

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            # start anywhere but the goal, so every state is visited often
            self.state = int(self.np_random.integers(0, self.n - 1))
            return self._obs(), {}

        def step(self, action):
            self.state = min(self.state + 1, self.n - 1) if action == 1 else max(self.state - 1, 0)
            done = self.state == self.n - 1
            return self._obs(), (1.0 if done else CHAIN_STEP_COST), done, False, {}

    return Chain


def _reach_class():
    gym = require_gymnasium()

    class Reach(gym.Env):
        metadata = {"render_modes": []}

        def __init__(self, render_mode=None):
            self.observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
            self.action_space = gym.spaces.Discrete(3)
            self.x = self.target = 0.0

        def _obs(self):
            return np.array([self.x, self.target], np.float32)

        def reset(self, *, seed=None, options=None):
            super().reset(seed=seed)
            self.x, self.target = (float(v) for v in self.np_random.uniform(-1, 1, 2))
            return self._obs(), {}

        def step(self, action):
            self.x = float(np.clip(self.x + 0.1 * (int(action) - 1), -1.0, 1.0))
            done = abs(self.x - self.target) < 0.05
            return self._obs(), (1.0 if done else -0.05), done, False, {}

    return Reach


def ChainEnv(**kwargs):  # noqa: N802 - an entry point that builds the class lazily
    return _chain_class()(**kwargs)


def ReachEnv(**kwargs):  # noqa: N802
    return _reach_class()(**kwargs)


def value_iteration(next_state: np.ndarray, reward: np.ndarray, terminal: np.ndarray,
                    gamma: float, tol: float = 1e-12) -> np.ndarray:
    """Q* of a deterministic tabular MDP. next_state, reward, terminal: (S, A) arrays
    (terminal[s, a] is True when that step ends the episode). Returns Q: (S, A)."""
    q = np.zeros(reward.shape)
    while True:
        v = q.max(axis=1)
        new = reward + gamma * np.where(terminal, 0.0, v[next_state])
        if np.abs(new - q).max() < tol:
            return new
        q = new


def chain_q_star(n: int, gamma: float) -> np.ndarray:
    """Q*(s, a) of imo/Chain-v0 for the n - 1 non-goal cells: shape (n - 1, 2), a in (left, right)."""
    s = np.arange(n)
    nxt = np.stack([np.maximum(s - 1, 0), np.minimum(s + 1, n - 1)], axis=1)
    term = nxt == n - 1
    q = value_iteration(nxt, np.where(term, 1.0, CHAIN_STEP_COST), term | (s[:, None] == n - 1),
                        gamma)
    return q[: n - 1]


class MultiTaskEnv:
    """Several envs behind one observation and action format; the task changes each episode.

    Observation: the task's observation zero-padded to `pad` values, then a one-hot of the task
    (shape pad + len(names)). Actions: Discrete(max over tasks); `action_mask()` is True for the
    current task's actions. `reset(seed=s)` seeds every task's env from s.
    """

    def __init__(self, names: list[str]):
        gym = require_gymnasium()
        self.names = list(names)
        self.envs = [make(n) for n in self.names]
        for n, e in zip(self.names, self.envs, strict=True):
            if not isinstance(e.action_space, gym.spaces.Discrete):
                raise ConfigError(f"{n} does not have a discrete action space")
        self.obs_sizes = [int(np.prod(e.observation_space.shape)) for e in self.envs]
        self.n_actions = [int(e.action_space.n) for e in self.envs]
        self.pad = max(self.obs_sizes)
        size = self.pad + len(self.names)
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, (size,), np.float32)
        self.action_space = gym.spaces.Discrete(max(self.n_actions))
        self.task = -1

    def _obs(self, obs) -> np.ndarray:
        out = np.zeros(self.observation_space.shape, np.float32)
        flat = np.asarray(obs, np.float32).ravel()
        out[: flat.size] = flat
        out[self.pad + self.task] = 1.0
        return out

    def action_mask(self) -> np.ndarray:
        mask = np.zeros(self.action_space.n, bool)
        mask[: self.n_actions[self.task]] = True
        return mask

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """The next task in turn, or options["task"] (an index) when given."""
        if options and "task" in options:
            if not 0 <= options["task"] < len(self.envs):
                raise ValueError(f"task {options['task']} out of range")
            self.task = int(options["task"])
        else:
            self.task = (self.task + 1) % len(self.envs)
        if seed is not None:  # seed each task's env once, from the one seed
            for i, e in enumerate(self.envs):
                e.reset(seed=seed + 1000 * i)
                e.action_space.seed(seed + 1000 * i)
        obs, info = self.envs[self.task].reset()
        return self._obs(obs), {**info, "task": self.task}

    def step(self, action):
        if not 0 <= int(action) < self.n_actions[self.task]:
            raise ValueError(f"action {action} does not exist in {self.names[self.task]}")
        obs, r, term, trunc, info = self.envs[self.task].step(int(action))
        return self._obs(obs), r, term, trunc, {**info, "task": self.task}

    def close(self) -> None:
        for e in self.envs:
            e.close()
