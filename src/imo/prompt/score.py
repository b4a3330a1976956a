"""Exact checkers for the extraction tasks, and their summary with bootstrap intervals.

Each field of an answer is one of four outcomes against the truth (imo.prompt.tasks):
- TP: the text states the field and the answer gives its value (numbers equal, strings equal
  after case folding and spacing);
- FN: the text states it and the answer gives another value or none;
- TN: the text does not state it and the answer gives no value (the default, null, "unknown", or
  no key);
- FP: the text does not state it and the answer gives a value (often the distractor's).

TPR = TP / (TP + FN), TNR = TN / (TN + FP), accuracy = (TP + TN) / fields. Intervals are
percentile bootstraps over items (scipy.stats.bootstrap, paired, ratio of sums), because fields of
one item are not independent.

    s = score_answer(item, text, "json"); summary = summarize([s, ...], seed=0)
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from imo.prompt.builder import FieldSpec
from imo.prompt.records import RecordFormat
from imo.prompt.tasks import Item
from imo.prompt.typed import find_json_object

NO_VALUE = {"", "unknown", "none", "null", "n/a", "na", "not given", "not stated", "not available",
            "not mentioned", "not specified", "missing", "-"}


@dataclass
class Reading:
    values: dict[str, Any]  # key -> value as the answer gave it (only keys it gave)
    valid: bool  # the answer is exactly the asked format: nothing around it, exactly the asked keys
    outside_words: int  # words outside the answer ("LLM is very TALKY")


def read_answer(text: str, answer: str, fields: list[FieldSpec], fmt: RecordFormat | None = None) -> Reading:
    """The values an answer gives, whatever its shape. Never raises."""
    names = {f.name for f in fields}
    if answer == "json":
        found = find_json_object(text)
        values = found.value or {}
        valid = found.strict and set(values) == names
        return Reading(values, valid, _words(found.outside))
    parsed = (fmt or RecordFormat()).parse(text)
    values = {}
    for r in parsed.of_kind("field"):
        if len(r.values) >= 2 and r.values[0] not in values:
            values[r.values[0]] = r.values[1]
    valid = (parsed.started and parsed.ended and not parsed.errors and set(values) == names
             and len(parsed.records) == len(names) and not parsed.outside)
    junk = " ".join([parsed.outside] + [e.split(": ", 1)[-1] for e in parsed.errors if ": " in e])
    return Reading(values, valid, _words(junk))


def _words(s: str) -> int:
    return len(re.findall(r"\w+", s or ""))


def _norm(s: str) -> str:
    return re.sub(r"\s+", " ", s.strip().strip("\"'").rstrip(".")).casefold()


def _number(v: Any) -> float | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        m = re.fullmatch(r"\s*\$?\s*(-?[\d,]*\.?\d+)\s*(?:[a-zA-Z ]*)\s*", v)
        if m:
            try:
                return float(m.group(1).replace(",", ""))
            except ValueError:
                return None
    return None


def has_value(spec: FieldSpec, v: Any) -> bool:
    """False when the answer gives nothing: no key, null, a no-value word or the field's default."""
    if v is None:
        return False
    if isinstance(v, str) and _norm(v) in NO_VALUE:
        return False
    if spec.default is not None:
        if spec.type in ("integer", "number"):
            n = _number(v)
            if n is not None and n == float(spec.default):
                return False
        elif isinstance(v, str) and _norm(v) == _norm(str(spec.default)):
            return False
    return True


def matches(spec: FieldSpec, v: Any, truth: Any) -> bool:
    if spec.type in ("integer", "number"):
        n = _number(v)
        return n is not None and math.isclose(n, float(truth), rel_tol=1e-9, abs_tol=1e-9)
    return isinstance(v, str | int | float) and _norm(str(v)) == _norm(str(truth))


