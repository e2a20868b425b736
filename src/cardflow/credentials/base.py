"""What every auth type shares: the request/response protocols and the config base."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator, MutableMapping
from typing import Any, ClassVar, Protocol, TypeVar

import httpx
from pydantic import BaseModel, ConfigDict


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

    def public(self) -> dict[str, Any]:
        return self.model_dump(exclude=set(self.secret_fields), mode="json")

    def secrets(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in self.secret_fields if getattr(self, name)}


class ConnectionAuth(httpx.Auth):
    """An httpx.Auth whose ``auth_flow`` also drives cardflow's own transport.

    ``added_headers`` names the headers this auth sets; they are never sent to another
    origin on a redirect.
    """

    added_headers: frozenset[str] = frozenset()

    def static_headers(self) -> dict[str, str] | None:
        """Headers to set when this auth never needs a second attempt (no 401 handling):
        a fast path that skips driving the generator. None means: use ``auth_flow``."""
        return None

    def static_values(self) -> list[str]:
        """Secrets fixed by the connection's config (passwords, keys, client secrets, in
        every encoding this auth sends them in): they never change while it lives."""
        return self.sensitive_values()

    def sensitive_values(self) -> list[str]:
        """Strings this auth puts on the wire that must never be stored or shown (the
        static ones and, for token auths, the tokens it holds now)."""
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
