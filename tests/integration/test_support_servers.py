"""Self-checks for the loopback servers in tests/support that the integration tests rely on."""

from __future__ import annotations

import base64
import json
import socket
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import aiohttp
import httpx
import pytest

from tests.support.oauth_server import OAuthServer
from tests.support.upstream import MIB, Upstream


@pytest.fixture
def upstream() -> Iterator[Upstream]:
    with Upstream() as server:
        yield server


@pytest.fixture
def oauth() -> Iterator[OAuthServer]:
    with OAuthServer() as server:
        server.add_client("post-client", "post-secret", "client_secret_post", scope="read write")
        server.add_client("basic-client", "basic-secret", "client_secret_basic", scope="read")
        yield server


def wait_until(condition: Callable[[], bool], timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.01)


def raw_request(port: int, request: bytes) -> tuple[bytes, bytes]:
    """Send `request` as-is over a socket; return the response head and body."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return head, body


# -- Upstream ----------------------------------------------------------------------------------


def test_upstream_url_is_loopback_with_ephemeral_port(upstream: Upstream) -> None:
    assert upstream.url == f"http://127.0.0.1:{upstream.port}"
    assert upstream.port > 0


def test_echo_reports_method_path_query_and_raw_body(upstream: Upstream) -> None:
    payload = b"caf\xc3\xa9 \xff"
    response = httpx.post(
        f"{upstream.url}/echo/a/b?x=1&x=2&y=z",
        content=payload,
        headers={"Content-Type": "application/octet-stream"},
    )

    assert response.status_code == 200
    echoed = response.json()
    assert echoed["method"] == "POST"
    assert echoed["path"] == "/echo/a/b"
    assert echoed["query_string"] == "x=1&x=2&y=z"
    assert echoed["query"] == {"x": ["1", "2"], "y": ["z"]}
    assert echoed["body"] == "café \ufffd"
    assert base64.b64decode(echoed["body_b64"]) == payload
    assert ["Content-Type", "application/octet-stream"] in echoed["headers"]
    assert upstream.requests == [echoed]


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE"])
def test_echo_answers_any_method(upstream: Upstream, method: str) -> None:
    response = httpx.request(method, f"{upstream.url}/echo")

    assert response.json()["method"] == method


def test_echo_reports_header_names_exactly_as_sent(upstream: Upstream) -> None:
    head, body = raw_request(
        upstream.port,
        b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\napi_key: s3cret\r\n"
        b"X-MiXeD-Case: v\r\nConnection: close\r\n\r\n",
    )

    assert head.startswith(b"HTTP/1.1 200")
    headers = json.loads(body)["headers"]
    assert ["api_key", "s3cret"] in headers
    assert ["X-MiXeD-Case", "v"] in headers
    assert ["api_key", "s3cret"] in upstream.requests[-1]["headers"]


def test_requests_from_many_threads_are_all_recorded(upstream: Upstream) -> None:
    with httpx.Client(base_url=upstream.url) as client, ThreadPoolExecutor(8) as pool:
        statuses = list(
            pool.map(lambda i: client.get("/echo", params={"i": i}).status_code, range(40))
        )

    assert statuses == [200] * 40
    seen = sorted(int(r["query"]["i"][0]) for r in upstream.requests)
    assert seen == list(range(40))


async def test_upstream_serves_async_clients(upstream: Upstream) -> None:
    async with httpx.AsyncClient(base_url=upstream.url) as client:
        response = await client.get("/json")

    assert response.json() == {"hello": "world", "n": 1}


def test_reset_forgets_requests_and_counters(upstream: Upstream) -> None:
    httpx.get(f"{upstream.url}/flaky/k")
    upstream.reset()

    assert upstream.requests == []
    assert upstream.calls("k") == 0


def test_status_answers_json_with_the_code(upstream: Upstream) -> None:
    response = httpx.get(f"{upstream.url}/status/503")

    assert response.status_code == 503
    assert response.json() == {"status": 503}
    assert "retry-after" not in response.headers


def test_status_with_text_body_and_retry_after(upstream: Upstream) -> None:
    response = httpx.get(
        f"{upstream.url}/status/429", params={"body": "slow down", "retry_after": 7}
    )

    assert response.status_code == 429
    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "slow down"
    assert response.headers["retry-after"] == "7"


def test_status_204_has_no_body(upstream: Upstream) -> None:
    response = httpx.get(f"{upstream.url}/status/204")

    assert response.status_code == 204
    assert response.content == b""


def test_flaky_fails_n_times_then_succeeds(upstream: Upstream) -> None:
    url = f"{upstream.url}/flaky/job"
    params = {"fail": 2, "code": 503, "retry_after": 1}

    first, second, third = (httpx.get(url, params=params) for _ in range(3))

    assert [first.status_code, second.status_code] == [503, 503]
    assert first.headers["retry-after"] == "1"
    assert third.status_code == 200
    assert third.json() == {"calls": 3}
    assert upstream.calls("job") == 3
    assert upstream.calls("other") == 0


def test_flaky_defaults_to_429_without_retry_after(upstream: Upstream) -> None:
    response = httpx.get(f"{upstream.url}/flaky/k", params={"fail": 1})

    assert response.status_code == 429
    assert "retry-after" not in response.headers


@pytest.mark.parametrize(
    ("path", "content_type"),
    [("/json", "application/json"), ("/vnd-json", "application/vnd.api+json")],
)
def test_json_routes(upstream: Upstream, path: str, content_type: str) -> None:
    response = httpx.get(f"{upstream.url}{path}")

    assert response.headers["content-type"].split(";")[0] == content_type
    assert response.json() == {"hello": "world", "n": 1}


def test_text(upstream: Upstream) -> None:
    response = httpx.get(f"{upstream.url}/text")

    assert response.headers["content-type"].startswith("text/plain")
    assert response.text == "plain text"


def test_empty_is_204_without_body(upstream: Upstream) -> None:
    response = httpx.get(f"{upstream.url}/empty")

    assert response.status_code == 204
    assert response.content == b""


def test_empty200_is_json_typed_but_empty(upstream: Upstream) -> None:
    response = httpx.get(f"{upstream.url}/empty200")

    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.content == b""


def test_bad_json_is_json_typed_but_invalid(upstream: Upstream) -> None:
    response = httpx.get(f"{upstream.url}/bad-json")

    assert response.headers["content-type"] == "application/json"
    assert response.content == b'{"oops": '
    with pytest.raises(json.JSONDecodeError):
        response.json()


def test_xml_is_a_soap_envelope(upstream: Upstream) -> None:
    response = httpx.get(f"{upstream.url}/xml")

    assert response.headers["content-type"].startswith("application/xml")
    root = ET.fromstring(response.content)
    assert root.tag == "{http://schemas.xmlsoap.org/soap/envelope/}Envelope"


def test_script_is_html_with_a_script_tag(upstream: Upstream) -> None:
    response = httpx.get(f"{upstream.url}/script")

    assert response.headers["content-type"].startswith("text/html")
    assert "<script>alert(1)</script>" in response.text


def test_slow_answers_after_the_delay(upstream: Upstream) -> None:
    response = httpx.get(f"{upstream.url}/slow", params={"seconds": 0.2})

    assert response.json() == {"slept": 0.2}


def test_slow_trips_a_shorter_client_timeout(upstream: Upstream) -> None:
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(f"{upstream.url}/slow", params={"seconds": 5}, timeout=0.2)


def test_hang_never_answers(upstream: Upstream) -> None:
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(f"{upstream.url}/hang", timeout=0.3)


def test_stop_releases_a_hanging_request() -> None:
    server = Upstream().start()
    outcome: list[object] = []

    def call() -> None:
        try:
            outcome.append(httpx.get(f"{server.url}/hang", timeout=30).status_code)
        except httpx.TransportError as exc:
            outcome.append(exc)

    caller = threading.Thread(target=call)
    caller.start()
    wait_until(lambda: bool(server.requests))
    server.stop()
    caller.join(timeout=5)

    assert not caller.is_alive()
    assert outcome == [503]


def test_reset_drops_the_connection_for_httpx(upstream: Upstream) -> None:
    with pytest.raises(httpx.TransportError) as caught:
        httpx.get(f"{upstream.url}/reset", timeout=5)

    assert not isinstance(caught.value, httpx.TimeoutException)


async def test_reset_drops_the_connection_for_aiohttp(upstream: Upstream) -> None:
    async with aiohttp.ClientSession() as session:
        with pytest.raises(aiohttp.ClientConnectionError):
            async with session.get(f"{upstream.url}/reset") as response:
                await response.read()


def test_big_streams_without_content_length(upstream: Upstream) -> None:
    with httpx.stream("GET", f"{upstream.url}/big", params={"mib": 50}) as response:
        assert "content-length" not in response.headers
        assert response.headers["transfer-encoding"] == "chunked"
        received = 0
        for chunk in response.iter_bytes():
            received += len(chunk)
            if received >= MIB:
                break  # hang up early, as a client with a size cap would

    assert received >= MIB
    assert httpx.get(f"{upstream.url}/json").status_code == 200  # server still fine


def test_big_sends_exactly_the_requested_size(upstream: Upstream) -> None:
    response = httpx.get(f"{upstream.url}/big", params={"mib": 2})

    assert len(response.content) == 2 * MIB


def test_big_declared_sets_content_length(upstream: Upstream) -> None:
    with httpx.stream("GET", f"{upstream.url}/big-declared", params={"mib": 50}) as response:
        assert response.headers["content-length"] == str(50 * MIB)
        first = next(response.iter_bytes())

    assert first


def test_redirect_to_url_with_code(upstream: Upstream) -> None:
    response = httpx.get(f"{upstream.url}/redirect", params={"to": "/json", "code": 307})

    assert response.status_code == 307
    assert response.headers["location"] == "/json"
    followed = httpx.get(
        f"{upstream.url}/redirect", params={"to": f"{upstream.url}/json"}, follow_redirects=True
    )
    assert followed.json() == {"hello": "world", "n": 1}
    assert [r.status_code for r in followed.history] == [302]


def test_redirect_chain_ends_at_echo(upstream: Upstream) -> None:
    response = httpx.get(f"{upstream.url}/redirect-chain/3", follow_redirects=True)

    assert response.json()["path"] == "/echo"
    assert [r.url.path for r in response.history] == [
        "/redirect-chain/3",
        "/redirect-chain/2",
        "/redirect-chain/1",
        "/redirect-chain/0",
    ]


def test_unauthorized_once_then_echoes(upstream: Upstream) -> None:
    url = f"{upstream.url}/unauthorized-once/conn"

    first = httpx.get(url, headers={"Authorization": "Bearer old"})
    second = httpx.get(url, headers={"Authorization": "Bearer new"})

    assert first.status_code == 401
    assert first.headers["www-authenticate"] == 'Bearer error="invalid_token"'
    assert second.status_code == 200
    assert ["Authorization", "Bearer new"] in second.json()["headers"]
    assert upstream.calls("conn", route="unauthorized-once") == 2
    assert upstream.calls("conn") == 0


# -- OAuthServer -------------------------------------------------------------------------------


def client_credentials(
    server: OAuthServer, client_id: str, secret: str, *, basic: bool, timeout: float = 5
) -> httpx.Response:
    data = {"grant_type": "client_credentials"}
    if basic:
        return httpx.post(server.token_url, data=data, auth=(client_id, secret), timeout=timeout)
    data |= {"client_id": client_id, "client_secret": secret}
    return httpx.post(server.token_url, data=data, timeout=timeout)


def call_me(server: OAuthServer, token: str) -> httpx.Response:
    return httpx.get(f"{server.url}/api/me", headers={"Authorization": f"Bearer {token}"})


def test_oauth_urls(oauth: OAuthServer) -> None:
    assert oauth.url == f"http://127.0.0.1:{oauth.port}"
    assert oauth.token_url == f"{oauth.url}/oauth/token"


def test_client_secret_post_gets_a_token(oauth: OAuthServer) -> None:
    response = client_credentials(oauth, "post-client", "post-secret", basic=False)

    assert response.status_code == 200
    token = response.json()
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == 3600
    assert token["scope"] == "read write"
    assert "refresh_token" not in token
    assert response.headers["cache-control"] == "no-store"
    assert oauth.issued_tokens == [token["access_token"]]
    assert oauth.token_requests == 1


def test_client_secret_basic_gets_a_token(oauth: OAuthServer) -> None:
    response = client_credentials(oauth, "basic-client", "basic-secret", basic=True)

    assert response.status_code == 200
    assert response.json()["scope"] == "read"
    assert oauth.issued_tokens == [response.json()["access_token"]]


def test_requested_scope_is_narrowed_to_the_clients(oauth: OAuthServer) -> None:
    response = httpx.post(
        oauth.token_url,
        data={"grant_type": "client_credentials", "scope": "write admin"},
        auth=("post-client", "post-secret"),
    )
    assert response.status_code == 401  # a post client may not use HTTP Basic

    response = httpx.post(
        oauth.token_url,
        data={
            "grant_type": "client_credentials",
            "scope": "write admin",
            "client_id": "post-client",
            "client_secret": "post-secret",
        },
    )
    assert response.json()["scope"] == "write"


@pytest.mark.parametrize(("client_id", "basic"), [("post-client", False), ("basic-client", True)])
def test_wrong_secret_is_invalid_client(oauth: OAuthServer, client_id: str, basic: bool) -> None:
    response = client_credentials(oauth, client_id, "wrong", basic=basic)

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert oauth.issued_tokens == []
    assert oauth.token_requests == 1


def test_token_requests_are_counted_under_concurrency(oauth: OAuthServer) -> None:
    data = {"grant_type": "client_credentials"}
    with (
        httpx.Client(auth=("basic-client", "basic-secret")) as client,
        ThreadPoolExecutor(8) as pool,
    ):
        statuses = list(
            pool.map(lambda _: client.post(oauth.token_url, data=data).status_code, range(24))
        )

    assert statuses == [200] * 24
    assert oauth.token_requests == 24
    assert len(set(oauth.issued_tokens)) == 24


def test_fail_next_answers_the_status_then_recovers(oauth: OAuthServer) -> None:
    oauth.fail_next(2, status=503, retry_after=3)

    responses = [
        client_credentials(oauth, "basic-client", "basic-secret", basic=True) for _ in range(3)
    ]

    assert [r.status_code for r in responses] == [503, 503, 200]
    assert responses[0].json()["error"] == "server_error"
    assert responses[0].headers["retry-after"] == "3"
    assert oauth.token_requests == 3
    assert len(oauth.issued_tokens) == 1


def test_hang_next_delays_only_the_next_requests(oauth: OAuthServer) -> None:
    oauth.hang_next(1, 30)

    with pytest.raises(httpx.ReadTimeout):
        client_credentials(oauth, "basic-client", "basic-secret", basic=True, timeout=0.3)
    # The threaded server answers others while that one still sleeps.
    response = client_credentials(oauth, "basic-client", "basic-secret", basic=True)

    assert response.status_code == 200
    assert oauth.token_requests == 2


def test_stop_wakes_a_hanging_token_request() -> None:
    server = OAuthServer().start()
    server.add_client("c", "s", "client_secret_basic")
    server.hang_next(1, 60)
    caller = threading.Thread(
        target=lambda: client_credentials(server, "c", "s", basic=True, timeout=30)
    )
    caller.start()
    wait_until(lambda: server.token_requests == 1)
    server.stop()
    caller.join(timeout=5)

    assert not caller.is_alive()


def test_expires_in_can_change_at_runtime(oauth: OAuthServer) -> None:
    oauth.expires_in = 120

    response = client_credentials(oauth, "basic-client", "basic-secret", basic=True)

    assert response.json()["expires_in"] == 120


def test_me_accepts_a_fresh_token(oauth: OAuthServer) -> None:
    token = client_credentials(oauth, "post-client", "post-secret", basic=False).json()

    response = call_me(oauth, token["access_token"])

    assert response.status_code == 200
    assert response.json() == {
        "client_id": "post-client",
        "scope": "read write",
        "token_suffix": token["access_token"][-4:],
    }


def assert_invalid_token(response: httpx.Response) -> None:
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith('Bearer error="invalid_token"')


def test_me_rejects_an_expired_token(oauth: OAuthServer) -> None:
    oauth.expires_in = 1
    token = client_credentials(oauth, "basic-client", "basic-secret", basic=True).json()
    assert call_me(oauth, token["access_token"]).status_code == 200

    time.sleep(1.5)

    assert_invalid_token(call_me(oauth, token["access_token"]))


def test_me_rejects_a_revoked_token(oauth: OAuthServer) -> None:
    token = client_credentials(oauth, "basic-client", "basic-secret", basic=True).json()

    oauth.revoke_all()

    assert_invalid_token(call_me(oauth, token["access_token"]))
    fresh = client_credentials(oauth, "basic-client", "basic-secret", basic=True).json()
    assert call_me(oauth, fresh["access_token"]).status_code == 200


def test_me_rejects_an_unknown_token(oauth: OAuthServer) -> None:
    assert_invalid_token(call_me(oauth, "not-a-token"))


def test_me_without_a_token_is_401(oauth: OAuthServer) -> None:
    response = httpx.get(f"{oauth.url}/api/me")

    assert response.status_code == 401
    assert response.headers["www-authenticate"].lower().startswith("bearer ")
