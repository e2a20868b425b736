"""Does one abusive request stall `cardflow serve`, or keep its memory? Issue 9's reliability bench.

    python bench/abuse.py [--only jmespath,self-loop,…] [--json]

Starts bench/_upstream.py and a real `cardflow serve` (fresh SQLite CARDFLOW_HOME, default
limits) as separate processes on 127.0.0.1, mints an API token, creates the flows, and
starts a poller process that GETs ``/healthz`` every ``--interval`` (10 ms) and reads the
server's VmRSS at each sample. Then, one scenario at a time (the quick ones are repeated
for ``--min-seconds`` so that there are samples to judge by):

- ``jmespath``: a Return input doubling its value 24 times
  (``@ | [@,@] | … | length(to_string(@))``); ``jmespath-cpu``: a filter over a
  1,000,000-item body that runs into the expression's time budget;
- ``body-api`` / ``body-api-length`` / ``body-api-token`` / ``body-login``: 300 MB streamed
  (chunked, or with its Content-Length) to ``/api/v1/connections`` without and with an API
  token, and to the ``/login`` form, never held in memory here;
- ``self-loop``: a flow POSTing to its own ``/invoke`` URL, 1 caller, then
  ``--loop-callers`` at once (``self-loop-many``); ``loop-ring``: ``--ring-flows`` flows each
  calling the next, ``--ring-callers`` at once; meanwhile another flow is invoked every
  20 ms and must be answered within a second (3 s during the ring: its refused nested
  calls hold every slot while their cards retry after Retry-After). Each caller's chain
  must end with a refused call relayed as a card failure (500, not internal_error): 508
  loop_detected past CARDFLOW_MAX_FLOW_DEPTH, or 503 busy (runs called by runs never wait
  for a slot);
- ``async-flood``: ``--async-calls`` (60) ``Prefer: respond-async`` invokes with 9 MiB
  bodies of a flow that waits on the upstream; every ``run_id`` is looked up once all are
  answered, then until its run ends;
- ``deep-json``: 100,000 levels of ``[[[…]]]`` to an invoke, to ``/api/v1/flows/import``
  (as the body, and as a JSON and a YAML flow file) and to ``/api/v1/connections``;
- ``for-each-1m``: a public save_data flow with For Each over ``{{ trigger.body.users }}``
  and 1,000,000 items; ``for-each-cap``: the same at the cap (10,000 items, one nested card
  each).

For each: what the abusive requests got (status and error type, checked against what
issue 9 asks for), ``/healthz`` p50/p99/max over the samples taken while it ran, p99
corrected for coordinated omission (p99*: the poller waits for each answer, so a stall
would otherwise count once), and the server's RSS before, at its peak and after (once the
server is idle again and ``--settle`` seconds later). A scenario PASSes when its answers are
the expected ones, healthz p99* < 100 ms and RSS after is within 50 MB of RSS before. Exit
status 1 when any scenario MISSes or the server died: these are findings, not flakes.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import http.client
import json
import os
import platform
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from _harness import BenchError, percentile, start_upstream, stop_process
from invoke import (
    Server,
    create_flow,
    log_tail,
    mint_token,
    server_cpu,
    start_server,
    stop_server,
)

MB = 1024 * 1024
P99_TARGET_MS = 100.0
RSS_TARGET_MB = 50.0
OTHER_TARGET_MS = 1000.0  # another flow's invoke while a loop runs: answered, not queued
# A ring of flows can take every run slot (each flow under its own limit); a nested call
# refused with 503 busy is retried by its card after Retry-After (1 s, 2 retries by default)
# while the ring's runs hold their slots, so another flow may wait that long.
RING_OTHER_TARGET_MS = OTHER_TARGET_MS + 2 * 1000.0
REQUEST_TIMEOUT = 120.0
CHUNK = b"x" * (256 * 1024)

# -- the /healthz poller (its own process, so this one's work never delays a sample) -------


def poll_forever(port: int, pid: int, interval: float) -> None:
    """Poller mode: one line per sample, ``start end status rss_kb`` (monotonic clock, shared
    by every process on the box), until stdin closes."""
    done = threading.Event()

    def watch_stdin() -> None:
        sys.stdin.read()
        done.set()

    threading.Thread(target=watch_stdin, daemon=True).start()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    out = sys.stdout
    while not done.is_set():
        started = time.monotonic()
        try:
            conn.request("GET", "/healthz")
            resp = conn.getresponse()
            resp.read()
            status = resp.status
        except (OSError, http.client.HTTPException):
            status = 0
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        ended = time.monotonic()
        out.write(f"{started:.6f} {ended:.6f} {status} {rss_kb(pid)}\n")
        out.flush()
        pause = interval - (ended - started)
        if pause > 0:
            time.sleep(pause)


def rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return -1


def rss_mb(pid: int) -> float:
    return rss_kb(pid) / 1024


@dataclass
class Sample:
    start: float
    end: float
    status: int
    rss_kb: int


class Poller:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.samples: list[Sample] = []
        self.reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, port: int, pid: int, interval: float) -> Poller:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--poll",
            f"{port}:{pid}:{interval}",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        return cls(process)

    async def _read(self) -> None:
        assert self.process.stdout is not None
        while line := await self.process.stdout.readline():
            start, end, status, kb = line.split()
            self.samples.append(Sample(float(start), float(end), int(status), int(kb)))

    async def wait_past(self, moment: float, limit: float = 120.0) -> None:
        """Until a sample started after ``moment`` has come back (a stalled one is counted)."""
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline and not (
            self.samples and self.samples[-1].start > moment
        ):
            await asyncio.sleep(0.02)

    def window(self, start: float, end: float) -> list[Sample]:
        """The samples in flight at any time between ``start`` and ``end``."""
        return [s for s in self.samples if s.end >= start and s.start <= end]

    async def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        await stop_process(self.process, 5)
        self.reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.reader


# -- a raw HTTP/1.1 client that streams a body it never holds ------------------------------


@dataclass
class Streamed:
    status: int
    headers: dict[str, str]
    body: bytes
    sent: int  # body bytes written before the answer came (or the server hung up)
    error: str | None = None


async def stream_post(
    port: int, path: str, headers: dict[str, str], total: int, *, chunked: bool
) -> Streamed:
    """POST ``total`` bytes of ``x`` generated chunk by chunk; stop sending when the answer
    arrives (a server that refuses early answers before the body is done)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {total}"
    head = [f"POST {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", framing, "Connection: close"]
    head += [f"{name}: {value}" for name, value in headers.items()]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
    answer = asyncio.create_task(read_response(reader))
    sent = 0
    error: str | None = None
    try:
        while sent < total and not answer.done():
            piece = CHUNK[: min(len(CHUNK), total - sent)]
            if chunked:
                writer.write(b"%x\r\n%b\r\n" % (len(piece), piece))
            else:
                writer.write(piece)
            drain = asyncio.ensure_future(writer.drain())
            await asyncio.wait({drain, answer}, return_when=asyncio.FIRST_COMPLETED)
            if not drain.done():
                drain.cancel()
                break
            drain.result()
            sent += len(piece)
        if sent >= total and chunked:
            writer.write(b"0\r\n\r\n")
    except (ConnectionError, OSError) as exc:
        error = f"{type(exc).__name__} after {sent:,} bytes"
    try:
        status, response_headers, body = await asyncio.wait_for(answer, REQUEST_TIMEOUT)
    except (TimeoutError, ConnectionError, OSError, ValueError) as exc:
        status, response_headers, body = 0, {}, b""
        error = error or f"no answer: {type(exc).__name__} {exc}"
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()
    return Streamed(status, response_headers, body, sent, error)


