"""Provenance: the code fingerprint follows what a measurement imports, and nothing else; seeds
resume only under the same fingerprint; the machine is described."""

import pytest
from claim_fakes import fake_claim

from imo.claims import provenance
from imo.claims.provenance import PACKAGE_ROOT, fingerprint, fingerprint_of, machine, source_files
from imo.claims.runner import run_claim
from imo.runs.store import RunStore


@pytest.fixture
def store():
    with RunStore.open() as s:
        yield s


def _rel(module: str) -> set[str]:
    return {str(f.relative_to(PACKAGE_ROOT)) for f in source_files(module)}


def test_source_files_follow_imports_transitively_and_inside_functions():
    files = _rel("imo.claims.library.shrinking")
    assert "claims/library/shrinking.py" in files
    assert "compress/lottery.py" in files  # imported inside a measure function
    assert "train/loop.py" in files  # through compress -> train, transitively
    assert "engine/server.py" not in files and "claims/library/reasoning.py" not in files


def test_fingerprint_depends_on_the_claim_and_its_version():
    a = fingerprint_of("imo.claims.library.shrinking", "outlier-split", 2)
    assert a == fingerprint_of("imo.claims.library.shrinking", "outlier-split", 2)
    assert a != fingerprint_of("imo.claims.library.shrinking", "outlier-split", 3)
    assert a != fingerprint_of("imo.claims.library.shrinking", "lottery-tickets", 2)
    assert len(a) == 16


def test_fingerprint_changes_with_an_imported_file(tmp_path, monkeypatch):
    # a private copy of a small module tree: edit a file the module imports, and one it does not
    pkg = tmp_path / "imo"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "m.py").write_text("def f():\n    from imo.sub import helper\n")
    (pkg / "sub" / "helper.py").write_text("X = 1\n")
    (pkg / "other.py").write_text("Y = 1\n")
    monkeypatch.setattr(provenance, "PACKAGE_ROOT", pkg)
    provenance.source_files.cache_clear()
    provenance._imports.cache_clear()
    try:
        before = fingerprint_of("imo.sub.m", "c", 1)
        (pkg / "other.py").write_text("Y = 2\n")
        assert fingerprint_of("imo.sub.m", "c", 1) == before  # an unrelated file
        (pkg / "sub" / "helper.py").write_text("X = 2\n")
        assert fingerprint_of("imo.sub.m", "c", 1) != before
    finally:
        provenance.source_files.cache_clear()
        provenance._imports.cache_clear()


def test_full_seeds_resume_only_under_the_same_fingerprint(store, monkeypatch):
    calls: list = []
    c = fake_claim("resumes", [0.5, 0.6, 0.55], calls=calls)
    run_claim(c, "full", store)
    run_claim(c, "full", store)
    assert len(calls) == 3  # all three seeds reused
    assert fingerprint(c)
    monkeypatch.setattr(provenance, "fingerprint", lambda claim: "0" * 16)
    p = run_claim(c, "full", store)
    assert len(calls) == 6 and p["reused_seeds"] == []  # other code: measured afresh
    assert p["provenance"]["fingerprint"] == "0" * 16


def test_machine_names_cpu_cores_and_torch():
    m = machine()
    assert m["cpu"] and m["cores"] >= 1 and m["torch"]
