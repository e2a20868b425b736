"""A worker process builds the flow engine from its parts and runs a flow, without the
Cardflow facade or the web server ever being imported (issue: queued runs run in workers)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.conftest import MASTER_KEY
from tests.support.upstream import Upstream

WORKER = textwrap.dedent(
    """
    import asyncio, json, sys

    from cardflow.cards.preparer import CardPreparer
    from cardflow.connections.runtime import ConnectionRuntimes
    from cardflow.connections.service import ConnectionService
    from cardflow.connections.token_store import SqlTokenStore
    from cardflow.flows.engine import FlowEngine, RunLimits, StepExecutor
    from cardflow.flows.service import FlowService
    from cardflow.flows.trigger import manual_trigger
    from cardflow.net.policy import NetworkPolicy
    from cardflow.net.transport import HttpTransport
    from cardflow.runs.service import RunService
    from cardflow.runs.writer import RunWriter
    from cardflow.settings import Settings
    from cardflow.store.db import Database
    from cardflow.store.keyring import Keyring, load_master_key

    home, upstream = sys.argv[1], sys.argv[2]
    settings = Settings(home=home, master_key=sys.argv[3])
    db = Database(settings.resolved_database_url)
    db.upgrade()
    keyring = Keyring(load_master_key(settings, db), db)
    keyring.check()
    transport = HttpTransport(
        NetworkPolicy(settings.deny_networks, settings.allow_networks),
        max_response_bytes=settings.max_response_bytes,
    )
    connections = ConnectionService(db, keyring, redirect_uri="http://127.0.0.1/oauth/callback")
    runtimes = ConnectionRuntimes(settings, connections, transport, SqlTokenStore(db, keyring))
    limits = RunLimits.from_settings(settings)
    writer = RunWriter(db)
    engine = FlowEngine(
        StepExecutor(CardPreparer(settings, runtimes, transport), limits), writer, limits
    )
    flows = FlowService(db, keyring, connections, public_url="http://127.0.0.1", cache_seconds=1)
    runs = RunService(db, writer)

    connections.create("Worker - Basic", "basic", {"username": "worker", "password": "pw"},
                       ["127.0.0.1"])
    flows.create({
        "name": "worker flow",
        "trigger": {"type": "manual"},
        "save_data": True,
        "cards": [
            {"id": "get", "card": "api_connector.get", "connection": "Worker - Basic",
             "inputs": {"url": upstream + "/json"}},
        ],
    })

    async def main():
        run_id = await engine.run(
            flows.snapshot("worker flow"), manual_trigger({}), trigger_type="manual"
        )
        await transport.aclose()
        return run_id

    run = runs.get(asyncio.run(main()))
    writer.close()
    loaded = sorted(m for m in sys.modules if m.startswith("cardflow."))
    print(json.dumps({"run": run.model_dump(mode="json"), "modules": loaded}))
    """
)


def test_a_worker_runs_a_flow_without_the_facade(tmp_path: Path, upstream: Upstream) -> None:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    done = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "home"), upstream.url, MASTER_KEY],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.splitlines()[-1])
    run = report["run"]
    assert run["status"] == "succeeded", run
    assert run["cards"][0]["outputs"]["status_code"] == 200
    # The call really went out with the connection's auth.
    sent = dict((name.lower(), value) for name, value in upstream.requests[-1]["headers"])
    assert sent["authorization"] == "Basic d29ya2VyOnB3"  # worker:pw
    # Neither the facade nor the web server was needed (or even imported).
    assert "cardflow.app" not in report["modules"]
    assert not [m for m in report["modules"] if m.startswith("cardflow.server")]
    assert not [m for m in report["modules"] if m.startswith("cardflow.cli")]
