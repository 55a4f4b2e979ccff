"""A named registry for pluggable units (checks, strategies, writers).

Registering a name twice raises; looking up an unknown name raises a `ConfigError` that lists
the valid names.
"""
from __future__ import annotations

from typing import Generic, Iterator, TypeVar

from curate.errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def add(self, name: str, item: T) -> T:
        if name in self._items:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._items[name] = item
        return item

    def get(self, name: str) -> T:
        if name not in self._items:
            raise ConfigError(f"unknown {self.kind} {name!r}; valid: {', '.join(sorted(self._items))}")
        return self._items[name]

    def require(self, names: object) -> None:
        """Fail (listing the valid names) if any of `names` is not registered."""
        for name in names:  # type: ignore[attr-defined]
            self.get(name)

    def names(self) -> list[str]:
        return list(self._items)

    def __iter__(self) -> Iterator[T]:
        return iter(self._items.values())
