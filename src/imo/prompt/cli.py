"""`imo prompt`: the prompt toolkit's commands (docs/prompts.md).

    imo prompt ab variants.toml --endpoint http://127.0.0.1:8000/v1 --model RUN --out ab.jsonl
    imo prompt ab --rescore ab.jsonl
    imo prompt tasks --split abbrev --n 5
    imo prompt expand "Dr. Ito, 34 y/o, mgr at HQ"
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from imo.console import print_table
from imo.errors import ConfigError

Opt = typer.Option
app = typer.Typer(help="Prompt toolkit: A/B runs of prompt variants, generated tasks, abbreviations.",
                  no_args_is_help=True)


def register(app_: typer.Typer) -> None:
    from imo.prompt.extract import extract_command

    app_.add_typer(app, name="prompt")
    app_.command("extract")(extract_command)


@app.command("ab")
def ab_command(
    variants: Annotated[Path | None, typer.Argument(help="Variants file (TOML): [tasks], [request], [[variant]]...")] = None,
    endpoint: Annotated[str, Opt(help="OpenAI-compatible base URL (/v1 is added when missing).")] = "http://127.0.0.1:8000/v1",
    model: Annotated[str | None, Opt(help="Model name at the endpoint. [default: its only model]")] = None,
    api: Annotated[str, Opt(help="chat (/v1/chat/completions) or completions (/v1/completions, the messages "
                                 "rendered as plain text; imo's byte models have no chat template).")] = "chat",
    out: Annotated[Path | None, Opt(help="Transcript to write (JSONL): every request and response. "
                                         "[default: VARIANTS with .jsonl]")] = None,
    force: Annotated[bool, Opt("--force", help="Overwrite the transcript if it exists.")] = False,
    rescore: Annotated[Path | None, Opt(help="Score this transcript offline instead of calling an endpoint.")] = None,
    concurrency: Annotated[int, Opt(help="Requests in flight at once.")] = 4,
    api_key: Annotated[str | None, Opt(help="API key. [default: OPENAI_API_KEY, else none]")] = None,
    timeout: Annotated[float, Opt(help="Seconds to wait for one response.")] = 120.0,
    json_out: Annotated[bool, Opt("--json", help="Print the summaries as one JSON line after the table.")] = False,
    quiet: Annotated[bool, Opt("--quiet", "-q", help="No progress on stderr.")] = False,
) -> None:
    """Run prompt variants on generated extraction tasks; report accuracy, TPR and TNR with 95% bootstrap intervals.

    Every request and response goes to the transcript (JSONL); --rescore scores one offline."""
    from imo.prompt import ab

    if rescore is not None:
        if variants is not None:
            raise ConfigError("give a variants file or --rescore TRANSCRIPT, not both")
        summaries = ab.rescore(rescore)
        where = rescore
    else:
        if variants is None:
            raise ConfigError("give a variants file (TOML), or --rescore TRANSCRIPT")
        if api not in ("chat", "completions"):
            raise ConfigError(f"--api must be chat or completions, got {api!r}")
        spec = ab.load_variants(variants)
        out = out or variants.with_suffix(".jsonl")
        if out.resolve() == variants.resolve():
            raise ConfigError(f"the transcript would overwrite the variants file {variants}; give --out")
        if out.exists() and not force:
            raise ConfigError(f"{out} exists; pass --force to overwrite it or choose another --out")
        if not out.parent.is_dir():
            raise ConfigError(f"the folder of --out {out} does not exist")
        ep = ab.Endpoint(endpoint, model, api, api_key or os.environ.get("OPENAI_API_KEY") or "none", timeout)
        log = None if quiet else (lambda i, n: print(f"\r... {i}/{n} calls", end="", file=sys.stderr, flush=True))
        summaries = ab.run_ab(spec, ep, out, concurrency=concurrency, progress=log)
        if not quiet:
            print(file=sys.stderr)
        where = out
    print_table(ab.COLUMNS, ab.summary_rows(summaries), title=f"prompt variants ({where})")
    if json_out:
        print(ab.summaries_json(summaries))


@app.command("tasks")
def tasks_command(
    split: Annotated[str, Opt(help="plain (no abbreviations) or abbrev (planted abbreviations).")] = "plain",
    n: Annotated[int, Opt("--n", help="Items.")] = 5,
    seed: Annotated[int, Opt(help="Seed; the same seed gives the same items.")] = 0,
) -> None:
    """Print generated extraction items (JSONL: text, truth, planted abbreviations, distractors)."""
    from imo.prompt.tasks import SPLITS, generate

    if split not in SPLITS:
        raise ConfigError(f"--split must be one of {', '.join(SPLITS)}, got {split!r}")
    if n < 0:
        raise ConfigError(f"--n must be >= 0, got {n}")
    for item in generate(split, n, seed):
        print(json.dumps(item.to_dict(), ensure_ascii=False))


@app.command("expand")
def expand_command(
    text: Annotated[str, typer.Argument(help="Text to expand.")],
    table: Annotated[Path | None, Opt(help="JSON object of extra abbreviations, {\"WFH\": \"working from home\"}.")] = None,
) -> None:
    """Expand the abbreviations a table knows; list on stderr the look-alikes it does not know."""
    from imo.prompt.abbrev import AbbreviationTable

    t = AbbreviationTable.default()
    if table is not None:
        try:
            more = json.loads(table.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"--table {table} does not exist") from None
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise ConfigError(f"--table {table} is not a readable JSON file: {e}") from None
        if not isinstance(more, dict):
            raise ConfigError(f"--table {table} must hold a JSON object of abbreviation -> expansion")
        try:
            t = t.extended(more)
        except ValueError as e:
            raise ConfigError(f"--table {table}: {e}") from None
    print(t.expand(text))
    unknown = t.unknown(text)
    if unknown:
        print(f"not in the table: {', '.join(unknown)}", file=sys.stderr)

