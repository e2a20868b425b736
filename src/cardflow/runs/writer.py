"""Run records written in batches by one background thread.

Flows submit snapshots (running, after each card, finished); the writer keeps only the
latest snapshot of each run and writes a batch in one transaction every few milliseconds,
so recording a run costs the flow almost nothing. ``flush()`` waits until everything
submitted so far is in the database (readers call it first).
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, insert, update

from cardflow.store.db import Database
from cardflow.store.models import Run, RunCard

# Run records are written with Core statements on the tables (no ORM unit of work: the
# writer and the queued runs' checkpoints write many, and hold no objects).
RUNS = cast(Table, Run.__table__)
RUN_CARDS = cast(Table, RunCard.__table__)

log = logging.getLogger("cardflow.runs.service")


@dataclass
class CardRecord:
    card_key: str
    card: str
    status: str
    duration_ms: float | None = None
    status_code: int | None = None
    error: dict[str, Any] | None = None
    inputs: dict[str, Any] | None = None
    outputs: dict[str, Any] | None = None
    connection_id: str | None = None
    pages: int | None = None  # a paginating card: the pages it read


@dataclass
class RunRecord:
    id: str
    flow_id: str | None
    trigger: str
    status: str
    started_at: datetime
    ended_at: datetime | None = None
    error: dict[str, Any] | None = None
    trigger_data: dict[str, Any] | None = None
    cards: list[CardRecord] = field(default_factory=list)
    cards_omitted: int = 0
    # What happened to the run itself (handed to the queue, resumed elsewhere…).
    events: list[dict[str, Any]] = field(default_factory=list)
    retry_of: str | None = None
    process_id: str | None = None  # the process executing it
    flow_version: int | None = None  # the flow's saved version it runs
    # Cards stored by the processes that ran the run before this one took it up: not held
    # here, only counted (the cards above come after them).
    cards_before: int = 0

    def event(self, kind: str, message: str) -> None:
        self.events.append({"at": datetime.now(UTC).isoformat(), "type": kind, "message": message})

    def snapshot(self) -> RunRecord:
        return replace(self, cards=[replace(card) for card in self.cards], events=list(self.events))

    @classmethod
    def of_row(cls, run: Run, *, cards_before: int = 0) -> RunRecord:
        """A stored run as the engine records it, to go on with it."""
        return cls(
            id=run.id,
            flow_id=run.flow_id,
            trigger=run.trigger,
            status=run.status,
            started_at=run.started_at,
            ended_at=run.ended_at,
            error=run.error,
            trigger_data=run.trigger_data,
            cards_omitted=run.cards_omitted,
            events=list(run.events or []),
            retry_of=run.retry_of,
            process_id=run.process_id,
            flow_version=run.flow_version,
            cards_before=cards_before,
        )

    def run_values(self) -> dict[str, Any]:
        """The run row's columns that change while it runs."""
        return {
            "status": self.status,
            "ended_at": self.ended_at,
            "error": self.error,
            "trigger_data": self.trigger_data,
            "cards_omitted": self.cards_omitted,
            "events": self.events or None,
            "process_id": self.process_id,
        }

    def new_run_row(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "flow_id": self.flow_id,
            "trigger": self.trigger,
            "started_at": self.started_at,
            "retry_of": self.retry_of,
            "flow_version": self.flow_version,
            **self.run_values(),
        }

    def finished_cards(self) -> int:
        """How many of the cards held are ready to store: a running card holds back those
        after it (nested cards are recorded after their parent)."""
        return next((i for i, c in enumerate(self.cards) if c.status == "running"), len(self.cards))

    def card_rows(self, start: int, end: int) -> list[dict[str, Any]]:
        return [
            {
                "run_id": self.id,
                "position": self.cards_before + index,
                "card_key": card.card_key,
                "card": card.card,
                "connection_id": card.connection_id,
                "status": card.status,
                "duration_ms": card.duration_ms,
                "status_code": card.status_code,
                "pages": card.pages,
                "error": card.error,
                "inputs": card.inputs,
                "outputs": card.outputs,
            }
            for index, card in enumerate(self.cards[start:end], start=start)
        ]

    def stripped(self, reason: str) -> RunRecord:
        """The record without any data of its cards (when it could not be stored whole)."""
        note = {"type": "not_stored", "message": reason}
        return replace(
            self,
            error=None
            if self.error is None
            else {**note, "run_error_type": self.error.get("type")},
            trigger_data=None,
            cards=[
                replace(card, inputs=None, outputs=None, error=note if card.error else None)
                for card in self.cards
            ],
        )


