"""Queued runs on PostgreSQL, on procrastinate: its jobs, workers, retries and stalled-worker
handling, used as designed.

A queued run is one procrastinate job (task ``cardflow.run``, queue ``cardflow``) naming
the run; what the run needs to go on is its encrypted state (:mod:`cardflow.runs.state`),
kept after each top-level card. Any worker process may take the job: ``cardflow worker``,
or the worker ``cardflow serve`` embeds. When a worker stops:

- gracefully (SIGTERM): it takes no new job; runs still going after
  ``CARDFLOW_SHUTDOWN_GRACE`` are cancelled and handed back (the job is retried at once,
  and the next worker goes on from the last completed card);
- abruptly (kill -9, out of memory, machine lost): its heartbeat stops; a sweep every few
  seconds (a procrastinate periodic task, run by one live worker) finds its jobs through
  procrastinate's ``get_stalled_jobs`` and retries them.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import weakref
from typing import Any

import procrastinate
import psycopg
import psycopg_pool
from procrastinate import exceptions as procrastinate_errors
from sqlalchemy.engine import make_url

from cardflow.errors import Busy, ConfigurationError
from cardflow.flows.engine import FlowEngine
from cardflow.flows.scheduler import Scheduler
from cardflow.runs.state import RunHeldElsewhere
from cardflow.settings import Settings

log = logging.getLogger("cardflow.queue")

QUEUE = "cardflow"
RUN_TASK = "cardflow.run"
SWEEP_TASK = "cardflow.retry_stalled_runs"
TICK_TASK = "cardflow.schedule_tick"
# A run failing for something else than its cards (the database was away) is tried again
# this often, waiting 2, 4, 8… seconds.
_MAX_ATTEMPTS = 5


# Jobs are deleted once they succeed: the table holds little besides what waits.
_WAITING = """
SELECT count(*) AS waiting, count(*) FILTER (WHERE args->>'flow_id' = %(flow_id)s) AS flow_waiting
FROM procrastinate_jobs
WHERE queue_name = %(queue)s AND task_name = %(task)s AND status = 'todo'
"""


# Runs with a kept state, not ended, whose state is old and that no job carries or will
# carry again: never queued (their process died in between), or whose job gave up.
_UNQUEUED = """
SELECT s.run_id, r.flow_id, EXISTS (
    SELECT 1 FROM procrastinate_jobs j
    WHERE j.task_name = %(task)s AND j.args->>'run_id' = s.run_id
      AND j.status IN ('failed', 'cancelled', 'aborted')
  ) AS gave_up
FROM run_states s JOIN runs r ON r.id = s.run_id
WHERE r.status IN ('queued', 'running')
  AND s.updated_at < now() - make_interval(secs => %(seconds)s)
  AND NOT EXISTS (
    SELECT 1 FROM procrastinate_jobs j
    WHERE j.task_name = %(task)s AND j.args->>'run_id' = s.run_id
      AND j.status IN ('todo', 'doing')
  )
