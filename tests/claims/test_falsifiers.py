"""Every registered claim can fail: its rule, fed a synthetic measurement, must give refuted, and
fed another, supported, at the full budget (3 seeds) and as a one-seed preview."""

import pytest

from imo.claims import load_all, registry
from imo.claims.verdict import decide

load_all()
IDS = sorted(registry.CLAIMS)


def _values(rule, side: int, n: int) -> list[float]:
    # `side` +1: beyond the target on the claim's side, -1: short of it, by a clear distance
    # (the noise band plus a unit of the target's scale) and with a small seed-to-seed spread
    sign = 1.0 if rule.op == ">" else -1.0
    step = rule.noise + max(abs(rule.target), rule.effect, 0.1)
    centre = rule.target + sign * side * step
    spread = 0.01 * step
    return [centre + spread * k for k in (-1, 0, 1)][:n]


@pytest.mark.parametrize("cid", IDS)
@pytest.mark.parametrize("budget, n", [("full", 3), ("quick", 1)])
def test_each_rule_can_be_refuted_and_supported(cid, budget, n):
    claim = registry.CLAIMS.get(cid)
    rule = claim.rule
    assert decide(rule, _values(rule, -1, n), budget).verdict == "refuted", rule.describe()
    assert decide(rule, _values(rule, +1, n), budget).verdict == "supported", rule.describe()
    assert rule.falsifier.startswith("refuted if") and rule.metric in rule.falsifier


def test_every_claim_names_its_falsifier_in_its_description():
    for cid in IDS:
        text = registry.CLAIMS.get(cid).rule.describe()
        assert "refuted if" in text and "supported if" in text, cid


def test_the_demo_previews_name_registered_claims():
    from imo.demo import DEMO_PREVIEWS

    assert set(DEMO_PREVIEWS) <= set(IDS) and len(DEMO_PREVIEWS) < len(IDS)
