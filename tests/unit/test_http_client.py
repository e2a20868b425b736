"""cardflow.net.client: a request sent with an auth over the transport, and retried.

Two small aiohttp servers on loopback (two origins) answer what each test scripts and
record what reached them."""

from __future__ import annotations

from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Generator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from urllib.parse import quote

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from cardflow.credentials.base import ConnectionAuth, IncomingResponse, RequestT
from cardflow.credentials.basic import BasicAuth
from cardflow.credentials.bearer import BearerTokenAuth
from cardflow.credentials.custom_header import CustomHeaderAuth
from cardflow.credentials.query_param import QueryParamAuth
from cardflow.credentials.token_manager import TokenManager
from cardflow.errors import HostNotAllowed, ResponseTooLarge, UpstreamConnectionError
from cardflow.net import client
from cardflow.net.hosts import AllowedHosts
from cardflow.net.policy import NetworkPolicy
from cardflow.net.transport import HttpTransport, InboundResponse, OutboundRequest
from cardflow.redaction import LOG_SECRETS, SecretSet
from tests.support.tokens import FakeGrant, MemoryTokenStore


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: str = '{"ok": true}'


@dataclass
class Server:
    """Answers with the scripted answers in turn (then 200), records every request."""

    url: URL
    answers: list[Answer] = field(default_factory=list)
    seen: list[tuple[str, str, CIMultiDict[str]]] = field(default_factory=list)
    # each request's path and query as it came (percent-encoded)
    raw_paths: list[str] = field(default_factory=list)
    # Called with each request before it is answered (once: it is cleared after use).
    before_answer: Callable[[web.Request], Awaitable[None]] | None = None

    def script(self, *answers: Answer) -> None:
        self.answers[:] = answers

    async def handle(self, request: web.Request) -> web.Response:
        self.seen.append((request.method, request.path, CIMultiDict(request.headers)))
        self.raw_paths.append(request.raw_path)
        if self.before_answer is not None:
            hook, self.before_answer = self.before_answer, None
            await hook(request)
        answer = self.answers.pop(0) if self.answers else Answer()
        return web.Response(
            status=answer.status,
            headers=answer.headers,
            text=answer.body,
            content_type="application/json",
        )


async def _serve() -> AsyncIterator[Server]:
    recorder = Server(URL())
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", recorder.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    recorder.url = server.make_url("/")
    try:
        yield recorder
    finally:
        await server.close()


@pytest.fixture
async def upstream() -> AsyncIterator[Server]:
    async for server in _serve():
        yield server


@pytest.fixture
async def elsewhere() -> AsyncIterator[Server]:
    """Another origin (another port)."""
    async for server in _serve():
        yield server


@pytest.fixture
async def transport() -> AsyncIterator[HttpTransport]:
    transport = HttpTransport(NetworkPolicy(()), max_response_bytes=1024 * 1024)
    yield transport
    await transport.aclose()


def get(url: URL, headers: dict[str, str] | None = None) -> OutboundRequest:
    return OutboundRequest("GET", url, CIMultiDict(headers or {}))


@dataclass
class Retry:
    count: int = 2
    max_wait: float = 0.0


class RefreshingAuth(ConnectionAuth):
    """A token auth: answers a 401 by sending the request again with a new token."""

    added_headers = frozenset({"authorization"})

    def __init__(self) -> None:
        self.tokens = 0
        self.flows = 0

    def _token(self) -> str:
        self.tokens += 1
        return f"Bearer token-{self.tokens}-secret"

    async def async_auth_flow(
        self, request: RequestT
    ) -> AsyncGenerator[RequestT, IncomingResponse]:
        self.flows += 1
        request.headers["Authorization"] = self._token()
        response = yield request
        if response.status_code == 401:
            request.headers["Authorization"] = self._token()
            yield request


class NeverDriven(ConnectionAuth):
    """Ready headers only: the client must not drive its generator."""

    added_headers = frozenset({"x-key"})

    def ready_headers(self) -> Mapping[str, str]:
        return {"X-Key": "static-secret"}

    def auth_flow(self, request: RequestT) -> Generator[RequestT, IncomingResponse, None]:
        raise AssertionError("the ready-headers path drives no generator")


