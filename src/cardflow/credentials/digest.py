"""Auth type ``digest``: HTTP Digest (RFC 7616; MD5 and SHA-256, qop ``auth``).

The digest itself is httpx's (:class:`httpx.DigestAuth`: MD5, SHA, SHA-256 and SHA-512,
their ``-sess`` variants, qop ``auth``); this module drives it over cardflow's own
requests. A first request to an origin goes without credentials; its 401 carries the
challenge, and the request is sent once more with the ``Authorization: Digest …`` answer.
That second answer is the answer: a wrong password ends as the 401, never a loop.

The last challenge of each origin is kept (as httpx does, but per origin, so that a
challenge is only ever answered to the origin that made it): later requests there answer
it at once, counting up its nonce count, and skip the 401 round trip; a server that no
longer takes that nonce answers 401 with a new challenge, answered once as above. A
challenge that comes from another origin than the request's (after a redirect), or that
cannot be answered (an unknown algorithm, qop ``auth-int`` alone, a malformed header),
is not answered: the 401 is the answer. Cookies the challenge sets are not sent back
(cardflow keeps no cookies).

Each request's ``Authorization`` value differs (nonce count, client nonce). Its response
hash — the part that proves the password, for that nonce — is kept out of what the
request's work stores and answers (``header_values_vary``, ``one_time_values``), but not
added to the process-wide log secrets, which it would flood; the rest (user name, realm,
nonce, URI) is no secret, and a header named ``Authorization`` is blanked whole wherever
cardflow keeps one. The password is a secret like any other.
"""

from __future__ import annotations

import re
import threading
from collections import OrderedDict
from collections.abc import Generator
from typing import cast

import httpx
from pydantic import Field, field_validator
from yarl import URL

from cardflow.credentials.base import (
    AuthConfig,
    AuthSetup,
    AuthType,
    ConnectionAuth,
    IncomingResponse,
    RequestT,
    no_control_characters,
)
from cardflow.net.transport import InboundResponse, OutboundRequest

# Printable ASCII without the quote and backslash: the user name goes in a quoted string
# as it is (RFC 7616's ``username*`` for other names is not sent).
_USERNAME = re.compile(r"[\x20-\x21\x23-\x5b\x5d-\x7e]+")
_RESPONSE = re.compile(r'(?:^|[\s,])response="?([0-9A-Fa-f]+)')
# Origins whose last challenge is kept, per connection (the least recently used go first).
MAX_ORIGINS = 32

Origin = tuple[str, str | None, int | None]


class DigestConfig(AuthConfig):
    secret_fields = ("password",)

    username: str = Field(
        min_length=1, max_length=256, description="User name sent in the Digest answer."
    )
    password: str = Field(default="", max_length=1024, description="Password (secret).")

    @field_validator("username")
    @classmethod
    def _username(cls, value: str) -> str:
        if not _USERNAME.fullmatch(value):
            raise ValueError(
                "the user name must be printable ASCII without double quotes or backslashes "
                "(cardflow does not send RFC 7616's username* for other names)"
            )
        return value

    @field_validator("password")
    @classmethod
    def _password(cls, value: str) -> str:
        no_control_characters(value, "the password")
        return value


class DigestAuth(ConnectionAuth):
    """httpx's Digest auth, one per origin, over cardflow's requests or httpx's."""

    added_headers = frozenset({"authorization"})
    header_values_vary = True

    def __init__(self, username: str, password: str) -> None:
        self._username = username
        self._password = password
        self._by_origin: OrderedDict[Origin, httpx.DigestAuth] = OrderedDict()
        # Driving a flow one step changes its origin's nonce count: one step at a time,
        # whichever thread (event loop) the request runs in.
        self._lock = threading.Lock()

    def sensitive_values(self) -> list[str]:
        return [self._password]

    def one_time_values(self, header_value: str) -> list[str]:
        return _RESPONSE.findall(header_value)

    def _digest(self, origin: Origin) -> httpx.DigestAuth:
        with self._lock:
            digest = self._by_origin.get(origin)
            if digest is None:
                digest = httpx.DigestAuth(self._username, self._password)
                self._by_origin[origin] = digest
                while len(self._by_origin) > MAX_ORIGINS:
                    self._by_origin.popitem(last=False)
            else:
                self._by_origin.move_to_end(origin)
            return digest

    def _forget(self, origin: Origin, digest: httpx.DigestAuth) -> None:
        """Drop a challenge that cannot be answered, so it is not tried again."""
        with self._lock:
            if self._by_origin.get(origin) is digest:
                del self._by_origin[origin]

    def _step(
        self,
        origin: Origin,
        digest: httpx.DigestAuth,
        flow: Generator[httpx.Request, httpx.Response, None],
        response: httpx.Response | None,
    ) -> httpx.Request | None:
        """The flow's next request, or None when it has none (or cannot answer)."""
        try:
            with self._lock:
                return next(flow) if response is None else flow.send(response)
        except StopIteration:
            return None
        except (httpx.ProtocolError, KeyError, ValueError, NotImplementedError):
            # A challenge httpx cannot answer (unknown algorithm, auth-int only, malformed)
            self._forget(origin, digest)
            return None

    def auth_flow(self, request: RequestT) -> Generator[RequestT, IncomingResponse, None]:
        if isinstance(request, httpx.Request):
            origin: Origin = (request.url.scheme, request.url.host, request.url.port)
            digest = self._digest(origin)
            flow = digest.auth_flow(request)
            outgoing = self._step(origin, digest, flow, None)
            while outgoing is not None:
                response = yield cast(RequestT, outgoing)
                outgoing = self._step(origin, digest, flow, cast(httpx.Response, response))
            return
        if not isinstance(request, OutboundRequest):
            raise TypeError("Digest auth drives httpx's requests or cardflow's own")
        yield from cast(Generator[RequestT, IncomingResponse, None], self._own_flow(request))

    def _own_flow(
        self, request: OutboundRequest
    ) -> Generator[OutboundRequest, IncomingResponse, None]:
        """httpx's flow over a stand-in httpx request with the same method and target,
        whose ``Authorization`` is copied onto cardflow's request."""
        origin = _origin(request.url)
        digest = self._digest(origin)
        shadow = httpx.Request(request.method, str(request.url))
        flow = digest.auth_flow(shadow)
        outgoing = self._step(origin, digest, flow, None)
        _copy_authorization(outgoing, request)
        response = yield request
        if (
            not isinstance(response, InboundResponse)
            or response.status_code != 401
            or _origin(response.url) != origin
        ):
            return
        answer = httpx.Response(
            response.status_code, headers=list(response.headers.items()), request=shadow
        )
        outgoing = self._step(origin, digest, flow, answer)
        if outgoing is None:
            return
        _copy_authorization(outgoing, request)
        yield request


def _origin(url: URL) -> Origin:
    return (url.scheme, url.host, url.port)


def _copy_authorization(shadow: httpx.Request | None, request: OutboundRequest) -> None:
    request.headers.popall("Authorization", None)
    if shadow is not None:
        value = shadow.headers.get("Authorization")
        if value is not None:
            request.headers["Authorization"] = value


def _build(config: DigestConfig, setup: AuthSetup) -> DigestAuth:
    return DigestAuth(config.username, config.password)


AUTH_TYPE = AuthType("digest", "Digest", DigestConfig, _build)
