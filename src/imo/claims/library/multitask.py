"""The multi-task agent claim (imo.agents.multitask, issue 21).

* `multitask-agent` (id `multi-task-agent`): Mnih et al.'s DQN learnt one network per game; the
  notes cite "human-level performance in multi-task reinforcement learning", whose single-weights
  anchor is PopArt (Hessel et al. 2018). One DQN with a head per task on a shared trunk learns
  CartPole-v1, Acrobot-v1 and MountainCar-v0 at once (round-robin, one task per episode), with
  and without PopArt's per-task normalisation of the values. The two arms have the same recipe,
  steps, seed, network and schedule of gradient steps; they differ only in PopArt. Each task's
  greedy evaluation return is normalised against a random policy and imo's single-task recipe,
  capped at 1, and averaged over the three tasks.

The rule, stated before the recorded run: the claim's two halves must both hold, so the metric
is the smaller of their two margins,

    margin = min(popart_mean - 0.9, (popart_mean - plain_mean) - 0.25)

supported if the whole 95% interval of margin is above 0: with PopArt the mean capped normalised
score is above 0.9, and without it the mean is lower by more than 0.25 ("collapses"). It is
refuted if the whole interval is below 0.

    imo check multi-task-agent --quick
"""

from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: no display needed

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from imo.claims.plotting import save_figure  # noqa: E402
from imo.claims.registry import Claim, Context, Rule, register  # noqa: E402

FLOOR = 0.9      # the PopArt arm's mean capped normalised score must exceed this
COLLAPSE = 0.25  # and the plain arm's must be lower by more than this
ARMS = ("popart", "plain")
BINS = 20        # learning-curve points kept per task and arm
SIZES: dict[str, dict[str, Any]] = {
    "smoke": dict(steps=1500, learning_starts=500, episodes=2),
    "quick": dict(steps=None, learning_starts=None, episodes=10),  # None: the recipe's
    "full": dict(steps=None, learning_starts=None, episodes=20),
}


def _curve(episodes: list[dict], task: int, steps: int) -> list[float | None]:
    """Mean training-episode return of one task in BINS equal spans of steps (None: no episode
    ended in that span)."""
    edges = np.linspace(0, steps, BINS + 1)
    out: list[float | None] = []
    for lo, hi in zip(edges[:-1], edges[1:], strict=True):
        r = [e["return"] for e in episodes if e["task"] == task and lo < e["step"] <= hi]
        out.append(float(np.mean(r)) if r else None)
    return out


def measure(budget: str, seed: int, ctx: Context) -> dict[str, Any]:
    import torch

    from imo.agents import dqn, envs, multitask, runs

    torch.set_num_threads(1)
    s = SIZES[budget]
    over = {k: s[k] for k in ("steps", "learning_starts") if s[k] is not None}
    seeds = range(10_000, 10_000 + s["episodes"])
    names = list(multitask.TASKS)
    out: dict[str, Any] = {"_runs": []}
    for arm in ARMS:
        cfg = multitask.recipe(popart=arm == "popart", seed=seed, **over)
        env = envs.MultiTaskEnv(names)
        run_id = runs.start_run(ctx.store, names, cfg) if ctx.store is not None else None
        result = dqn.train(env, cfg, goal_on_terminate=multitask.goals(names))
        if run_id is not None:
            runs.finish_run(ctx.store, run_id, names, result,
                            int(env.observation_space.shape[0]), int(env.action_space.n))
            out["_runs"].append(run_id)
        env.close()
        rows = multitask.score(result.q, seeds, names)
        for r in rows:
            short = r["env"].split("-")[0].lower()
            out[f"{arm}_{short}_return"] = r["mean_return"]
            out[f"{arm}_{short}_normalised"] = r["normalised"]
            if "goal_rate" in r:
                out[f"{arm}_{short}_goal_rate"] = r["goal_rate"]
            out[f"random_{short}_return"] = r["random_return"]
            out[f"{arm}_{short}_curve"] = _curve(result.episodes, names.index(r["env"]), cfg.steps)
        out[f"{arm}_mean"] = float(np.mean([r["capped"] for r in rows]))
        out[f"{arm}_seconds"] = result.seconds
        out[f"{arm}_steps_per_s"] = result.steps_per_s
        ctx.log(f"{arm}: " + ", ".join(f"{r['env']} {r['mean_return']:.1f}" for r in rows)
                + f"; mean capped normalised {out[f'{arm}_mean']:.3f}")
    out["steps"] = cfg.steps
    out["eval_episodes"] = s["episodes"]
    out["gain"] = out["popart_mean"] - out["plain_mean"]
    out["margin"] = min(out["popart_mean"] - FLOOR, out["gain"] - COLLAPSE)
    return out


