"""The reasoning claims run end to end at the smoke budget: figures hold the rule's metric, finite,
the runs they name are finished, and the plots write PNGs."""

import math

import pytest

import imo.claims.library.instinct  # noqa: F401  (registers the claims)
import imo.claims.library.reasoning  # noqa: F401
from imo.claims.registry import CLAIMS, Context
from imo.claims.verdict import VERDICTS, decide
from imo.runs.store import RunStore

IDS = ["instinct-vs-thinking", "prm-beats-orm", "search-then-learn"]


@pytest.mark.parametrize("claim_id", IDS)
def test_smoke_figures_hold_a_finite_metric(claim_id, tmp_path):
    claim = CLAIMS.get(claim_id)
    ctx = Context(store=RunStore.open())
    figures = claim.measure("smoke", 0, ctx)
    value = figures[claim.rule.metric]
    assert isinstance(value, float) and math.isfinite(value)
    assert figures["_runs"] and all(ctx.store.get(r)["status"] == "finished" for r in figures["_runs"])
    assert decide(claim.rule, [value], "smoke").verdict in VERDICTS
    claim.plot([figures, figures], tmp_path / "plot.png")
    assert (tmp_path / "plot.png").read_bytes()[:4] == b"\x89PNG"


def _cfg(budget: str):
    from imo.claims.library.instinct import SIZES
    from imo.reason.policy import PolicyConfig

    s = SIZES[budget]
    return PolicyConfig(task="arith", difficulty=s["difficulty"], seed=0, **s["policy"])


@pytest.mark.parametrize("budget", ["smoke", "quick", "full"])
def test_scoring_problems_are_fresh_and_disjoint_from_selection(budget):
    from imo.claims.library.instinct import SIZES, scoring_problems
    from imo.reason.policy import problems

    cfg, s = _cfg(budget), SIZES[budget]
    train, test = problems(cfg)
    selection = test[: s["n"]]
    scoring = scoring_problems(cfg, s["score"])
    keys = [p.key for p in scoring]
    assert len(keys) == len(set(keys)) == s["score"] and len(selection) == s["n"]
    assert not set(keys) & {p.key for p in selection}  # never chosen on what it is scored on
    assert not set(keys) & {p.key for p in train + test}  # nor trained on
    assert [p.key for p in scoring_problems(cfg, s["score"])] == keys  # the same draw every time


def test_too_few_fresh_problems_is_a_clear_error():
    from dataclasses import replace

    from imo.claims.library.instinct import scoring_problems
    from imo.errors import ConfigError

    with pytest.raises(ConfigError, match="too few problems outside"):
        scoring_problems(replace(_cfg("smoke"), n_train=200, n_test=4), 300)  # 235 in all


def test_choose_arm_reads_learned_verifiers_within_the_budget_only():
    from imo.claims.library.instinct import choose_arm

    row = lambda m, v, x, acc, tok: dict(method=m, verifier=v, multiple=x, accuracy=acc, tokens=tok)  # noqa: E731
    rows = [row("greedy", "-", 1, 0.9, 30), row("best-of-n", "oracle", 4, 1.0, 120),
            row("beam", "prm", 32, 0.95, 900), row("best-of-n", "orm", 16, 0.7, 480),
            row("mcts", "prm", 4, 0.7, 110), row("beam", "orm", 4, 0.6, 100)]
    assert choose_arm(rows, 16)["method"] == "mcts"  # best learned arm at <= 16x; the cheaper on a tie
    assert choose_arm(rows[:3], 16) is None


def test_the_rule_scores_the_chosen_arm_on_the_fresh_split_only(monkeypatch):
    import imo.reason.curve as curve
    import imo.reason.methods as methods
    from imo.claims.library.instinct import SIZES, scoring_problems
    from imo.reason.policy import problems

    calls = []
    real = methods.run_many

    def spy(policy, probs, method="greedy", verifier=None, budget=None, seed=0, **knobs):
        out = real(policy, probs, method, verifier, budget, seed, **knobs)
        calls.append((method, frozenset(p.key for p in probs), out["accuracy"]))
        return out

    monkeypatch.setattr(methods, "run_many", spy)
    monkeypatch.setattr(curve, "run_many", spy)
    figures = CLAIMS.get("instinct-vs-thinking").measure("smoke", 0, Context(store=RunStore.open()))
    cfg, s = _cfg("smoke"), SIZES["smoke"]
    selection = frozenset(p.key for p in problems(cfg)[1][: s["n"]])
    scoring = frozenset(p.key for p in scoring_problems(cfg, s["score"]))
    scored = [c for c in calls if c[1] == scoring]
    assert [c[0] for c in scored][0] == "greedy" and len(scored) == (1 if figures["chosen_arm"] == "greedy" else 2)
    assert figures["learned_gain"] == scored[-1][2] - scored[0][2]
    assert figures["n_score"] == len(scoring) and figures["n"] == len(selection)
    assert any(c[1] == selection for c in calls)  # the arms were compared on the selection split
    assert not [c for c in calls if c[1] & scoring and c[1] != scoring]  # no mixing of the splits
