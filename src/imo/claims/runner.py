"""Run a claim: measure it seed by seed (reusing stored seeds), decide by its rule, store the result.

Each seed's figures are stored the moment they are measured (kind "claim-seed"), so an interrupted
`--full` check continues at the first missing seed, in this process or the next. The claim's
result (kind "claim", key = claim id) is appended to the store, never overwritten, and its plot
gets a file name of its own, so two checks running at once both keep theirs. A claim whose
measurement raises is recorded with the verdict "error" and the caller goes on with the next one.

    result = run_claim(CLAIMS.get("outlier-split"), "quick", store)
    result["verdict"], result["mean"], result["plot"]
"""

from __future__ import annotations

import math
import numbers
import secrets
import time
import traceback
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from imo import paths
from imo.atomic import atomic_path
from imo.claims import provenance as code
from imo.claims.registry import BUDGETS, SEEDS, Claim, Context
from imo.claims.verdict import decide
from imo.errors import ImoError
from imo.runs.store import RunStore, git_state

SEED_KIND = "claim-seed"
RESULT_KIND = "claim"
# which budget's result speaks for a claim: the strongest evidence first; smoke is never evidence
EVIDENCE_ORDER = ("full", "quick")


def seed_key(claim: Claim, budget: str, seed: int) -> str:
    # the version is in the key, so a changed experiment never reuses an old measurement
    return f"{claim.id}:v{claim.version}:{budget}:{seed}"


def claims_dir(store: RunStore | None = None) -> Path:
    """Plots of claim results: `claims/` beside the store file (as `runs/` is)."""
    return (store.path.parent if store is not None else paths.store_dir()) / "claims"


def shown(figures: dict[str, Any]) -> dict[str, Any]:
    """The figures a reader sees: keys starting with "_" are the claim's bookkeeping."""
    return {k: v for k, v in figures.items() if not k.startswith("_")}


def _jsonable(v: Any) -> Any:
    # numpy and torch scalars have .item(); without this they would be stored as strings
    if isinstance(v, bool | str | int | float) or v is None:
        return v
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    if hasattr(v, "item") and callable(v.item):
        try:
            return v.item()
        except (TypeError, ValueError, RuntimeError):  # an array of more than one element
            pass
    if hasattr(v, "tolist"):
        return v.tolist()
    if isinstance(v, numbers.Real):
        return float(v)
    return str(v)


def _check_figures(claim: Claim, figures: Any) -> dict[str, Any]:
    if not isinstance(figures, dict):
        raise TypeError(f"measure() returned {type(figures).__name__}, not a dict of figures")
    metric = claim.rule.metric
    if metric not in figures:
        have = ", ".join(sorted(shown(figures))) or "none"
        raise ValueError(f"measure() returned no {metric!r}, the rule's metric (figures: {have})")
    figures = _jsonable(figures)
    value = figures[metric]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"the metric {metric!r} is {value!r}, not a number")
    runs = figures.get("_runs", [])
    if not (isinstance(runs, list) and all(isinstance(r, str) for r in runs)):
        raise TypeError(f"_runs must be a list of run ids, not {runs!r}")
    return figures


def one_line(e: BaseException) -> str:
    lines = str(e).strip().splitlines()
    return f"{type(e).__name__}: {lines[0]}" if lines else type(e).__name__


def stored_seed(claim: Claim, budget: str, seed: int, store: RunStore, fingerprint: str | None,
                resume: bool = True) -> tuple[dict, float] | None:  # fmt: skip
    """(figures, seconds) of a seed stored earlier, or None when it must be measured."""
    if budget != "full" or not resume:
        return None
    # only a full check resumes, and only from seeds measured by this very code (the claim's code
    # fingerprint: the files its measurement imports, whatever the commit or a dirty tree): a quick
    # or smoke check always measures afresh (its training runs are still reused)
    found = [r for r in store.results(SEED_KIND, seed_key(claim, budget, seed))
             if r["payload"].get("fingerprint") == fingerprint]  # fmt: skip
    if not found:  # newest first
        return None
    p = found[0]["payload"]
    return p["figures"], float(p.get("seconds", 0.0))


