"""The process registry on both databases: which unfinished runs a sweep ends, and a
process taken for dead registering again."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from cardflow.app import Cardflow
from cardflow.runs.processes import ProcessRegistry
from cardflow.store.models import Process, Run


def _run(cf: Cardflow, run_id: str, process_id: str | None, status: str = "running") -> None:
    with cf.db.session() as session:
        session.add(
            Run(
                id=run_id,
                flow_id="flw_x",
                trigger="schedule",
                status=status,
                started_at=datetime.now(UTC),
                process_id=process_id,
            )
        )


def _dead_process(cf: Cardflow) -> str:
    with cf.db.session() as session:
        old = datetime.now(UTC) - timedelta(hours=1)
        session.add(
            Process(id="prc_dead", hostname="elsewhere", pid=1, started_at=old, heartbeat_at=old)
        )
    return "prc_dead"


def _registry(cf: Cardflow) -> ProcessRegistry:
    return ProcessRegistry(cf.db, cf.run_writer, heartbeat=0.05, stalled_after=60)


def _status(cf: Cardflow, run_id: str) -> str:
    with cf.db.session() as session:
        return str(session.scalar(select(Run.status).where(Run.id == run_id)))


def test_a_sweep_ends_a_dead_process_runs_and_leaves_queued_ones_to_the_workers(
    cf: Cardflow,
) -> None:
    dead = _dead_process(cf)
    registry = _registry(cf)
    me = registry.ensure()
    try:
        _run(cf, "run_dead_inprocess", dead)
        _run(cf, "run_dead_queued", dead, status="queued")
        cf.run_states.save("run_dead_queued", {"next": 0}, 0)
        _run(cf, "run_mine", me)
        _run(cf, "run_done", dead, status="succeeded")
        cf.run_states.save("run_done", {"next": 1}, 1)  # a failed run's retry point stays
        assert registry.end_orphaned() == 1
        assert _status(cf, "run_dead_inprocess") == "failed"
        assert _status(cf, "run_dead_queued") == "queued"  # the queue's workers go on
        assert _status(cf, "run_mine") == "running"
        # Without a queue (SQLite's one process), nobody would go on with it: it ends too,
        # its kept state with it.
        registry.queue_resumes_runs = False
        assert registry.end_orphaned() == 1
        assert _status(cf, "run_dead_queued") == "failed"
        assert cf.run_states.load("run_dead_queued") is None
        assert cf.run_states.load("run_done") is not None
        assert _status(cf, "run_mine") == "running"
    finally:
        registry.close()


def test_a_process_taken_for_dead_registers_again(cf: Cardflow) -> None:
    registry = _registry(cf)
    me = registry.ensure()
    try:
        with cf.db.session() as session:
            session.query(Process).filter(Process.id == me).delete()
        deadline = datetime.now(UTC) + timedelta(seconds=10)
        while True:
            with cf.db.session() as session:
                row = session.get(Process, me)
            if row is not None:
                break
            assert datetime.now(UTC) < deadline, "the process did not register again"
        assert row.pid == os.getpid()
    finally:
        registry.close()
