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
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import httpx
import pytest
from authlib.common.security import generate_token
from authlib.oauth2.rfc7636 import create_s256_code_challenge

from tests.support.oauth_server import OAuthServer
from tests.support.provider_login import authorize_get_callback_url, authorize_in_browser
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


# -- OAuthServer: authorization code, PKCE, refresh rotation, login and consent ---------------

WEB_ID, WEB_SECRET = "web-client", "web-secret"


@dataclass
class CodeFlow:
    """A code-flow client registered at `server`, its redirect_uri served by `upstream`."""

    server: OAuthServer
    redirect_uri: str
    verifier: str = field(default_factory=lambda: generate_token(64))

    def authorize_url(self, *, pkce: bool = True, **params: str | None) -> str:
        """The provider's authorize URL; a None param is left out."""
        return self._authorize_url(pkce, params)

    def _authorize_url(self, pkce: bool, params: dict[str, str | None]) -> str:
        query = {
            "response_type": "code",
            "client_id": WEB_ID,
            "redirect_uri": self.redirect_uri,
            "scope": "read write",
            "state": "st-123",
        }
        if pkce:
            query |= {
                "code_challenge": create_s256_code_challenge(self.verifier),
                "code_challenge_method": "S256",
            }
        sent = {k: v for k, v in (query | params).items() if v is not None}
        return str(httpx.URL(self.server.authorize_url, params=sent))

    def get_code(self, **params: str | None) -> str:
        with httpx.Client() as browser:
            callback = httpx.URL(
                authorize_get_callback_url(browser, self._authorize_url(True, params))
            )
        assert callback.params["state"] == params.get("state", "st-123")
        return callback.params["code"]

    def exchange(self, code: str, **overrides: str | None) -> httpx.Response:
        data = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": self.verifier,
        } | overrides
        form = {k: v for k, v in data.items() if v is not None}
        return httpx.post(self.server.token_url, data=form, auth=(WEB_ID, WEB_SECRET))

    def tokens(self) -> dict[str, Any]:
        response = self.exchange(self.get_code())
        assert response.status_code == 200, response.text
        token: dict[str, Any] = response.json()
        return token

    def refresh(self, refresh_token: str, client: str = WEB_ID) -> httpx.Response:
        secret = WEB_SECRET if client == WEB_ID else f"{client}-secret"
        return httpx.post(
            self.server.token_url,
            data={"grant_type": "refresh_token", "refresh_token": refresh_token},
            auth=(client, secret),
        )


@pytest.fixture
def flow(oauth: OAuthServer, upstream: Upstream) -> CodeFlow:
    redirect_uri = f"{upstream.url}/echo/callback"
    oauth.add_client(
        WEB_ID,
        WEB_SECRET,
        "client_secret_basic",
        scope="read write",
        grant_types=("authorization_code", "refresh_token"),
        redirect_uris=(redirect_uri,),
    )
    return CodeFlow(oauth, redirect_uri)


def oauth_error(response: httpx.Response) -> str:
    error: str = response.json()["error"]
    return error


def test_code_flow_with_pkce_issues_tokens(flow: CodeFlow, oauth: OAuthServer) -> None:
    code = flow.get_code()
    response = flow.exchange(code)

    assert response.status_code == 200
    token = response.json()
    assert token["token_type"] == "Bearer"
    assert token["expires_in"] == 3600
    assert token["scope"] == "read write"
    assert token["refresh_token"]
    assert response.headers["cache-control"] == "no-store"
    assert call_me(oauth, token["access_token"]).json()["client_id"] == WEB_ID
    assert oauth.issued_tokens == [token["access_token"]]
    assert oauth.issued_refresh_tokens == [token["refresh_token"]]
    assert (oauth.token_requests, oauth.code_exchanges, oauth.refresh_requests) == (1, 1, 0)
    assert oauth.last_authorize_params == {
        "response_type": "code",
        "client_id": WEB_ID,
        "redirect_uri": flow.redirect_uri,
        "scope": "read write",
        "state": "st-123",
        "code_challenge": create_s256_code_challenge(flow.verifier),
        "code_challenge_method": "S256",
    }


