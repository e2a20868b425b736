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
