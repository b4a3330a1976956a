"""Each search method on a mock policy with known probabilities finds what brute force finds, and
every method keeps to its budget exactly."""

from collections import defaultdict

import pytest

from imo.errors import ConfigError
from imo.reason.core import NoVerifier, TokenBudget
from imo.reason.learn import collect
from imo.reason.methods import SEARCHES, get_method, run_many
from imo.reason.search import solution_cost
from imo.reason.verifiers import Oracle, SelfEval, Vote, rollout_labels

from .mock import PROBLEM, TASK, MockPolicy, paths

ALL = ["greedy", "best-of-n", "beam", "mcts", "tot"]


def test_brute_force_tree():
    sols = dict(paths())
    assert abs(sum(sols.values()) - 1) < 1e-12
    correct = [t for t in sols if TASK.solution_ok(PROBLEM, t)]
    assert correct == ["3*7=21\n21+8=29\n=29\n"]


def test_greedy_is_the_stepwise_argmax():
    r = get_method("greedy")(MockPolicy(), PROBLEM, NoVerifier(), TokenBudget(1000))
    assert r.text == "3+7=10\n10+8=18\n=18\n" and not r.correct


@pytest.mark.parametrize("method", ["best-of-n", "beam", "mcts", "tot"])
def test_with_the_oracle_every_search_finds_the_one_correct_path(method):
    """Brute force says one correct solution exists (p = 0.15); with room for many samples each
    method must reach it, at several seeds."""
    for seed in range(3):
        pol = MockPolicy(seed)
        r = get_method(method)(pol, PROBLEM, Oracle(TASK), TokenBudget(3000))
        assert r.correct and r.text == "3*7=21\n21+8=29\n=29\n", (method, seed, r.text)


def test_vote_picks_the_answer_with_the_most_probability():
    by_answer = defaultdict(float)
    for text, p in paths():
        by_answer[TASK.answer_of(text)] += p
    expected = max(by_answer, key=by_answer.get)  # "18" (0.42)
    r = get_method("best-of-n")(MockPolicy(1), PROBLEM, Vote(TASK), TokenBudget(3000))
    assert TASK.answer_of(r.text) == expected


def test_best_of_n_with_self_picks_the_likeliest_per_token():
    sols = dict(paths())
    expected = max(sols, key=lambda t: sum(_logp(t)) / len(t.encode()))
    r = get_method("best-of-n")(MockPolicy(2), PROBLEM, SelfEval(TASK), TokenBudget(3000))
    assert r.text == expected


def _logp(text):
    import math

    from .mock import options

    done, out = "", []
    for line in text.splitlines(keepends=True):
        out.append(math.log(dict(options(done))[line]))
        done += line
    return out


@pytest.mark.parametrize("method", ALL)
@pytest.mark.parametrize("verifier", ["oracle", "self", "vote"])
def test_budgets_are_respected_exactly(method, verifier):
    ver = {"oracle": Oracle(TASK), "self": SelfEval(TASK), "vote": Vote(TASK)}[verifier]
    one = solution_cost(MockPolicy(), ver if method != "greedy" else None)
    for limit in (one, one + 7, 3 * one, 10 * one + 3, 40 * one):
        pol = MockPolicy(limit)
        b = TokenBudget(limit)
        get_method(method)(pol, PROBLEM, ver, b)
        assert b.policy == pol.generated  # the count is exactly what the policy wrote
        assert b.spent <= limit
        if not ver.reads_tokens:
            assert b.verifier == 0


class Babbler(MockPolicy):
    """Never ends a line: every step is the longest line the difficulty allows, without a newline
    (an untrained model does this); searches must stop such rows, not keep paying for them."""

    def step(self, items, temperature):
        n = TASK.max_line(1)
        self.generated += n * len(items)
        return [("7" * n, -1.0)] * len(items)


class FullLines(MockPolicy):
    """Every line is exactly as long as the difficulty allows, so a method's reservation is tight: any
    token counted twice (a verifier re-reading a prefix it has read) overruns the budget."""

    def step(self, items, temperature):
        n = TASK.max_line(1)
        self.generated += n * len(items)
        return [(f"{self.rng.randrange(10**9):0{n - 1}d}\n", -1.0) for _ in items]


@pytest.mark.parametrize("method", ALL)
@pytest.mark.parametrize("policy", [Babbler, FullLines])
def test_worst_case_lines_stay_within_budget(method, policy):
    for limit in (96, 500, 1000):
        pol, b = policy(), TokenBudget(limit)
        r = get_method(method)(pol, PROBLEM, Oracle(TASK), b)
        assert b.policy == pol.generated and b.spent <= limit and not r.correct


@pytest.mark.parametrize("method", ALL)
def test_a_budget_below_one_solution_is_a_clear_error(method):
    with pytest.raises(ConfigError, match="too small"):
        get_method(method)(MockPolicy(), PROBLEM, Oracle(TASK), TokenBudget(10))


def test_unknown_method_lists_the_choices():
    with pytest.raises(ConfigError, match="choose one of: greedy, best-of-n, beam"):
        get_method("dfs")
    assert {"greedy", "best-of-n", "beam", "mcts", "tot", "revision"} <= set(SEARCHES.names())


