"""An episode as a PNG strip: the greedy policy plays one episode with render_mode="rgb_array"
and a few evenly spaced frames are laid side by side, each captioned with its step.

    path = episode_strip(q, "CartPole-v1", seed=10000, frames=8, out=Path("cartpole.png"))

gymnasium's classic-control renderers draw with pygame (in imo's `agents` extra).
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from imo.errors import ConfigError


def play(q, name: str, seed: int, task: int | None = None, names: list[str] | None = None,
         ) -> tuple[list[np.ndarray], list[int], float]:
    """One greedy episode of env `name` rendered as rgb arrays: (frames, step of each, return).
    With several tasks (`names`), the observation gets the MultiTaskEnv layout for `task`."""
    from imo.agents import envs
    from imo.agents.dqn import greedy

    if "rgb_array" not in envs.make(name).metadata.get("render_modes", []):
        raise ConfigError(f"{name} cannot be rendered (no rgb_array render mode)")
    try:
        env = envs.make(name, render_mode="rgb_array")
    except Exception as e:  # gymnasium raises DependencyNotInstalled without pygame
        if "pygame" in str(e):
            raise ConfigError("rendering needs pygame", hint="pip install 'imo[agents]'") from None
        raise
    layout = envs.MultiTaskEnv(names) if names and len(names) > 1 else None
    obs, _ = env.reset(seed=seed)
    images, steps, total, step, done = [env.render()], [0], 0.0, 0, False
    while not done:
        x, mask = obs, None
        if layout is not None:  # pad and tag the observation as the multi-task network expects
            layout.task = task or 0
            x, mask = layout._obs(obs), layout.action_mask()
        obs, r, term, trunc, _ = env.step(greedy(q, x, mask))
        total += float(r)
        step += 1
        done = term or trunc
        images.append(env.render())
        steps.append(step)
    env.close()
    if layout is not None:
        layout.close()
    return images, steps, total


def episode_strip(q, name: str, seed: int, frames: int, out: Path, task: int | None = None,
                  names: list[str] | None = None) -> dict:
    """Write `frames` evenly spaced frames of one greedy episode to `out` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from imo.atomic import write_bytes

    images, steps, total = play(q, name, seed, task, names)
    pick = np.unique(np.linspace(0, len(images) - 1, min(frames, len(images))).round().astype(int))
    fig, axes = plt.subplots(1, len(pick), figsize=(2.0 * len(pick), 1.8), squeeze=False)
    for ax, i in zip(axes[0], pick, strict=True):
        ax.imshow(images[i])
        ax.set_title(f"step {steps[i]}", fontsize=8)
        ax.axis("off")
    fig.suptitle(f"{name}, seed {seed}: return {total:.1f} in {steps[-1]} steps", fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    write_bytes(out, buf.getvalue())
    return {"env": name, "seed": seed, "return": total, "length": steps[-1],
            "frames": [int(steps[i]) for i in pick]}
