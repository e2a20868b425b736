"""Run-side limits (issue 9 item 3) against a real server: For Each caps, the per-run
budget of cards and time, recorded cards, bounded expressions and saved data, loops
between flows, per-flow slots and the bounded, recorded queue of waiting runs.

Each test opens cardflow with small limits, drives it over HTTP with real loopback
upstreams and checks the error names the limit — and that the server keeps answering.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

import cardflow
from tests.conftest import RunningServer, free_port, serving
from tests.support.upstream import Upstream

DOUBLING = "@ | " + " | ".join(["[@,@]"] * 24) + " | length(to_string(@))"
FINISHED = ("succeeded", "failed")

StartServer = Callable[..., RunningServer]


# -- fixtures and helpers --------------------------------------------------------------------


@pytest.fixture
def limited(settings_kwargs: dict[str, object], server_port: int) -> Iterator[StartServer]:
    """Start cardflow with these limits (``Settings`` fields) behind a real uvicorn."""
    with ExitStack() as stack:

        def start(**limits: object) -> RunningServer:
            kwargs = {"shutdown_grace": 5.0, **settings_kwargs, **limits}
            cf = stack.enter_context(cardflow.open(**kwargs))
            return stack.enter_context(serving(cf, server_port))

        yield start


class Gate:
    """A loopback upstream whose /wait answers only once the test opens the gate, so a
    run can be held inside a card for as long as the test needs (no sleeps, no timing)."""

    def __init__(self) -> None:
        self.opened = threading.Event()
        self.lock = threading.Lock()
        self.arrived = 0
        self.inside = 0
        self.most_inside = 0
        gate = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                with gate.lock:
                    gate.arrived += 1
                    gate.inside += 1
                    gate.most_inside = max(gate.most_inside, gate.inside)
                try:
                    gate.opened.wait(timeout=30)
                finally:
                    # out before the answer goes: the run that waited for this one may
                    # call in as soon as it is answered, before this thread goes on
                    with gate.lock:
                        gate.inside -= 1
                body = b'{"passed": true}'
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/wait"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> Gate:
        self.thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.opened.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)

    def wait_for(self, arrivals: int, timeout: float = 15) -> None:
        eventually(lambda: self.arrived >= arrivals, timeout, f"{arrivals} calls at the gate")


def eventually(check: Callable[[], bool], timeout: float, what: str) -> None:
    """A generous did-not-hang bound, not a timing assertion."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


# One client for the whole file (an httpx.Client costs ~0.1 s to make); thread-safe.
HTTP = httpx.Client(timeout=60)


@pytest.fixture(scope="module", autouse=True)
def _close_client() -> Iterator[None]:
    yield
    HTTP.close()


