"""Claims about learning from feedback (imo.agents, issue 21).

* `feedback-beats-watching`: "most important thing is feedback system". A DQN that learns by
  acting in CartPole-v1 is compared with offline DQNs trained on the same number of logged
  transitions, with the same network, loss and gradient-step schedule. One log comes from an
  expert: the online agent's own final policy, with 5% random actions. The other comes from a
  uniformly random policy. The metric is the online agent's greedy evaluation return minus the
  better of the two offline agents'. CartPole's recipe (`imo agent envs`) is used without its
  validation selection, so no arm gets episodes beyond its budget.

    imo check feedback-beats-watching --quick
"""

from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display needed

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from imo.claims.plotting import save_figure  # noqa: E402
from imo.claims.registry import Claim, Context, Rule, register  # noqa: E402

ENV = "CartPole-v1"
SIZES: dict[str, dict[str, Any]] = {
    "smoke": dict(steps=1500, learning_starts=500, episodes=3),
    "quick": dict(steps=20_000, learning_starts=1000, episodes=20),
    "full": dict(steps=50_000, learning_starts=1000, episodes=20),
}
EXPERT_EPSILON = 0.05
ARMS = ("online", "offline_expert", "offline_random")


def measure(budget: str, seed: int, ctx: Context) -> dict[str, Any]:
    import torch

    from imo.agents import dqn, envs, offline
    from imo.agents.dqn import DQNConfig

    torch.set_num_threads(1)
    s = SIZES[budget]
    cfg = DQNConfig(**{**envs.CARTPOLE, "steps": s["steps"], "learning_starts": s["learning_starts"],
                       "select_every": 0, "seed": seed})
    seeds = range(10_000, 10_000 + s["episodes"])

    def score(q) -> float:
        return float(np.mean([e["return"] for e in dqn.evaluate(q, envs.make(ENV), seeds)]))

    online = dqn.train(envs.make(ENV), cfg)
    expert_buf, expert_returns = offline.log_transitions(
        envs.make(ENV), lambda o: dqn.greedy(online.q, o), s["steps"], seed + 500, EXPERT_EPSILON)
    random_buf, random_returns = offline.log_transitions(envs.make(ENV), None, s["steps"], seed + 600)
    qs = {"online": online.q,
          "offline_expert": offline.train_offline(expert_buf, cfg, 4, 2),
          "offline_random": offline.train_offline(random_buf, cfg, 4, 2)}
    returns = {arm: score(q) for arm, q in qs.items()}
    ctx.log(", ".join(f"{k} {v:.1f}" for k, v in returns.items()))
    return {
        "online_minus_best_offline": returns["online"] - max(returns["offline_expert"],
                                                             returns["offline_random"]),
        **{f"{arm}_return": returns[arm] for arm in ARMS},
        "expert_log_mean_return": float(np.mean(expert_returns)) if expert_returns else float("nan"),
        "random_log_mean_return": float(np.mean(random_returns)) if random_returns else float("nan"),
        "transitions": s["steps"], "online_episodes": len(online.episodes),
        "eval_episodes": s["episodes"], "_runs": [],
    }


def plot(per_seed: list[dict[str, Any]], path) -> None:
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    for i, arm in enumerate(ARMS):
        vals = [f[f"{arm}_return"] for f in per_seed]
        ax.scatter([i] * len(vals), vals, color=f"C{i}", zorder=3)
        ax.bar(i, float(np.mean(vals)), color=f"C{i}", alpha=0.4)
    ax.set_xticks(range(len(ARMS)), ["online (acts)", "offline, expert log", "offline, random log"])
    ax.set_ylabel("greedy evaluation return (CartPole-v1, max 500)")
    n = per_seed[0]["transitions"] if per_seed else "?"
    ax.set_title(f"{n} transitions each; one dot per seed", fontsize=10)
    ax.grid(True, axis="y", alpha=0.3)
    save_figure(fig, path)


@register
def feedback_beats_watching() -> Claim:
    return Claim(
        id="feedback-beats-watching",
        statement="An agent that learns by acting and receiving feedback beats one that learns "
                  "offline from the same number of logged transitions, whether the log is an "
                  "expert's or a random policy's.",
        source="source-notes: most important thing is feedback system; we are environment feedback",
        experiment="CartPole-v1 with imo's CartPole recipe (a 256-256 DQN, 128 gradient steps "
                   "every 256 steps), validation selection off, 1,500/20,000/50,000 steps "
                   "(smoke/quick/full). Offline DQNs with the same network and the same schedule of "
                   "gradient steps and target updates learn from as many logged transitions: the "
                   "online agent's final greedy policy with 5% random actions (expert), and "
                   "uniformly random actions. Each agent plays 3/20/20 greedy evaluation episodes "
                   "on seeds 10000, ...",
        rule=Rule(metric="online_minus_best_offline", op=">", threshold=0.0, effect=50.0,
                  noise=150.0,
                  meaning="the online agent's mean evaluation return exceeds the better offline "
                          "agent's by more than 50 (of a possible 500)"),
        measure=measure,
        plot=plot,
        anchor="Fujimoto et al. 2019 (arXiv:1812.02900): offline DQN trained on an expert's "
               "transitions fails where the behaviour policy scores well; Agarwal et al. 2020 "
               "(arXiv:1907.04543): offline DQN on a diverse log can match online DQN",
        tags=("agents",),
    )
