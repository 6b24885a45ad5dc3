"""Helpers for tests that run against every store: a call-counting wrapper."""

from __future__ import annotations

from collections import Counter
from typing import Any

from waflow.store import Store


class Counting:
    """Wraps a store: counts the calls of each method; ``fail`` makes named calls raise once."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.calls: Counter[str] = Counter()
        self.recorded: list[int] = []  # sends recorded per outbox_complete_many call
        self.fail: dict[str, set[int]] = {}  # method -> the calls (numbered from 1) that raise

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._store, name)
        if not callable(method):
            return method  # an attribute such as keeps_objects, not a call to count

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            if self.calls[name] in self.fail.get(name, ()):
                raise ConnectionError(f"the store is away ({name})")
            if name == "outbox_complete_many":
                self.recorded.append(len(args[0]))
            return await method(*args, **kwargs)

        return counted
