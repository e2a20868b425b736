"""Auth type ``basic``: ``Authorization: Basic base64(username:password)``."""

from __future__ import annotations

import base64
from collections.abc import Generator, Mapping
from types import MappingProxyType

from pydantic import Field

from cardflow.credentials.base import (
    AuthConfig,
    AuthSetup,
    AuthType,
    ConnectionAuth,
    IncomingResponse,
    RequestT,
)


class BasicConfig(AuthConfig):
    secret_fields = ("password",)
    optional_secret_fields = ("password",)  # some services give a user name only

    username: str = Field(min_length=1, description="User name sent in the Basic header.")
    password: str = Field(default="", description="Password (secret).")


class BasicAuth(ConnectionAuth):
    added_headers = frozenset({"authorization"})

    def __init__(self, username: str, password: str) -> None:
        credentials = f"{username}:{password}".encode()  # RFC 7617 with charset UTF-8
        self._encoded = base64.b64encode(credentials).decode("ascii")
        self._header = "Basic " + self._encoded
        self._password = password
        self._ready = MappingProxyType({"Authorization": self._header})

    def ready_headers(self) -> Mapping[str, str]:
        return self._ready

    def sensitive_values(self) -> list[str]:
        return [self._encoded, self._password]

    def auth_flow(self, request: RequestT) -> Generator[RequestT, IncomingResponse, None]:
        request.headers["Authorization"] = self._header
        yield request


def _build(config: BasicConfig, setup: AuthSetup) -> BasicAuth:
    return BasicAuth(config.username, config.password)


AUTH_TYPE = AuthType("basic", "Basic", BasicConfig, _build)
