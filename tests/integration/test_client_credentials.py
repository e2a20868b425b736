"""Client Credentials connections against a real Authlib authorization server on loopback."""

from __future__ import annotations

import asyncio
import secrets
import threading
import time
from typing import Any

import pytest

import cardflow
from cardflow.app import Cardflow
from cardflow.cards.runner import CardResult
from tests.support.oauth_server import OAuthServer

SECRET = "cc-secret-SENTINEL-7f3a"


def _connection(
    cf: Cardflow, oauth: OAuthServer, method: str = "client_secret_post", **extra: Any
) -> str:
    client_id = f"svc-{secrets.token_hex(3)}"
    oauth.add_client(client_id, SECRET, method, scope="read write")
    name = f"cc-{client_id}"
    config = {
        "token_url": oauth.token_url,
        "client_id": client_id,
        "client_secret": SECRET,
        "scope": "read",
        **extra,
    }
    if method != "client_secret_post":
        config["token_auth_method"] = method
    cf.connections.create(name, "client_credentials", config)
    return name


def _me(cf: Cardflow, name: str, oauth: OAuthServer) -> CardResult:
    return cf.test_card("api_connector.get", connection=name, inputs={"url": f"{oauth.url}/api/me"})


async def _wave(cf: Cardflow, name: str, url: str, n: int) -> list[CardResult]:
    try:
        return await asyncio.gather(
            *(
                cf.run_card_async("api_connector.get", connection=name, inputs={"url": url})
                for _ in range(n)
            )
        )
    finally:
        await cf.aclose()


@pytest.mark.parametrize("method", ["client_secret_post", "client_secret_basic"])
def test_token_fetched_once_and_reused(
    cf: Cardflow, oauth_server: OAuthServer, method: str
) -> None:
    name = _connection(cf, oauth_server, method)
    for _ in range(5):
        result = _me(cf, name, oauth_server)
        assert result.ok, result.error
    assert result.outputs["body"]["scope"] == "read"  # type: ignore[index]
    assert oauth_server.token_requests == 1


def test_64_concurrent_first_calls_make_one_token_request(
    cf: Cardflow, oauth_server: OAuthServer
) -> None:
    name = _connection(cf, oauth_server)
    results = asyncio.run(_wave(cf, name, f"{oauth_server.url}/api/me", 64))
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    assert oauth_server.token_requests == 1


def test_threads_with_their_own_loops_share_one_token(
    cf: Cardflow, oauth_server: OAuthServer
) -> None:
    name = _connection(cf, oauth_server)
    results: list[CardResult] = []
    lock = threading.Lock()

    def worker() -> None:
        wave = asyncio.run(_wave(cf, name, f"{oauth_server.url}/api/me", 8))
        with lock:
            results.extend(wave)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(results) == 48 and all(r.ok for r in results)
    assert oauth_server.token_requests == 1


def test_expiry_refetches_once_for_a_concurrent_wave(
    cf: Cardflow, oauth_server: OAuthServer
) -> None:
    oauth_server.expires_in = 1
    name = _connection(cf, oauth_server)
    assert _me(cf, name, oauth_server).ok
    # the next token lives long: a wave slowed down by a busy machine must not outlive it
    # (a second refresh would then be right), only the expired one
    oauth_server.expires_in = 3600
    time.sleep(1.2)
    results = asyncio.run(_wave(cf, name, f"{oauth_server.url}/api/me", 64))
    assert all(r.ok for r in results)
    assert oauth_server.token_requests == 2


def test_401_refetches_once_and_retries(cf: Cardflow, oauth_server: OAuthServer) -> None:
    name = _connection(cf, oauth_server)
    assert _me(cf, name, oauth_server).ok
    oauth_server.revoke_all()
    results = asyncio.run(_wave(cf, name, f"{oauth_server.url}/api/me", 32))
    assert all(r.ok for r in results), [r.error for r in results if not r.ok]
    assert oauth_server.token_requests == 2


def test_token_endpoint_500_then_recovery(cf: Cardflow, oauth_server: OAuthServer) -> None:
    name = _connection(cf, oauth_server)
    oauth_server.fail_next(1, 500)
    failed = _me(cf, name, oauth_server)
    assert not failed.ok
    assert failed.error["type"] == "token_request_failed"  # type: ignore[index]
    assert failed.error["retryable"] is True  # type: ignore[index]
    assert cf.connections.get(name).status == "ready"
    assert _me(cf, name, oauth_server).ok


def test_hanging_token_endpoint_fails_retryable(tmp_path: Any, oauth_server: OAuthServer) -> None:
    with cardflow.open(home=tmp_path, default_timeout=0.5) as cf:
        name = _connection(cf, oauth_server)
        oauth_server.hang_next(1, 2.0)
        failed = _me(cf, name, oauth_server)
        assert failed.error["type"] == "token_request_failed"  # type: ignore[index]
        assert _me(cf, name, oauth_server).ok


def test_wrong_secret_marks_connection_error_until_fixed(
    cf: Cardflow, oauth_server: OAuthServer
) -> None:
    name = _connection(cf, oauth_server)
    cf.connections.update(name, config={"client_secret": "wrong"})
    failed = _me(cf, name, oauth_server)
    assert failed.error["type"] == "token_rejected"  # type: ignore[index]
    view = cf.connections.get(name)
    assert view.status == "error"
    assert "invalid_client" in (view.last_error or "")
    cf.connections.update(name, config={"client_secret": SECRET})
    assert _me(cf, name, oauth_server).ok
    assert cf.connections.get(name).status == "ready"


def test_two_processes_share_one_refresh_through_the_database(
    settings_kwargs: dict[str, Any], oauth_server: OAuthServer
) -> None:
    """Two Cardflow instances on one database stand in for two processes."""
    with cardflow.open(**settings_kwargs) as first, cardflow.open(**settings_kwargs) as second:
        name = _connection(first, oauth_server)
        url = f"{oauth_server.url}/api/me"

        async def both() -> list[CardResult]:
            waves = await asyncio.gather(_wave(first, name, url, 16), _wave(second, name, url, 16))
            return [r for wave in waves for r in wave]

        results = asyncio.run(both())
        assert all(r.ok for r in results), [r.error for r in results if not r.ok]
        assert oauth_server.token_requests == 1


def test_access_token_is_not_stored_in_plaintext(
    sqlite_cf: Cardflow, oauth_server: OAuthServer
) -> None:
    name = _connection(sqlite_cf, oauth_server)
    assert _me(sqlite_cf, name, oauth_server).ok
    (token,) = oauth_server.issued_tokens
    db_path = sqlite_cf.settings.home / "cardflow.db"
    sqlite_cf.db.dispose()
    raw = b"".join(p.read_bytes() for p in db_path.parent.glob("cardflow.db*"))
    assert token.encode() not in raw
    assert SECRET.encode() not in raw
