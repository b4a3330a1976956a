"""Search where checking is easier than solving: the verifiers that judge with the policy's own
weights (`selfeval`, `judge:RUN`, see selfeval.py) beside every other, accuracy-against-tokens
curves over any of them, and reliability diagrams (calibration) of a verifier's probabilities.

Importing this module registers `tot-dfs` (tot.py). `load` reads every verifier name:

  selfeval     the policy judging its own steps (a policy made by `imo reason train-judge --share`)
  judge:RUN    a separate judge of the policy (`imo reason train-judge --separate`)
  oracle, self, vote, orm:RUN, prm:RUN   as in imo.reason.verifiers

    ver = load("selfeval", store, policy)
    rows = curve(policy, probs, [("tot-dfs", "selfeval"), ("best-of-n", "vote")], [1, 4, 16], store)
    cal = reliability(ver, policy, probs, samples=4)     # bins, ECE
"""

import json
from typing import Any

from imo.errors import ConfigError
from imo.reason import tot  # noqa: F401  (registers tot-dfs)
from imo.reason.core import POLICY_KIND, Candidate, check_kind
from imo.reason.methods import run_many
from imo.reason.policy import PolicyConfig, sample_many
from imo.reason.search import solution_cost
from imo.reason.selfeval import ASK, SelfJudge, label, prefixes
from imo.reason.verifiers import load_verifier
from imo.runs.store import RunStore
from imo.tasks import Problem

NAMES = ("oracle", "self", "vote", "orm:RUN", "prm:RUN", "selfeval", "judge:RUN")


def judges(store: RunStore, run_id: str) -> bool:
    """Whether a policy run was trained on judging rows (its explicit examples hold some)."""
    path = store.run_dir(run_id) / "examples.json"
    if not path.exists():
        return False
    return any(p.endswith(ASK) for p, _ in json.loads(path.read_text()))


def load(spec: str, store: RunStore | None, policy) -> Any:
    """Any verifier by name (see the module's list)."""
    name, _, run = spec.partition(":")
    if name == "selfeval":
        if run:
            raise ConfigError("verifier selfeval takes no run: it is the policy itself; a separate judge is judge:RUN")
        run_id = getattr(policy, "meta", {}).get("run")
        if run_id is not None and not judges(store or RunStore.open(), run_id):
            raise ConfigError(f"policy {run_id} was not trained to judge its steps; make one with "
                              f"`imo reason train-judge {run_id} --share` and search with that run")
        return SelfJudge(policy.model, "selfeval")
    if name == "judge":
        if not run:
            raise ConfigError("verifier judge needs its run: judge:RUN (train one with "
                              "`imo reason train-judge POLICY_RUN --separate`)")
        from imo.train.checkpoint import load_model

        store = store or RunStore.open()
        run_id = store.resolve(run)
        info = check_kind(store, run_id, POLICY_KIND, "a judge (a policy run trained on judging rows)")
        if not judges(store, run_id):
            raise ConfigError(f"run {run_id} was not trained on judging rows; train one with "
                              "`imo reason train-judge POLICY_RUN --separate`")
        task = PolicyConfig.from_dict(info["config"]).task
        if policy is not None and policy.task.name != task:
            raise ConfigError(f"judge {run_id} was trained for {task}, the policy solves {policy.task.name}")
        model, _ = load_model(store.run_dir(run_id))
        return SelfJudge(model, f"judge:{run_id}")
    try:
        return load_verifier(spec, store, policy)
    except ConfigError as e:
        if "unknown verifier" in str(e):
            raise ConfigError(f"unknown verifier {name!r}; choose one of: {', '.join(NAMES)}") from None
        raise


def curve(policy, probs: list[Problem], arms: list[tuple[str, str]], multiples: list[int], store: RunStore | None,
          seed: int = 0, temperature: float = 1.0, log=lambda msg: None) -> list[dict[str, Any]]:
    """Greedy, then every (method, verifier) arm at every multiple of one greedy solution's worst
    case; an arm the budget cannot pay for once is left out at that budget. Rows as
    imo.reason.curve's, so plot_curve draws them."""
    one = solution_cost(policy)
    g = run_many(policy, probs, "greedy", None, one, seed)
    rows = [{"method": "greedy", "verifier": "-", "multiple": 1, **g}]
    log(f"greedy: {g['accuracy']:.3f}")
    for method, spec in arms:
        ver = load(spec, store, policy)
        for x in multiples:
            try:
                r = run_many(policy, probs, method, ver, x * one, seed, temperature=temperature)
            except ConfigError as e:
                if "too small" not in str(e):
                    raise
                continue
            rows.append({"method": method, "verifier": spec.split(":")[0], "multiple": x, **r})
            log(f"{method} with {spec} at {x}x: {r['accuracy']:.3f} ({r['tokens']:.0f} tokens)")
    return rows


