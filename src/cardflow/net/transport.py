"""cardflow's HTTP transport: aiohttp underneath, with redirects, size cap and policy.

aiohttp is used directly because it is several times faster than httpx under concurrency
on the same box (see bench/card_overhead.py); auth stays in httpx.Auth-style generators.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from types import MappingProxyType

import aiohttp
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from cardflow.errors import (
    CardFailed,
    ResponseTooLarge,
    TooManyRedirects,
    UpstreamConnectionError,
    UpstreamTimeout,
)
from cardflow.jsondata import clean_text
from cardflow.net.hosts import AllowedHosts
from cardflow.net.policy import NetworkPolicy, PolicyResolver
from cardflow.net.query import drop_query_params, set_query_params
from cardflow.net.tls import ClientTls
from cardflow.redaction import forms_of

MAX_REDIRECTS = 5
_REDIRECT_CODES = frozenset({301, 302, 303, 307, 308})
_CHUNK = 64 * 1024
_NO_QUERY: Mapping[str, str] = MappingProxyType({})


@dataclass
class OutboundRequest:
    """A request as cardflow sends it; ``headers`` keep the case they were given in."""

    method: str
    url: URL
    headers: CIMultiDict[str] = field(default_factory=CIMultiDict)
    body: bytes | None = None


@dataclass
class InboundResponse:
    status_code: int
    headers: CIMultiDictProxy[str]
    body: bytes
    url: URL


SendFn = Callable[[OutboundRequest], Awaitable[InboundResponse]]


def _origin(url: URL) -> tuple[str, str | None, int | None]:
    return (url.scheme, url.host, url.port)


HOP_HEADER = "Cardflow-Hop"


class HttpTransport:
    """Sends requests; one aiohttp session per event loop, made on first use.

    ``own_origins`` are cardflow's own (host, port) pairs: requests to them carry a
    ``Cardflow-Hop`` header counting how deep flows calling flows go, so a loop is
    refused instead of filling every run slot."""

    def __init__(
        self,
        policy: NetworkPolicy,
        *,
        max_response_bytes: int,
        own_origins: frozenset[tuple[str, int]] = frozenset(),
    ) -> None:
        self.policy = policy
        self.max_response_bytes = max_response_bytes
        self.own_origins = own_origins
        self._sessions: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, aiohttp.ClientSession
        ] = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        # The loop that asked last, and its session: usually there is only one loop.
        self._last: (
            tuple[weakref.ref[asyncio.AbstractEventLoop], weakref.ref[aiohttp.ClientSession]] | None
        ) = None

    def _session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        last = self._last
        if last is not None and last[0]() is loop:
            session = last[1]()
            if session is not None:  # (aclose forgets it)
                return session
        session = self._sessions.get(loop)
        if session is None or session.closed:
            connector = aiohttp.TCPConnector(
                resolver=PolicyResolver(self.policy), limit=0, ttl_dns_cache=10
            )
            session = aiohttp.ClientSession(
                connector=connector,
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=True,
                trust_env=False,
            )
            with self._lock:
                self._sessions[loop] = session
        self._last = (weakref.ref(loop), weakref.ref(session))
        return session

    async def aclose(self) -> None:
        """Close the session of the running loop."""
        loop = asyncio.get_running_loop()
        self._last = None
        session = self._sessions.pop(loop, None)
        if session is not None:
            await session.close()

    async def send(
        self,
        request: OutboundRequest,
        *,
        timeout: float,
        strip_on_cross_origin: frozenset[str] = frozenset(),
        auth_query: Mapping[str, str] = _NO_QUERY,
        max_response_bytes: int | None = None,
        allowed_hosts: AllowedHosts | None = None,
        hop: int = 0,
        follow_redirects: bool = True,
        client_tls: ClientTls | None = None,
    ) -> InboundResponse:
        """Send, following at most 5 redirects (none without ``follow_redirects``: a 3xx
        comes back as it is); the connection's headers, query parameters (``auth_query``)
        and client certificate (``client_tls``) stay on their origin and, with
        ``allowed_hosts``, no request (redirects included) leaves those hosts."""
        limit = max_response_bytes or self.max_response_bytes
        current = request
        origin = _origin(request.url)
        tls: ssl.SSLContext | bool = True if client_tls is None else client_tls.identity
        deadline = time.monotonic() + timeout
        hop_timeout = _client_timeout(timeout)
        try:
            for redirects in range(MAX_REDIRECTS + 1):
                url = current.url
                if allowed_hosts is not None:
                    allowed_hosts.check(url)
                if self.own_origins and (url.raw_host, url.port) in self.own_origins:
                    current.headers[HOP_HEADER] = str(hop + 1)
                if redirects:
                    # aiohttp's own timer bounds each hop; one deadline covers them all.
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        raise TimeoutError
                    hop_timeout = aiohttp.ClientTimeout(total=remaining)
                    if client_tls is not None:
                        # the certificate is this origin's only; the CA bundle still holds
                        same = _origin(url) == origin
                        tls = client_tls.identity if same else client_tls.trust
                response = await self._send_once(current, limit, hop_timeout, tls, client_tls)
                if not follow_redirects or response.status_code not in _REDIRECT_CODES:
                    return response
                location = response.headers.get("Location")
                if not location:
                    return response
                current = _follow(
                    current,
                    response,
                    location,
                    origin,
                    strip_on_cross_origin,
                    auth_query,
                )
        except TimeoutError:
            raise UpstreamTimeout(
                f"{request.method} {safe_url(request.url)} got no complete answer within "
                f"{timeout:g} s (the card's timeout)."
            ) from None
        raise TooManyRedirects(
            f"{request.method} {safe_url(request.url)} redirected more than {MAX_REDIRECTS} times."
        )

    async def _send_once(
        self,
        request: OutboundRequest,
        limit: int,
        timeout: aiohttp.ClientTimeout,
        tls: ssl.SSLContext | bool = True,
        client_tls: ClientTls | None = None,
    ) -> InboundResponse:
        url = request.url
        host = url.raw_host
        if host:
            self.policy.check_literal(host)
        session = self._session()
        body = request.body
        try:
            # Awaited, not entered: leaving `async with` costs two coroutines per level.
            resp = await session.request(
                request.method,
                url,
                headers=request.headers,
                data=body,
                allow_redirects=False,
                timeout=timeout,
                ssl=tls,
                skip_auto_headers=(
                    None
                    if body is None and request.method in _NO_CONTENT_TYPE_ADDED
                    else _NO_AUTO_CONTENT_TYPE
                ),
            )
            try:
                declared = resp.content_length
                if declared is not None:
                    if declared > limit:
                        raise _too_large(request, limit)
                    if "Content-Encoding" not in resp.headers:
                        # Declared and within the cap: one read (the fast path), which
                        # also waits until the request is written and frees the connection.
                        content = await resp.read()
                        resp.release()
                        return InboundResponse(resp.status, resp.headers, content, resp.url)
                buffer = bytearray()
                async for chunk in resp.content.iter_chunked(_CHUNK):
                    buffer += chunk
                    if len(buffer) > limit:
                        raise _too_large(request, limit)
            except BaseException:
                resp.release()  # what leaving `async with` does
                await resp.wait_for_close()
                raise
            resp.release()
            await resp.wait_for_close()
            return InboundResponse(resp.status, resp.headers, bytes(buffer), resp.url)
        except (CardFailed, TimeoutError):
            raise  # TimeoutError is an OSError: it must not be taken for a network error
        except aiohttp.ClientResponseError as exc:
            raise UpstreamConnectionError(
                f"{request.method} {safe_url(request.url)}: the upstream sent an invalid "
                f"HTTP response ({exc.message})."
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise UpstreamConnectionError(
                f"{request.method} {safe_url(request.url)} failed: {_describe(exc)}."
                + _tls_hint(exc, url, tls, client_tls)
            ) from None


# aiohttp gives a body, and any POST, PUT or PATCH, a Content-Type of its own unless told
# not to; telling it costs on every request, so only those requests are told.
_NO_AUTO_CONTENT_TYPE = ("Content-Type",)
_NO_CONTENT_TYPE_ADDED = frozenset({"GET", "HEAD", "DELETE", "OPTIONS", "TRACE"})


@lru_cache(maxsize=64)
def _client_timeout(seconds: float) -> aiohttp.ClientTimeout:
    """aiohttp's timeout for a first hop, which has the whole timeout (made once per value)."""
    return aiohttp.ClientTimeout(total=seconds)


