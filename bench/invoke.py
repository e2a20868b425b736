"""What does ``POST /invoke/{alias}`` cost end to end? One run, `cardflow serve` as its own process.

    python bench/invoke.py [--requests 5000] [--concurrency 32] [--rounds 3] [--json]

Starts the tiny aiohttp upstream (bench/_upstream.py) and `cardflow serve` (fresh
CARDFLOW_HOME) as separate processes on 127.0.0.1, mints an API token with
`cardflow token create`, creates the flows through ``POST /api/v1/flows``, then measures with
an aiohttp client at the same concurrency:

(a) [API endpoint → ``api_connector.get`` of the upstream's ``/me`` → ``flow.return``
    ``{"name": …}``] with ``save_data: false`` and with ``save_data: true``, against the same
    upstream called directly (raw aiohttp ``GET /me``, the floor); n8n's figure from the
    project's benchmark notes is printed as a fixed reference (not measured here);
(b) time-to-response of [API endpoint → ``api_connector.close`` → ``api_connector.get`` of
    ``/slow`` (2 s)] against an empty flow [API endpoint → ``flow.return {}``];
(c) the run history: after the server has stopped (and flushed), the rows in ``runs`` and
    ``run_cards`` of its SQLite database, checked against the number of invokes sent.

Rounds are interleaved (A, B, C…, A, B, C…) after an uncounted warm-up, and medians over
rounds are reported. Every answer is checked; any failure is reported loudly and makes the
exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import sqlite3
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

REQUEST_TIMEOUT = 30.0

# Reference figures from the project's benchmark notes (BENCHMARKS.md), NOT measured here.
N8N_FLOWS_PER_S = 96.0
N8N_P50_MS = 315.0
N8N_P99_MS = 510.0
TARGET_MULTIPLE_OF_N8N = 20.0  # ≈ 2,000 flows/s
TARGET_P50_MS = 10.0  # "single-digit milliseconds"
# Raw aiohttp against the same upstream on the box those figures come from (BENCHMARKS.md):
# the target as a share of the floor travels better between boxes than flows/s does.
REFERENCE_RAW_RPS = (14_000.0, 21_000.0)

EXPECTED_ME = {"id": 1, "name": "bench"}
EXPECTED_GET = {"name": "bench"}
EXPECTED_CLOSE = {"accepted": True}
EXPECTED_EMPTY: dict[str, Any] = {}

# -- processes -------------------------------------------------------------------------


@dataclass
class Server:
    process: asyncio.subprocess.Process
    base: str
    home: Path
    log_path: Path
    log_file: TextIO
    env: dict[str, str]


def cardflow_command() -> list[str]:
    """The ``cardflow`` console script of this interpreter's environment."""
    beside = Path(sys.executable).with_name("cardflow")
    if beside.exists():
        return [str(beside)]
    found = shutil.which("cardflow")
    if found is None:
        raise BenchError("the cardflow console script is not installed (pip install -e .)")
    return [found]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_env(home: Path, args: argparse.Namespace) -> dict[str, str]:
    # Hermetic: cardflow settings come from this script, not from the caller's environment.
    env = {name: value for name, value in os.environ.items() if not name.startswith("CARDFLOW_")}
    env["CARDFLOW_HOME"] = str(home)
    env["CARDFLOW_MAX_CONCURRENT_RUNS"] = str(args.max_runs)
    if args.log_level:
        env["CARDFLOW_LOG_LEVEL"] = args.log_level
    env.update(args.server_env)
    return env


SERVER_PROBE = (
    "import importlib.metadata as m\n"
    "for name in ('uvloop', 'httptools'):\n"
    "    try:\n"
    "        print(name, m.version(name))\n"
    "    except m.PackageNotFoundError:\n"
    "        print(name, 'not-installed')\n"
)


