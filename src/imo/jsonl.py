"""Reading JSON Lines files (one JSON value per line) with one clear error for any bad line.

    for n, row in read_jsonl(path, "instruction file"):   # n: the 1-based line number
        ...

Blank lines are skipped; a missing or unreadable file, or a line that is not JSON, raises
DataError naming the file and the line.
"""

import json
from collections.abc import Iterator
from pathlib import Path

from imo.errors import DataError


def read_jsonl(path: str | Path, what: str) -> Iterator[tuple[int, object]]:
    """(line number, parsed value) for every non-blank line of `path`; `what` names the file in errors."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise DataError(f"no {what} at '{path}'") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read {what} '{path}': {e}") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield n, json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{what} {path} line {n} is not JSON: {e.msg}") from None
