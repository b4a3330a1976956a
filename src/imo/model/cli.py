"""`imo export`: write a run's model in another library's format.

    imo export 3fa2 --format hf-gpt2 out/my-model          # then GPT2LMHeadModel.from_pretrained
    imo export 3fa2 --format hf-gpt2 out/my-model --force  # replace an earlier export
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def export_command(
    run: Annotated[str, typer.Argument(metavar="RUN", help="Run id, unique id prefix or run name.")],
    out: Annotated[Path, typer.Argument(metavar="DIR", help="Folder to write the export into.")],
    format: Annotated[
        str, typer.Option("--format", help="Export format; only hf-gpt2 (Hugging Face GPT-2).")
    ] = "hf-gpt2",
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite DIR if it exists and is not empty.")
    ] = False,
) -> None:
    """Export a run's latest checkpoint (hf-gpt2: a GPT2LMHeadModel folder)."""
    # imported here so that `imo --help` does not pay for importing torch
    from imo.errors import ConfigError
    from imo.model.export import FORMATS, export_hf_gpt2
    from imo.runs.store import RunStore

    if format not in FORMATS:
        raise ConfigError(f"unknown export format {format!r}; choose one of: {', '.join(FORMATS)}")
    with RunStore.open() as store:
        run_dir = store.run_dir(store.resolve(run))
    print(export_hf_gpt2(run_dir, out, force=force))
