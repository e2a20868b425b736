"""Reading the audit log (listed newest first, exported as JSON lines), its retention
sweep, and failed logins recorded without letting a flood of them flood the log."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from pydantic import Field
from sqlalchemy import Select, delete, or_, select

from cardflow.audit.actor import current_actor
from cardflow.audit.record import Target, record
from cardflow.store.db import Database
from cardflow.store.models import AuditEvent
from cardflow.views import Timestamp, View

MAX_LIMIT = 500
EXPORT_PAGE = 500
PRUNE_BATCH = 1000
PRUNE_MAX_BATCHES = 100  # a sweep deletes at most 100,000 entries; the next one goes on


class AuditActor(View):
    """Who did it: ``kind`` (api_token, web_session, cli, library, anonymous) and, where
    known, the API token's or web session's id and name, and the user it acted for (the
    owner for the CLI), by id and by name as it was then."""

    kind: str = Field(examples=["api_token"])
    id: str | None
    name: str | None
    user_id: str | None = None
    user_name: str | None = None


class AuditTarget(View):
    """What it was done to, as it was named then."""

    type: str = Field(examples=["connection"])
    id: str | None
    name: str | None


class AuditEventView(View):
    """One audit log entry. ``changes`` lists each field changed with its old and new
    values, or, for a secret (and for values too big to show), only ``"changed": true``."""

    id: int
    at: Timestamp
    action: str = Field(examples=["connection.updated"])
    actor: AuditActor
    address: str | None = Field(
        description="From where: the client's IP address as the server saw it, or "
        "cli@<host> for a command run on the host."
    )
    target: AuditTarget | None
    changes: list[dict[str, Any]]
    details: dict[str, Any]

    @classmethod
    def of(cls, row: AuditEvent) -> AuditEventView:
        return cls(
            id=row.id,
            at=row.at,
            action=row.action,
            actor=AuditActor(
                kind=row.actor_kind,
                id=row.actor_id,
                name=row.actor_name,
                user_id=row.user_id,
                user_name=row.user_name,
            ),
            address=row.address,
            target=(
                AuditTarget(type=row.target_type, id=row.target_id, name=row.target_name)
                if row.target_type
                else None
            ),
            changes=list(row.changes or []),
            details=dict(row.details or {}),
        )


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


@dataclass(frozen=True)
class AuditFilter:
    """Which entries: ``action`` exactly or as a prefix (``connection`` matches
    ``connection.updated``); ``target`` and ``actor`` by id or name (``actor`` also by
    kind, and by its user's id or name); ``since`` (inclusive) and ``until`` (exclusive)
    on the time."""

    action: str | None = None
    target: str | None = None
    actor: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def apply(self, query: Select[Any]) -> Select[Any]:
        if self.action:
            query = query.where(
                or_(
                    AuditEvent.action == self.action,
                    AuditEvent.action.startswith(self.action + ".", autoescape=True),
                )
            )
        if self.target:
            query = query.where(
                or_(AuditEvent.target_id == self.target, AuditEvent.target_name == self.target)
            )
        if self.actor:
            query = query.where(
                or_(
                    AuditEvent.actor_id == self.actor,
                    AuditEvent.actor_name == self.actor,
                    AuditEvent.actor_kind == self.actor,
                    AuditEvent.user_id == self.actor,
                    AuditEvent.user_name == self.actor,
                )
            )
        since, until = _utc(self.since), _utc(self.until)
        if since is not None:
            query = query.where(AuditEvent.at >= since)
        if until is not None:
            query = query.where(AuditEvent.at < until)
        return query


@dataclass
class FailureLimiter:
    """Failed logins (a bad API token, a spent login link) are recorded, but at most one
    per kind and address per ``window`` seconds — later ones in the window are counted
    and their number given with the next one recorded — and at most ``per_window`` in all
    per window (this process). A flood of bad tokens makes a few entries, not millions."""

    window: float = 60.0
    per_window: int = 30
    clock: Callable[[], float] = time.monotonic
    _started: float = field(default=float("-inf"), init=False)
    _recorded: int = field(default=0, init=False)
    _seen: dict[tuple[str, str], int] = field(default_factory=dict, init=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False)

    def admit(self, action: str, address: str | None) -> int | None:
        """None: do not record this one; else record it, saying how many were not."""
        key = (action, address or "")
        now = self.clock()
        with self._lock:
            if now - self._started >= self.window:
                carried = {k: n for k, n in self._seen.items() if n > 0}
                self._started, self._recorded, self._seen = now, 0, {}
                suppressed = carried.get(key, 0)
            elif key in self._seen or self._recorded >= self.per_window:
                if key in self._seen or len(self._seen) < 4 * self.per_window:
                    self._seen[key] = self._seen.get(key, 0) + 1
                return None
            else:
                suppressed = 0
            self._seen[key] = 0
            self._recorded += 1
            return suppressed


class AuditLog:
    """The audit log's reading side and its upkeep (entries are written by
    :func:`cardflow.audit.record.record` in the services that make the changes)."""

    def __init__(self, db: Database) -> None:
        self._db = db
        self.failures = FailureLimiter()

    def list(
        self, where: AuditFilter | None = None, *, before: int | None = None, limit: int = 100
    ) -> list[AuditEventView]:
        """Entries newest first; ``before``: an entry id, for the page after it."""
        limit = max(1, min(limit, MAX_LIMIT))
        query = (where or AuditFilter()).apply(select(AuditEvent)).order_by(AuditEvent.id.desc())
        if before is not None:
            query = query.where(AuditEvent.id < before)
        with self._db.session() as session:
            return [AuditEventView.of(row) for row in session.scalars(query.limit(limit))]

    def export(self, where: AuditFilter | None = None) -> Iterator[AuditEventView]:
        """Every entry, oldest first, read a page at a time (memory stays bounded)."""
        after = 0
        while True:
            query = (
                (where or AuditFilter())
                .apply(select(AuditEvent))
                .where(AuditEvent.id > after)
                .order_by(AuditEvent.id)
                .limit(EXPORT_PAGE)
            )
            with self._db.session() as session:
                page = [AuditEventView.of(row) for row in session.scalars(query)]
            yield from page
            if len(page) < EXPORT_PAGE:
                return
            after = page[-1].id

    def prune(self, older_than: datetime) -> int:
        """The retention sweep — the only deletion of audit entries: those before
        ``older_than``, in batches (one transaction each), at most PRUNE_MAX_BATCHES."""
        removed = 0
        for _ in range(PRUNE_MAX_BATCHES):
            with self._db.session() as session:
                ids = list(
                    session.scalars(
                        select(AuditEvent.id)
                        .where(AuditEvent.at < older_than)
                        .order_by(AuditEvent.id)
                        .limit(PRUNE_BATCH)
                    )
                )
                if ids:
                    session.execute(delete(AuditEvent).where(AuditEvent.id.in_(ids)))
            removed += len(ids)
            if len(ids) < PRUNE_BATCH:
                break
        return removed

    def failed(
        self,
        action: str,
        reason: str,
        target: Target | None = None,
        *,
        user: tuple[str | None, str | None] | None = None,
    ) -> None:
        """Record a failed login (its own transaction: the attempt changed nothing),
        bounded by :class:`FailureLimiter`; ``user``: (id, name) of whom it tried to log in
        as, when known."""
        suppressed = self.failures.admit(action, current_actor.get().address)
        if suppressed is None:
            return
        details: dict[str, Any] = {"reason": reason}
        if suppressed:
            details["not_recorded_before"] = suppressed
        actor = current_actor.get()
        if user is not None:
            actor = actor.as_user(*user)
        with self._db.session() as session:
            record(session, action, target, details=details, actor=actor)
