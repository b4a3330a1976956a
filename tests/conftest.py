"""Every test gets its own run store, so no test ever touches a user's store. Prepared corpora
are shared by the whole session (they are keyed by their source, so sharing is safe)."""

import os
from pathlib import Path

import pytest
import torch

import imo.paths

# Test models are tiny: one thread is faster for them, and two OpenMP threads on a 2-core
# machine that is also running something else slow down many times over. Subprocesses inherit it.
os.environ["OMP_NUM_THREADS"] = "1"
torch.set_num_threads(1)

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def _corpus_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("imo-cache")


@pytest.fixture(autouse=True)
def _tmp_store(tmp_path_factory, monkeypatch, _corpus_cache):
    # A folder of its own, outside tmp_path, so tests that list tmp_path see only what they wrote;
    # it must exist: imo refuses a store whose folder is missing.
    folder = tmp_path_factory.mktemp("store")
    monkeypatch.setenv(imo.paths.STORE_ENV, str(folder / "store.sqlite"))
    monkeypatch.setenv("IMO_CACHE", str(_corpus_cache))
    imo.paths.set_store(None)
    yield
    imo.paths.set_store(None)


@pytest.fixture
def shared_data() -> Path:
    """../shared/data (public benchmark texts); tests that need it skip where it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"needs the benchmark texts in {SHARED_DATA} (absent here)")
    return SHARED_DATA
