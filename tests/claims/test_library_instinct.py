"""instinct-vs-thinking (v3, countdown) runs end to end at the smoke budget; its scoring split is
fresh and disjoint from the selection split and from training; the arm is chosen among learned
verifiers only; and the rule reads only the chosen arm and greedy on the scoring split."""

import math

import pytest

import imo.claims.library.instinct as I
from imo.claims.registry import CLAIMS, Context
from imo.claims.verdict import VERDICTS, decide
from imo.runs.store import RunStore


def _cfg(budget: str):
    from imo.reason.policy import PolicyConfig

    return PolicyConfig(task=I.TASK, difficulty=I.DIFFICULTY, seed=0, **{**I.POLICY, **I.SIZES[budget]["policy"]})


@pytest.mark.parametrize("budget", ["smoke", "quick", "full"])
def test_scoring_problems_are_fresh_and_disjoint_from_selection(budget):
    from imo.reason.policy import problems

    cfg, s = _cfg(budget), I.SIZES[budget]
    train, test = problems(cfg)
    selection = test[: s["n"]]
    scoring = I.scoring_problems(cfg, s["score"])
    keys = [p.key for p in scoring]
    assert len(keys) == len(set(keys)) == s["score"] and len(selection) == s["n"]
    assert not set(keys) & {p.key for p in selection}  # never chosen on what it is scored on
    assert not set(keys) & {p.key for p in train + test}  # nor trained on
    assert [p.key for p in I.scoring_problems(cfg, s["score"])] == keys  # the same draw every time


def test_the_full_setting_is_the_issues_countdown_target():
    cfg = _cfg("full")
    assert (cfg.task, cfg.difficulty, cfg.n_layer, cfg.n_embd, cfg.context_length, cfg.steps) == (
        "countdown", 2, 2, 96, 160, 2000)
    assert max(I.SIZES["full"]["multiples"]) <= I.MAX_MULTIPLE == 16
    assert I.SIZES["full"]["score"] >= 200 and set(I.SIZES["full"]["methods"]) >= {"tot", "tot-dfs"}


def test_choose_arm_reads_learned_verifiers_within_the_budget_only():
    row = lambda m, v, x, acc, tok: dict(method=m, verifier=v, multiple=x, accuracy=acc, tokens=tok)  # noqa: E731
    rows = [row("greedy", "-", 1, 0.9, 30), row("best-of-n", "oracle", 4, 1.0, 120),
            row("tot-dfs", "oracle", 16, 1.0, 200), row("beam", "prm", 32, 0.95, 900),
            row("best-of-n", "orm", 16, 0.7, 480), row("tot", "judge", 4, 0.7, 110), row("beam", "orm", 4, 0.6, 100)]
    assert choose_arm_of(rows)["method"] == "tot"  # best learned arm at <= 16x; the cheaper on a tie
    assert choose_arm_of(rows + [row("tot-dfs", "selfeval", 16, 0.8, 300)])["verifier"] == "selfeval"
    assert choose_arm_of(rows[:4]) is None


def choose_arm_of(rows):
    return I.choose_arm(rows, I.MAX_MULTIPLE)


def test_rule_can_support_and_refute():
    rule = CLAIMS.get("instinct-vs-thinking").rule
    assert decide(rule, [0.30, 0.28, 0.32], "full").verdict == "supported"
    assert decide(rule, [0.01, -0.01, 0.00], "full").verdict == "refuted"


def test_smoke_scores_the_chosen_arm_on_the_fresh_split_only(monkeypatch, tmp_path):
    import imo.reason.methods as methods
    import imo.reason.thinking as thinking
    from imo.reason.policy import problems

    calls = []
    real = methods.run_many

    def spy(policy, probs, method="greedy", verifier=None, budget=None, seed=0, **knobs):
        out = real(policy, probs, method, verifier, budget, seed, **knobs)
        calls.append((method, frozenset(p.key for p in probs), out["accuracy"]))
        return out

    monkeypatch.setattr(methods, "run_many", spy)
    monkeypatch.setattr(thinking, "run_many", spy)
    claim = CLAIMS.get("instinct-vs-thinking")
    ctx = Context(store=RunStore.open())
    figures = claim.measure("smoke", 0, ctx)
    value = figures[claim.rule.metric]
    assert isinstance(value, float) and math.isfinite(value)
    assert decide(claim.rule, [value], "smoke").verdict in VERDICTS
    assert len(figures["_runs"]) == 5 and all(ctx.store.get(r)["status"] == "finished" for r in figures["_runs"])
    verifiers = {r["verifier"] for r in figures["curve"]}
    assert set(I.LEARNED) | {"oracle"} <= verifiers  # every learned verifier ran, the oracle beside them
    cfg, s = _cfg("smoke"), I.SIZES["smoke"]
    selection = frozenset(p.key for p in problems(cfg)[1][: s["n"]])
    scoring = frozenset(p.key for p in I.scoring_problems(cfg, s["score"]))
    scored = [c for c in calls if c[1] == scoring]
    assert scored[0][0] == "greedy"
    arm = figures["chosen_arm"]
    assert len(scored) == (1 if arm == "greedy" else 3 if "+selfeval@" in arm else 2)
    assert figures["learned_gain"] == figures["score_chosen_acc"] - figures["score_greedy_acc"]
    assert figures["score_chosen_acc"] == (scored[1][2] if len(scored) > 1 else scored[0][2])
    assert figures["n_score"] == len(scoring) and figures["n"] == len(selection)
    assert any(c[1] == selection for c in calls)  # the arms were compared on the selection split
    assert not [c for c in calls if c[1] & scoring and c[1] != scoring]  # no mixing of the splits
    claim.plot([figures, figures], tmp_path / "plot.png")
    assert (tmp_path / "plot.png").read_bytes()[:4] == b"\x89PNG"