class _Callback:
    """A flush waiter that calls back instead of being waited on."""

    def __init__(self, callback: Callable[[], Any]) -> None:
        self.set = callback


_Waiter = threading.Event | _Callback


class RunWriter:
    def __init__(self, db: Database, *, interval: float = 0.02, batch: int = 500) -> None:
        self._db = db
        self._interval = interval
        self._batch = batch
        self._queue: queue.SimpleQueue[RunRecord | _Waiter | None] = queue.SimpleQueue()
        self._written: dict[str, int] = {}  # run id -> card rows written
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    def submit(self, record: RunRecord) -> None:
        self._ensure_thread()
        self._queue.put(record.snapshot())

    def forget(self, run_id: str) -> None:
        """Stop tracking a run another process goes on with (after a flush)."""
        self._written.pop(run_id, None)

    def flush(self, timeout: float = 30.0) -> None:
        """Block until everything submitted before this call is written."""
        if self._thread is None:
            return
        done = threading.Event()
        self._queue.put(done)
        done.wait(timeout)

    async def flush_async(self) -> None:
        """Wait, without blocking the event loop, until everything submitted is written."""
        if self._thread is None:
            return
        loop = asyncio.get_running_loop()
        written: asyncio.Future[None] = loop.create_future()

        def done() -> None:
            if not written.done():
                written.set_result(None)

        self._queue.put(_Callback(lambda: loop.call_soon_threadsafe(done)))
        await written

    def close(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join(timeout=30)
            self._thread = None

    def _ensure_thread(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._loop, name="cardflow-run-writer", daemon=True
                    )
                    self._thread.start()

    def _loop(self) -> None:
        while True:
            item = self._queue.get()
            pending: dict[str, RunRecord] = {}
            waiters: list[_Waiter] = []
            stop = False
            while True:
                if item is None:
                    stop = True
                elif isinstance(item, threading.Event | _Callback):
                    waiters.append(item)
                else:
                    pending[item.id] = item
                if len(pending) >= self._batch:
                    break
                try:
                    item = self._queue.get(timeout=self._interval if not waiters else 0)
                except queue.Empty:
                    break
            if pending:
                self._write_safely(list(pending.values()))
            for waiter in waiters:
                waiter.set()
            if stop:
                return

    def _write_safely(self, records: list[RunRecord]) -> None:
        """Write a batch; when it fails, each record alone, and a record that still fails
        without its cards' data, so a run is never lost for what one of its cards held."""
        try:
            self._write(records)
            return
        except Exception:
            if len(records) == 1:
                log.warning("writing run %s failed; storing it without card data", records[0].id)
            else:
                log.warning("writing %d run records failed; writing them one by one", len(records))
        for record in records:
            try:
                self._write([record])
            except Exception as exc:
                try:
                    self._write(
                        [
                            record.stripped(
                                f"the run record could not be stored ({type(exc).__name__})"
                            )
                        ]
                    )
                except Exception:
                    log.exception("writing run %s failed", record.id)

    def _write(self, records: list[RunRecord]) -> None:
        new_runs: list[dict[str, Any]] = []
        new_cards: list[dict[str, Any]] = []
        with self._db.session() as session:
            for record in records:
                already = self._written.get(record.id)
                if already is None:
                    new_runs.append(record.new_run_row())
                    already = 0
                else:
                    session.execute(
                        update(RUNS).where(RUNS.c.id == record.id).values(**record.run_values())
                    )
                # Cards are written once, finished.
                new_cards.extend(record.card_rows(already, record.finished_cards()))
            if new_runs:
                session.execute(insert(RUNS), new_runs)
            if new_cards:
                session.execute(insert(RUN_CARDS), new_cards)
        for record in records:
            if record.status in ("queued", "running"):  # later snapshots update it
                self._written[record.id] = record.finished_cards()
            else:
                self._written.pop(record.id, None)  # final: no later snapshot comes
