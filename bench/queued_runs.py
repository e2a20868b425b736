"""Queued runs on PostgreSQL: what the procrastinate queue costs and gives. One run.

    python bench/queued_runs.py [--close-requests 300] [--async-requests 300] [--rounds 2] [--json]

Creates a fresh PostgreSQL database (``cardflow_bench_<random>`` on 127.0.0.1:5432, user
postgres), runs ``cardflow db upgrade`` on it, mints an API token, and starts the tiny
upstream (bench/_upstream.py), ``cardflow serve --no-worker`` and two ``cardflow worker``
processes, all on 127.0.0.1. The database is dropped at the end (WITH (FORCE)), also after a
failure or Ctrl-C. Measures, in one run:

(a) Close's time to response, p50/p99, next to ``GET /healthz``'s measured at the same time
    (both sets of callers at once, under the follow-ups' load), at 4
    and 32 callers: [API endpoint → ``api_connector.close`` → ``api_connector.get`` of
    ``/slow?seconds=2``]; every follow-up run must succeed before the next measurement;
(b) ``Prefer: respond-async`` runs completed per second (first submit → every run
    ``succeeded``) with 1 and 2 workers, against synchronous ``/invoke`` of the same flow
    [API endpoint → ``api_connector.get /me`` → ``flow.return``] served in-process;
(c) database work per queued run: statements (pg_stat_statements, when the server preloads
    it) or else transactions (pg_stat_database's xact_commit + xact_rollback), and rows
    written (pg_stat_user_tables), less the idle background (heartbeats, sweeps);
(d) synchronous ``/invoke`` runs per second of the (b) flow with ``cardflow serve
    --processes 1`` and ``--processes 2`` (each started for its round on the same database,
    alternated), the same callers; on a 2-core box the client, PostgreSQL and the upstream
    share the cores with the serving processes;
(e) resumption: a worker is killed (SIGKILL) in the middle of a ``/slow?seconds=3`` card;
    the time until the other worker starts that card again.

Rounds are interleaved after an uncounted warm-up; medians over rounds are reported. Every
answer is checked; any failure is reported loudly and makes the exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import secrets
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any, TextIO

import aiohttp
import psycopg
from psycopg import sql

from _harness import (
    BadAnswer,
    BenchError,
    Call,
    drive,
    percentile,
    start_upstream,
    stop_process,
    upstream_stats,
)
from invoke import CLOCK_TICKS, cardflow_command, free_port, log_tail, server_cpu, shout

REQUEST_TIMEOUT = 30.0
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
CLOSE_P99_TARGET = 3.0  # Close p99 ≤ 3x /healthz p99
ASYNC_RATE_TARGET = 0.5  # respond-async with 2 workers ≥ 0.5x synchronous /invoke
# (e): a dead worker noticed within seconds
RESUME_ENV = {
    "CARDFLOW_WORKER_HEARTBEAT_SECONDS": "1",
    "CARDFLOW_WORKER_STALLED_AFTER": "3",
    "CARDFLOW_WORKER_SWEEP_SECONDS": "1",
}
WORKER_READY = "executing queued runs"
TERMINAL = ("succeeded", "failed", "cancelled")

# -- processes -------------------------------------------------------------------------


@dataclass
class Proc:
    name: str
    process: asyncio.subprocess.Process
    log_path: Path
    log_file: TextIO
    env: dict[str, str]
    argv: list[str]

    def text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""


async def run_command(argv: list[str], env: dict[str, str], timeout: float) -> str:
    """A cardflow command to its end; its stdout (raises BenchError when it fails)."""
    process = await asyncio.create_subprocess_exec(
        *cardflow_command(),
        *argv,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout=timeout)
    except TimeoutError:
        await stop_process(process, 5)
        raise BenchError(f"cardflow {' '.join(argv)} did not finish within {timeout:g} s") from None
    if process.returncode != 0:
        raise BenchError(
            f"cardflow {' '.join(argv)} failed (exit {process.returncode}): {err.decode()[-800:]}"
        )
    return out.decode()


async def start_proc(
    name: str, argv: list[str], env: dict[str, str], log_dir: Path, ready: Callable[[Proc], Any]
) -> Proc:
    log_path = log_dir / f"{name}.log"
    log_file = log_path.open("a")
    process = await asyncio.create_subprocess_exec(
        *cardflow_command(),
        *argv,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=log_file,
        stderr=asyncio.subprocess.STDOUT,
    )
    proc = Proc(name, process, log_path, log_file, env, argv)
    for _attempt in range(300):  # bounded: at most ~30 s
        if process.returncode is not None:
            break
        if await ready(proc):
            return proc
        await asyncio.sleep(0.1)
    await stop_proc(proc, 5)
    raise BenchError(f"{name} did not start:\n{log_tail(log_path)}")


async def stop_proc(proc: Proc, timeout: float) -> bool:
    """SIGTERM, then SIGKILL after ``timeout`` s; True when it exited by itself."""
    graceful = True
    if proc.process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            proc.process.terminate()
        try:
            await asyncio.wait_for(proc.process.wait(), timeout=timeout)
        except TimeoutError:
            graceful = False
            with contextlib.suppress(ProcessLookupError):
                proc.process.kill()
            await proc.process.wait()
    if not proc.log_file.closed:
        proc.log_file.close()
    return graceful


async def worker_ready(proc: Proc) -> bool:
    return WORKER_READY in proc.text()


def serve_ready(base: str) -> Callable[[Proc], Any]:
    async def ready(_proc: Proc) -> bool:
        async with aiohttp.ClientSession() as session:
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{base}/healthz") as resp:
                    return resp.status == 200
        return False

    return ready


# -- the database ------------------------------------------------------------------------


def db_url(name: str) -> str:
    return f"{PG_ADMIN_URL.rpartition('/')[0]}/{name}"


def create_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_database(name: str) -> None:
    with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )


async def statements_available(conn: psycopg.AsyncConnection[Any]) -> bool:
    """pg_stat_statements counts only when the server preloads it (shared_preload_libraries)."""
    row = await (await conn.execute("SHOW shared_preload_libraries")).fetchone()
    if row is None or "pg_stat_statements" not in str(row[0]):
        return False
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        await conn.execute("SELECT 1 FROM pg_stat_statements LIMIT 1")
    except psycopg.Error:
        return False
    return True


async def db_counters(conn: psycopg.AsyncConnection[Any], statements: bool) -> dict[str, float]:
    """This database's counters (autocommit: each read is a fresh stats snapshot)."""
    row = await (
        await conn.execute(
            "SELECT xact_commit, xact_rollback FROM pg_stat_database "
            "WHERE datname = current_database()"
        )
    ).fetchone()
    tuples = await (
        await conn.execute(
            "SELECT COALESCE(SUM(n_tup_ins), 0), COALESCE(SUM(n_tup_upd), 0), "
            "COALESCE(SUM(n_tup_del), 0) FROM pg_stat_user_tables"
        )
    ).fetchone()
    assert row is not None and tuples is not None
    counters = {
        "xact_commit": float(row[0]),
        "xact_rollback": float(row[1]),
        "rows_inserted": float(tuples[0]),
        "rows_updated": float(tuples[1]),
        "rows_deleted": float(tuples[2]),
        "at": time.monotonic(),
    }
    if statements:
        found = await (
            await conn.execute(
                "SELECT COALESCE(SUM(calls), 0) FROM pg_stat_statements "
                "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
        ).fetchone()
        counters["statements"] = float(found[0]) if found else float("nan")
    return counters


async def table_rows(conn: psycopg.AsyncConnection[Any]) -> dict[str, list[int]]:
    """Rows inserted, updated, deleted so far, per table."""
    rows = await (
        await conn.execute(
            "SELECT relname, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables"
        )
    ).fetchall()
    return {str(name): [int(ins), int(upd), int(dele)] for name, ins, upd, dele in rows}


async def run_statuses(conn: psycopg.AsyncConnection[Any], run_ids: list[str]) -> dict[str, int]:
    rows = await (
        await conn.execute(
            "SELECT status, count(*) FROM runs WHERE id = ANY(%s) GROUP BY status", (run_ids,)
        )
    ).fetchall()
    return {str(status): int(count) for status, count in rows}


async def wait_runs_db(
    conn: psycopg.AsyncConnection[Any], run_ids: list[str], limit: float
) -> dict[str, int]:
    """Poll the runs table (every 20 ms, at most ``limit`` s) until every run has ended."""
    deadline = time.monotonic() + limit
    while True:
        statuses = await run_statuses(conn, run_ids)
        ended = sum(statuses.get(status, 0) for status in TERMINAL)
        if ended >= len(run_ids) or time.monotonic() > deadline:
            return statuses
        await asyncio.sleep(0.02)


# -- the flows ---------------------------------------------------------------------------


def flow_documents(upstream: str, slow_seconds: float, resume_seconds: float) -> dict[str, Any]:
    run_ref = "{{ flow.run_id }}"

    def endpoint(alias: str) -> dict[str, str]:
        return {"type": "api_endpoint", "alias": alias, "security": "none"}

    return {
        "close": {
            "name": "queue bench close",
            "trigger": endpoint("qb-close"),
            "save_data": False,
            "cards": [
                {
                    "id": "ack",
                    "card": "api_connector.close",
                    "inputs": {"status_code": 200, "body": {"accepted": True, "run": run_ref}},
                },
                {
                    "id": "slow",
                    "card": "api_connector.get",
                    "inputs": {"url": f"{upstream}/slow?seconds={slow_seconds:g}"},
                },
            ],
        },
        "get": {
            "name": "queue bench get",
            "trigger": endpoint("qb-get"),
            "save_data": False,
            "cards": [
                {"id": "me", "card": "api_connector.get", "inputs": {"url": f"{upstream}/me"}},
                {
                    "id": "out",
                    "card": "flow.return",
                    "inputs": {"name": "{{ steps.me.body.name }}"},
                },
            ],
        },
        "resume": {
            "name": "queue bench resume",
            "trigger": endpoint("qb-resume"),
            "save_data": False,
            "cards": [
                {"id": "me", "card": "api_connector.get", "inputs": {"url": f"{upstream}/me"}},
                {
                    "id": "slow",
                    "card": "api_connector.get",
                    "inputs": {"url": f"{upstream}/slow?seconds={resume_seconds:g}&run={run_ref}"},
                },
            ],
        },
    }


async def create_flow(
    session: aiohttp.ClientSession, base: str, token: str, document: dict[str, Any]
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    async with session.post(f"{base}/api/v1/flows", json=document, headers=headers) as resp:
        if resp.status != 201:
            raise BenchError(f"POST /api/v1/flows {document['name']!r}: {resp.status}")


# -- calls -------------------------------------------------------------------------------


def healthz_call(session: aiohttp.ClientSession, base: str) -> Call:
    async def call() -> None:
        async with session.get(f"{base}/healthz") as resp:
            status = resp.status
            await resp.read()
        if status != 200:
            raise BadAnswer(f"/healthz status {status}")

    return call


def invoke_call(
    session: aiohttp.ClientSession,
    url: str,
    *,
    status: int,
    check: Callable[[dict[str, Any]], str | None],
    run_ids: list[str] | None,
    headers: dict[str, str] | None = None,
) -> Call:
    """POST ``url``; the answer must have ``status`` and a body ``check`` returns a run id
    for (appended to ``run_ids``) or None for."""

    async def call() -> None:
        async with session.post(url, headers=headers) as resp:
            got = resp.status
            raw = await resp.read()
        if got != status:
            raise BadAnswer(f"status {got}, body {raw[:200]!r}")
        try:
            body = json.loads(raw)
            run_id = check(body)
        except (ValueError, KeyError, TypeError) as exc:
            raise BadAnswer(f"unexpected body {raw[:200]!r}") from exc
        if run_ids is not None:
            if not run_id:
                raise BadAnswer(f"no run id in {raw[:200]!r}")
            run_ids.append(run_id)

    return call


def close_body(body: dict[str, Any]) -> str | None:
    if body.get("accepted") is not True or set(body) != {"accepted", "run"}:
        raise ValueError("not a Close answer")
    return str(body["run"])


def accepted_body(body: dict[str, Any]) -> str | None:
    return str(body["run_id"])


def return_body(body: dict[str, Any]) -> str | None:
    if body != {"name": "bench"}:
        raise ValueError("not the flow's return")
    return None


async def wait_runs_api(
    session: aiohttp.ClientSession, base: str, token: str, run_ids: list[str], limit: float
) -> dict[str, int]:
    """GET /api/v1/runs/{id}, oldest first, until every run has ended (at most ``limit`` s)."""
    headers = {"Authorization": f"Bearer {token}"}
    statuses: dict[str, int] = {}
    pending = list(run_ids)
    deadline = time.monotonic() + limit
    while pending and time.monotonic() < deadline:
        async with session.get(f"{base}/api/v1/runs/{pending[0]}", headers=headers) as resp:
            body: dict[str, Any] = (
                await resp.json() if resp.status == 200 else {"status": f"http {resp.status}"}
            )
        status = str(body.get("status"))
        if status in ("queued", "running"):
            await asyncio.sleep(0.05)
            continue
        statuses[status] = statuses.get(status, 0) + 1
        if not any(event.get("type") == "queued" for event in body.get("events", [])):
            # the queue was full (CARDFLOW_MAX_QUEUED_RUNS…): the rest ran in serve itself
            statuses["not_queued"] = statuses.get("not_queued", 0) + 1
        pending.pop(0)
    if pending:
        statuses["unfinished"] = len(pending)
    return statuses


# -- figures -----------------------------------------------------------------------------


@dataclass
class Latency:
    requests: int
    completed: int
    failures: int
    seconds: float
    p50_ms: float
    p99_ms: float
    first_error: str | None = None


async def measure(call: Call, requests: int, concurrency: int, limit: float) -> Latency:
    latencies, failures, first_error, seconds = await drive(call, requests, concurrency, limit)
    latencies.sort()
    return Latency(
        requests=requests,
        completed=len(latencies),
        failures=failures,
        seconds=seconds,
        p50_ms=percentile(latencies, 0.50) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        first_error=first_error,
    )


@dataclass
class Rate:
    runs: int
    seconds: float  # first submit → every run ended (sync: → the last answer)
    runs_per_s: float
    submit_p99_ms: float
    failures: int
    statuses: dict[str, int] = field(default_factory=dict)
    serve_cpu: float = float("nan")  # share of one core over ``seconds``
    workers_cpu: float = float("nan")  # all workers together
    box_cpu: float = float("nan")  # the whole machine (PostgreSQL included), in cores


def box_busy() -> float:
    """CPU seconds the whole machine has been busy (Linux /proc/stat; NaN elsewhere)."""
    try:
        fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return float("nan")
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)
    return (sum(fields[:8]) - idle) / CLOCK_TICKS


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


@dataclass
class Problems:
    items: list[str] = field(default_factory=list)

    def fail(self, message: str) -> None:
        self.items.append(message)
        shout(message)

    def check(self, label: str, result: Latency) -> None:
        if result.failures:
            self.fail(
                f"{label}: {result.failures} of {result.completed} calls FAILED; "
                f"first: {result.first_error}"
            )
        if result.completed < result.requests:
            self.fail(f"{label}: cut short after {result.completed} of {result.requests} calls")


# -- main --------------------------------------------------------------------------------


class Bench:
    def __init__(self, args: argparse.Namespace, problems: Problems) -> None:
        self.args = args
        self.problems = problems
        self.db_name = f"cardflow_bench_{secrets.token_hex(4)}"
        self.workdir = tempfile.TemporaryDirectory(prefix="cardflow-queue-bench-")
        self.logs = Path(self.workdir.name)
        self.home = self.logs / "home"
        self.home.mkdir()
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("CARDFLOW_")}
        self.env.update(
            {
                "CARDFLOW_HOME": str(self.home),
                "CARDFLOW_DATABASE_URL": db_url(self.db_name),
                "CARDFLOW_MASTER_KEY": secrets.token_hex(32),
                "CARDFLOW_PORT": str(self.port),
                "CARDFLOW_WORKER_CONCURRENCY": str(args.worker_concurrency),
                "CARDFLOW_MAX_QUEUED_RUNS_PER_FLOW": str(args.max_queued),
                "CARDFLOW_MAX_QUEUED_RUNS": str(max(1000, args.max_queued)),
            }
        )
        self.serve: Proc | None = None
        self.workers: list[Proc] = []
        self.spawned = 0
        self.token = ""
        self.upstream_base = ""
        self.results: dict[str, Any] = {}

    def log(self, message: str) -> None:
        if not self.args.json:
            print(message, file=sys.stderr)

    async def add_worker(self, extra: dict[str, str] | None = None) -> Proc:
        self.spawned += 1
        env = {**self.env, **(extra or {})}
        proc = await start_proc(f"worker-{self.spawned}", ["worker"], env, self.logs, worker_ready)
        self.workers.append(proc)
        return proc

    async def remove_worker(self, proc: Proc) -> None:
        self.workers.remove(proc)
        if not await stop_proc(proc, 45):
            self.problems.fail(f"{proc.name} did not stop within 45 s of SIGTERM and was killed")

    async def stop_all(self) -> None:
        for proc in list(self.workers):
            await self.remove_worker(proc)
        if self.serve is not None and not await stop_proc(self.serve, 30):
            self.problems.fail("cardflow serve did not stop within 30 s of SIGTERM")

    def cpu(self) -> tuple[float, float, float]:
        """CPU seconds so far: serve, the workers together, the whole machine."""
        serve = server_cpu(self.serve.process.pid)[0] if self.serve else float("nan")
        workers = sum(server_cpu(w.process.pid)[0] for w in self.workers)
        return serve, workers, box_busy()

    def with_cpu(self, rate: Rate, before: tuple[float, float, float]) -> Rate:
        after = self.cpu()
        if rate.seconds > 0:
            rate.serve_cpu = (after[0] - before[0]) / rate.seconds
            rate.workers_cpu = (after[1] - before[1]) / rate.seconds
            rate.box_cpu = (after[2] - before[2]) / rate.seconds
        return rate

    def log_tails(self) -> str:
        procs = [p for p in [self.serve, *self.workers] if p is not None]
        return "\n".join(f"--- {p.name} ---\n{log_tail(p.log_path, 15)}" for p in procs)

    async def run(self) -> None:
        args = self.args
        upstream = await start_upstream(3600)
        self.upstream_base = upstream.base
        self.log(f"upstream at {upstream.base} (pid {upstream.process.pid})")
        load = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=0),
            timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT),
        )
        admin = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT))
        created = False
        try:
            await asyncio.to_thread(create_database, self.db_name)
            created = True
            self.log(f"database {self.db_name}; cardflow db upgrade")
            await run_command(["db", "upgrade"], self.env, 120)
            minted = json.loads(
                await run_command(["token", "create", "--name", "bench", "--json"], self.env, 60)
            )
            self.token = str(minted["token"])
            self.serve = await start_proc(
                "serve",
                ["serve", "--no-worker", "--host", "127.0.0.1", "--port", str(self.port)],
                self.env,
                self.logs,
                serve_ready(self.base),
            )
            self.log(f"cardflow serve --no-worker at {self.base} (pid {self.serve.process.pid})")
            for _ in range(2):
                worker = await self.add_worker()
                self.log(f"{worker.name} (pid {worker.process.pid})")
            documents = flow_documents(upstream.base, args.slow_seconds, args.resume_seconds)
            for document in documents.values():
                await create_flow(admin, self.base, self.token, document)
            async with await psycopg.AsyncConnection.connect(
                db_url(self.db_name), autocommit=True
            ) as conn:
                if "a" in args.only:
                    await self.close_phase(load, admin)
                if "b" in args.only:
                    await self.rate_phase(load, admin, conn)
                if "c" in args.only:
                    await self.count_phase(load, admin, conn)
                if "d" in args.only:
                    await self.processes_phase(load)
                if "e" in args.only:
                    await self.resume_phase(load, admin, conn)
        except BenchError as exc:
            self.problems.fail(f"the bench could not run: {exc}")
        finally:
            if self.problems.items:
                self.log(f"process logs (tails):\n{self.log_tails()}")
            await load.close()
            await admin.close()
            await self.stop_all()
            await stop_process(upstream.process, 5)
            if created:
                await asyncio.to_thread(drop_database, self.db_name)
                self.log(f"database {self.db_name} dropped")
            self.workdir.cleanup()

    # (a) ------------------------------------------------------------------------------

    async def close_phase(self, load: aiohttp.ClientSession, admin: aiohttp.ClientSession) -> None:
        args = self.args
        run_ids: list[str] = []
        close = invoke_call(
            load, f"{self.base}/invoke/qb-close", status=200, check=close_body, run_ids=run_ids
        )
        healthz = healthz_call(load, self.base)
        not_queued: dict[str, int] = {}
        drain_limit = args.close_requests * args.slow_seconds + 120

        async def drain(label: str) -> None:
            statuses = await wait_runs_api(admin, self.base, self.token, run_ids, drain_limit)
            if statuses.get("succeeded", 0) != len(run_ids):
                self.problems.fail(f"{label}: Close follow-up runs ended as {statuses}")
            not_queued[label] = statuses.get("not_queued", 0)
            run_ids.clear()

        if args.warmup:
            self.log(f"warm-up: /healthz and Close ({args.warmup} each)")
            self.problems.check("warm-up /healthz", await measure(healthz, args.warmup, 8, 60))
            self.problems.check("warm-up Close", await measure(close, args.warmup, 8, 60))
            await drain("warm-up")
        rounds: dict[str, list[Latency]] = {}
        for number in range(1, args.rounds + 1):
            for callers in args.close_concurrency:
                # Side by side: /healthz's callers run while Close's do (and while the
                # follow-ups Close leaves behind load the box), so both see the same load.
                both = await asyncio.gather(
                    measure(healthz, args.close_requests, callers, args.round_timeout),
                    measure(close, args.close_requests, callers, args.round_timeout),
                )
                for key, result in zip(("healthz", "close"), both, strict=True):
                    label = f"{key} c={callers}"
                    self.problems.check(f"round {number} {label}", result)
                    rounds.setdefault(f"{key}@{callers}", []).append(result)
                    self.log(
                        f"round {number}/{args.rounds} {label:<14} p50 {result.p50_ms:7.2f} ms"
                        f"  p99 {result.p99_ms:7.2f} ms  fails {result.failures}"
                    )
                waited = time.monotonic()
                await drain(f"round {number} c={callers}")
                self.log(f"  follow-up runs done {time.monotonic() - waited:.1f} s later")
        stats = await upstream_stats(admin, self.upstream_base)
        self.results["close_slow_max_in_flight"] = stats["slow_max_in_flight"]
        self.results["close_not_queued"] = not_queued
        self.results["close_rounds"] = {k: [asdict(r) for r in v] for k, v in rounds.items()}
        self.results["close"] = {
            key: {
                "p50_ms": median([r.p50_ms for r in values]),
                "p99_ms": median([r.p99_ms for r in values]),
            }
            for key, values in rounds.items()
        }

    # (b) ------------------------------------------------------------------------------

    async def rate_phase(
        self,
        load: aiohttp.ClientSession,
        admin: aiohttp.ClientSession,
        conn: psycopg.AsyncConnection[Any],
    ) -> None:
        args = self.args
        url = f"{self.base}/invoke/qb-get"
        sync = invoke_call(load, url, status=200, check=return_body, run_ids=None)

        async def sync_rate() -> Rate:
            before = await upstream_stats(admin, self.upstream_base)
            result = await measure(sync, args.async_requests, args.concurrency, args.round_timeout)
            self.problems.check("synchronous /invoke", result)
            after = await upstream_stats(admin, self.upstream_base)
            if after["me"] - before["me"] != result.completed:
                self.problems.fail(
                    f"synchronous /invoke: the upstream served {after['me'] - before['me']} "
                    f"GET /me for {result.completed} calls"
                )
            return Rate(
                runs=result.completed,
                seconds=result.seconds,
                runs_per_s=result.completed / result.seconds if result.seconds else 0.0,
                submit_p99_ms=result.p99_ms,
                failures=result.failures,
            )

        async def async_rate(label: str, requests: int) -> Rate:
            run_ids: list[str] = []
            call = invoke_call(
                load,
                url,
                status=202,
                check=accepted_body,
                run_ids=run_ids,
                headers={"Prefer": "respond-async"},
            )
            started = time.perf_counter()
            result = await measure(call, requests, args.concurrency, args.round_timeout)
            statuses = await wait_runs_db(conn, run_ids, args.round_timeout)
            seconds = time.perf_counter() - started
            self.problems.check(label, result)
            if statuses.get("succeeded", 0) != len(run_ids):
                self.problems.fail(f"{label}: the runs ended as {statuses}")
            return Rate(
                runs=len(run_ids),
                seconds=seconds,
                runs_per_s=len(run_ids) / seconds if seconds else 0.0,
                submit_p99_ms=result.p99_ms,
                failures=result.failures,
                statuses=statuses,
            )

        if args.warmup:
            self.log(f"warm-up: synchronous and respond-async ({args.warmup} each)")
            self.problems.check(
                "warm-up /invoke", await measure(sync, args.warmup, args.concurrency, 60)
            )
            await async_rate("warm-up respond-async", args.warmup)
        rounds: dict[str, list[Rate]] = {"sync": [], "async-2": [], "async-1": []}
        for number in range(1, args.rounds + 1):
            for key in ("sync", "async-2", "async-1"):
                cpu_before = self.cpu()
                if key == "sync":
                    result = await sync_rate()
                else:
                    result = await async_rate(f"round {number} {key}", args.async_requests)
                result = self.with_cpu(result, cpu_before)
                rounds[key].append(result)
                self.log(
                    f"round {number}/{args.rounds} {key:<8} {result.runs_per_s:8.1f} runs/s  "
                    f"({result.runs} in {result.seconds:.2f} s; submit p99 "
                    f"{result.submit_p99_ms:.1f} ms; cpu serve {result.serve_cpu:.0%} workers "
                    f"{result.workers_cpu:.0%} box {result.box_cpu:.2f} cores)"
                )
                if key == "async-2":
                    await self.remove_worker(self.workers[-1])  # one worker for async-1
            await self.add_worker()
        self.results["rate_rounds"] = {k: [asdict(r) for r in v] for k, v in rounds.items()}
        self.results["rate"] = {
            key: median([r.runs_per_s for r in values]) for key, values in rounds.items()
        }
        self.results["rate_cpu"] = {
            key: {
                "serve": median([r.serve_cpu for r in values]),
                "workers": median([r.workers_cpu for r in values]),
                "box": median([r.box_cpu for r in values]),
                "submit_p99_ms": median([r.submit_p99_ms for r in values]),
            }
            for key, values in rounds.items()
        }

    # (c) ------------------------------------------------------------------------------

    async def count_phase(
        self,
        load: aiohttp.ClientSession,
        admin: aiohttp.ClientSession,
        conn: psycopg.AsyncConnection[Any],
    ) -> None:
        args = self.args
        statements = await statements_available(conn)
        await asyncio.sleep(args.stats_settle)  # earlier phases' statistics are flushed
        idle_before = await db_counters(conn, statements)
        await asyncio.sleep(args.idle_seconds)
        idle_after = await db_counters(conn, statements)
        idle_span = idle_after["at"] - idle_before["at"]

        run_ids: list[str] = []
        call = invoke_call(
            load,
            f"{self.base}/invoke/qb-get",
            status=202,
            check=accepted_body,
            run_ids=run_ids,
            headers={"Prefer": "respond-async"},
        )
        stats_before = await upstream_stats(admin, self.upstream_base)
        tables_before = await table_rows(conn)
        before = await db_counters(conn, statements)
        result = await measure(call, args.count_runs, args.concurrency, args.round_timeout)
        self.problems.check("(c) respond-async", result)
        deadline = time.monotonic() + args.round_timeout
        while time.monotonic() < deadline:  # no query on the database while it counts
            stats = await upstream_stats(admin, self.upstream_base)
            if stats["me"] - stats_before["me"] >= len(run_ids):
                break
            await asyncio.sleep(0.05)
        # Runs record their end, and every backend flushes its statistics: an idle backend
        # may hold them up to 10 s (PostgreSQL 15's PGSTAT_IDLE_INTERVAL).
        await asyncio.sleep(args.stats_settle)
        after = await db_counters(conn, statements)
        tables_after = await table_rows(conn)
        statuses = await run_statuses(conn, run_ids)
        if statuses.get("succeeded", 0) != len(run_ids):
            self.problems.fail(f"(c): the runs ended as {statuses}")
        span = after["at"] - before["at"]
        runs = max(len(run_ids), 1)
        figures: dict[str, Any] = {
            "runs": len(run_ids),
            "window_s": span,
            "idle_window_s": idle_span,
            "pg_stat_statements": statements,
            "tables_per_run": {
                name: [
                    round((value - tables_before.get(name, [0, 0, 0])[i]) / runs, 2)
                    for i, value in enumerate(values)
                ]
                for name, values in sorted(tables_after.items())
                if values != tables_before.get(name)
            },
        }
        keys = ["xact_commit", "xact_rollback", "rows_inserted", "rows_updated", "rows_deleted"]
        if statements:
            keys.insert(0, "statements")
        for key in keys:
            rate = (idle_after[key] - idle_before[key]) / idle_span if idle_span > 0 else 0.0
            gross = after[key] - before[key]
            figures[key] = {
                "gross": gross,
                "background_per_s": rate,
                "per_run": (gross - rate * span) / runs,
            }
        self.results["count"] = figures

    # (e) ------------------------------------------------------------------------------

    async def processes_phase(self, load: aiohttp.ClientSession) -> None:
        args = self.args
        rates: dict[int, list[float]] = {1: [], 2: []}
        cpu: dict[int, list[float]] = {1: [], 2: []}
        for number in range(1, args.rounds + 1):
            for count in (1, 2):
                port = free_port()
                base = f"http://127.0.0.1:{port}"
                argv = ["serve", "--no-worker", "--processes", str(count)]
                proc = await start_proc(
                    f"serve-p{count}",
                    [*argv, "--host", "127.0.0.1", "--port", str(port)],
                    self.env,
                    self.logs,
                    serve_ready(base),
                )
                try:
                    call = invoke_call(
                        load, f"{base}/invoke/qb-get", status=200, check=return_body, run_ids=None
                    )
                    if args.warmup:  # every serving process warms up
                        self.problems.check(
                            f"warm-up --processes {count}",
                            await measure(call, args.warmup, args.concurrency, 60),
                        )
                    busy = box_busy()
                    result = await measure(
                        call, args.processes_requests, args.concurrency, args.round_timeout
                    )
                    busy = (box_busy() - busy) / result.seconds if result.seconds else 0.0
                    self.problems.check(f"round {number} --processes {count}", result)
                    rate = result.completed / result.seconds if result.seconds else 0.0
                    rates[count].append(rate)
                    cpu[count].append(busy)
                    self.log(
                        f"round {number}/{args.rounds} serve --processes {count}: {rate:7.1f} "
                        f"runs/s (p99 {result.p99_ms:.1f} ms; box {busy:.2f} cores)"
                    )
                finally:
                    if not await stop_proc(proc, 30):
                        self.problems.fail(f"serve --processes {count} did not stop on SIGTERM")
        self.results["processes"] = {
            str(count): {
                "runs_per_s": median(values),
                "rounds": values,
                "box_cores": median(cpu[count]),
            }
            for count, values in rates.items()
        }

    async def resume_phase(
        self,
        load: aiohttp.ClientSession,
        admin: aiohttp.ClientSession,
        conn: psycopg.AsyncConnection[Any],
    ) -> None:
        args = self.args
        self.log("(e): workers again with " + " ".join(f"{k}={v}" for k, v in RESUME_ENV.items()))
        for proc in list(self.workers):
            await self.remove_worker(proc)
        for _ in range(2):
            await self.add_worker(RESUME_ENV)
        trials: list[dict[str, Any]] = []
        for number in range(1, args.resume_trials + 1):
            trial = await self.resume_trial(load, admin, conn, number)
            if trial is None:
                break
            trials.append(trial)
            self.log(
                f"(e) trial {number}: kill -9 → slow card started again in "
                f"{trial['kill_to_restart_s']:.2f} s"
            )
        self.results["resume"] = {
            "settings": RESUME_ENV,
            "resume_seconds": args.resume_seconds,
            "trials": trials,
            "median_s": median([t["kill_to_restart_s"] for t in trials]),
        }

    async def resume_trial(
        self,
        load: aiohttp.ClientSession,
        admin: aiohttp.ClientSession,
        conn: psycopg.AsyncConnection[Any],
        number: int,
    ) -> dict[str, Any] | None:
        args = self.args
        label = f"(e) trial {number}"
        before = await upstream_stats(admin, self.upstream_base)
        async with load.post(
            f"{self.base}/invoke/qb-resume", headers={"Prefer": "respond-async"}
        ) as resp:
            if resp.status != 202:
                self.problems.fail(f"{label}: respond-async answered {resp.status}")
                return None
            run_id = str((await resp.json())["run_id"])

        async def slow_started(count: int, limit: float) -> float | None:
            deadline = time.monotonic() + limit
            while time.monotonic() < deadline:
                stats = await upstream_stats(admin, self.upstream_base)
                if stats["slow"] - before["slow"] >= count:
                    return time.monotonic()
                await asyncio.sleep(0.02)
            return None

        started = await slow_started(1, 30)
        needle = f"run {run_id}: executing on"
        victim = next((w for w in self.workers if needle in w.text()), None)
        if started is None or victim is None:
            self.problems.fail(f"{label}: the slow card did not start on a worker")
            return None
        await asyncio.sleep(max(0.0, started + args.resume_seconds / 2 - time.monotonic()))
        mid = await upstream_stats(admin, self.upstream_base)
        victim.process.kill()  # SIGKILL: no goodbye, its heartbeat just stops
        killed = time.monotonic()
        await victim.process.wait()
        victim.log_file.close()
        self.workers.remove(victim)
        if mid["slow_done"] > before["slow_done"]:
            self.problems.fail(f"{label}: the slow card had already ended before the kill")
        again = await slow_started(2, 120)
        if again is None:
            self.problems.fail(f"{label}: the slow card was not started again within 120 s")
            return None
        survivor = next((w.name for w in self.workers if needle in w.text()), "?")
        statuses = await wait_runs_db(conn, [run_id], args.resume_seconds + 60)
        run: dict[str, Any] = {}
        headers = {"Authorization": f"Bearer {self.token}"}
        async with admin.get(f"{self.base}/api/v1/runs/{run_id}", headers=headers) as resp:
            if resp.status == 200:
                run = await resp.json()
        events = [str(e.get("type")) for e in run.get("events", [])]
        if statuses.get("succeeded") != 1 or "resumed" not in events:
            self.problems.fail(f"{label}: run {run_id} ended as {statuses}, events {events}")
        await self.add_worker(RESUME_ENV)  # two workers again, as a supervisor would
        return {
            "run_id": run_id,
            "killed": victim.name,
            "resumed_on": survivor,
            "kill_to_restart_s": again - killed,
            "events": events,
        }


