"""Auth types driven as generators, with no network: each yields its request, takes a response."""

from __future__ import annotations

import asyncio
import base64
from datetime import UTC, datetime

import httpx
import pytest

from cardflow.connections.token_store import describe_unanswered
from cardflow.credentials.basic import BasicAuth
from cardflow.credentials.client_credentials import BearerTokenAuth
from cardflow.credentials.custom_header import CustomHeaderAuth
from cardflow.credentials.none import NoAuth
from cardflow.credentials.query_param import QueryParamAuth, QueryParamConfig
from cardflow.credentials.static_bearer import BearerConfig, StaticBearerAuth
from cardflow.credentials.token_endpoint import TokenResponse
from cardflow.credentials.token_manager import TokenManager
from cardflow.errors import NeedsAuthorization
from tests.support.tokens import FakeGrant, MemoryTokenStore


def test_basic_adds_header_once() -> None:
    request = httpx.Request("GET", "https://api.test/x")
    flow = BasicAuth("alice", "pä:ss").auth_flow(request)
    sent = next(flow)
    expected = base64.b64encode("alice:pä:ss".encode()).decode()
    assert sent.headers["Authorization"] == f"Basic {expected}"
    with pytest.raises(StopIteration):
        flow.send(httpx.Response(401))


def test_custom_header_keeps_exact_name_and_replaces_other_case() -> None:
    request = httpx.Request("GET", "https://api.test/x", headers={"API_KEY": "user-supplied"})
    sent = next(CustomHeaderAuth("api_key", "s3cret").auth_flow(request))
    assert [(k, v) for k, v in sent.headers.raw if k.lower() == b"api_key"] == [
        (b"api_key", b"s3cret")
    ]


def test_bearer_sends_its_fixed_token_and_a_401_is_final() -> None:
    request = httpx.Request("GET", "https://api.test/x", headers={"authorization": "Basic x"})
    auth = StaticBearerAuth("t0ken/+=")
    flow = auth.auth_flow(request)
    sent = next(flow)
    assert sent.headers.get_list("Authorization") == ["Bearer t0ken/+="]
    assert auth.ready_headers() == {"Authorization": "Bearer t0ken/+="}
    assert not auth.retries_unauthorized and auth.sensitive_values() == ["t0ken/+="]
    with pytest.raises(StopIteration):
        flow.send(httpx.Response(401))


@pytest.mark.parametrize(
    ("token", "says"),
    [
        ("", None),  # required, but refused by the connection service (kept on update)
        ("Bearer abc", "give the token alone"),
        ("abc\n", "control characters"),
        (" abc", "copy-paste slip"),
    ],
)
def test_bearer_token_is_the_token_alone(token: str, says: str | None) -> None:
    if says is None:
        assert BearerConfig(token=token).token == token
        return
    with pytest.raises(ValueError, match=says):
        BearerConfig(token=token)


def test_query_key_replaces_any_parameter_of_its_name_in_an_httpx_request() -> None:
    request = httpx.Request("GET", "https://api.test/x?api_key=mine&a=1&api_key=again&API_KEY=z")
    sent = next(QueryParamAuth("api_key", "k &+é").auth_flow(request))
    assert sent.url.params.get_list("api_key") == ["k &+é"]
    assert sent.url.params.get_list("a") == ["1"]
    assert sent.url.params.get_list("API_KEY") == ["z"]  # names are case-sensitive
    assert "authorization" not in sent.headers


@pytest.mark.parametrize("name", ["api_key", "appid", "X-Api-Key", "key.v2", "a~b"])
def test_query_parameter_names_that_read_the_same_encoded(name: str) -> None:
    assert QueryParamConfig(param_name=name, param_value="v").param_name == name


@pytest.mark.parametrize("name", ["", "api key", "a&b", "a=b", "k#", "é", "a[b]", "x" * 129])
def test_query_parameter_names_that_would_change_in_a_url_are_refused(name: str) -> None:
    with pytest.raises(ValueError, match=r"query parameter name|at least 1"):
        QueryParamConfig(param_name=name, param_value="v")


@pytest.mark.parametrize(("value", "says"), [("k\r\n", "control"), ("k ", "copy-paste slip")])
def test_query_key_values_refused(value: str, says: str) -> None:
    with pytest.raises(ValueError, match=says):
        QueryParamConfig(param_name="api_key", param_value=value)


