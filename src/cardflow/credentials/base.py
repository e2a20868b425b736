"""What every auth type shares: the config base, the ``httpx.Auth`` base, and
:class:`AuthType` — everything about one auth type, so that a new one is one module
(config model + auth + ``AUTH_TYPE``) and one line in :mod:`cardflow.credentials.registry`.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Generator, Mapping, MutableMapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict

if TYPE_CHECKING:
    from cardflow.credentials.token_manager import TokenGrant, TokenManager
    from cardflow.net.transport import HttpTransport


class OutgoingRequest(Protocol):
    """The part of a request an auth flow touches: httpx.Request fits, so does cardflow's own."""

    @property
    def headers(self) -> MutableMapping[str, str]: ...


class IncomingResponse(Protocol):
    @property
    def status_code(self) -> int: ...


RequestT = TypeVar("RequestT", bound=OutgoingRequest)


class AuthConfig(BaseModel):
    """A connection's config for one auth type; fields listed in ``secret_fields`` are secrets."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)
    secret_fields: ClassVar[tuple[str, ...]] = ()
    # Fields saying where the secrets are sent (a token URL): moving one to another
    # scheme, host or port needs the secrets entered again, like widening allowed_hosts.
    destination_fields: ClassVar[tuple[str, ...]] = ()
    # Secret fields that may legitimately be empty (a Basic password).
    optional_secret_fields: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def required_secret_fields(cls) -> tuple[str, ...]:
        """The secrets a connection of this type cannot work without."""
        return tuple(f for f in cls.secret_fields if f not in cls.optional_secret_fields)

    def public(self) -> dict[str, Any]:
        return self.model_dump(exclude=set(self.secret_fields), mode="json")

    def secrets(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.secret_fields if getattr(self, name)}


class ConnectionAuth(httpx.Auth):
    """An httpx.Auth whose ``auth_flow`` also drives cardflow's own transport.

    ``added_headers`` names the headers this auth sets; they are never sent to another
    origin on a redirect. ``added_query`` holds the query parameters it sets (name: value):
    cardflow's client puts them in the URL itself, as it does the ``ready_headers``, and
    they too stay on their origin.
    """

    added_headers: frozenset[str] = frozenset()
    added_query: Mapping[str, str] = MappingProxyType({})
    # True when a 401 may be answered by new headers (a refreshed token): see unauthorized.
    retries_unauthorized: bool = False
    # True when the added headers' values differ from request to request (Digest): what
    # ``one_time_values`` finds in them is kept out of what the request's work stores and
    # answers, but not remembered process-wide for the log (each new value would push out
    # a lasting secret).
    header_values_vary: bool = False

    def ready_headers(self) -> Mapping[str, str] | None:
        """The headers for a first attempt when they are known now, without I/O (fixed
        ones, a cached fresh token): cardflow's client sets them without driving the
        generator, the hot path. None means: drive ``async_auth_flow``. The mapping is
        shared between calls and must not be changed."""
        return None

    async def unauthorized(self, request: OutgoingRequest) -> bool:
        """``request``, sent with :meth:`ready_headers`, was answered 401: set new headers
        on it and say True to send it once more (only when ``retries_unauthorized``)."""
        return False

    def static_values(self) -> list[str]:
        """Secrets fixed by the connection's config (passwords, keys, client secrets, in
        every encoding this auth sends them in): they never change while it lives."""
        return self.sensitive_values()

    def sensitive_values(self) -> list[str]:
        """Strings this auth puts on the wire that must never be stored or shown (the
        static ones and, for token auths, the tokens it holds now)."""
        return []

    def one_time_values(self, header_value: str) -> list[str]:
        """With ``header_values_vary``: the parts of one of its header values that must not
        be kept (a Digest answer's response hash)."""
        return []

    def auth_flow(self, request: RequestT) -> Generator[RequestT, IncomingResponse, None]:
        yield request

    async def async_auth_flow(
        self, request: RequestT
    ) -> AsyncGenerator[RequestT, IncomingResponse]:
        flow = self.auth_flow(request)
        outgoing = next(flow)
        while True:
            response = yield outgoing
            try:
                outgoing = flow.send(response)
            except StopIteration:
                return


@dataclass(frozen=True)
class AuthSetup:
    """What building a connection's auth may need from the process it runs in."""

    transport: HttpTransport
    timeout: float  # for token requests
    # The connection's token manager, for auth types that fetch tokens with a grant.
    token_manager: Callable[[TokenGrant], TokenManager]


@dataclass(frozen=True)
class AuthType:
    """One auth type: its config, how it builds its auth, and how connections of it live.

    ``user_authorizes``: a new connection needs a user to authorize it (in a browser)
    before it can be used, and again when one of ``grant_fields`` changes. For other
    types any config change makes the connection ready with the new values (and drops
    a token it held: a changed client secret or scope means a new token).
    """

    name: str
    title: str
    config: type[AuthConfig]
    # (config, setup) -> auth; the config is always an instance of ``config``.
    build: Callable[[Any, AuthSetup], ConnectionAuth]
    uses_tokens: bool = False
    user_authorizes: bool = False
    grant_fields: tuple[str, ...] = ()

    def build_auth(self, config: AuthConfig, setup: AuthSetup) -> ConnectionAuth:
        if not isinstance(config, self.config):
            raise TypeError(f"{self.name} auth needs a {self.config.__name__}")
        return self.build(config, setup)
