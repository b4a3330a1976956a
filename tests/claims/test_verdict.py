"""The claim registry's rules and the verdict logic on synthetic figures."""

import math
import statistics

import pytest

from imo.claims import registry
from imo.claims.registry import Claim, Rule
from imo.claims.verdict import decide, mean_interval, t95
from imo.errors import ConfigError


def rule(op: str = ">", threshold: float = 0.0, margin: float = 0.05, effect: float = 0.0) -> Rule:
    return Rule(metric="gap", op=op, threshold=threshold, noise=margin, effect=effect,
                meaning="a real gap")


def claim(cid: str, r: Rule | None) -> Claim:
    return Claim(id=cid, statement="s", source="src", experiment="e", rule=r,
                 measure=lambda budget, seed, ctx: {"gap": 1.0})  # fmt: skip


def test_duplicate_ids_refused(fake_registry):
    fake_registry(claim("twice", rule()))
    with pytest.raises(ValueError, match="already registered"):
        fake_registry(claim("twice", rule()))


def test_claim_without_rule_refused(fake_registry):
    with pytest.raises(TypeError, match="Rule"):
        fake_registry(claim("no-rule", None))
    assert "no-rule" not in registry.CLAIMS


def test_unknown_claim_lists_the_ids(fake_registry):
    fake_registry(claim("alpha", rule()))
    fake_registry(claim("beta", rule()))
    with pytest.raises(ConfigError, match="unknown claim 'nope'; choose one of: alpha, beta"):
        registry.CLAIMS.get("nope")


@pytest.mark.parametrize("op, margin, effect", [(">=", 0.1, 0.0), ("<", -0.1, 0.0), (">", math.nan, 0.0),
                                               (">", 0.1, -0.01), (">", 0.1, math.nan)])
def test_impossible_rules_refused(op, margin, effect):
    with pytest.raises(ValueError, match="op|noise|effect"):
        rule(op, margin=margin, effect=effect)


def test_describe_states_the_rule():
    text = rule(threshold=0.5, margin=0.1).describe()
    assert "gap > 0.5" in text and "0.1" in text and "95% interval" in text and "a real gap" in text


@pytest.mark.parametrize("budget", ["quick", "smoke"])
@pytest.mark.parametrize(
    "op, value, verdict",
    [
        (">", 0.2, "supported"),
        (">", -0.2, "refuted"),
        (">", 0.04, "inconclusive"),  # inside the margin on the claim's side
        (">", -0.04, "inconclusive"),
        ("<", -0.2, "supported"),
        ("<", 0.2, "refuted"),
        ("<", -0.04, "inconclusive"),
        ("<", 0.06, "refuted"),
    ],
)
def test_margin_rule(op, value, verdict, budget):
    d = decide(rule(op), [value], budget)
    assert d.verdict == verdict, d.reason
    assert d.n == 1 and d.mean == value
    assert (d.low, d.high) == pytest.approx((value - 0.05, value + 0.05))


def test_margin_rule_with_a_nonzero_threshold():
    r = rule(">", threshold=1.0, margin=0.1)
    assert decide(r, [1.2], "quick").verdict == "supported"
    assert decide(r, [1.05], "quick").verdict == "inconclusive"  # > 1 but not by the margin
    assert decide(r, [0.85], "quick").verdict == "refuted"


@pytest.mark.parametrize(
    "op, values, verdict",
    [
        (">", [1.0, 1.1, 0.9], "supported"),
        (">", [-1.0, -1.1, -0.9], "refuted"),
        ("<", [-1.0, -1.1, -0.9], "supported"),
        ("<", [1.0, 1.1, 0.9], "refuted"),
        # the mean (0.27) clears the margin, but the interval straddles the threshold
        (">", [0.5, -0.3, 0.6], "inconclusive"),
        ("<", [-0.5, 0.3, -0.6], "inconclusive"),
    ],
)
def test_interval_rule(op, values, verdict):
    d = decide(rule(op), values, "full")
    assert d.verdict == verdict, d.reason
    m, lo, hi = mean_interval(values)
    assert (d.mean, d.low, d.high, d.n) == pytest.approx((m, lo, hi, len(values)))
    assert lo < m < hi


def test_interval_is_the_student_t_interval():
    values = [0.1, 0.3, 0.2, 0.25]
    m, lo, hi = mean_interval(values)
    half = 3.1824 * statistics.stdev(values) / 2  # t(0.975, df=3) * s / sqrt(4)
    assert (m, lo, hi) == pytest.approx((0.2125, 0.2125 - half, 0.2125 + half), rel=1e-4)
    # the interval decides, not the margin: a small but consistent gap is supported
    assert decide(rule(margin=0.5), values, "full").verdict == "supported"
    assert decide(rule(margin=0.5), [0.2125], "quick").verdict == "inconclusive"


def test_t_quantiles_shrink_towards_the_normal():
    assert t95(2) == pytest.approx(4.303, abs=5e-4) and t95(30) == pytest.approx(2.042, abs=5e-4)
    qs = [t95(df) for df in range(1, 200)]
    assert all(a >= b for a, b in zip(qs, qs[1:], strict=False))
    assert 1.96 < t95(1000) < 1.97


def test_no_or_nan_values_are_inconclusive():
    assert decide(rule(), [], "quick").verdict == "inconclusive"
    d = decide(rule(), [1.0, math.nan, 1.0], "full")
    assert d.verdict == "inconclusive" and "no valid" in d.reason


@pytest.mark.parametrize("op", [">", "<"])
@pytest.mark.parametrize("budget", ["quick", "full"])
def test_the_effect_moves_the_target_at_every_budget(op, budget):
    # a clear gap of 0.03 beyond the threshold, seeds agreeing: supported with no effect, refuted
    # when the smallest effect that matters is 0.1 (the whole band is short of 0.1), inconclusive
    # when the band straddles the effect
    sign = 1 if op == ">" else -1
    values = [sign * v for v in (0.03, 0.031, 0.029)][: 3 if budget == "full" else 1]
    assert decide(rule(op, margin=0.01, effect=0.0), values, budget).verdict == "supported"
    assert decide(rule(op, margin=0.01, effect=0.1), values, budget).verdict == "refuted"
    assert decide(rule(op, margin=0.01, effect=0.03), values, budget).verdict == "inconclusive"


def test_outlier_split_example_of_the_issue():
    # [0.0079, 0.0204] against a stated 0.01 is not "more than 0.01": inconclusive, not supported
    values = [0.0079 + 0.0125 * x for x in (0.2, 0.5, 0.8)]
    m, lo, hi = mean_interval(values)
    r = rule(">", margin=0.01, effect=0.01)
    d = decide(r, values, "full")
    assert lo < 0.01 < hi and d.verdict == "inconclusive", d.reason
