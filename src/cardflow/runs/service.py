"""Run records: what each run (and each Test this card) did."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import Field
from sqlalchemy import and_, delete, or_, select
from sqlalchemy.orm import selectinload

from cardflow.cards.runner import CardResult
from cardflow.errors import RunNotFound
from cardflow.runs.writer import CardRecord, RunRecord, RunWriter
from cardflow.store.db import Database
from cardflow.store.models import Run, RunState, new_id
from cardflow.views import ErrorDetail, Timestamp, View, omitted_when_none

_SAVED = "Kept only when the flow's save_data is on, with secrets redacted."


class _FailedCard(View):
    card: str | None = Field(
        default=None,
        exclude_if=omitted_when_none,
        description="The id of the card whose failure ended the run (absent if none did).",
    )


class RunError(ErrorDetail, _FailedCard):  # bases this way round: "card" comes first
    """The error a run ended with."""


class RunCardView(View):
    """What one card of a run did."""

    id: str = Field(description="The card's id in the flow (test for a Test this card run).")
    card: str = Field(description="The card type, e.g. api_connector.get.")
    connection_id: str | None
    status: Literal["running", "succeeded", "failed"]
    duration_ms: float | None
    status_code: int | None = Field(description="The HTTP status its request got, if any.")
    pages: int | None = Field(
        description="A paginating card (Get, Post, Raw Request with pagination): the pages "
        "it read, each one request; null for other cards.",
    )
    error: ErrorDetail | None
    inputs: dict[str, Any] | None = Field(description=_SAVED)
    outputs: dict[str, Any] | None = Field(description=_SAVED)


class RunEvent(View):
    """Something that happened to the run itself (not one of its cards)."""

    at: Timestamp
    type: Literal["answered", "queued", "resumed", "handed_back", "retry"] = Field(
        description="answered: what the waiting caller got (a Close or Return card's "
        "answer, or the run's end); queued: handed to the queue (the caller had its answer, "
        "or nobody waits); resumed: another worker went on after the one running it "
        "stopped; handed_back: its worker stopped and gave it back to the queue; retry: "
        "this run retries another from its failed card."
    )
    message: str


class RunView(View):
    """A run of a flow (or a Test this card) and what each of its cards did."""

    id: str
    flow_id: str | None = Field(description="null for a Test this card run.")
    flow_version: int | None = Field(
        description="The flow's saved version the run ran (see /flows/{id}/versions); null "
        "for a Test this card run and runs from before versions were kept."
    )
    trigger: str = Field(description="manual, api_endpoint, schedule or card_test.")
    status: Literal["queued", "running", "succeeded", "failed"]
    started_at: Timestamp
    ended_at: Timestamp | None
    error: RunError | None
    trigger_data: dict[str, Any] | None = Field(description="What the trigger got. " + _SAVED)
    cards_omitted: int = Field(
        description="Cards run past CARDFLOW_MAX_RECORDED_CARDS: counted, not listed."
    )
    cards: list[RunCardView]
    events: list[RunEvent] = Field(description="What happened to the run itself, oldest first.")
    retry_of: str | None = Field(description="The run this one retries.")

    @classmethod
    def of(cls, run: Run) -> RunView:
        return cls(
            id=run.id,
            flow_id=run.flow_id,
            flow_version=run.flow_version,
            trigger=run.trigger,
            status=run.status,
            started_at=run.started_at,
            ended_at=run.ended_at,
            error=run.error,
            trigger_data=run.trigger_data,
            cards_omitted=run.cards_omitted,
            cards=[
                RunCardView(
                    id=card.card_key,
                    card=card.card,
                    connection_id=card.connection_id,
                    status=card.status,
                    duration_ms=card.duration_ms,
                    status_code=card.status_code,
                    pages=card.pages,
                    error=card.error,
                    inputs=card.inputs,
                    outputs=card.outputs,
                )
                for card in run.cards
            ],
            events=run.events or [],
            retry_of=run.retry_of,
        )


@dataclass
class RunService:
    db: Database
    writer: RunWriter

    def record_card_test(
        self,
        card_id: str,
        connection_id: str | None,
        result: CardResult,
        started_at: datetime,
        *,
        flow_id: str | None = None,
    ) -> str:
        """One run with one card for a Test this card (under the flow being built, when
        known); inputs and outputs are not kept. Written by the run writer in the
        background; readers flush it first."""
        status = "succeeded" if result.ok else "failed"
        record = RunRecord(
            id=new_id("run"),
            flow_id=flow_id,
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
                    pages=result.pages,
                )
            ],
        )
        self.writer.submit(record)
        return record.id

    def get(self, run_id: str) -> RunView:
        self.writer.flush()
        with self.db.session() as session:
            run = session.scalars(
                select(Run).where(Run.id == run_id).options(selectinload(Run.cards))
            ).first()
            if run is None:
                raise RunNotFound(f"There is no run {run_id!r}.", field="run_id")
            return RunView.of(run)

    def list(
        self,
        *,
        flow_id: str | None = None,
        status: str | None = None,
        trigger: str | None = None,
        card_tests: bool = True,
        since: datetime | None = None,
        until: datetime | None = None,
        before: str | None = None,
        limit: int = 50,
    ) -> list[RunView]:
        """Runs newest first, filtered; ``before``: a run id, for the page after it (runs
        started before it, or at the same time with a smaller id); ``card_tests=False``
        leaves out the builder's Test this card runs."""
        self.writer.flush()
        with self.db.session() as session:
            query = (
                select(Run)
                .options(selectinload(Run.cards))
                .order_by(Run.started_at.desc(), Run.id.desc())
            )
            if flow_id is not None:
                query = query.where(Run.flow_id == flow_id)
            if status is not None:
                query = query.where(Run.status == status)
            if trigger is not None:
                query = query.where(Run.trigger == trigger)
            if not card_tests:
                query = query.where(Run.trigger != "card_test")
            if since is not None:
                query = query.where(Run.started_at >= since)
            if until is not None:
                query = query.where(Run.started_at < until)
            if before is not None:
                mark = session.get(Run, before)
                if mark is None:
                    raise RunNotFound(
                        f"There is no run {before!r} to list the runs before.", field="before"
                    )
                query = query.where(
                    or_(
                        Run.started_at < mark.started_at,
                        and_(Run.started_at == mark.started_at, Run.id < mark.id),
                    )
                )
            return [RunView.of(run) for run in session.scalars(query.limit(limit))]

    def prune(self, older_than: datetime) -> int:
        """Delete the history of runs started before ``older_than``, with what they kept
        (a failed run's retry point); runs still queued or going are left alone."""
        with self.db.session() as session:
            old = select(Run.id).where(
                Run.started_at < older_than, Run.status.not_in(("queued", "running"))
            )
            session.execute(delete(RunState).where(RunState.run_id.in_(old)))
            result = session.execute(delete(Run).where(Run.id.in_(old)))
            return int(result.rowcount)  # type: ignore[attr-defined]
