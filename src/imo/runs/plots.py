"""Loss curves of runs as PNG: each run's bits-per-byte series against the training step.

Drawn with matplotlib's Agg backend (no display needed); the file is written atomically, so a
reader never sees half a PNG.

    loss_curve_png(store, [rid], store.run_dir(rid) / "loss.png")
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # before pyplot: headless machines and CI have no display

import matplotlib.pyplot as plt  # noqa: E402

from imo.atomic import atomic_path
from imo.runs.store import RunStore  # noqa: E402

DEFAULT_KEYS = ("train/bpb", "val/bpb")


def curves(
    store: RunStore, run_id: str, key_prefix: str | Sequence[str] = DEFAULT_KEYS
) -> dict[str, tuple[list[int], list[float]]]:
    """{key: (steps, values)} for the run's metric keys that start with one of key_prefix."""
    prefixes = (key_prefix,) if isinstance(key_prefix, str) else tuple(key_prefix)
    out: dict[str, tuple[list[int], list[float]]] = {}
    for step, key, value in store.metrics(run_id):
        if key.startswith(prefixes):
            steps, values = out.setdefault(key, ([], []))
            steps.append(step)
            values.append(value)
    return out


def loss_curve_png(
    store: RunStore,
    run_ids: list[str],
    out: Path,
    key_prefix: str | Sequence[str] = DEFAULT_KEYS,
) -> Path:
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(8, 5), dpi=100)
    try:
        drawn = 0
        for i, rid in enumerate(run_ids):
            name = store.get(rid)["name"]
            color = f"C{i % 10}"  # one colour per run; its series differ by line style
            for key, (steps, values) in sorted(curves(store, rid, key_prefix).items()):
                style = "--" if key.startswith("val") else "-"
                # validation points are sparse, so mark them; training series are dense lines
                marker = "o" if len(steps) < 30 else None
                ax.plot(steps, values, style, color=color, marker=marker, markersize=3,
                        label=f"{name} {key}")  # fmt: skip
                drawn += 1
        if drawn:
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, "no metrics logged", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel("step")
        ax.set_ylabel("bits per byte")
        ax.grid(True, alpha=0.3)
        fig.tight_layout()
        with atomic_path(out) as tmp:
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return out