def measure_seed(claim: Claim, budget: str, seed: int, ctx: Context) -> tuple[dict, float]:
    """(checked JSON-able figures, seconds) of one fresh measurement; stores nothing itself."""
    t0 = time.perf_counter()
    figures = _check_figures(claim, claim.measure(budget, seed, ctx))
    return figures, time.perf_counter() - t0


def store_seed(claim: Claim, budget: str, seed: int, figures: dict, seconds: float,
               fingerprint: str | None, store: RunStore, **extra: Any) -> None:  # fmt: skip
    """Keep one measured seed for resumption (`extra`: e.g. the machine a worker measured on)."""
    payload = {"claim": claim.id, "version": claim.version, "budget": budget, "seed": seed,
               "figures": figures, "seconds": seconds, "fingerprint": fingerprint, **extra}  # fmt: skip
    store.put_result(SEED_KIND, seed_key(claim, budget, seed), payload,
                     run_ids=figures.get("_runs", []))  # fmt: skip


def _seed(claim: Claim, budget: str, seed: int, store: RunStore, ctx: Context,
          resume: bool = True) -> tuple[dict, float, bool]:  # fmt: skip
    """(figures, seconds it took to measure, reused?) for one seed."""
    found = stored_seed(claim, budget, seed, store, ctx.code_fingerprint, resume)
    if found is not None:
        return (*found, True)
    ctx.log(f"{claim.id}: seed {seed}")
    figures, seconds = measure_seed(claim, budget, seed, ctx)
    store_seed(claim, budget, seed, figures, seconds, ctx.code_fingerprint, store)
    return figures, seconds, False


