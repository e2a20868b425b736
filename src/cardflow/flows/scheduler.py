"""Firing scheduled flows: a tick every second claims each due fire time once and starts its run.

On PostgreSQL the tick is a procrastinate periodic job (one job per second across all
workers, see cardflow.queue), and ticks are serialized by a transaction-scoped advisory
lock; on SQLite, `cardflow serve` ticks itself. A fire time is claimed in
``schedule_fires`` (its key makes it once) in the same transaction that decides it, and
its run is started right after; a claim whose run never appeared (the process died in
between) is started again by a later tick, under the same run id.

Fires missed while nothing ticked (no worker ran) are run once, the latest, on recovery —
not once each; with ``catch_up: false`` a fire more than a minute late is skipped.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, select, text

from cardflow.errors import CardflowError
from cardflow.flows.engine import FlowEngine
from cardflow.flows.model import FlowDocument
from cardflow.flows.schedule import Schedule
from cardflow.flows.service import FlowService
from cardflow.store.db import Database
from cardflow.store.models import Flow, Run, RunState, ScheduleFire, new_id

log = logging.getLogger("cardflow.flows.scheduler")

# Any constant: the same for every cardflow process.
_TICK_LOCK = 0x63667363
# A claim this old without its run: the process that made it died before starting it.
_CLAIM_GRACE = timedelta(seconds=30)
# Fire records older than this are removed (the latest of each flow is kept).
_KEEP_FIRES = timedelta(days=1)


@dataclass(frozen=True)
class _Planned:
    schedule: Schedule
    catch_up: bool
    since: datetime  # when the schedule was saved: nothing fires before


@dataclass(frozen=True)
class Fire:
    flow_id: str
    due_at: datetime
    run_id: str


def scheduled_trigger(due_at: datetime, now: datetime) -> dict[str, Any]:
    """What ``{{ trigger }}`` holds in a scheduled run."""
    return {"scheduled_at": due_at.isoformat(), "fired_at": now.isoformat()}


class Scheduler:
    def __init__(self, db: Database, flows: FlowService, engine: FlowEngine) -> None:
        self._db = db
        self._flows = flows
        self._engine = engine
        self._plans: dict[str, tuple[int, _Planned | None]] = {}  # flow id -> (version, plan)

    async def tick(self, now: datetime | None = None) -> list[str]:
        """Start the runs due now; returns their ids."""
        now = now or datetime.now(UTC)
        fires = await asyncio.to_thread(self._claim, now)
        started = []
        for fire in fires:
            try:
                snapshot = await asyncio.to_thread(self._flows.snapshot, fire.flow_id)
                await self._engine.enqueue(
                    snapshot,
                    scheduled_trigger(fire.due_at, now),
                    trigger_type="schedule",
                    waiting_caller=False,
                    run_id=fire.run_id,
                )
            except Exception as exc:
                # Not started (the queue is full, the flow just went…): the claim goes, so
                # a later tick tries again while this fire is still the latest due.
                level = logging.WARNING if isinstance(exc, CardflowError) else logging.ERROR
                log.log(level, "scheduled run of flow %s not started: %s", fire.flow_id, exc)
                await asyncio.to_thread(self._unclaim, fire)
                continue
            started.append(fire.run_id)
        return started

    def _claim(self, now: datetime) -> list[Fire]:
        with self._db.session() as session:
            if not self._db.is_sqlite:
                locked = session.execute(
                    text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _TICK_LOCK}
                ).scalar()
                if not locked:
                    return []  # another tick is at it
            plans = self._current_plans(session)
            if not plans:
                return []
            last = dict(
                session.execute(
                    select(ScheduleFire.flow_id, func.max(ScheduleFire.due_at))
                    .where(ScheduleFire.flow_id.in_(plans))
                    .group_by(ScheduleFire.flow_id)
                ).all()
            )
            fires = self._unstarted(session, now)
            for flow_id, plan in plans.items():
                baseline = max(filter(None, (last.get(flow_id), plan.since)))
                missed, on_time = plan.schedule.due(baseline, now)
                due = [(missed, plan.catch_up)] if missed is not None else []
                due += [(moment, True) for moment in on_time]
                for due_at, run in due:
                    fire = Fire(flow_id, due_at, new_id("run"))
                    session.add(
                        ScheduleFire(
                            flow_id=flow_id,
                            due_at=due_at,
                            run_id=fire.run_id if run else None,
                            created_at=now,
                        )
                    )
                    if run:
                        fires.append(fire)
                session.execute(
                    delete(ScheduleFire).where(
                        ScheduleFire.flow_id == flow_id, ScheduleFire.due_at < now - _KEEP_FIRES
                    )
                )
            return fires

    def _current_plans(self, session: Any) -> dict[str, _Planned]:
        """Enabled schedule flows (documents parsed again only when their version moved)."""
        rows = session.execute(select(Flow.id, Flow.version).where(Flow.enabled)).all()
        plans: dict[str, _Planned] = {}
        known = self._plans
        for flow_id, version in rows:
            cached = known.get(flow_id)
            if cached is None or cached[0] != version:
                row = session.get(Flow, flow_id)
                plan = None
                if row is not None:
                    document = FlowDocument.model_validate(row.document)
                    schedule = document.trigger.schedule()
                    if schedule is not None:
                        catch_up = document.trigger.catch_up is not False
                        plan = _Planned(schedule, catch_up, row.updated_at)
                cached = known[flow_id] = (version, plan)
            if cached[1] is not None:
                plans[flow_id] = cached[1]
        for gone in set(known) - {flow_id for flow_id, _ in rows}:
            del known[gone]
        return plans

    def _unstarted(self, session: Any, now: datetime) -> list[Fire]:
        """Claims whose run never appeared: started again, under the same run id."""
        started = select(Run.id).where(Run.id == ScheduleFire.run_id)
        kept = select(RunState.run_id).where(RunState.run_id == ScheduleFire.run_id)
        rows = session.execute(
            select(ScheduleFire.flow_id, ScheduleFire.due_at, ScheduleFire.run_id).where(
                ScheduleFire.run_id.is_not(None),
                ScheduleFire.created_at < now - _CLAIM_GRACE,
                ScheduleFire.created_at > now - _KEEP_FIRES,
                ~started.exists(),
                ~kept.exists(),  # its run is on its way (a slow start), not lost
            )
        ).all()
        return [Fire(flow_id, due_at, run_id) for flow_id, due_at, run_id in rows]

    def _unclaim(self, fire: Fire) -> None:
        with self._db.session() as session:
            session.execute(
                delete(ScheduleFire).where(
                    ScheduleFire.flow_id == fire.flow_id, ScheduleFire.due_at == fire.due_at
                )
            )


async def tick_forever(scheduler: Scheduler, every: float = 1.0) -> None:
    """The scheduler of a process with no queue (SQLite): a tick every second."""
    loop = asyncio.get_running_loop()
    next_at = loop.time()
    while True:
        try:
            await scheduler.tick()
        except Exception:
            log.exception("the scheduler's tick failed; it ticks again")
        next_at += every
        await asyncio.sleep(max(next_at - loop.time(), 0))