def environment(args: argparse.Namespace) -> dict[str, Any]:
    versions: dict[str, str] = {}
    for name in ("cardflow", "procrastinate", "psycopg", "aiohttp", "uvicorn"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "versions": versions,
        "rounds": args.rounds,
        "warmup": args.warmup,
        "close_requests": args.close_requests,
        "close_concurrency": args.close_concurrency,
        "async_requests": args.async_requests,
        "processes_requests": args.processes_requests,
        "concurrency": args.concurrency,
        "worker_concurrency": args.worker_concurrency,
        "slow_seconds": args.slow_seconds,
        "count_runs": args.count_runs,
        "max_queued_runs_per_flow": args.max_queued,
    }


def print_report(env: dict[str, Any], results: dict[str, Any]) -> list[str]:
    """The table and a verdict line per target; returns the verdicts."""
    versions = ", ".join(f"{k} {v}" for k, v in env["versions"].items())
    print(f"cpu_count {env['cpu_count']}, Python {env['python']} ({env['platform']})")
    print(versions)
    print(
        f"PostgreSQL 127.0.0.1:5432 (fresh database); cardflow serve --no-worker + 2 cardflow "
        f"worker (CARDFLOW_WORKER_CONCURRENCY={env['worker_concurrency']}, "
        f"CARDFLOW_MAX_QUEUED_RUNS_PER_FLOW={env['max_queued_runs_per_flow']}); {env['rounds']} "
        f"interleaved rounds after a warm-up of {env['warmup']}; medians over rounds."
    )
    verdicts: list[str] = []

    def verdict(text: str, ratio: float, target: float, above: bool) -> None:
        met = ratio >= target if above else ratio <= target
        line = f"{text} = {ratio:.2f}x  (target {'≥' if above else '≤'} {target:g}x): " + (
            "MET" if met else "MISSED"
        )
        verdicts.append(line)
        print(line)

    close = results.get("close")
    if close:
        print()
        print(
            f"(a) time to response, {env['close_requests']} requests per round: Close "
            f"[API endpoint → api_connector.close → get /slow ({env['slow_seconds']:g} s)] "
            "vs GET /healthz"
        )
        header = f"{'callers':>7} {'target':<10} {'p50 ms':>9} {'p99 ms':>9}  p99 per round (ms)"
        print(header)
        print("-" * len(header))
        for callers in env["close_concurrency"]:
            for key in ("healthz", "close"):
                figures = close[f"{key}@{callers}"]
                per_round = " ".join(
                    f"{r['p99_ms']:.1f}" for r in results["close_rounds"][f"{key}@{callers}"]
                )
                print(
                    f"{callers:>7} {key:<10} {figures['p50_ms']:>9.2f} {figures['p99_ms']:>9.2f}"
                    f"  {per_round}"
                )
        print(
            "Every follow-up run succeeded before the next measurement (polled through "
            f"GET /api/v1/runs/{{id}}); most /slow calls at once: "
            f"{results.get('close_slow_max_in_flight')}."
        )
        not_queued = sum(results.get("close_not_queued", {}).values())
        if not_queued:
            print(
                f"NOTE: {not_queued} Close runs went on in serve, not on a worker (the queue "
                "was full: CARDFLOW_MAX_QUEUED_RUNS_PER_FLOW); their callers may have waited "
                "for a run slot."
            )
        for callers in env["close_concurrency"]:
            c, h = close[f"close@{callers}"], close[f"healthz@{callers}"]
            verdict(
                f"(a) c={callers}: Close p99 / healthz p99 ({c['p99_ms']:.1f} / "
                f"{h['p99_ms']:.1f} ms)",
                c["p99_ms"] / h["p99_ms"],
                CLOSE_P99_TARGET,
                above=False,
            )

    rate = results.get("rate")
    if rate:
        print()
        print(
            f"(b) runs completed per second, {env['async_requests']} runs per round, "
            f"{env['concurrency']} callers: [API endpoint → get /me → flow.return]"
        )
        header = (
            f"{'how':<44} {'runs/s':>8} {'vs sync':>8} {'submit p99':>10} {'serve':>6} "
            f"{'workers':>7} {'box':>5}  per round"
        )
        print(header)
        print("-" * len(header))
        labels = {
            "sync": "synchronous /invoke (in-process)",
            "async-1": "respond-async, 1 worker (submit → succeeded)",
            "async-2": "respond-async, 2 workers (submit → succeeded)",
        }
        for key in ("sync", "async-1", "async-2"):
            per_round = " ".join(f"{r['runs_per_s']:.1f}" for r in results["rate_rounds"][key])
            cpu = results["rate_cpu"][key]
            print(
                f"{labels[key]:<44} {rate[key]:>8.1f} {rate[key] / rate['sync']:>7.2f}x "
                f"{cpu['submit_p99_ms']:>7.1f} ms {cpu['serve']:>6.0%} {cpu['workers']:>7.0%} "
                f"{cpu['box']:>5.2f}  {per_round}"
            )
        print(
            "submit p99: the caller's wait for its answer (200 with the result, or 202); "
            "serve/workers: share of one core; box: cores busy on the whole machine "
            "(PostgreSQL, the upstream and this client included)."
        )
        verdict(
            f"(b) respond-async with 2 workers / synchronous /invoke ({rate['async-2']:.1f} / "
            f"{rate['sync']:.1f} runs/s)",
            rate["async-2"] / rate["sync"],
            ASYNC_RATE_TARGET,
            above=True,
        )

    count = results.get("count")
    if count:
        print()
        print(
            f"(c) database work per queued run ({count['runs']} respond-async runs, 2 workers; "
            f"window {count['window_s']:.1f} s, less the idle background measured over "
            f"{count['idle_window_s']:.1f} s: heartbeats, sweeps)"
        )
        if count["pg_stat_statements"]:
            print(f"statements per run (pg_stat_statements calls): {per_run(count, 'statements')}")
        else:
            print(
                "pg_stat_statements: not available (not in shared_preload_libraries), so "
                "statements are NOT counted; transactions are:"
            )
        x_commit, x_rollback = count["xact_commit"], count["xact_rollback"]
        print(
            "transactions per run (pg_stat_database xact_commit + xact_rollback): "
            f"{x_commit['per_run'] + x_rollback['per_run']:.1f}  (commit "
            f"{x_commit['per_run']:.1f}, rollback {x_rollback['per_run']:.1f}; "
            f"background {x_commit['background_per_s'] + x_rollback['background_per_s']:.1f}/s)"
        )
        print(
            "rows written per run (pg_stat_user_tables): inserted "
            f"{count['rows_inserted']['per_run']:.1f}, updated "
            f"{count['rows_updated']['per_run']:.1f}, deleted "
            f"{count['rows_deleted']['per_run']:.1f}"
        )
        tables = ", ".join(
            f"{name} {'/'.join(f'{v:g}' for v in values)}"
            for name, values in count["tables_per_run"].items()
        )
        print(f"rows per run by table, inserted/updated/deleted (background included): {tables}")
        for key in ("xact_commit", "rows_inserted"):
            print(
                f"  {key}: {count[key]['gross']:.0f} in the window, less "
                f"{count[key]['background_per_s']:.1f}/s of background"
            )
        print(
            "A transaction holds one statement or more, so the transaction count is a floor on "
            "statements. Counted: every backend of the bench database (serve, workers), the "
            "submit (POST /invoke), the run on a worker, and its record."
        )

    processes = results.get("processes")
    if processes:
        print()
        print(
            f"(d) synchronous /invoke, {env['processes_requests']} runs per round, "
            f"{env['concurrency']} callers, the (b) flow: cardflow serve --processes N"
        )
        for count, figures in processes.items():
            rounds = " ".join(f"{r:.1f}" for r in figures["rounds"])
            print(
                f"  --processes {count}: {figures['runs_per_s']:8.1f} runs/s "
                f"(box {figures['box_cores']:.2f} cores; per round {rounds})"
            )
        one, two = processes["1"]["runs_per_s"], processes["2"]["runs_per_s"]
        print(
            f"(d) --processes 2 / --processes 1 ({two:.1f} / {one:.1f} runs/s) = "
            f"{two / one if one else float('nan'):.2f}x  (no target; 2 cores shared with "
            "PostgreSQL, the upstream and this client)"
        )

    resume = results.get("resume")
    if resume:
        print()
        settings = ", ".join(f"{k}={v}" for k, v in resume["settings"].items())
        times = " ".join(f"{t['kill_to_restart_s']:.2f}" for t in resume["trials"])
        print(
            f"(e) resumption after kill -9 of the worker in the middle of a "
            f"/slow?seconds={resume['resume_seconds']:g} card ({settings}): kill → the slow "
            f"card started again on the other worker: median {resume['median_s']:.2f} s "
            f"(trials: {times} s)"
        )
        line = (
            f"(e) kill -9 → card started again: {resume['median_s']:.2f} s with {settings} "
            "(no target; expected ≈ stalled-after + up to one heartbeat + up to one sweep)"
        )
        verdicts.append(line)
        print(line)
    return verdicts


