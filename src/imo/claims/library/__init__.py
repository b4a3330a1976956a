"""The registered claims, one module per theme (e.g. `positions.py`); `imo.claims.load_all()`
imports every module here, so a new module's claims appear in `imo claims` without other edits."""