class CountingBearer(BearerTokenAuth):
    """The real bearer auth, counting how often its generator is driven."""

    flows = 0

    async def async_auth_flow(
        self, request: RequestT
    ) -> AsyncGenerator[RequestT, IncomingResponse]:
        self.flows += 1
        flow = super().async_auth_flow(request)
        outgoing = await flow.__anext__()
        while True:
            response = yield outgoing
            try:
                outgoing = await flow.asend(response)
            except StopAsyncIteration:
                return


def bearer() -> tuple[CountingBearer, FakeGrant]:
    grant = FakeGrant()
    manager = TokenManager("con_x", grant, MemoryTokenStore(), skew=30)
    return CountingBearer(manager), grant


async def test_without_auth_the_request_goes_as_it_is(
    transport: HttpTransport, upstream: Server
) -> None:
    response = await client.send(transport, get(upstream.url / "x", {"A": "1"}), timeout=5)
    assert response.status_code == 200
    [(method, path, headers)] = upstream.seen
    assert (method, path, headers["A"]) == ("GET", "/x", "1")
    assert "Authorization" not in headers


async def test_ready_headers_replace_any_same_named_header(
    transport: HttpTransport, upstream: Server
) -> None:
    request = get(upstream.url, {"authorization": "caller's", "x-api-key": "caller's"})
    await client.send(transport, request, timeout=5, auth=BasicAuth("u", "p"))
    await client.send(
        transport,
        get(upstream.url, {"x-api-key": "caller's"}),
        timeout=5,
        auth=CustomHeaderAuth("X-Api-Key", "k3y"),
    )
    basic, custom = (headers for _method, _path, headers in upstream.seen)
    assert basic.getall("Authorization") == ["Basic dTpw"]
    assert custom.getall("X-Api-Key") == ["k3y"]


async def test_ready_headers_skip_the_generator(transport: HttpTransport, upstream: Server) -> None:
    await client.send(transport, get(upstream.url), timeout=5, auth=NeverDriven())
    assert upstream.seen[0][2]["X-Key"] == "static-secret"


async def test_a_cached_bearer_token_is_sent_without_the_generator(
    transport: HttpTransport, upstream: Server
) -> None:
    auth, grant = bearer()
    for _ in range(3):
        await client.send(transport, get(upstream.url), timeout=5, auth=auth)
    # The first call fetched the token through the auth flow; the others used it as it is.
    assert (auth.flows, grant.calls) == (1, 1)
    assert [headers["Authorization"] for _m, _p, headers in upstream.seen] == ["Bearer tok-1"] * 3


async def test_a_401_to_a_cached_token_refreshes_it_once_and_sends_again(
    transport: HttpTransport, upstream: Server
) -> None:
    auth, grant = bearer()
    await client.send(transport, get(upstream.url), timeout=5, auth=auth)
    upstream.script(Answer(401), Answer(401))
    secrets = SecretSet()
    response = await client.send(
        transport, get(upstream.url), timeout=5, auth=auth, secrets=secrets
    )
    # One refresh, one retry; the second 401 is the answer (no loop).
    assert response.status_code == 401
    assert grant.calls == 2
    assert [headers["Authorization"] for _m, _p, headers in upstream.seen] == [
        "Bearer tok-1",
        "Bearer tok-1",
        "Bearer tok-2",
    ]
    assert auth.flows == 1  # only the very first call drove the generator
    for token in ("tok-1", "tok-2"):
        assert secrets.redact_text(f"x {token} y") == "x [redacted] y"


async def test_a_401_to_a_token_someone_already_replaced_refreshes_nothing(
    transport: HttpTransport, upstream: Server
) -> None:
    auth, grant = bearer()
    await client.send(transport, get(upstream.url), timeout=5, auth=auth)

    async def refresh_meanwhile(request: web.Request) -> None:
        # Another task refreshes the token while this request is on the wire.
        await auth.tokens.refresh(stale=auth.tokens.last())

    upstream.script(Answer(401))
    upstream.before_answer = refresh_meanwhile
    response = await client.send(transport, get(upstream.url), timeout=5, auth=auth)
    assert response.status_code == 200
    # tok-2 came from the other task's refresh; the 401 to tok-1 did not ask for a third.
    assert grant.calls == 2
    assert [headers["Authorization"] for _m, _p, headers in upstream.seen][1:] == [
        "Bearer tok-1",
        "Bearer tok-2",
    ]


