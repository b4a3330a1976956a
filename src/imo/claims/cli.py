"""`imo claims`, `imo check`, `imo report`: list the claims, measure them, show the evidence.

    imo claims                              # every claim with the verdict that speaks for it
    imo check outlier-split --full   # or: imo check --all  (--quick by default)
    imo check --all --full --jobs 2         # seeds and claims in 2 worker processes
    imo check --all --executor dask://10.0.0.5:8786   # on a Dask cluster (imo[cluster])
    imo report -o report.html               # one self-contained HTML page
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from imo.claims import load_all, registry
from imo.claims.registry import Claim
from imo.claims.runner import RESULT_KIND, key_figure
from imo.console import console, is_tty, print_table
from imo.errors import ImoError
from imo.runs.store import RunStore


def _claims() -> list[Claim]:
    load_all()
    # through the module, not a from-import: tests swap in a registry of fake claims
    return [registry.CLAIMS.get(i) for i in registry.CLAIMS]


def _when(iso: str | None) -> str:
    return iso[:19].replace("T", " ") if iso else "-"


def _verdict(payload: dict) -> str:
    v = payload.get("verdict", "error")
    return f"{v} (smoke)" if payload.get("budget") == "smoke" else v


def claims_command() -> None:
    """List the claims with their recorded full verdict (evidence/<id>.json; "no full evidence
    yet" without one) and the newest local result beside it as a preview, flagged where the two
    disagree."""
    from imo.claims.evidence import disagrees, load_record, preview_row

    claims = _claims()
    if not claims:
        print("no claims are registered", file=sys.stderr)
        return
    rows = []
    with RunStore.open() as store:
        for c in claims:
            rec = load_record(c)
            prev = preview_row(store.results(RESULT_KIND, c.id), c)
            verdict = "no full evidence yet" if rec is None else rec["verdict"] + (" (stale)" if rec["stale"] else "")
            figure = key_figure(rec) if rec is not None else "-"
            if prev is None:
                preview, when = "-", "-"
            else:
                p = prev["payload"]
                preview = f"{_verdict(p)} ({p['budget']})" + (" DISAGREES" if disagrees(rec, prev) else "")
                when = _when(prev["created_at"])
            rows.append([c.id, c.statement, verdict, figure, preview, when])
    print_table(["id", "claim", "recorded verdict", "figure", "preview", "previewed (UTC)"], rows)
    print("recorded: --full, 3+ seeds, evidence/<id>.json; preview: the newest local check, "
          "never a verdict", file=sys.stderr)


class _Display:
    """A progress bar on a terminal, one line per claim on stderr when piped, nothing when quiet."""

    def __init__(self, total: int, quiet: bool, seeds: int = 1) -> None:
        self.quiet, self.bar, self.seeds = quiet, None, seeds
        if not quiet and is_tty():
            self.bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                MofNCompleteColumn(), TimeElapsedColumn(), console=console())  # fmt: skip
            self.task = self.bar.add_task("claims", total=total)
            self.bar.start()

    def log(self, msg: str) -> None:
        if self.bar is not None:
            self.bar.update(self.task, description=msg)

    def seed(self, claim: Claim, seed: int, figures: dict, seconds: float, reused: bool) -> None:
        """A line per finished seed of a budget of several seeds (a one-seed check has its line)."""
        if self.seeds < 2:
            return
        value = figures.get(claim.rule.metric)
        value = f"{value:.4g}" if isinstance(value, int | float) else "-"
        how = "stored earlier" if reused else f"{seconds:.1f} s"
        line = f"  {claim.id} seed {seed + 1}/{self.seeds}: {claim.rule.metric} = {value} ({how})"
        if self.bar is not None:
            self.bar.console.print(line, markup=False)
        elif not self.quiet:
            print(line, file=sys.stderr, flush=True)

    def done(self, p: dict) -> None:
        line = f"{p['claim']}: {_verdict(p)}  {key_figure(p)}  ({p['elapsed_s']:.1f} s)"
        if self.bar is not None:
            self.bar.console.print(line, markup=False)
            self.bar.advance(self.task)
        elif not self.quiet:
            print(line, file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.stop()


def check_command(
    ids: Annotated[list[str] | None, typer.Argument(help="Claim ids; `imo claims` lists them.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Check every registered claim.")] = False,
    smoke: Annotated[bool, typer.Option("--smoke", help="Tiny sizes, seconds; for tests, never evidence.")] = False,
    quick: Annotated[bool, typer.Option("--quick", help="One seed, a preview judged with the noise band (default).")] = False,
    full: Annotated[bool, typer.Option("--full", help="3+ seeds, the 95% interval decides; resumable.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
    threads: Annotated[int, typer.Option(help="CPU threads for torch. The claims' models are small: one "
                                         "thread is as fast, and does not collapse on a busy machine.")] = 1,
    record: Annotated[bool, typer.Option("--record", help="With --full: write each verdict to "
                                         "evidence/<claim-id>.json (refused when src/ has uncommitted changes).")] = False,
    allow_dirty: Annotated[bool, typer.Option("--allow-dirty", help="Record even with uncommitted changes "
                                              "under src/ (the record is marked as such).")] = False,
    force: Annotated[bool, typer.Option("--force", help="Replace a record of this very code.")] = False,
    reproduce: Annotated[bool, typer.Option("--reproduce", help="Measure the full budget afresh and say "
                                            "whether it agrees with the recorded evidence (exit 1 if not).")] = False,
    jobs: Annotated[int | None, typer.Option("--jobs", "-j", help="Worker processes measuring seeds and "
                                             "claims at once, each with --threads torch threads (figures do not "
                                             "depend on it); claims that measure time run alone afterwards. "
                                             "Default 1: everything in this process.")] = None,
    executor: Annotated[str | None, typer.Option(help="Where seeds are measured: `local` (a pool of --jobs "
                                                 "processes; the default with --jobs > 1) or `dask://HOST:PORT` "
                                                 "(an existing Dask cluster, one thread per worker; needs "
                                                 "imo[cluster]).")] = None,
) -> None:
    """Measure claims and store their verdicts; prints a table of the results."""
    if threads < 1:
        raise ImoError(f"threads must be >= 1, got {threads}")
    if jobs is not None and jobs < 1:
        raise ImoError(f"--jobs must be >= 1, got {jobs}")
    if executor is not None and executor != "local":
        from imo.claims.executors import dask_address

        dask_address(executor)  # a malformed address is refused before anything runs
        if jobs is not None:
            raise ImoError("--jobs sizes the local pool; a Dask cluster runs one task per worker")
    if reproduce and (smoke or quick):
        raise ImoError("--reproduce measures the full budget; drop --smoke/--quick")
    if reproduce:
        full = True
    if (record or allow_dirty) and not full:
        raise ImoError("--record and --allow-dirty need --full: only full results are evidence")
    if record and not allow_dirty:
        from imo.claims.provenance import src_dirty

        dirty = src_dirty()
        if dirty:  # before any measurement: say so at once
            raise ImoError(f"src/ has uncommitted changes ({', '.join(dirty[:3])}"
                           f"{', ...' if len(dirty) > 3 else ''}); commit them, or pass --allow-dirty")  # fmt: skip
    import torch

    torch.set_num_threads(threads)
    chosen = [b for b, on in (("smoke", smoke), ("quick", quick), ("full", full)) if on]
    if len(chosen) > 1:
        raise ImoError(f"choose one budget, not {' and '.join('--' + b for b in chosen)}")
    budget = chosen[0] if chosen else "quick"
    known = _claims()
    if all_ and ids:
        raise ImoError("give claim ids or --all, not both")
    if not all_ and not ids:
        names = ", ".join(c.id for c in known) or "none registered"
        raise ImoError(f"name the claims to check, or --all; claims: {names}")
    if ids and not known:
        raise ImoError(f"unknown claim {ids[0]!r}; no claims are registered")
    # every id is looked up before anything runs, so a typo costs no measurement
    todo = known if all_ else [registry.CLAIMS.get(i) for i in dict.fromkeys(ids or [])]
    recorded = {}
    if reproduce:
        from imo.claims.evidence import load_record

        for c in todo:
            recorded[c.id] = load_record(c)
            if recorded[c.id] is None:
                raise ImoError(f"{c.id} has no recorded evidence to reproduce; "
                               f"`imo check {c.id} --full --record` records it")  # fmt: skip
    from imo.claims.executors import check_claims, open_executor
    from imo.claims.registry import SEEDS

    jobs = jobs or 1
    if jobs * threads > (os.cpu_count() or 1) and not quiet:
        print(f"note: {jobs} jobs x {threads} threads on {os.cpu_count()} cores: they will wait for "
              "each other (figures stay the same)", file=sys.stderr)  # fmt: skip
    results, notes, agree_all = [], [], True
    display = _Display(len(todo), quiet, SEEDS[budget])
    try:
        with RunStore.open() as store, open_executor(executor, jobs, threads, store) as ex:
            display.log(f"{len(todo)} claims ({budget})")
            # nested training stays quiet: this display is the progress, and a second live
            # progress bar inside it would clash
            for p in check_claims(todo, budget, store, ex, resume=not reproduce, log=display.log,
                                  on_seed=display.seed):  # fmt: skip
                display.done(p)
                results.append(p)
                cid = p["claim"]
                if record and p.get("verdict") != "error":
                    from imo.claims.evidence import write_record

                    notes.append(f"{cid}: recorded {write_record(p, allow_dirty, force)}")
                elif record:
                    notes.append(f"{cid}: not recorded: {p.get('error')}")
                if reproduce:
                    from imo.claims.evidence import agreement

                    ok, text = agreement(recorded[cid], p)
                    agree_all &= ok
                    notes.append(f"{cid}: {text}")
    finally:
        display.close()
    order = {c.id: i for i, c in enumerate(todo)}  # parallel claims finish in any order
    results.sort(key=lambda p: order[p["claim"]])
    notes.sort(key=lambda line: order[line.split(":", 1)[0]])
    print_table(
        ["id", "claim", "verdict", "figure", "budget", "seconds"],
        [[p["claim"], p["statement"], _verdict(p), key_figure(p), p["budget"],
          f"{p['elapsed_s']:.1f}"] for p in results],
    )  # fmt: skip
    for line in notes:
        print(line)
    if not agree_all:
        raise typer.Exit(1)


def report_command(
    out: Annotated[Path | None, typer.Option("--output", "-o", help="The file to write (default: "
                                             "report.html; with --markdown, standard output).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite the file if it exists.")] = False,
    markdown: Annotated[bool, typer.Option("--markdown", help="The recorded verdicts as a Markdown table "
                                           "(the claims section of benchmarks/RESULTS.md) instead of HTML.")] = False,
) -> None:
    """Write every claim with its rule, figures, plot and verdict as one self-contained HTML page;
    with --markdown, the recorded full verdicts (evidence/) as a Markdown table."""
    from imo.claims.report import build_report, write_report  # reads plots; only this command

    if out is None and not markdown:
        out = Path("report.html")
    if out is not None:
        out = out.expanduser().absolute()
        if out.exists() and not force:  # before building: say so at once
            raise ImoError(f"{out} exists; use --force to overwrite it")
    claims = _claims()
    if markdown:
        from imo.claims.report_markdown import claims_markdown

        text = claims_markdown(claims) + "\n"
        if out is None:
            print(text, end="")
        else:
            print(write_report(out, text, force=force))
        return
    with RunStore.open() as store:
        html = build_report(store, claims)
    print(write_report(out, html, force=force))
