"""Queued runs' progress, kept encrypted between the cards so another worker can go on.

A queued run's state — the flow as it was when the run began, the trigger, each completed
card's outputs and where to go on — holds secrets even when the flow's ``save_data`` is
off, so it is encrypted under the keyring (bound to its run) and removed when the run
ends. Only the index of the next card is readable without the key.

A queued run's record is written with its state, in one transaction each time: created
with it, claimed by the worker that takes it up, brought up to date at each checkpoint,
finished with the state removed (or kept as a failed run's retry point). Each write after
the claim is fenced: it changes nothing once the run is held by another process (a worker
that lost the database for longer than ``CARDFLOW_WORKER_STALLED_AFTER`` finds its run
taken over at its next checkpoint, and stops).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.exc import InterfaceError, OperationalError, StatementError
from sqlalchemy.orm import Session

from cardflow import jsondata
from cardflow.errors import CardflowError
from cardflow.runs.writer import RUN_CARDS, RUNS, RunRecord
from cardflow.store.db import Database
from cardflow.store.keyring import Keyring, run_state_aad
from cardflow.store.models import Process, Run, RunCard, RunState

log = logging.getLogger("cardflow.runs.state")

# What a record's data may make the database refuse (a value it cannot store); the record is
# then stored without its cards' data, as the run writer does. A lost connection is not one.
_UNSTORABLE = (StatementError, TypeError, ValueError)
_UNREACHABLE = (OperationalError, InterfaceError)


class RunStateTooLarge(CardflowError):
    type = "run_limit"


class RunHeldElsewhere(CardflowError):
    """Another process, still beating, holds the run (its job was retried too early)."""

    type = "run_held"


class RunTakenOver(CardflowError):
    """This process no longer holds the run: another took it up after it went silent."""

    type = "run_taken_over"


@dataclass
class ClaimedRun:
    record: RunRecord
    state: dict[str, Any]
    # It was running in a process that stopped (not handed back, not new).
    taken_over: bool


class RunStates:
    def __init__(self, db: Database, keyring: Keyring, *, max_bytes: int, max_depth: int) -> None:
        self._db = db
        self._keyring = keyring
        self.max_bytes = max_bytes
        # The outputs nest as deep as the data cards take, inside the state's own levels.
        self._max_depth = max_depth + 8

    def _encode(self, state: dict[str, Any]) -> bytes:
        text = jsondata.dumps(state, compact=True).encode("utf-8")
        if len(text) > self.max_bytes:
            raise RunStateTooLarge(
                f"The run's progress ({len(text):,} bytes: the trigger and the outputs of its "
                f"cards so far) is larger than {self.max_bytes:,} bytes "
                "(CARDFLOW_MAX_RUN_STATE_BYTES), so it cannot be kept for a worker to go on."
            )
        return text

    def _put(
        self, session: Session, run_id: str, text: bytes, next_card: int, *, new: bool = False
    ) -> None:
        blob, key_id = self._keyring.encrypt(session, text, run_state_aad(run_id))
        values = {
            "state_enc": blob,
            "state_key_id": key_id,
            "next_card": next_card,
            "updated_at": datetime.now(UTC),
        }
        if not new:
            changed = session.execute(
                update(RunState)
                .where(RunState.run_id == run_id)
                .values(**values)
                .execution_options(synchronize_session=False)
            )
            if changed.rowcount:  # type: ignore[attr-defined]
                return
        session.execute(insert(RunState).values(run_id=run_id, **values))

    def save(self, run_id: str, state: dict[str, Any], next_card: int) -> None:
        """Store (or replace) a run's state; blocking (call it from a worker thread)."""
        text = self._encode(state)
        with self._db.session() as session:
            self._put(session, run_id, text, next_card)

    def create(self, record: RunRecord, state: dict[str, Any], next_card: int) -> None:
        """A new queued run: its record and its state, in one transaction."""
        text = self._encode(state)
        with self._db.session() as session:
            session.execute(insert(RUNS), [record.new_run_row()])
            self._put(session, record.id, text, next_card, new=True)

    def claim(
        self, run_id: str, process_id: str | None, *, stalled_after: float
    ) -> ClaimedRun | None:
        """Take a run up for this process, in one transaction with its row locked: a queued
        one, or one whose process stopped beating ``stalled_after`` seconds ago. None when
        there is nothing to go on with (the run ended, or it is gone); RunHeldElsewhere
        while another live process holds it."""
        with self._db.session() as session:
            run = session.get(Run, run_id, with_for_update=True)
            row = session.get(RunState, run_id)
            if run is None:
                if row is not None:
                    session.delete(row)
                return None
            if run.status not in ("queued", "running") or row is None or row.state_enc is None:
                return None  # ended: what is kept is its retry point
            taken_over = run.status == "running"
            if taken_over and run.process_id not in (None, process_id):
                beat = session.scalar(
                    select(Process.heartbeat_at).where(Process.id == run.process_id)
                )
                silent = datetime.now(UTC) - timedelta(seconds=stalled_after)
                if beat is not None and beat > silent:
                    raise RunHeldElsewhere(f"run {run_id} is held by process {run.process_id}")
            cards_before = session.scalar(
                select(func.count()).select_from(RunCard).where(RunCard.run_id == run_id)
            )
            run.status, run.process_id = "running", process_id
            text = self._keyring.decrypt(session, row.state_enc, run_state_aad(run_id))
            record = RunRecord.of_row(run, cards_before=int(cards_before or 0))
        state: dict[str, Any] = jsondata.loads(text, max_depth=self._max_depth)
        return ClaimedRun(record, state, taken_over)

    def checkpoint(
        self,
        record: RunRecord,
        *,
        holder: str | None,
        written: int,
        state: dict[str, Any] | None = None,
        next_card: int = 0,
        drop_state: bool = False,
    ) -> int:
        """Bring a claimed run's record up to date (its new finished cards after the
        ``written`` first) and, in the same transaction, store its state (given), remove
        it (``drop_state``) or leave it; only while ``holder`` still holds the run, else
        RunTakenOver. Returns how many cards are now stored. Blocking."""
        text = self._encode(state) if state is not None else None
        try:
            return self._checkpoint(record, holder, written, text, next_card, drop_state)
        except _UNSTORABLE as exc:
            if isinstance(exc, _UNREACHABLE):
                raise
            log.warning("run %s: its record could not be stored whole (%s)", record.id, exc)
            reason = f"the run record could not be stored ({type(exc).__name__})"
            return self._checkpoint(
                record.stripped(reason), holder, written, text, next_card, drop_state
            )

    def _checkpoint(
        self,
        record: RunRecord,
        holder: str | None,
        written: int,
        text: bytes | None,
        next_card: int,
        drop_state: bool,
    ) -> int:
        ready = record.finished_cards()
        with self._db.session() as session:
            changed = session.execute(
                update(RUNS)
                .where(RUNS.c.id == record.id, RUNS.c.process_id.is_not_distinct_from(holder))
                .values(**record.run_values())
            )
            if not changed.rowcount:  # type: ignore[attr-defined]
                raise RunTakenOver(f"run {record.id} is no longer held by process {holder}")
            rows = record.card_rows(written, ready)
            if rows:
                session.execute(insert(RUN_CARDS), rows)
            if text is not None:
                self._put(session, record.id, text, next_card)
            elif drop_state:
                session.execute(delete(RunState).where(RunState.run_id == record.id))
        return ready

    def abandon(self, run_id: str, error: dict[str, Any]) -> bool:
        """End a queued run nobody will go on with as failed (its state stays, to retry it
        from there); False if it had ended already."""
        with self._db.session() as session:
            ended = session.execute(
                update(Run)
                .where(Run.id == run_id, Run.status.in_(("queued", "running")))
                .values(status="failed", ended_at=datetime.now(UTC), error=error, process_id=None)
                .execution_options(synchronize_session=False)
            )
            return bool(ended.rowcount)  # type: ignore[attr-defined]

    def load(self, run_id: str) -> dict[str, Any] | None:
        """A run's state, or None once the run has ended."""
        with self._db.session() as session:
            row = session.get(RunState, run_id)
            if row is None or row.state_enc is None:
                return None
            text = self._keyring.decrypt(session, row.state_enc, run_state_aad(run_id))
        state: dict[str, Any] = jsondata.loads(text, max_depth=self._max_depth)
        return state

    def delete(self, run_id: str) -> None:
        with self._db.session() as session:
            session.execute(delete(RunState).where(RunState.run_id == run_id))

    def run_ids(self) -> list[str]:
        """Runs that have a state (still queued or going)."""
        with self._db.session() as session:
            return list(session.scalars(select(RunState.run_id)))