def test_authorize_url_redirects_to_login_then_consent(flow: CodeFlow, oauth: OAuthServer) -> None:
    authorize_url = flow.authorize_url()
    with httpx.Client() as browser:
        first = browser.get(authorize_url)
        assert first.status_code == 302
        login = httpx.URL(first.url.join(first.headers["location"]))
        assert login.path == "/login"
        assert login.params["next"] == authorize_url.removeprefix(oauth.url)

        form = browser.get(login)
        assert form.status_code == 200
        assert 'name="password"' in form.text
        wrong = browser.post(login, data={"username": "alice", "password": "nope"})
        assert wrong.status_code == 401
        signed_in = browser.post(login, data={"username": "alice", "password": "wonderland"})
        assert signed_in.status_code == 302
        assert signed_in.headers["location"] == login.params["next"]

        consent = browser.get(authorize_url)
        assert consent.status_code == 200
        assert "text/html" in consent.headers["content-type"]
        assert 'name="confirm" value="yes"' in consent.text
        assert WEB_ID in consent.text


def test_authorize_in_browser_reaches_the_callback_and_keeps_the_bearer_home(
    flow: CodeFlow, oauth: OAuthServer, upstream: Upstream
) -> None:
    sent: list[httpx.Request] = []
    # The browser starts at the "app" (upstream), which redirects to the provider.
    start = str(httpx.URL(f"{upstream.url}/redirect", params={"to": flow.authorize_url()}))
    with httpx.Client(
        headers={"Authorization": "Bearer app-token"},
        event_hooks={"request": [sent.append]},
        follow_redirects=True,  # ignored: the helper goes hop by hop
    ) as browser:
        final = authorize_in_browser(browser, start)

    assert final.status_code == 200
    echoed = final.json()
    assert echoed["path"] == "/echo/callback"
    assert echoed["query"]["state"] == ["st-123"]
    assert flow.exchange(echoed["query"]["code"][0]).status_code == 200
    hops = [(r.method, r.url.port, r.url.path) for r in sent]
    assert hops == [
        ("GET", upstream.port, "/redirect"),
        ("GET", oauth.port, "/oauth/authorize"),
        ("GET", oauth.port, "/login"),
        ("POST", oauth.port, "/login"),
        ("GET", oauth.port, "/oauth/authorize"),
        ("POST", oauth.port, "/oauth/authorize"),
        ("GET", upstream.port, "/echo/callback"),
    ]
    for request in sent:
        has_bearer = request.headers.get("authorization") == "Bearer app-token"
        assert has_bearer == (request.url.port == upstream.port), request.url


def test_a_signed_in_browser_skips_the_login(flow: CodeFlow) -> None:
    with httpx.Client() as browser:
        authorize_get_callback_url(browser, flow.authorize_url())
        # Wrong credentials would fail: they are not asked for again.
        url = authorize_get_callback_url(browser, flow.authorize_url(), password="wrong")

    assert "code" in httpx.URL(url).params


def test_wrong_password_stops_at_the_login_form(flow: CodeFlow) -> None:
    with httpx.Client() as browser:
        page = authorize_in_browser(browser, flow.authorize_url(), password="wrong")
        assert page.status_code == 401
        assert page.url.path == "/login"
        with pytest.raises(AssertionError, match="stopped before the callback"):
            authorize_get_callback_url(browser, flow.authorize_url(), password="wrong")


def test_added_users_can_sign_in(flow: CodeFlow, oauth: OAuthServer) -> None:
    oauth.add_user("bob", "builder")
    with httpx.Client() as browser:
        url = authorize_get_callback_url(
            browser, flow.authorize_url(), username="bob", password="builder"
        )
    token = flow.exchange(httpx.URL(url).params["code"]).json()

    assert oauth.store.get_token(token["access_token"]).user_id == "bob"  # type: ignore[union-attr]


def test_code_cannot_be_used_twice(flow: CodeFlow, oauth: OAuthServer) -> None:
    code = flow.get_code()
    assert flow.exchange(code).status_code == 200

    again = flow.exchange(code)

    assert again.status_code == 400
    assert oauth_error(again) == "invalid_grant"
    assert oauth.code_exchanges == 2
    assert len(oauth.issued_tokens) == 1