def _follow(
    request: OutboundRequest,
    response: InboundResponse,
    location: str,
    origin: tuple[str, str | None, int | None],
    strip: frozenset[str],
    query: Mapping[str, str] = _NO_QUERY,
) -> OutboundRequest:
    target = request.url.join(URL(location))
    if target.scheme not in ("http", "https"):
        raise UpstreamConnectionError(
            f"The upstream redirected to a non-HTTP URL ({target.scheme}:); not followed."
        )
    method, body = request.method, request.body
    headers = CIMultiDict(request.headers)
    status = response.status_code
    if status == 303 or (status in (301, 302) and method == "POST"):
        method, body = ("GET" if method != "HEAD" else "HEAD"), None
        for name in ("Content-Type", "Content-Length", "Transfer-Encoding"):
            headers.popall(name, None)
    if _origin(target) != origin:
        # Never hand the connection's credentials to another origin.
        for name in {"authorization", "proxy-authorization", "cookie", *strip}:
            headers.popall(name, None)
        if query:
            target = _without_credentials(target, query)
    elif query:
        # A Location carries its own query: the key goes again, as the headers do.
        target = set_query_params(target, query)
    return OutboundRequest(method, target, headers, body)


def _without_credentials(target: URL, query: Mapping[str, str]) -> URL:
    """A redirect's target on another origin without the auth's query parameters; one
    that still carries a key (the upstream repeated it in another parameter) is refused."""
    target = drop_query_params(target, query.keys())
    text = str(target)
    if any(form in text for form in forms_of(query.values())):
        raise UpstreamConnectionError(
            f"The upstream redirected to another origin ({target.host}"
            f"{'' if target.explicit_port is None else f':{target.port}'}) with the "
            "connection's key in the URL; not followed."
        )
    return target


