"""Terminal output: tables and progress bars that behave when stdout is not a terminal.

On a terminal, tables are drawn with rich. Piped or redirected, they print in full as plain
tab-separated text (no truncated ids, no colour) and progress bars are off.
"""

import sys
from collections.abc import Sequence

from rich.console import Console
from rich.table import Table


def is_tty() -> bool:
    return sys.stdout.isatty()


def console() -> Console:
    return Console(highlight=False, soft_wrap=not is_tty())


def print_table(columns: Sequence[str], rows: Sequence[Sequence[object]], title: str | None = None) -> None:
    cells = [["" if v is None else str(v) for v in row] for row in rows]
    if not is_tty():
        if title:
            print(f"# {title}")
        print("\t".join(columns))
        for row in cells:
            print("\t".join(row))
        return
    table = Table(title=title, show_lines=False)
    for i, c in enumerate(columns):
        table.add_column(c, overflow="fold", no_wrap=i == 0)  # ids in the first column stay whole
    for row in cells:
        table.add_row(*row)
    console().print(table)


def err(message: str) -> None:
    print(message, file=sys.stderr)
