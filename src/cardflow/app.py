"""The Cardflow object: one place that wires settings, store, keys, transport and services.

The server, the CLI and the Python library all work through it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from sqlalchemy.orm import Session

from cardflow._portal import LoopThread
from cardflow.access.api_tokens import ApiTokenService
from cardflow.access.sso import SingleSignOn
from cardflow.access.users import UserService
from cardflow.access.web_sessions import WebSessionService
from cardflow.audit.log import AuditLog
from cardflow.audit.record import Target, record
from cardflow.cards.base import CardOptions
from cardflow.cards.preparer import CardPreparer
from cardflow.cards.runner import CardResult
from cardflow.connections.authorization import AuthorizationService
from cardflow.connections.probe import ConnectionProbe, ConnectionTestResult
from cardflow.connections.revocation import PendingRevocation, RevocationReport, TokenRevoker
from cardflow.connections.runtime import ConnectionRuntimes
from cardflow.connections.service import ConnectionService
from cardflow.connections.token_store import SqlTokenStore
from cardflow.errors import Conflict
from cardflow.flows.card_test import CardTests
from cardflow.flows.engine import FlowEngine, RunLimits, StepExecutor, flow_of_state
from cardflow.flows.scheduler import Scheduler
from cardflow.flows.service import FlowService
from cardflow.flows.trigger import manual_trigger
from cardflow.net.policy import NetworkPolicy
from cardflow.net.transport import HttpTransport
from cardflow.runs.processes import ProcessRegistry
from cardflow.runs.service import RunService, RunView
from cardflow.runs.state import RunStates
from cardflow.runs.writer import RunWriter
from cardflow.settings import Settings
from cardflow.store.db import Database
from cardflow.store.files import private_dir
from cardflow.store.keyring import Keyring, RotationReport, load_master_key

log = logging.getLogger("cardflow")


class Cardflow:
    """An open cardflow: use ``cardflow.open()`` to get one, and close it when done."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        if self.settings.database_url is None or self.settings.master_key is None:
            private_dir(self.settings.home)  # it holds the database or the key file
        self.db = Database(self.settings.resolved_database_url)
        self.db.upgrade()
        self.audit = AuditLog(self.db)
        self.keyring = Keyring(
            load_master_key(self.settings, self.db), self.db, on_rotate=_record_rotation
        )
        self.keyring.check()
        self.token_store = SqlTokenStore(self.db, self.keyring)
        self.transport = HttpTransport(
            NetworkPolicy(self.settings.deny_networks, self.settings.allow_networks),
            max_response_bytes=self.settings.max_response_bytes,
            own_origins=self.settings.own_origins,
        )
        self.revoker = TokenRevoker(self.transport, timeout=self.settings.default_timeout)
        self.connections = ConnectionService(
            self.db,
            self.keyring,
            redirect_uri=self.settings.public_url.rstrip("/") + "/oauth/callback",
            on_change=self._forget,
            revoke=self._revoke,
        )
        self.authorizations = AuthorizationService(
            self.db,
            self.keyring,
            self.connections,
            self.token_store,
            self.transport,
            timeout=self.settings.default_timeout,
            on_authorized=self._forget,
            revoker=self.revoker,
            audit=self.audit,
        )
        self.run_writer = RunWriter(self.db)
        self.runs = RunService(self.db, self.run_writer)
        self.flows = FlowService(
            self.db,
            self.keyring,
            self.connections,
            public_url=self.settings.public_url,
            cache_seconds=self.settings.config_cache_seconds,
            max_flow_bytes=self.settings.max_flow_bytes,
            max_nesting_depth=self.settings.max_nesting_depth,
            max_versions=self.settings.max_flow_versions,
        )
        self.runtimes = ConnectionRuntimes(
            self.settings, self.connections, self.transport, self.token_store
        )
        self.preparer = CardPreparer(self.settings, self.runtimes, self.transport)
        self.probe = ConnectionProbe(
            self.connections, self.runtimes, self.transport, timeout=self.settings.default_timeout
        )
        limits = RunLimits.from_settings(self.settings)
        self.executor = StepExecutor(self.preparer, limits)
        self.run_states = RunStates(
            self.db,
            self.keyring,
            max_bytes=self.settings.max_run_state_bytes,
            max_depth=self.settings.max_nesting_depth,
        )
        self.processes = ProcessRegistry(
            self.db,
            self.run_writer,
            heartbeat=self.settings.worker_heartbeat_seconds,
            stalled_after=self.settings.worker_stalled_after,
        )
        self.engine = FlowEngine(
            self.executor, self.run_writer, limits, self.run_states, self.processes
        )
        self.scheduler = Scheduler(self.db, self.flows, self.engine)
        self.card_tests = CardTests(self.executor, self.runs)
        self.api_tokens = ApiTokenService(self.db, self.audit)
        self.web_sessions = WebSessionService(self.db, self.audit)
        self.users = UserService(self.db, changed=self._forget_callers)
        self.sso = SingleSignOn(self.db, self.settings, changed=self._forget_callers)
        self._portal = LoopThread()

    # -- cards ---------------------------------------------------------------------------

    async def run_card_async(
        self,
        card_id: str,
        *,
        connection: str | None = None,
        inputs: dict[str, Any] | None = None,
        options: dict[str, Any] | CardOptions | None = None,
    ) -> CardResult:
        """Run a card once, without recording it or redacting what it returns (for
        library use, where the caller holds the keys anyway)."""
        return await self.preparer.run(card_id, connection, inputs, options)

    async def test_card_async(
        self,
        card_id: str,
        *,
        connection: str | None = None,
        inputs: dict[str, Any] | None = None,
        options: dict[str, Any] | CardOptions | None = None,
        context: dict[str, Any] | None = None,
        flow_id: str | None = None,
    ) -> CardResult:
        """Test this card: run it, record the run in the run history (under ``flow_id``, the
        flow being built, when given), and return what it
        gave with every secret it put on the wire blanked out.

        With ``context`` ({"trigger": …, "steps": {card id: outputs}}), ``{{ }}`` expressions
        in the inputs are evaluated against it, as in a run (the builder passes the outputs
        of the earlier cards' last tests)."""
        return await self.card_tests.test(
            card_id,
            connection=connection,
            inputs=inputs,
            options=options,
            context=context,
            flow_id=flow_id,
        )

    def run_card(self, card_id: str, **kwargs: Any) -> CardResult:
        """Sync twin of :meth:`run_card_async`."""
        return self._portal.run(self.run_card_async(card_id, **kwargs))

    def test_card(self, card_id: str, **kwargs: Any) -> CardResult:
        """Sync twin of :meth:`test_card_async`."""
        return self._portal.run(self.test_card_async(card_id, **kwargs))

    # -- connections ---------------------------------------------------------------------

    async def test_connection_async(self, ref: str) -> ConnectionTestResult:
        """Send the connection's ``test_request`` with its auth, as a card would: how it
        went (ok = 2xx, status, time), never the response body. A 401/403 is recorded as
        its rejection."""
        return await self.probe.test(ref)

    def test_connection(self, ref: str) -> ConnectionTestResult:
        """Sync twin of :meth:`test_connection_async`."""
        return self._portal.run(self.test_connection_async(ref))

    # -- flows ---------------------------------------------------------------------------

    async def run_flow_async(
        self, ref: str, inputs: dict[str, Any] | None = None, *, hop: int = 0
    ) -> RunView:
        """Run a flow now (manual trigger) and return the finished run."""
        snapshot = await asyncio.to_thread(self.flows.snapshot, ref)
        run_id = await self.engine.run(
            snapshot, manual_trigger(inputs), trigger_type="manual", hop=hop
        )
        return await asyncio.to_thread(self.runs.get, run_id)

    async def queue_flow_run_async(
        self, ref: str, inputs: dict[str, Any] | None = None, *, hop: int = 0, wait: float = 0
    ) -> RunView:
        """Queue a manual run (PostgreSQL, with a queue in use) and return it once it has
        ended, or as it is after ``wait`` seconds."""
        snapshot = await asyncio.to_thread(self.flows.snapshot, ref)
        run_id = await self.engine.enqueue(
            snapshot, manual_trigger(inputs), trigger_type="manual", waiting_caller=False, hop=hop
        )
        return await self._run_when_ended(run_id, wait)

    async def retry_run_async(
        self, run_id: str, *, original: bool = False, wait: float = 0
    ) -> RunView:
        """Retry a failed run from its failed card, with the earlier cards' outputs, as a
        new run linked to it (``retry_of``). The flow as saved now runs (a fixed card is
        what one usually retries for) unless ``original``: the flow as the run had it.
        Returns the new run once it has ended, or as it is after ``wait`` seconds."""
        state = await asyncio.to_thread(self.run_states.load, run_id)
        failed = await asyncio.to_thread(self.runs.get, run_id)  # RunNotFound if absent
        if failed.status != "failed" or state is None or failed.flow_id is None:
            raise Conflict(
                f"Run {run_id} cannot be retried: only a failed run of a flow can, while its "
                "history is kept.",
                field="run_id",
            )
        failed_card = state["flow"]["document"]["cards"][int(state["next"])]["id"]
        if original:
            flow = flow_of_state(state)
        else:
            flow = await asyncio.to_thread(self.flows.snapshot, failed.flow_id)
        ids = [step.id for step in flow.document.cards]
        if failed_card not in ids:
            raise Conflict(
                f"The card {failed_card!r} that failed is no longer in the flow: retry with "
                "the flow as the run had it (original), or run the flow again.",
                field="original",
            )
        start = ids.index(failed_card)
        earlier = set(ids[:start])
        steps = {key: value for key, value in (state.get("steps") or {}).items() if key in earlier}
        new_id = await self.engine.enqueue(
            flow,
            state["trigger"],
            trigger_type=failed.trigger,
            waiting_caller=bool(state.get("waiting_caller")),
            answered=True,  # its caller, if any, had its answer with the first run
            hop=int(state.get("hop", 0)),
            retry_of=run_id,
            steps=steps,
            start=start,
        )
        return await self._run_when_ended(new_id, wait)

    async def _run_when_ended(self, run_id: str, wait: float) -> RunView:
        deadline = time.monotonic() + wait
        pause = 0.02
        while True:
            run = await asyncio.to_thread(self.runs.get, run_id)
            if run.status not in ("queued", "running") or time.monotonic() >= deadline:
                return run
            await asyncio.sleep(min(pause, max(deadline - time.monotonic(), 0)))
            pause = min(pause * 2, 0.5)

    def retry_run(self, run_id: str, *, original: bool = False, wait: float = 0) -> RunView:
        """Sync twin of :meth:`retry_run_async`."""
        return self._portal.run(self.retry_run_async(run_id, original=original, wait=wait))

    def run_flow(self, ref: str, inputs: dict[str, Any] | None = None) -> RunView:
        """Sync twin of :meth:`run_flow_async`."""
        return self._portal.run(self.run_flow_async(ref, inputs))

    def _forget(self, connection_id: str) -> None:
        self.runtimes.forget(connection_id)

    def _revoke(self, pending: PendingRevocation) -> RevocationReport:
        # connections.delete is sync (called from threads): the request runs on the portal
        return self._portal.run(self.revoker.revoke(pending))

    # -- lifecycle -------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the HTTP session of the running loop (call from the loop that used it)."""
        await self.transport.aclose()

    def _forget_callers(self) -> None:
        """A user's role changed or the user went: check every token and session again."""
        self.api_tokens.checked.clear()
        self.web_sessions.checked.clear()

    def close(self) -> None:
        self._portal.close(self.transport.aclose())
        self.run_writer.close()
        self.processes.close()
        self.db.dispose()

    def __enter__(self) -> Cardflow:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _record_rotation(session: Session, report: RotationReport) -> None:
    record(
        session,
        "keys.rotated",
        Target("keys", str(report.new_key_id)),
        details={
            "connections": report.connections,
            "tokens": report.tokens,
            "retired_keys_removed": report.retired_keys_removed,
        },
    )


def open(**settings: Any) -> Cardflow:
    """Open cardflow with ``CARDFLOW_*`` settings, overridden by keyword arguments.

    >>> cf = cardflow.open(home="/tmp/cf")         # doctest: +SKIP
    >>> cf.test_card("api_connector.get", inputs={"url": "https://example.com"})  # doctest: +SKIP
    """
    return Cardflow(Settings(**settings))
