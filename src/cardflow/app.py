"""The Cardflow object: one place that wires settings, store, keys, transport and services.

The server, the CLI and the Python library all work through it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from cardflow._portal import LoopThread
from cardflow.api_tokens import ApiTokenService
from cardflow.auth.base import ConnectionAuth
from cardflow.auth.basic import BasicAuth, BasicConfig
from cardflow.auth.client_credentials import BearerTokenAuth, ClientCredentialsConfig
from cardflow.auth.custom import CustomHeaderAuth, CustomHeaderConfig
from cardflow.auth.grants import ClientCredentialsGrant, RefreshTokenGrant
from cardflow.auth.none import NoAuth
from cardflow.auth.oauth import OAuthConfig
from cardflow.auth.tokens import TokenGrant, TokenManager
from cardflow.cards.base import CardContext, CardOptions, CardSpec, FlowControl
from cardflow.cards.registry import get_card
from cardflow.cards.runner import CardResult, run_card, validate_inputs
from cardflow.connections import ConnectionService, LoadedConnection
from cardflow.errors import ConnectionNotFound, InvalidInput
from cardflow.flows.card_test import CardTestControl, card_test_scope, render_inputs
from cardflow.flows.engine import FlowEngine
from cardflow.flows.service import FlowService
from cardflow.flows.trigger import manual_trigger
from cardflow.net.policy import NetworkPolicy
from cardflow.net.transport import HttpTransport
from cardflow.oauth import AuthorizationService
from cardflow.oauth2.tokens import ClientCredentials
from cardflow.run_writer import RunWriter
from cardflow.runs import RunService
from cardflow.settings import Settings
from cardflow.store.db import Database
from cardflow.store.keyring import Keyring, load_master_key
from cardflow.store.tokens import SqlTokenStore
from cardflow.validation import validate
from cardflow.web_sessions import WebSessionService

log = logging.getLogger("cardflow")
_DEFAULT_OPTIONS = CardOptions()


@dataclass
class PreparedCard:
    spec: CardSpec
    inputs: Any
    ctx: CardContext
    connection_id: str | None


@dataclass
class _Runtime:
    id: str
    version: int
    auth: ConnectionAuth
    tokens: TokenManager | None
    checked_at: float


class Cardflow:
    """An open cardflow: use ``cardflow.open()`` to get one, and close it when done."""

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings or Settings()
        self.db = Database(self.settings.resolved_database_url)
        self.db.upgrade()
        self.keyring = Keyring(load_master_key(self.settings, self.db), self.db)
        self.keyring.check()
        self.token_store = SqlTokenStore(self.db, self.keyring)
        self.transport = HttpTransport(
            NetworkPolicy(self.settings.deny_networks, self.settings.allow_networks),
            max_response_bytes=self.settings.max_response_bytes,
        )
        self.connections = ConnectionService(
            self.db,
            self.keyring,
            redirect_uri=self.settings.public_url.rstrip("/") + "/oauth/callback",
            on_change=self._forget,
        )
        self.authorizations = AuthorizationService(
            self.db,
            self.keyring,
            self.connections,
            self.token_store,
            self.transport,
            timeout=self.settings.default_timeout,
            on_authorized=self._forget,
        )
        self.run_writer = RunWriter(self.db)
        self.runs = RunService(self.db, self.run_writer)
        self.flows = FlowService(
            self.db,
            self.keyring,
            self.connections,
            public_url=self.settings.public_url,
            cache_seconds=self.settings.config_cache_seconds,
        )
        self.engine = FlowEngine(
            self, self.run_writer, max_concurrent_runs=self.settings.max_concurrent_runs
        )
        self.api_tokens = ApiTokenService(self.db)
        self.web_sessions = WebSessionService(self.db)
        self._runtimes: dict[str, _Runtime] = {}
        self._revalidating: set[str] = set()
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
        """Run a card once, without recording it (for library use and flows)."""
        prepared = await self.prepare_card(get_card(card_id), connection, inputs, options)
        return await run_card(prepared.spec, prepared.inputs, prepared.ctx)

    async def test_card_async(
        self,
        card_id: str,
        *,
        connection: str | None = None,
        inputs: dict[str, Any] | None = None,
        options: dict[str, Any] | CardOptions | None = None,
        context: dict[str, Any] | None = None,
    ) -> CardResult:
        """Test this card: run it and record the run in the run history.

        With ``context`` ({"trigger": …, "steps": {card id: outputs}}), ``{{ }}`` expressions
        in the inputs are evaluated against it, as in a run (the builder passes the outputs
        of the earlier cards' last tests)."""
        spec = get_card(card_id)
        scope = card_test_scope(context or {})
        if context is not None:
            inputs = render_inputs(spec, inputs or {}, scope)
        control = CardTestControl(self._prepare_nested, scope)
        prepared = await self.prepare_card(spec, connection, inputs, options, control)
        started_at = datetime.now(UTC)
        result = await run_card(prepared.spec, prepared.inputs, prepared.ctx)
        result.run_id = self.runs.record_card_test(
            prepared.spec.id, prepared.connection_id, result, started_at
        )
        result.answer = control.answer  # what a Return or Close would answer the caller
        return result

    async def _prepare_nested(
        self,
        spec: CardSpec,
        connection: str | None,
        inputs: dict[str, Any],
        options: CardOptions,
        control: CardTestControl,
    ) -> tuple[Any, CardContext]:
        prepared = await self.prepare_card(spec, connection, inputs, options, control)
        return prepared.inputs, prepared.ctx

    def run_card(self, card_id: str, **kwargs: Any) -> CardResult:
        """Sync twin of :meth:`run_card_async`."""
        return self._portal.run(self.run_card_async(card_id, **kwargs))

    def test_card(self, card_id: str, **kwargs: Any) -> CardResult:
        """Sync twin of :meth:`test_card_async`."""
        return self._portal.run(self.test_card_async(card_id, **kwargs))

    async def prepare_card(
        self,
        spec: CardSpec,
        connection: str | None,
        inputs: dict[str, Any] | None,
        options: dict[str, Any] | CardOptions | None,
        flow: FlowControl | None = None,
    ) -> PreparedCard:
        """Validate a card's inputs and options and find its connection's auth."""
        parsed = validate_inputs(spec, inputs)
        if isinstance(options, CardOptions):
            opts = options
        elif not options:
            opts = _DEFAULT_OPTIONS
        else:
            opts = validate(CardOptions, options, "options")
        auth: ConnectionAuth | None = None
        connection_id: str | None = None
        if connection is not None:
            if not spec.uses_connection:
                raise InvalidInput(f"{spec.id} does not use a connection.", field="connection")
            runtime = await self._runtime(connection)
            auth, connection_id = runtime.auth, runtime.id
        timeout = opts.timeout or self.settings.default_timeout
        ctx = CardContext(self.transport, auth, opts, timeout, flow)
        return PreparedCard(spec, parsed, ctx, connection_id)

    # -- flows ---------------------------------------------------------------------------

    async def run_flow_async(
        self, ref: str, inputs: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Run a flow now (manual trigger) and return the finished run."""
        snapshot = await asyncio.to_thread(self.flows.snapshot, ref)
        run_id = await self.engine.run(snapshot, manual_trigger(inputs), trigger_type="manual")
        return await asyncio.to_thread(self.runs.get, run_id)

    def run_flow(self, ref: str, inputs: dict[str, Any] | None = None) -> dict[str, Any]:
        """Sync twin of :meth:`run_flow_async`."""
        return self._portal.run(self.run_flow_async(ref, inputs))

    # -- connection runtime (auth objects, cached) ------------------------------------------

    async def _runtime(self, ref: str) -> _Runtime:
        runtime = self._runtimes.get(ref)
        now = time.monotonic()
        if runtime is not None and now - runtime.checked_at < self.settings.config_cache_seconds:
            return runtime
        if runtime is not None and ref in self._revalidating:
            return runtime  # another call is checking it; this one uses what is cached
        self._revalidating.add(ref)
        try:
            return await self._load_runtime(ref, runtime, now)
        finally:
            self._revalidating.discard(ref)

    async def _load_runtime(self, ref: str, runtime: _Runtime | None, now: float) -> _Runtime:
        found = await asyncio.to_thread(self.connections.resolve, ref)
        if found is None:
            self._runtimes.pop(ref, None)
            raise ConnectionNotFound(
                f"There is no connection {ref!r} (give its id or its name).", field="connection"
            )
        connection_id, version = found
        if runtime is not None and runtime.id == connection_id and runtime.version == version:
            runtime.checked_at = now
            return runtime
        loaded = await asyncio.to_thread(self.connections.load, connection_id)
        previous = runtime if runtime is not None and runtime.id == connection_id else None
        runtime = self._build(loaded, previous)
        self._runtimes[ref] = runtime
        return runtime

    def _build(self, loaded: LoadedConnection, previous: _Runtime | None) -> _Runtime:
        config = loaded.config
        tokens: TokenManager | None = None
        auth: ConnectionAuth
        if isinstance(config, BasicConfig):
            auth = BasicAuth(config.username, config.password)
        elif isinstance(config, CustomHeaderConfig):
            auth = CustomHeaderAuth(config.header_name, config.header_value)
        elif isinstance(config, ClientCredentialsConfig):
            grant = ClientCredentialsGrant(
                transport=self.transport,
                token_url=config.token_url,
                client=ClientCredentials(config.client_id, config.client_secret),
                scope=config.scope,
                auth_method=config.token_auth_method,
                timeout=self.settings.default_timeout,
            )
            tokens = self._token_manager(loaded, grant)
            auth = BearerTokenAuth(tokens, config.client_secret)
        elif isinstance(config, OAuthConfig):
            tokens = self._token_manager(
                loaded,
                RefreshTokenGrant(
                    transport=self.transport,
                    token_url=config.token_url,
                    client=ClientCredentials(config.client_id, config.client_secret),
                    auth_method=config.token_auth_method,
                    timeout=self.settings.default_timeout,
                ),
            )
            auth = BearerTokenAuth(tokens, config.client_secret)
        else:
            auth = NoAuth()
        return _Runtime(loaded.id, loaded.version, auth, tokens, time.monotonic())

    def _token_manager(self, loaded: LoadedConnection, grant: TokenGrant) -> TokenManager:
        return TokenManager(
            loaded.id,
            grant,
            self.token_store,
            skew=self.settings.token_refresh_skew,
            lease_seconds=self.settings.token_lease_seconds,
        )

    def _forget(self, connection_id: str) -> None:
        for ref, runtime in list(self._runtimes.items()):
            if runtime.id == connection_id:
                del self._runtimes[ref]

    # -- lifecycle -------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the HTTP session of the running loop (call from the loop that used it)."""
        await self.transport.aclose()

    def close(self) -> None:
        self._portal.close(self.transport.aclose())
        self.run_writer.close()
        self.db.dispose()

    def __enter__(self) -> Cardflow:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open(**settings: Any) -> Cardflow:
    """Open cardflow with ``CARDFLOW_*`` settings, overridden by keyword arguments.

    >>> cf = cardflow.open(home="/tmp/cf")         # doctest: +SKIP
    >>> cf.test_card("api_connector.get", inputs={"url": "https://example.com"})  # doctest: +SKIP
    """
    return Cardflow(Settings(**settings))