async def read_response(reader: asyncio.StreamReader) -> tuple[int, dict[str, str], bytes]:
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionResetError("the server closed the connection without answering")
    status = int(status_line.split()[1])
    headers: dict[str, str] = {}
    while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        body = b""
        while size := int((await reader.readline()).split(b";")[0], 16):
            body += await reader.readexactly(size)
            await reader.readline()
    else:
        body = await reader.read()
    return status, headers, body


# -- answers -----------------------------------------------------------------------------


def error_of(body: bytes) -> tuple[str, str]:
    """(type, message) of a cardflow error answer, or of a failed run's answer."""
    try:
        data = json.loads(body)
    except ValueError:
        return "(not JSON)", body[:120].decode("utf-8", "replace")
    if not isinstance(data, dict):
        return "(unexpected)", str(data)[:120]
    error = data.get("error")
    if isinstance(error, dict):
        return str(error.get("type", "?")), str(error.get("message", ""))
    return "(no error)", json.dumps(data)[:120]


def short(text: str, length: int = 110) -> str:
    text = " ".join(text.split())
    return text if len(text) <= length else text[: length - 1] + "…"


# -- the bench's state ---------------------------------------------------------------------


@dataclass
class Context:
    args: argparse.Namespace
    server: Server
    port: int
    token: str
    upstream: str
    session: aiohttp.ClientSession
    flows: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def base(self) -> str:
        return self.server.base

    @property
    def pid(self) -> int:
        return self.server.process.pid

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    async def post(
        self, path: str, body: bytes, headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        async with self.session.post(
            f"{self.base}{path}", data=body, headers=headers or {}
        ) as resp:
            return resp.status, dict(resp.headers), await resp.read()

    async def get_json(self, path: str) -> tuple[int, Any]:
        async with self.session.get(f"{self.base}{path}", headers=self.auth) as resp:
            raw = await resp.read()
            return resp.status, json.loads(raw) if raw else None


@dataclass
class Verdict:
    """What the abusive requests got: ``expected`` when it is what issue 9 asks for."""

    expected: bool
    result: str
    details: list[str] = field(default_factory=list)
    other_latencies: list[float] = field(default_factory=list)


Scenario = Callable[[Context], Awaitable[Verdict]]

# -- the flows -------------------------------------------------------------------------------

DOUBLINGS = 24


def flow_documents(base: str, upstream: str, args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    def flow(alias: str, cards: list[dict[str, Any]], save_data: bool = False) -> dict[str, Any]:
        return {
            "name": f"abuse {alias}",
            "trigger": {"type": "api_endpoint", "alias": alias, "security": "none"},
            "save_data": save_data,
            "cards": cards,
        }

    doubling = "@" + " | [@,@]" * DOUBLINGS + " | length(to_string(@))"
    ring = {
        f"ring-{i}": flow(
            f"abuse-ring-{i}",
            [
                {
                    "id": "next",
                    "card": "api_connector.post",
                    "inputs": {
                        "url": f"{base}/invoke/abuse-ring-{(i + 1) % args.ring_flows}",
                        "body": {},
                    },
                    "timeout": args.loop_timeout,
                }
            ],
        )
        for i in range(args.ring_flows)
    }
    return {
        **ring,
        "other": flow("abuse-other", [{"id": "out", "card": "flow.return", "inputs": {}}]),
        "jmespath": flow(
            "abuse-jmespath",
            [{"id": "out", "card": "flow.return", "inputs": {"n": f"{{{{ {doubling} }}}}"}}],
        ),
        "jmespath-cpu": flow(
            "abuse-jmespath-cpu",
            [
                {
                    "id": "out",
                    "card": "flow.return",
                    "inputs": {"n": "{{ length(trigger.body.users[?@ > `1`]) }}"},
                }
            ],
        ),
        "loop": flow(
            "abuse-loop",
            [
                {
                    "id": "again",
                    "card": "api_connector.post",
                    "inputs": {"url": f"{base}/invoke/abuse-loop", "body": {}},
                    "timeout": args.loop_timeout,
                }
            ],
        ),
        "slow": flow(
            "abuse-slow",
            [
                {
                    "id": "wait",
                    "card": "api_connector.get",
                    "inputs": {"url": f"{upstream}/slow?seconds={args.slow_seconds:g}"},
                }
            ],
        ),
        "for-each": flow(
            "abuse-for-each",
            [
                {
                    "id": "each",
                    "card": "list.for_each",
                    "inputs": {
                        "list": "{{ trigger.body.users }}",
                        "cards": [
                            {
                                "id": "item",
                                "card": "object.construct",
                                "inputs": {"user": "{{ loop.item }}", "index": "{{ loop.index }}"},
                            }
                        ],
                    },
                },
                {
                    "id": "out",
                    "card": "flow.return",
                    "inputs": {"count": "{{ length(steps.each.output) }}"},
                },
            ],
            save_data=True,
        ),
    }


# -- scenarios -------------------------------------------------------------------------------


async def jmespath_doubling(ctx: Context) -> Verdict:
    status, _, body = await ctx.post("/invoke/abuse-jmespath", b'{"a": 1}', JSON)
    kind, message = error_of(body)
    reason = message.rsplit("}}: ", 1)[-1]
    limit_named = "CARDFLOW_" in reason or "evaluation steps" in reason
    return Verdict(
        expected=400 <= status < 600 and status != 502 and limit_named,
        result=f"{status} {kind}",
        details=[f"{DOUBLINGS} doublings: {short(reason, 200)}"],
    )


async def jmespath_cpu(ctx: Context) -> Verdict:
    items = ctx.args.cpu_items
    body = b'{"users": [' + b",".join([b"7"] * items) + b"]}"
    started = time.monotonic()
    status, _, answer = await ctx.post("/invoke/abuse-jmespath-cpu", body, JSON)
    seconds = time.monotonic() - started
    kind, message = error_of(answer)
    if status == 200:
        return Verdict(
            json.loads(answer) == {"n": items},
            f"200 {short(answer.decode(errors='replace'), 30)}",
            [f"{items:,} items filtered in {seconds:.2f} s"],
        )
    reason = message.rsplit("}}: ", 1)[-1]
    return Verdict(
        status == 500 and kind == "invalid_input",
        f"{status} {kind}",
        [f"{items:,} items, answered in {seconds:.2f} s: {short(reason, 160)}"],
    )


def repeated(scenario: Scenario) -> Scenario:
    """The scenario again and again until ``--min-seconds`` have passed: a request refused
    in milliseconds would otherwise leave two or three healthz samples to judge by."""

    async def run(ctx: Context) -> Verdict:
        started = time.monotonic()
        verdicts = [await scenario(ctx)]
        while time.monotonic() - started < ctx.args.min_seconds:
            verdicts.append(await scenario(ctx))
        counts: dict[str, int] = {}
        for verdict in verdicts:
            counts[verdict.result] = counts.get(verdict.result, 0) + 1
        if len(counts) == 1:
            result = verdicts[0].result + (f" (x{len(verdicts)})" if len(verdicts) > 1 else "")
        else:
            result = ", ".join(f"{n}x {key}" for key, n in counts.items())
        details = list(verdicts[0].details)
        if len(verdicts) > 1:
            details.append(
                f"(sent {len(verdicts)} times one after another in "
                f"{time.monotonic() - started:.1f} s; the first one's details above)"
            )
        return Verdict(all(v.expected for v in verdicts), result, details)

    return run


def body_scenario(
    path: str,
    headers: dict[str, str],
    *,
    chunked: bool,
    refusals: tuple[int, ...] = (413,),
    token: bool = False,
) -> Scenario:
    """``--body-mb`` sent to ``path``; expected: one of ``refusals`` (413, or 401 where a
    stranger is turned away before the body is read) long before the body's end."""

    async def scenario(ctx: Context) -> Verdict:
        total = ctx.args.body_mb * MB
        started = time.monotonic()
        sent_headers = {**headers, **(ctx.auth if token else {})}
        answer = await stream_post(ctx.port, path, sent_headers, total, chunked=chunked)
        seconds = time.monotonic() - started
        kind, message = error_of(answer.body)
        if answer.status == 0:
            # The server answered and closed while the body was still coming: the kernel
            # resets such a connection, and the answer may be lost with it.
            return Verdict(
                answer.sent <= total // 2,
                "reset",
                [f"connection reset after {answer.sent / MB:,.1f} MiB sent ({answer.error})"],
            )
        details = [
            f"{'chunked' if chunked else 'Content-Length'} body of {total / MB:,.0f} MiB: "
            f"{answer.sent / MB:,.1f} MiB sent before the answer, {seconds:.2f} s"
            + (f" ({answer.error})" if answer.error else ""),
            short(message, 200),
        ]
        expected = answer.status in refusals and answer.sent <= total // 2
        return Verdict(expected, f"{answer.status} {kind}", details)

    return scenario


async def invoke_other(ctx: Context, stop: asyncio.Event, into: list[float]) -> None:
    """Another flow's callers: one invoke every 20 ms until ``stop``; latencies in ``into``
    (a failed call counts as NaN)."""
    while not stop.is_set():
        started = time.monotonic()
        try:
            async with ctx.session.post(f"{ctx.base}/invoke/abuse-other") as resp:
                await resp.read()
                ok = resp.status == 200
        except (aiohttp.ClientError, TimeoutError):
            ok = False
        into.append(time.monotonic() - started if ok else float("nan"))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.02)


async def flow_ids_runs(ctx: Context, keys: list[str]) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    for key in keys:
        status, found = await ctx.get_json(f"/api/v1/runs?flow_id={ctx.flows[key]['id']}&limit=500")
        if status != 200:
            raise BenchError(f"GET /api/v1/runs: {status}")
        runs.extend(found)
    return runs


async def flow_loop(
    ctx: Context, alias: str, keys: list[str], callers: int, other_target_ms: float
) -> Verdict:
    """``callers`` invokes of a flow that calls itself (or the next flow of a ring); then
    wait until every run of those flows has ended, so none outlives the scenario.

    Expected: each caller's chain of runs ends with a refused call, relayed up the chain as
    a card failure (500, never internal_error): 508 loop_detected past
    CARDFLOW_MAX_FLOW_DEPTH, or 503 busy when the slots are taken (a run called by a run
    never waits for one, so chains cannot hold every slot waiting on each other); every
    run ends, and another flow is answered within ``other_target_ms`` meanwhile."""
    seen = {run["id"] for run in await flow_ids_runs(ctx, keys)}
    stop = asyncio.Event()
    other: list[float] = []
    prober = asyncio.create_task(invoke_other(ctx, stop, other))
    started = time.monotonic()
    try:
        answers = await asyncio.gather(
            *(ctx.post(f"/invoke/{alias}", b"{}", JSON) for _ in range(callers)),
            return_exceptions=True,
        )
        answered = time.monotonic() - started
        deadline = time.monotonic() + ctx.args.scenario_timeout
        while True:
            runs = [run for run in await flow_ids_runs(ctx, keys) if run["id"] not in seen]
            unfinished = sum(run["status"] in ("queued", "running") for run in runs)
            if not unfinished or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.25)
    finally:
        stop.set()
        await prober
    ended = time.monotonic() - started
    loops, busy = (
        sum(any(card.get("status_code") == code for card in run.get("cards", [])) for run in runs)
        for code in (508, 503)
    )
    statuses: dict[str, int] = {}
    for answer in answers:
        if isinstance(answer, BaseException):
            key = f"client error {type(answer).__name__}"
        else:
            key = f"{answer[0]} {error_of(answer[2])[0]}"
        statuses[key] = statuses.get(key, 0) + 1
    served = [v for v in other if v == v]
    other_ok = bool(served) and len(served) == len(other)
    other_ok &= max(served, default=0.0) * 1000 < other_target_ms
    first = answers[0]
    outer = short(error_of(first[2])[1], 160) if not isinstance(first, BaseException) else ""
    details = [
        f"{callers} caller(s) answered after {answered:.2f} s; {len(runs)} runs of "
        f"{len(keys)} flow(s); calls refused: {loops} with 508 loop_detected, {busy} with "
        f"503 busy (nested runs never wait for a slot); all ended after {ended:.2f} s"
        + (f", {unfinished} STILL queued/running" if unfinished else ""),
        f"outer answer: {outer}",
    ]
    if not other_ok:
        details.append(f"another flow waited longer than {other_target_ms:.0f} ms (or failed)")
    return Verdict(
        expected=loops + busy >= callers
        and all(key.startswith("500 ") and key != "500 internal_error" for key in statuses)
        and not unfinished
        and other_ok,
        result=", ".join(f"{n}x {key}" for key, n in statuses.items())
        + f"; {loops}x 508, {busy}x 503",
        details=details,
        other_latencies=other,
    )


