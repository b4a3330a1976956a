"""An agent's run in the run store: its config, Q-network weights (safetensors), curve and scores.

    rid = save_run(store, ["CartPole-v1"], result)     # kind "agent-dqn"
    q, meta = load_run(store, rid)

Files in the run folder: q.safetensors (the online network), agent.json (env names, config,
network shape) and curve.png (episode returns against steps, one line per task).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from imo.agents.dqn import DQNConfig, QNetwork, TrainResult
from imo.atomic import write_text
from imo.errors import CheckpointError

KIND = "agent-dqn"


def run_name(env_names: list[str], cfg: DQNConfig) -> str:
    from imo.runs.store import config_hash

    short = "+".join(n.split("/")[-1].split("-")[0].lower() for n in env_names)
    return f"dqn-{short}-{config_hash({'envs': env_names, **cfg.to_dict()})[:6]}"


def start_run(store, env_names: list[str], cfg: DQNConfig) -> str:
    return store.create_run(KIND, run_name(env_names, cfg), {"envs": env_names, **cfg.to_dict()})


def finish_run(store, run_id: str, env_names: list[str], result: TrainResult,
               obs_dim: int, n_actions: int) -> dict:
    """Write the weights, agent.json, curve.png and metrics; return the figures recorded."""
    from safetensors.torch import save_file

    folder = Path(store.run_dir(run_id))
    save_file({k: v.contiguous() for k, v in result.q.state_dict().items()},
              str(folder / "q.safetensors"))
    meta = {"envs": env_names, "config": result.config.to_dict(), "obs_dim": obs_dim,
            "n_actions": n_actions, "tasks": result.q.tasks}
    write_text(folder / "agent.json", json.dumps(meta, indent=2) + "\n")
    rows: dict[int, dict[str, float]] = {}
    for ep in result.episodes:
        rows.setdefault(ep["step"], {})[f"return/{env_names[ep['task']]}"] = ep["return"]
    for step, loss in result.losses:
        rows.setdefault(step, {})["train/td_loss"] = loss
    for step, metrics in sorted(rows.items()):
        store.log_metrics(run_id, step, metrics)
    curve = plot_curve(result, env_names, folder / "curve.png")
    store.add_artifact(run_id, "q", folder / "q.safetensors")
    store.add_artifact(run_id, "curve", curve)
    figures = {"steps": result.config.steps, "episodes": len(result.episodes),
               "seconds": round(result.seconds, 2), "steps_per_s": round(result.steps_per_s, 1)}
    if result.selected:
        figures["selected_step"] = result.selected["step"]
        figures["selected_validation_return"] = result.selected["score"]
    for i, name in enumerate(env_names):
        last = [e["return"] for e in result.episodes if e["task"] == i][-20:]
        if last:
            figures[f"last20_return/{name}"] = float(np.mean(last))
    store.finish(run_id, figures)
    return figures


def load_run(store, run_id: str) -> tuple[QNetwork, dict]:
    from safetensors.torch import load_file

    folder = Path(store.run_dir(run_id))
    try:
        meta = json.loads((folder / "agent.json").read_text())
        state = load_file(str(folder / "q.safetensors"))
    except FileNotFoundError:
        raise CheckpointError(f"run {run_id} has no agent files in {folder}",
                              hint="is it an `imo agent train` run that finished?") from None
    except (OSError, ValueError) as e:
        raise CheckpointError(f"run {run_id}: cannot read its agent files ({e})") from None
    q = QNetwork(meta["obs_dim"], meta["n_actions"], tuple(meta["config"]["hidden"]),
                 meta.get("tasks", 0))
    q.load_state_dict(state)
    q.eval()
    return q, meta


def plot_curve(result: TrainResult, env_names: list[str], path: Path) -> Path:
    """Episode returns against environment steps (a 20-episode moving mean over the raw points)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(env_names), figsize=(4.5 * len(env_names), 3.2), squeeze=False)
    for i, (ax, name) in enumerate(zip(axes[0], env_names, strict=True)):
        eps = [e for e in result.episodes if e["task"] == i]
        x = np.array([e["step"] for e in eps])
        y = np.array([e["return"] for e in eps])
        if len(y):
            ax.plot(x, y, ".", ms=2, alpha=0.3, color="C0")
            k = min(20, len(y))
            ax.plot(x[k - 1:], np.convolve(y, np.ones(k) / k, mode="valid"), color="C0")
        ax.set_title(name)
        ax.set_xlabel("environment steps")
        ax.set_ylabel("episode return")
    fig.suptitle(f"DQN, seed {result.config.seed}")
    fig.tight_layout()
    with open(path, "wb") as f:  # run folders are fresh; no overwrite of anything else
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)
    return path
