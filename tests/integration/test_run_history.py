"""Listing runs on both databases: keyset pages and filters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import pytest

from cardflow.app import Cardflow
from cardflow.errors import RunNotFound
from tests.conftest import RunningServer


def test_run_list_pages_with_before_and_filters(cf: Cardflow) -> None:
    """Keyset pages (newest first, ties broken by id) never repeat or skip a run."""
    flow = cf.flows.create(
        {
            "name": "many",
            "trigger": {"type": "manual"},
            "cards": [{"id": "c", "card": "object.construct", "inputs": {"n": 1}}],
        }
    )
    made = [cf.run_flow(flow.id).id for _ in range(7)]
    seen: list[str] = []
    before = None
    while True:
        page = cf.runs.list(flow_id=flow.id, limit=3, before=before)
        if not page:
            break
        seen += [run.id for run in page]
        before = page[-1].id
    assert sorted(seen) == sorted(made) and len(seen) == 7
    assert cf.runs.list(flow_id=flow.id, status="failed") == []
    assert len(cf.runs.list(trigger="manual", status="succeeded")) == 7
    later = datetime.now(UTC) + timedelta(minutes=1)
    assert cf.runs.list(since=later) == []
    assert len(cf.runs.list(until=later)) == 7
    with pytest.raises(RunNotFound):
        cf.runs.list(before="run_nope")


def test_a_flows_last_run_is_in_every_view_of_it(cf: Cardflow) -> None:
    document = {
        "name": "last",
        "trigger": {"type": "manual"},
        "cards": [{"id": "c", "card": "object.construct", "inputs": {"n": 1}}],
    }
    flow = cf.flows.create(document)
    assert flow.last_run is None
    newest = [cf.run_flow(flow.id).id for _ in range(2)][-1]
    assert cf.flows.get(flow.id).last_run is not None
    assert cf.flows.get(flow.id).last_run.id == newest  # type: ignore[union-attr]
    replaced = cf.flows.replace(flow.id, {**document, "description": "changed"})
    assert replaced.last_run is not None and replaced.last_run.id == newest
    assert [v.last_run.id for v in cf.flows.list() if v.last_run] == [newest]


def test_a_card_test_is_listed_under_its_flow_apart_from_its_runs(server: RunningServer) -> None:
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=30) as api:
        flow = api.post(
            "/api/v1/flows",
            json={
                "name": "Built",
                "trigger": {"type": "manual"},
                "cards": [{"id": "c", "card": "object.construct", "inputs": {"n": 1}}],
            },
        ).json()
        real = api.post(f"/api/v1/flows/{flow['id']}/runs", json={}).json()
        tested = api.post(
            "/api/v1/cards/object.construct/test", json={"inputs": {"n": 2}, "flow": "Built"}
        ).json()
        run = api.get(f"/api/v1/runs/{tested['run_id']}").json()
        assert (run["flow_id"], run["trigger"]) == (flow["id"], "card_test")
        both = api.get("/api/v1/runs", params={"flow_id": flow["id"]}).json()
        assert [r["id"] for r in both] == [tested["run_id"], real["id"]]
        apart = api.get("/api/v1/runs", params={"flow_id": flow["id"], "card_tests": False})
        assert [r["id"] for r in apart.json()] == [real["id"]]
        assert api.get(f"/api/v1/flows/{flow['id']}").json()["last_run"]["id"] == real["id"]
        # a test run is not retried as a run of its flow
        assert api.post(f"/api/v1/runs/{tested['run_id']}/retry").status_code == 409
        unknown = api.post(
            "/api/v1/cards/object.construct/test", json={"inputs": {}, "flow": "nope"}
        )
        assert unknown.status_code == 404 and unknown.json()["error"]["field"] == "flow"