async def async_flood(ctx: Context) -> Verdict:
    size = 9 * MB
    blob = b'{"blob": "' + b"x" * (size - 12) + b'"}'
    headers = {**JSON, "Prefer": "respond-async"}
    stop = asyncio.Event()
    other: list[float] = []
    prober = asyncio.create_task(invoke_other(ctx, stop, other))
    try:
        answers = await asyncio.gather(
            *(ctx.post("/invoke/abuse-slow", blob, headers) for _ in range(ctx.args.async_calls)),
            return_exceptions=True,
        )
        del blob
        run_ids: list[str] = []
        counts: dict[str, int] = {}
        retry_after: set[str] = set()
        for answer in answers:
            if isinstance(answer, BaseException):
                key = f"client error {type(answer).__name__}"
            else:
                status, response_headers, body = answer
                if status == 202:
                    run_ids.append(json.loads(body)["run_id"])
                    key = "202"
                else:
                    key = f"{status} {error_of(body)[0]}"
                    if status == 503:
                        retry_after.add(response_headers.get("Retry-After", "(none)"))
            counts[key] = counts.get(key, 0) + 1
        first_seen: dict[str, int] = {}
        for run_id in run_ids:
            status, run = await ctx.get_json(f"/api/v1/runs/{run_id}")
            key = run["status"] if status == 200 else f"HTTP {status}"
            first_seen[key] = first_seen.get(key, 0) + 1
        final: dict[str, int] = {}
        deadline = time.monotonic() + ctx.args.async_calls * ctx.args.slow_seconds + 60
        pending = list(run_ids)
        while pending and time.monotonic() < deadline:
            still = []
            for run_id in pending:
                status, run = await ctx.get_json(f"/api/v1/runs/{run_id}")
                if status == 200 and run["status"] in ("queued", "running"):
                    still.append(run_id)
                else:
                    key = run["status"] if status == 200 else f"HTTP {status}"
                    final[key] = final.get(key, 0) + 1
            pending = still
            if pending:
                await asyncio.sleep(0.25)
    finally:
        stop.set()
        await prober
    result = ", ".join(f"{n}x {key}" for key, n in counts.items())
    expected = (
        counts.get("202", 0) > 0
        and counts.get("503 busy", 0) > 0
        and set(counts) <= {"202", "503 busy"}
        and "(none)" not in retry_after
        and not any(key.startswith("HTTP") for key in first_seen)
        and not pending
    )
    details = [
        f"{ctx.args.async_calls} calls with 9 MiB bodies, Retry-After: "
        f"{', '.join(sorted(retry_after)) or '-'}",
        "their run_ids at once: " + ", ".join(f"{n} {k}" for k, n in first_seen.items()),
        "in the end: "
        + ", ".join(f"{n} {k}" for k, n in final.items())
        + (f", {len(pending)} STILL PENDING" if pending else ""),
    ]
    return Verdict(expected, result, details, other)


