"""`smoke(claim_id, tmp_path)`: run a registered claim at the smoke budget, check its metric is a
finite float and its plot a PNG, and return the figures (shared by the claim-library tests)."""
import math

from imo.claims.registry import CLAIMS, Context


def smoke(claim_id, tmp_path):
    claim = CLAIMS.get(claim_id)
    figures = claim.measure("smoke", 0, Context(store=None))
    value = figures[claim.rule.metric]
    assert isinstance(value, float) and math.isfinite(value)
    claim.plot([figures, figures], tmp_path / "plot.png")
    assert (tmp_path / "plot.png").read_bytes()[:4] == b"\x89PNG"
    return figures
