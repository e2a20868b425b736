"""Recently checked values: a small time-limited cache for what lives in the database.

Several processes may serve one database, so what a process keeps (a token's id, a
flow, a connection's auth) must be checked again every few seconds. :class:`Recent`
says whether an entry is still fresh and keeps stale ones for revalidation: the caller
compares a version and, if nothing changed, marks the entry fresh again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Recent(Generic[K, V]):
    """Values by key, each fresh for ``seconds`` after it was last checked.

    Reads take no lock (a dict lookup is atomic); writes from threads do."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._entries: dict[K, tuple[V, float]] = {}
        self._lock = threading.Lock()

    def fresh(self, key: K) -> V | None:
        """The value if it was checked less than ``seconds`` ago."""
        entry = self._entries.get(key)
        if entry is not None and time.monotonic() - entry[1] < self.seconds:
            return entry[0]
        return None

    def stale(self, key: K) -> V | None:
        """The value however old (to revalidate it against the database)."""
        entry = self._entries.get(key)
        return entry[0] if entry is not None else None

    def put(self, key: K, value: V) -> None:
        """Keep a value, checked now."""
        with self._lock:
            self._entries[key] = (value, time.monotonic())

    def forget(self, key: K) -> None:
        with self._lock:
            self._entries.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def items(self) -> Iterator[tuple[K, V]]:
        for key, (value, _) in list(self._entries.items()):
            yield key, value