async def server_packages(env: dict[str, str]) -> dict[str, str]:
    """What the server's interpreter finds (uvicorn uses uvloop and httptools when it can)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SERVER_PROBE, env=env, stdout=asyncio.subprocess.PIPE
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), timeout=30)
    except TimeoutError:
        await stop_process(process, 5)
        return {}
    found = dict(line.split(" ", 1) for line in out.decode().splitlines() if " " in line)
    return {
        name: version.replace("not-installed", "not installed") for name, version in found.items()
    }


async def mint_token(env: dict[str, str]) -> str:
    """``cardflow token create --name bench``: the token is the only thing on stdout."""
    process = await asyncio.create_subprocess_exec(
        *cardflow_command(),
        "token",
        "create",
        "--name",
        "bench",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    except TimeoutError:
        await stop_process(process, 5)
        raise BenchError("cardflow token create did not finish within 60 s") from None
    token = out.decode().strip()
    if process.returncode != 0 or not token or len(token.split()) != 1:
        raise BenchError(
            f"cardflow token create failed (exit {process.returncode}): {err.decode()[-500:]}"
        )
    return token


async def start_server(
    home: Path, log_dir: Path, args: argparse.Namespace, env: dict[str, str]
) -> Server:
    port = free_port()
    command = [*cardflow_command(), "serve", "--host", "127.0.0.1", "--port", str(port)]
    if args.profile:
        # cProfile writes its file when the server exits normally (SIGTERM → graceful stop).
        command = [sys.executable, "-m", "cProfile", "-o", str(args.profile), *command]
    log_path = log_dir / "serve.log"
    log_file = log_path.open("w")
    process = await asyncio.create_subprocess_exec(
        *command, env=env, stdout=log_file, stderr=asyncio.subprocess.STDOUT
    )
    server = Server(process, f"http://127.0.0.1:{port}", home, log_path, log_file, env)
    async with aiohttp.ClientSession() as session:
        for _attempt in range(300):  # bounded: at most ~30 s
            if process.returncode is not None:
                break
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{server.base}/healthz") as resp:
                    if resp.status == 200:
                        return server
            await asyncio.sleep(0.1)
    await stop_server(server, 5)
    raise BenchError(f"cardflow serve did not answer /healthz:\n{log_tail(log_path)}")


async def stop_server(server: Server, timeout: float) -> bool:
    """Stop the server (SIGINT, then SIGKILL after ``timeout`` s); True when it exited by
    itself, i.e. after its lifespan shutdown, which flushes the run writer.

    SIGINT rather than SIGTERM: uvicorn shuts down the same way for both, then re-raises the
    signal; a re-raised SIGTERM would kill a cProfile'd server before it writes its stats.
    """
    graceful = True
    if server.process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            server.process.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(server.process.wait(), timeout=timeout)
        except TimeoutError:
            graceful = False
            with contextlib.suppress(ProcessLookupError):
                server.process.kill()
            await server.process.wait()
    server.log_file.close()
    return graceful


def log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no server log)"


# -- CPU accounting (Linux /proc; NaN elsewhere) -----------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _stat_cpu(path: Path) -> float:
    """utime + stime in seconds from a /proc/…/stat file."""
    fields = path.read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def server_cpu(pid: int) -> tuple[float, float]:
    """(CPU seconds of the whole process, of its main thread: the event loop)."""
    try:
        return _stat_cpu(Path(f"/proc/{pid}/stat")), _stat_cpu(Path(f"/proc/{pid}/task/{pid}/stat"))
    except (OSError, IndexError, ValueError):
        return float("nan"), float("nan")


# -- the flows -------------------------------------------------------------------------


def flow_documents(upstream: str, slow_seconds: float) -> dict[str, dict[str, Any]]:
    def endpoint(alias: str) -> dict[str, str]:
        return {"type": "api_endpoint", "alias": alias, "security": "none"}

    def get_flow(name: str, alias: str, save_data: bool) -> dict[str, Any]:
        return {
            "name": name,
            "trigger": endpoint(alias),
            "save_data": save_data,
            "cards": [
                {"id": "me", "card": "api_connector.get", "inputs": {"url": f"{upstream}/me"}},
                {
                    "id": "out",
                    "card": "flow.return",
                    "inputs": {"name": "{{ steps.me.body.name }}"},
                },
            ],
        }

    return {
        "get": get_flow("bench get", "bench-get", save_data=False),
        "get-saved": get_flow("bench get saved", "bench-get-saved", save_data=True),
        "empty": {
            "name": "bench empty",
            "trigger": endpoint("bench-empty"),
            "save_data": False,
            "cards": [{"id": "out", "card": "flow.return", "inputs": {}}],
        },
        "close": {
            "name": "bench close",
            "trigger": endpoint("bench-close"),
            "save_data": False,
            "cards": [
                {
                    "id": "ack",
                    "card": "api_connector.close",
                    "inputs": {"status_code": 200, "body": {"accepted": True}},
                },
                {
                    "id": "slow",
                    "card": "api_connector.get",
                    "inputs": {"url": f"{upstream}/slow?seconds={slow_seconds:g}"},
                },
            ],
        },
    }


CARDS_PER_RUN = {"get": 2, "get-saved": 2, "empty": 1, "close": 2}


async def create_flow(
    session: aiohttp.ClientSession, base: str, token: str, document: dict[str, Any]
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    async with session.post(f"{base}/api/v1/flows", json=document, headers=headers) as resp:
        text = await resp.text()
        if resp.status != 201:
            raise BenchError(f"POST /api/v1/flows {document['name']!r}: {resp.status} {text}")
        created: dict[str, Any] = json.loads(text)
        return created


# -- load ------------------------------------------------------------------------------


def json_call(
    session: aiohttp.ClientSession, method: str, url: str, expected: dict[str, Any]
) -> Call:
    async def call() -> None:
        async with session.request(method, url) as resp:
            status = resp.status
            raw = await resp.read()
        if status != 200:
            raise BadAnswer(f"status {status}, body {raw[:200]!r}")
        body = json.loads(raw)
        if body != expected:
            raise BadAnswer(f"unexpected body {raw[:200]!r}")

    return call


@dataclass
class Target:
    key: str
    label: str
    requests: int
    call: Call
    flow: str | None = None  # key in flow_documents(), None for the raw upstream
    upstream_route: str | None = None  # the upstream counter each call should bump once
    issued: int = 0  # calls sent so far, warm-up included (runs expected in the history)


@dataclass
class Round:
    requests: int
    completed: int
    failures: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    server_cpu: float  # share of one core the cardflow process used (all threads)
    server_loop_cpu: float  # … its main thread (the event loop)
    server_us_per_call: float  # cardflow's CPU time per completed call, in microseconds
    upstream_cpu: float
    client_cpu: float
    upstream_hits: int
    first_error: str | None = None


@dataclass
class Summary:
    key: str
    label: str
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    failures: int
    server_cpu: float
    server_loop_cpu: float
    server_us_per_call: float
    upstream_cpu: float
    client_cpu: float
    rounds_rps: list[float] = field(default_factory=list)
    rounds_p99_ms: list[float] = field(default_factory=list)
    timed_out: bool = False


async def measure(
    target: Target,
    concurrency: int,
    time_limit: float,
    admin: aiohttp.ClientSession,
    upstream: str,
    server_pid: int,
) -> Round:
    before = await upstream_stats(admin, upstream)
    srv_before, loop_before = server_cpu(server_pid)
    cl_before = time.process_time()
    latencies, failures, first_error, seconds = await drive(
        target.call, target.requests, concurrency, time_limit
    )
    target.issued += len(latencies)
    cl_after = time.process_time()
    srv_after, loop_after = server_cpu(server_pid)
    after = await upstream_stats(admin, upstream)
    latencies.sort()
    completed = len(latencies)
    hits = (
        after[target.upstream_route] - before[target.upstream_route] if target.upstream_route else 0
    )
    return Round(
        requests=target.requests,
        completed=completed,
        failures=failures,
        seconds=seconds,
        rps=completed / seconds if seconds > 0 else 0.0,
        p50_ms=percentile(latencies, 0.50) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        server_cpu=(srv_after - srv_before) / seconds,
        server_loop_cpu=(loop_after - loop_before) / seconds,
        server_us_per_call=(srv_after - srv_before) / max(completed, 1) * 1e6,
        upstream_cpu=(after["cpu_seconds"] - before["cpu_seconds"]) / seconds,
        client_cpu=(cl_after - cl_before) / seconds,
        upstream_hits=hits,
        first_error=first_error,
    )


def summarize(target: Target, rounds: list[Round]) -> Summary:
    def median(values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")

    return Summary(
        key=target.key,
        label=target.label,
        requests=target.requests,
        rps=median([r.rps for r in rounds]),
        p50_ms=median([r.p50_ms for r in rounds]),
        p99_ms=median([r.p99_ms for r in rounds]),
        failures=sum(r.failures for r in rounds),
        server_cpu=median([r.server_cpu for r in rounds]),
        server_loop_cpu=median([r.server_loop_cpu for r in rounds]),
        server_us_per_call=median([r.server_us_per_call for r in rounds]),
        upstream_cpu=median([r.upstream_cpu for r in rounds]),
        client_cpu=median([r.client_cpu for r in rounds]),
        rounds_rps=[round(r.rps, 1) for r in rounds],
        rounds_p99_ms=[round(r.p99_ms, 2) for r in rounds],
        timed_out=any(r.completed < r.requests for r in rounds),
    )


async def drain_slow(admin: aiohttp.ClientSession, upstream: str, limit: float) -> dict[str, Any]:
    """Wait (at most ``limit`` s) until every slow call the Close flows started was answered,
    so runs still going after their Close do not overlap the next measurement."""
    deadline = time.monotonic() + limit
    while True:
        stats = await upstream_stats(admin, upstream)
        if stats["slow_done"] >= stats["slow"] or time.monotonic() > deadline:
            return stats
        await asyncio.sleep(0.1)


async def settle(pid: int, limit: float = 10.0) -> None:
    """Wait (at most ``limit`` s) until the server is idle (< 5 % of a core over 0.1 s): runs
    answered by the upstream still have their last card and their record to finish."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before, _ = server_cpu(pid)
        await asyncio.sleep(0.1)
        after, _ = server_cpu(pid)
        if not after - before >= 0.005:  # NaN (no /proc) ends the wait too
            return


