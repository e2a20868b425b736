"""Queued runs' progress, kept encrypted between the cards so another worker can go on.

A queued run's state — the flow as it was when the run began, the trigger, each completed
card's outputs and where to go on — holds secrets even when the flow's ``save_data`` is
off, so it is encrypted under the keyring (bound to its run) and removed when the run
ends. Only the index of the next card is readable without the key.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select

from cardflow import jsondata
from cardflow.errors import CardflowError
from cardflow.store.db import Database
from cardflow.store.keyring import Keyring, run_state_aad
from cardflow.store.models import RunState


class RunStateTooLarge(CardflowError):
    type = "run_limit"


class RunStates:
    def __init__(self, db: Database, keyring: Keyring, *, max_bytes: int, max_depth: int) -> None:
        self._db = db
        self._keyring = keyring
        self.max_bytes = max_bytes
        # The outputs nest as deep as the data cards take, inside the state's own levels.
        self._max_depth = max_depth + 8

    def save(self, run_id: str, state: dict[str, Any], next_card: int) -> None:
        """Store (or replace) a run's state; blocking (call it from a worker thread)."""
        text = jsondata.dumps(state, compact=True).encode("utf-8")
        if len(text) > self.max_bytes:
            raise RunStateTooLarge(
                f"The run's progress ({len(text):,} bytes: the trigger and the outputs of its "
                f"cards so far) is larger than {self.max_bytes:,} bytes "
                "(CARDFLOW_MAX_RUN_STATE_BYTES), so it cannot be kept for a worker to go on."
            )
        with self._db.session() as session:
            blob, key_id = self._keyring.encrypt(session, text, run_state_aad(run_id))
            row = session.get(RunState, run_id)
            if row is None:
                row = RunState(run_id=run_id)
                session.add(row)
            row.state_enc, row.state_key_id = blob, key_id
            row.next_card = next_card
            row.updated_at = datetime.now(UTC)

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