def create_flow(server: RunningServer, document: dict[str, Any]) -> dict[str, Any]:
    response = HTTP.post(f"{server.url}/api/v1/flows", json=document, headers=server.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


def endpoint(alias: str, cards: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "name": f"flow {alias}",
        "trigger": {"type": "api_endpoint", "alias": alias, "security": "none"},
        "cards": cards,
        **extra,
    }


def get_run(server: RunningServer, run_id: str) -> dict[str, Any]:
    response = HTTP.get(f"{server.url}/api/v1/runs/{run_id}", headers=server.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


def wait_for_run(server: RunningServer, run_id: str, timeout: float = 20) -> dict[str, Any]:
    holder: dict[str, Any] = {}

    def finished() -> bool:
        holder["run"] = get_run(server, run_id)
        return holder["run"]["status"] in FINISHED

    eventually(finished, timeout, f"run {run_id} to end")
    return dict(holder["run"])


def runs_of(server: RunningServer, flow_id: str) -> list[dict[str, Any]]:
    response = HTTP.get(
        f"{server.url}/api/v1/runs",
        params={"flow_id": flow_id, "limit": 200},
        headers=server.headers,
    )
    assert response.status_code == 200, response.text
    return list(response.json())


def statuses(server: RunningServer, flow_id: str) -> list[str]:
    return sorted(run["status"] for run in runs_of(server, flow_id))


def assert_healthy(server: RunningServer) -> None:
    response = HTTP.get(f"{server.url}/healthz", timeout=10)
    assert response.status_code == 200, response.text


class HealthProbe:
    """/healthz asked over and over from another thread while something else runs."""

    def __init__(self, server: RunningServer) -> None:
        self.url = f"{server.url}/healthz"
        self.stop = threading.Event()
        self.answers: list[int] = []
        self.failures: list[str] = []
        self.latencies: list[float] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self.stop.is_set():
                started = time.perf_counter()
                try:
                    status = client.get(self.url).status_code
                except httpx.HTTPError as exc:
                    self.failures.append(repr(exc))
                    continue
                self.latencies.append(time.perf_counter() - started)
                self.answers.append(status)

    def __enter__(self) -> HealthProbe:
        self.thread.start()
        eventually(lambda: bool(self.answers or self.failures), 10, "a first /healthz")
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)

    def check(self, label: str) -> None:
        assert not self.failures, self.failures
        assert self.answers and all(status == 200 for status in self.answers), self.answers
        print(
            f"{label}: {len(self.answers)} /healthz answered, all 200; "
            f"max latency {max(self.latencies) * 1000:.1f} ms"
        )


def for_each_flow(alias: str, **for_each_inputs: Any) -> dict[str, Any]:
    """A flow looping over trigger.body.items with one nested card per item."""
    return endpoint(
        alias,
        [
            {
                "id": "each",
                "card": "list.for_each",
                "inputs": {
                    "list": "{{ trigger.body.items }}",
                    "cards": [
                        {
                            "id": "pick",
                            "card": "object.construct",
                            "inputs": {"i": "{{ loop.index }}"},
                        }
                    ],
                    **for_each_inputs,
                },
            },
            {
                "id": "out",
                "card": "flow.return",
                "inputs": {"n": "{{ length(steps.each.output) }}"},
            },
        ],
    )


# -- For Each, cards per run, recorded cards -------------------------------------------------


def test_for_each_item_caps_global_and_per_card(limited: StartServer) -> None:
    server = limited(max_for_each_items=50)
    create_flow(server, for_each_flow("global"))
    create_flow(server, for_each_flow("capped", max_items=5))
    create_flow(server, for_each_flow("loose", max_items=500))

    def invoke(alias: str, count: int) -> httpx.Response:
        return HTTP.post(
            f"{server.url}/invoke/{alias}", json={"items": list(range(count))}, timeout=30
        )

    assert invoke("global", 50).json() == {"n": 50}
    assert invoke("capped", 5).json() == {"n": 5}

    cases = [
        ("global", 51, "CARDFLOW_MAX_FOR_EACH_ITEMS (50)"),
        ("capped", 6, "the card's max_items (5)"),
        # a card's max_items above the global cap does not raise it
        ("loose", 51, "CARDFLOW_MAX_FOR_EACH_ITEMS (50)"),
    ]
    for alias, count, named in cases:
        response = invoke(alias, count)
        assert response.status_code == 500, response.text
        error = response.json()["error"]
        assert error["card"] == "each"
        assert error["type"] == "invalid_input"
        assert error["field"] == "inputs.list"
        assert named in error["message"] and f"{count:,} items" in error["message"]
        run = wait_for_run(server, response.json()["run_id"])
        assert run["status"] == "failed"
        # refused before anything ran: only the For Each card is on record, and it says why
        assert [(c["id"], c["status"]) for c in run["cards"]] == [("each", "failed")]
        assert run["cards"][0]["error"]["message"] == error["message"]
        assert run["cards_omitted"] == 0

    # a huge list (the million-item body, scaled to the request cap) is refused
    # as a whole while /healthz keeps answering
    with HealthProbe(server) as probe:
        response = invoke("global", 500_000)
    probe.check("For Each over 500,000 items")
    assert response.status_code == 500
    assert "500,000 items" in response.json()["error"]["message"]
    run = wait_for_run(server, response.json()["run_id"])
    assert len(run["cards"]) == 1
    assert_healthy(server)


def test_cards_per_run_budget(limited: StartServer) -> None:
    server = limited(max_cards_per_run=20)
    create_flow(server, for_each_flow("budget"))
    # 1 For Each + 19 nested = 20 cards: within the budget
    ok = HTTP.post(f"{server.url}/invoke/budget", json={"items": list(range(18))}, timeout=30)
    assert ok.status_code == 200 and ok.json() == {"n": 18}, ok.text

    response = HTTP.post(f"{server.url}/invoke/budget", json={"items": list(range(30))}, timeout=30)
    assert response.status_code == 500, response.text
    error = response.json()["error"]
    assert error["type"] == "run_limit"
    assert "more than 20 cards" in error["message"]
    assert "CARDFLOW_MAX_CARDS_PER_RUN" in error["message"]
    run = wait_for_run(server, response.json()["run_id"])
    assert run["status"] == "failed"
    assert run["error"] == error
    print("cards on record after the budget stop:", [(c["id"], c["status"]) for c in run["cards"]])
    # the budget stopped it: 20 cards ran, the Return never did
    assert len(run["cards"]) == 20
    assert "out" not in [c["id"] for c in run["cards"]]
    assert_healthy(server)


def test_recorded_cards_beyond_the_cap_are_counted(limited: StartServer) -> None:
    server = limited(max_recorded_cards=10)
    flow = create_flow(server, for_each_flow("many"))
    response = HTTP.post(f"{server.url}/invoke/many", json={"items": list(range(25))}, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json() == {"n": 25}  # every iteration ran and reached the output

    flow_runs = runs_of(server, flow["id"])
    assert len(flow_runs) == 1
    run = get_run(server, flow_runs[0]["id"])
    assert run["status"] == "succeeded"
    # 1 For Each + 25 nested + 1 Return = 27 cards executed; 10 on record, 17 counted
    assert len(run["cards"]) == 10
    assert run["cards_omitted"] == 17
    assert [c["id"] for c in run["cards"][:3]] == ["each", "each[0].pick", "each[1].pick"]
    assert_healthy(server)


# -- expressions -----------------------------------------------------------------------------


def test_doubling_expression_fails_clearly_and_never_stalls_the_server(
    limited: StartServer,
) -> None:
    server = limited()
    create_flow(
        server,
        endpoint(
            "doubling",
            [
                {
                    "id": "boom",
                    "card": "object.construct",
                    "inputs": {"n": f"{{{{ {DOUBLING} }}}}"},
                },
                {"id": "out", "card": "flow.return", "inputs": {"n": "{{ steps.boom.output.n }}"}},
            ],
        ),
    )
    create_flow(
        server,
        endpoint(
            "path",
            [
                {"id": "get", "card": "object.get", "inputs": {"object": [1], "path": DOUBLING}},
            ],
        ),
    )

    answers: list[httpx.Response] = []

    def invoke(alias: str) -> None:
        answers.append(HTTP.post(f"{server.url}/invoke/{alias}", json={}, timeout=60))

    with HealthProbe(server) as probe:
        # a few at once, so that the expressions keep a worker busy for a while
        callers = [
            threading.Thread(target=invoke, args=(alias,)) for alias in ["doubling"] * 3 + ["path"]
        ]
        for caller in callers:
            caller.start()
        tested = HTTP.post(
            f"{server.url}/api/v1/cards/object.construct/test",
            json={"inputs": {"n": f"{{{{ {DOUBLING} }}}}"}, "context": {"trigger": {}}},
            headers=server.headers,
        )
        for caller in callers:
            caller.join(timeout=60)
    probe.check("doubling expressions")

    # Test this card: the caller's expression is wrong -> 422 naming the input
    assert tested.status_code == 422, tested.text
    error = tested.json()["error"]
    assert error["type"] == "invalid_input" and error["field"] == "inputs.n"
    print("card test:", error["message"])
    assert_limit_named(error["message"])

    assert len(answers) == 4
    for response in answers:
        assert response.status_code == 500, response.text
        error = response.json()["error"]
        print("run:", error)
        assert error["card"] in ("boom", "get")
        assert_limit_named(error["message"])
        run = wait_for_run(server, response.json()["run_id"])
        assert run["status"] == "failed"
    assert_healthy(server)


def assert_limit_named(message: str) -> None:
    """The message says which bound the expression hit."""
    bounds = (
        "CARDFLOW_EXPRESSION_TIMEOUT",
        "CARDFLOW_MAX_EXPRESSION_BYTES",
        "CARDFLOW_MAX_EXPRESSION_VALUE_BYTES",
        "evaluation steps",
    )
    assert any(bound in message for bound in bounds), message


def test_expression_text_beyond_max_expression_bytes(limited: StartServer) -> None:
    server = limited(max_expression_bytes=10_000)
    shapes = {
        "tostring": {"t": "{{ to_string(trigger.body.items) }}"},
        "join": {"t": "{{ join('', trigger.body.words) }}"},
        "interpolate": {"t": "a {{ trigger.body.s }} b {{ trigger.body.s }}"},
        "value": {"t": "{{ trigger.body.items }} as text"},
    }
    for alias, inputs in shapes.items():
        create_flow(
            server,
            endpoint(alias, [{"id": "make", "card": "object.construct", "inputs": inputs}]),
        )
    body = {"items": list(range(4000)), "words": ["x" * 100] * 150, "s": "y" * 6000}
    for alias in shapes:
        response = HTTP.post(f"{server.url}/invoke/{alias}", json=body, timeout=30)
        assert response.status_code == 500, (alias, response.text)
        error = response.json()["error"]
        assert error["card"] == "make" and error["field"] == "inputs.t", error
        assert "10,000 characters" in error["message"], error
        assert "CARDFLOW_MAX_EXPRESSION_BYTES" in error["message"], error
    # under the limit the same shapes work
    small = {"items": [1, 2], "words": ["a", "b"], "s": "z"}
    for alias in shapes:
        response = HTTP.post(f"{server.url}/invoke/{alias}", json=small, timeout=30)
        assert response.status_code == 200, (alias, response.text)
    assert_healthy(server)


# -- run duration, saved data ----------------------------------------------------------------


def test_run_time_limit_stops_a_slow_run(limited: StartServer, upstream: Upstream) -> None:
    server = limited(max_run_seconds=1)
    marker = f"dur-{os.getpid()}-{time.monotonic_ns()}"
    create_flow(
        server,
        endpoint(
            "dawdle",
            [
                {
                    "id": "each",
                    "card": "list.for_each",
                    "inputs": {
                        "list": "{{ trigger.body.items }}",
                        "cards": [
                            {
                                "id": "nap",
                                "card": "api_connector.get",
                                "timeout": 60,
                                "inputs": {
                                    "url": f"{upstream.url}/slow",
                                    "query": {"seconds": 0.3, "marker": marker},
                                },
                            }
                        ],
                    },
                },
                {"id": "out", "card": "flow.return", "inputs": {"done": True}},
            ],
        ),
    )
    create_flow(
        server,
        endpoint(
            "stuck",
            [
                {
                    "id": "wait",
                    "card": "api_connector.get",
                    "timeout": 600,
                    "inputs": {"url": f"{upstream.url}/slow", "query": {"seconds": 30}},
                }
            ],
        ),
    )
    for alias, card in (("dawdle", "each"), ("stuck", "wait")):
        response = HTTP.post(
            f"{server.url}/invoke/{alias}", json={"items": list(range(20))}, timeout=30
        )
        assert response.status_code == 500, response.text
        error = response.json()["error"]
        assert error["type"] == "run_limit", error
        assert "longer than 1 s" in error["message"]
        assert "CARDFLOW_MAX_RUN_SECONDS" in error["message"]
        run = wait_for_run(server, response.json()["run_id"])
        assert run["status"] == "failed" and run["error"] == error
        # what ran is on record; the card it was stopped in says why
        assert run["cards"][0]["id"] == card
        assert run["cards"][0]["status"] == "failed"
        assert run["cards"][0]["error"] == error
        assert "out" not in [c["id"] for c in run["cards"]]
    calls = sum(1 for r in upstream.requests if marker in r["query_string"])
    print("slow calls before the run limit:", calls)
    assert 1 <= calls < 20
    assert_healthy(server)


def test_saved_data_is_kept_as_a_bounded_preview(limited: StartServer, upstream: Upstream) -> None:
    server = limited(max_saved_data_bytes=2000)
    flow = create_flow(
        server,
        endpoint(
            "keep",
            [
                {
                    "id": "big",
                    "card": "api_connector.post",
                    "inputs": {"url": f"{upstream.url}/echo", "body": "{{ trigger.body }}"},
                },
                {"id": "small", "card": "object.construct", "inputs": {"ok": True}},
            ],
            save_data=True,
        ),
    )
    body = {"blob": "q" * 20_000, "list": list(range(2000))}
    response = HTTP.post(f"{server.url}/invoke/keep", json=body, timeout=30)
    assert response.status_code == 200, response.text
    [listed] = runs_of(server, flow["id"])
    run = get_run(server, listed["id"])
    assert run["status"] == "succeeded"
    big, small = run["cards"]
    for kept in (run["trigger_data"], big["inputs"], big["outputs"]):
        assert kept["truncated"] is True, str(kept)[:300]
        assert kept["limit"] == 2000
        written = json.dumps(kept["preview"])
        print("preview size:", len(written))
        assert len(written) <= 2000 + 200
    assert "q" * 1000 in json.dumps(big["inputs"]["preview"])  # a preview, not nothing
    # small values are kept whole
    assert small["inputs"] == {"ok": True}
    assert small["outputs"] == {"output": {"ok": True}}
    assert_healthy(server)


# -- loops between flows ---------------------------------------------------------------------


def test_flow_calling_itself_stops_at_max_flow_depth(limited: StartServer) -> None:
    server = limited(max_flow_depth=3)
    with Gate() as gate:
        selfie = create_flow(
            server,
            endpoint(
                "selfie",
                [
                    {"id": "hold", "card": "api_connector.get", "inputs": {"url": gate.url}},
                    {
                        "id": "again",
                        "card": "api_connector.get",
                        "inputs": {"url": f"{server.url}/invoke/selfie"},
                    },
                    {"id": "out", "card": "flow.return", "inputs": {"never": True}},
                ],
            ),
        )
        create_flow(
            server,
            endpoint("other", [{"id": "out", "card": "flow.return", "inputs": {"ok": True}}]),
        )
        outer: list[httpx.Response] = []
        caller = threading.Thread(
            target=lambda: outer.append(HTTP.post(f"{server.url}/invoke/selfie", timeout=60))
        )
        caller.start()
        gate.wait_for(1)
        # the chain is in flight (held at its first card): other flows are answered
        other = HTTP.post(f"{server.url}/invoke/other", timeout=30)
        assert other.status_code == 200 and other.json() == {"ok": True}
        assert not outer and gate.arrived == 1
        gate.opened.set()
        caller.join(timeout=60)
    assert len(outer) == 1
    response = outer[0]
    assert response.status_code == 500, response.text
    assert response.json()["error"]["card"] == "again"

    runs = runs_of(server, selfie["id"])
    # hops 0, 1, 2, 3 ran; the call at hop 4 was refused before a run was made
    assert len(runs) == 4
    assert gate.arrived == 4
    assert all(run["status"] == "failed" for run in runs)
    codes = sorted(run["error"]["status_code"] for run in runs)
    assert codes == [500, 500, 500, 508], [run["error"] for run in runs]
    innermost = next(run for run in runs if run["error"]["status_code"] == 508)
    assert innermost["error"]["card"] == "again"
    assert innermost["error"]["type"] == "upstream_status"
    assert "loop_detected" in innermost["error"]["body_excerpt"]
    print("innermost card error:", innermost["error"])

    # a request arriving with the hop header above the limit is refused at once
    for hop, expected in (("3", 200), ("4", 508), ("99999", 508)):
        response = HTTP.post(
            f"{server.url}/invoke/other", headers={"Cardflow-Hop": hop}, timeout=30
        )
        assert response.status_code == expected, (hop, response.text)
    refused = HTTP.post(f"{server.url}/invoke/other", headers={"Cardflow-Hop": "4"}, timeout=30)
    error = refused.json()["error"]
    assert error["type"] == "loop_detected"
    assert "CARDFLOW_MAX_FLOW_DEPTH" in error["message"] and "nested 4 deep" in error["message"]
    assert_healthy(server)


def test_flows_calling_each_other_in_a_ring_cannot_hold_every_slot(limited: StartServer) -> None:
    """Two flows calling each other, from two callers at once, would need more slots than
    there are: a run called from a run never waits for a slot (its caller holds one while
    it waits), it is refused with 503 at once, so the rings end and other callers are
    answered."""
    server = limited(max_concurrent_runs=4, max_flow_depth=8)
    no_retry = {"count": 0}
    for name, calls in (("ping", "pong"), ("pong", "ping")):
        create_flow(
            server,
            endpoint(
                name,
                [
                    {
                        "id": "call",
                        "card": "api_connector.get",
                        "retry": no_retry,
                        "inputs": {"url": f"{server.url}/invoke/{calls}"},
                    },
                    {"id": "out", "card": "flow.return", "inputs": {"never": True}},
                ],
            ),
        )
    create_flow(
        server, endpoint("other", [{"id": "out", "card": "flow.return", "inputs": {"ok": True}}])
    )
    answers: list[httpx.Response] = []
    callers = [
        threading.Thread(
            target=lambda: answers.append(HTTP.post(f"{server.url}/invoke/ping", timeout=60))
        )
        for _ in range(2)
    ]
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join(timeout=60)
    assert len(answers) == 2  # both rings ended (no caller waited for a card's timeout)
    for answer in answers:
        assert answer.status_code == 500, answer.text
        assert answer.json()["error"]["card"] == "call"
    excerpts = [
        run["error"].get("body_excerpt") or ""
        for flow in ("ping", "pong")
        for run in runs_of(server, flow_id_of(server, flow))
        if run["error"] is not None
    ]
    assert any('"busy"' in text and "does not wait" in text for text in excerpts), excerpts
    other = HTTP.post(f"{server.url}/invoke/other", timeout=30)
    assert other.status_code == 200 and other.json() == {"ok": True}
    # and an outside caller that finds every slot taken still waits its turn (not 503)
    assert_healthy(server)


def flow_id_of(server: RunningServer, name: str) -> str:
    answer = HTTP.get(f"{server.url}/api/v1/flows/flow {name}", headers=server.headers)
    assert answer.status_code == 200, answer.text
    return str(answer.json()["id"])


# -- run slots and the queue -----------------------------------------------------------------


def assert_busy(response: httpx.Response, setting: str) -> None:
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) >= 1
    error = response.json()["error"]
    assert error["type"] == "busy"
    assert setting in error["message"], error


def test_one_flow_cannot_take_every_slot(limited: StartServer) -> None:
    server = limited(max_runs_per_flow=1, max_concurrent_runs=8, max_queued_runs_per_flow=2)
    with Gate() as gate:
        slow = create_flow(
            server,
            endpoint(
                "slowpoke",
                [{"id": "hold", "card": "api_connector.get", "inputs": {"url": gate.url}}],
            ),
        )
        create_flow(
            server,
            endpoint("quick", [{"id": "out", "card": "flow.return", "inputs": {"ok": True}}]),
        )
        answers: list[httpx.Response] = []
        lock = threading.Lock()

        def call() -> None:
            response = HTTP.post(f"{server.url}/invoke/slowpoke", json={}, timeout=60)
            with lock:
                answers.append(response)

        callers = [threading.Thread(target=call) for _ in range(5)]
        for caller in callers:
            caller.start()
        # 1 runs, 2 wait, 2 are told to come back
        eventually(lambda: len(answers) == 2, 15, "two busy answers")
        gate.wait_for(1)
        eventually(
            lambda: statuses(server, slow["id"]) == ["queued", "queued", "running"],
            15,
            "one running and two queued runs",
        )
        for response in answers:
            assert_busy(response, "CARDFLOW_MAX_QUEUED_RUNS_PER_FLOW")

        # another flow is answered while the slow flow's runs still run and wait
        quick = HTTP.post(f"{server.url}/invoke/quick", json={}, timeout=30)
        assert quick.status_code == 200 and quick.json() == {"ok": True}, quick.text
        assert statuses(server, slow["id"]) == ["queued", "queued", "running"]
        assert len(answers) == 2 and gate.arrived == 1

        gate.opened.set()
        for caller in callers:
            caller.join(timeout=60)
    assert len(answers) == 5
    finished = [r for r in answers if r.status_code == 200]
    assert len(finished) == 3
    assert all(r.json()["status"] == "succeeded" for r in finished)
    assert gate.most_inside == 1  # never two runs of the flow at once
    assert statuses(server, slow["id"]) == ["succeeded"] * 3  # the refused left no record
    assert_healthy(server)


# In one process (SQLite): on PostgreSQL respond-async runs go to the durable queue, whose
# bounds tests/integration/test_queue.py checks.
@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_async_runs_are_recorded_queued_and_the_queue_is_bounded(limited: StartServer) -> None:
    server = limited(
        max_runs_per_flow=1,
        max_queued_runs=3,
        max_queued_runs_per_flow=10,
        max_queued_bytes=100_000,
    )
    with Gate() as gate:
        later = create_flow(
            server,
            endpoint(
                "later", [{"id": "hold", "card": "api_connector.get", "inputs": {"url": gate.url}}]
            ),
        )
        create_flow(
            server,
            endpoint("elsewhere", [{"id": "out", "card": "flow.return", "inputs": {"ok": True}}]),
        )

        def call(alias: str, body: bytes) -> httpx.Response:
            return HTTP.post(
                f"{server.url}/invoke/{alias}",
                content=body,
                headers={"Prefer": "respond-async", "Content-Type": "application/json"},
                timeout=30,
            )

        small = b'{"n": 1}'
        large = json.dumps({"blob": "b" * 80_000}).encode()
        first = call("later", small)
        assert first.status_code == 202, first.text
        gate.wait_for(1)
        assert get_run(server, first.json()["run_id"])["status"] == "running"

        accepted = [call("later", small), call("later", large)]
        # a third large body would hold more than max_queued_bytes while waiting
        assert_busy(call("later", large), "CARDFLOW_MAX_QUEUED_BYTES")
        accepted.append(call("later", small))
        # three wait now: the queue is full
        assert_busy(call("later", small), "CARDFLOW_MAX_QUEUED_RUNS")
        for response in accepted:
            assert response.status_code == 202, response.text
            # on record at once, at its run_id
            assert get_run(server, response.json()["run_id"])["status"] == "queued"
        assert statuses(server, later["id"]) == ["queued", "queued", "queued", "running"]

        # another flow under its limits still runs, even with the queue full
        other = HTTP.post(f"{server.url}/invoke/elsewhere", json={}, timeout=30)
        assert other.status_code == 200 and other.json() == {"ok": True}, other.text
        assert gate.arrived == 1

        gate.opened.set()
        for response in [first, *accepted]:
            assert wait_for_run(server, response.json()["run_id"])["status"] == "succeeded"
        assert gate.most_inside == 1
        assert len(runs_of(server, later["id"])) == 4  # the refused left no record
        # with the queue empty again, it takes work again
        again = call("later", large)
        assert again.status_code == 202
        assert wait_for_run(server, again.json()["run_id"])["status"] == "succeeded"
    assert_healthy(server)


# -- a killed process's waiting runs ---------------------------------------------------------


def start_serve(home: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "CARDFLOW_HOME": str(home),
        "CARDFLOW_PORT": str(port),
        "CARDFLOW_MAX_RUNS_PER_FLOW": "1",
    }
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", "from cardflow.cli import main; main()", "serve"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )

    def up() -> bool:
        assert process.poll() is None, log.read_text()
        try:
            return HTTP.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
        except httpx.TransportError:
            return False

    eventually(up, 30, "cardflow serve to start")
    return process


def test_queued_and_running_runs_of_a_killed_process_are_marked_interrupted(
    tmp_path: Path,
) -> None:
    home = tmp_path / "home"
    with cardflow.open(home=home) as cf:
        _, token = cf.api_tokens.create("kill-test")
    headers = {"Authorization": f"Bearer {token}"}
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    processes: list[subprocess.Popen[bytes]] = []
    try:
        with Gate() as gate:
            processes.append(start_serve(home, port, log))
            flow = HTTP.post(
                f"{base}/api/v1/flows",
                headers=headers,
                json=endpoint(
                    "held",
                    [{"id": "hold", "card": "api_connector.get", "inputs": {"url": gate.url}}],
                ),
            )
            assert flow.status_code == 201, flow.text
            run_ids = []
            for _ in range(3):
                response = HTTP.post(f"{base}/invoke/held", headers={"Prefer": "respond-async"})
                assert response.status_code == 202, response.text
                run_ids.append(response.json()["run_id"])
            gate.wait_for(1)
            before = [
                HTTP.get(f"{base}/api/v1/runs/{run_id}", headers=headers).json()["status"]
                for run_id in run_ids
            ]
            assert before == ["running", "queued", "queued"]

            processes[0].send_signal(signal.SIGKILL)
            processes[0].wait(timeout=30)
            processes.append(start_serve(home, port, log))
            for run_id in run_ids:
                run = HTTP.get(f"{base}/api/v1/runs/{run_id}", headers=headers).json()
                assert run["status"] == "failed", run
                assert run["error"]["type"] == "interrupted", run
                assert run["ended_at"] is not None
            assert gate.arrived == 1  # the restart did not run them again
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=30)
