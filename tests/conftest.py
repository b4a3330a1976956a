"""Every test gets its own run store, so no test ever touches a user's store."""

import pytest

import imo.paths


@pytest.fixture(autouse=True)
def _tmp_store(tmp_path, monkeypatch):
    monkeypatch.setenv(imo.paths.STORE_ENV, str(tmp_path / "store" / "store.sqlite"))
    imo.paths.set_store(None)
    yield
    imo.paths.set_store(None)
