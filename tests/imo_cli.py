"""`imo(*args)`: run the imo CLI in-process and return its exit code (tests import it by name,
since pytest puts tests/ on sys.path for tests/conftest.py)."""
from imo.cli import main


def imo(*args: str) -> int:
    try:
        main(list(args))
    except SystemExit as e:
        return int(e.code or 0)
    return 0
