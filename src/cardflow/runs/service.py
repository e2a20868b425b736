"""Run records: what each run (and each Test this card) did."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import selectinload

from cardflow.cards.runner import CardResult
from cardflow.errors import RunNotFound
from cardflow.runs.writer import CardRecord, RunRecord, RunWriter
from cardflow.store.db import Database
from cardflow.store.models import Run, new_id

INTERRUPTED = {"type": "interrupted", "message": "cardflow stopped while this run was going."}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def run_to_dict(run: Run) -> dict[str, Any]:
    return {
        "id": run.id,
        "flow_id": run.flow_id,
        "trigger": run.trigger,
        "status": run.status,
        "started_at": _iso(run.started_at),
        "ended_at": _iso(run.ended_at),
        "error": run.error,
        "trigger_data": run.trigger_data,
        "cards_omitted": run.cards_omitted,
        "cards": [
            {
                "id": card.card_key,
                "card": card.card,
                "connection_id": card.connection_id,
                "status": card.status,
                "duration_ms": card.duration_ms,
                "status_code": card.status_code,
                "error": card.error,
                "inputs": card.inputs,
                "outputs": card.outputs,
            }
            for card in run.cards
        ],
    }


@dataclass
class RunService:
    db: Database
    writer: RunWriter

    def fail_stale(self) -> int:
        """Runs left `queued` or `running` by a process that stopped: mark them failed
        (at start)."""
        self.writer.flush()
        with self.db.session() as session:
            result = session.execute(
                update(Run)
                .where(Run.status.in_(("queued", "running")))
                .values(status="failed", ended_at=datetime.now(UTC), error=INTERRUPTED)
            )
            return int(result.rowcount)  # type: ignore[attr-defined]

    def record_card_test(
        self,
        card_id: str,
        connection_id: str | None,
        result: CardResult,
        started_at: datetime,
    ) -> str:
        """One run with one card for a Test this card; inputs and outputs are not kept.
        Written by the run writer in the background; readers flush it first."""
        status = "succeeded" if result.ok else "failed"
        record = RunRecord(
            id=new_id("run"),
            flow_id=None,
            trigger="card_test",
            status=status,
            started_at=started_at,
            ended_at=started_at + timedelta(milliseconds=result.duration_ms),
            error=result.error,
            cards=[
                CardRecord(
                    card_key="test",
                    card=card_id,
                    status=status,
                    duration_ms=result.duration_ms,
                    status_code=result.status_code,
                    error=result.error,
                    connection_id=connection_id,
                )
            ],
        )
        self.writer.submit(record)
        return record.id

    def get(self, run_id: str) -> dict[str, Any]:
        self.writer.flush()
        with self.db.session() as session:
            run = session.scalars(
                select(Run).where(Run.id == run_id).options(selectinload(Run.cards))
            ).first()
            if run is None:
                raise RunNotFound(f"There is no run {run_id!r}.", field="run_id")
            return run_to_dict(run)

    def list(self, *, flow_id: str | None = None, limit: int = 50) -> list[dict[str, Any]]:
        self.writer.flush()
        with self.db.session() as session:
            query = select(Run).options(selectinload(Run.cards)).order_by(Run.started_at.desc())
            if flow_id is not None:
                query = query.where(Run.flow_id == flow_id)
            return [run_to_dict(run) for run in session.scalars(query.limit(limit))]

    def prune(self, older_than: datetime) -> int:
        with self.db.session() as session:
            result = session.execute(delete(Run).where(Run.started_at < older_than))
            return int(result.rowcount)  # type: ignore[attr-defined]
