"""Auth type ``bearer``: a fixed token as ``Authorization: Bearer <token>``.

Unlike the OAuth types (:mod:`cardflow.credentials.bearer`) nothing fetches or refreshes
the token: a 401 is the answer."""

from __future__ import annotations

from collections.abc import Generator, Mapping
from types import MappingProxyType

from pydantic import Field, field_validator

from cardflow.credentials.base import (
    AuthConfig,
    AuthSetup,
    AuthType,
    ConnectionAuth,
    IncomingResponse,
    RequestT,
)
from cardflow.net.headers import check_header_value


class BearerConfig(AuthConfig):
    secret_fields = ("token",)

    token: str = Field(
        default="",
        description="The token alone (cardflow writes 'Bearer ' before it); secret.",
    )

    @field_validator("token")
    @classmethod
    def _token(cls, value: str) -> str:
        check_header_value(value)
        if value != value.strip():
            raise ValueError(
                "the token starts or ends with a space or tab (a copy-paste slip?): "
                "give the token alone"
            )
        if value[:7].lower() == "bearer ":
            raise ValueError("give the token alone: cardflow writes 'Bearer ' before it")
        return value


class StaticBearerAuth(ConnectionAuth):
    added_headers = frozenset({"authorization"})

    def __init__(self, token: str) -> None:
        self._token = token
        self._header = f"Bearer {token}"
        self._ready = MappingProxyType({"Authorization": self._header})

    def ready_headers(self) -> Mapping[str, str]:
        return self._ready

    def sensitive_values(self) -> list[str]:
        return [self._token]

    def auth_flow(self, request: RequestT) -> Generator[RequestT, IncomingResponse, None]:
        request.headers["Authorization"] = self._header
        yield request


def _build(config: BearerConfig, setup: AuthSetup) -> StaticBearerAuth:
    return StaticBearerAuth(config.token)


AUTH_TYPE = AuthType("bearer", "Bearer Token", BearerConfig, _build)