async def test_auth_flow_sees_the_answer_and_may_send_again(
    transport: HttpTransport, upstream: Server
) -> None:
    upstream.script(Answer(401, body='{"error": "invalid_token"}'))
    auth = RefreshingAuth()
    secrets = SecretSet()
    response = await client.send(
        transport, get(upstream.url), timeout=5, auth=auth, secrets=secrets
    )
    assert response.status_code == 200
    assert [headers["Authorization"] for _m, _p, headers in upstream.seen] == [
        "Bearer token-1-secret",
        "Bearer token-2-secret",
    ]
    # What the auth sent is a secret of the work, and of the log: whole and token alone.
    for value in ("Bearer token-1-secret", "token-1-secret", "token-2-secret"):
        assert secrets.redact_text(f"x {value} y") == "x [redacted] y"
        assert value not in LOG_SECRETS.redact(f"x {value} y")


async def test_allowed_hosts_are_checked_before_the_auth_flow_starts(
    transport: HttpTransport, upstream: Server
) -> None:
    allowed = AllowedHosts(["api.example.com"], "conn")
    auth = RefreshingAuth()
    with pytest.raises(HostNotAllowed, match="Nothing was sent"):
        await client.send(transport, get(upstream.url), timeout=5, auth=auth, allowed_hosts=allowed)
    assert (auth.flows, auth.tokens, upstream.seen) == (0, 0, [])
    with pytest.raises(HostNotAllowed):
        await client.send(
            transport,
            get(upstream.url),
            timeout=5,
            auth=BasicAuth("u", "p"),
            allowed_hosts=allowed,
        )
    assert upstream.seen == []


async def test_a_redirect_elsewhere_leaves_the_auth_headers_behind(
    transport: HttpTransport, upstream: Server, elsewhere: Server
) -> None:
    target = str(elsewhere.url / "landed")
    upstream.script(Answer(307, {"Location": target}))
    auth = CustomHeaderAuth("X-Api-Key", "k3y")
    response = await client.send(transport, get(upstream.url / "start"), timeout=5, auth=auth)
    assert response.status_code == 200
    assert upstream.seen[0][2]["X-Api-Key"] == "k3y"
    [(_method, path, headers)] = elsewhere.seen
    assert path == "/landed"
    assert "X-Api-Key" not in headers


KEY = "k3y &+/é"
KEY_PAIR = "api_key=k3y+%26%2B/%C3%A9"  # as yarl writes it: a space as +


async def test_a_query_key_goes_once_replacing_any_parameter_of_its_name(
    transport: HttpTransport, upstream: Server
) -> None:
    request = get(URL(f"{upstream.url}a?api_key=mine&x=1+2&api%5Fkey=again&API_KEY=z"))
    await client.send(transport, request, timeout=5, auth=QueryParamAuth("api_key", KEY))
    [sent] = upstream.raw_paths
    assert sent == f"/a?x=1+2&API_KEY=z&{KEY_PAIR}"  # the others kept as they were


async def test_a_redirect_on_the_origin_gets_the_query_key_again_and_another_origin_never(
    transport: HttpTransport, upstream: Server, elsewhere: Server
) -> None:
    # the upstream's Location repeats the key: the other origin gets the URL without it
    upstream.script(
        Answer(302, {"Location": "/next?page=2"}),
        Answer(307, {"Location": str(elsewhere.url.with_path("/landed")) + f"?{KEY_PAIR}&p=1"}),
    )
    auth = QueryParamAuth("api_key", KEY)
    response = await client.send(transport, get(upstream.url / "start"), timeout=5, auth=auth)
    assert response.status_code == 200
    assert upstream.raw_paths == [f"/start?{KEY_PAIR}", f"/next?page=2&{KEY_PAIR}"]
    assert elsewhere.raw_paths == ["/landed?p=1"]


