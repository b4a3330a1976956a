"""A script run as `python benchmarks/NAME.py` puts its folder first on sys.path, so a script named
like a standard-library module (inspect.py, profile.py, ...) breaks every import of that module,
torch's included. Keep the names apart."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_no_script_shadows_a_standard_library_module():
    scripts = sorted((ROOT / "benchmarks").glob("*.py"))
    assert scripts, "benchmarks/ has no scripts"
    clashes = [p.name for p in scripts if p.stem in sys.stdlib_module_names]
    assert not clashes, f"rename these scripts, they shadow the standard library: {clashes}"