async def deep_json(ctx: Context) -> Verdict:
    levels = ctx.args.depth
    nested = "[" * levels + "]" * levels
    requests: list[tuple[str, str, bytes, dict[str, str]]] = [
        ("invoke", "/invoke/abuse-other", nested.encode(), JSON),
        ("import body", "/api/v1/flows/import", nested.encode(), {**JSON, **ctx.auth}),
        (
            "import .json",
            "/api/v1/flows/import",
            json.dumps({"content": nested, "filename": "deep.json"}).encode(),
            {**JSON, **ctx.auth},
        ),
        (
            "import .yaml",
            "/api/v1/flows/import",
            json.dumps({"content": nested, "filename": "deep.yaml"}).encode(),
            {**JSON, **ctx.auth},
        ),
        ("connections", "/api/v1/connections", nested.encode(), {**JSON, **ctx.auth}),
    ]
    results = []
    details = []
    expected = True
    for label, path, body, headers in requests:
        started = time.monotonic()
        status, _, answer = await ctx.post(path, body, headers)
        seconds = time.monotonic() - started
        kind, message = error_of(answer)
        results.append(f"{label} {status}")
        details.append(f"{label}: {status} {kind} in {seconds:.3f} s: {short(message, 120)}")
        expected &= status in (400, 422) and ("deep" in message or "nest" in message)
    return Verdict(expected, ", ".join(results), details)


