"""`imo runs`: list, show, compare and delete the runs in the run store.

A run is named by its full id, a unique prefix of it, or its exact name:

    imo runs                  # table, newest first;  imo runs --ids  for one id per line
    imo runs show 3fa2        # config, figures, artifacts; writes the loss curve PNG
    imo runs compare 3fa2 9b1c -o cmp.png
    imo runs rm 3fa2 --yes
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from imo.console import print_table
from imo.errors import ImoError
from imo.runs.store import RunStore

app = typer.Typer(
    help="List, show, compare and delete runs in the run store.",
    no_args_is_help=False,
    invoke_without_command=True,
)


def _fmt(v: object) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}" if 1e-3 <= abs(v) < 1e5 else f"{v:.4g}"
    return str(v)


def _when(iso: str | None) -> str:
    # 2025-11-29T14:37:05.123456+00:00 -> 2025-11-29 14:37:05 (UTC, to the second)
    return iso[:19].replace("T", " ") if iso else "-"


def _tree(d: dict, fmt: Callable[[object], str] = _fmt, indent: int = 2) -> list[str]:
    """Nested dict as indented `key: value` lines, nested dicts one level deeper."""
    lines = []
    for k, v in d.items():
        if isinstance(v, dict) and v:
            lines.append(" " * indent + f"{k}:")
            lines.extend(_tree(v, fmt, indent + 2))
        else:
            lines.append(" " * indent + f"{k}: {fmt(v)}")
    return lines


def _interactive() -> bool:
    return sys.stdin.isatty()


@app.callback()
def runs(
    ctx: typer.Context,
    ids: Annotated[bool, typer.Option("--ids", help="Print only run ids, one per line.")] = False,
    kind: Annotated[str | None, typer.Option("--kind", help="Only runs of this kind (train, prune, quantize, reason-policy, ...).")] = None,
    tag: Annotated[str | None, typer.Option("--tag", help="Only runs with this tag (`imo train --tags`).")] = None,
) -> None:
    """List runs, newest first. `val bpb` is measured on the bytes `scored on` says: the whole
    validation split (training runs) or its first N bytes (prune and quantize runs)."""
    if ctx.invoked_subcommand is not None:
        return
    with RunStore.open() as store:
        if kind is not None and kind not in store.kinds():
            raise ImoError(f"unknown run kind {kind!r}; kinds: {', '.join(store.kinds())}")
        rows = store.list(kind, tag=tag)
        if ids:
            for r in rows:
                print(r["id"])
            return
        if not rows:
            what = "".join([f" of kind {kind!r}" if kind else "", f" tagged {tag!r}" if tag else ""])
            print(f"no runs{what} in {store.path}", file=sys.stderr)
            return
    print_table(
        ["id", "name", "kind", "status", "steps", "val bpb", "scored on", "tags", "started (UTC)"],
        [
            [r["id"], r["name"], r["kind"], r["status"], _fmt(r["steps"]),
             _fmt(r["figures"].get("val_bpb")), scored_on(r["figures"]), ",".join(r["tags"]) or "-",
             _when(r["started_at"])]
            for r in rows
        ],
    )  # fmt: skip


def scored_on(figures: dict) -> str:
    """The bytes a run's val_bpb was measured on, so figures on different bytes are not mixed."""
    if figures.get("val_bpb") is None:
        return "-"
    n = figures.get("eval_bytes")
    return f"val[:{n:,}]" if n else "val (all)"


