"""Which cardflow processes are alive, so that a run is never left `running` by one that died.

Each process that executes runs (serve, worker, a CLI command or a library user running a
flow) registers once and beats every ``CARDFLOW_WORKER_HEARTBEAT_SECONDS`` from a small
thread. Servers and workers also look, at start and then every few seconds, for the runs of
processes that stopped: silent for ``CARDFLOW_WORKER_STALLED_AFTER`` seconds, or (on this
machine) whose pid is gone — those runs end as ``interrupted``. Runs on the queue (they
have a kept state) are left to the queue's workers, which go on with them; and one
server's restart never touches the runs of another that is still beating.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, select, update

from cardflow.errors import INTERRUPTED
from cardflow.runs.writer import RunWriter
from cardflow.store.db import Database
from cardflow.store.models import Process, Run, RunState, new_id

log = logging.getLogger("cardflow.runs.processes")


def _pid_namespace() -> str:
    try:
        return "@" + os.readlink("/proc/self/ns/pid").removeprefix("pid:")
    except OSError:
        return ""


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: alive
    return True


class ProcessRegistry:
    def __init__(
        self, db: Database, writer: RunWriter, *, heartbeat: float, stalled_after: float
    ) -> None:
        self._db = db
        self._writer = writer
        self.heartbeat = heartbeat
        self.stalled_after = stalled_after
        # The machine and its pid namespace: two containers may share a host name, and
        # then one's pids say nothing about the other's processes.
        self.hostname = f"{socket.gethostname()}{_pid_namespace()}"[:255]
        self.id: str | None = None
        self._pid = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # servers and workers also end the runs of processes that stopped
        self.sweeps = False
        # False where no queue's workers go on with kept runs (SQLite): then the queued
        # runs of a process that stopped end as interrupted too, their state removed.
        self.queue_resumes_runs = True

    def owns_pid(self) -> bool:
        """The registration is this process's (not a forked parent's)."""
        return self._pid == os.getpid()

    def ensure(self) -> str:
        """This process's id, registered (and beating) from the first call on; blocking."""
        current = self.id
        if current is not None and self._pid == os.getpid():
            return current
        with self._lock:
            if self.id is None or self._pid != os.getpid():  # new, or a forked child
                self._pid = os.getpid()
                self.id = new_id("prc")
                self._register()
                self._stop.clear()
                self._thread = threading.Thread(
                    target=self._beat, name="cardflow-heartbeat", daemon=True
                )
                self._thread.start()
            return self.id

    def _register(self) -> None:
        now = datetime.now(UTC)
        with self._db.session() as session:
            session.add(
                Process(
                    id=self.id,
                    hostname=self.hostname,
                    pid=self._pid,
                    started_at=now,
                    heartbeat_at=now,
                )
            )

    def close(self) -> None:
        """Stop beating and leave (its unfinished runs are ended by whoever looks next)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self.id is not None and self._pid == os.getpid():
            try:
                with self._db.session() as session:
                    session.execute(delete(Process).where(Process.id == self.id))
            except Exception:
                log.warning("could not remove process %s from the registry", self.id)
        self.id = None

    def _beat(self) -> None:
        next_sweep = 0.0
        while not self._stop.wait(self.heartbeat):
            try:
                with self._db.session() as session:
                    beat = session.execute(
                        update(Process)
                        .where(Process.id == self.id)
                        .values(heartbeat_at=datetime.now(UTC))
                    )
                    found = int(beat.rowcount)  # type: ignore[attr-defined]
                if not found:  # taken for dead while silent (the database was away)
                    log.warning("process %s was taken for dead; registering again", self.id)
                    self._register()
                if self.sweeps and time.monotonic() >= next_sweep:
                    self.end_orphaned()
                    next_sweep = time.monotonic() + self.stalled_after / 2
            except Exception:
                log.warning("heartbeat of process %s failed; trying again", self.id, exc_info=True)

    def end_orphaned(self) -> int:
        """End as interrupted the runs (not on the queue) of processes that stopped: silent
        for ``stalled_after`` seconds, gone from this machine, unknown, or none recorded."""
        self._writer.flush()
        now = datetime.now(UTC)
        silent = now - timedelta(seconds=self.stalled_after)
        with self._db.session() as session:
            processes = session.scalars(select(Process)).all()
            dead = {
                row.id
                for row in processes
                if row.id != self.id
                and (
                    row.heartbeat_at < silent
                    or (row.hostname == self.hostname and not pid_alive(row.pid))
                )
            }
            alive = {row.id for row in processes} - dead
            if self.id is not None:
                alive.add(self.id)
            query = select(Run.id, Run.process_id).where(Run.status.in_(("queued", "running")))
            if self.queue_resumes_runs:  # runs with a kept state are the workers'
                queued = select(RunState.run_id).where(RunState.run_id == Run.id)
                query = query.where(~queued.exists())
            unfinished = session.execute(query).all()
            orphans = [run_id for run_id, owner in unfinished if owner not in alive]
            if orphans and not self.queue_resumes_runs:
                for start in range(0, len(orphans), 500):
                    session.execute(
                        delete(RunState).where(RunState.run_id.in_(orphans[start : start + 500]))
                    )
            for start in range(0, len(orphans), 500):
                session.execute(
                    update(Run)
                    .where(Run.id.in_(orphans[start : start + 500]))
                    .values(status="failed", ended_at=now, error=INTERRUPTED)
                )
            if dead:
                session.execute(delete(Process).where(Process.id.in_(dead)))
        if orphans:
            log.warning("ended %d runs of cardflow processes that stopped", len(orphans))
        return len(orphans)
