"""experts-scale at the smoke budget: every arm trains, the figures are consistent, the plot is written."""

import pytest

from imo.claims.library import experts  # noqa: F401  (registers the claim)
from imo.claims.registry import CLAIMS, Context


@pytest.mark.slow
def test_experts_scale_smoke(tmp_path):
    claim = CLAIMS.get("experts-scale")
    f = claim.measure("smoke", 0, Context(store=None))
    arms = f["arms"]
    assert set(arms) == {"moe8x2", "moe8x2-aux0", "dense-active", "dense-total"}
    assert f["gain_vs_active_bpb"] == pytest.approx(arms["dense-active"]["val_bpb"] - arms["moe8x2"]["val_bpb"])
    # equal active parameters: the dense arm of width 2 x 4C has the MoE's active FLOPs up to the router
    assert 1.0 < f["flops_ratio_vs_active"] < 1.01
    assert arms["dense-total"]["params"] == pytest.approx(arms["moe8x2"]["params"], rel=0.01)
    assert len(arms["moe8x2"]["load_cv"]) == 4
    claim.plot([f], tmp_path / "p.png")
    assert (tmp_path / "p.png").stat().st_size > 0
