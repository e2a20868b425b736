"""cardflow's HTTP client: a request sent with a connection's auth, retried by policy.

The layer between what sends requests (API Connector cards, token grants) and the
transport (:mod:`cardflow.net.transport`: aiohttp, redirects, size cap, network policy).
As httpx's client drives an ``httpx.Auth`` in ``_send_handling_auth``, :func:`send` drives
a connection's auth (:class:`cardflow.credentials.base.ConnectionAuth`) over the transport:
the auth sees each answer and may send the request again (a 401 answered with a fresh
token). When an auth knows its headers without I/O (fixed ones, a cached fresh token), the
generator is skipped — the hot path — and a 401 goes to the auth's ``unauthorized``.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncGenerator, Mapping
from email.utils import parsedate_to_datetime
from functools import lru_cache
from typing import Protocol

from cardflow.net.hosts import AllowedHosts
from cardflow.net.query import set_query_params
from cardflow.net.tls import ClientTls
from cardflow.net.transport import HttpTransport, InboundResponse, OutboundRequest
from cardflow.redaction import LOG_SECRETS, SecretSet, forms_of


class RequestAuth(Protocol):
    """What the client needs of an auth (``ConnectionAuth`` fits)."""

    @property
    def added_headers(self) -> frozenset[str]:
        """The headers this auth sets: never sent to another origin on a redirect."""

    @property
    def added_query(self) -> Mapping[str, str]:
        """The query parameters this auth sets (name: value), replacing any of those names
        in the URL: kept on the origin across redirects, never sent to another."""

    @property
    def retries_unauthorized(self) -> bool:
        """A 401 may be answered by new headers (:meth:`unauthorized`)."""

    @property
    def client_tls(self) -> ClientTls | None:
        """The connection's client certificate and CA bundle (mutual TLS), if any."""

    @property
    def header_values_vary(self) -> bool:
        """Each request gets header values of its own (Digest): see one_time_values."""

    def one_time_values(self, header_value: str) -> list[str]:
        """What in one of its varying header values must not be kept."""

    def ready_headers(self) -> Mapping[str, str] | None:
        """Headers for a first attempt known now, without I/O; None: drive
        ``async_auth_flow``."""

    async def unauthorized(self, request: OutboundRequest) -> bool:
        """The request sent with the ready headers got a 401: set new headers on it and
        say whether to send it again."""

    def async_auth_flow(
        self, request: OutboundRequest
    ) -> AsyncGenerator[OutboundRequest, InboundResponse]: ...


class RetryPolicy(Protocol):
    """How often and how long to retry a 429 (or a 503 with Retry-After)."""

    @property
    def count(self) -> int:
        """Retries after the first attempt."""

    @property
    def max_wait(self) -> float:
        """Longest wait before a retry, in seconds."""


_RETRIED = frozenset({429, 503})


async def send(
    transport: HttpTransport,
    request: OutboundRequest,
    *,
    timeout: float,
    auth: RequestAuth | None = None,
    allowed_hosts: AllowedHosts | None = None,
    secrets: SecretSet | None = None,
    retry: RetryPolicy | None = None,
    hop: int = 0,
    max_response_bytes: int | None = None,
    follow_redirects: bool = True,
    client_tls: ClientTls | None = None,
) -> InboundResponse:
    """Send ``request`` with ``auth``, retrying 429 (and 503 with Retry-After) as ``retry``
    says. The auth's client certificate (or, without an auth, ``client_tls``: a token
    request's) is presented on the request's origin.

    With ``allowed_hosts``, no request (token requests the auth makes aside) leaves those
    hosts, redirects included, and none is sent at all when the first URL is not among
    them; the auth's headers never go to another origin. What the auth puts in its headers
    (a token fetched just now) is added to ``secrets`` and kept out of the log. Auths set
    their headers idempotently, so a retry reuses the same request. The auth's query
    parameters are set here, once, as its ready headers are."""
    if auth is not None:
        if auth.added_query:
            request.url = set_query_params(request.url, auth.added_query)
        client_tls = auth.client_tls
    attempt = 0
    while True:
        if auth is None:
            response = await transport.send(
                request,
                timeout=timeout,
                allowed_hosts=allowed_hosts,
                hop=hop,
                max_response_bytes=max_response_bytes,
                follow_redirects=follow_redirects,
                client_tls=client_tls,
            )
        else:
            ready = auth.ready_headers()
            if ready is None:
                response = await _send_handling_auth(
                    transport,
                    request,
                    auth,
                    timeout=timeout,
                    allowed_hosts=allowed_hosts,
                    secrets=secrets,
                    hop=hop,
                    max_response_bytes=max_response_bytes,
                    follow_redirects=follow_redirects,
                    client_tls=client_tls,
                )
            else:
                # What driving the auth flow does, without the generator's cost, when the
                # headers are known now (fixed ones, a cached token): the hot path.
                headers = request.headers
                for name, value in ready.items():
                    headers.popall(name, None)
                    headers[name] = value
                strip = auth.added_headers
                if auth.retries_unauthorized:
                    _note_secrets(request, strip, secrets)  # a token, new to this work maybe
                response = await transport.send(
                    request,
                    timeout=timeout,
                    strip_on_cross_origin=strip,
                    auth_query=auth.added_query,
                    allowed_hosts=allowed_hosts,
                    hop=hop,
                    max_response_bytes=max_response_bytes,
                    follow_redirects=follow_redirects,
                    client_tls=client_tls,
                )
                if (
                    response.status_code == 401
                    and auth.retries_unauthorized
                    and await auth.unauthorized(request)
                ):
                    _note_secrets(request, strip, secrets)
                    response = await transport.send(
                        request,
                        timeout=timeout,
                        strip_on_cross_origin=strip,
                        auth_query=auth.added_query,
                        allowed_hosts=allowed_hosts,
                        hop=hop,
                        max_response_bytes=max_response_bytes,
                        follow_redirects=follow_redirects,
                        client_tls=client_tls,
                    )
        if retry is None or response.status_code not in _RETRIED or attempt >= retry.count:
            return response
        delay = retry_delay(response, attempt, retry.max_wait)
        if delay is None:
            return response
        attempt += 1
        await asyncio.sleep(delay)


