"""Test connection: send a connection's ``test_request`` with its auth, and say how it went.

The request (its url a path under the connection's ``base_url``, or absolute) goes through
the client cards use (:func:`cardflow.net.client.send`) with the
connection's runtime — its auth (a token fetched or refreshed as needed), its
``allowed_hosts``, the network policy, the default card timeout and the response size
cap — so a test proves what a card call would meet. A 401 or 403 is recorded as the
connection's rejection, and a success clears one, as card calls do
(:mod:`cardflow.connections.rejections`). Nothing is stored otherwise (no run), and the
answer carries no part of the response body; its message has every secret of the
connection blanked.
"""

from __future__ import annotations

import asyncio
import time

from multidict import CIMultiDict
from pydantic import Field

from cardflow.connections.rejections import REJECTED, CallSite
from cardflow.connections.runtime import ConnectionRuntimes
from cardflow.connections.service import ConnectionService, ConnectionTestRequest
from cardflow.connections.status import ConnectionStatus
from cardflow.errors import CardFailed, InvalidInput
from cardflow.net import client
from cardflow.net.transport import HttpTransport, OutboundRequest, safe_url
from cardflow.redaction import SecretSet
from cardflow.views import View


class ConnectionTestResult(View):
    """How a connection's test request went."""

    ok: bool = Field(description="The upstream answered 2xx.")
    status_code: int | None = Field(description="The upstream's HTTP status; null: no answer.")
    elapsed_ms: float | None = Field(
        description="From sending the request to the whole answer read (a token fetched "
        "first included); null: nothing was sent."
    )
    message: str = Field(description="What happened, and what to do, in words.")
    error: str | None = Field(
        description="Why there was no answer, as a card error's type (host_not_allowed, "
        "needs_authorization, timeout, connection_error, …); null otherwise.",
    )
    request: ConnectionTestRequest = Field(description="What was sent (method and URL).")


class ConnectionProbe:
    def __init__(
        self,
        connections: ConnectionService,
        runtimes: ConnectionRuntimes,
        transport: HttpTransport,
        *,
        timeout: float,
    ) -> None:
        self.connections = connections
        self.runtimes = runtimes
        self.transport = transport
        self.timeout = timeout

    async def test(self, ref: str) -> ConnectionTestResult:
        view = await asyncio.to_thread(self.connections.get, ref)  # ConnectionNotFound
        probe = view.test_request
        if probe is None:
            raise InvalidInput(
                f"test_request: connection {view.name!r} has no test request. Set one to a URL "
                "of the service that needs its credentials, e.g. its current-user endpoint "
                '(PATCH /api/v1/connections/{ref} {"test_request": {"method": "GET", "url": '
                '"https://api.example.com/me"}}, or cardflow connection update NAME '
                "--test-request 'GET https://api.example.com/me'), then test again.",
                field="test_request",
            )
        if view.status == ConnectionStatus.NEEDS_AUTHORIZATION:
            return ConnectionTestResult(
                ok=False,
                status_code=None,
                elapsed_ms=None,
                message=f"Not authorized yet: {view.last_error or 'authorize this connection.'}"
                " Nothing was sent.",
                error="needs_authorization",
                request=probe,
            )
        runtime = await self.runtimes.get(view.id)
        try:  # a path goes under the base_url, as a card's relative URL does
            url = probe.target(runtime.base_url)
        except ValueError as exc:
            raise InvalidInput(f"test_request.url: {exc}.", field="test_request.url") from None
        secrets = SecretSet()
        runtime.add_secrets_to(secrets)
        request = OutboundRequest(probe.method, url, CIMultiDict())
        started = time.perf_counter()
        try:
            response = await client.send(
                self.transport,
                request,
                timeout=self.timeout,
                auth=runtime.auth,
                allowed_hosts=runtime.allowed_hosts,
                secrets=secrets,
            )
        except CardFailed as exc:
            sent = exc.type != "host_not_allowed"
            return ConnectionTestResult(
                ok=False,
                status_code=None,
                elapsed_ms=_ms(started) if sent else None,
                message=secrets.redact_text(exc.message),
                error=exc.type,
                request=probe,
            )
        elapsed = _ms(started)
        code = response.status_code
        rejections = self.runtimes.rejections
        if rejections.concerns(runtime.id, code):
            await rejections.observe(runtime.id, code, elapsed, CallSite())
        return ConnectionTestResult(
            ok=200 <= code < 300,
            status_code=code,
            elapsed_ms=elapsed,
            message=_say(code, probe.method, safe_url(request.url), elapsed),
            error=None,
            request=probe,
        )


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _say(code: int, method: str, url: str, elapsed: float) -> str:
    answered = f"{method} {url} answered {code} in {elapsed:.0f} ms"
    if 200 <= code < 300:
        return f"{answered}: the connection works."
    if code in REJECTED:
        return (
            f"{answered}: the upstream rejected the connection's credentials (wrong or "
            "expired, or without the access this URL needs). Check them and test again."
        )
    if 300 <= code < 400:
        return f"{answered}: a redirect that was not followed; test a URL that answers itself."
    if code == 404:
        return f"{answered}: no such page; check the test request's URL."
    if code == 429:
        return f"{answered}: too many requests; try again later."
    if code >= 500:
        return f"{answered}: the upstream failed or is unavailable; try again later."
    return f"{answered}: not a success; check the test request."
