"""One network for CartPole, Acrobot and MountainCar: the recipe, and normalised scores.

The network is `dqn.QNetwork` with one head per task on a shared trunk, trained by `dqn.train` on
a `envs.MultiTaskEnv` (round-robin, one task per episode). With PopArt (van Hasselt et al. 2016,
per task as in Hessel et al. 2018, arXiv:1809.04474) each head learns values normalised by its
task's running target statistics; without it the heads learn raw returns.

A task's score is normalised the way Atari scores are (Mnih et al. 2015):

    normalised = (R - R_random) / (R_single - R_random)

R_random is a uniformly random policy's mean return on the same evaluation seeds (measured by
`random_returns`, exact and seeded). R_single is imo's single-task recipe on that task: the mean
greedy evaluation return over training seeds 1-3, 20 episodes each on seeds 10000+
(benchmarks/RESULTS.md, "Single-task DQN recipes against CleanRL's published scores"). The claim
caps each task's score at 1 before averaging, as Badia et al. 2020 (Agent57, arXiv:2003.13350)
cap human-normalised scores, so that a task above its reference cannot hide one below it.

    cfg = recipe(popart=True, seed=1)
    result = dqn.train(envs.MultiTaskEnv(list(TASKS)), cfg, goal_on_terminate=goals())
    rows = score(result.q, seeds=range(10_000, 10_020))
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

TASKS = ("CartPole-v1", "Acrobot-v1", "MountainCar-v0")

# imo's single-task recipes, seeds 1-3 (benchmarks/RESULTS.md, machine C, 2026-12-03)
SINGLE_TASK = {"CartPole-v1": 500.00, "Acrobot-v1": -85.85, "MountainCar-v0": -111.17}

# The three-task recipe: per-task heads on a 256-256 trunk, CartPole's and MountainCar's zoo-
# shaped settings in between (γ 0.98 and a target copy every 600 steps as MountainCar's; bursts
# of gradient steps), and no validation selection, so the final network is the one scored.
RECIPE = {"steps": 200_000, "lr": 2e-3, "batch_size": 128, "buffer_size": 50_000,
          "learning_starts": 1000, "gamma": 0.98, "target_every": 600, "train_every": 16,
          "gradient_steps": 4, "exploration_fraction": 0.15, "end_e": 0.05,
          "hidden": (256, 256), "per_task_heads": True, "select_every": 0}


def is_suite(names: Iterable[str]) -> bool:
    """True when the names are the three classic-control tasks, in any order."""
    names = list(names)
    return len(names) == len(TASKS) and set(names) == set(TASKS)


def recipe(popart: bool, seed: int = 1, **overrides):
    """The three-task DQNConfig, with or without PopArt; the two differ in nothing else."""
    from imo.agents.dqn import DQNConfig

    return DQNConfig(**{**RECIPE, "popart": popart, "seed": seed, **overrides})


def goals(names: Iterable[str] = TASKS) -> list[bool]:
    from imo.agents import envs

    return [envs.spec(n).goal_on_terminate for n in names]


def random_returns(name: str, seeds: Iterable[int]) -> list[float]:
    """A uniformly random policy's return on each seed (actions drawn from a generator seeded
    by the episode's seed, so the figures repeat exactly)."""
    from imo.agents import envs

    env = envs.make(name)
    out = []
    for s in seeds:
        env.reset(seed=int(s))
        rng = np.random.default_rng(int(s))
        total, done = 0.0, False
        while not done:
            _, r, term, trunc, _ = env.step(int(rng.integers(env.action_space.n)))
            total += float(r)
            done = term or trunc
        out.append(total)
    env.close()
    return out


def normalised(name: str, mean_return: float, random_mean: float) -> float:
    """(R - R_random) / (R_single - R_random), uncapped."""
    return (mean_return - random_mean) / (SINGLE_TASK[name] - random_mean)


def score(q, seeds: Iterable[int], names: Iterable[str] = TASKS) -> list[dict]:
    """Greedy episodes of `q` on each task (the MultiTaskEnv of `names`), one per seed.
    Returns per task: env, mean_return, goal_rate (where the goal ends the episode),
    random_return, normalised (uncapped) and capped (at 1)."""
    from imo.agents import dqn, envs

    names, seeds = list(names), list(seeds)
    env = envs.MultiTaskEnv(names)
    rows = []
    for i, name in enumerate(names):
        goal = envs.spec(name).goal_on_terminate
        eps = dqn.evaluate(q, env, seeds, goal, task=i)
        mean = float(np.mean([e["return"] for e in eps]))
        rand = float(np.mean(random_returns(name, seeds)))
        row = {"env": name, "mean_return": mean, "random_return": rand}
        if goal:
            row["goal_rate"] = float(np.mean([e["goal"] for e in eps]))
        if name in SINGLE_TASK:
            row["normalised"] = normalised(name, mean, rand)
            row["capped"] = min(row["normalised"], 1.0)
        rows.append(row)
    env.close()
    return rows