@pytest.mark.parametrize(
    "repeated",
    [
        "next=" + quote(f"/next?{KEY_PAIR}", safe=""),  # the URL it was called with
        f"key={KEY_PAIR.partition('=')[2]}",  # under another name
    ],
)
async def test_a_redirect_elsewhere_still_holding_the_query_key_is_not_followed(
    transport: HttpTransport, upstream: Server, elsewhere: Server, repeated: str
) -> None:
    upstream.script(Answer(302, {"Location": f"{elsewhere.url}landed?{repeated}"}))
    auth = QueryParamAuth("api_key", KEY)
    with pytest.raises(UpstreamConnectionError, match="key in the URL; not followed") as info:
        await client.send(transport, get(upstream.url), timeout=5, auth=auth)
    assert "k3y" not in info.value.message
    assert elsewhere.seen == []


async def test_no_redirect_followed_when_told_not_to(
    transport: HttpTransport, upstream: Server, elsewhere: Server
) -> None:
    upstream.script(Answer(307, {"Location": str(elsewhere.url)}))
    response = await client.send(transport, get(upstream.url), timeout=5, follow_redirects=False)
    assert response.status_code == 307
    assert elsewhere.seen == []


async def test_size_cap_is_passed_on(transport: HttpTransport, upstream: Server) -> None:
    upstream.script(Answer(body="x" * 100))
    with pytest.raises(ResponseTooLarge):
        await client.send(transport, get(upstream.url), timeout=5, max_response_bytes=10)


@pytest.mark.parametrize(
    ("answers", "retry", "calls", "status"),
    [
        ([Answer(429, {"Retry-After": "0"})] * 2, Retry(2), 3, 200),
        ([Answer(429, {"Retry-After": "0"})] * 3, Retry(2), 3, 429),  # retries spent
        ([Answer(429)] * 2, Retry(2), 3, 200),  # no Retry-After: a jittered wait
        ([Answer(503, {"Retry-After": "0"})], Retry(2), 2, 200),
        ([Answer(503)], Retry(2), 1, 503),  # 503 without Retry-After: not retried
        ([Answer(500, {"Retry-After": "0"})], Retry(2), 1, 500),
        ([Answer(429, {"Retry-After": "0"})], Retry(0), 1, 429),
        ([Answer(429, {"Retry-After": "0"})], None, 1, 429),  # token requests
    ],
)
async def test_retries(
    transport: HttpTransport,
    upstream: Server,
    answers: list[Answer],
    retry: Retry | None,
    calls: int,
    status: int,
) -> None:
    upstream.script(*answers)
    response = await client.send(
        transport, get(upstream.url), timeout=5, auth=RefreshingAuth(), retry=retry
    )
    assert (len(upstream.seen), response.status_code) == (calls, status)


def answer(status: int, retry_after: str | None = None) -> InboundResponse:
    headers: CIMultiDict[str] = CIMultiDict()
    if retry_after is not None:
        headers["Retry-After"] = retry_after
    return InboundResponse(status, CIMultiDictProxy(headers), b"", URL("http://h/"))


def test_retry_delay() -> None:
    assert client.retry_delay(answer(200), 0, 30) is None
    assert client.retry_delay(answer(503), 0, 30) is None
    assert client.retry_delay(answer(429, "3"), 0, 30) == 3.0
    assert client.retry_delay(answer(503, "3"), 0, 30) == 3.0
    assert client.retry_delay(answer(429, "90"), 0, 30) == 30.0  # capped at max_wait
    assert client.retry_delay(answer(429, "-5"), 0, 30) == 0.0
    past = format_datetime(datetime.now(UTC) - timedelta(hours=1), usegmt=True)
    assert client.retry_delay(answer(429, past), 0, 30) == 0.0
    future = format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)
    assert client.retry_delay(answer(429, future), 0, 30) == 30.0
    for attempt in range(4):  # no usable Retry-After: up to 0.5 s, doubling, capped
        for text in (None, "soon"):
            delay = client.retry_delay(answer(429, text), attempt, 1.5)
            assert delay is not None
            assert 0 <= delay <= min(1.5, 0.5 * 2**attempt)


@pytest.mark.parametrize("bad", ["X-A\n", "X-A\r\n", "X A", ""])
def test_header_names_and_methods_refuse_a_trailing_newline(bad: str) -> None:
    from cardflow.net.headers import check_header_name, check_method

    with pytest.raises(ValueError):
        check_header_name(bad)
    with pytest.raises(ValueError):
        check_method(bad.replace("X-A", "GET"))