def reliability(verifier, policy, probs: list[Problem], samples: int = 4, seed: int = 0, bins: int = 10,
                temperature: float = 1.0) -> dict[str, Any]:
    """A reliability diagram of a verifier's probabilities on every line-boundary prefix of
    `samples` sampled solutions per problem, against the exact labels: per bin the mean predicted
    probability, the share that is right, and the count; the expected calibration error (ECE,
    count-weighted |right - predicted|), the Brier score and the accuracy of the 0.5 cut."""
    policy.reseed(seed)
    items = [p for p in probs for _ in range(samples)]
    texts = sample_many(policy, [(p.prompt, "") for p in items], temperature)
    pairs: list[tuple[float, bool]] = []
    for p, t in zip(items, texts, strict=True):
        pres = prefixes(t if t.endswith("\n") or not t else t + "\n")
        if not pres:
            continue
        scores = verifier.score(p, [Candidate(q) for q in pres])
        pairs += [(float(s), label(policy.task, p, q)) for s, q in zip(scores, pres, strict=True)]
    if not pairs:
        raise ConfigError("the policy wrote no line to judge; give more problems")
    table = []
    for b in range(bins):
        lo, hi = b / bins, (b + 1) / bins
        inside = [(s, y) for s, y in pairs if lo <= s < hi or (b == bins - 1 and s == 1.0)]
        if inside:
            table.append({"lo": lo, "hi": hi, "n": len(inside), "predicted": sum(s for s, _ in inside) / len(inside),
                          "right": sum(y for _, y in inside) / len(inside)})
    n = len(pairs)
    ece = sum(r["n"] * abs(r["right"] - r["predicted"]) for r in table) / n
    brier = sum((s - y) ** 2 for s, y in pairs) / n
    acc = sum((s >= 0.5) == y for s, y in pairs) / n
    return {"verifier": verifier.name.split(":")[0], "n": n, "positive_share": sum(y for _, y in pairs) / n,
            "ece": ece, "brier": brier, "accuracy": acc, "bins": table}


def plot_reliability(cals: list[dict[str, Any]], path, title: str = "") -> None:
    """One reliability diagram, a line per verifier (the diagonal is perfect calibration)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from imo.atomic import atomic_path
    from imo.claims.plotting import save_figure

    fig, ax = plt.subplots(figsize=(5.5, 5), dpi=100)
    ax.plot([0, 1], [0, 1], color="0.6", ls=":", label="perfectly calibrated")
    for i, c in enumerate(cals):
        xs = [b["predicted"] for b in c["bins"]]
        ys = [b["right"] for b in c["bins"]]
        ax.plot(xs, ys, "o-", color=f"C{i}", label=f"{c['verifier']} (ECE {c['ece']:.3f}, n {c['n']})")
    ax.set_xlabel("predicted probability that the prefix is right")
    ax.set_ylabel("share that is right (exact labels)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    with atomic_path(path) as tmp:
        save_figure(fig, tmp)


def fresh_problems(cfg: PolicyConfig, n: int, stream: str = "fresh") -> list[Problem]:
    """`n` distinct problems of the policy's task and difficulty from a stream of their own, none in
    its training or test set (a scoring split for choices fitted on the test set)."""
    import random

    from imo.reason.policy import problems, step_task

    task = step_task(cfg.task)
    train, test = problems(cfg)
    seen = {p.key for p in train} | {p.key for p in test}
    rng = random.Random(f"{cfg.data_seed}/{stream}")
    out: dict[str, Problem] = {}
    for _ in range(50 * n):
        if len(out) >= n:
            break
        p = task.generate(rng, cfg.difficulty)
        if p.key not in seen:
            out.setdefault(p.key, p)
    if len(out) < n:
        raise ConfigError(f"{cfg.task} difficulty {cfg.difficulty} has too few problems outside the policy's "
                          f"training and test sets for {n} fresh problems; ask for fewer")
    return list(out.values())