def provenance(code_fingerprint: str, budget: str, seeds: list[int], seconds: float) -> dict[str, Any]:
    """What a verdict rests on: commit, whether src/ had uncommitted changes, the claim's code
    fingerprint, the machine, seeds, budget, date (UTC) and minutes of measurement."""
    commit, _ = git_state()
    dirty = code.src_dirty()
    return {"commit": commit, "src_dirty": bool(dirty) if dirty is not None else None,
            "fingerprint": code_fingerprint, "machine": code.machine(), "seeds": seeds,
            "budget": budget, "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "minutes": round(seconds / 60, 2)}  # fmt: skip


def _draw(claim: Claim, figures: list[dict], out: Path) -> Path:
    """Call the claim's plot on a temporary name in the same folder and rename it into place,
    so a reader (the report, another check) never sees half a PNG."""
    import matplotlib

    matplotlib.use("Agg")  # headless machines and CI have no display
    import matplotlib.pyplot as plt

    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        with atomic_path(out) as tmp:
            claim.plot(figures, tmp)
            if not tmp.is_file() or tmp.stat().st_size == 0:
                raise RuntimeError(f"plot() wrote nothing to the path it was given ({tmp.name})")
    finally:
        plt.close("all")  # a plot that forgets to close its figure must not leak it
    return out


def run_claim(
    claim: Claim,
    budget: str,
    store: RunStore,
    quiet: bool = True,
    log: Callable[[str], None] | None = None,
    resume: bool = True,
    on_seed: Callable[[Claim, int, dict, float, bool], None] | None = None,
) -> dict:
    """Measure (or reuse) each seed of the budget, decide, store and return the result payload
    (with "result_id"). A failing measurement gives verdict "error"; Ctrl-C propagates, and the
    seeds measured so far stay stored for the next run. resume=False measures every seed afresh
    (`--reproduce`). on_seed(claim, seed, figures, seconds, reused) follows each seed."""
    if budget not in BUDGETS:
        raise ImoError(f"unknown budget {budget!r}; choose one of: {', '.join(BUDGETS)}")
    ctx = Context(store=store, quiet=quiet, log=log or (lambda msg: None),
                  code_fingerprint=code.fingerprint(claim))
    t0 = time.perf_counter()
    per_seed: list[dict] = []
    seconds, reused = 0.0, []
    error: BaseException | None = None
    tb = ""
    for seed in range(SEEDS[budget]):
        try:
            figures, s, was_reused = _seed(claim, budget, seed, store, ctx, resume)
        except Exception as e:  # the claim's bug or failure, not the check's: record it, go on
            error = e
            tb = traceback.format_exc()
            break
        per_seed.append(figures)
        seconds += s
        if on_seed is not None:
            on_seed(claim, seed, figures, s, was_reused)
        if was_reused:
            reused.append(seed)
    return finish_claim(claim, budget, store, per_seed, seconds, reused, ctx.code_fingerprint,
                        time.perf_counter() - t0, error=error, traceback_text=tb)


def finish_claim(claim: Claim, budget: str, store: RunStore, per_seed: list[dict], seconds: float,
                 reused: list[int], fingerprint: str | None, elapsed: float, *,
                 error: BaseException | str | None = None, traceback_text: str = "",
                 provenance_extra: dict[str, Any] | None = None) -> dict:  # fmt: skip
    """Decide from the figures of seeds 0.. in order (those before the first failure), draw the
    plot, store and return the claim's result payload. `error`: the first failing seed's
    exception (or its one-line text, from a worker process)."""
    rule = claim.rule
    tb = traceback_text
    run_ids = list(dict.fromkeys(r for f in per_seed for r in f.get("_runs", [])))
    payload: dict[str, Any] = {
        "claim": claim.id,
        "version": claim.version,
        "statement": claim.statement,
        "metric": rule.metric,
        "op": rule.op,
        "threshold": rule.threshold,
        "noise": rule.noise,
        "effect": rule.effect,
        "target": rule.target,
        "rule": rule.describe(),
        "falsifier": rule.falsifier,
        "budget": budget,
        "seeds": len(per_seed),
        "reused_seeds": reused,
        "figures": [shown(f) for f in per_seed],
        "duration_s": seconds,  # what the evidence cost, reused seeds included
        "elapsed_s": elapsed,  # what this check took
        "runs": run_ids,
        "plot": None,
        "provenance": provenance(fingerprint, budget, [s for s in range(len(per_seed))],
                                 seconds),
    }
    if error is not None:
        nan = math.nan
        text = error if isinstance(error, str) else one_line(error)
        payload.update(verdict="error", mean=nan, low=nan, high=nan, reason=text, error=text,
                       traceback=tb)  # fmt: skip
    else:
        d = decide(rule, [f[rule.metric] for f in per_seed], budget)
        payload.update(verdict=d.verdict, mean=d.mean, low=d.low, high=d.high, reason=d.reason,
                       band=d.band)
        if claim.plot is not None:
            # a name of its own: an older result's plot stays what that result showed
            out = claims_dir(store) / f"{claim.id}-{budget}-{secrets.token_hex(4)}.png"
            try:
                payload["plot"] = str(_draw(claim, per_seed, out))
            except Exception as e:  # the verdict stands without its picture
                payload["plot_error"] = one_line(e)
    if provenance_extra:
        payload["provenance"].update(provenance_extra)
    payload["result_id"] = store.put_result(RESULT_KIND, claim.id, payload, run_ids=run_ids)
    return payload


def evidence(results: Iterable[dict], claim: Claim) -> dict | None:
    """The stored result that speaks for a claim, from store.results(RESULT_KIND, claim.id)
    (newest first): of the claim's current version, the newest --full one, else the newest
    --quick one, else the newest --smoke one (which callers must mark: it is not evidence).
    The row comes back with its payload; None when the claim was never checked."""
    rows = [r for r in results if r["payload"].get("version") == claim.version]
    for budget in (*EVIDENCE_ORDER, "smoke"):
        for r in rows:
            if r["payload"].get("budget") == budget:
                return r
    return None


def key_figure(payload: dict) -> str:
    """`metric = value` for a table cell; with the interval for --full, the error for errors."""
    if payload.get("verdict") == "error":
        return payload.get("error", "error")
    m = payload.get("mean")
    if m is None or (isinstance(m, float) and math.isnan(m)):
        return "-"
    text = f"{payload['metric']} = {m:.4g}"
    if payload.get("budget") == "full" and payload.get("seeds", 0) >= 3:
        text += f" [{payload['low']:.4g}, {payload['high']:.4g}]"
    return text