# -- the run history (c) -----------------------------------------------------------------


@dataclass
class HistoryCount:
    key: str
    flow_id: str
    invokes_sent: int
    runs: int
    succeeded: int
    run_cards: int
    expected_cards: int
    cards_with_data: int  # run_cards rows whose inputs or outputs were kept

    @property
    def ok(self) -> bool:
        return (
            self.runs == self.invokes_sent
            and self.succeeded == self.runs
            and self.run_cards == self.expected_cards
        )


def count_history(db_path: Path, flows: dict[str, str], sent: dict[str, int]) -> list[HistoryCount]:
    counts: list[HistoryCount] = []
    with contextlib.closing(sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)) as db:
        for key, flow_id in flows.items():
            runs, succeeded = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(status = 'succeeded'), 0) FROM runs "
                "WHERE flow_id = ?",
                (flow_id,),
            ).fetchone()
            cards, with_data = db.execute(
                "SELECT COUNT(*), COALESCE(SUM((c.inputs IS NOT NULL AND c.inputs != 'null') "
                "OR (c.outputs IS NOT NULL AND c.outputs != 'null')), 0) "
                "FROM run_cards c JOIN runs r ON r.id = c.run_id WHERE r.flow_id = ?",
                (flow_id,),
            ).fetchone()
            counts.append(
                HistoryCount(
                    key=key,
                    flow_id=flow_id,
                    invokes_sent=sent[key],
                    runs=int(runs),
                    succeeded=int(succeeded),
                    run_cards=int(cards),
                    expected_cards=sent[key] * CARDS_PER_RUN[key],
                    cards_with_data=int(with_data),
                )
            )
    return counts