def per_run(count: dict[str, Any], key: str) -> str:
    return f"{count[key]['per_run']:.1f}"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Queued runs on PostgreSQL: Close vs /healthz, respond-async throughput "
        "vs synchronous /invoke, database work per run, resumption after kill -9."
    )

    def bounded(low: int, high: int) -> Callable[[str], int]:
        def parse(text: str) -> int:
            value = int(text)
            if not low <= value <= high:
                raise argparse.ArgumentTypeError(f"must be between {low} and {high}")
            return value

        return parse

    def callers(text: str) -> list[int]:
        check = bounded(1, 512)
        return [check(part) for part in text.split(",") if part.strip()]

    parser.add_argument(
        "--close-requests", type=bounded(1, 5_000), default=300, help="(a) per round (300)"
    )
    parser.add_argument(
        "--close-concurrency", type=callers, default=[4, 32], help="(a) callers (4,32)"
    )
    parser.add_argument(
        "--async-requests", type=bounded(1, 20_000), default=300, help="(b) runs per round (300)"
    )
    parser.add_argument(
        "--concurrency", type=bounded(1, 512), default=32, help="(b), (c) callers (32)"
    )
    parser.add_argument(
        "--processes-requests", type=bounded(1, 100_000), default=3000, help="(d) per round (3000)"
    )
    parser.add_argument("--count-runs", type=bounded(1, 20_000), default=200, help="(c) (200)")
    parser.add_argument("--rounds", type=bounded(1, 20), default=2)
    parser.add_argument("--warmup", type=bounded(0, 5_000), default=50)
    parser.add_argument(
        "--worker-concurrency",
        type=bounded(1, 256),
        default=32,
        help="CARDFLOW_WORKER_CONCURRENCY of each worker (32; PostgreSQL's max_connections "
        "bounds it)",
    )
    parser.add_argument(
        "--slow-seconds", type=bounded(0, 30), default=2, help="(a) Close's follow-up (2)"
    )
    parser.add_argument(
        "--resume-seconds", type=bounded(1, 30), default=3, help="(e) the slow card (3)"
    )
    parser.add_argument("--resume-trials", type=bounded(1, 10), default=2)
    parser.add_argument(
        "--idle-seconds", type=bounded(1, 60), default=10, help="(c) background window (10)"
    )
    parser.add_argument(
        "--stats-settle",
        type=float,
        default=11.0,
        help="(c) seconds for backends to flush their statistics (11: an idle backend may "
        "hold them 10 s)",
    )
    parser.add_argument(
        "--round-timeout",
        type=float,
        default=120.0,
        help="seconds one round may take before it is cut short (default 120)",
    )
    parser.add_argument(
        "--max-queued",
        type=bounded(0, 1_000_000),
        default=None,
        help="CARDFLOW_MAX_QUEUED_RUNS_PER_FLOW for the bench (default: a whole round fits; "
        "the product's default, 100, shows the distortion: the rest of the Close runs that "
        "do not fit goes on in serve itself)",
    )
    parser.add_argument(
        "--only",
        type=lambda text: {part.strip() for part in text.split(",") if part.strip()},
        default={"a", "b", "c", "d", "e"},
        help="a subset of the measurements, e.g. a,c (default a,b,c,d,e)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    if not args.only or not args.only <= {"a", "b", "c", "d", "e"}:
        parser.error("--only: a comma-separated subset of a,b,c,d,e")
    if args.max_queued is None:
        most = max(args.close_requests, args.async_requests, args.count_runs, args.warmup)
        args.max_queued = max(100, most + 2 * args.concurrency)
    if not args.close_concurrency:
        parser.error("--close-concurrency: at least one value")
    if not 0 < args.round_timeout <= 3600:
        parser.error("--round-timeout must be in (0, 3600]")
    if not 0 <= args.stats_settle <= 30:
        parser.error("--stats-settle must be between 0 and 30")
    return args


async def run(args: argparse.Namespace) -> int:
    env = environment(args)
    problems = Problems()
    bench = Bench(args, problems)
    task = asyncio.current_task()
    loop = asyncio.get_running_loop()
    if task is not None:  # SIGTERM cleans up like Ctrl-C: processes stopped, database dropped
        loop.add_signal_handler(signal.SIGTERM, task.cancel)
    started = time.monotonic()
    await bench.run()
    results = bench.results
    results["seconds"] = time.monotonic() - started
    if not any(results.get(key) for key in ("close", "rate", "count", "processes", "resume")):
        shout("NO FIGURES: " + "; ".join(problems.items))
        return 1
    if args.json:
        print(json.dumps({"environment": env, **results, "problems": problems.items}, indent=2))
    else:
        print_report(env, results)
        print(f"\n(whole run: {results['seconds']:.0f} s)")
    if problems.items:
        shout(f"{len(problems.items)} PROBLEM(S): the figures above are not trustworthy")
        return 1
    return 0


def main() -> None:
    args = parse_args()
    try:
        sys.exit(asyncio.run(run(args)))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("interrupted: processes stopped, bench database dropped", file=sys.stderr)
        sys.exit(130)


if __name__ == "__main__":
    main()
