"""How much does a cardflow card call cost over a raw HTTP client? One run, same upstream.

    python bench/card_overhead.py [--requests 20000] [--concurrency 32] [--rounds 3] [--json]

N authenticated ``GET /me`` calls against a tiny aiohttp upstream (bench/_upstream.py, in its
own process) by:

- raw ``aiohttp.ClientSession`` adding the ``Authorization: Basic …`` header itself;
- plain ``httpx.AsyncClient`` (fewer requests: it is slow under concurrency);
- ``httpx.AsyncClient`` over ``httpx_aiohttp.AiohttpTransport``;
- cardflow's library API (``run_card_async("api_connector.get", …)``) with a Basic, a
  Custom Header and a client-credentials connection (token from the upstream's ``/token``).

Every client runs at the same concurrency (C worker tasks pulling from a shared counter),
after an uncounted warm-up; rounds are interleaved (A, B, C…, A, B, C…) so machine noise
hits all of them alike, and the median round is reported. Every call's answer is checked;
any failure is reported loudly and makes the exit status 1.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from importlib import metadata
from typing import Any

import aiohttp
import httpx
import httpx_aiohttp

import cardflow
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

USERNAME, PASSWORD = "u", "p"
BASIC_HEADER = "Basic " + base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode("ascii")
EXPECTED_BODY = {"id": 1, "name": "bench"}
REQUEST_TIMEOUT = 30.0
TARGET_RATIO = 0.80


@dataclass
class Client:
    key: str
    label: str
    requests: int
    call: Call


@dataclass
class Round:
    requests: int
    completed: int
    failures: int
    seconds: float
    rps: float
    p50_ms: float
    p99_ms: float
    upstream_cpu: float  # share of one core the upstream process used during the round
    client_cpu: float  # same for this process (all its threads)
    cpu_us_per_call: float  # this process's CPU time per completed call, in microseconds
    upstream_hits: int  # GET /me the upstream served during the round
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
    upstream_cpu: float
    client_cpu: float
    cpu_us_per_call: float
    vs_aiohttp: float | None = None
    cpu_vs_aiohttp: float | None = None  # raw aiohttp's CPU per call / this client's
    # The same two ratios taken round by round (each round's raw aiohttp against this
    # client's run just after it), then the median: steadier when the box is busy.
    paired_vs_aiohttp: float | None = None
    paired_cpu_vs_aiohttp: float | None = None
    vs_httpx: float | None = None
    rounds_rps: list[float] = field(default_factory=list)
    timed_out: bool = False


# -- upstream process ------------------------------------------------------------------


# -- clients ---------------------------------------------------------------------------


def check_body(status: int, body: Any) -> None:
    if status != 200 or body != EXPECTED_BODY:
        raise BadAnswer(f"status {status}, body {str(body)[:200]!r}")


def aiohttp_call(session: aiohttp.ClientSession, url: str) -> Call:
    headers = {"Authorization": BASIC_HEADER}

    async def call() -> None:
        async with session.get(url, headers=headers) as resp:
            check_body(resp.status, json.loads(await resp.read()))

    return call


def httpx_call(client: httpx.AsyncClient, url: str) -> Call:
    async def call() -> None:
        resp = await client.get(url)
        check_body(resp.status_code, resp.json())

    return call


def cardflow_call(cf: cardflow.Cardflow, connection: str, url: str) -> Call:
    inputs = {"url": url}

    async def call() -> None:
        result = await cf.run_card_async("api_connector.get", connection=connection, inputs=inputs)
        if not result.ok or result.outputs is None:
            raise BadAnswer(f"card failed: {result.error}")
        check_body(result.status_code or 0, result.outputs["body"])

    return call


def open_cardflow(home: str, base: str) -> cardflow.Cardflow:
    cf = cardflow.open(home=home)
    cf.connections.create("bench", "basic", {"username": USERNAME, "password": PASSWORD})
    cf.connections.create(
        "bench-header", "custom", {"header_name": "X-Api-Key", "header_value": "k"}
    )
    cf.connections.create(
        "bench-cc",
        "client_credentials",
        {"token_url": f"{base}/token", "client_id": "bench", "client_secret": "s"},
    )
    return cf


# -- measuring -------------------------------------------------------------------------


async def measure(
    client: Client,
    concurrency: int,
    time_limit: float,
    stats_session: aiohttp.ClientSession,
    base: str,
) -> Round:
    before = await upstream_stats(stats_session, base)
    cpu_before = time.process_time()
    latencies, failures, first_error, seconds = await drive(
        client.call, client.requests, concurrency, time_limit
    )
    cpu_after = time.process_time()
    after = await upstream_stats(stats_session, base)
    latencies.sort()
    return Round(
        requests=client.requests,
        completed=len(latencies),
        failures=failures,
        seconds=seconds,
        rps=len(latencies) / seconds if seconds > 0 else 0.0,
        p50_ms=percentile(latencies, 0.50) * 1000,
        p99_ms=percentile(latencies, 0.99) * 1000,
        upstream_cpu=(after["cpu_seconds"] - before["cpu_seconds"]) / seconds,
        client_cpu=(cpu_after - cpu_before) / seconds,
        cpu_us_per_call=(cpu_after - cpu_before) / max(len(latencies), 1) * 1e6,
        upstream_hits=after["me"] - before["me"],
        first_error=first_error,
    )


def summarize(client: Client, rounds: list[Round]) -> Summary:
    def median(values: Iterator[float]) -> float:
        return statistics.median(list(values))

    return Summary(
        key=client.key,
        label=client.label,
        requests=client.requests,
        rps=median(r.rps for r in rounds),
        p50_ms=median(r.p50_ms for r in rounds),
        p99_ms=median(r.p99_ms for r in rounds),
        failures=sum(r.failures for r in rounds),
        upstream_cpu=median(r.upstream_cpu for r in rounds),
        client_cpu=median(r.client_cpu for r in rounds),
        cpu_us_per_call=median(r.cpu_us_per_call for r in rounds),
        rounds_rps=[round(r.rps, 1) for r in rounds],
        timed_out=any(r.completed < r.requests for r in rounds),
    )


# -- reporting -------------------------------------------------------------------------


def environment(args: argparse.Namespace) -> dict[str, Any]:
    names = ("cardflow", "aiohttp", "httpx", "httpx-aiohttp", "yarl", "multidict", "pydantic")
    return {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "versions": {name: metadata.version(name) for name in names},
        "concurrency": args.concurrency,
        "rounds": args.rounds,
        "warmup": args.warmup,
    }


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def print_table(env: dict[str, Any], summaries: list[Summary], token_requests: int) -> None:
    versions = ", ".join(f"{name} {version}" for name, version in env["versions"].items())
    print(f"cpu_count {env['cpu_count']}, Python {env['python']} ({env['platform']})")
    print(versions)
    print(
        f"concurrency {env['concurrency']}, {env['rounds']} interleaved rounds, "
        f"warm-up {env['warmup']} requests per client; medians over rounds"
    )
    print()
    header = (
        f"{'client':<26} {'N':>6} {'req/s':>7} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'vs aiohttp':>10} {'vs httpx':>8} {'fails':>5} "
        f"{'us/call':>7} {'cpu vs aiohttp':>14} {'up cpu':>6} {'cl cpu':>6}  rounds req/s"
    )
    print(header)
    print("-" * len(header))
    for s in summaries:
        rounds = " ".join(f"{rps:.0f}" for rps in s.rounds_rps)
        print(
            f"{s.label:<26} {s.requests:>6} {s.rps:>7.0f} {s.p50_ms:>7.2f} {s.p99_ms:>7.2f} "
            f"{fmt_ratio(s.vs_aiohttp):>10} {fmt_ratio(s.vs_httpx):>8} {s.failures:>5} "
            f"{s.cpu_us_per_call:>7.0f} {fmt_ratio(s.cpu_vs_aiohttp):>14} "
            f"{s.upstream_cpu:>6.0%} {s.client_cpu:>6.0%}  {rounds}"
        )
    print()
    print(
        "vs aiohttp / vs httpx: req/s ratios. us/call: this process's CPU time per call "
        "(all threads);\ncpu vs aiohttp: raw aiohttp's us/call divided by this client's "
        "(steadier than req/s on a busy box).\nup cpu / cl cpu: share of one core used by "
        "the upstream process / by this process."
    )
    by_key = {s.key: s for s in summaries}
    if "cardflow-cc" in by_key:
        print(
            f"token requests the upstream served during the whole run: {token_requests} "
            "(the client-credentials token is fetched once, then cached)"
        )
    if "aiohttp" in by_key:
        for key in ("cardflow-basic", "cardflow-header", "cardflow-cc"):
            if key not in by_key:
                continue
            s = by_key[key]
            ratios = (s.vs_aiohttp or 0.0, s.cpu_vs_aiohttp or 0.0)
            verdict = "ok" if min(ratios) >= TARGET_RATIO else "BELOW TARGET"
            print(
                f"{s.label} / raw aiohttp = {ratios[0]:.2f} by req/s, {ratios[1]:.2f} by CPU "
                f"per call  (target ≥ {TARGET_RATIO:.2f} for both) {verdict}; round by round: "
                f"{fmt_ratio(s.paired_vs_aiohttp)} by req/s, "
                f"{fmt_ratio(s.paired_cpu_vs_aiohttp)} by CPU"
            )


def shout(message: str) -> None:
    bar = "!" * 78
    print(f"\n{bar}\n{message}\n{bar}\n", file=sys.stderr)


# -- main ------------------------------------------------------------------------------


CLIENT_KEYS = (
    "aiohttp",
    "httpx",
    "httpx-aiohttp",
    "cardflow-basic",
    "cardflow-header",
    "cardflow-cc",
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="cardflow card calls vs raw HTTP clients, same upstream, same concurrency."
    )

    def bounded(low: int, high: int) -> Callable[[str], int]:
        def parse(text: str) -> int:
            value = int(text)
            if not low <= value <= high:
                raise argparse.ArgumentTypeError(f"must be between {low} and {high}")
            return value

        return parse

    parser.add_argument("--requests", type=bounded(1, 1_000_000), default=20_000)
    parser.add_argument(
        "--httpx-requests",
        type=bounded(1, 1_000_000),
        default=3_000,
        help="N for plain httpx, which is slow under concurrency (default 3000)",
    )
    parser.add_argument("--concurrency", type=bounded(1, 1024), default=32)
    parser.add_argument("--rounds", type=bounded(1, 50), default=3)
    parser.add_argument("--warmup", type=bounded(0, 100_000), default=500)
    parser.add_argument(
        "--round-timeout",
        type=float,
        default=120.0,
        help="seconds one client's round may take before it is cut short (default 120)",
    )
    parser.add_argument(
        "--only",
        default=",".join(CLIENT_KEYS),
        help=f"comma-separated clients to run (default all: {','.join(CLIENT_KEYS)})",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    args.only = [key.strip() for key in args.only.split(",") if key.strip()]
    unknown = sorted(set(args.only) - set(CLIENT_KEYS))
    if unknown or not args.only:
        parser.error(f"--only: unknown client(s) {unknown}; choose from {list(CLIENT_KEYS)}")
    if not 0 < args.round_timeout <= 3600:
        parser.error("--round-timeout must be in (0, 3600]")
    return args


async def run(args: argparse.Namespace) -> int:
    env = environment(args)
    max_seconds = 600 + args.rounds * len(args.only) * args.round_timeout
    upstream = await start_upstream(max_seconds)
    url = f"{upstream.base}/me"
    log = (lambda message: None) if args.json else (lambda m: print(m, file=sys.stderr))
    log(f"upstream at {upstream.base} (pid {upstream.process.pid})")

    limits = httpx.Limits(
        max_connections=args.concurrency, max_keepalive_connections=args.concurrency
    )
    auth_headers = {"Authorization": BASIC_HEADER}
    home = tempfile.TemporaryDirectory(prefix="cardflow-bench-")
    stats_session = aiohttp.ClientSession()
    raw_session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0),
        timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT),
    )
    plain_httpx = httpx.AsyncClient(headers=auth_headers, limits=limits, timeout=REQUEST_TIMEOUT)
    httpx_over_aiohttp = httpx.AsyncClient(
        headers=auth_headers,
        timeout=REQUEST_TIMEOUT,
        transport=httpx_aiohttp.AiohttpTransport(limits=limits),
    )
    cf = open_cardflow(home.name, upstream.base)
    every = {
        "aiohttp": Client("aiohttp", "raw aiohttp", args.requests, aiohttp_call(raw_session, url)),
        "httpx": Client("httpx", "plain httpx", args.httpx_requests, httpx_call(plain_httpx, url)),
        "httpx-aiohttp": Client(
            "httpx-aiohttp",
            "httpx + httpx-aiohttp",
            args.requests,
            httpx_call(httpx_over_aiohttp, url),
        ),
        "cardflow-basic": Client(
            "cardflow-basic", "cardflow (basic)", args.requests, cardflow_call(cf, "bench", url)
        ),
        "cardflow-header": Client(
            "cardflow-header",
            "cardflow (custom header)",
            args.requests,
            cardflow_call(cf, "bench-header", url),
        ),
        "cardflow-cc": Client(
            "cardflow-cc",
            "cardflow (client creds)",
            args.requests,
            cardflow_call(cf, "bench-cc", url),
        ),
    }
    clients = [every[key] for key in CLIENT_KEYS if key in args.only]
    rounds: dict[str, list[Round]] = {client.key: [] for client in clients}
    warmup_failures = 0
    try:
        for client in clients:
            log(f"warm-up: {client.label}")
            latencies, failures, error, _ = await drive(
                client.call, args.warmup, args.concurrency, args.round_timeout
            )
            warmup_failures += failures
            if failures:
                shout(
                    f"{client.label}: {failures} of {len(latencies)} warm-up calls FAILED: {error}"
                )
        for number in range(1, args.rounds + 1):
            for client in clients:
                result = await measure(
                    client, args.concurrency, args.round_timeout, stats_session, upstream.base
                )
                rounds[client.key].append(result)
                log(
                    f"round {number}/{args.rounds} {client.label:<26} {result.rps:8.0f} req/s  "
                    f"p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms  "
                    f"fails {result.failures}"
                )
                if result.failures:
                    shout(
                        f"{client.label}: {result.failures} of {result.completed} calls FAILED "
                        f"in round {number}; first: {result.first_error}"
                    )
                if result.completed < result.requests:
                    shout(
                        f"{client.label}: round {number} hit --round-timeout "
                        f"({args.round_timeout:g} s) after {result.completed} of "
                        f"{result.requests} calls"
                    )
                if result.upstream_hits != result.completed:
                    shout(
                        f"{client.label}: the upstream served {result.upstream_hits} GET /me "
                        f"for {result.completed} calls in round {number}"
                    )
        token_requests = int((await upstream_stats(stats_session, upstream.base))["token"])
    finally:
        await cf.aclose()
        cf.close()
        await raw_session.close()
        await plain_httpx.aclose()
        await httpx_over_aiohttp.aclose()
        await stats_session.close()
        await stop_process(upstream.process, 5)
        home.cleanup()

    summaries = [summarize(client, rounds[client.key]) for client in clients]
    by_key = {s.key: s for s in summaries}
    for s in summaries:
        if "aiohttp" in by_key and by_key["aiohttp"].rps:
            s.vs_aiohttp = s.rps / by_key["aiohttp"].rps
        if "aiohttp" in by_key and s.cpu_us_per_call:
            s.cpu_vs_aiohttp = by_key["aiohttp"].cpu_us_per_call / s.cpu_us_per_call
        if "aiohttp" in by_key and s.key != "aiohttp":
            pairs = list(zip(rounds["aiohttp"], rounds[s.key], strict=True))
            by_rps = [c.rps / a.rps for a, c in pairs if a.rps]
            by_cpu = [a.cpu_us_per_call / c.cpu_us_per_call for a, c in pairs if c.cpu_us_per_call]
            s.paired_vs_aiohttp = statistics.median(by_rps) if by_rps else None
            s.paired_cpu_vs_aiohttp = statistics.median(by_cpu) if by_cpu else None
        if "httpx" in by_key and by_key["httpx"].rps:
            s.vs_httpx = s.rps / by_key["httpx"].rps
    failures = warmup_failures + sum(s.failures for s in summaries)

    if args.json:
        report = {
            "environment": env,
            "clients": [asdict(s) for s in summaries],
            "rounds": {key: [asdict(r) for r in values] for key, values in rounds.items()},
            "token_requests": token_requests,
            "failures": failures,
            "target_ratio": TARGET_RATIO,
        }
        print(json.dumps(report, indent=2))
    else:
        print_table(env, summaries, token_requests)
    if failures:
        shout(f"{failures} CALLS FAILED: the figures above are not trustworthy")
        return 1
    if any(s.timed_out for s in summaries):
        shout("some rounds were cut short by --round-timeout")
        return 1
    return 0


def main() -> None:
    # Hermetic: cardflow settings come from this script, not from the environment.
    for name in [name for name in os.environ if name.startswith("CARDFLOW_")]:
        del os.environ[name]
    try:
        sys.exit(asyncio.run(run(parse_args())))
    except BenchError as exc:
        raise SystemExit(f"the bench could not run: {exc}") from None


if __name__ == "__main__":
    main()
