"""User-facing errors.

An ImoError is bad input from the user (unknown name, impossible value, missing or corrupt
file): the CLI prints its message as one line and exits with code 2, never a traceback.
Bugs are not ImoErrors; they still raise normally.
"""


class ImoError(Exception):
    """One-line message saying what is wrong and what is allowed; exit code 2."""

    exit_code = 2

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


class ConfigError(ImoError):
    """A configuration value is unknown or impossible."""


class CheckpointError(ImoError):
    """A checkpoint is missing, corrupt or from an incompatible version."""


class RunNotFound(ImoError):
    """A run id or prefix matches no run, or more than one."""


class RunBusy(ImoError):
    """A run (or a lock in the store) is in use by another process."""


class DataError(ImoError):
    """A corpus or file cannot be read."""
