"""The passkey exam: can a model return a 5-digit key hidden deep in a long, boring prompt?

The format is landmark attention's (Mohtashami & Jaggi 2023; imo.memory.passkey): repeated garbage
sentences, the needle "The pass key is N. Remember it. N is the pass key." at a depth of the
garbage, optional distractor numbers, and the question "What is the pass key? The pass key is ".
A trial passes when the model's most likely next byte is the right digit at each of the 5 answer
positions (teacher-forced, which is the same test as greedy decoding of 5 bytes).

Memory models (imo.memory: bswa, fam, infini) read the whole prompt block by block, in constant
memory. A plain GPT reads at most its training context: prompts longer than that are cut to their
last `context_length` bytes (what a full-attention model trained at that length can see), so past
its length the needle is simply gone. For Infini the result also groups trials by the number of
compressions between the needle and the question (blocks written into the memory after the
needle's block), the curve along which Hugging Face's reimplementation saw Infini-attention fail.

    out = passkey_exam({"fam": model}, lengths=[512, 4096], depths=[0.1, 0.5, 0.9], trials=8)
    imo exam passkey RUN [RUN ...] --lengths 512,1024,2048,4096,8192 --plot passkey.png
"""

import random
from collections.abc import Callable

import torch
from torch import nn

from imo.errors import ConfigError
from imo.memory.model import MemoryLM
from imo.memory.passkey import MIN_BYTES, Episode, episode, needle

LENGTHS = (512, 1024, 2048, 4096, 8192)
DEPTHS = (0.1, 0.5, 0.9)
ANSWER = 5


def check_grid(lengths, depths, trials: int, distractors: int) -> None:
    if any(n < MIN_BYTES for n in lengths):
        raise ConfigError(f"passkey lengths must be >= {MIN_BYTES} bytes (the needle, a distractor and the question)")
    if any(not 0.0 <= d <= 1.0 for d in depths):
        raise ConfigError(f"depths must be in [0, 1], got {', '.join(map(str, depths))}")
    if trials < 1:
        raise ConfigError(f"trials must be >= 1, got {trials}")
    if not 0 <= distractors <= 4:
        raise ConfigError(f"distractors must be in 0..4, got {distractors}")


@torch.no_grad()
def answer_logits(model: nn.Module, rows: torch.Tensor) -> torch.Tensor:
    """Logits (B, 5, vocab) at the positions that predict the answer's digits: rows (B, T) are
    prompt + answer without the last byte; read on the model's device, returned on the CPU."""
    rows = rows.to(next(model.parameters()).device)
    if isinstance(model, MemoryLM):
        logits, _ = model.stream(rows, model.init_state(rows.size(0)), keep=ANSWER)
        return logits.cpu()
    window = rows[:, -model.cfg.context_length:]  # a full-attention model sees its context only
    return model(window)[0][:, -ANSWER:].cpu()


def compressions(model: nn.Module, ep: Episode, key: int) -> int | None:
    """Blocks written into an Infini memory between the needle's last byte and the question."""
    if not (isinstance(model, MemoryLM) and model.mem.arch == "infini"):
        return None
    b = model.mem.block
    return (len(ep.prompt) - 1) // b - (ep.key_at + len(needle(key)) - 1) // b


def bucket(n: int) -> int:
    """0, 1, 2, 4, 8, ...: the largest power of two <= n (0 for 0)."""
    return 0 if n <= 0 else 1 << (n.bit_length() - 1)


