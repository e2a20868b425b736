"""Credentials rejected: a connection remembers the last 401/403 a card call with it got.

The record (status code, time, and the run, flow and card of the call — never anything
the upstream answered) is kept on the connection until a later call with it succeeds
(2xx or 3xx) or its credentials change.

Card calls are the hot path, so a success costs one set lookup here: each process knows
which connections have a rejection on record (:attr:`Rejections.marked`), and writes only
on a 401/403 and on the first success after one. A process learns of another process's
record when it revalidates the connection (the version check it makes anyway, every
``CARDFLOW_CONFIG_CACHE_SECONDS``): until then it does not clear it, which only delays the
clearing. A process that still believes in a record another process cleared makes one
write that changes nothing, then forgets it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from cardflow.store.models import utcnow

log = logging.getLogger("cardflow.connections")

REJECTED = frozenset({401, 403})
# The same rejection of the same connection again this soon (a loop over 10,000 items, all
# 403) is not written again: the record already says so.
_SAME_AGAIN_SECONDS = 1.0


def accepted(status_code: int) -> bool:
    """An answer that says the credentials were accepted."""
    return 200 <= status_code < 400


@dataclass(frozen=True, slots=True)
class CallSite:
    """Where a card call was made: a flow's run and card, or nothing (a card tested alone,
    a library call)."""

    run_id: str | None = None
    flow_id: str | None = None
    card_id: str | None = None


class RejectionStore(Protocol):
    """Where rejections are kept (the connection service)."""

    def record_rejection(
        self, connection_id: str, status_code: int, at: datetime, site: CallSite
    ) -> None: ...

    def clear_rejection(self, connection_id: str, before: datetime) -> bool:
        """Clear a rejection recorded before ``before``; whether there was one."""


class Rejections:
    """Which connections have a rejection on record, as this process knows it, and the
    writes that keep the record."""

    def __init__(self, store: RejectionStore) -> None:
        self._store = store
        self.marked: set[str] = set()
        self._written: dict[str, tuple[int, float]] = {}

    def concerns(self, connection_id: str, status_code: int) -> bool:
        """Whether a card call's answer changes the record. No I/O: called after every
        card call with a connection; a success on an unmarked connection is one lookup."""
        if connection_id in self.marked:
            return status_code in REJECTED or accepted(status_code)
        return status_code in REJECTED

    async def observe(
        self, connection_id: str, status_code: int, duration_ms: float, site: CallSite
    ) -> None:
        """Record a 401/403, or clear the record after a success (only when
        :meth:`concerns` said so). A failure to write is logged, never the card's."""
        try:
            if status_code in REJECTED:
                await self._rejected(connection_id, status_code, site)
            else:
                await self._accepted(connection_id, duration_ms)
        except Exception as exc:
            log.warning(
                "could not record the answer %s for connection %s (%s)",
                status_code,
                connection_id,
                type(exc).__name__,
            )

    def learned(self, connection_id: str, rejected: bool) -> None:
        """What the database says now (read when the connection was revalidated)."""
        if rejected:
            self.marked.add(connection_id)
        else:
            self.marked.discard(connection_id)
            self._written.pop(connection_id, None)

    def forget(self, connection_id: str) -> None:
        """The connection's credentials changed (or it is gone): nothing is on record."""
        self.learned(connection_id, False)

    async def _rejected(self, connection_id: str, status_code: int, site: CallSite) -> None:
        self.marked.add(connection_id)
        now = time.monotonic()
        last = self._written.get(connection_id)
        if last is not None and last[0] == status_code and now - last[1] < _SAME_AGAIN_SECONDS:
            return
        self._written[connection_id] = (status_code, now)
        await asyncio.to_thread(
            self._store.record_rejection, connection_id, status_code, utcnow(), site
        )

    async def _accepted(self, connection_id: str, duration_ms: float) -> None:
        # Forgotten first, so that calls finishing meanwhile do not write too. Should the
        # write fail, the next revalidation learns the record is still there.
        self.marked.discard(connection_id)
        self._written.pop(connection_id, None)
        # Only a rejection recorded before this call began: one that came while it was in
        # flight (another process, another endpoint) is newer news.
        began = utcnow() - timedelta(milliseconds=duration_ms)
        await asyncio.to_thread(self._store.clear_rejection, connection_id, began)
