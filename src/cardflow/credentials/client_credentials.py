"""Auth type ``client_credentials``: a cached bearer token from the token endpoint."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from typing import Literal

from pydantic import Field, field_validator

from cardflow.credentials.base import AuthConfig, ConnectionAuth, IncomingResponse, RequestT
from cardflow.credentials.token_manager import TokenManager, TokenSet
from cardflow.errors import CardflowError
from cardflow.net.urls import check_http_url


class ClientCredentialsConfig(AuthConfig):
    secret_fields = ("client_secret",)
    destination_fields = ("token_url",)

    token_url: str = Field(description="Token endpoint URL.")
    client_id: str = Field(min_length=1)
    client_secret: str = Field(default="", description="Client secret (secret).")
    scope: str | None = Field(default=None, description="Sent exactly as typed.")
    token_auth_method: Literal["client_secret_post", "client_secret_basic"] = Field(
        default="client_secret_post",
        description="client_secret_post sends the credentials in the body (default).",
    )

    @field_validator("token_url")
    @classmethod
    def _token_url(cls, value: str) -> str:
        return check_http_url(value)


class BearerTokenAuth(ConnectionAuth):
    """``Authorization: Bearer <token>`` from a TokenManager; one refresh and retry on a 401."""

    added_headers = frozenset({"authorization"})

    def __init__(self, tokens: TokenManager, grant_secrets: list[str] | None = None) -> None:
        self.tokens = tokens
        self._grant_secrets = list(grant_secrets or ())

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
        request.headers["Authorization"] = f"Bearer {token.access_token}"
        yield request

    async def async_auth_flow(
        self, request: RequestT
    ) -> AsyncGenerator[RequestT, IncomingResponse]:
        token: TokenSet = self.tokens.cached() or await self.tokens.get()
        request.headers["Authorization"] = f"Bearer {token.access_token}"
        response = yield request
        if response.status_code == 401:
            token = await self.tokens.refresh(stale=token)
            request.headers["Authorization"] = f"Bearer {token.access_token}"
            yield request
