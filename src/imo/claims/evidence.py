"""Recorded evidence: one JSON file per claim under `evidence/` at the repository root.

`imo check ID --full --record` writes `evidence/<claim-id>.json`: the rule as stated, the per-seed
figures, the decision and its provenance (commit, code fingerprint, machine, seeds, budget, date,
minutes). The file is committed; the report and `imo claims` show it as the claim's verdict, and a
local quick run only as a preview beside it. `imo check ID --reproduce` measures the full budget
afresh and compares: it agrees when the verdict is the same and the new mean lies inside the
recorded interval.

    write_record(payload)                 # evidence/outlier-split.json
    load_record(claim) -> dict | None     # the record, with "stale": True if the code changed
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from imo.atomic import atomic_path
from imo.claims.provenance import fingerprint, repo_root
from imo.errors import ImoError

# the figures of a result payload that a record keeps (the store's bookkeeping stays behind)
KEPT = ("claim", "version", "statement", "metric", "op", "threshold", "effect", "noise", "target",
        "rule", "falsifier", "budget", "seeds", "figures", "verdict", "mean", "low", "high", "band",
        "reason", "provenance")  # fmt: skip


def evidence_dir() -> Path:
    """`evidence/` at the root of the work tree holding imo's code ($IMO_EVIDENCE overrides)."""
    env = os.environ.get("IMO_EVIDENCE")
    if env:
        return Path(env).expanduser()
    root = repo_root()
    if root is None:
        raise ImoError("imo's code is not in a git work tree, so there is no evidence/ folder; "
                       "set IMO_EVIDENCE to a folder")  # fmt: skip
    return root / "evidence"


def record_path(claim_id: str) -> Path:
    return evidence_dir() / f"{claim_id}.json"


def load_record(claim: Any) -> dict | None:
    """The recorded evidence of a claim, or None. A record of another version of the claim, or
    measured by code with another fingerprint, comes back with "stale": True."""
    path = record_path(claim.id)
    if not path.is_file():
        return None
    rec = json.loads(path.read_text(encoding="utf-8"))
    rec["stale"] = (rec.get("version") != claim.version
                    or (rec.get("provenance") or {}).get("fingerprint") != fingerprint(claim))  # fmt: skip
    return rec


def check_recordable(payload: dict) -> None:
    if payload.get("budget") != "full" or payload.get("seeds", 0) < 3:
        raise ImoError(f"{payload.get('claim')}: only a --full result of 3 or more seeds is recorded")
    if payload.get("verdict") == "error":
        raise ImoError(f"{payload.get('claim')}: the measurement failed ({payload.get('error')}); "
                       "nothing recorded")  # fmt: skip


def write_record(payload: dict, allow_dirty: bool = False, force: bool = False) -> Path:
    """Write the result payload of a full check as the claim's evidence (atomically). An existing
    record of the same version and fingerprint is replaced only with force."""
    check_recordable(payload)
    rec = {k: payload[k] for k in KEPT if k in payload}
    prov = dict(rec.get("provenance") or {})
    if prov.get("src_dirty"):
        if not allow_dirty:
            raise ImoError("src/ has uncommitted changes; commit them, or pass --allow-dirty "
                           "(the record is then marked)")  # fmt: skip
        prov["allow_dirty"] = True
    rec["provenance"] = prov
    path = record_path(payload["claim"])
    if path.is_file() and not force:
        old = json.loads(path.read_text(encoding="utf-8"))
        same = (old.get("version") == rec.get("version")
                and (old.get("provenance") or {}).get("fingerprint") == prov.get("fingerprint"))  # fmt: skip
        if same:
            raise ImoError(f"{path} holds evidence of this very code; use --force to replace it")
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(rec, indent=1, sort_keys=True, allow_nan=True) + "\n",
                       encoding="utf-8")  # fmt: skip
    return path


def agreement(recorded: dict, new: dict) -> tuple[bool, str]:
    """Whether a fresh full result reproduces a record: same verdict, and the new mean inside the
    recorded interval."""
    lo, hi, m = recorded.get("low"), recorded.get("high"), new.get("mean")
    same = new.get("verdict") == recorded.get("verdict")
    inside = all(isinstance(x, int | float) and not math.isnan(x) for x in (lo, hi, m)) and lo <= m <= hi
    problems = [w for w, bad in (("another verdict", not same), ("the mean outside the recorded "
                                                                "interval", not inside)) if bad]
    text = (f"recorded {recorded.get('verdict')}: {recorded.get('metric')} = {recorded.get('mean'):.4g} "
            f"[{lo:.4g}, {hi:.4g}]; now {new.get('verdict')}: {m:.4g}. "
            + ("Agrees." if not problems else "Disagrees: " + " and ".join(problems) + "."))
    return not problems, text


def preview_row(results: list[dict], claim: Any) -> dict | None:
    """The newest local result of the claim's current version (store.results rows, newest first):
    shown beside the record as a preview, whatever its budget."""
    return next((r for r in results if r["payload"].get("version") == claim.version), None)


def disagrees(record: dict | None, preview: dict | None) -> bool:
    """A preview whose verdict differs from the recorded one (errors and smoke runs aside)."""
    if record is None or preview is None:
        return False
    p = preview["payload"] if "payload" in preview else preview
    if p.get("budget") == "smoke" or p.get("verdict") == "error":
        return False
    return p.get("verdict") != record.get("verdict")