def test_best_of_n_with_the_oracle_follows_one_minus_miss_rate():
    """P(solved) = 1 - 0.85^n for n samples (the correct path has p = 0.15)."""
    accs = [run_many(MockPolicy(), [PROBLEM] * 40, "best-of-n", Oracle(TASK), n * 96)["accuracy"]
            for n in (1, 4, 16)]
    for acc, n in zip(accs, (1, 4, 16), strict=True):
        assert abs(acc - (1 - 0.85**n)) < 0.2
    assert accs[0] < accs[1] < accs[2]


def test_prm_labels_from_rollouts_on_the_mock():
    pol = MockPolicy(0)
    assert rollout_labels(pol, PROBLEM, "3*7=21\n21+8=29\n=29\n", rollouts=16) == [True, True, True]
    assert rollout_labels(pol, PROBLEM, "3+7=10\n10+8=18\n=18\n", rollouts=16) == [False, False, False]
    # from 3*7=21 half the completions are right: 16 rollouts find one; a wrong second step cannot
    assert rollout_labels(pol, PROBLEM, "3*7=21\n21-8=13\n=13\n", rollouts=16) == [True, False, False]


def test_expert_iteration_keeps_only_oracle_accepted_solutions():
    kept = collect(MockPolicy(0), [PROBLEM] * 30, "best-of-n", Vote(TASK), budget=4 * 48, seed=0)
    assert kept and all(TASK.solution_ok(PROBLEM, text) for _, text in kept)
    assert len(kept) < 30  # vote often prefers 18: those searches are dropped, not kept


class Recorder(MockPolicy):
    """Records the prompts it is given (revision feeds its last attempt back)."""

    def __init__(self, seed=0):
        super().__init__(seed)
        self.prompts = []

    def step(self, items, temperature):
        self.prompts += [p for p, _ in items]
        return super().step(items, temperature)


def test_revision_feeds_back_the_attempt_and_the_first_doubted_line():
    pol, b = Recorder(0), TokenBudget(3000)
    r = get_method("revision")(pol, PROBLEM, Oracle(TASK), b)
    assert r.correct and b.policy == pol.generated and b.spent <= 3000
    assert pol.prompts[0] == PROBLEM.prompt  # the first attempt sees the problem alone
    # greedy's first attempt goes 3+7=10: a dead end from its first line, so the feedback is !1
    assert PROBLEM.prompt + "3+7=10\n10+8=18\n=18\n!1\n" in pol.prompts
    assert r.trace["attempts"] >= 2


def test_revision_refuses_verifiers_that_cannot_judge_one_attempt():
    with pytest.raises(ConfigError, match="revision needs a verifier"):
        get_method("revision")(MockPolicy(), PROBLEM, Vote(TASK), TokenBudget(3000))


def test_revision_keeps_to_its_budget():
    for limit in (96, 200, 1000):
        pol, b = MockPolicy(limit), TokenBudget(limit)
        get_method("revision")(pol, PROBLEM, Oracle(TASK), b)
        assert b.policy == pol.generated and b.spent <= limit


def test_revision_rows_hold_a_wrong_attempt_and_the_worked_solution():
    import random

    from imo import tasks
    from imo.reason.revision import revision_rows

    for name, difficulty in (("arith", 2), ("countdown", 1)):
        task = tasks.get(name)
        probs = [task.generate(random.Random(i), difficulty) for i in range(30)]
        rows = revision_rows(task, probs, share=0.5, seed=0)
        assert len(rows) == 30
        by_prompt = {p.prompt: p for p in probs}
        for prompt, solution in rows:
            head, _, rest = prompt.partition("\n")
            p = by_prompt[head + "\n"]
            attempt, flag = rest.rsplit("!", 1)
            assert not task.solution_ok(p, attempt) and solution == p.solution
            k = int(flag)
            assert k == 0 or (not task.step_labels(p, attempt)[k - 1] and all(task.step_labels(p, attempt)[: k - 1]))


def test_weighted_best_of_n_sums_scores_per_answer():
    from imo.reason.search import Candidate, weighted_best

    cands = [Candidate("3+7=10\n10+8=18\n=18\n", score=0.9)]
    cands += [Candidate("3*7=21\n21+8=29\n=29\n", score=0.6) for _ in range(2)]
    assert TASK.answer_of(weighted_best(TASK, cands).text) == "29"  # 1.2 outweighs 0.9
    assert weighted_best(TASK, cands[:1]) is cands[0]


class Answerer(MockPolicy):
    """Writes the (wrong) answer line at once: every child of the root is finished."""

    def step(self, items, temperature):
        self.generated += 3 * len(items)
        return [("=5\n", -1.0)] * len(items)


@pytest.mark.parametrize("widen", [0.0, 0.5])
def test_mcts_on_a_finished_frontier_spends_its_budget_and_stops(widen):
    # Regression (issue 12): selecting a finished leaf cost nothing, so with every leaf finished
    # (and widen 0, never more children) MCTS looped, free, to its 100,000-iteration cap.
    from imo.reason.search import mcts

    pol, b = Answerer(), TokenBudget(600)
    r = mcts(pol, PROBLEM, Oracle(TASK), b, expand=3, widen=widen)
    per_iteration = 3 * 3  # three children of 3 tokens each; the oracle reads them too
    assert 1 <= r.trace["iterations"] <= 600 // per_iteration
    assert b.policy == pol.generated and b.left < 3 * 2 * TASK.max_line(1)  # nothing more to pay for
    assert not r.correct
