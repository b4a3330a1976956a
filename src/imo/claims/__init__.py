"""Claims: the notes' opinions as experiments with a rule stated before they run.

`registry` declares claims (statement, experiment, metric, decision rule), `verdict` decides from
figures, `runner` measures seed by seed and stores results, `report` renders them as one HTML page,
and `cli` holds `imo claims`, `imo check` and `imo report`. The claims themselves live in
`imo.claims.library`, one module per theme; `load_all()` imports them so they register.

    load_all(); run_claim(CLAIMS.get("outlier-split"), "quick", store)
"""

import importlib
import pkgutil


def load_all() -> list[str]:
    """Import every module of `imo.claims.library` (each registers its claims on import).
    Returns the module names. A module that fails to import is a bug and raises."""
    import imo.claims.library as library

    names = []
    for mod in pkgutil.iter_modules(library.__path__, library.__name__ + "."):
        if mod.name.rsplit(".", 1)[-1].startswith("_"):
            continue  # private helpers shared by claim modules register nothing themselves
        importlib.import_module(mod.name)
        names.append(mod.name)
    return names