def test_concurrent_exchanges_of_one_code_issue_one_token(
    flow: CodeFlow, oauth: OAuthServer
) -> None:
    code = flow.get_code()
    with ThreadPoolExecutor(8) as pool:
        statuses = sorted(pool.map(lambda _: flow.exchange(code).status_code, range(8)))

    assert statuses == [200] + [400] * 7
    assert len(oauth.issued_tokens) == 1


def test_expired_code_is_invalid_grant(flow: CodeFlow, oauth: OAuthServer) -> None:
    oauth.code_lifetime = 0

    response = flow.exchange(flow.get_code())

    assert response.status_code == 400
    assert oauth_error(response) == "invalid_grant"


def test_code_is_bound_to_its_client(flow: CodeFlow, oauth: OAuthServer) -> None:
    oauth.add_client(
        "other",
        "other-secret",
        grant_types=("authorization_code",),
        redirect_uris=(flow.redirect_uri,),
    )
    code = flow.get_code()

    stolen = httpx.post(
        oauth.token_url,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": flow.redirect_uri,
            "code_verifier": flow.verifier,
        },
        auth=("other", "other-secret"),
    )

    assert oauth_error(stolen) == "invalid_grant"
    assert flow.exchange(code).status_code == 200  # the attempt did not burn it


def test_missing_pkce_is_refused_when_required(flow: CodeFlow, oauth: OAuthServer) -> None:
    with httpx.Client() as browser:
        url = httpx.URL(authorize_get_callback_url(browser, flow.authorize_url(pkce=False)))

    assert url.copy_with(query=None) == httpx.URL(flow.redirect_uri)
    assert url.params["error"] == "invalid_request"
    assert "code_challenge" in url.params["error_description"]
    assert url.params["state"] == "st-123"
    assert "code" not in url.params


def test_pkce_can_be_turned_off(flow: CodeFlow, oauth: OAuthServer) -> None:
    oauth.require_pkce = False
    with httpx.Client() as browser:
        url = httpx.URL(authorize_get_callback_url(browser, flow.authorize_url(pkce=False)))
    code = url.params["code"]

    # Without a challenge, a verifier is refused (RFC 9700 section 4.8); without one, fine.
    assert oauth_error(flow.exchange(code)) == "invalid_request"
    assert flow.exchange(code, code_verifier=None).status_code == 200
    assert OAuthServer(require_pkce=False).require_pkce is False


@pytest.mark.parametrize(
    ("verifier", "error"),
    [(None, "invalid_request"), ("x" * 43, "invalid_grant"), ("short", "invalid_request")],
)
def test_code_verifier_must_match(flow: CodeFlow, verifier: str | None, error: str) -> None:
    response = flow.exchange(flow.get_code(), code_verifier=verifier)

    assert response.status_code == 400
    assert oauth_error(response) == error


def test_plain_challenge_method_defaults_when_omitted(flow: CodeFlow, oauth: OAuthServer) -> None:
    # A client that forgets code_challenge_method gets "plain": its S256 verifier then fails.
    for method in (None, ""):
        code = flow.get_code(code_challenge_method=method)
        assert oauth_error(flow.exchange(code)) == "invalid_grant"
        assert "code_challenge_method" not in oauth.last_authorize_params or method == ""


@pytest.mark.parametrize("suffix", ["/", "?x=1", "X"])
def test_redirect_uri_must_match_exactly(flow: CodeFlow, suffix: str) -> None:
    with httpx.Client() as browser:
        page = authorize_in_browser(
            browser, flow.authorize_url(redirect_uri=flow.redirect_uri + suffix)
        )

    assert page.status_code == 400  # shown at the provider, not redirected
    assert page.url.path == "/oauth/authorize"
    assert oauth_error(page) == "invalid_request"


def test_token_request_redirect_uri_must_match(flow: CodeFlow) -> None:
    code = flow.get_code()

    assert oauth_error(flow.exchange(code, redirect_uri=flow.redirect_uri + "/")) == "invalid_grant"
    assert oauth_error(flow.exchange(code, redirect_uri=None)) == "invalid_grant"