@dataclass
class ItemScore:
    item: str
    tp: int
    fn: int
    tn: int
    fp: int
    valid: bool
    outside_words: int

    @property
    def correct(self) -> int:
        return self.tp + self.tn

    @property
    def fields(self) -> int:
        return self.tp + self.fn + self.tn + self.fp

    def to_dict(self) -> dict:
        return asdict(self)


def score_answer(item: Item, text: str, answer: str, fmt: RecordFormat | None = None) -> ItemScore:
    reading = read_answer(text, answer, item.fields, fmt)
    tp = fn = tn = fp = 0
    for spec in item.fields:
        truth = item.truth.get(spec.name)
        v = reading.values.get(spec.name)
        given = has_value(spec, v)
        if truth is None:
            tn, fp = (tn, fp + 1) if given else (tn + 1, fp)
        elif given and matches(spec, v, truth):
            tp += 1
        else:
            fn += 1
    return ItemScore(item.id, tp, fn, tn, fp, reading.valid, reading.outside_words)


@dataclass
class Estimate:
    value: float | None
    low: float | None
    high: float | None

    def show(self) -> str:
        if self.value is None:
            return "n/a"
        if self.low is None or self.high is None:
            return f"{self.value:.3f}"
        return f"{self.value:.3f} [{self.low:.3f}, {self.high:.3f}]"


def ratio_estimate(num: np.ndarray, den: np.ndarray, seed: int, confidence: float = 0.95,
                   resamples: int = 2000) -> Estimate:
    """sum(num) / sum(den) with a percentile bootstrap over the paired rows."""
    from scipy.stats import bootstrap

    num, den = np.asarray(num, float), np.asarray(den, float)
    if den.sum() == 0:
        return Estimate(None, None, None)
    value = float(num.sum() / den.sum())
    if len(num) < 2:
        return Estimate(value, None, None)

    def ratio(n, d, axis=-1):
        top, bottom = n.sum(axis=axis), d.sum(axis=axis)
        return np.divide(top, bottom, out=np.full(np.shape(top), np.nan), where=bottom > 0)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # degenerate samples (all equal) warn; the interval is then a point
        res = bootstrap((num, den), ratio, paired=True, vectorized=True, n_resamples=resamples,
                        confidence_level=confidence, method="percentile", rng=np.random.default_rng(seed))
    lo, hi = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if not (math.isfinite(lo) and math.isfinite(hi)):
        dist = res.bootstrap_distribution
        dist = dist[np.isfinite(dist)]
        if not len(dist):
            return Estimate(value, None, None)
        a = (1 - confidence) / 2
        lo, hi = (float(x) for x in np.quantile(dist, [a, 1 - a]))
    return Estimate(value, lo, hi)


@dataclass
class Summary:
    items: int
    accuracy: Estimate
    exact: Estimate  # items with every field right
    tpr: Estimate
    tnr: Estimate
    valid: Estimate  # answers exactly in the asked format
    outside_words: float  # mean words outside the answer
    errors: int = 0  # calls that got no answer (HTTP or connection errors): not scored

    def to_dict(self) -> dict:
        return asdict(self)


def summarize(scores: list[ItemScore], seed: int = 0) -> Summary:
    if not scores:
        none = Estimate(None, None, None)
        return Summary(0, none, none, none, none, none, 0.0)
    col = lambda f: np.array([f(s) for s in scores], float)  # noqa: E731
    ones = np.ones(len(scores))
    return Summary(
        items=len(scores),
        accuracy=ratio_estimate(col(lambda s: s.correct), col(lambda s: s.fields), seed),
        exact=ratio_estimate(col(lambda s: s.correct == s.fields), ones, seed),
        tpr=ratio_estimate(col(lambda s: s.tp), col(lambda s: s.tp + s.fn), seed),
        tnr=ratio_estimate(col(lambda s: s.tn), col(lambda s: s.tn + s.fp), seed),
        valid=ratio_estimate(col(lambda s: s.valid), ones, seed),
        outside_words=float(np.mean([s.outside_words for s in scores])),
    )
