"""The `imo` command. Each package keeps its own sub-commands in imo/<pkg>/cli.py; this file
mounts them and turns an ImoError into one line on stderr and exit code 2.

Help strings are plain text: Typer draws them with rich, which would read `[default: 16]` or
`[model]` as markup and print nothing, so the root group escapes every help string of every
command before it runs (whether from `main` or typer's CliRunner)."""

import sys
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperGroup

from imo import paths
from imo.errors import ImoError


def escape_help(command) -> None:
    """Escape rich markup in the help of `command`, its parameters and its sub-commands (once)."""
    from rich.markup import escape

    if getattr(command, "_imo_help_escaped", False):
        return
    command._imo_help_escaped = True
    for owner in (command, *command.params):
        for attr in ("help", "short_help", "epilog"):
            text = getattr(owner, attr, None)
            if isinstance(text, str) and text:
                setattr(owner, attr, escape(text))
    for sub in getattr(command, "commands", {}).values():
        escape_help(sub)


class _Root(TyperGroup):
    def main(self, *args, **kwargs):
        escape_help(self)
        return super().main(*args, **kwargs)


app = typer.Typer(
    name="imo",
    cls=_Root,
    help="A laboratory for small transformer language models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    add_completion=False,
)


@app.callback()
def _global(
    store: Annotated[
        Path | None,
        typer.Option("--store", help="Run store file (SQLite); default: IMO_STORE or the user data dir."),
    ] = None,
) -> None:
    paths.set_store(store)


_mounted = False


def _mount() -> None:
    """Attach the sub-commands that live with their packages (once)."""
    global _mounted
    if _mounted:
        return
    _mounted = True
    from imo.data.cli import corpora_command
    from imo.demo import demo_command
    from imo.doctor import doctor_command
    from imo.engine.cli import sample_command
    from imo.runs.cli import app as runs_app
    from imo.train.cli import eval_command, train_command

    app.command("train")(train_command)
    app.command("eval")(eval_command)
    app.command("sample")(sample_command)
    app.command("corpora")(corpora_command)
    from imo.claims.cli import check_command, claims_command, report_command
    from imo.model.cli import export_command

    app.command("export")(export_command)
    app.command("claims")(claims_command)
    app.command("check")(check_command)
    app.command("report")(report_command)
    app.command("demo")(demo_command)
    app.command("doctor")(doctor_command)
    app.add_typer(runs_app, name="runs")
    # Packages with several commands (zip/unzip, prune/quantize/..., serve, reason, exam) mount
    # them through a `register(app)` function in their cli module.
    from imo.compress import cli as compress_cli
    from imo.engine import cli as engine_cli
    from imo.exams import cli as exams_cli
    from imo.importers import cli as importers_cli
    from imo.inspect import cli as inspect_cli
    from imo.learn import cli as learn_cli
    from imo.prompt import cli as prompt_cli
    from imo.reason import cli as reason_cli
    from imo.zip import cli as zip_cli

    for module in (zip_cli, compress_cli, engine_cli, reason_cli, exams_cli, importers_cli, inspect_cli,
                   learn_cli, prompt_cli):
        module.register(app)
    __import__("imo.agents.cli", fromlist=["register"]).register(app)  # imo agent (gymnasium loads lazily)


def _app_for(argv: list[str]) -> typer.Typer:
    """The whole CLI, or for `imo zip` / `imo unzip` an app with only those two: a compressor's
    start-up is part of its speed, and the other commands' imports (torch, scipy) cost seconds."""
    if argv and argv[0] in ("zip", "unzip"):
        from imo.zip import cli as zip_cli

        small = typer.Typer(name="imo", cls=_Root, pretty_exceptions_enable=False, add_completion=False,
                            context_settings={"help_option_names": ["-h", "--help"]})
        zip_cli.register(small)
        return small
    _mount()
    return app


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    try:
        _app_for(argv)(args=argv, prog_name="imo")
    except ImoError as e:
        print(f"imo: error: {e}", file=sys.stderr)
        if e.hint:
            print(f"hint: {e.hint}", file=sys.stderr)
        sys.exit(e.exit_code)
    except KeyboardInterrupt:
        print("imo: interrupted", file=sys.stderr)
        sys.exit(130)