LIMIT 100
"""


class _RunRetry(procrastinate.BaseRetryStrategy):
    """A run cancelled because its worker stops goes back to the queue at once, however
    often; one another live process still holds is looked at again once that process would
    be taken for dead; one that failed outside its cards is retried a few times with a
    growing wait."""

    def __init__(self, stalled_after: float) -> None:
        self.stalled_after = stalled_after

    def get_retry_decision(
        self, *, exception: BaseException, job: procrastinate.jobs.Job
    ) -> procrastinate.RetryDecision | None:
        if isinstance(exception, asyncio.CancelledError | procrastinate_errors.JobAborted):
            return procrastinate.RetryDecision(retry_in={"seconds": 0})
        if isinstance(exception, RunHeldElsewhere):
            return procrastinate.RetryDecision(retry_in={"seconds": int(self.stalled_after) + 1})
        if job.attempts >= _MAX_ATTEMPTS:
            return None
        return procrastinate.RetryDecision(retry_in={"seconds": 2 ** (job.attempts + 1)})


# procrastinate has its pool check every connection before each query (one more round trip
# per query); only a connection idle this long is checked (the database may have dropped it).
_CHECK_AFTER_IDLE = 1.0
_idle_since: weakref.WeakKeyDictionary[psycopg.AsyncConnection[Any], float] = (
    weakref.WeakKeyDictionary()
)


async def _note_return(connection: psycopg.AsyncConnection[Any]) -> None:
    _idle_since[connection] = time.monotonic()


async def _check_if_idle(connection: psycopg.AsyncConnection[Any]) -> None:
    since = _idle_since.get(connection)
    if since is None or time.monotonic() - since >= _CHECK_AFTER_IDLE:
        await psycopg_pool.AsyncConnectionPool.check_connection(connection)


def _pool(**kwargs: Any) -> psycopg_pool.AsyncConnectionPool:
    kwargs["check"] = _check_if_idle
    kwargs["reset"] = _note_return
    return psycopg_pool.AsyncConnectionPool(**kwargs)


def libpq_url(database_url: str) -> str:
    """The libpq form of cardflow's SQLAlchemy URL (procrastinate talks to psycopg)."""
    url = make_url(database_url)
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def process_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class RunQueue:
    """The procrastinate app of one cardflow process: defers runs, and runs a worker."""

    def __init__(self, settings: Settings, engine: FlowEngine, scheduler: Scheduler) -> None:
        url = settings.resolved_database_url
        if url.startswith("sqlite"):
            raise ConfigurationError(
                "Queued runs and workers need PostgreSQL (CARDFLOW_DATABASE_URL="
                "postgresql://…); with the embedded SQLite, `cardflow serve` runs every flow "
                "in its own process."
            )
        self.settings = settings
        self.engine = engine
        self.scheduler = scheduler
        connector = procrastinate.PsycopgConnector(
            conninfo=libpq_url(url),
            pool_factory=_pool,
            min_size=1,
            # a fetch, a finish, the heartbeat and the sweep may each hold one
            max_size=settings.worker_concurrency + 4,
            # a connection that went half-open (a lost machine) is noticed, not waited on
            kwargs={"keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10},
        )
        self.app = procrastinate.App(connector=connector)
        self._register()

    def _register(self) -> None:
        app, engine = self.app, self.engine
        stalled_after = self.settings.worker_stalled_after

        @app.task(name=RUN_TASK, queue=QUEUE, retry=_RunRetry(stalled_after), pass_context=True)
        async def run(
            context: procrastinate.JobContext, run_id: str, flow_id: str | None = None
        ) -> None:
            worker = f"worker {context.worker_name or '?'}"
            log.info("run %s: executing on %s (job %s)", run_id, worker, context.job.id)
            try:
                await engine.resume(run_id, worker=worker)
            except RunHeldElsewhere as exc:
                log.warning("%s; its job is tried again later", exc.message)
                raise

        scheduler = self.scheduler

        # Scheduled flows: one tick a second across every worker (procrastinate defers one
        # job per timestamp); the scheduler claims each fire time once.
        @app.periodic(cron="* * * * * *")
        @app.task(name=TICK_TASK, queue=QUEUE, queueing_lock=TICK_TASK)
        async def schedule_tick(timestamp: int) -> None:
            try:
                await scheduler.tick()
            except Exception:  # the next tick tries again; a failed job row would pile up
                log.exception("the scheduler's tick failed")

        @app.periodic(cron=f"* * * * * */{self.settings.worker_sweep_seconds}")
        @app.task(name=SWEEP_TASK, queue=QUEUE, queueing_lock=SWEEP_TASK)
        async def retry_stalled_runs(timestamp: int) -> None:
            try:
                stalled = await app.job_manager.get_stalled_jobs(
                    queue=QUEUE, task_name=RUN_TASK, seconds_since_heartbeat=stalled_after
                )
                for job in stalled:
                    log.warning(
                        "run job %s: its worker stopped beating; it goes back to the queue",
                        job.id,
                    )
                    await app.job_manager.retry_job(job)
                for found in await app.connector.execute_query_all_async(
                    _UNQUEUED, task=RUN_TASK, seconds=max(60, int(stalled_after) * 3)
                ):
                    if found["gave_up"]:  # its job failed every attempt: the run fails
                        log.warning("run %s: its job gave up; the run fails", found["run_id"])
                        await engine.abandon(found["run_id"], found["flow_id"])
                    else:  # kept but never queued (its process died between the two)
                        log.warning("run %s was kept, never queued; queueing it", found["run_id"])
                        await self.enqueue(found["run_id"], found["flow_id"] or "")
            except Exception:
                log.exception("looking for stalled runs failed; the next sweep tries again")

    async def open(self) -> None:
        await self.app.open_async()

    async def close(self) -> None:
        await self.app.close_async()

    async def enqueue(self, run_id: str, flow_id: str) -> None:
        await self.app.configure_task(RUN_TASK, queue=QUEUE).defer_async(
            run_id=run_id, flow_id=flow_id
        )

    async def check_room(self, flow_id: str) -> None:
        """Busy when the runs waiting for a worker reach CARDFLOW_MAX_QUEUED_RUNS, or this
        flow's reach CARDFLOW_MAX_QUEUED_RUNS_PER_FLOW: the queue is bounded like the
        in-process one (a flood of respond-async calls cannot fill the database)."""
        counts = await self.app.connector.execute_query_one_async(
            _WAITING, queue=QUEUE, task=RUN_TASK, flow_id=flow_id
        )
        limits = self.engine.limits
        if counts["waiting"] >= limits.max_queued_runs:
            raise Busy(
                f"{counts['waiting']:,} runs are already waiting for a worker "
                "(CARDFLOW_MAX_QUEUED_RUNS); try again shortly.",
                retry_after=5,
            )
        if counts["flow_waiting"] >= limits.max_queued_runs_per_flow:
            raise Busy(
                f"This flow already has {limits.max_queued_runs_per_flow:,} runs waiting for a "
                "worker (CARDFLOW_MAX_QUEUED_RUNS_PER_FLOW); try again shortly.",
                retry_after=5,
            )

    async def work(self, *, concurrency: int, name: str | None = None) -> None:
        """Run a worker until cancelled; then it takes no new job and hands back the runs
        still going after the grace period."""
        await self.app.run_worker_async(
            queues=[QUEUE],
            name=name or process_name(),
            concurrency=concurrency,
            install_signal_handlers=False,
            shutdown_graceful_timeout=self.settings.shutdown_grace,
            update_heartbeat_interval=self.settings.worker_heartbeat_seconds,
            stalled_worker_timeout=self.settings.worker_stalled_after,
            delete_jobs="successful",
        )

    async def supervise(self, *, concurrency: int, name: str | None = None) -> None:
        """:meth:`work` until cancelled, started again when it stops by itself (procrastinate's
        worker stops when it loses the database: it comes back once the database does)."""
        delay = 1.0
        while True:
            try:
                await self.work(concurrency=concurrency, name=name)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("the worker stopped on an error; starting it again in %gs", delay)
            else:
                log.warning("the worker stopped (database unreachable?); again in %gs", delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 30.0)


async def stop_worker(task: asyncio.Task[None], grace: float) -> None:
    """Stop a worker task: no new job; the runs still going get ``grace`` seconds, then go
    back to the queue."""
    task.cancel()
    try:
        # procrastinate waits for its jobs up to the grace period; a hung database
        # connection must not hold the process for ever
        await asyncio.wait_for(asyncio.shield(task), timeout=grace + 15)
    except asyncio.CancelledError:
        pass
    except TimeoutError:
        log.error("the worker did not stop within %gs of the grace period", grace + 15)
    except Exception:
        log.exception("the worker stopped on an error")
