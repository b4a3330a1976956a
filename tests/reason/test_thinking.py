"""Tree of Thoughts depth-first, the judging rows and verifier, calibration and compute-optimal
selection, on the mock policy (known probabilities) and on a tiny trained GPT."""

import random

import pytest
import torch

from imo.errors import ConfigError
from imo.reason import select, thinking
from imo.reason.core import Candidate, NoVerifier, TokenBudget
from imo.reason.methods import get_method, run_many
from imo.reason.search import solution_cost
from imo.reason.selfeval import ASK, SelfJudge, ask, judge_rows, label, prefixes
from imo.reason.verifiers import Oracle

from .mock import PROBLEM, TASK, MockPolicy


class Scored:
    """A verifier that scores a prefix by a fixed table (the mock's exact labels, or their opposite)."""

    reads_tokens = True

    def __init__(self, flip: bool = False):
        self.name, self.flip, self.calls = "table", flip, 0

    def score(self, problem, cands):
        self.calls += len(cands)
        return [float(label(TASK, problem, c.text) != self.flip) if c.text.endswith("\n") else 0.0 for c in cands]


def test_tot_dfs_finds_the_one_correct_path_and_stops_there():
    for seed in range(3):
        r = get_method("tot-dfs")(MockPolicy(seed), PROBLEM, Oracle(TASK), TokenBudget(3000))
        assert r.correct and r.text == "3*7=21\n21+8=29\n=29\n" and r.trace["accepted"], seed


def test_tot_dfs_prunes_what_the_evaluator_rejects():
    """With an evaluator that says the opposite of the truth every correct state is pruned, so
    the search can never return the correct solution."""
    for seed in range(3):
        r = get_method("tot-dfs")(MockPolicy(seed), PROBLEM, Scored(flip=True), TokenBudget(3000))
        assert not r.correct


@pytest.mark.parametrize("limit", [96, 100, 333, 1000])
def test_tot_dfs_keeps_to_its_budget(limit):
    pol = MockPolicy(1)
    b = TokenBudget(limit)
    get_method("tot-dfs")(pol, PROBLEM, Oracle(TASK), b)
    assert b.spent <= limit and b.policy == pol.generated


def test_tot_dfs_budget_too_small_is_a_clear_error():
    with pytest.raises(ConfigError, match="too small"):
        get_method("tot-dfs")(MockPolicy(), PROBLEM, Oracle(TASK), TokenBudget(20))


def test_prefixes_and_labels():
    assert prefixes("3*7=21\n21+8=29\n=29\n") == ["3*7=21\n", "3*7=21\n21+8=29\n", "3*7=21\n21+8=29\n=29\n"]
    assert label(TASK, PROBLEM, "3*7=21\n") and not label(TASK, PROBLEM, "3+7=10\n")
    assert not label(TASK, PROBLEM, "3*7=21\n21-8=13\n") and label(TASK, PROBLEM, PROBLEM.solution)
    assert ask(PROBLEM, "3*7=21\n") == "3 7 8:29\n3*7=21\n?"


def test_judge_rows_are_balanced_and_exactly_labelled():
    rows = judge_rows(MockPolicy(0), [PROBLEM], samples=30, seed=0)
    good = [q for q, a in rows if a == "+\n"]
    bad = [q for q, a in rows if a == "-\n"]
    assert len(good) == len(bad) > 0
    for q, a in rows:
        assert q.startswith(PROBLEM.prompt) and q.endswith(ASK)
        assert label(TASK, PROBLEM, q[len(PROBLEM.prompt):-1]) == (a == "+\n")
    assert rows == judge_rows(MockPolicy(0), [PROBLEM], samples=30, seed=0)  # seeded: the same rows


def test_judge_rows_refuse_one_sided_data():
    class Right(MockPolicy):  # writes only the correct path
        def step(self, items, temperature):
            sol = PROBLEM.solution
            return [(sol[len(t):].split("\n")[0] + "\n", 0.0) for _, t in items]

    with pytest.raises(ConfigError, match="only one kind"):
        judge_rows(Right(), [PROBLEM], samples=3, seed=0)


def tiny_judge():
    from imo.model import GPT, ModelConfig

    torch.manual_seed(0)
    return GPT(ModelConfig(n_layer=1, n_embd=16, n_head=2, context_length=64, pos="rope"))


def test_self_judge_reads_one_probability_per_candidate():
    j = SelfJudge(tiny_judge())
    cands = [Candidate("3*7=21\n"), Candidate("3+7=10\n10+8=18\n"), Candidate("3*7=2")]
    s = j.score(PROBLEM, cands)
    assert len(s) == 3 and all(0 < x < 1 for x in s[:2]) and s[2] == 0.0  # a cut-off line scores 0
    alone = j.score(PROBLEM, [cands[1]])[0]  # right padding does not change a row's score
    assert abs(alone - s[1]) < 1e-5


def test_reliability_of_the_exact_labels_is_perfect():
    cal = thinking.reliability(Scored(), MockPolicy(0), [PROBLEM], samples=20)
    assert cal["ece"] == 0.0 and cal["brier"] == 0.0 and cal["accuracy"] == 1.0
    assert sum(b["n"] for b in cal["bins"]) == cal["n"] and 0 < cal["positive_share"] < 1
    flipped = thinking.reliability(Scored(flip=True), MockPolicy(0), [PROBLEM], samples=20)
    assert flipped["ece"] == 1.0 and flipped["accuracy"] == 0.0