async def _send_handling_auth(
    transport: HttpTransport,
    request: OutboundRequest,
    auth: RequestAuth,
    *,
    timeout: float,
    allowed_hosts: AllowedHosts | None,
    secrets: SecretSet | None,
    hop: int,
    max_response_bytes: int | None,
    follow_redirects: bool,
    client_tls: ClientTls | None,
) -> InboundResponse:
    if allowed_hosts is not None:
        allowed_hosts.check(request.url)  # before the auth flow may even fetch a token
    strip = auth.added_headers
    varying = auth.header_values_vary
    flow = auth.async_auth_flow(request)
    outgoing = await flow.__anext__()
    while True:
        if varying:
            _note_one_time_secrets(outgoing, auth, secrets)
        else:
            _note_secrets(outgoing, strip, secrets)
        response = await transport.send(
            outgoing,
            timeout=timeout,
            strip_on_cross_origin=strip,
            auth_query=auth.added_query,
            allowed_hosts=allowed_hosts,
            hop=hop,
            max_response_bytes=max_response_bytes,
            follow_redirects=follow_redirects,
            client_tls=client_tls,
        )
        try:
            outgoing = await flow.asend(response)
        except StopAsyncIteration:
            return response


def _note_secrets(
    request: OutboundRequest, names: frozenset[str], secrets: SecretSet | None
) -> None:
    """What the auth put in its headers is a secret of the work it is sent for."""
    headers = request.headers
    for name in names:
        value = headers.get(name)
        if value:
            forms = _header_secret_forms(value)
            if secrets is not None:
                secrets.add_forms(forms)
            LOG_SECRETS.register(forms)


def _note_one_time_secrets(
    request: OutboundRequest, auth: RequestAuth, secrets: SecretSet | None
) -> None:
    """Values made for this request alone (a Digest answer's hash): secrets of the work it
    is sent for, kept nowhere else (the process-wide log secrets keep lasting ones)."""
    if secrets is None:
        return
    headers = request.headers
    for name in auth.added_headers:
        value = headers.get(name)
        if value:
            for secret in auth.one_time_values(value):
                secrets.add_one_time(secret)


@lru_cache(maxsize=256)
def _header_secret_forms(value: str) -> frozenset[str]:
    """A header value's forms, and its credentials' (``Bearer <token>``: the token)."""
    _scheme, _, credentials = value.partition(" ")
    return forms_of((value, credentials))


def retry_delay(response: InboundResponse, attempt: int, max_wait: float) -> float | None:
    """Seconds to wait before retrying, or None when this response is not retried."""
    status = response.status_code
    retry_after = response.headers.get("Retry-After")
    if status != 429 and not (status == 503 and retry_after):
        return None
    delay: float | None = None
    if retry_after:
        try:
            delay = float(retry_after)
        except ValueError:
            try:
                delay = parsedate_to_datetime(retry_after).timestamp() - time.time()
            except (TypeError, ValueError):
                delay = None
    if delay is None:
        delay = random.uniform(0, min(max_wait, 0.5 * 2**attempt))  # noqa: S311 - jitter
    return max(0.0, min(delay, max_wait))
