"""Run store: every run's config, commit, machine, metrics, figures and artifacts in one SQLite
file, with run folders beside it; `imo runs` lists and shows them.

    from imo.runs import RunStore
    store = RunStore.open()
"""

from imo.runs.store import STATUSES, RunStore, config_hash

__all__ = ["RunStore", "STATUSES", "config_hash"]
