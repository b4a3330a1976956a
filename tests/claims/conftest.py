"""A registry of fake claims in place of the real one (the fakes are in claim_fakes.py)."""

from collections.abc import Callable

import pytest

from imo.claims import load_all, registry
from imo.claims.registry import Claim
from imo.registry import Registry


@pytest.fixture
def fake_registry(monkeypatch) -> Callable[[Claim], Claim]:
    """Swap the claim registry for an empty one; returns a function that registers a claim.
    The library is loaded first, so its modules register in the real registry, not this one."""
    load_all()
    monkeypatch.setattr(registry, "CLAIMS", Registry("claim"))

    def add(claim: Claim) -> Claim:
        registry.register(lambda: claim)
        return claim

    return add


@pytest.fixture(autouse=True)
def _tmp_evidence(tmp_path, monkeypatch):
    """Recorded evidence goes to a folder of the test's own, never the repository's evidence/."""
    monkeypatch.setenv("IMO_EVIDENCE", str(tmp_path / "evidence"))
