"""Auth type ``query``: an API key sent as a query parameter (``?api_key=…``), its name as
typed.

The connection's parameter wins: any parameter of that name in the card's URL or ``query``
is replaced, so exactly one goes out, the connection's (an API that repeats its key in
the next-page links it returns still works). Like an auth header it goes only to the
request's origin: a redirect elsewhere drops it (:mod:`cardflow.net.query`). Its value is a
secret like any other — kept out of run history, answers and logs in every form, as typed
and URL-encoded among them (:mod:`cardflow.redaction`) — and cardflow never writes the
request's query into an error or a log line."""

from __future__ import annotations

from collections.abc import Generator, Mapping
from types import MappingProxyType

import httpx
from pydantic import Field, field_validator

from cardflow.credentials.base import (
    AuthConfig,
    AuthSetup,
    AuthType,
    ConnectionAuth,
    IncomingResponse,
    RequestT,
    no_control_characters,
)
from cardflow.net.query import check_param_name

_NO_HEADERS: Mapping[str, str] = MappingProxyType({})


class QueryParamConfig(AuthConfig):
    secret_fields = ("param_value",)

    param_name: str = Field(
        min_length=1,
        description="The query parameter's name, sent exactly as typed (e.g. api_key).",
    )
    param_value: str = Field(default="", description="The API key (secret).")

    @field_validator("param_name")
    @classmethod
    def _name(cls, value: str) -> str:
        return check_param_name(value)

    @field_validator("param_value")
    @classmethod
    def _value(cls, value: str) -> str:
        no_control_characters(value, "the value")
        if value != value.strip():
            raise ValueError(
                "the value starts or ends with a space (a copy-paste slip?): give the key alone"
            )
        return value


class QueryParamAuth(ConnectionAuth):
    """Sets ``name=value`` in the URL: cardflow's client does that from ``added_query``;
    :meth:`auth_flow` does it for an httpx client."""

    def __init__(self, name: str, value: str) -> None:
        self._name = name
        self._value = value
        self.added_query = MappingProxyType({name: value})

    def ready_headers(self) -> Mapping[str, str]:
        return _NO_HEADERS

    def sensitive_values(self) -> list[str]:
        return [self._value]

    def auth_flow(self, request: RequestT) -> Generator[RequestT, IncomingResponse, None]:
        if isinstance(request, httpx.Request):
            request.url = request.url.copy_set_param(self._name, self._value)
        yield request


def _build(config: QueryParamConfig, setup: AuthSetup) -> QueryParamAuth:
    return QueryParamAuth(config.param_name, config.param_value)


AUTH_TYPE = AuthType("query", "API Key in Query", QueryParamConfig, _build)
