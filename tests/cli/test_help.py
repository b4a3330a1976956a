"""Every command's --help shows each option's default and every bracket of its help text.

Typer draws help with rich, which reads `[default: 16]` or `[model]` as markup and drops it;
imo's root group escapes all help strings (imo.cli.escape_help). This walks every command and
sub-command, renders its --help and reads each option's row.
"""

import re

import pytest
import typer.main
import typer.rich_utils
from typer.testing import CliRunner

import imo.cli

imo.cli._mount()

MARKUP = re.compile(r"\[[a-zA-Z#/@][^\[\]]*\]")  # what rich would take for a tag


def _commands(cmd, path=()):
    if path:
        yield path, cmd
    for name, sub in sorted(getattr(cmd, "commands", {}).items()):
        yield from _commands(sub, (*path, name))


COMMANDS = list(_commands(typer.main.get_command(imo.cli.app)))


def _rows(text: str) -> dict[str, str]:
    """Option/argument name -> the text of its row(s) in a rendered help panel."""
    rows, current = {}, None
    for line in text.splitlines():
        body = line.strip().strip("│").strip()
        first = body.lstrip("* ").split(" ", 1)[0]
        if line.lstrip().startswith("│") and first and not line.lstrip("│ ").startswith(" "):
            current = first
            rows[current] = body
        elif current and line.lstrip().startswith("│"):
            rows[current] += " " + body  # a continuation line of the same row
        else:
            current = None
    return rows


def _help(path, monkeypatch) -> str:
    monkeypatch.setattr(typer.rich_utils, "MAX_WIDTH", 400)  # one line per row
    res = CliRunner().invoke(imo.cli.app, [*path, "--help"])
    assert res.exit_code == 0, res.output
    return res.output


def _shows_default(param) -> bool:
    if param.default is None or getattr(param, "hidden", False):
        return False
    if getattr(param, "is_flag", False) and not getattr(param, "secondary_opts", None) and not param.default:
        return False  # an off-unless-given flag (--quiet)
    return True


def test_the_walk_finds_the_commands():
    names = {" ".join(p) for p, _ in COMMANDS}
    assert {"train", "eval", "zip", "exam skills", "runs compare", "reason solve"} <= names


@pytest.mark.parametrize("path,cmd", COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_option_shows_its_default_and_its_brackets(path, cmd, monkeypatch):
    text = _help(path, monkeypatch)
    rows = _rows(text)
    for tag in MARKUP.findall(cmd.help or ""):
        assert tag in text, f"imo {' '.join(path)}: {tag} eaten from the command's help"
    for p in cmd.params:
        if p.name == "help" or getattr(p, "hidden", False):  # hidden: old spellings kept as aliases
            continue
        key = next((o for o in (*p.opts, *getattr(p, "secondary_opts", ())) if o in rows), None)
        if key is None and p.param_type_name == "argument":  # shown by its metavar: find its help
            start = (p.help or "").replace("\\[", "[")[:40]
            key = next((k for k, row in rows.items() if start and start in row), None)
        assert key is not None, f"imo {' '.join(path)}: no row for {p.name} in\n{text}"
        row = rows[key]
        for tag in MARKUP.findall(p.help or ""):
            assert tag in row, f"imo {' '.join(path)} {key}: {tag} eaten from {row!r}"
        if _shows_default(p):
            assert "[default:" in row, f"imo {' '.join(path)} {key} shows no default: {row!r}"


def test_train_help_reads_as_written(monkeypatch):
    rows = _rows(_help(["train"], monkeypatch))
    assert "TOML file with [model] and [train] tables." in rows["--config"]
    for opt, default in (("--steps", "1000 unless --minutes"), ("--lr", "3e-3"), ("--batch-size", "16"),
                         ("--preset", "tiny"), ("--seed", "1337")):
        assert f"[default: {default}]" in rows[opt], rows[opt]


def test_escaping_is_done_once(monkeypatch):
    group = typer.main.get_command(imo.cli.app)
    imo.cli.escape_help(group)
    once = group.commands["train"].params[2].help
    imo.cli.escape_help(group)
    assert group.commands["train"].params[2].help == once