def plot(per_seed: list[dict[str, Any]], path) -> None:
    from imo.agents import multitask

    shorts = [n.split("-")[0].lower() for n in multitask.TASKS]
    fig, axes = plt.subplots(1, 4, figsize=(16, 3.8), dpi=100)
    steps = per_seed[0]["steps"] if per_seed else 1
    x = (np.arange(BINS) + 0.5) * steps / BINS
    for ax, name, short in zip(axes[:3], multitask.TASKS, shorts, strict=True):
        for i, arm in enumerate(ARMS):
            for j, f in enumerate(per_seed):
                y = np.array([np.nan if v is None else v for v in f[f"{arm}_{short}_curve"]])
                ax.plot(x, y, color=f"C{i}", alpha=0.8, lw=1,
                        label=("PopArt" if arm == "popart" else "no normalisation") if j == 0 else None)
        ax.axhline(multitask.SINGLE_TASK[name], color="k", ls="--", lw=0.8)
        ax.set_title(f"{name}: training returns", fontsize=9)
        ax.set_xlabel("environment steps (all tasks)")
        ax.grid(True, alpha=0.3)
    axes[0].set_ylabel("mean episode return per span")
    axes[0].legend(fontsize=8)
    ax = axes[3]
    width = 0.38
    for i, arm in enumerate(ARMS):
        for k, short in enumerate(shorts):
            vals = [min(f[f"{arm}_{short}_normalised"], 1.0) for f in per_seed]
            ax.bar(k + (i - 0.5) * width, float(np.mean(vals)), width, color=f"C{i}", alpha=0.5)
            ax.scatter([k + (i - 0.5) * width] * len(vals), vals, color=f"C{i}", s=10, zorder=3)
    ax.axhline(FLOOR, color="k", ls="--", lw=0.8)
    ax.set_xticks(range(len(shorts)), shorts)
    ax.set_ylabel("greedy score, normalised, capped at 1")
    ax.set_title("evaluation (dots: seeds; dashed: 0.9)", fontsize=9)
    ax.grid(True, axis="y", alpha=0.3)
    save_figure(fig, path)


@register
def multi_task_agent() -> Claim:
    return Claim(
        id="multi-task-agent",
        statement="One network learns CartPole, Acrobot and MountainCar together to a mean "
                  "normalised score above 0.9 when each task's values are normalised (PopArt), "
                  "and collapses without that normalisation.",
        source="source-notes: Mnih et al., human-level performance in multi-task reinforcement "
               "learning; most important thing is feedback system",
        experiment="One DQN (per-task heads on a shared 256-256 trunk, imo.agents.multitask's "
                   "recipe) on CartPole-v1, Acrobot-v1 and MountainCar-v0 round-robin, one task "
                   "per episode, with and without PopArt and otherwise identical: the recipe's "
                   "steps for the full budget and the quick preview, 1,500 for smoke. Each "
                   "network plays 2/10/20 greedy episodes per task (smoke/quick/full) on seeds "
                   "10000, .... A task's score is (R - R_random) / (R_single - R_random): a "
                   "random policy on the same seeds, and imo's single-task recipe (CartPole "
                   "500.00, Acrobot -85.85, MountainCar -111.17), capped at 1 and averaged over "
                   "the tasks. margin = min(PopArt's mean - 0.9, PopArt's mean - the plain "
                   "arm's mean - 0.25).",
        rule=Rule(metric="margin", op=">", threshold=0.0, effect=0.0, noise=0.15,
                  meaning="with PopArt the mean capped normalised score over the three tasks is "
                          "above 0.9, and without it the mean is more than 0.25 lower"),
        measure=measure,
        plot=plot,
        anchor="Hessel et al. 2018 (arXiv:1809.04474): one IMPALA network with PopArt reaches "
               "above-median human-normalised performance over 57 Atari games, where the same "
               "agent without PopArt (clipped rewards) does much worse",
        tags=("agents",),
    )
