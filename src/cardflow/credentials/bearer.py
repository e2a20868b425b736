"""``Authorization: Bearer <token>`` from a connection's token manager (OAuth 2.0 and
client-credentials connections)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator, Mapping
from types import MappingProxyType

from cardflow.credentials.base import (
    ConnectionAuth,
    IncomingResponse,
    OutgoingRequest,
    RequestT,
)
from cardflow.credentials.token_manager import TokenManager, TokenSet
from cardflow.errors import CardflowError


class BearerTokenAuth(ConnectionAuth):
    """``Authorization: Bearer <token>`` from a TokenManager; one refresh and retry on a 401."""

    added_headers = frozenset({"authorization"})
    retries_unauthorized = True

    def __init__(self, tokens: TokenManager, grant_secrets: list[str] | None = None) -> None:
        self.tokens = tokens
        self._grant_secrets = list(grant_secrets or ())
        # The headers of the last token used, built once per token.
        self._ready: tuple[TokenSet, Mapping[str, str]] | None = None

    def ready_headers(self) -> Mapping[str, str] | None:
        """The cached token's header while it is fresh; None: fetch one (the auth flow)."""
        token = self.tokens.cached()
        if token is None:
            return None
        ready = self._ready
        if ready is None or ready[0] is not token:
            ready = self._ready = (token, _headers(token))
        return ready[1]

    async def unauthorized(self, request: OutgoingRequest) -> bool:
        """Refresh the token that was refused, unless someone already replaced it, and send
        the request once more with the new one."""
        last = self.tokens.last()
        sent = request.headers.get("Authorization")
        stale = last if last is not None and sent == _header(last) else None
        token = await self.tokens.refresh(stale=stale)
        request.headers["Authorization"] = _header(token)
        return True

    def static_values(self) -> list[str]:
        """The client secret as it goes to the token endpoint (raw, in Basic credentials)."""
        return self._grant_secrets

    def sensitive_values(self) -> list[str]:
        values = list(self._grant_secrets)
        token = self.tokens.last()
        if token is not None:
            values.append(token.access_token)
            if token.token.refresh_token:
                values.append(token.token.refresh_token)
        return values

    def auth_flow(self, request: RequestT) -> Generator[RequestT, IncomingResponse, None]:
        # Synchronous httpx clients can use a token the async side has fetched.
        token = self.tokens.cached()
        if token is None:
            raise CardflowError("No token cached yet: use an async client (cardflow is async).")
        request.headers["Authorization"] = _header(token)
        yield request

    async def async_auth_flow(
        self, request: RequestT
    ) -> AsyncGenerator[RequestT, IncomingResponse]:
        token: TokenSet = self.tokens.cached() or await self.tokens.get()
        request.headers["Authorization"] = _header(token)
        response = yield request
        if response.status_code == 401:
            token = await self.tokens.refresh(stale=token)
            request.headers["Authorization"] = _header(token)
            yield request


def _header(token: TokenSet) -> str:
    return f"Bearer {token.access_token}"


def _headers(token: TokenSet) -> Mapping[str, str]:
    return MappingProxyType({"Authorization": _header(token)})
