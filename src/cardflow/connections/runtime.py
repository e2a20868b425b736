"""Connection runtimes: each connection's auth, ready to use, cached per process.

A card names its connection by id or name; :class:`ConnectionRuntimes` turns that into a
:class:`ConnectionRuntime` — the connection's ``httpx.Auth`` (built by its auth type),
the hosts it may be used with and its secrets in every form. A runtime is rebuilt when its
connection's version changes (checked at most every ``config_cache_seconds``).
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from typing import Any

from cardflow.cache import Recent
from cardflow.connections.rejections import Rejections
from cardflow.connections.service import ConnectionService, LoadedConnection
from cardflow.connections.token_store import describe_unanswered
from cardflow.credentials.base import AuthSetup, ConnectionAuth
from cardflow.credentials.registry import AUTH_TYPES
from cardflow.credentials.token_manager import TokenGrant, TokenManager, TokenStore
from cardflow.errors import ConnectionNotFound
from cardflow.net.hosts import AllowedHosts
from cardflow.net.transport import HttpTransport
from cardflow.redaction import LOG_SECRETS, SecretSet, forms_of
from cardflow.settings import Settings


@dataclass
class ConnectionRuntime:
    id: str
    name: str
    version: int
    auth: ConnectionAuth
    uses_tokens: bool
    allowed_hosts: AllowedHosts | None
    # The connection's fixed secrets in every form (tokens are added as they are sent).
    secret_forms: frozenset[str]
    auth_type: str
    # Its config without the secrets (for Copy as cURL in a test result).
    public_config: dict[str, Any]
    # Where a card's relative url is resolved (None: cards give whole URLs).
    base_url: str | None = None

    def add_secrets_to(self, secrets: SecretSet) -> None:
        secrets.add_forms(self.secret_forms)
        secrets.add_header_names(self.auth.added_headers)
        if self.uses_tokens:
            secrets.add(*self.auth.sensitive_values())


class ConnectionRuntimes:
    """Connection (by id or name) → its runtime, cached and revalidated by version."""

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
        self._cache: Recent[str, ConnectionRuntime] = Recent(settings.config_cache_seconds)
        self._revalidating: set[str] = set()
        # Which connections have their credentials' rejection on record: learned with each
        # revalidation, so that a success on any other costs no I/O.
        self.rejections = Rejections(connections)

    def fresh(self, ref: str) -> ConnectionRuntime | None:
        """The runtime if it was checked recently (no I/O): the hot path, before :meth:`get`."""
        return self._cache.fresh(ref)

    async def get(self, ref: str) -> ConnectionRuntime:
        runtime = self._cache.fresh(ref)
        if runtime is not None:
            return runtime
        runtime = self._cache.stale(ref)
        if runtime is not None and ref in self._revalidating:
            return runtime  # another call is checking it; this one uses what is cached
        self._revalidating.add(ref)
        try:
            return await self._load(ref, runtime)
        finally:
            self._revalidating.discard(ref)

    async def add_secrets(self, refs: set[str], secrets: SecretSet) -> None:
        """Add the secrets of these connections (those that exist) to ``secrets``."""
        for ref in refs:
            try:
                runtime = await self.get(ref)
            except ConnectionNotFound:
                continue
            runtime.add_secrets_to(secrets)

    def forget(self, connection_id: str) -> None:
        """Drop what is cached for a connection (its config or tokens changed)."""
        self.rejections.forget(connection_id)
        for ref, runtime in self._cache.items():
            if runtime.id == connection_id:
                self._cache.forget(ref)

    async def _load(self, ref: str, runtime: ConnectionRuntime | None) -> ConnectionRuntime:
        found = await asyncio.to_thread(self.connections.resolve, ref)
        if found is None:
            self._cache.forget(ref)
            raise ConnectionNotFound(
                f"There is no connection {ref!r} (give its id or its name).", field="connection"
            )
        connection_id, version, rejected = found
        self.rejections.learned(connection_id, rejected)
        if runtime is None or runtime.id != connection_id or runtime.version != version:
            loaded = await asyncio.to_thread(self.connections.load, connection_id)
            runtime = self._build(loaded)
        self._cache.put(ref, runtime)  # checked now
        return runtime

    def _build(self, loaded: LoadedConnection) -> ConnectionRuntime:
        auth_type = AUTH_TYPES[loaded.auth_type]
        setup = AuthSetup(
            transport=self.transport,
            timeout=self.settings.default_timeout,
            token_manager=functools.partial(self._token_manager, loaded.id),
        )
        auth = auth_type.build_auth(loaded.config, setup)
        forms = forms_of(auth.static_values())
        LOG_SECRETS.register(forms)
        allowed = AllowedHosts(loaded.allowed_hosts, loaded.name) if loaded.allowed_hosts else None
        return ConnectionRuntime(
            loaded.id,
            loaded.name,
            loaded.version,
            auth,
            auth_type.uses_tokens,
            allowed,
            forms,
            loaded.auth_type,
            loaded.config.public(),
            loaded.base_url,
        )

    def _token_manager(self, connection_id: str, grant: TokenGrant) -> TokenManager:
        return TokenManager(
            connection_id,
            grant,
            self.token_store,
            skew=self.settings.token_refresh_skew,
            refresh_timeout=self.settings.token_refresh_timeout,
            describe_unanswered=describe_unanswered,
        )
