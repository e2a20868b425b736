"""What the benchmarks share: the upstream process, the load driver, percentiles."""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

UPSTREAM = Path(__file__).with_name("_upstream.py")

Call = Callable[[], Awaitable[None]]
"""One request; returns when the answer was checked, raises when it was wrong."""


class BadAnswer(Exception):
    """A call came back, but not with the expected answer."""


class BenchError(Exception):
    """The bench could not set itself up (a process did not start, a flow was refused…)."""


@dataclass
class Upstream:
    process: asyncio.subprocess.Process
    base: str


async def stop_process(process: asyncio.subprocess.Process, timeout: float) -> None:
    """Terminate, then kill after ``timeout`` seconds."""
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.terminate()
    try:
        await asyncio.wait_for(process.wait(), timeout=timeout)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


async def start_upstream(max_seconds: float) -> Upstream:
    """Run bench/_upstream.py in its own process (its own core); wait until it answers."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(UPSTREAM),
        "--port",
        "0",
        "--max-seconds",
        str(max_seconds),
        stdout=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        line = (await asyncio.wait_for(process.stdout.readline(), timeout=15)).decode()
    except TimeoutError:
        line = ""
    if not line.startswith("LISTENING "):
        await stop_process(process, 5)
        raise BenchError(f"the upstream did not start: {line!r}")
    upstream = Upstream(process, f"http://127.0.0.1:{int(line.split()[1])}")
    async with aiohttp.ClientSession() as session:
        for _attempt in range(100):  # bounded: at most ~10 s
            with contextlib.suppress(aiohttp.ClientError):
                async with session.get(f"{upstream.base}/stats") as resp:
                    if resp.status == 200:
                        return upstream
            await asyncio.sleep(0.1)
    await stop_process(process, 5)
    raise BenchError(f"the upstream at {upstream.base} does not answer")


async def upstream_stats(session: aiohttp.ClientSession, base: str) -> dict[str, Any]:
    async with session.get(f"{base}/stats") as resp:
        resp.raise_for_status()
        stats: dict[str, Any] = await resp.json()
        return stats


def percentile(sorted_values: list[float], fraction: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


async def drive(
    call: Call, requests: int, concurrency: int, time_limit: float
) -> tuple[list[float], int, str | None, float]:
    """``requests`` calls by ``concurrency`` workers pulling from a shared counter; at most
    ``time_limit`` seconds. Returns (latencies, failures, first error, seconds); every
    issued call adds one latency."""
    issued = 0
    failures = 0
    first_error: str | None = None
    latencies: list[float] = []
    perf = time.perf_counter
    deadline = perf() + time_limit

    async def worker() -> None:
        nonlocal issued, failures, first_error
        while issued < requests and perf() < deadline:
            issued += 1
            started = perf()
            try:
                await call()
            except Exception as exc:  # every failure is counted and reported
                failures += 1
                if first_error is None:
                    first_error = f"{type(exc).__name__}: {exc}"
            latencies.append(perf() - started)

    started = perf()
    await asyncio.gather(*(worker() for _ in range(min(concurrency, max(requests, 1)))))
    return latencies, failures, first_error, perf() - started
