"""A tiny upstream for the benchmarks: run it as its own process so it gets its own core.

    python bench/_upstream.py [--port 0] [--max-seconds 1800]

Binds 127.0.0.1 only, prints ``LISTENING <port>`` on stdout once it accepts connections,
and serves until terminated (SIGTERM/SIGINT), until ``--max-seconds`` have passed, or until
the process that started it is gone.

Routes (nothing is checked: no auth, no body parsing):
- ``GET /me``     → ``{"id": 1, "name": "bench"}``
- ``POST /token`` → ``{"access_token": "t", "token_type": "Bearer", "expires_in": 3600}``
- ``GET /slow?seconds=S`` → ``{"slept": S}`` after sleeping S seconds (0 to 30, default 2)
- ``GET /stats``  → request counts per route (``slow``: started, ``slow_done``: answered,
  ``slow_max_in_flight``: most at once) and this process's CPU seconds so far
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import time

from aiohttp import web

ME_BODY = json.dumps({"id": 1, "name": "bench"}).encode()
TOKEN_BODY = json.dumps({"access_token": "t", "token_type": "Bearer", "expires_in": 3600}).encode()
JSON = "application/json"
MAX_SLOW_SECONDS = 30.0


class Counters:
    def __init__(self) -> None:
        self.me = 0
        self.token = 0
        self.slow = 0
        self.slow_done = 0
        self.slow_max_in_flight = 0


def make_app(counters: Counters) -> web.Application:
    async def me(_request: web.Request) -> web.Response:
        counters.me += 1
        return web.Response(body=ME_BODY, content_type=JSON)

    async def token(request: web.Request) -> web.Response:
        await request.read()  # drain the form body so the connection can be reused
        counters.token += 1
        return web.Response(body=TOKEN_BODY, content_type=JSON)

    async def slow(request: web.Request) -> web.Response:
        try:
            seconds = float(request.query.get("seconds", "2"))
        except ValueError:
            return web.json_response({"error": "seconds must be a number"}, status=400)
        if not 0 <= seconds <= MAX_SLOW_SECONDS:
            return web.json_response(
                {"error": f"seconds must be between 0 and {MAX_SLOW_SECONDS:g}"}, status=400
            )
        counters.slow += 1
        in_flight = counters.slow - counters.slow_done
        counters.slow_max_in_flight = max(counters.slow_max_in_flight, in_flight)
        try:
            await asyncio.sleep(seconds)
        finally:
            counters.slow_done += 1
        return web.json_response({"slept": seconds})

    async def stats(_request: web.Request) -> web.Response:
        body = {
            "me": counters.me,
            "token": counters.token,
            "slow": counters.slow,
            "slow_done": counters.slow_done,
            "slow_max_in_flight": counters.slow_max_in_flight,
            "cpu_seconds": time.process_time(),
        }
        return web.json_response(body)

    app = web.Application()
    app.router.add_get("/me", me)
    app.router.add_post("/token", token)
    app.router.add_get("/slow", slow)
    app.router.add_get("/stats", stats)
    return app


async def serve(port: int, max_seconds: float) -> None:
    runner = web.AppRunner(make_app(Counters()), access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    bound = runner.addresses[0][1]
    print(f"LISTENING {bound}", flush=True)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    parent = os.getppid()
    deadline = time.monotonic() + max_seconds
    try:
        # Bounded: wakes once a second, ends at the deadline or when the parent is gone.
        while not stop.is_set() and time.monotonic() < deadline and os.getppid() == parent:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=1.0)
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port (default)")
    parser.add_argument("--max-seconds", type=float, default=1800.0, help="exit after this long")
    args = parser.parse_args()
    asyncio.run(serve(args.port, args.max_seconds))


if __name__ == "__main__":
    main()