def test_unknown_client_gets_an_error_page(flow: CodeFlow) -> None:
    with httpx.Client() as browser:
        page = authorize_in_browser(browser, flow.authorize_url(client_id="nobody"))

    assert page.status_code == 400
    assert oauth_error(page) == "invalid_client"


def test_client_auth_method_is_enforced_per_client(flow: CodeFlow, oauth: OAuthServer) -> None:
    oauth.add_client(
        "post-web",
        "post-web-secret",
        "client_secret_post",
        scope="read",
        grant_types=("authorization_code", "refresh_token"),
        redirect_uris=(flow.redirect_uri,),
    )
    data = {"grant_type": "authorization_code", "redirect_uri": flow.redirect_uri}
    data["code_verifier"] = flow.verifier

    code = flow.get_code(client_id="post-web")
    basic = httpx.post(
        oauth.token_url, data=data | {"code": code}, auth=("post-web", "post-web-secret")
    )
    assert basic.status_code == 401
    assert oauth_error(basic) == "invalid_client"

    post = httpx.post(
        oauth.token_url,
        data=data | {"code": code, "client_id": "post-web", "client_secret": "post-web-secret"},
    )
    assert post.status_code == 200
    assert post.json()["scope"] == "read"

    refreshed = httpx.post(
        oauth.token_url,
        data={
            "grant_type": "refresh_token",
            "refresh_token": post.json()["refresh_token"],
            "client_id": "post-web",
            "client_secret": "post-web-secret",
        },
    )
    assert refreshed.status_code == 200


def test_confirm_no_is_access_denied(flow: CodeFlow, oauth: OAuthServer) -> None:
    with httpx.Client() as browser:
        url = httpx.URL(authorize_get_callback_url(browser, flow.authorize_url(), consent=False))
        final = authorize_in_browser(browser, flow.authorize_url(), consent=False)

    assert url.params["error"] == "access_denied"
    assert url.params["state"] == "st-123"
    assert "code" not in url.params
    assert final.json()["query"]["error"] == ["access_denied"]
    assert oauth.store.tokens() == []


def test_extra_authorize_params_are_recorded_as_sent(flow: CodeFlow, oauth: OAuthServer) -> None:
    flow.get_code(scope="write  read", state="s p&a=ce", prompt="consent", access_type="offline")

    params = oauth.last_authorize_params
    assert params["scope"] == "write  read"
    assert params["state"] == "s p&a=ce"
    assert params["prompt"] == "consent"
    assert params["access_type"] == "offline"


def test_a_client_without_the_refresh_grant_gets_no_refresh_token(
    flow: CodeFlow, oauth: OAuthServer
) -> None:
    oauth.add_client(
        WEB_ID,
        WEB_SECRET,
        scope="read write",
        grant_types=("authorization_code",),
        redirect_uris=(flow.redirect_uri,),
    )

    assert "refresh_token" not in flow.tokens()


def test_refresh_rotates_and_the_old_refresh_token_is_refused(
    flow: CodeFlow, oauth: OAuthServer
) -> None:
    first = flow.tokens()

    response = flow.refresh(first["refresh_token"])

    assert response.status_code == 200
    second = response.json()
    assert second["refresh_token"] not in (None, first["refresh_token"])
    assert second["access_token"] != first["access_token"]
    assert second["scope"] == "read write"
    assert second["expires_in"] == 3600
    assert call_me(oauth, second["access_token"]).status_code == 200
    # Rotation only uses up the refresh token: the old access token lives out its lifetime.
    assert call_me(oauth, first["access_token"]).status_code == 200

    reused = flow.refresh(first["refresh_token"])
    assert reused.status_code == 400
    assert oauth_error(reused) == "invalid_grant"

    third = flow.refresh(second["refresh_token"])
    assert third.status_code == 200
    assert oauth.issued_refresh_tokens == [
        first["refresh_token"],
        second["refresh_token"],
        third.json()["refresh_token"],
    ]
    assert (oauth.token_requests, oauth.code_exchanges, oauth.refresh_requests) == (4, 1, 3)


