"""Accuracy against compute: every search method and verifier at budgets that are multiples of one
greedy solution's worst case, on the policy's unseen test problems, with greedy as the baseline.
The x axis is the tokens actually spent per problem (policy generated + verifier read).

    curve = accuracy_curve(store, policy_run, ["best-of-n", "beam"], ["orm:RUN"], [1, 4, 16], n=100)
    plot_curve([curve], "curve.png")
"""

from pathlib import Path
from typing import Any

from imo.atomic import atomic_path
from imo.reason.methods import run_many
from imo.reason.policy import GPTPolicy, load_policy, problems
from imo.reason.search import solution_cost
from imo.reason.verifiers import load_verifier
from imo.runs.store import RunStore


def accuracy_curve(store: RunStore, run: str, methods: list[str], verifiers: list[str], multiples: list[int],
                   n: int, seed: int = 0, oracle: bool = True, log=lambda msg: None,
                   probs=None, policy: GPTPolicy | None = None, temperature: float = 1.0) -> dict[str, Any]:
    policy = policy or load_policy(store, run, seed)
    probs = probs if probs is not None else problems(policy.meta["config"])[1][:n]
    one = solution_cost(policy)
    rows = []
    g = run_many(policy, probs, "greedy", None, one, seed)
    rows.append({"method": "greedy", "verifier": "-", "multiple": 1, **g})
    log(f"greedy: {g['accuracy']:.3f}")
    pairs = [(m, v) for v in verifiers for m in methods]
    if oracle:
        pairs.append(("best-of-n", "oracle"))
    for method, spec in pairs:
        ver = load_verifier(spec, store, policy)
        for x in multiples:
            if method == "revision" and spec in ("self", "vote"):
                continue
            try:
                r = run_many(policy, probs, method, ver, x * one, seed, temperature=temperature)
            except Exception as e:  # a budget too small for this method: no point there
                from imo.errors import ConfigError

                if not isinstance(e, ConfigError):
                    raise
                continue
            rows.append({"method": method, "verifier": spec.split(":")[0], "multiple": x, **r})
            log(f"{method} with {spec} at {x}x: {r['accuracy']:.3f} ({r['tokens']:.0f} tokens)")
    return {"policy": policy.meta.get("run", run), "greedy_budget": one, "n": len(probs), "rows": rows,
            "temperature": temperature}


def best_gain(curve: dict[str, Any], max_multiple: int, learned_only: bool = True) -> tuple[float, str]:
    """The largest accuracy gain over greedy at <= max_multiple x greedy's budget, and its row."""
    greedy = next(r for r in curve["rows"] if r["method"] == "greedy")["accuracy"]
    best, name = -1.0, ""
    for r in curve["rows"]:
        if r["method"] == "greedy" or r["multiple"] > max_multiple:
            continue
        if learned_only and r["verifier"] not in ("orm", "prm"):
            continue
        if r["accuracy"] - greedy > best:
            best, name = r["accuracy"] - greedy, f"{r['method']}+{r['verifier']}@{r['multiple']}x"
    return best, name


def plot_curve(curves: list[dict[str, Any]], path: str | Path, title: str = "") -> None:
    """Accuracy vs tokens per problem, one line per (method, verifier); several curves (seeds)
    are drawn thin on top of each other."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from imo.claims.plotting import save_figure

    fig, ax = plt.subplots(figsize=(7.5, 4.8), dpi=100)
    keys: list[tuple[str, str]] = []
    for c in curves:
        for r in c["rows"]:
            k = (r["method"], r["verifier"])
            if k not in keys:
                keys.append(k)
    styles = {"oracle": ":", "orm": "--", "prm": "-", "self": "-.", "vote": (0, (1, 1))}
    for i, k in enumerate(keys):
        for j, c in enumerate(curves):
            pts = sorted((r["tokens"], r["accuracy"]) for r in c["rows"] if (r["method"], r["verifier"]) == k)
            if not pts:
                continue
            xs, ys = zip(*pts, strict=True)
            label = (k[0] if k[0] == "greedy" else f"{k[0]} ({k[1]})") if j == 0 else None
            marker = "*" if k[0] == "greedy" else "o"
            ax.plot(xs, ys, marker=marker, ls=styles.get(k[1], "-"), color=f"C{i % 10}", alpha=0.85,
                    label=label, markersize=9 if k[0] == "greedy" else 4)
    ax.set_xscale("log", base=2)
    ax.set_xlabel("tokens per problem (policy generated + verifier read)")
    ax.set_ylabel("test accuracy (oracle-checked)")
    ax.set_ylim(-0.02, 1.02)
    if title:
        ax.set_title(title, fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    with atomic_path(path) as tmp:
        save_figure(fig, tmp)
