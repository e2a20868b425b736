"""Connection runtimes: each connection's auth, ready to use, cached per process.

A card names its connection by id or name; :class:`CardPreparer` turns that into a
:class:`ConnectionRuntime` — the connection's ``httpx.Auth``, its token manager, the hosts
it may be used with and its secrets in every form — and builds the card's context. A
runtime is rebuilt when its connection's version changes (checked at most every
``config_cache_seconds``); token managers survive a rebuild only for the same connection.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

from cardflow.cards.base import CardContext, CardLimits, CardOptions, CardSpec, FlowControl
from cardflow.cards.runner import validate_inputs
from cardflow.connections.service import ConnectionService, LoadedConnection
from cardflow.connections.token_store import describe_unanswered
from cardflow.credentials.authorization_code import OAuthConfig
from cardflow.credentials.base import ConnectionAuth
from cardflow.credentials.basic import BasicAuth, BasicConfig
from cardflow.credentials.client_credentials import BearerTokenAuth, ClientCredentialsConfig
from cardflow.credentials.custom_header import CustomHeaderAuth, CustomHeaderConfig
from cardflow.credentials.grants import ClientCredentialsGrant, RefreshTokenGrant
from cardflow.credentials.none import NoAuth
from cardflow.credentials.token_endpoint import ClientCredentials
from cardflow.credentials.token_manager import TokenGrant, TokenManager, TokenStore
from cardflow.errors import ConnectionNotFound, InvalidInput
from cardflow.net.hosts import AllowedHosts
from cardflow.net.transport import HttpTransport
from cardflow.redaction import LOG_SECRETS, SecretSet, forms_of
from cardflow.settings import Settings
from cardflow.validation import validate

_DEFAULT_OPTIONS = CardOptions()


@dataclass
class ConnectionRuntime:
    id: str
    name: str
    version: int
    auth: ConnectionAuth
    tokens: TokenManager | None
    allowed_hosts: AllowedHosts | None
    # The connection's fixed secrets in every form (tokens are added as they are sent).
    secret_forms: frozenset[str]
    checked_at: float

    def add_secrets_to(self, secrets: SecretSet) -> None:
        secrets.add_forms(self.secret_forms)
        secrets.add_header_names(self.auth.added_headers)
        if self.tokens is not None:
            secrets.add(*self.auth.sensitive_values())


@dataclass
class PreparedCard:
    spec: CardSpec
    inputs: Any
    ctx: CardContext
    connection_id: str | None


class CardPreparer:
    """Validates a card's inputs and options and gives it its connection's auth."""

    def __init__(
        self,
        settings: Settings,
        connections: ConnectionService,
        transport: HttpTransport,
        token_store: TokenStore,
    ) -> None:
        self.settings = settings
        self.connections = connections
        self.transport = transport
        self.token_store = token_store
        self.limits = CardLimits(
            max_nesting_depth=settings.max_nesting_depth,
            max_for_each_items=settings.max_for_each_items,
            max_expression_bytes=settings.max_expression_bytes,
            max_expression_value_bytes=settings.max_expression_value_bytes,
            expression_timeout=settings.expression_timeout,
        )
        self._runtimes: dict[str, ConnectionRuntime] = {}
        self._revalidating: set[str] = set()

    async def prepare(
        self,
        spec: CardSpec,
        connection: str | None,
        inputs: dict[str, Any] | None,
        options: dict[str, Any] | CardOptions | None,
        flow: FlowControl | None = None,
        *,
        secrets: SecretSet | None = None,
        hop: int = 0,
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
        allowed: AllowedHosts | None = None
        if connection is not None:
            if not spec.uses_connection:
                raise InvalidInput(f"{spec.id} does not use a connection.", field="connection")
            runtime = await self.runtime(connection)
            auth, connection_id, allowed = runtime.auth, runtime.id, runtime.allowed_hosts
            if secrets is not None:
                runtime.add_secrets_to(secrets)
        timeout = opts.timeout or self.settings.default_timeout
        ctx = CardContext(
            self.transport,
            auth,
            opts,
            timeout,
            flow,
            allowed_hosts=allowed,
            secrets=secrets,
            limits=self.limits,
            hop=hop,
        )
        return PreparedCard(spec, parsed, ctx, connection_id)

    async def add_secrets(self, refs: set[str], secrets: SecretSet) -> None:
        """Add the secrets of these connections (those that exist) to ``secrets``."""
        for ref in refs:
            try:
                runtime = await self.runtime(ref)
            except ConnectionNotFound:
                continue
            runtime.add_secrets_to(secrets)

    async def runtime(self, ref: str) -> ConnectionRuntime:
        runtime = self._runtimes.get(ref)
        now = time.monotonic()
        if runtime is not None and now - runtime.checked_at < self.settings.config_cache_seconds:
            return runtime
        if runtime is not None and ref in self._revalidating:
            return runtime  # another call is checking it; this one uses what is cached
        self._revalidating.add(ref)
        try:
            return await self._load(ref, runtime, now)
        finally:
            self._revalidating.discard(ref)

    def forget(self, connection_id: str) -> None:
        """Drop what is cached for a connection (its config or tokens changed)."""
        for ref, runtime in list(self._runtimes.items()):
            if runtime.id == connection_id:
                del self._runtimes[ref]

    async def _load(
        self, ref: str, runtime: ConnectionRuntime | None, now: float
    ) -> ConnectionRuntime:
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
        runtime = self._build(loaded)
        self._runtimes[ref] = runtime
        return runtime

    def _build(self, loaded: LoadedConnection) -> ConnectionRuntime:
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
            auth = BearerTokenAuth(tokens, grant.sensitive_values())
        elif isinstance(config, OAuthConfig):
            refresh = RefreshTokenGrant(
                transport=self.transport,
                token_url=config.token_url,
                client=ClientCredentials(config.client_id, config.client_secret),
                auth_method=config.token_auth_method,
                timeout=self.settings.default_timeout,
            )
            tokens = self._token_manager(loaded, refresh)
            auth = BearerTokenAuth(tokens, refresh.sensitive_values())
        else:
            auth = NoAuth()
        forms = forms_of(auth.static_values())
        LOG_SECRETS.register(forms)
        allowed = AllowedHosts(loaded.allowed_hosts, loaded.name) if loaded.allowed_hosts else None
        return ConnectionRuntime(
            loaded.id, loaded.name, loaded.version, auth, tokens, allowed, forms, time.monotonic()
        )

    def _token_manager(self, loaded: LoadedConnection, grant: TokenGrant) -> TokenManager:
        return TokenManager(
            loaded.id,
            grant,
            self.token_store,
            skew=self.settings.token_refresh_skew,
            refresh_timeout=self.settings.token_refresh_timeout,
            describe_unanswered=describe_unanswered,
        )
