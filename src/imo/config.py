"""Typed configs from plain dicts (a TOML file, a stored run): unknown fields and wrong types are
refused with one line that names what is allowed.

    cfg = from_dict(TrainConfig, {"lr": 1e-3}, "train")
"""

import types
import typing
from dataclasses import fields
from typing import Any, TypeVar

from imo.errors import ConfigError

T = TypeVar("T")


def _accepts(annotation: Any, value: Any) -> bool:
    if annotation is Any:
        return True
    if isinstance(annotation, types.UnionType) or typing.get_origin(annotation) is typing.Union:
        return any(_accepts(a, value) for a in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if annotation is float:  # an int is a fine float; a bool is not a number here
        return isinstance(value, int | float) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if isinstance(annotation, type):
        return isinstance(value, annotation)
    return True


def from_dict(cls: type[T], d: dict[str, Any], what: str) -> T:
    hints = typing.get_type_hints(cls)
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(d) - known)
    if unknown:
        raise ConfigError(f"unknown {what} field(s) {', '.join(unknown)}; allowed: {', '.join(sorted(known))}")
    for name, value in d.items():
        if not _accepts(hints[name], value):
            want = getattr(hints[name], "__name__", str(hints[name]))
            raise ConfigError(f"{what}.{name} must be {want}, got {value!r}")
    return cls(**d)
