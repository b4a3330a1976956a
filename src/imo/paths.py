"""Every file location imo uses, in one place.

The run store is one SQLite file; run folders and the corpus cache live beside it:

    <store dir>/store.sqlite
    <store dir>/runs/<run id>/...       checkpoints, plots, artifacts of one run
    <store dir>/cache/corpora/<key>/    prepared corpora (train.bin, val.bin, meta.json);
                                        IMO_CACHE=DIR puts them under DIR/corpora instead

The default store dir is the user's data directory; `--store PATH` or IMO_STORE overrides it.
"""

import os
from pathlib import Path

from platformdirs import user_data_dir

STORE_ENV = "IMO_STORE"
_override: Path | None = None


def set_store(path: str | os.PathLike | None) -> None:
    """Used by the CLI's global --store option."""
    global _override
    _override = Path(path).expanduser().resolve() if path else None


def store_file() -> Path:
    if _override is not None:
        return _override
    env = os.environ.get(STORE_ENV)
    if env:
        return Path(env).expanduser().resolve()
    return Path(user_data_dir("imo", appauthor=False)) / "store.sqlite"


def store_is_default() -> bool:
    """True when neither --store nor IMO_STORE names the store (the user data dir is used)."""
    return _override is None and not os.environ.get(STORE_ENV)


def store_dir() -> Path:
    return store_file().parent


def runs_dir() -> Path:
    return store_dir() / "runs"


def run_dir(run_id: str) -> Path:
    return runs_dir() / run_id


def corpus_cache_dir() -> Path:
    """IMO_CACHE moves the cache (prepared corpora are shared safely: they are keyed by source)."""
    env = os.environ.get("IMO_CACHE")
    root = Path(env).expanduser() if env else store_dir() / "cache"
    return root / "corpora"