async def for_each(ctx: Context, items: int) -> Verdict:
    body = b'{"users": [' + b",".join([b"7"] * items) + b"]}"
    started = time.monotonic()
    status, _, answer = await ctx.post("/invoke/abuse-for-each", body, JSON)
    seconds = time.monotonic() - started
    kind, message = error_of(answer)
    if items > ctx.args.max_for_each_items:
        expected = status == 500 and "CARDFLOW_MAX_FOR_EACH_ITEMS" in message
        result = f"{status} {kind}"
    else:
        expected = status == 200 and json.loads(answer) == {"count": items}
        result = f"{status} {short(answer.decode(errors='replace'), 40)}"
    return Verdict(
        expected,
        result,
        [
            f"{items:,} items ({len(body) / MB:.1f} MiB body), {seconds:.2f} s: "
            + short(message, 160)
        ],
    )


JSON = {"Content-Type": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def scenarios(args: argparse.Namespace) -> dict[str, tuple[str, Scenario]]:
    def loop(callers: int) -> Scenario:
        return lambda ctx: flow_loop(ctx, "abuse-loop", ["loop"], callers, OTHER_TARGET_MS)

    def ring(callers: int) -> Scenario:
        keys = [f"ring-{i}" for i in range(args.ring_flows)]
        return lambda ctx: flow_loop(ctx, "abuse-ring-0", keys, callers, RING_OTHER_TARGET_MS)

    def each(items: int) -> Scenario:
        return lambda ctx: for_each(ctx, items)

    return {
        "jmespath": (f"JMESPath doubling x{DOUBLINGS}", repeated(jmespath_doubling)),
        "jmespath-cpu": (
            f"JMESPath filter over {args.cpu_items:,} items",
            repeated(jmespath_cpu),
        ),
        "body-api": (
            f"{args.body_mb} MB chunked to /api/v1/connections, no token",
            repeated(body_scenario("/api/v1/connections", JSON, chunked=True, refusals=(401, 413))),
        ),
        "body-api-length": (
            f"{args.body_mb} MB Content-Length to /api/v1/connections, no token",
            repeated(
                body_scenario("/api/v1/connections", JSON, chunked=False, refusals=(401, 413))
            ),
        ),
        "body-api-token": (
            f"{args.body_mb} MB chunked to /api/v1/connections, API token",
            repeated(body_scenario("/api/v1/connections", JSON, chunked=True, token=True)),
        ),
        "body-login": (
            f"{args.body_mb} MB chunked form to /login",
            repeated(body_scenario("/login", FORM, chunked=True)),
        ),
        "self-loop": ("flow invoking itself, 1 caller", repeated(loop(1))),
        "self-loop-many": (
            f"flow invoking itself, {args.loop_callers} callers",
            loop(args.loop_callers),
        ),
        "loop-ring": (
            f"{args.ring_flows} flows calling the next in a ring, {args.ring_callers} callers",
            ring(args.ring_callers),
        ),
        "async-flood": (f"{args.async_calls} respond-async x 9 MiB", async_flood),
        "deep-json": (f"{args.depth:,}-deep JSON, 5 endpoints", repeated(deep_json)),
        "for-each-1m": (
            f"For Each over {args.big_items:,} items, save_data",
            repeated(each(args.big_items)),
        ),
        "for-each-cap": (
            f"For Each over {args.max_for_each_items:,} items (the cap), save_data",
            each(args.max_for_each_items),
        ),
    }


# -- running one scenario ------------------------------------------------------------------


@dataclass
class Outcome:
    key: str
    title: str
    expected: bool
    result: str
    details: list[str]
    seconds: float
    healthz_samples: int
    healthz_failures: int
    healthz_p50_ms: float
    healthz_p99_ms: float
    healthz_p99_corrected_ms: float  # as if one request went out every interval (see below)
    healthz_max_ms: float
    rss_before_mb: float
    rss_peak_mb: float
    rss_after_mb: float
    other_calls: int = 0
    other_failures: int = 0
    other_p50_ms: float = float("nan")
    other_p99_ms: float = float("nan")
    other_max_ms: float = float("nan")
    server_alive: bool = True

    @property
    def p99_ok(self) -> bool:
        return self.healthz_p99_corrected_ms < P99_TARGET_MS and not self.healthz_failures

    @property
    def rss_ok(self) -> bool:
        return self.rss_after_mb - self.rss_before_mb <= RSS_TARGET_MB

    @property
    def passed(self) -> bool:
        return self.expected and self.p99_ok and self.rss_ok and self.server_alive


async def settle(pid: int, idle_share: float, limit: float = 30.0) -> None:
    """Until the server uses no more than ``idle_share`` of a core over 0.2 s (the poller's
    own load included), at most ``limit`` s."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        before, _ = server_cpu(pid)
        await asyncio.sleep(0.2)
        after, _ = server_cpu(pid)
        if not (after - before) / 0.2 > idle_share:  # NaN (no /proc) ends the wait too
            return


async def run_scenario(
    ctx: Context, poller: Poller, key: str, title: str, scenario: Scenario, idle_share: float
) -> Outcome:
    await settle(ctx.pid, idle_share)
    rss_before = rss_mb(ctx.pid)
    started = time.monotonic()
    try:
        verdict = await asyncio.wait_for(scenario(ctx), ctx.args.scenario_timeout)
    except TimeoutError:
        verdict = Verdict(False, f"TIMED OUT after {ctx.args.scenario_timeout:g} s")
    except (aiohttp.ClientError, OSError, ValueError, KeyError) as exc:
        verdict = Verdict(False, f"bench error: {type(exc).__name__}: {short(str(exc), 80)}")
    ended = time.monotonic()
    await poller.wait_past(ended)
    window = poller.window(started, ended)
    latencies = sorted(s.end - s.start for s in window)
    alive = ctx.server.process.returncode is None
    if alive:
        await settle(ctx.pid, idle_share)
        await asyncio.sleep(ctx.args.settle)
    rss_after = rss_mb(ctx.pid)
    other = sorted(v for v in verdict.other_latencies if v == v)
    outcome = Outcome(
        key=key,
        title=title,
        expected=verdict.expected,
        result=verdict.result,
        details=verdict.details,
        seconds=ended - started,
        healthz_samples=len(window),
        healthz_failures=sum(s.status != 200 for s in window),
        healthz_p50_ms=percentile(latencies, 0.50) * 1000,
        healthz_p99_ms=percentile(latencies, 0.99) * 1000,
        healthz_p99_corrected_ms=percentile(corrected(latencies, ctx.args.interval), 0.99) * 1000,
        healthz_max_ms=(latencies[-1] if latencies else float("nan")) * 1000,
        rss_before_mb=rss_before,
        rss_peak_mb=max((s.rss_kb for s in window), default=-1024) / 1024,
        rss_after_mb=rss_after,
        server_alive=alive,
    )
    if verdict.other_latencies:
        outcome.other_calls = len(verdict.other_latencies)
        outcome.other_failures = len(verdict.other_latencies) - len(other)
        outcome.other_p50_ms = percentile(other, 0.50) * 1000
        outcome.other_p99_ms = percentile(other, 0.99) * 1000
        outcome.other_max_ms = (other[-1] if other else float("nan")) * 1000
    return outcome


def corrected(latencies: list[float], interval: float) -> list[float]:
    """The latencies the requests the poller did not send would have seen: it waits for
    each answer, so a stall of 2 s gives one slow sample instead of the ~200 requests a
    steady caller would have had waiting (coordinated omission). Each sample of L adds
    L - interval, L - 2 interval, … (HdrHistogram's expected-interval correction)."""
    out: list[float] = []
    for latency in latencies:
        out.append(latency)
        missed = latency - interval
        while missed > 0:
            out.append(missed)
            missed -= interval
    return sorted(out)


# -- reporting ---------------------------------------------------------------------------------


def print_report(env: dict[str, Any], outcomes: list[Outcome], rss_start: float) -> None:
    print(
        f"cpu_count {env['cpu_count']}, Python {env['python']} ({env['platform']}); "
        f"cardflow serve with default limits, SQLite; /healthz polled every "
        f"{env['interval_ms']:g} ms by its own process"
    )
    for o in outcomes:
        print()
        print(
            f"[{o.key}] {o.title}: {o.result}  ({'as expected' if o.expected else 'NOT EXPECTED'})"
        )
        for line in o.details:
            print(f"    {line}")
        print(
            f"    healthz: {o.healthz_samples} samples over {o.seconds:.2f} s, p50 "
            f"{o.healthz_p50_ms:.1f} ms, p99 {o.healthz_p99_ms:.1f} ms (corrected for the "
            f"requests a stall held back: {o.healthz_p99_corrected_ms:.1f} ms), max "
            f"{o.healthz_max_ms:.1f} ms, {o.healthz_failures} failed; RSS "
            f"{o.rss_before_mb:.0f} → peak {o.rss_peak_mb:.0f} → {o.rss_after_mb:.0f} MB"
        )
        if o.other_calls:
            print(
                f"    another flow meanwhile: {o.other_calls} invokes, p50 {o.other_p50_ms:.1f} "
                f"ms, p99 {o.other_p99_ms:.1f} ms, max {o.other_max_ms:.1f} ms, "
                f"{o.other_failures} failed"
            )
        if not o.server_alive:
            print("    THE SERVER DIED")
    print()
    header = (
        f"{'scenario':<16} {'result':<40} {'hz n':>5} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'p99* ms':>7} {'max ms':>7} {'RSS before→peak→after MB':>25}  verdict"
    )
    print(header)
    print("-" * len(header))
    for o in outcomes:
        misses = [
            name
            for name, ok in (
                ("answer", o.expected),
                ("p99", o.p99_ok),
                ("rss", o.rss_ok),
                ("died", o.server_alive),
            )
            if not ok
        ]
        verdict = "PASS" if o.passed else "MISS (" + ", ".join(misses) + ")"
        rss = f"{o.rss_before_mb:.0f}→{o.rss_peak_mb:.0f}→{o.rss_after_mb:.0f}"
        print(
            f"{o.key:<16} {short(o.result, 40):<40} {o.healthz_samples:>5} "
            f"{o.healthz_p50_ms:>7.1f} {o.healthz_p99_ms:>7.1f} "
            f"{o.healthz_p99_corrected_ms:>7.1f} {o.healthz_max_ms:>7.1f} "
            f"{rss:>25}  {verdict}"
        )
    if outcomes:
        end = outcomes[-1].rss_after_mb
        print(
            "p99*: p99 corrected for coordinated omission (the poller waits for each answer, "
            "so a stall counts once;\n  p99* counts it as the requests a steady caller would "
            f"have had waiting). Targets: healthz p99* < {P99_TARGET_MS:.0f} ms while the "
            "scenario runs; RSS after "
            f"within {RSS_TARGET_MB:.0f} MB of before. Server RSS at the start {rss_start:.0f} MB, "
            f"at the end {end:.0f} MB ({end - rss_start:+.0f} MB)."
        )


# -- main ----------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="/healthz latency and server RSS while abusive requests run (issue 9)."
    )
    parser.add_argument("--poll", help=argparse.SUPPRESS)  # poller mode: PORT:PID:INTERVAL
    parser.add_argument("--only", default="", help="comma-separated scenario keys")
    parser.add_argument("--interval", type=float, default=0.01, help="healthz every S (0.01)")
    parser.add_argument("--settle", type=float, default=2.0, help="pause before RSS after (2)")
    parser.add_argument("--body-mb", type=int, default=300, help="big bodies' size (300)")
    parser.add_argument("--async-calls", type=int, default=60, help="respond-async calls (60)")
    parser.add_argument("--loop-callers", type=int, default=4, help="self-loop-many callers (4)")
    parser.add_argument(
        "--min-seconds",
        type=float,
        default=3.0,
        help="repeat a quickly refused request for at least S (3)",
    )
    parser.add_argument(
        "--cpu-items", type=int, default=1_000_000, help="jmespath-cpu list length (1000000)"
    )
    parser.add_argument("--ring-flows", type=int, default=9, help="flows in loop-ring (9)")
    parser.add_argument("--ring-callers", type=int, default=8, help="loop-ring callers (8)")
    parser.add_argument(
        "--loop-timeout",
        type=float,
        default=10.0,
        help="the self-calling cards' timeout, s (10; a flow author may set up to 3600)",
    )
    parser.add_argument(
        "--big-items", type=int, default=1_000_000, help="for-each-1m list length (1000000)"
    )
    parser.add_argument("--depth", type=int, default=100_000, help="deep JSON levels (100000)")
    parser.add_argument(
        "--slow-seconds", type=float, default=3.0, help="the async flood flow's wait (3)"
    )
    parser.add_argument(
        "--scenario-timeout", type=float, default=180.0, help="longest one scenario may take"
    )
    parser.add_argument(
        "--server-env",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="an extra environment variable for cardflow serve (repeatable)",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 when a scenario misses its target"
    )
    args = parser.parse_args(argv)
    args.profile = None  # invoke.start_server's option; never set here
    args.max_for_each_items = 10_000
    extra: dict[str, str] = {}
    for item in args.server_env:
        name, sep, value = item.partition("=")
        if not sep or not name:
            parser.error(f"--server-env: expected NAME=VALUE, got {item!r}")
        extra[name] = value
    args.server_env = extra
    if "CARDFLOW_MAX_FOR_EACH_ITEMS" in extra:
        args.max_for_each_items = int(extra["CARDFLOW_MAX_FOR_EACH_ITEMS"])
    return args


async def run(args: argparse.Namespace) -> int:
    def log(message: str) -> None:
        if not args.json:
            print(message, file=sys.stderr)

    table = scenarios(args)
    chosen = [key.strip() for key in args.only.split(",") if key.strip()] or list(table)
    unknown = [key for key in chosen if key not in table]
    if unknown:
        print(f"unknown scenario(s): {', '.join(unknown)}; known: {', '.join(table)}")
        return 2
    env_info = {
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "interval_ms": args.interval * 1000,
        "server_env": args.server_env,
    }
    upstream = await start_upstream(3600)
    workdir = tempfile.TemporaryDirectory(prefix="cardflow-abuse-bench-")
    home = Path(workdir.name) / "home"
    home.mkdir()
    env = {name: value for name, value in os.environ.items() if not name.startswith("CARDFLOW_")}
    env["CARDFLOW_HOME"] = str(home)
    env.update(args.server_env)
    server: Server | None = None
    poller: Poller | None = None
    outcomes: list[Outcome] = []
    problems: list[str] = []
    rss_start = float("nan")
    session = aiohttp.ClientSession(
        # Idle connections are dropped before uvicorn's keep-alive timeout (5 s) can close
        # them under a request (a POST on such a connection fails as "server disconnected").
        connector=aiohttp.TCPConnector(limit=0, keepalive_timeout=2),
        timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT),
    )
    try:
        token = await mint_token(env)
        server = await start_server(home, Path(workdir.name), args, env)
        port = int(server.base.rsplit(":", 1)[1])
        log(f"cardflow serve at {server.base} (pid {server.process.pid}), CARDFLOW_HOME={home}")
        ctx = Context(args, server, port, token, upstream.base, session)
        for key, document in flow_documents(server.base, upstream.base, args).items():
            ctx.flows[key] = await create_flow(session, server.base, token, document)
        poller = await Poller.start(port, server.process.pid, args.interval)
        # The poller's own load, measured on the idle server: what "idle" means below.
        await asyncio.sleep(1.0)
        before, _ = server_cpu(server.process.pid)
        await asyncio.sleep(2.0)
        after, _ = server_cpu(server.process.pid)
        idle_share = (after - before) / 2.0 + 0.05
        rss_start = rss_mb(server.process.pid)
        log(f"idle with the poller: {idle_share - 0.05:.0%} of a core, RSS {rss_start:.0f} MB")
        for key in chosen:
            title, scenario = table[key]
            log(f"scenario {key}: {title}")
            outcome = await run_scenario(ctx, poller, key, title, scenario, idle_share)
            outcomes.append(outcome)
            log(
                f"  {outcome.result}; healthz p99 {outcome.healthz_p99_ms:.1f} ms "
                f"(corrected {outcome.healthz_p99_corrected_ms:.1f} ms), max "
                f"{outcome.healthz_max_ms:.1f} ms; RSS {outcome.rss_before_mb:.0f} → "
                f"{outcome.rss_after_mb:.0f} MB"
            )
            if not outcome.server_alive:
                problems.append(f"the server died during {key}")
                break
    except BenchError as exc:
        problems.append(f"the bench could not run: {exc}")
    finally:
        await session.close()
        if poller is not None:
            await poller.stop()
        if server is not None:
            if not await stop_server(server, 60):
                problems.append("cardflow serve did not stop within 60 s of SIGINT")
            if problems or not all(o.passed for o in outcomes):
                log(f"server log tail:\n{log_tail(server.log_path, 15)}")
        await stop_process(upstream.process, 5)
        workdir.cleanup()
    if args.json:
        report = {
            "environment": env_info,
            "targets": {"healthz_p99_ms": P99_TARGET_MS, "rss_back_within_mb": RSS_TARGET_MB},
            "rss_start_mb": rss_start,
            "scenarios": [
                {**asdict(o), "p99_ok": o.p99_ok, "rss_ok": o.rss_ok, "passed": o.passed}
                for o in outcomes
            ],
            "problems": problems,
        }
        print(json.dumps(report, indent=2))
    else:
        print_report(env_info, outcomes, rss_start)
    for problem in problems:
        print(f"PROBLEM: {problem}", file=sys.stderr)
    missed = bool(problems) or not all(o.passed for o in outcomes)
    return 1 if missed and args.strict else 0


def main() -> None:
    args = parse_args()
    if args.poll:
        port, pid, interval = args.poll.split(":")
        poll_forever(int(port), int(pid), float(interval))
        return
    sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()
