"""`imo claims`, `imo check`, `imo report`: list the claims, measure them, show the evidence.

    imo claims                              # every claim with the verdict that speaks for it
    imo check position-breaks-symmetry --full   # or: imo check --all  (--quick by default)
    imo report -o report.html               # one self-contained HTML page
"""

from __future__ import annotations

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
from imo.claims.runner import RESULT_KIND, evidence, key_figure, run_claim
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
    """List the claims with the verdict that speaks for each (--full before --quick; smoke
    results are marked, they are not evidence)."""
    claims = _claims()
    if not claims:
        print("no claims are registered", file=sys.stderr)
        return
    rows = []
    with RunStore.open() as store:
        for c in claims:
            r = evidence(store.results(RESULT_KIND, c.id), c)
            if r is None:
                rows.append([c.id, c.statement, "not yet checked", "-", "-", "-"])
            else:
                p = r["payload"]
                rows.append([c.id, c.statement, _verdict(p), key_figure(p), p["budget"],
                             _when(r["created_at"])])  # fmt: skip
    print_table(["id", "claim", "verdict", "figure", "budget", "checked (UTC)"], rows)


class _Display:
    """A progress bar on a terminal, one line per claim on stderr when piped, nothing when quiet."""

    def __init__(self, total: int, quiet: bool) -> None:
        self.quiet, self.bar = quiet, None
        if not quiet and is_tty():
            self.bar = Progress(SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
                                MofNCompleteColumn(), TimeElapsedColumn(), console=console())  # fmt: skip
            self.task = self.bar.add_task("claims", total=total)
            self.bar.start()

    def log(self, msg: str) -> None:
        if self.bar is not None:
            self.bar.update(self.task, description=msg)

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
) -> None:
    """Measure claims and store their verdicts; prints a table of the results."""
    if threads < 1:
        raise ImoError(f"threads must be >= 1, got {threads}")
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
    results = []
    display = _Display(len(todo), quiet)
    try:
        with RunStore.open() as store:
            for c in todo:
                display.log(f"{c.id} ({budget})")
                # nested training stays quiet: this display is the progress, and a second live
                # progress bar inside it would clash
                p = run_claim(c, budget, store, quiet=True, log=display.log)
                display.done(p)
                results.append(p)
    finally:
        display.close()
    print_table(
        ["id", "claim", "verdict", "figure", "budget", "seconds"],
        [[p["claim"], p["statement"], _verdict(p), key_figure(p), p["budget"],
          f"{p['elapsed_s']:.1f}"] for p in results],
    )  # fmt: skip


def report_command(
    out: Annotated[Path, typer.Option("--output", "-o", help="The HTML file to write.")] = Path("report.html"),
    force: Annotated[bool, typer.Option("--force", help="Overwrite the file if it exists.")] = False,
) -> None:
    """Write every claim with its rule, figures, plot and verdict as one self-contained HTML page."""
    from imo.claims.report import build_report, write_report  # reads plots; only this command

    out = out.expanduser().absolute()
    if out.exists() and not force:  # before building: say so at once
        raise ImoError(f"{out} exists; use --force to overwrite it")
    claims = _claims()
    with RunStore.open() as store:
        html = build_report(store, claims)
    print(write_report(out, html, force=force))