def passkey_exam(models: dict[str, nn.Module], lengths=LENGTHS, depths=DEPTHS, trials: int = 8,
                 distractors: int = 1, seed: int = 0, log: Callable[[str], None] = lambda m: None) -> dict:
    """Accuracy of each model at each (length, depth) on the same episodes; per model also the
    accuracy by compressions (Infini). Episodes of one cell are scored as one batch."""
    check_grid(lengths, depths, trials, distractors)
    out = {"lengths": list(lengths), "depths": list(depths), "trials": trials, "distractors": distractors,
           "seed": seed, "models": {}}
    cells: dict[str, dict] = {name: {} for name in models}
    by_comp: dict[str, dict[int, list[int]]] = {name: {} for name in models}
    for length in lengths:
        for depth in depths:
            rng = random.Random(f"{seed}-{length}-{depth}")
            eps = [episode(length, depth, rng, distractors) for _ in range(trials)]
            rows = torch.tensor([list(e.prompt + e.answer) for e in eps], dtype=torch.long)
            answers = rows[:, -ANSWER:]
            for name, model in models.items():
                ok = (answer_logits(model, rows[:, :-1]).argmax(-1) == answers).all(-1).tolist()
                cells[name][f"{length}@{depth:g}"] = sum(ok) / trials
                for e, passed in zip(eps, ok, strict=True):
                    n = compressions(model, e, int(e.answer))
                    if n is not None:
                        by_comp[name].setdefault(bucket(n), []).append(int(passed))
            log(f"length {length} depth {depth:g}: " + ", ".join(f"{n} {cells[n][f'{length}@{depth:g}']:.0%}"
                                                               for n in models))
    for name, model in models.items():
        row = {"cells": cells[name],
               "by_length": {str(n): sum(cells[name][f"{n}@{d:g}"] for d in depths) / len(depths) for n in lengths}}
        if isinstance(model, MemoryLM):
            row["arch"], row["block"], row["window"] = model.mem.arch, model.mem.block, model.mem.window
            row["state_floats"] = model.mem.state_floats(model.cfg.n_layer, model.cfg.n_embd, model.cfg.n_head)
        else:
            row["arch"], row["window"] = "gpt", model.cfg.context_length
        if by_comp[name]:
            row["by_compressions"] = {str(k): {"accuracy": sum(v) / len(v), "trials": len(v)}
                                      for k, v in sorted(by_comp[name].items())}
        if isinstance(model, MemoryLM) and model.mem.arch == "infini":
            row["gates"] = model.gates().tolist()
        out["models"][name] = row
    return out


def plot(out: dict, path) -> None:
    """Accuracy against length (one line per model and depth); for Infini, against compressions."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from imo.atomic import atomic_path

    comp = {n: r["by_compressions"] for n, r in out["models"].items() if "by_compressions" in r}
    fig, axes = plt.subplots(1, 2 if comp else 1, figsize=(11 if comp else 6, 4), squeeze=False)
    ax = axes[0][0]
    for i, (name, r) in enumerate(out["models"].items()):
        for j, d in enumerate(out["depths"]):
            ys = [r["cells"][f"{n}@{d:g}"] for n in out["lengths"]]
            ax.plot(out["lengths"], ys, marker="o", color=f"C{i}", alpha=0.4 + 0.6 * (j + 1) / len(out["depths"]),
                    label=f"{name} depth {d:g}")
        ax.axvline(r["window"], color=f"C{i}", linestyle=":", linewidth=1)
    ax.set(xscale="log", xlabel="prompt bytes (dotted: each model's window)", ylabel="passkey accuracy",
           ylim=(-0.05, 1.05), title="passkey accuracy against length")
    ax.minorticks_off()
    ax.set_xticks(out["lengths"], [str(n) for n in out["lengths"]])
    ax.legend(fontsize=6)
    if comp:
        ax = axes[0][1]
        for name, c in comp.items():
            ks = sorted(int(k) for k in c)
            ax.plot([max(k, 0.5) for k in ks], [c[str(k)]["accuracy"] for k in ks], marker="o", label=name)
        ax.set(xscale="log", xlabel="compressions between needle and question (0 plotted at 0.5)",
               ylabel="accuracy", ylim=(-0.05, 1.05), title="Infini: accuracy against compressions")
        ticks = sorted({int(k) for c in comp.values() for k in c})
        ax.minorticks_off()
        ax.set_xticks([max(k, 0.5) for k in ticks], [f"{k}+" if k else "0" for k in ticks])
        ax.legend(fontsize=7)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight")
    plt.close(fig)