def _flat(d: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for k, v in d.items():
        if isinstance(v, dict) and v:
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def weights_bytes(run_dir: Path) -> int | None:
    """Bytes on disk of the weights file of a run's latest checkpoint (None: no checkpoint)."""
    import json

    try:
        ptr = json.loads((run_dir / "checkpoint.json").read_text())
        return (run_dir / ptr["dir"] / "model.safetensors").stat().st_size
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _size(store: RunStore, r: dict) -> str:
    n = weights_bytes(store.run_dir(r["id"]))
    if n is None:
        return "-"
    text = f"{n:,} bytes on disk (weights)"
    p = weights_bytes(store.run_dir(r["parent"])) if r["parent"] else None
    return text + (f", {n / p:.1%} of the parent's {p:,}" if p else "")


@app.command()
def show(
    run: Annotated[str, typer.Argument(help="Run id, unique id prefix or exact name.")],
) -> None:
    """Config, figures, artifacts and provenance of one run; writes its loss curve PNG."""
    from imo.runs import plots  # matplotlib costs a second; only the commands that plot load it

    with RunStore.open() as store:
        r = store.get(store.resolve(run))
        m = r["machine"]
        commit = r["git_commit"] or "-"
        if r["git_dirty"]:
            commit += " (dirty)"
        head = [
            ("run", f"{r['id']}  {r['name']}"),
            ("kind", r["kind"]),
            ("status", r["status"]),
            ("parent", r["parent"] or "-"),
            ("commit", commit),
            (
                "machine",
                f"{m.get('node')} {m.get('machine')}, {m.get('cpus')} cpus, torch {m.get('torch')}",
            ),
            ("started", _when(r["started_at"])),
            ("ended", _when(r["ended_at"])),
            ("steps", _fmt(r["steps"])),
            ("folder", str(store.run_dir(r["id"]))),
            ("size", _size(store, r)),
            ("val bpb", _fmt(r["figures"].get("val_bpb")) + " bits/byte (validation)"),
        ]
        f = r["figures"]
        if "train_tokens_per_s" in f:  # training runs since issue 14: speed of the steps and MFU
            mfu = f", MFU {f['mfu']:.0%}" if "mfu" in f else ""
            head.append(("speed", f"{f['train_tokens_per_s']:,.0f} tokens/s{mfu} ({f.get('dtype', '?')})"))
        for k, v in head:
            print(f"{k:<8} {v}")
        # config values exactly as given (an lr of 3e-4 must not read 0.0003); figures rounded
        for title, d, fmt in (
            ("config", r["config"], lambda v: v if isinstance(v, str) else repr(v)),
            ("figures", r["figures"], _fmt),
            ("artifacts", r["artifacts"], str),
        ):
            print(f"\n{title}")
            print("\n".join(_tree(d, fmt)) if d else "  -")
        if r["kind"] == "moe" and f.get("experts", 1) > 1 and "load" in f:  # imo learn moe: expert usage
            from imo.learn.moe import histogram

            print("\nexpert load (final validation pass, eval routing)")
            for i, (layer, cv) in enumerate(zip(f["load"], f["load_cv"], strict=True)):
                print(f" layer {i}: coefficient of variation {cv:.3f}")
                print("\n".join(histogram(layer)))
        if plots.curves(store, r["id"]):
            png = plots.loss_curve_png(store, [r["id"]], store.run_dir(r["id"]) / "loss.png")
            print(f"\nloss curve: {png}")
        else:
            print("\nloss curve: none (no bits-per-byte metrics logged)")


@app.command()
def compare(
    runs: Annotated[list[str], typer.Argument(help="Run ids, prefixes or names.")],
    out: Annotated[
        Path | None, typer.Option("-o", "--out", help="PNG path (default: in the store dir).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite the -o file if it exists.")] = False,
) -> None:
    """Final figures side by side, one column per run, and one PNG with all loss curves."""
    from imo.runs import plots

    if out is not None and out.exists() and not force:
        raise ImoError(f"{out} exists; use --force to overwrite it")

    with RunStore.open() as store:
        ids = list(dict.fromkeys(store.resolve(r) for r in runs))  # resolve all, drop repeats
        rs = [store.get(i) for i in ids]
        # `steps` is shown once (the last logged step), then every figure, then the config
        # fields that differ between the runs
        keys = sorted({k for r in rs for k in r["figures"]} - {"steps"})
        rows = [["name", *(r["name"] for r in rs)], ["kind", *(r["kind"] for r in rs)],
                ["status", *(r["status"] for r in rs)],
                ["steps", *(_fmt(r["steps"] if r["steps"] is not None else r["figures"].get("steps")) for r in rs)],
                ["scored on", *(scored_on(r["figures"]) for r in rs)]]  # fmt: skip
        rows += [[k, *(_fmt(r["figures"].get(k)) for r in rs)] for k in keys]
        configs = [_flat(r["config"]) for r in rs]
        differ = sorted(k for k in set().union(*configs) if len({repr(c.get(k)) for c in configs}) > 1)
        rows += [[f"config {k}", *(_fmt(c.get(k)) for c in configs)] for k in differ]
        print_table(["", *ids], rows)
        if out is None:
            tag = "-".join(ids)
            if len(tag) > 150:  # keep the file name under any file system's limit
                tag = hashlib.sha256(tag.encode()).hexdigest()[:12]
            out = store.path.parent / f"compare-{tag}.png"
        png = plots.loss_curve_png(store, ids, out)
    print(f"loss curves: {png}")


@app.command()
def rm(
    runs: Annotated[list[str], typer.Argument(help="Run ids, prefixes or names.")],
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Delete without asking.")] = False,
) -> None:
    """Delete runs: their rows in the store and their folders."""
    with RunStore.open() as store:
        # resolve every argument before deleting anything, so a typo deletes nothing
        rs = [store.get(store.resolve(r)) for r in runs]
        rs = list({r["id"]: r for r in rs}.values())
        if not yes:
            if not _interactive():
                raise ImoError("stdin is not a terminal; pass --yes to delete without asking")
            names = ", ".join(f"{r['id']} ({r['name']})" for r in rs)
            typer.confirm(
                f"delete {names} and {'its folder' if len(rs) == 1 else 'their folders'}?",
                abort=True,
            )
        for r in rs:
            store.rm(r["id"])
            print(f"deleted {r['id']} ({r['name']})")