# -- reporting -------------------------------------------------------------------------


def environment(args: argparse.Namespace) -> dict[str, Any]:
    names = ("cardflow", "aiohttp", "fastapi", "starlette", "uvicorn", "sqlalchemy", "pydantic")
    versions: dict[str, str] = {}
    for name in names:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = "not installed"
    return {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "versions": versions,
        "concurrency": args.concurrency,
        "rounds": args.rounds,
        "warmup": args.warmup,
        "requests": args.requests,
        "close_requests": args.close_requests,
        "slow_seconds": args.slow_seconds,
        "server_packages": {},  # filled in by run(): what the server process finds
        "max_concurrent_runs": args.max_runs,
        "log_level": args.log_level or "(server default)",
        "server_env": args.server_env,
        "profile": str(args.profile) if args.profile else None,
    }


def print_header(env: dict[str, Any]) -> None:
    versions = ", ".join(f"{name} {version}" for name, version in env["versions"].items())
    print(f"cpu_count {env['cpu_count']}, Python {env['python']} ({env['platform']})")
    print(versions)
    server_side = ", ".join(f"{name} {version}" for name, version in env["server_packages"].items())
    print(f"the server process finds: {server_side or '(unknown)'}")
    print(
        f"concurrency {env['concurrency']}, {env['rounds']} interleaved rounds, warm-up "
        f"{env['warmup']} requests per target; medians over rounds. Server: cardflow serve, "
        f"CARDFLOW_MAX_CONCURRENT_RUNS={env['max_concurrent_runs']}, "
        f"log level {env['log_level']}" + (", under cProfile" if env["profile"] else "")
    )
    if env["server_env"]:
        extra = " ".join(f"{name}={value}" for name, value in env["server_env"].items())
        print(f"extra server environment: {extra}")


