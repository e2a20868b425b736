"""Real `cardflow serve` processes killed (kill -9) in the middle of token refresh storms.

The provider is a real Authlib server in this test process (it survives every kill): it
rotates refresh tokens, its access tokens live one second (so calls keep refreshing), and
its token endpoint waits a little after rotating before it answers — the window where a
killed process loses the provider's answer.

- With a 10 s rotation grace (Okta-like): storms of concurrent card calls on one process,
  killed at a random moment — every other cycle at a random moment while its refresh is at
  the provider — and restarted at once on the same home and database. Right after the
  kill the refresh lock is free (it died with its holder) and the next call, on another
  `cardflow serve` of the same deployment, succeeds, refreshing if needed with the newest
  refresh token stored; the restarted process's first call succeeds as well. The
  connection never needs re-authorization and the provider never refuses a refresh token.
  (The next call goes to a process that is already up so that a slow machine, where
  starting Python takes longer than the grace, cannot make the outcome depend on time.)
- With strict rotation (no grace), a kill after the provider rotated but before cardflow
  stored the answer cannot be recovered: the connection then says exactly that.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import httpx

import cardflow
from cardflow.app import Cardflow
from tests.conftest import free_port, repeats
from tests.support.oauth_server import OAuthServer
from tests.support.provider_login import authorize_in_browser

CLIENT_ID = "crash-app"
CLIENT_SECRET = "crash-client-secret-7d1"
GRACE = 10.0
CYCLES = repeats(8, 40)  # half of them killed while a refresh is at the provider
SLOTS = 3  # serve processes of the deployment: one storming, one up, one restarting
WORKERS = 16
ANSWER_DELAY = 0.2  # the provider rotates, then waits this long before answering
HANG_GUARD = 15.0  # "did not hang": far above a refresh, far below a 30-60 s lock expiry
LOST = "the provider rotated the refresh token but the answer was lost"


class ServeProcess:
    """`cardflow serve` as a child process, started again on the same home after a kill."""

    def __init__(self, env: dict[str, str], port: int, log: Path) -> None:
        self.env = {**env, "CARDFLOW_PORT": str(port)}
        self.base = f"http://127.0.0.1:{port}"
        self.log = log
        self.process: subprocess.Popen[bytes] | None = None
        self.kills = 0
        self.started_at = 0.0

    def start(self) -> None:
        self.started_at = time.monotonic()
        with self.log.open("ab") as log:
            log.write(f"--- test: starting cardflow serve at {time.time():.3f}\n".encode())
            log.flush()
            self.process = subprocess.Popen(
                [sys.executable, "-c", "from cardflow.cli import main; main()", "serve"],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )

    def wait_ready(self, timeout: float = 120) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{self.base}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            assert self.process.poll() is None, f"cardflow serve exited:\n{self.tail()}"
            assert time.monotonic() < deadline, f"cardflow serve did not start:\n{self.tail()}"
            time.sleep(0.02)

    def kill(self) -> None:
        assert self.process is not None
        os.kill(self.process.pid, signal.SIGKILL)
        self.process.wait()
        assert self.process.returncode == -signal.SIGKILL
        self.kills += 1
        with self.log.open("ab") as log:
            log.write(f"--- test: killed it at {time.time():.3f}\n".encode())

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def tail(self, chars: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-chars:]


@dataclass
class Deployment:
    """`cardflow serve` processes on one home and database, with one OAuth connection and
    a flow whose card calls the provider's ``/api/me`` with it."""

    fleet: list[ServeProcess]
    headers: dict[str, str]
    connection_id: str
    invoke_path: str

    def invoke_url(self, serve: ServeProcess) -> str:
        return serve.base + self.invoke_path

    def call(self, serve: ServeProcess) -> tuple[httpx.Response, float]:
        started = time.monotonic()
        response = httpx.post(self.invoke_url(serve), timeout=HANG_GUARD)
        return response, time.monotonic() - started

    def connection(self, serve: ServeProcess) -> dict[str, Any]:
        response = httpx.get(
            f"{serve.base}/api/v1/connections/{self.connection_id}",
            headers=self.headers,
            timeout=HANG_GUARD,
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@contextmanager
def deployed(
    tmp_path: Path,
    settings_kwargs: dict[str, object],
    port: int,
    oauth: OAuthServer,
    slots: int = 1,
) -> Iterator[Deployment]:
    """`slots` serve processes, the connection authorized through the first (its port is
    the public URL's), all of them up."""
    with cardflow.open(**settings_kwargs) as cf:
        _, api_token = cf.api_tokens.create("crash-test")
    env = {
        **os.environ,
        "CARDFLOW_HOME": str(settings_kwargs["home"]),
        "CARDFLOW_PUBLIC_URL": str(settings_kwargs["public_url"]),
        "CARDFLOW_MASTER_KEY": str(settings_kwargs["master_key"]),
    }
    if "database_url" in settings_kwargs:
        env["CARDFLOW_DATABASE_URL"] = str(settings_kwargs["database_url"])
    ports = [port, *(free_port() for _ in range(slots - 1))]
    fleet = [ServeProcess(env, p, tmp_path / f"serve-{i}.log") for i, p in enumerate(ports)]
    headers = {"Authorization": f"Bearer {api_token}"}
    oauth.add_client(
        CLIENT_ID,
        CLIENT_SECRET,
        scope="read",
        grant_types=("authorization_code", "refresh_token"),
        redirect_uris=(f"{fleet[0].base}/oauth/callback",),
    )
    with ExitStack() as stack:
        for serve in fleet:
            serve.start()
            stack.callback(serve.stop)
        for serve in fleet:
            serve.wait_ready()
        with httpx.Client(base_url=fleet[0].base, headers=headers, timeout=HANG_GUARD) as api:
            created = api.post(
                "/api/v1/connections",
                json={
                    "name": "Provider - OAuth - crash",
                    "auth_type": "oauth",
                    "config": {
                        "authorize_url": oauth.authorize_url,
                        "token_url": oauth.token_url,
                        "client_id": CLIENT_ID,
                        "client_secret": CLIENT_SECRET,
                        "scope": "read",
                    },
                },
            )
            assert created.status_code == 201, created.text
            connection_id = created.json()["id"]
            page = authorize_in_browser(api, f"/api/v1/connections/{connection_id}/authorize")
            assert "Connection ready" in page.text, page.text
            flow = api.post(
                "/api/v1/flows",
                json={
                    "name": "me",
                    "trigger": {"type": "api_endpoint", "alias": "me"},
                    "cards": [
                        {
                            "id": "g",
                            "card": "api_connector.get",
                            "connection": connection_id,
                            "inputs": {"url": f"{oauth.url}/api/me"},
                        },
                        {
                            "id": "out",
                            "card": "flow.return",
                            "inputs": {"client": "{{ steps.g.body.client_id }}"},
                        },
                    ],
                },
            )
            assert flow.status_code == 201, flow.text
        invoke_path = f"/invoke/me?clientToken={flow.json()['client_token']}"
        yield Deployment(fleet, headers, connection_id, invoke_path)


class LockProbe:
    """The connection's refresh lock, tried from this process (as another cardflow would)."""

    def __init__(self, cf: Cardflow, connection_id: str) -> None:
        self.store = cf.token_store
        self.connection_id = connection_id

    def free(self) -> bool:
        lock = self.store.try_refresh_lock(self.connection_id)
        if lock is None:
            return False
        self.store.release_refresh_lock(lock)
        return True

    def wait_free(self, timeout: float = HANG_GUARD) -> float:
        started = time.monotonic()
        while not self.free():
            assert time.monotonic() - started < timeout, "the dead process's lock stayed"
            time.sleep(0.005)
        return time.monotonic() - started


@dataclass
class Cycle:
    answered: Counter[int] = field(default_factory=Counter)
    cut: int = 0  # calls the kill cut off (no answer)
    refreshes: int = 0  # refresh requests the provider got during the storm
    in_flight_at_kill: int = 0  # token requests the provider was handling at the kill
    lock_held_at_kill: bool | None = None  # the refresh lock, seen from another process
    killed_after: float = 0.0  # since the storm began
    lock_free_after: float = 0.0  # since the kill
    next_call: float = 0.0  # the first call after the kill, on a process that is up
    next_call_refreshes: int = 0
    grace_uses: int = 0  # refreshes the provider accepted thanks to its grace
    restarted_first_call: float | None = None  # a restarted process's first call


async def _storm_then_kill(
    deployment: Deployment,
    serve: ServeProcess,
    oauth: OAuthServer,
    probe: LockProbe,
    rng: random.Random,
    *,
    during_refresh: bool,
) -> Cycle:
    """Concurrent calls to `serve` until it is killed — at a random moment, or at a random
    moment while its refresh is at the provider (`during_refresh`) — then restarted."""
    cycle = Cycle()
    stop = asyncio.Event()
    url = deployment.invoke_url(serve)

    async def worker(session: aiohttp.ClientSession) -> None:
        while not stop.is_set():
            try:
                async with session.post(url) as response:
                    await response.read()
                    cycle.answered[response.status] += 1
            except (TimeoutError, aiohttp.ClientError):
                cycle.cut += 1
                await asyncio.sleep(0.01)

    refreshes_before = oauth.refresh_requests
    timeout = aiohttp.ClientTimeout(total=HANG_GUARD)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        workers = [asyncio.create_task(worker(session)) for _ in range(WORKERS)]
        started = time.monotonic()
        if during_refresh:
            deadline = started + 5
            while oauth.in_flight == 0 and time.monotonic() < deadline:
                await asyncio.sleep(0.002)
            await asyncio.sleep(rng.uniform(0, ANSWER_DELAY / 2))
            cycle.lock_held_at_kill = not probe.free()
        else:
            await asyncio.sleep(rng.uniform(0.05, 1.0))
        cycle.in_flight_at_kill = oauth.in_flight
        serve.kill()
        cycle.killed_after = time.monotonic() - started
        serve.start()  # at once, on the same home and database
        stop.set()
        await asyncio.gather(*workers)
    cycle.refreshes = oauth.refresh_requests - refreshes_before
    return cycle


def test_kill_9_during_refresh_storms_never_needs_reauthorization(
    tmp_path: Path, settings_kwargs: dict[str, object], server_port: int, backend: str
) -> None:
    oauth = OAuthServer(expires_in=1, rotation_grace=GRACE, answer_delay=ANSWER_DELAY)
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    cycles: list[Cycle] = []
    with (
        oauth,
        deployed(tmp_path, settings_kwargs, server_port, oauth, SLOTS) as deployment,
        cardflow.open(**settings_kwargs) as cf,
    ):
        fleet = deployment.fleet
        probe = LockProbe(cf, deployment.connection_id)
        first, _ = deployment.call(fleet[0])
        assert first.status_code == 200, first.text
        assert first.json() == {"client": CLIENT_ID}
        for n in range(CYCLES):
            active, standby = fleet[n % SLOTS], fleet[(n + 1) % SLOTS]
            restarted_call = None
            if standby.kills:  # restarted in an earlier cycle: its first call
                standby.wait_ready()
                response, restarted_call = deployment.call(standby)
                assert response.status_code == 200, response.text + standby.tail()
                assert response.json() == {"client": CLIENT_ID}
            cycle = asyncio.run(
                _storm_then_kill(deployment, active, oauth, probe, rng, during_refresh=n % 2 == 1)
            )
            cycle.restarted_first_call = restarted_call
            # The killed process's refresh lock died with it (or was not held).
            cycle.lock_free_after = probe.wait_free()
            # The next call, on a process that is up: at once, with the newest token stored.
            refreshes, grace_uses = oauth.refresh_requests, oauth.grace_refresh_uses
            response, cycle.next_call = deployment.call(standby)
            cycle.next_call_refreshes = oauth.refresh_requests - refreshes
            cycle.grace_uses = oauth.grace_refresh_uses - grace_uses
            detail = f"cycle {n} (seed {seed}): {response.status_code} {response.text}\n"
            assert response.status_code == 200, detail + active.tail() + standby.tail()
            assert response.json() == {"client": CLIENT_ID}, detail
            status = deployment.connection(standby)
            assert status["status"] == "ready", (n, seed, status)
            assert status["last_error"] is None, (n, seed, status)
            # Every answer during the storm was a success; the kill only cut calls off.
            assert set(cycle.answered) <= {200}, (n, seed, cycle)
            cycles.append(cycle)
        for serve in fleet:  # every restarted process serves, the connection still ready
            serve.wait_ready()
            response, _ = deployment.call(serve)
            assert response.status_code == 200, response.text
            assert deployment.connection(serve)["status"] == "ready"

        assert sum(serve.kills for serve in fleet) == CYCLES
        # No refresh token was ever used after its grace, nor refused.
        assert oauth.invalid_grants == 0
        assert oauth.late_refresh_uses == 0
    # Kills did land while a refresh held the lock, and lost rotated answers that only
    # the grace window recovered: the next call refreshed with the token stored last.
    assert any(c.lock_held_at_kill for c in cycles)
    assert sum(c.grace_uses for c in cycles) >= 1
    assert sum(c.answered[200] for c in cycles) > 0
    next_calls = [c.next_call for c in cycles]
    restarted = [c.restarted_first_call for c in cycles if c.restarted_first_call is not None]
    print(
        f"\n[{backend}] seed {seed}: {CYCLES} kill -9 cycles, grace {GRACE:.0f} s; "
        f"{sum(1 for c in cycles if c.in_flight_at_kill)} kills with a refresh at the "
        f"provider, {sum(bool(c.lock_held_at_kill) for c in cycles)} with the refresh lock "
        f"seen held; "
        f"refresh requests {oauth.refresh_requests}, of which {oauth.grace_refresh_uses} "
        f"accepted only thanks to the grace; invalid_grant {oauth.invalid_grants}. "
        f"Next call after a kill: median {statistics.median(next_calls):.3f} s, max "
        f"{max(next_calls):.3f} s; first call of a restarted process: max "
        f"{max(restarted, default=0):.3f} s"
    )
    for n, c in enumerate(cycles):
        print(
            f"  cycle {n:2}: killed after {c.killed_after:.3f} s (refresh at provider: "
            f"{c.in_flight_at_kill}, lock held: {_shown(c.lock_held_at_kill)}), lock free "
            f"{c.lock_free_after * 1000:.0f} ms after; storm {c.answered[200]} ok, {c.cut} cut, "
            f"{c.refreshes} refreshes; next call {c.next_call:.3f} s "
            f"({c.next_call_refreshes} refresh, {c.grace_uses} in grace)"
        )


def _shown(held: bool | None) -> str:
    return "not probed" if held is None else str(held)


def test_kill_9_after_strict_rotation_says_the_answer_was_lost(
    tmp_path: Path, settings_kwargs: dict[str, object], server_port: int, backend: str
) -> None:
    oauth = OAuthServer(expires_in=1, rotation_grace=0)
    with oauth, deployed(tmp_path, settings_kwargs, server_port, oauth) as deployment:
        serve = deployment.fleet[0]
        first, _ = deployment.call(serve)
        assert first.status_code == 200, first.text
        time.sleep(1.1)  # the access token expires: the next call refreshes
        issued = len(oauth.issued_refresh_tokens)
        oauth.answer_delay = 5  # rotates, then holds the answer
        outcome: dict[str, object] = {}

        def doomed_call() -> None:
            try:
                outcome["response"] = deployment.call(serve)
            except httpx.TransportError as exc:
                outcome["error"] = exc

        caller = threading.Thread(target=doomed_call)
        caller.start()
        deadline = time.monotonic() + HANG_GUARD
        while len(oauth.issued_refresh_tokens) == issued:  # not rotated yet
            assert time.monotonic() < deadline, "the refresh never reached the provider"
            time.sleep(0.005)
        assert oauth.in_flight == 1  # rotated, the answer not sent
        serve.kill()
        oauth.answer_delay = 0
        serve.start()
        caller.join(HANG_GUARD)
        assert "error" in outcome, outcome  # the call died with the process
        serve.wait_ready()

        response, _ = deployment.call(serve)
        assert response.status_code == 500, response.text
        assert response.json()["error"]["type"] == "needs_authorization"
        status = deployment.connection(serve)
        assert status["status"] == "needs_authorization", status
        assert LOST in status["last_error"], status["last_error"]
        assert "invalid_grant" in status["last_error"], status["last_error"]
        # The stored refresh token was the one the provider had rotated away.
        assert oauth.refresh_requests == 2
        assert oauth.late_refresh_uses == 1
        assert oauth.invalid_grants == 1
        # Later calls fail the same way, and the connection keeps saying why.
        again, _ = deployment.call(serve)
        assert again.status_code == 500, again.text
        assert again.json()["error"]["type"] == "needs_authorization"
        status = deployment.connection(serve)
        assert status["status"] == "needs_authorization", status
        assert LOST in status["last_error"], status["last_error"]