def _too_large(request: OutboundRequest, limit: int) -> ResponseTooLarge:
    return ResponseTooLarge(
        f"The response to {request.method} {safe_url(request.url)} is larger than "
        f"{limit:,} bytes (CARDFLOW_MAX_RESPONSE_BYTES); it was not read further."
    )


def safe_url(url: URL) -> str:
    """The URL without user info or query (query strings often carry keys)."""
    return str(url.with_user(None).with_query(None).with_fragment(None))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        return "the server closed the connection without answering"
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect to {exc.host}:{exc.port} ({exc.os_error.strerror or exc.os_error})"
    if isinstance(exc, aiohttp.ClientPayloadError):
        return "the response body was cut off"
    text = str(exc) or type(exc).__name__
    return text


def _tls_hint(
    exc: BaseException, url: URL, tls: ssl.SSLContext | bool, client_tls: ClientTls | None
) -> str:
    """What to check when a TLS connection failed (``tls``: the context it used).

    Under TLS 1.3 a server refusing a client certificate (or its absence) does so after
    the client's side of the handshake is done: the client sees only a closed connection."""
    refused_quietly = isinstance(exc, aiohttp.ServerDisconnectedError) and url.scheme == "https"
    if not (refused_quietly or isinstance(exc, (aiohttp.ClientSSLError, ssl.SSLError))):
        return ""
    presented = client_tls is not None and client_tls.not_after is not None
    if client_tls is not None and tls is client_tls.identity and client_tls.expired():
        return " The connection's client certificate has expired: give it a new one."
    if refused_quietly:
        if presented and tls is client_tls.identity:  # type: ignore[union-attr]
            return (
                " Over TLS this is also how a server refuses a client certificate: check "
                "that it accepts the connection's client_certificate."
            )
        return (
            " Over TLS this is also how a server that wants a client certificate (mutual "
            "TLS) refuses a client without one: set the connection's client_certificate "
            "and client_key."
        )
    text = str(exc).lower()
    if "verify failed" in text:
        return (
            " The server's certificate is not trusted: for a private CA, set the "
            "connection's ca_certificate."
        )
    if "certificate" in text or "handshake" in text:
        return (
            " Check the connection's client_certificate and client_key, which the server "
            "may want or refuse."
        )
    return ""


def header_dict(headers: Mapping[str, str]) -> dict[str, str]:
    """Response headers as a plain dict with lower-case names; repeats joined with ', '."""
    result: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        if not (key.isascii() and value.isascii()):
            # aiohttp keeps bytes that are not UTF-8 as lone surrogates: make them U+FFFD
            key, value = clean_text(key), clean_text(value)
        result[key] = f"{result[key]}, {value}" if key in result else value
    return result
