"""Queued runs on the real PostgreSQL, with real processes: `cardflow serve --no-worker`
and two `cardflow worker`s on one database, killed with SIGKILL or stopped with SIGTERM
mid-run. Nothing is mocked between cardflow and procrastinate."""

from __future__ import annotations

import base64
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

import cardflow
from tests.conftest import MASTER_KEY, PostgresDatabases, free_port, repeats
from tests.support.oauth_server import OAuthServer
from tests.support.provider_login import authorize_in_browser
from tests.support.upstream import Upstream

WAIT = 60.0  # far above a resumption (heartbeat silence + sweep + the card again)
SENTINEL = "queue-SENTINEL-pw-7c1"


class Process:
    """A cardflow command as a child process, its output in a log file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.args, self.env, self.log = args, env, log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-c", "from cardflow.cli import main; main()", *self.args],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def signal(self, sig: signal.Signals) -> None:
        assert self.process is not None
        os.kill(self.process.pid, sig)
        self.process.wait(timeout=WAIT)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()

    def text(self) -> str:
        return self.log.read_text(errors="replace")


@dataclass
class Cluster:
    base: str
    api: httpx.Client
    workers: list[Process]
    url: str  # the database
    env: dict[str, str]
    logs: Path
    serve: Process

    def add_worker(self) -> Process:
        worker = Process(["worker"], self.env, self.logs / f"worker-{len(self.workers)}.log")
        worker.start()
        self.workers.append(worker)
        wait_until(lambda: "executing queued runs" in worker.text(), "a worker")
        return worker

    def invoke(self, alias: str, token: str, **kwargs: Any) -> httpx.Response:
        return httpx.post(
            f"{self.base}/invoke/{alias}", params={"clientToken": token}, timeout=WAIT, **kwargs
        )

    def run(self, run_id: str) -> dict[str, Any]:
        response = self.api.get(f"/api/v1/runs/{run_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def finished(self, run_id: str) -> dict[str, Any]:
        deadline = time.monotonic() + WAIT
        while True:
            run = self.run(run_id)
            if run["status"] not in ("queued", "running"):
                return run
            assert time.monotonic() < deadline, f"run {run_id} did not end: {run}"
            time.sleep(0.1)

    def executing(self, run_id: str) -> Process:
        """The worker that took the run up last (each says so in its log)."""
        needle = f"run {run_id}: executing on"
        deadline = time.monotonic() + WAIT
        while True:
            found = [w for w in self.workers if needle in w.text()]
            if found:
                return found[-1]
            assert time.monotonic() < deadline, f"no worker took run {run_id}"
            time.sleep(0.05)


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=5).status_code == 200
    except httpx.TransportError:
        return False


def wait_until(check: Any, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@contextmanager
def cluster(
    tmp_path: Path, postgres: PostgresDatabases, *, workers: int = 2, **env_extra: str
) -> Iterator[Cluster]:
    url = postgres.new()
    home = tmp_path / "home"
    with cardflow.open(home=home, database_url=url, master_key=MASTER_KEY) as cf:
        _, api_token = cf.api_tokens.create("queue-test")
        cf.connections.create("svc", "basic", {"username": "u", "password": SENTINEL})
    port = free_port()
    env = {
        **os.environ,
        "CARDFLOW_HOME": str(home),
        "CARDFLOW_DATABASE_URL": url,
        "CARDFLOW_MASTER_KEY": MASTER_KEY,
        "CARDFLOW_PORT": str(port),
        "CARDFLOW_PUBLIC_URL": f"http://127.0.0.1:{port}",
        # a dead worker is noticed within a few seconds
        "CARDFLOW_WORKER_HEARTBEAT_SECONDS": "0.5",
        "CARDFLOW_WORKER_STALLED_AFTER": "2",
        "CARDFLOW_WORKER_SWEEP_SECONDS": "1",
        **env_extra,
    }
    serve = Process(["serve", "--no-worker"], env, tmp_path / "serve.log")
    fleet = [Process(["worker"], env, tmp_path / f"worker-{i}.log") for i in range(workers)]
    base = f"http://127.0.0.1:{port}"
    with ExitStack() as stack:
        for process in [serve, *fleet]:
            process.start()
            stack.callback(process.stop)

        def up() -> bool:
            try:
                return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(up, f"cardflow serve:\n{serve.text()[-3000:]}")
        for worker in fleet:
            wait_until(lambda w=worker: "executing queued runs" in w.text(), "a worker")
        headers = {"Authorization": f"Bearer {api_token}"}
        with httpx.Client(base_url=base, headers=headers, timeout=WAIT) as api:
            yield Cluster(base, api, fleet, url, env, tmp_path, serve)
            for worker in fleet:
                worker.stop()


def three_cards(api: httpx.Client, upstream: Upstream, alias: str, slow: float) -> str:
    """first → slow → last, each on the Basic connection; returns the client token."""
    run_ref = "{{ flow.run_id }}"
    created = api.post(
        "/api/v1/flows",
        json={
            "name": alias,
            "trigger": {"type": "api_endpoint", "alias": alias},
            "cards": [
                {
                    "id": "first",
                    "card": "api_connector.get",
                    "connection": "svc",
                    "inputs": {"url": f"{upstream.url}/flaky/first-{run_ref}"},
                },
                {
                    "id": "slow",
                    "card": "api_connector.get",
                    "connection": "svc",
                    "inputs": {"url": f"{upstream.url}/slow?seconds={slow}&run={run_ref}"},
                },
                {
                    "id": "last",
                    "card": "api_connector.get",
                    "connection": "svc",
                    "inputs": {"url": f"{upstream.url}/flaky/last-{run_ref}"},
                },
            ],
        },
    )
    assert created.status_code == 201, created.text
    token: str = created.json()["client_token"]
    return token


def pg_dump(url: str) -> bytes:
    """Every byte of data the database holds, as pg_dump writes it."""
    return subprocess.run(["pg_dump", "--data-only", url], capture_output=True, check=True).stdout


def slow_started(upstream: Upstream, run_id: str) -> int:
    return sum(
        1 for r in upstream.requests if r["path"] == "/slow" and r["query"].get("run") == [run_id]
    )


@pytest.mark.postgres
def test_kill_9_of_a_worker_mid_run_loses_no_run(
    tmp_path: Path, postgres: PostgresDatabases, upstream: Upstream
) -> None:
    with cluster(tmp_path, postgres) as queued:
        # 3 s: long enough that the kill lands inside the card even on a loaded machine
        # (a kill just after it ended, before its progress was kept, would legitimately
        # run and record it twice)
        token = three_cards(queued.api, upstream, "killed", slow=3)
        for round_ in range(repeats(4, 20)):
            # The trigger holds a secret: the run's kept progress must hold it encrypted only.
            accepted = queued.invoke(
                "killed",
                token,
                headers={"Prefer": "respond-async", "X-Api-Key": SENTINEL},
                json={"password": SENTINEL},
            )
            assert accepted.status_code == 202, accepted.text
            run_id = accepted.json()["run_id"]
            wait_until(lambda r=run_id: slow_started(upstream, r) == 1, "the slow card")
            with psycopg.connect(queued.url) as db:
                kept = db.execute(
                    "SELECT next_card, length(state_enc) FROM run_states WHERE run_id = %s",
                    (run_id,),
                ).fetchone()
            assert kept is not None and kept[0] == 1 and kept[1] > 0
            dump = pg_dump(queued.url)
            assert run_id.encode() in dump
            assert SENTINEL.encode() not in dump
            victim = queued.executing(run_id)
            victim.signal(signal.SIGKILL)
            victim.start()  # two workers again, as an operator's supervisor would
            run = queued.finished(run_id)
            assert run["status"] == "succeeded", (round_, run)
            # The card in flight ran again; the one before and the one after, once each.
            assert upstream.calls(f"first-{run_id}") == 1, round_
            assert upstream.calls(f"last-{run_id}") == 1, round_
            assert slow_started(upstream, run_id) == 2, round_
            assert [c["id"] for c in run["cards"]] == ["first", "slow", "last"]
            [resumed] = run["events"]
            assert resumed["type"] == "resumed"
            assert "from card 'slow'" in resumed["message"]
        with psycopg.connect(queued.url) as db:
            left = db.execute("SELECT count(*) FROM run_states").fetchone()
        assert left == (0,)  # each run's progress went with its end
        dump = pg_dump(queued.url)
    for form in (SENTINEL, base64.b64encode(f"u:{SENTINEL}".encode()).decode()):
        assert form.encode() not in dump, form


@pytest.mark.postgres
def test_a_worker_stopped_with_sigterm_hands_its_run_back(
    tmp_path: Path, postgres: PostgresDatabases, upstream: Upstream
) -> None:
    with cluster(tmp_path, postgres, CARDFLOW_SHUTDOWN_GRACE="0.2") as queued:
        token = three_cards(queued.api, upstream, "stopped", slow=3)
        accepted = queued.invoke("stopped", token, headers={"Prefer": "respond-async"})
        run_id = accepted.json()["run_id"]
        wait_until(lambda: slow_started(upstream, run_id) == 1, "the slow card")
        stopping = queued.executing(run_id)
        stopping.signal(signal.SIGTERM)
        assert stopping.process is not None and stopping.process.returncode == 0
        run = queued.finished(run_id)
    assert run["status"] == "succeeded", run
    assert [event["type"] for event in run["events"]] == ["handed_back"]
    assert upstream.calls(f"first-{run_id}") == 1
    assert upstream.calls(f"last-{run_id}") == 1
    assert slow_started(upstream, run_id) == 2


@pytest.mark.postgres
def test_a_worker_serves_its_own_metrics_behind_the_api_token(
    tmp_path: Path, postgres: PostgresDatabases, upstream: Upstream
) -> None:
    """The runs a worker executes are counted in the worker: --metrics-port shows them."""
    with cluster(tmp_path, postgres, workers=0) as queued:
        port = free_port()
        worker = Process(
            ["worker", "--metrics-port", str(port)], queued.env, tmp_path / "metrics-worker.log"
        )
        worker.start()
        try:
            wait_until(lambda: "executing queued runs" in worker.text(), "the worker")
            assert f"metrics at http://127.0.0.1:{port}/metrics" in worker.text()
            token = three_cards(queued.api, upstream, "counted", slow=0)
            accepted = queued.invoke("counted", token, headers={"Prefer": "respond-async"})
            assert accepted.status_code == 202, accepted.text
            run = queued.finished(accepted.json()["run_id"])
            assert run["status"] == "succeeded", run
            url = f"http://127.0.0.1:{port}/metrics"
            refused = httpx.get(url, timeout=WAIT)
            assert refused.status_code == 401
            assert refused.json()["error"]["type"] == "unauthorized"
            wrong = httpx.get(url, headers={"Authorization": "Bearer nope"}, timeout=WAIT)
            assert wrong.status_code == 401
            scraped = httpx.get(url, headers=queued.api.headers, timeout=WAIT)
            assert scraped.status_code == 200, scraped.text
            assert scraped.headers["content-type"].startswith("text/plain")
            text = scraped.text
            flow_id = run["flow_id"]
            assert (
                f'cardflow_runs_finished_total{{flow="{flow_id}",status="succeeded"}} 1.0' in text
            )
            assert 'cardflow_card_calls_total{card="api_connector.get"' in text
            assert SENTINEL not in text
            assert httpx.get(f"http://127.0.0.1:{port}/other", timeout=WAIT).status_code == 404
        finally:
            worker.stop()


@pytest.mark.postgres
def test_close_answers_while_every_run_slot_is_busy(
    tmp_path: Path, postgres: PostgresDatabases, upstream: Upstream
) -> None:
    with cluster(tmp_path, postgres, CARDFLOW_MAX_CONCURRENT_RUNS="2") as queued:
        created = queued.api.post(
            "/api/v1/flows",
            json={
                "name": "ack",
                "trigger": {"type": "api_endpoint", "alias": "ack"},
                "cards": [
                    {
                        "id": "ack",
                        "card": "api_connector.close",
                        "inputs": {"status_code": 200, "body": {"run": "{{ flow.run_id }}"}},
                    },
                    {
                        "id": "follow_up",
                        "card": "api_connector.get",
                        "inputs": {
                            "url": f"{upstream.url}/slow?seconds=2&run={{{{ flow.run_id }}}}"
                        },
                    },
                ],
            },
        )
        assert created.status_code == 201, created.text
        token = created.json()["client_token"]
        answers: list[tuple[httpx.Response, datetime]] = []
        lock = threading.Lock()

        def call() -> None:
            response = queued.invoke("ack", token)
            with lock:
                answers.append((response, datetime.now(UTC)))

        callers = [threading.Thread(target=call) for _ in range(20)]
        for caller in callers:
            caller.start()
        for caller in callers:
            caller.join(WAIT)
        assert len(answers) == 20
        run_ids = []
        for response, _ in answers:
            assert response.status_code == 200, response.text
            run_ids.append(response.json()["run"])
        runs = [queued.finished(run_id) for run_id in run_ids]
    assert all(run["status"] == "succeeded" for run in runs), runs
    assert all(slow_started(upstream, run["id"]) == 1 for run in runs)
    assert all([e["type"] for e in run["events"]] == ["answered", "queued"] for run in runs)
    # With 2 run slots held by 2-second follow-ups, the third caller could not be answered
    # before a follow-up ended: every caller had its answer before any follow-up ended.
    last_answer = max(at for _, at in answers)
    first_end = min(datetime.fromisoformat(run["ended_at"]) for run in runs)
    assert last_answer < first_end


@pytest.mark.postgres
def test_the_queue_is_bounded_overall_and_per_flow(
    tmp_path: Path, postgres: PostgresDatabases, upstream: Upstream
) -> None:
    limits = {"CARDFLOW_MAX_QUEUED_RUNS": "3", "CARDFLOW_MAX_QUEUED_RUNS_PER_FLOW": "2"}
    with cluster(tmp_path, postgres, workers=0, **limits) as queued:  # nothing takes them
        tokens = {alias: three_cards(queued.api, upstream, alias, slow=0) for alias in "ab"}

        def call(alias: str) -> httpx.Response:
            return queued.invoke(alias, tokens[alias], headers={"Prefer": "respond-async"})

        accepted = [call("a"), call("a")]
        flow_full = call("a")
        accepted.append(call("b"))
        all_full = call("b")
        for response in accepted:
            assert response.status_code == 202, response.text
        for response, setting in (
            (flow_full, "CARDFLOW_MAX_QUEUED_RUNS_PER_FLOW"),
            (all_full, "CARDFLOW_MAX_QUEUED_RUNS"),
        ):
            assert response.status_code == 503, response.text
            assert response.headers["Retry-After"] == "5"
            error = response.json()["error"]
            assert error["type"] == "busy" and setting in error["message"], error
        assert len(queued.api.get("/api/v1/runs").json()) == 3  # the refused left no record
        queued.add_worker()
        for response in accepted:
            assert queued.finished(response.json()["run_id"])["status"] == "succeeded"
        again = call("a")
        assert again.status_code == 202, again.text
        assert queued.finished(again.json()["run_id"])["status"] == "succeeded"


def test_worker_refuses_sqlite(tmp_path: Path) -> None:
    env = {**os.environ, "CARDFLOW_HOME": str(tmp_path / "home")}
    env.pop("CARDFLOW_DATABASE_URL", None)
    done = subprocess.run(
        [sys.executable, "-c", "from cardflow.cli import main; main()", "worker"],
        env=env,
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert done.returncode == 1
    assert "cardflow worker needs PostgreSQL" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.postgres
def test_a_second_server_leaves_a_live_servers_runs_alone_and_ends_a_dead_ones(
    tmp_path: Path, postgres: PostgresDatabases, upstream: Upstream
) -> None:
    """In-process runs (a caller waiting on a flow with no Close) belong to their server:
    another server starting on the same database leaves them alone while their server
    beats, and ends them as interrupted once it is killed."""
    with cluster(tmp_path, postgres, workers=0) as first:
        created = first.api.post(
            "/api/v1/flows",
            json={
                "name": "held",
                "trigger": {"type": "api_endpoint", "alias": "held", "security": "none"},
                "cards": [
                    {
                        "id": "wait",
                        "card": "api_connector.get",
                        "inputs": {
                            "url": f"{upstream.url}/slow?seconds=30&run={{{{ flow.run_id }}}}"
                        },
                    }
                ],
            },
        )
        assert created.status_code == 201, created.text
        with pytest.raises(httpx.ReadTimeout):  # the caller leaves; the run goes on
            httpx.post(f"{first.base}/invoke/held", timeout=1)
        [run] = first.api.get("/api/v1/runs").json()
        assert run["status"] == "running"
        port = free_port()
        second = Process(
            ["serve", "--no-worker"],
            {**first.env, "CARDFLOW_PORT": str(port)},
            tmp_path / "second.log",
        )
        second.start()
        try:
            other = f"http://127.0.0.1:{port}"

            def up() -> bool:
                try:
                    return httpx.get(f"{other}/healthz", timeout=2).status_code == 200
                except httpx.TransportError:
                    return False

            wait_until(up, "the second server")
            # Its start and a few of its sweeps (every second here) leave the run alone.
            time.sleep(3)
            assert first.run(run["id"])["status"] == "running"
            first_server = first.serve
            first_server.signal(signal.SIGKILL)
            with httpx.Client(base_url=other, headers=first.api.headers, timeout=WAIT) as api:

                def ended() -> bool:
                    return api.get(f"/api/v1/runs/{run['id']}").json()["status"] == "failed"

                wait_until(ended, "the dead server's run to end")
                ended_run = api.get(f"/api/v1/runs/{run['id']}").json()
        finally:
            second.stop()
    assert ended_run["error"]["type"] == "interrupted"


@pytest.mark.postgres
def test_serve_with_several_processes(
    tmp_path: Path, postgres: PostgresDatabases, upstream: Upstream
) -> None:
    with cluster(tmp_path, postgres, workers=0) as single:
        token = three_cards(single.api, upstream, "many", slow=0)
        env, first_pid = single.env, single.serve.pid
        [single_flow_id] = [f["id"] for f in single.api.get("/api/v1/flows").json()]
    port = free_port()
    several = Process(
        ["serve", "--processes", "2"], {**env, "CARDFLOW_PORT": str(port)}, tmp_path / "two.log"
    )
    several.start()
    try:
        base = f"http://127.0.0.1:{port}"

        def both_up() -> bool:
            with psycopg.connect(single.url) as db:
                row = db.execute(
                    "SELECT count(*) FROM processes WHERE pid <> %s", (first_pid,)
                ).fetchone()
            try:
                alive = httpx.get(f"{base}/healthz", timeout=2).status_code == 200
            except httpx.TransportError:
                alive = False
            return alive and row == (2,)  # two serving processes, each registered

        wait_until(both_up, f"two serving processes:\n{several.text()[-3000:]}")
        answers = [
            httpx.post(f"{base}/invoke/many", params={"clientToken": token}, json={}, timeout=WAIT)
            for _ in range(20)
        ]
        assert all(answer.status_code == 200 for answer in answers), answers[0].text
        # /metrics adds up both processes, whichever answers the scrape
        headers = {"Authorization": single.api.headers["Authorization"]}
        flow_id = single_flow_id
        for _ in range(4):
            text = httpx.get(f"{base}/metrics", headers=headers, timeout=WAIT).text
            started = [
                line
                for line in text.splitlines()
                if line.startswith("cardflow_runs_started_total{") and flow_id in line
            ]
            assert len(started) == 1 and started[0].endswith(" 20.0"), started
        # queued runs are worked by the serving processes' own workers
        queued = httpx.post(
            f"{base}/invoke/many",
            params={"clientToken": token},
            headers={"Prefer": "respond-async"},
            timeout=WAIT,
        )
        assert queued.status_code == 202, queued.text
        run_id = queued.json()["run_id"]
        with httpx.Client(base_url=base, headers=headers, timeout=WAIT) as api:

            def ended() -> bool:
                return api.get(f"/api/v1/runs/{run_id}").json()["status"] == "succeeded"

            wait_until(ended, "the queued run")
        several.signal(signal.SIGTERM)
    finally:
        several.stop()


def test_several_processes_refuse_sqlite(tmp_path: Path) -> None:
    env = {**os.environ, "CARDFLOW_HOME": str(tmp_path / "home")}
    env.pop("CARDFLOW_DATABASE_URL", None)
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "from cardflow.cli import main; main()",
            "serve",
            "--processes",
            "2",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert done.returncode == 2
    assert "--processes above 1 needs PostgreSQL" in done.stderr
    assert "Traceback" not in done.stderr


def scheduled_at(cluster_: Cluster, flow_id: str) -> list[datetime]:
    runs = cluster_.api.get("/api/v1/runs", params={"flow_id": flow_id, "limit": 500}).json()
    assert all(run["trigger"] == "schedule" for run in runs)
    return sorted(datetime.fromisoformat(run["trigger_data"]["scheduled_at"]) for run in runs)


def schedule_flow(api: httpx.Client, upstream: Upstream, every: str) -> str:
    created = api.post(
        "/api/v1/flows",
        json={
            "name": f"every {every}",
            "trigger": {"type": "schedule", "every": every},
            "save_data": True,
            "cards": [
                {
                    "id": "ping",
                    "card": "api_connector.get",
                    "inputs": {"url": f"{upstream.url}/slow?seconds=0.5"},
                }
            ],
        },
    )
    assert created.status_code == 201, created.text
    flow_id: str = created.json()["id"]
    return flow_id


@pytest.mark.postgres
def test_a_schedule_fires_once_per_due_time_across_workers_even_when_one_is_killed(
    tmp_path: Path, postgres: PostgresDatabases, upstream: Upstream
) -> None:
    with cluster(tmp_path, postgres, workers=3) as queued:
        flow_id = schedule_flow(queued.api, upstream, "2s")
        time.sleep(12)
        queued.workers[0].signal(signal.SIGKILL)  # whatever it was doing
        time.sleep(12)
        disabled = queued.api.patch(f"/api/v1/flows/{flow_id}", json={"enabled": False})
        assert disabled.status_code == 200, disabled.text
        wait_until(
            lambda: all(
                run["status"] not in ("queued", "running")
                for run in queued.api.get("/api/v1/runs", params={"flow_id": flow_id}).json()
            ),
            "the last scheduled runs",
        )
        due = scheduled_at(queued, flow_id)
        with psycopg.connect(queued.url) as db:
            claims = db.execute(
                "SELECT count(*), count(DISTINCT due_at) FROM schedule_fires WHERE flow_id = %s",
                (flow_id,),
            ).fetchone()
    assert len(due) >= 8, due
    assert len(set(due)) == len(due), "a due time ran twice"
    steps = {b - a for a, b in pairwise(due)}
    assert steps == {timedelta(seconds=2)}, f"a due time is missing: {due}"
    assert claims is not None and claims[0] == claims[1] == len(due)


@pytest.mark.postgres
def test_kill_9_inside_a_for_each_runs_at_most_the_item_in_flight_again(
    tmp_path: Path, postgres: PostgresDatabases, upstream: Upstream
) -> None:
    run_ref = "{{ flow.run_id }}"
    with cluster(tmp_path, postgres) as queued:
        created = queued.api.post(
            "/api/v1/flows",
            json={
                "name": "loop",
                "trigger": {"type": "api_endpoint", "alias": "loop", "security": "none"},
                "cards": [
                    {
                        "id": "each",
                        "card": "list.for_each",
                        "inputs": {
                            "list": "{{ trigger.body.items }}",
                            "cards": [
                                {
                                    "id": "call",
                                    "card": "api_connector.get",
                                    "inputs": {
                                        "url": f"{upstream.url}/slow?seconds=1.5"
                                        f"&run={run_ref}&item={{{{ loop.item }}}}"
                                    },
                                }
                            ],
                        },
                    },
                    {
                        "id": "after",
                        "card": "api_connector.get",
                        "inputs": {"url": f"{upstream.url}/flaky/after-{run_ref}"},
                    },
                ],
            },
        )
        assert created.status_code == 201, created.text
        accepted = queued.invoke(
            "loop", "", headers={"Prefer": "respond-async"}, json={"items": [0, 1, 2, 3, 4]}
        )
        run_id = accepted.json()["run_id"]

        def calls(item: int) -> int:
            return sum(
                1
                for r in upstream.requests
                if r["path"] == "/slow"
                and r["query"].get("run") == [run_id]
                and r["query"].get("item") == [str(item)]
            )

        wait_until(lambda: calls(2) == 1, "the third item")
        victim = queued.executing(run_id)
        victim.signal(signal.SIGKILL)
        victim.start()
        run = queued.finished(run_id)
    assert run["status"] == "succeeded", run
    assert [calls(item) for item in range(5)] == [1, 1, 2, 1, 1]
    assert upstream.calls(f"after-{run_id}") == 1
    assert [event["type"] for event in run["events"]] == ["resumed"]


@pytest.mark.postgres
def test_two_servers_and_two_workers_refresh_a_rotating_token_once_per_expiry(
    tmp_path: Path, postgres: PostgresDatabases, oauth_server: OAuthServer
) -> None:
    """Calls spread over 2 servers (in-process runs) and 2 workers (queued runs) after each
    expiry of a short-lived, strictly rotating token: one refresh per expiry, 3 times.

    cardflow refreshes a token once half its life is gone (for so short a lifetime), so each
    round waits past that point and then has the other half (8 s) to finish its calls: a
    round slower than that on a loaded machine would rightly refresh twice."""
    lifetime = 16
    with cluster(tmp_path, postgres) as queued:
        oauth_server.add_client(
            "four-app",
            "four-secret-SENTINEL",
            scope="read",
            grant_types=("authorization_code", "refresh_token"),
            redirect_uris=(f"{queued.base}/oauth/callback",),
        )
        connection = queued.api.post(
            "/api/v1/connections",
            json={
                "name": "four",
                "auth_type": "oauth",
                "config": {
                    "authorize_url": oauth_server.authorize_url,
                    "token_url": oauth_server.token_url,
                    "client_id": "four-app",
                    "client_secret": "four-secret-SENTINEL",
                    "scope": "read",
                },
            },
        ).json()
        oauth_server.expires_in = lifetime
        page = authorize_in_browser(queued.api, f"/api/v1/connections/{connection['id']}/authorize")
        assert "Connection ready" in page.text, page.text
        created = queued.api.post(
            "/api/v1/flows",
            json={
                "name": "me",
                "trigger": {"type": "api_endpoint", "alias": "me", "security": "none"},
                "cards": [
                    {
                        "id": "g",
                        "card": "api_connector.get",
                        "connection": connection["id"],
                        "inputs": {"url": f"{oauth_server.url}/api/me"},
                    }
                ],
            },
        )
        assert created.status_code == 201, created.text
        port = free_port()
        second = Process(
            ["serve", "--no-worker"], {**queued.env, "CARDFLOW_PORT": str(port)}, tmp_path / "b.log"
        )
        second.start()
        try:
            servers = [queued.base, f"http://127.0.0.1:{port}"]
            wait_until(lambda: answers(f"{servers[1]}/healthz"), "the second server")
            refreshes = []
            for _expiry in range(3):
                time.sleep(lifetime / 2 + 0.5)  # the token is due for its refresh
                before = oauth_server.refresh_requests
                run_ids: list[str] = []

                def call(index: int, run_ids: list[str] = run_ids) -> None:
                    base = servers[index % 2]
                    if index % 4 < 2:  # a caller waiting: the run is in that server
                        answer = httpx.post(f"{base}/invoke/me", timeout=WAIT)
                        assert answer.status_code == 200, answer.text
                    else:  # respond-async: a worker runs it
                        answer = httpx.post(
                            f"{base}/invoke/me", headers={"Prefer": "respond-async"}, timeout=WAIT
                        )
                        assert answer.status_code == 202, answer.text
                        run_ids.append(answer.json()["run_id"])

                callers = [threading.Thread(target=call, args=(i,)) for i in range(67)]
                for caller in callers:
                    caller.start()
                for caller in callers:
                    caller.join(WAIT)
                for run_id in run_ids:
                    assert queued.finished(run_id)["status"] == "succeeded"
                refreshes.append(oauth_server.refresh_requests - before)
        finally:
            second.stop()
    assert refreshes == [1, 1, 1]
    assert oauth_server.code_exchanges == 1
