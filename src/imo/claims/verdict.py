"""Verdicts from figures: one rule at every budget.

A rule names a target, `threshold + effect` on the claim's side (the smallest effect that matters
added to the threshold). The claim is supported when a whole band around the estimate lies beyond
the target, refuted when the whole band lies short of it, inconclusive when the band straddles
it. The band is the 95% Student t interval of the mean for three or more seeds (quantiles from
scipy.stats.t), and the rule's pre-stated one-seed noise band around the single value otherwise
(a preview, never a verdict). Source: the usual interval-vs-margin test of equivalence/superiority
trials (e.g. Wellek, "Testing statistical hypotheses of equivalence", ch. 1).

    decide(rule, values=[0.12, 0.10, 0.11], budget="full") -> Decision(verdict="supported", ...)
"""

import math
import statistics
from dataclasses import dataclass

from scipy import stats

from imo.claims.registry import Rule

VERDICTS = ("supported", "refuted", "inconclusive")
FULL_SEEDS = 3  # the fewest seeds whose t interval decides


def t95(df: int) -> float:
    """The two-sided 95% Student t quantile with df degrees of freedom."""
    if df < 1:
        raise ValueError(f"degrees of freedom must be >= 1, got {df}")
    return float(stats.t.ppf(0.975, df))


@dataclass(frozen=True)
class Decision:
    verdict: str
    mean: float
    low: float  # the band: the 95% interval (>= 3 seeds) or the noise band (one seed)
    high: float
    n: int
    reason: str
    band: str = "95% interval"  # or "noise band"


def mean_interval(values: list[float]) -> tuple[float, float, float]:
    m = statistics.fmean(values)
    if len(values) < 2:
        return m, m, m
    half = t95(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return m, m - half, m + half


def decide(rule: Rule, values: list[float], budget: str) -> Decision:
    """The verdict of `values` (one per seed) under `rule`; full with >= 3 seeds uses the t
    interval, anything else the rule's noise band around the mean."""
    values = [float(v) for v in values]
    if not values or any(math.isnan(v) for v in values):
        return Decision("inconclusive", math.nan, math.nan, math.nan, len(values), "no valid measurement")
    if budget == "full" and len(values) >= FULL_SEEDS:
        m, lo, hi = mean_interval(values)
        band = "95% interval"
    else:
        m = statistics.fmean(values)
        lo, hi = m - rule.noise, m + rule.noise
        band = "noise band"
    target = rule.target
    sign = 1.0 if rule.op == ">" else -1.0
    # on the claim's axis: d > 0 is the claim's side of the target
    d_lo, d_hi = sorted((sign * (lo - target), sign * (hi - target)))
    where = f"the {band} [{lo:.4g}, {hi:.4g}] of {rule.metric}"
    if d_lo > 0:
        v, why = "supported", f"{where} lies wholly {rule.op} {target:g}"
    elif d_hi < 0:
        v, why = "refuted", f"{where} lies wholly short of {target:g}"
    else:
        v, why = "inconclusive", f"{where} contains {target:g}"
    return Decision(v, m, lo, hi, len(values), why, band)
