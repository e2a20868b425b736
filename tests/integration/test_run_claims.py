"""Who holds a queued run, on both databases: a worker takes a run up only when it is queued
or its process stopped beating, and a worker whose run was taken over writes nothing more
(its next checkpoint stops it)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from procrastinate.jobs import Status
from sqlalchemy import select, update

import cardflow
from cardflow.app import Cardflow
from cardflow.queue import QUEUE, RUN_TASK, SWEEP_TASK, RunQueue
from cardflow.runs.state import RunHeldElsewhere, RunTakenOver
from cardflow.runs.writer import CardRecord, RunRecord
from cardflow.store.models import Process, Run, RunCard, RunState
from tests.conftest import MASTER_KEY, PostgresDatabases

STALLED_AFTER = 20.0


def _process(cf: Cardflow, process_id: str, *, silent_for: float = 0.0) -> str:
    beat = datetime.now(UTC) - timedelta(seconds=silent_for)
    with cf.db.session() as session:
        session.add(Process(id=process_id, hostname="h", pid=1, started_at=beat, heartbeat_at=beat))
    return process_id


def _silence(cf: Cardflow, process_id: str, seconds: float) -> None:
    with cf.db.session() as session:
        session.execute(
            update(Process)
            .where(Process.id == process_id)
            .values(heartbeat_at=datetime.now(UTC) - timedelta(seconds=seconds))
        )


def _queued(cf: Cardflow, run_id: str) -> None:
    record = RunRecord(
        id=run_id, flow_id="flw_x", trigger="manual", status="queued", started_at=datetime.now(UTC)
    )
    cf.run_states.create(record, {"next": 0, "secret": "SENTINEL-state"}, 0)


def _row(cf: Cardflow, run_id: str) -> Run:
    with cf.db.session() as session:
        run = session.get(Run, run_id)
        assert run is not None
        return run


def _cards(cf: Cardflow, run_id: str) -> list[tuple[int, str]]:
    with cf.db.session() as session:
        return [
            (card.position, card.card_key)
            for card in session.scalars(
                select(RunCard).where(RunCard.run_id == run_id).order_by(RunCard.position)
            )
        ]


def _card(key: str) -> CardRecord:
    return CardRecord(card_key=key, card="api_connector.get", status="succeeded")


def test_a_queued_run_is_claimed_once_and_goes_on_where_the_last_holder_stopped(
    cf: Cardflow,
) -> None:
    first, second = _process(cf, "prc_first"), _process(cf, "prc_second")
    _queued(cf, "run_claims")

    claimed = cf.run_states.claim("run_claims", first, stalled_after=STALLED_AFTER)
    assert claimed is not None and not claimed.taken_over
    assert claimed.state["secret"] == "SENTINEL-state"
    assert (_row(cf, "run_claims").status, _row(cf, "run_claims").process_id) == (
        "running",
        first,
    )

    # the first holder still beats: nobody else may take the run
    with pytest.raises(RunHeldElsewhere):
        cf.run_states.claim("run_claims", second, stalled_after=STALLED_AFTER)

    record = claimed.record
    record.cards.append(_card("a"))
    written = cf.run_states.checkpoint(
        record, holder=first, written=0, state={"next": 1}, next_card=1
    )
    assert written == 1

    # the first holder goes silent: the second takes the run over, after the stored cards
    _silence(cf, first, STALLED_AFTER + 5)
    taken = cf.run_states.claim("run_claims", second, stalled_after=STALLED_AFTER)
    assert taken is not None and taken.taken_over
    assert taken.state == {"next": 1}
    assert taken.record.cards_before == 1

    # the first holder wakes up: its writes change nothing, and tell it so
    record.cards.append(_card("b-by-first"))
    with pytest.raises(RunTakenOver):
        cf.run_states.checkpoint(record, holder=first, written=1, state={"next": 2}, next_card=2)
    with pytest.raises(RunTakenOver):
        cf.run_states.checkpoint(record, holder=first, written=1, drop_state=True)
    assert _row(cf, "run_claims").process_id == second
    assert cf.run_states.load("run_claims") == {"next": 1}

    # the second holder ends the run: its card comes after the first's, the state goes
    mine = taken.record
    mine.cards.append(_card("b"))
    mine.status, mine.ended_at = "succeeded", datetime.now(UTC)
    cf.run_states.checkpoint(mine, holder=second, written=0, drop_state=True)
    assert _cards(cf, "run_claims") == [(0, "a"), (1, "b")]
    assert _row(cf, "run_claims").status == "succeeded"
    assert cf.run_states.load("run_claims") is None
    # an ended run is not claimed again (a job run twice leaves it alone)
    assert cf.run_states.claim("run_claims", first, stalled_after=STALLED_AFTER) is None


def test_a_handed_back_run_is_claimed_by_the_next_worker(cf: Cardflow) -> None:
    first, second = _process(cf, "prc_first"), _process(cf, "prc_second")
    _queued(cf, "run_handed")
    claimed = cf.run_states.claim("run_handed", first, stalled_after=STALLED_AFTER)
    assert claimed is not None
    record = claimed.record
    record.status, record.process_id = "queued", None  # the worker stops: hands it back
    cf.run_states.checkpoint(record, holder=first, written=0)
    again = cf.run_states.claim("run_handed", second, stalled_after=STALLED_AFTER)
    assert again is not None and not again.taken_over  # handed back, not taken over
    assert _row(cf, "run_handed").process_id == second


def test_a_run_of_an_unknown_process_is_taken_over(cf: Cardflow) -> None:
    _queued(cf, "run_orphan")
    with cf.db.session() as session:
        session.execute(
            update(Run)
            .where(Run.id == "run_orphan")
            .values(status="running", process_id="prc_gone")
        )
    claimed = cf.run_states.claim("run_orphan", "prc_me", stalled_after=STALLED_AFTER)
    assert claimed is not None and claimed.taken_over


def test_an_abandoned_run_fails_and_keeps_its_retry_point(cf: Cardflow) -> None:
    _queued(cf, "run_given_up")
    error = {"type": "internal_error", "message": "gave up"}
    assert cf.run_states.abandon("run_given_up", error)
    run = _row(cf, "run_given_up")
    assert (run.status, run.error) == ("failed", error)
    assert run.ended_at is not None
    with cf.db.session() as session:
        assert session.get(RunState, "run_given_up") is not None  # retry from there
    assert not cf.run_states.abandon("run_given_up", error)  # ended already


@pytest.mark.postgres
def test_the_sweep_fails_a_run_whose_job_gave_up_and_queues_one_never_queued(
    tmp_path: Path, postgres: PostgresDatabases
) -> None:
    """procrastinate's own jobs table and functions, nothing stubbed: a run whose job failed
    every attempt ends failed (not re-queued each minute for ever); a run kept but never
    queued gets a job."""
    url = postgres.new()
    with cardflow.open(home=tmp_path / "home", database_url=url, master_key=MASTER_KEY) as cf:
        queue = RunQueue(cf.settings, cf.engine, cf.scheduler)

        async def scenario() -> list[str]:
            await queue.open()
            try:
                _queued(cf, "run_gave_up")
                _queued(cf, "run_never_queued")
                job_id = await queue.app.configure_task(RUN_TASK, queue=QUEUE).defer_async(
                    run_id="run_gave_up", flow_id="flw_x"
                )
                await queue.app.job_manager.finish_job_by_id_async(
                    job_id, status=Status.FAILED, delete_job=False
                )
                with cf.db.session() as session:  # both states are an hour old
                    session.execute(
                        update(RunState).values(updated_at=datetime.now(UTC) - timedelta(hours=1))
                    )
                await queue.app.tasks[SWEEP_TASK](timestamp=0)
                waiting = await queue.app.connector.execute_query_all_async(
                    "SELECT args->>'run_id' AS run_id FROM procrastinate_jobs WHERE status = 'todo'"
                )
                return [row["run_id"] for row in waiting]
            finally:
                await queue.close()

        waiting = asyncio.run(scenario())
        assert waiting == ["run_never_queued"]
        gave_up = _row(cf, "run_gave_up")
        assert gave_up.status == "failed"
        assert gave_up.error is not None and "Workers could not execute" in gave_up.error["message"]
        assert _row(cf, "run_never_queued").status == "queued"
        with cf.db.session() as session:  # the failed run keeps its retry point
            assert session.get(RunState, "run_gave_up") is not None
