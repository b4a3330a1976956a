"""Reading users' text files with one clear error: a missing or unreadable file (read_text), and
JSON Lines files, one JSON value per line, with a bad line named (read_jsonl).

    text = read_text(path, "schema file")
    for n, row in read_jsonl(path, "instruction file"):   # n: the 1-based line number
        ...

Blank lines of a JSON Lines file are skipped. Every failure is a DataError naming the file (and line).
"""

import json
from collections.abc import Iterator
from pathlib import Path

from imo.errors import DataError


def read_text(path: str | Path, what: str) -> str:
    """The UTF-8 text of `path`; `what` names the file in errors ("no schema file at ... (it does not exist)")."""
    path = Path(path)
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"no {what} at '{path}' (it does not exist)") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"cannot read {what} '{path}': {e}") from None


def read_jsonl(path: str | Path, what: str) -> Iterator[tuple[int, object]]:
    """(line number, parsed value) for every non-blank line of `path`; `what` names the file in errors."""
    for n, line in enumerate(read_text(path, what).splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield n, json.loads(line)
        except json.JSONDecodeError as e:
            raise DataError(f"{what} {path} line {n} is not JSON: {e.msg}") from None