def test_plot_reliability_writes_a_png(tmp_path):
    cal = thinking.reliability(Scored(), MockPolicy(0), [PROBLEM], samples=5)
    thinking.plot_reliability([cal], tmp_path / "r.png")
    assert (tmp_path / "r.png").read_bytes()[:4] == b"\x89PNG"


def test_curve_rows_and_budget_too_small_points_are_left_out():
    rows = thinking.curve(MockPolicy(0), [PROBLEM] * 3, [("tot-dfs", "oracle"), ("best-of-n", "vote")],
                          [1, 8], None)
    assert rows[0]["method"] == "greedy" and rows[0]["accuracy"] == 0.0
    keys = {(r["method"], r["verifier"], r["multiple"]) for r in rows[1:]}
    assert ("tot-dfs", "oracle", 1) not in keys  # 1x cannot pay for a path and its reading
    assert {("tot-dfs", "oracle", 8), ("best-of-n", "vote", 1), ("best-of-n", "vote", 8)} <= keys


def test_unknown_verifier_lists_the_new_names():
    with pytest.raises(ConfigError, match="selfeval"):
        thinking.load("nope", None, MockPolicy())
    with pytest.raises(ConfigError, match="judge:RUN"):
        thinking.load("judge", None, MockPolicy())
    with pytest.raises(ConfigError, match="takes no run"):
        thinking.load("selfeval:x", None, MockPolicy())


def test_selection_chooses_per_bin_and_scores_fresh_problems():
    """Easy problems (the verifier trusts greedy) keep greedy's answer; hard ones get a search.
    The mock's greedy is always wrong and trusted 0, so every bin picks the search that solves it."""
    probs = [PROBLEM] * 6
    fitted = select.fit(MockPolicy(0), probs, Oracle(TASK), [("best-of-n", 16)], bins=2)
    assert fitted["choice"] == ["best-of-n@16", "best-of-n@16"] and fitted["single"] == "best-of-n@16"
    assert fitted["selection_by_arm"]["greedy@1"] == 0.0 and fitted["selection_accuracy"] > 0.5
    res = select.score(MockPolicy(1), probs, Oracle(TASK), fitted)
    assert res["n"] == 6 and res["accuracy"] == res["single_accuracy"] > 0.5
    assert res["tokens"] > solution_cost(MockPolicy())  # the estimate's greedy solution is paid for


def test_selection_keeps_greedy_where_a_search_does_no_better():
    class Trusting:  # scores every candidate 1: best-of-n then picks the likeliest, greedy's answer
        name, reads_tokens = "trust", False

        def score(self, problem, cands):
            return [1.0] * len(cands)

    fitted = select.fit(MockPolicy(0), [PROBLEM] * 3, Trusting(), [("best-of-n", 16)], bins=1)
    assert fitted["selection_by_arm"] == {"greedy@1": 0.0, "best-of-n@16": 0.0}
    assert fitted["choice"] == ["greedy@1"]  # equal accuracy: the cheaper arm
    res = select.score(MockPolicy(0), [PROBLEM] * 3, Trusting(), fitted)
    assert res["accuracy"] == 0.0 and res["tokens"] == len("3+7=10\n10+8=18\n=18\n")


def test_fresh_problems_are_outside_training_and_test():
    from imo.reason.policy import PolicyConfig, problems

    cfg = PolicyConfig(task="countdown", difficulty=1, n_train=200, n_test=20)
    fresh = thinking.fresh_problems(cfg, 30)
    train, test = problems(cfg)
    assert len({p.key for p in fresh}) == 30 and not {p.key for p in fresh} & {p.key for p in train + test}
    assert [p.key for p in thinking.fresh_problems(cfg, 30)] == [p.key for p in fresh]


def test_run_many_with_tot_dfs_counts_tokens():
    out = run_many(MockPolicy(0), [PROBLEM] * 4, "tot-dfs", Oracle(TASK), 400)
    assert out["accuracy"] == 1.0 and 0 < out["tokens"] <= 400
    assert run_many(MockPolicy(0), [PROBLEM] * 2, "greedy", NoVerifier(), 100)["accuracy"] == 0.0
    random.seed(0)


def test_revision_examples_are_the_policys_own_wrong_attempts():
    from imo.reason.revision import FEEDBACK
    from imo.reason.selfeval import revision_examples

    rows = revision_examples(MockPolicy(0), [PROBLEM], samples=40, seed=0)
    assert rows and len({q for q, _ in rows}) == len(rows)  # repeats dropped
    flagged = set()
    for q, completion in rows:
        assert completion == PROBLEM.solution and q.startswith(PROBLEM.prompt)
        attempt, fb = q[len(PROBLEM.prompt):].rsplit(FEEDBACK, 1)
        assert not TASK.solution_ok(PROBLEM, attempt)  # only wrong attempts are revised
        k = int(fb.strip())
        labels = TASK.step_labels(PROBLEM, attempt)
        assert k == 0 or (not labels[k - 1] and all(labels[: k - 1]))  # the first wrong line, or none named
        flagged.add(k > 0)
    assert flagged == {True, False}
