"""Named registries: positions, attention backends, corpora, presets, later pruners and claims.

    POSITIONS = Registry("position encoding")
    @POSITIONS.register("rope")
    class RoPE: ...
    POSITIONS.get("rop")   # ImoError: unknown position encoding 'rop'; choose one of: none, ...
"""

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from imo.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, what: str):
        self.what = what
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(obj: T) -> T:
            if name in self._items:
                raise ValueError(f"{self.what} {name!r} is already registered")
            self._items[name] = obj
            return obj

        return add

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise ConfigError(
                f"unknown {self.what} {name!r}; choose one of: {', '.join(self.names())}"
            ) from None

    def names(self) -> list[str]:
        return list(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def items(self):
        return self._items.items()
