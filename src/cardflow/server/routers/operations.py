"""/readyz and /metrics: for load balancers and Prometheus."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Literal

from fastapi import APIRouter, Response
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from pydantic import BaseModel
from sqlalchemy import func, select, text

from cardflow.app import Cardflow
from cardflow.errors import CardflowError
from cardflow.metrics import exposition
from cardflow.server.bodies import JsonRoute
from cardflow.server.deps import CardflowDep, MetricsCallerDep
from cardflow.server.schemas import errors
from cardflow.store.models import Process

log = logging.getLogger("cardflow.server")
router = APIRouter(tags=["operations"], route_class=JsonRoute)


class Ready(BaseModel):
    status: Literal["ready"]


class NotReady(CardflowError):
    type = "not_ready"
    http_status = 503


@router.get("/readyz", responses=errors(503))
async def readyz(cf: CardflowDep) -> Ready:
    """Ready to serve: the database answers and its schema is at this version's migrations."""
    try:
        current = await asyncio.to_thread(cf.db.at_head)
    except Exception as exc:  # the database is away: say so, without its details
        raise NotReady(f"The database does not answer ({type(exc).__name__}).") from None
    if not current:
        raise NotReady("The database schema is not current: run `cardflow db upgrade`.")
    return Ready(status="ready")


class _Database:
    """Read at scrape time, so every serving process gives the same figures."""

    def __init__(self, gauges: list[Metric]) -> None:
        self.gauges = gauges

    def collect(self) -> Iterator[Metric]:
        yield from self.gauges


def _database_gauges(cf: Cardflow) -> list[Metric]:
    now = datetime.now(UTC)
    alive_after = now - timedelta(seconds=cf.settings.worker_stalled_after)
    gauges: list[Metric] = []
    with cf.db.session() as session:
        live = session.scalar(
            select(func.count()).select_from(Process).where(Process.heartbeat_at >= alive_after)
        )
        processes = GaugeMetricFamily(
            "cardflow_live_processes", "cardflow processes beating (servers, workers, CLI)."
        )
        processes.add_metric([], float(live or 0))
        gauges.append(processes)
        if cf.db.is_sqlite:
            return gauges
        jobs = GaugeMetricFamily(
            "cardflow_queue_jobs",
            "Queued runs by state (todo: waiting, doing: running).",
            labels=["state"],
        )
        counts: dict[str, int] = dict(
            session.execute(
                text(
                    "SELECT status::text, count(*) FROM procrastinate_jobs "
                    "WHERE queue_name = 'cardflow' AND task_name = 'cardflow.run' "
                    "AND status IN ('todo', 'doing') GROUP BY status"
                )
            ).all()
        )
        for state in ("todo", "doing"):
            jobs.add_metric([state], float(counts.get(state, 0)))
        gauges.append(jobs)
        oldest = session.scalar(
            text(
                "SELECT min(e.at) FROM procrastinate_jobs j JOIN procrastinate_events e "
                "ON e.job_id = j.id AND e.type = 'deferred' "
                "WHERE j.queue_name = 'cardflow' AND j.status = 'todo'"
            )
        )
        age = GaugeMetricFamily(
            "cardflow_queue_oldest_job_age_seconds", "How long the oldest waiting job has waited."
        )
        age.add_metric([], (now - oldest).total_seconds() if oldest is not None else 0.0)
        gauges.append(age)
        workers = session.scalar(
            text("SELECT count(*) FROM procrastinate_workers WHERE last_heartbeat >= :after"),
            {"after": alive_after},
        )
        live_workers = GaugeMetricFamily(
            "cardflow_live_workers", "Queue workers beating (cardflow worker, serve's own)."
        )
        live_workers.add_metric([], float(workers or 0))
        gauges.append(live_workers)
    return gauges


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {
            "content": {"text/plain": {"schema": {"type": "string"}}},
            "description": "Prometheus text format.",
        },
        **errors(401, 403),
    },
)
async def metrics(cf: CardflowDep, _caller: MetricsCallerDep) -> Response:
    """Prometheus metrics (text format); behind an API token unless CARDFLOW_METRICS_PUBLIC=1."""
    try:
        gauges = await asyncio.to_thread(_database_gauges, cf)
    except Exception:  # the database is away: this process's own figures still answer
        log.warning("/metrics: the database gauges could not be read", exc_info=True)
        gauges = []
    body, content_type = await asyncio.to_thread(exposition, _Database(gauges))
    return Response(body, media_type=content_type)
