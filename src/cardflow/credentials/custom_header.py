"""Auth type ``custom``: one header, its name sent exactly as typed (``api_key`` stays so)."""

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
from cardflow.net.headers import check_header_name, check_header_value


class CustomHeaderConfig(AuthConfig):
    secret_fields = ("header_value",)

    header_name: str = Field(min_length=1, description="Header name, sent exactly as typed.")
    header_value: str = Field(default="", description="Header value (secret).")

    @field_validator("header_name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_header_name(value)

    @field_validator("header_value")
    @classmethod
    def _value(cls, value: str) -> str:
        return check_header_value(value)


class CustomHeaderAuth(ConnectionAuth):
    def __init__(self, header_name: str, header_value: str) -> None:
        self._name = header_name
        self._value = header_value
        self.added_headers = frozenset({header_name.lower()})
        self._ready = MappingProxyType({header_name: header_value})

    def ready_headers(self) -> Mapping[str, str]:
        return self._ready

    def sensitive_values(self) -> list[str]:
        return [self._value]

    def auth_flow(self, request: RequestT) -> Generator[RequestT, IncomingResponse, None]:
        # Drop any same-named header in another case so the typed name is the one sent.
        for existing in [k for k in request.headers if k.lower() == self._name.lower()]:
            del request.headers[existing]
        request.headers[self._name] = self._value
        yield request


def _build(config: CustomHeaderConfig, setup: AuthSetup) -> CustomHeaderAuth:
    return CustomHeaderAuth(config.header_name, config.header_value)


AUTH_TYPE = AuthType("custom", "Custom Header", CustomHeaderConfig, _build)