def test_concurrent_refreshes_with_one_token_let_one_win(flow: CodeFlow) -> None:
    refresh_token = flow.tokens()["refresh_token"]
    with ThreadPoolExecutor(8) as pool:
        responses = list(pool.map(lambda _: flow.refresh(refresh_token), range(8)))

    assert sorted(r.status_code for r in responses) == [200] + [400] * 7


def test_refresh_token_is_bound_to_its_client(flow: CodeFlow, oauth: OAuthServer) -> None:
    oauth.add_client(
        "thief",
        "thief-secret",
        grant_types=("authorization_code", "refresh_token"),
        redirect_uris=(flow.redirect_uri,),
    )
    refresh_token = flow.tokens()["refresh_token"]

    stolen = flow.refresh(refresh_token, client="thief")

    assert oauth_error(stolen) == "invalid_grant"
    assert flow.refresh(refresh_token).status_code == 200  # not used up by the thief


def test_refresh_narrows_but_never_widens_scope(flow: CodeFlow, oauth: OAuthServer) -> None:
    refresh_token = flow.tokens()["refresh_token"]
    data = {"grant_type": "refresh_token", "refresh_token": refresh_token}

    wider = httpx.post(
        oauth.token_url, data=data | {"scope": "read admin"}, auth=(WEB_ID, WEB_SECRET)
    )
    narrower = httpx.post(oauth.token_url, data=data | {"scope": "read"}, auth=(WEB_ID, WEB_SECRET))

    assert oauth_error(wider) == "invalid_scope"
    assert narrower.json()["scope"] == "read"


def test_expires_in_applies_to_code_and_refresh_tokens(flow: CodeFlow, oauth: OAuthServer) -> None:
    oauth.expires_in = 1
    token = flow.tokens()
    assert token["expires_in"] == 1
    time.sleep(1.2)
    assert_invalid_token(call_me(oauth, token["access_token"]))

    refreshed = flow.refresh(token["refresh_token"]).json()

    assert refreshed["expires_in"] == 1
    assert call_me(oauth, refreshed["access_token"]).status_code == 200


def test_revoke_grants_makes_refresh_invalid_grant(flow: CodeFlow, oauth: OAuthServer) -> None:
    token = flow.tokens()
    pending_code = flow.get_code()
    other = client_credentials(oauth, "basic-client", "basic-secret", basic=True).json()

    oauth.revoke_grants(WEB_ID)

    refreshed = flow.refresh(token["refresh_token"])
    assert refreshed.status_code == 400
    assert oauth_error(refreshed) == "invalid_grant"
    assert_invalid_token(call_me(oauth, token["access_token"]))
    assert oauth_error(flow.exchange(pending_code)) == "invalid_grant"
    assert call_me(oauth, other["access_token"]).status_code == 200  # another client's
    # The user can authorize the app again.
    assert flow.refresh(flow.tokens()["refresh_token"]).status_code == 200


def test_revoke_grants_without_a_client_revokes_everything(
    flow: CodeFlow, oauth: OAuthServer
) -> None:
    token = flow.tokens()
    other = client_credentials(oauth, "basic-client", "basic-secret", basic=True).json()

    oauth.revoke_grants()

    assert oauth_error(flow.refresh(token["refresh_token"])) == "invalid_grant"
    assert_invalid_token(call_me(oauth, other["access_token"]))


def test_revoke_all_leaves_refresh_tokens_working(flow: CodeFlow, oauth: OAuthServer) -> None:
    token = flow.tokens()

    oauth.revoke_all()

    assert_invalid_token(call_me(oauth, token["access_token"]))
    refreshed = flow.refresh(token["refresh_token"])
    assert refreshed.status_code == 200
    assert call_me(oauth, refreshed.json()["access_token"]).status_code == 200


def test_fail_next_counts_refresh_requests(flow: CodeFlow, oauth: OAuthServer) -> None:
    refresh_token = flow.tokens()["refresh_token"]
    oauth.fail_next(1, status=503)

    assert flow.refresh(refresh_token).status_code == 503
    assert flow.refresh(refresh_token).status_code == 200  # the failure did not use it up
    assert (oauth.token_requests, oauth.refresh_requests) == (3, 2)