def print_table(title: str, summaries: list[Summary], baseline: Summary | None) -> None:
    print()
    print(title)
    header = (
        f"{'target':<34} {'N':>5} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} {'vs raw':>6} "
        f"{'fails':>5} {'srv cpu':>7} {'loop':>5} {'srv us/req':>10} {'up cpu':>6} "
        f"{'cl cpu':>6}  rounds req/s"
    )
    print(header)
    print("-" * len(header))
    for s in summaries:
        ratio = f"{s.rps / baseline.rps:.3f}" if baseline and baseline.rps else "-"
        rounds = " ".join(f"{rps:.0f}" for rps in s.rounds_rps)
        srv = f"{s.server_cpu:>7.0%} {s.server_loop_cpu:>5.0%} {s.server_us_per_call:>10.0f}"
        if s.key == "raw":
            srv = f"{'-':>7} {'-':>5} {'-':>10}"
        print(
            f"{s.label:<34} {s.requests:>5} {s.rps:>7.0f} {s.p50_ms:>7.2f} {s.p99_ms:>7.2f} "
            f"{ratio:>6} {s.failures:>5} {srv} {s.upstream_cpu:>6.0%} {s.client_cpu:>6.0%}  "
            f"{rounds}"
        )


def print_report(
    env: dict[str, Any],
    summaries: dict[str, Summary],
    history: list[HistoryCount],
    graceful: bool,
    slow_max_in_flight: int,
) -> None:
    print_header(env)
    raw = summaries["raw"]
    print_table(
        "(a) POST /invoke/{alias}: [API endpoint → api_connector.get /me → flow.return]",
        [summaries[k] for k in ("raw", "get", "get-saved")],
        raw,
    )
    print(
        "srv cpu: share of one core the cardflow process used (all threads); loop: its main "
        "(event-loop) thread;\nsrv us/req: cardflow's CPU time per answered request; "
        "up cpu / cl cpu: the upstream's / this load generator's share of a core."
    )
    print()
    for key in ("get", "get-saved"):
        s = summaries[key]
        print(
            f"{s.label}: {s.rps:.0f} flows/s = {s.rps / raw.rps:.3f} x raw aiohttp "
            f"({raw.rps:.0f} req/s); p50 {s.p50_ms:.2f} ms vs {raw.p50_ms:.2f} ms"
        )
    print(
        f"n8n reference (from BENCHMARKS.md, NOT measured in this run): {N8N_FLOWS_PER_S:.0f} "
        f"flows/s, p50 {N8N_P50_MS:.0f} ms, p99 {N8N_P99_MS:.0f} ms"
    )
    for key in ("get", "get-saved"):
        s = summaries[key]
        multiple = s.rps / N8N_FLOWS_PER_S
        verdict = (
            "ok"
            if multiple >= TARGET_MULTIPLE_OF_N8N and s.p50_ms < TARGET_P50_MS
            else "BELOW TARGET"
        )
        print(
            f"  {s.label}: {multiple:.1f}x n8n's flows/s (target ≥ "
            f"{TARGET_MULTIPLE_OF_N8N:.0f}x), p50 {s.p50_ms:.2f} ms (target < "
            f"{TARGET_P50_MS:.0f} ms; n8n's is {N8N_P50_MS / s.p50_ms:.0f}x longer)  {verdict}"
        )
    get, saved = summaries["get"], summaries["get-saved"]
    target_rps = TARGET_MULTIPLE_OF_N8N * N8N_FLOWS_PER_S
    low, high = (target_rps / rps for rps in reversed(REFERENCE_RAW_RPS))
    print(
        f"the same target as a share of raw aiohttp (BENCHMARKS.md: {target_rps:,.0f} flows/s "
        f"vs {REFERENCE_RAW_RPS[0]:,.0f}-{REFERENCE_RAW_RPS[1]:,.0f} req/s raw) is "
        f"{low:.3f}-{high:.3f}x raw; this run: {get.rps / raw.rps:.3f}x (save_data false), "
        f"{saved.rps / raw.rps:.3f}x (true); raw here: {raw.rps:,.0f} req/s"
    )
    print(
        f"Little's law, closed loop at concurrency {env['concurrency']}: mean latency = "
        f"{env['concurrency']} / throughput, so {target_rps:,.0f} flows/s means "
        f"~{env['concurrency'] / target_rps * 1000:.0f} ms, and p50 < {TARGET_P50_MS:.0f} ms "
        f"needs roughly {env['concurrency'] / TARGET_P50_MS * 1000:,.0f} flows/s or more"
    )
    print(
        f"save_data true / false: {saved.rps / get.rps:.3f} of the flows/s, "
        f"{saved.server_us_per_call / get.server_us_per_call:.3f}x the server CPU per flow"
    )

    empty, close = summaries["empty"], summaries["close"]
    print_table(
        f"(b) Close: time to response, [API endpoint → api_connector.close → api_connector.get "
        f"/slow ({env['slow_seconds']:g} s)] vs [API endpoint → flow.return {{}}]",
        [empty, close],
        None,
    )
    print(
        f"Close / empty: p50 {close.p50_ms / empty.p50_ms:.2f}x, p99 "
        f"{close.p99_ms / empty.p99_ms:.2f}x  (p99 per round: empty "
        f"{' '.join(f'{v:.1f}' for v in empty.rounds_p99_ms)} ms, close "
        f"{' '.join(f'{v:.1f}' for v in close.rounds_p99_ms)} ms)"
    )
    print(
        f"The slow calls keep going after the answer: each Close round leaves "
        f"{env['close_requests']} runs waiting {env['slow_seconds']:g} s on the upstream "
        f"(most at once: {slow_max_in_flight}). The server runs with "
        f"CARDFLOW_MAX_CONCURRENT_RUNS={env['max_concurrent_runs']} (default 64) so none of "
        "them waits for a run slot, and the bench waits for them to finish after every Close "
        "round, so they never overlap another measurement."
    )

    print()
    print(
        "(c) run history, counted in the SQLite database after the server stopped"
        + ("" if graceful else " (it was KILLED: unflushed runs may be missing)")
    )
    header = (
        f"{'flow':<34} {'invokes':>8} {'runs':>7} {'succeeded':>9} {'run_cards':>9} "
        f"{'expected':>8} {'with data':>9}  ok"
    )
    print(header)
    print("-" * len(header))
    for h in history:
        label = summaries[h.key].label
        print(
            f"{label:<34} {h.invokes_sent:>8} {h.runs:>7} {h.succeeded:>9} {h.run_cards:>9} "
            f"{h.expected_cards:>8} {h.cards_with_data:>9}  {'yes' if h.ok else 'NO'}"
        )
    print(
        "invokes: requests sent, warm-up included; with data: run_cards rows that kept their "
        "inputs/outputs (save_data: true only)."
    )


