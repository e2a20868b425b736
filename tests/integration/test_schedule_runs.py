"""A scheduled flow runs on its own: in `cardflow serve`'s process on SQLite, through the
queue's workers on PostgreSQL."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta
from itertools import pairwise
from typing import Any

import httpx
import pytest

from cardflow.app import Cardflow
from tests.conftest import RunningServer
from tests.support.upstream import Upstream


def scheduled_runs(api: httpx.Client, flow_id: str) -> list[dict[str, Any]]:
    runs = api.get("/api/v1/runs", params={"flow_id": flow_id, "limit": 500}).json()
    return [run for run in runs if run["status"] not in ("queued", "running")]


def test_a_scheduled_flow_runs_on_its_own_until_disabled(
    server: RunningServer, upstream: Upstream
) -> None:
    document = {
        "name": "every second",
        "trigger": {"type": "schedule", "every": "1s"},
        "save_data": True,
        "cards": [
            {
                "id": "ping",
                "card": "api_connector.get",
                "inputs": {"url": f"{upstream.url}/echo/tick?at={{{{ trigger.scheduled_at }}}}"},
            }
        ],
    }
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=30) as api:
        created = api.post("/api/v1/flows", json=document)
        assert created.status_code == 201, created.text
        flow = created.json()
        assert flow["trigger"]["every"] == "1s"
        deadline = time.monotonic() + 30
        while len(runs := scheduled_runs(api, flow["id"])) < 3:
            assert time.monotonic() < deadline, runs
            time.sleep(0.2)
        assert all(run["trigger"] == "schedule" and run["status"] == "succeeded" for run in runs)
        due = sorted(datetime.fromisoformat(run["trigger_data"]["scheduled_at"]) for run in runs)
        assert len(set(due)) == len(due)  # each fire time once
        assert all(b - a == timedelta(seconds=1) for a, b in pairwise(due))
        assert all(moment.microsecond == 0 for moment in due)  # whole seconds, from the epoch
        disabled = api.put(f"/api/v1/flows/{flow['id']}", json={**document, "enabled": False})
        assert disabled.status_code == 200, disabled.text
        time.sleep(1.5)  # a tick already going may still start one
        settled = len(api.get("/api/v1/runs", params={"flow_id": flow["id"]}).json())
        time.sleep(2.5)
        assert len(api.get("/api/v1/runs", params={"flow_id": flow["id"]}).json()) == settled


async def ticked(cf: Cardflow, now: datetime) -> list[str]:
    started = await cf.scheduler.tick(now)
    while any(not task.done() for task in list(cf.engine._tasks)):  # runs of this process
        await asyncio.sleep(0.01)
    await cf.run_writer.flush_async()
    return started


@pytest.mark.parametrize("catch_up", [True, False])
async def test_fires_missed_while_nothing_ticked_run_once_or_not_at_all(
    cf: Cardflow, catch_up: bool
) -> None:
    flow = cf.flows.create(
        {
            "name": f"catch up {catch_up}",
            "trigger": {"type": "schedule", "every": "1s", "catch_up": catch_up},
            "save_data": True,
            "cards": [],
        }
    )
    first = flow.updated_at.replace(microsecond=0) + timedelta(seconds=3)
    assert len(await ticked(cf, first)) == 3  # each fire since the flow was saved
    assert await ticked(cf, first) == []  # the same tick again: nothing new
    later = first + timedelta(minutes=10)  # ten minutes with no tick: ~540 fires missed
    started = await ticked(cf, later)
    assert len(started) == (61 if catch_up else 60)  # the last minute's fires each
    due = [
        datetime.fromisoformat(run.trigger_data["scheduled_at"])
        for run in cf.runs.list(flow_id=flow.id, limit=500)
        if run.trigger_data is not None
    ]
    missed = [moment for moment in due if first < moment <= later - timedelta(seconds=60)]
    assert missed == ([later - timedelta(seconds=60)] if catch_up else [])
    assert len(set(due)) == len(due)
