"""Verdicts from figures: the one-seed margin rule and the multi-seed interval rule.

    decide(rule, values=[0.12], budget="quick") -> Decision(verdict="supported", ...)
"""

import math
import statistics
from dataclasses import dataclass

from imo.claims.registry import Rule

VERDICTS = ("supported", "refuted", "inconclusive")

# two-sided 95% Student t quantiles by degrees of freedom (n - 1)
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262,
        10: 2.228, 15: 2.131, 20: 2.086, 30: 2.042}


def t95(df: int) -> float:
    if df in _T95:
        return _T95[df]
    lower = max(k for k in _T95 if k <= df) if df < 30 else 30
    return _T95[lower] if df < 30 else 1.96 + (2.042 - 1.96) * 30 / df


@dataclass(frozen=True)
class Decision:
    verdict: str
    mean: float
    low: float  # the interval (one seed: mean - margin .. mean + margin, the margin rule's band)
    high: float
    n: int
    reason: str


def mean_interval(values: list[float]) -> tuple[float, float, float]:
    m = statistics.fmean(values)
    if len(values) < 2:
        return m, m, m
    half = t95(len(values) - 1) * statistics.stdev(values) / math.sqrt(len(values))
    return m, m - half, m + half


def decide(rule: Rule, values: list[float], budget: str) -> Decision:
    values = [float(v) for v in values]
    if not values or any(math.isnan(v) for v in values):
        return Decision("inconclusive", math.nan, math.nan, math.nan, len(values), "no valid measurement")
    t = rule.threshold
    sign = 1.0 if rule.op == ">" else -1.0
    if budget == "full" and len(values) >= 3:
        m, lo, hi = mean_interval(values)
        # put the interval on the "supported" side's axis: d > 0 means the claim's direction
        d_lo, d_hi = sorted((sign * (lo - t), sign * (hi - t)))
        if d_lo > 0:
            v, why = "supported", f"the whole 95% interval [{lo:.4g}, {hi:.4g}] is {rule.op} {t:g}"
        elif d_hi < 0:
            v, why = "refuted", f"the whole 95% interval [{lo:.4g}, {hi:.4g}] is on the other side of {t:g}"
        else:
            v, why = "inconclusive", f"the 95% interval [{lo:.4g}, {hi:.4g}] contains {t:g}"
        return Decision(v, m, lo, hi, len(values), why)
    m = statistics.fmean(values)
    d = sign * (m - t)
    if d > rule.margin:
        v, why = "supported", f"{rule.metric} = {m:.4g} is {rule.op} {t:g} by more than the margin {rule.margin:g}"
    elif d < -rule.margin:
        v, why = "refuted", f"{rule.metric} = {m:.4g} is on the other side of {t:g} by more than the margin {rule.margin:g}"
    else:
        v, why = "inconclusive", f"{rule.metric} = {m:.4g} is within the margin {rule.margin:g} of {t:g}"
    return Decision(v, m, m - rule.margin, m + rule.margin, len(values), why)
