"""Retrying a failed run from its failed card, with the earlier cards' outputs: over REST
(SQLite: in the server's process; PostgreSQL: through the queue), with the flow as saved now
or as the run had it, and from the CLI."""

from __future__ import annotations

import secrets
import time
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from cardflow.app import Cardflow
from cardflow.cli import app as cli_app
from tests.conftest import RunningServer
from tests.support.upstream import Upstream


def client(server: RunningServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers=server.headers, timeout=30)


def flaky_flow(upstream: Upstream, alias: str, fails: int = 1) -> dict[str, Any]:
    """first (counts its calls) → second (answers 500 to its first ``fails`` calls) → third
    (sends first's output to the upstream, so the test sees which output it got)."""
    key = "{{ trigger.body.key }}"
    return {
        "name": f"retry {alias}",
        "trigger": {"type": "api_endpoint", "alias": alias, "security": "none"},
        "cards": [
            {
                "id": "first",
                "card": "api_connector.get",
                "inputs": {"url": f"{upstream.url}/flaky/first-{key}"},
            },
            {
                "id": "second",
                "card": "api_connector.get",
                "inputs": {"url": f"{upstream.url}/flaky/second-{key}?fail={fails}&code=500"},
            },
            {
                "id": "third",
                "card": "api_connector.get",
                "inputs": {
                    "url": f"{upstream.url}/echo/third-{key}",
                    "query": {"first_calls": "{{ steps.first.body.calls }}"},
                },
            },
        ],
    }


def wait_ended(api: httpx.Client, run_id: str) -> dict[str, Any]:
    for _ in range(600):
        run: dict[str, Any] = api.get(f"/api/v1/runs/{run_id}").json()
        if run["status"] not in ("queued", "running"):
            return run
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} did not end")


def failed_run(server: RunningServer, upstream: Upstream, alias: str) -> tuple[str, str]:
    """A run of the flaky flow that failed at 'second'; returns (run id, key)."""
    key = secrets.token_hex(4)
    answer = httpx.post(f"{server.url}/invoke/{alias}", json={"key": key}, timeout=30)
    assert answer.status_code == 500, answer.text
    run_id: str = answer.json()["run_id"]
    with client(server) as api:
        run = wait_ended(api, run_id)
    assert run["status"] == "failed" and run["error"]["card"] == "second", run
    return run_id, key


def third_calls(upstream: Upstream, key: str) -> list[dict[str, list[str]]]:
    return [r["query"] for r in upstream.requests if r["path"] == f"/echo/third-{key}"]


def test_retry_goes_on_from_the_failed_card_with_the_earlier_outputs(
    server: RunningServer, upstream: Upstream
) -> None:
    with client(server) as api:
        assert api.post("/api/v1/flows", json=flaky_flow(upstream, "retry1")).status_code == 201
        run_id, key = failed_run(server, upstream, "retry1")
        answer = api.post(f"/api/v1/runs/{run_id}/retry")
        assert answer.status_code == 201, answer.text
        again = wait_ended(api, answer.json()["id"])
        assert again["status"] == "succeeded", again
        assert again["retry_of"] == run_id
        assert [event["type"] for event in again["events"]] == ["retry"]
        assert "from card 'second'" in again["events"][0]["message"]
        # first is not run again: the retry got its output from the failed run
        assert [card["id"] for card in again["cards"]] == ["second", "third"]
        assert upstream.calls(f"first-{key}") == 1
        assert upstream.calls(f"second-{key}") == 2
        assert third_calls(upstream, key) == [{"first_calls": ["1"]}]
        # the failed run can be retried again; a run that succeeded cannot
        assert api.post(f"/api/v1/runs/{run_id}/retry").status_code == 201
        refused = api.post(f"/api/v1/runs/{again['id']}/retry")
        assert refused.status_code == 409, refused.text
        assert refused.json()["error"]["field"] == "run_id"
        missing = api.post("/api/v1/runs/run_nope/retry")
        assert missing.status_code == 404


def test_retry_runs_the_flow_as_saved_unless_told_original(
    server: RunningServer, upstream: Upstream
) -> None:
    with client(server) as api:
        flow = api.post("/api/v1/flows", json=flaky_flow(upstream, "retry2", fails=5)).json()
        run_id, key = failed_run(server, upstream, "retry2")
        # The fix: 'second' now calls a URL that answers. Saved now, used by the retry.
        fixed = flaky_flow(upstream, "retry2", fails=0)
        fixed["cards"][1]["inputs"]["url"] = (
            f"{upstream.url}/flaky/fixed-{{{{ trigger.body.key }}}}"
        )
        assert api.put(f"/api/v1/flows/{flow['id']}", json=fixed).status_code == 200
        retried = wait_ended(api, api.post(f"/api/v1/runs/{run_id}/retry").json()["id"])
        assert retried["status"] == "succeeded", retried
        assert upstream.calls(f"fixed-{key}") == 1
        # As the run had it: the old URL, still failing.
        original = api.post(f"/api/v1/runs/{run_id}/retry", params={"original": "true"})
        assert wait_ended(api, original.json()["id"])["status"] == "failed"
        assert upstream.calls(f"second-{key}") == 2
        # A flow whose failed card is gone: the retry says so and offers the original.
        renamed = dict(fixed, cards=[fixed["cards"][0], {**fixed["cards"][1], "id": "other"}])
        assert api.put(f"/api/v1/flows/{flow['id']}", json=renamed).status_code == 200
        gone = api.post(f"/api/v1/runs/{run_id}/retry")
        assert gone.status_code == 409, gone.text
        assert "'second'" in gone.json()["error"]["message"]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_cli_retry(cf: Cardflow, server: RunningServer, upstream: Upstream) -> None:
    with client(server) as api:
        assert api.post("/api/v1/flows", json=flaky_flow(upstream, "retry3")).status_code == 201
    run_id, key = failed_run(server, upstream, "retry3")
    env = {"CARDFLOW_HOME": str(cf.settings.home), "CARDFLOW_MASTER_KEY": "9f" * 32}
    result = CliRunner().invoke(cli_app, ["run", "retry", run_id, "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert '"status": "succeeded"' in result.stdout
    assert f'"retry_of": "{run_id}"' in result.stdout
    assert third_calls(upstream, key) == [{"first_calls": ["1"]}]
    result = CliRunner().invoke(cli_app, ["run", "retry", "run_nope"], env=env)
    assert result.exit_code == 2
    assert "There is no run 'run_nope'" in result.stderr
