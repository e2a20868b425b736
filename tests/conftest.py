"""Shared fixtures: a Cardflow on SQLite or PostgreSQL, a real server, real upstreams."""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import secrets
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest
import uvicorn

import cardflow
from cardflow.app import Cardflow
from cardflow.server.asgi import create_app
from tests.support.oauth_server import OAuthServer
from tests.support.upstream import Upstream

PG_URL = os.environ.get(
    "CARDFLOW_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REQUIRE_PG = os.environ.get("CARDFLOW_REQUIRE_POSTGRES") == "1"
MASTER_KEY = "9f" * 32
# `make soak` (CARDFLOW_TEST_SOAK=1): the kill -9 tests repeat their cycles many more times
SOAK = os.environ.get("CARDFLOW_TEST_SOAK") == "1"


def repeats(default: int, soaking: int) -> int:
    """How many times a crash test repeats its cycle: enough to prove its point in the
    default run, many more under ``make soak``."""
    return soaking if SOAK else default


def _pg_available() -> str | None:
    try:
        with psycopg.connect(PG_URL, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        return str(exc)


class PostgresDatabases:
    """Fresh databases cloned from a migrated template (one CREATE DATABASE per test).

    A test's database is dropped by a background thread once the test is over: each DROP
    DATABASE waits for a checkpoint (~0.3 s here), and hundreds of them in a row at the end
    of the session took minutes; in the background they overlap with the tests still running.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.template = f"cardflow_tpl_{os.getpid()}_{secrets.token_hex(3)}"
        self.created: list[str] = []  # not dropped yet
        self._to_drop: queue.Queue[str | None] = queue.Queue()
        self._dropper = threading.Thread(target=self._drop_queued, daemon=True)
        self._dropper.start()

    def _admin(self, sql: str) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def url_for(self, name: str) -> str:
        base, _, _ = self.url.rpartition("/")
        return f"{base}/{name}"

    def setup_template(self) -> None:
        self._admin(f'CREATE DATABASE "{self.template}"')
        from cardflow.settings import normalize_database_url
        from cardflow.store.db import Database

        db = Database(normalize_database_url(self.url_for(self.template)))
        db.upgrade()
        db.dispose()

    def new(self) -> str:
        name = f"cardflow_t_{secrets.token_hex(6)}"
        self._admin(f'CREATE DATABASE "{name}" TEMPLATE "{self.template}"')
        self.created.append(name)
        return self.url_for(name)

    def discard(self, url: str) -> None:
        """Drop a test's database in the background (its test is over)."""
        name = url.rpartition("/")[2]
        self.created.remove(name)
        self._to_drop.put(name)

    def _drop_queued(self) -> None:
        while (name := self._to_drop.get()) is not None:
            with contextlib.suppress(psycopg.Error):  # a leftover on a test machine: harmless
                self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def drop_all(self) -> None:
        self._to_drop.put(None)
        self._dropper.join()
        for name in [*self.created, self.template]:
            self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresDatabases]:
    problem = _pg_available()
    if problem is not None:
        if REQUIRE_PG:
            pytest.fail(f"PostgreSQL is required here (CARDFLOW_REQUIRE_POSTGRES=1): {problem}")
        pytest.skip(f"PostgreSQL not reachable at {PG_URL}: {problem}")
    dbs = PostgresDatabases(PG_URL)
    dbs.setup_template()
    yield dbs
    dbs.drop_all()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def server_port() -> int:
    return free_port()


@pytest.fixture
def settings_kwargs(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest, server_port: int
) -> dict[str, object]:
    kwargs: dict[str, object] = {
        "home": tmp_path / "home",
        "master_key": MASTER_KEY,
        # the OAuth redirect URI points at the server fixture's port
        "public_url": f"http://127.0.0.1:{server_port}",
    }
    if backend == "postgres":
        dbs: PostgresDatabases = request.getfixturevalue("postgres")
        url = dbs.new()
        kwargs["database_url"] = url
        request.addfinalizer(lambda: dbs.discard(url))
    return kwargs


@pytest.fixture
def cf(settings_kwargs: dict[str, object]) -> Iterator[Cardflow]:
    with cardflow.open(**settings_kwargs) as instance:
        yield instance


@pytest.fixture
def sqlite_cf(tmp_path: Path) -> Iterator[Cardflow]:
    with cardflow.open(home=tmp_path / "home") as instance:
        yield instance


@pytest.fixture(scope="session")
def upstream() -> Iterator[Upstream]:
    with Upstream() as server:
        yield server


@pytest.fixture
def oauth_server() -> Iterator[OAuthServer]:
    with OAuthServer() as server:
        yield server


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class RunningServer:
    url: str
    token: str
    cf: Cardflow

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@contextmanager
def serving(cf: Cardflow, port: int) -> Iterator[RunningServer]:
    """A real uvicorn serving cardflow on loopback, in a thread, until the block ends."""
    config = uvicorn.Config(
        create_app(cf), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    instance = uvicorn.Server(config)
    thread = threading.Thread(target=instance.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not instance.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    _, token = cf.api_tokens.create(f"test-{secrets.token_hex(3)}")
    try:
        yield RunningServer(f"http://127.0.0.1:{port}", token, cf)
    finally:
        instance.should_exit = True
        thread.join(timeout=30)


@pytest.fixture
def server(cf: Cardflow, server_port: int) -> Iterator[RunningServer]:
    with serving(cf, server_port) as running:
        yield running


@pytest.fixture
def captured_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    return caplog


# The kill -9 files take minutes each and run as a unit on one worker (--dist loadfile):
# started first, they run beside the rest instead of ending the run alone.
_LONGEST_FIRST = ("tests/integration/test_queue.py", "tests/integration/test_refresh_crash.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        path = item.nodeid.partition("::")[0]
        return _LONGEST_FIRST.index(path) if path in _LONGEST_FIRST else len(_LONGEST_FIRST)

    items.sort(key=rank)  # stable: the rest keep their order
