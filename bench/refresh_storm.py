"""Refresh storm: after an OAuth access token expires, K card calls arrive at once.

For K = 10, 100, 1000 it prints how many token requests the provider served for the
refreshing wave (cardflow's promise: exactly 1) and the latency of that wave next to a
wave of the same size with a valid token, measured in the same run.

The provider is the test suite's real Authlib server (PKCE required, refresh tokens
rotated, access tokens living a few seconds); the API is a loopback aiohttp upstream.
Run: .venv/bin/python bench/refresh_storm.py [--sizes 10,100,1000] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import parse_qsl, urlsplit

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.oauth_server import OAuthServer
from tests.support.provider_login import authorize_get_callback_url
from tests.support.upstream import Upstream

import cardflow
from cardflow.app import Cardflow
from cardflow.connections.authorization import CallbackOutcome

LIFETIME = 4  # seconds an access token lives
SKEW = 1.0  # cardflow refreshes this long before expiry


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def wave(cf: Cardflow, url: str, k: int) -> tuple[list[float], float, int]:
    """K concurrent card calls; returns per-call latencies (ms), wall time (ms), failures."""

    async def one() -> tuple[float, bool]:
        started = time.perf_counter()
        result = await cf.run_card_async(
            "api_connector.get", connection="storm", inputs={"url": url}
        )
        return (time.perf_counter() - started) * 1000, result.ok

    started = time.perf_counter()
    results = await asyncio.gather(*(one() for _ in range(k)))
    wall = (time.perf_counter() - started) * 1000
    return [r[0] for r in results], wall, sum(1 for r in results if not r[1])


def authorize(cf: Cardflow, oauth: OAuthServer) -> None:
    provider_url = cf.authorizations.begin("storm")
    with httpx.Client() as browser:
        callback = authorize_get_callback_url(browser, provider_url)
    params = dict(parse_qsl(urlsplit(callback).query))

    async def complete() -> CallbackOutcome:
        try:
            return await cf.authorizations.complete(params)
        finally:
            await cf.aclose()

    outcome = asyncio.run(complete())
    if not outcome.ok:
        raise SystemExit(f"authorization failed: {outcome.message}")


async def measure(
    cf: Cardflow, oauth: OAuthServer, url: str, sizes: list[int]
) -> list[dict[str, float]]:
    rows = []
    try:
        for k in sizes:
            await wave(cf, url, k)  # warm-up: fresh token, and K pooled connections
            valid, valid_wall, valid_failed = await wave(cf, url, k)
            token = cf._runtimes["storm"].tokens
            assert token is not None and token.cached() is not None
            refresh_at = token.cached().refresh_at  # type: ignore[union-attr]
            await asyncio.sleep(max(0.0, (refresh_at or time.time()) - time.time()) + 0.05)
            before = oauth.token_requests
            storm, storm_wall, storm_failed = await wave(cf, url, k)
            rows.append(
                {
                    "k": k,
                    "token_requests": oauth.token_requests - before,
                    "valid_p50_ms": statistics.median(valid),
                    "valid_p99_ms": percentile(valid, 0.99),
                    "valid_wall_ms": valid_wall,
                    "refresh_p50_ms": statistics.median(storm),
                    "refresh_p99_ms": percentile(storm, 0.99),
                    "refresh_wall_ms": storm_wall,
                    "failures": valid_failed + storm_failed,
                }
            )
    finally:
        await cf.aclose()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    logging.getLogger("werkzeug").disabled = True  # the provider's access log

    with OAuthServer(expires_in=LIFETIME) as oauth, Upstream() as upstream:
        home = Path(tempfile.mkdtemp(prefix="cardflow-bench-"))
        with cardflow.open(home=home, token_refresh_skew=SKEW) as cf:
            oauth.add_client(
                "storm-app",
                "storm-secret",
                scope="read",
                grant_types=("authorization_code", "refresh_token"),
                redirect_uris=(cf.authorizations.redirect_uri,),
            )
            cf.connections.create(
                "storm",
                "oauth",
                {
                    "authorize_url": oauth.authorize_url,
                    "token_url": oauth.token_url,
                    "client_id": "storm-app",
                    "client_secret": "storm-secret",
                    "scope": "read",
                },
            )
            authorize(cf, oauth)
            rows = asyncio.run(measure(cf, oauth, f"{upstream.url}/json", sizes))

    if args.json:
        print(json.dumps(rows, indent=2))
        return
    print(f"access tokens live {LIFETIME} s; refreshed {SKEW} s before expiry\n")
    print(
        f"{'K':>6} {'token reqs':>10} {'valid p50':>10} {'valid p99':>10} {'valid wall':>11}"
        f" {'refresh p50':>12} {'refresh p99':>12} {'refresh wall':>13} {'added p50':>10}"
    )
    for row in rows:
        print(
            f"{row['k']:>6} {row['token_requests']:>10} {row['valid_p50_ms']:>8.1f}ms"
            f" {row['valid_p99_ms']:>8.1f}ms {row['valid_wall_ms']:>9.1f}ms"
            f" {row['refresh_p50_ms']:>10.1f}ms {row['refresh_p99_ms']:>10.1f}ms"
            f" {row['refresh_wall_ms']:>11.1f}ms"
            f" {row['refresh_p50_ms'] - row['valid_p50_ms']:>8.1f}ms"
        )
    bad = [r for r in rows if r["token_requests"] != 1 or r["failures"]]
    if bad:
        print("\nFAILED: a wave made more than one token request or had failed calls", bad)
        raise SystemExit(1)
    print("\nevery refreshing wave made exactly 1 token request; no call failed")


if __name__ == "__main__":
    main()