def test_none_adds_nothing() -> None:
    request = httpx.Request("GET", "https://api.test/x")
    sent = next(NoAuth().auth_flow(request))
    assert "authorization" not in sent.headers


def _manager(grant: FakeGrant, store: MemoryTokenStore, timeout: float = 5) -> TokenManager:
    return TokenManager(
        "con_x",
        grant,
        store,
        skew=30,
        refresh_timeout=timeout,
        describe_unanswered=describe_unanswered,
    )


async def test_bearer_refreshes_once_on_401_and_retries() -> None:
    grant, store = FakeGrant(), MemoryTokenStore()
    auth = BearerTokenAuth(_manager(grant, store))
    request = httpx.Request("GET", "https://api.test/x")
    flow = auth.async_auth_flow(request)
    first = await flow.__anext__()
    assert first.headers["Authorization"] == "Bearer tok-1"
    second = await flow.asend(httpx.Response(401))
    assert second.headers["Authorization"] == "Bearer tok-2"
    with pytest.raises(StopAsyncIteration):
        await flow.asend(httpx.Response(401))  # a second 401 is final: no loop
    assert grant.calls == 2


async def test_concurrent_401s_cause_one_refresh() -> None:
    grant, store = FakeGrant(), MemoryTokenStore()
    manager = _manager(grant, store)
    stale = await manager.get()
    results = await asyncio.gather(*(manager.refresh(stale) for _ in range(50)))
    assert grant.calls == 2  # the first token, then exactly one refresh
    assert {token.access_token for token in results} == {"tok-2"}


async def test_concurrent_first_use_fetches_once() -> None:
    grant, store = FakeGrant(), MemoryTokenStore()
    manager = _manager(grant, store)
    tokens = await asyncio.gather(*(manager.get() for _ in range(100)))
    assert grant.calls == 1
    assert {t.access_token for t in tokens} == {"tok-1"}


async def test_token_from_another_process_is_used_without_fetching() -> None:
    grant, store = FakeGrant(), MemoryTokenStore()
    store.token = (TokenResponse("from-elsewhere", "Bearer", None, None, None, 0.0), 7)
    token = await _manager(grant, store).get()
    assert token.access_token == "from-elsewhere"
    assert grant.calls == 0


async def test_waiter_never_fetches_without_the_lock() -> None:
    grant, store = FakeGrant(), MemoryTokenStore()
    store.locked = True  # another process is refreshing
    manager = _manager(grant, store, timeout=0.2)
    from cardflow.errors import TokenRequestFailed

    with pytest.raises(TokenRequestFailed):
        await manager.get()
    assert grant.calls == 0  # no unlocked fallback


class RefusingGrant:
    async def fetch(self, current: TokenResponse | None) -> TokenResponse:
        raise NeedsAuthorization("The provider refused the grant (invalid_grant).")


async def test_refusal_after_an_unanswered_refresh_says_what_happened() -> None:
    store = MemoryTokenStore()
    store.mark = ("4242-deadbeef", datetime(2026, 11, 29, 10, 0, tzinfo=UTC))
    with pytest.raises(NeedsAuthorization) as info:
        await _manager(RefusingGrant(), store).get()  # type: ignore[arg-type]
    message = info.value.message
    assert "invalid_grant" in message
    assert "started at 2026-11-29 10:00:00 UTC never stored its answer" in message
    assert "the provider rotated the refresh token but the answer was lost" in message
    assert store.statuses == [("needs_authorization", message)]
    assert store.mark is None and not store.locked


async def test_refusal_without_an_unanswered_refresh_says_only_that() -> None:
    store = MemoryTokenStore()
    with pytest.raises(NeedsAuthorization) as info:
        await _manager(RefusingGrant(), store).get()  # type: ignore[arg-type]
    assert "answer was lost" not in info.value.message


def test_threads_share_one_refresh() -> None:
    grant, store = FakeGrant(), MemoryTokenStore()
    manager = _manager(grant, store)
    results: list[str] = []

    def worker() -> None:
        token = asyncio.run(manager.get())
        results.append(token.access_token)

    import threading

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert grant.calls == 1
    assert set(results) == {"tok-1"}