def shout(message: str) -> None:
    bar = "!" * 78
    print(f"\n{bar}\n{message}\n{bar}\n", file=sys.stderr)


# -- main ------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="POST /invoke/{alias} through `cardflow serve` vs the upstream called "
        "directly; Close vs an empty flow; the run history it recorded."
    )

    def bounded(low: int, high: int) -> Callable[[str], int]:
        def parse(text: str) -> int:
            value = int(text)
            if not low <= value <= high:
                raise argparse.ArgumentTypeError(f"must be between {low} and {high}")
            return value

        return parse

    parser.add_argument("--requests", type=bounded(1, 200_000), default=5_000)
    parser.add_argument("--concurrency", type=bounded(1, 512), default=32)
    parser.add_argument("--rounds", type=bounded(1, 20), default=3)
    parser.add_argument("--warmup", type=bounded(0, 20_000), default=500)
    parser.add_argument(
        "--close-requests",
        type=bounded(1, 5_000),
        default=500,
        help="N per round for the Close and the empty flow (default 500)",
    )
    parser.add_argument(
        "--slow-seconds",
        type=float,
        default=2.0,
        help="how long the upstream's /slow takes, after the Close (default 2)",
    )
    parser.add_argument(
        "--max-runs",
        type=bounded(1, 100_000),
        default=None,
        help="CARDFLOW_MAX_CONCURRENT_RUNS for the bench server (default: enough for every "
        "Close run of a round at once, so none waits for a slot; 64 shows the distortion)",
    )
    parser.add_argument(
        "--log-level",
        default=None,
        help="CARDFLOW_LOG_LEVEL for the server (default: unset, the server's own default)",
    )
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an extra environment variable for cardflow serve (repeatable), e.g. a "
        "CARDFLOW_* setting, or PYTHONPATH to try a package in the server only",
    )
    parser.add_argument(
        "--round-timeout",
        type=float,
        default=120.0,
        help="seconds one target's round may take before it is cut short (default 120)",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="run the server under cProfile and write its stats to this file",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    server_env: dict[str, str] = {}
    for item in args.server_env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            parser.error(f"--server-env: expected NAME=VALUE, got {item!r}")
        server_env[name] = value
    args.server_env = server_env
    if not 0 < args.round_timeout <= 3600:
        parser.error("--round-timeout must be in (0, 3600]")
    if not 0 <= args.slow_seconds <= 30:
        parser.error("--slow-seconds must be between 0 and 30")
    if args.max_runs is None:
        # Every Close run of one round (or of the warm-up) may be waiting on /slow at once;
        # the bench drains them between rounds. Headroom for the workers' in-flight calls.
        args.max_runs = max(64, args.close_requests) + 2 * args.concurrency
    if args.profile is not None:
        args.profile = args.profile.resolve()
    return args


async def run(args: argparse.Namespace) -> int:
    env = environment(args)

    def log(message: str) -> None:
        if not args.json:
            print(message, file=sys.stderr)

    problems: list[str] = []

    def fail(message: str) -> None:
        problems.append(message)
        shout(message)

    per_round = 3 * args.round_timeout + 2 * (args.round_timeout + args.slow_seconds + 30)
    upstream = await start_upstream(600 + (args.rounds + 1) * per_round)
    log(f"upstream at {upstream.base} (pid {upstream.process.pid})")
    workdir = tempfile.TemporaryDirectory(prefix="cardflow-invoke-bench-")
    home = Path(workdir.name) / "home"
    home.mkdir()
    server_environment = server_env(home, args)
    server: Server | None = None
    graceful = False
    rounds: dict[str, list[Round]] = {}
    targets: dict[str, Target] = {}
    flow_ids: dict[str, str] = {}
    slow_max_in_flight = 0
    load = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0),
        timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT),
    )
    admin = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT))
    try:
        env["server_packages"] = await server_packages(server_environment)
        token = await mint_token(server_environment)
        server = await start_server(home, Path(workdir.name), args, server_environment)
        pid = server.process.pid
        log(f"cardflow serve at {server.base} (pid {pid}), CARDFLOW_HOME={home}")
        documents = flow_documents(upstream.base, args.slow_seconds)
        for key, document in documents.items():
            flow_ids[key] = (await create_flow(admin, server.base, token, document))["id"]

        def invoke(key: str, label: str, requests: int, expected: dict[str, Any]) -> Target:
            alias = documents[key]["trigger"]["alias"]
            call = json_call(load, "POST", f"{server.base}/invoke/{alias}", expected)
            route = {"get": "me", "get-saved": "me", "close": "slow"}.get(key)
            return Target(key, label, requests, call, flow=key, upstream_route=route)

        targets = {
            "raw": Target(
                "raw",
                "raw aiohttp GET /me (upstream)",
                args.requests,
                json_call(load, "GET", f"{upstream.base}/me", EXPECTED_ME),
                upstream_route="me",
            ),
            "get": invoke("get", "invoke get, save_data false", args.requests, EXPECTED_GET),
            "get-saved": invoke(
                "get-saved", "invoke get, save_data true", args.requests, EXPECTED_GET
            ),
            "empty": invoke("empty", "invoke empty (return {})", args.close_requests, {}),
            "close": invoke(
                "close", "invoke close → slow get", args.close_requests, EXPECTED_CLOSE
            ),
        }
        rounds = {key: [] for key in targets}

        # Warm-up, not counted (Close runs drained before anything is measured).
        for target in targets.values():
            warmup = args.warmup if target.key in ("raw", "get", "get-saved") else 0
            if target.key in ("empty", "close"):
                warmup = min(args.warmup, args.close_requests)
            if not warmup:
                continue
            log(f"warm-up: {target.label} ({warmup} requests)")
            latencies, failures, error, _ = await drive(
                target.call, warmup, args.concurrency, args.round_timeout
            )
            target.issued += len(latencies)
            if failures:
                fail(
                    f"{target.label}: {failures} of {len(latencies)} warm-up calls FAILED: {error}"
                )
        stats = await drain_slow(admin, upstream.base, args.slow_seconds + 60)
        slow_max_in_flight = max(slow_max_in_flight, int(stats["slow_max_in_flight"]))
        await settle(pid)

        for number in range(1, args.rounds + 1):
            for key in ("raw", "get", "get-saved", "empty", "close"):
                target = targets[key]
                result = await measure(
                    target, args.concurrency, args.round_timeout, admin, upstream.base, pid
                )
                rounds[key].append(result)
                log(
                    f"round {number}/{args.rounds} {target.label:<34} {result.rps:8.0f} req/s  "
                    f"p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:7.2f} ms  "
                    f"srv cpu {result.server_cpu:4.0%}  fails {result.failures}"
                )
                if result.failures:
                    fail(
                        f"{target.label}: {result.failures} of {result.completed} calls FAILED "
                        f"in round {number}; first: {result.first_error}"
                    )
                if result.completed < result.requests:
                    fail(
                        f"{target.label}: round {number} hit --round-timeout "
                        f"({args.round_timeout:g} s) after {result.completed} of "
                        f"{result.requests} calls"
                    )
                if key == "close":
                    stats = await drain_slow(admin, upstream.base, args.slow_seconds + 60)
                    slow_max_in_flight = max(slow_max_in_flight, int(stats["slow_max_in_flight"]))
                    await settle(pid)
                    if stats["slow_done"] < stats["slow"]:
                        fail("the Close runs' slow calls did not all finish in time")
                    if stats["slow"] != targets["close"].issued:
                        fail(
                            f"the upstream saw {stats['slow']} /slow calls for "
                            f"{targets['close'].issued} Close invokes"
                        )
                elif target.upstream_route and result.upstream_hits != result.completed:
                    fail(
                        f"{target.label}: the upstream served {result.upstream_hits} GET /me "
                        f"for {result.completed} calls in round {number}"
                    )
    except BenchError as exc:
        fail(f"the bench could not run: {exc}")
    finally:
        await load.close()
        await admin.close()
        if server is not None:
            # Graceful stop: runs finish (none should be left), the run writer flushes.
            graceful = await stop_server(server, 60)
            if not graceful:
                fail("cardflow serve did not stop within 60 s of SIGINT and was killed")
        await stop_process(upstream.process, 5)

    history: list[HistoryCount] = []
    db_path = home / "cardflow.db"
    if flow_ids and len(flow_ids) == len(CARDS_PER_RUN) and targets and db_path.exists():
        sent = {key: targets[key].issued for key in flow_ids}
        history = count_history(db_path, flow_ids, sent)
        for h in history:
            if not h.ok:
                fail(
                    f"run history of {h.key}: {h.runs} runs ({h.succeeded} succeeded), "
                    f"{h.run_cards} run_cards for {h.invokes_sent} invokes "
                    f"(expected {h.expected_cards} run_cards)"
                )
        saved = next(h for h in history if h.key == "get-saved")
        unsaved = [h for h in history if h.key != "get-saved"]
        if saved.cards_with_data != saved.run_cards:
            fail(f"save_data true kept data in {saved.cards_with_data} of {saved.run_cards} cards")
        if any(h.cards_with_data for h in unsaved):
            fail("a save_data false flow kept card inputs/outputs")
    if problems and server is not None:
        log(f"server log tail:\n{log_tail(server.log_path)}")
    workdir.cleanup()

    if not rounds or any(not values for values in rounds.values()):
        shout("NO FIGURES: " + "; ".join(problems))
        return 1
    summaries = {key: summarize(targets[key], rounds[key]) for key in targets}
    if args.json:
        report = {
            "environment": env,
            "n8n_reference": {
                "source": "BENCHMARKS.md (not measured in this run)",
                "flows_per_s": N8N_FLOWS_PER_S,
                "p50_ms": N8N_P50_MS,
                "p99_ms": N8N_P99_MS,
            },
            "targets": {key: asdict(s) for key, s in summaries.items()},
            "ratios": {
                "get_vs_raw": summaries["get"].rps / summaries["raw"].rps,
                "get_saved_vs_raw": summaries["get-saved"].rps / summaries["raw"].rps,
                "get_vs_n8n": summaries["get"].rps / N8N_FLOWS_PER_S,
                "get_saved_vs_n8n": summaries["get-saved"].rps / N8N_FLOWS_PER_S,
                "saved_vs_unsaved_rps": summaries["get-saved"].rps / summaries["get"].rps,
                "close_vs_empty_p50": summaries["close"].p50_ms / summaries["empty"].p50_ms,
                "close_vs_empty_p99": summaries["close"].p99_ms / summaries["empty"].p99_ms,
            },
            "rounds": {key: [asdict(r) for r in values] for key, values in rounds.items()},
            "slow_max_in_flight": slow_max_in_flight,
            "history": [{**asdict(h), "ok": h.ok} for h in history],
            "server_stopped_gracefully": graceful,
            "problems": problems,
        }
        print(json.dumps(report, indent=2))
    else:
        print_report(env, summaries, history, graceful, slow_max_in_flight)
    if problems:
        shout(f"{len(problems)} PROBLEM(S): the figures above are not trustworthy")
        return 1
    return 0


def main() -> None:
    sys.exit(asyncio.run(run(parse_args())))


if __name__ == "__main__":
    main()
