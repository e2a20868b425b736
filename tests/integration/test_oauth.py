"""OAuth 2.0 authorization-code connections, end to end, against a real Authlib provider.

The provider requires PKCE, rotates refresh tokens (the old one is refused after use) and
issues access tokens that live a few seconds.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from datetime import timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import update

import cardflow
from cardflow.app import Cardflow
from cardflow.cards.runner import CardResult
from cardflow.store.models import OAuthState, utcnow
from tests.conftest import RunningServer
from tests.support.oauth_server import OAuthServer
from tests.support.provider_login import authorize_get_callback_url, authorize_in_browser

SECRET = "oauth-client-SENTINEL-4411"


def _oauth_connection(
    server: RunningServer, oauth: OAuthServer, *, scope: str = "read write", **config: Any
) -> tuple[str, str]:
    client_id = f"app-{secrets.token_hex(3)}"
    oauth.add_client(
        client_id,
        SECRET,
        config.get("token_auth_method", "client_secret_basic"),
        scope="read write admin",
        grant_types=("authorization_code", "refresh_token"),
        redirect_uris=(f"{server.url}/oauth/callback",),
    )
    with httpx.Client(base_url=server.url, headers=server.headers) as client:
        response = client.post(
            "/api/v1/connections",
            json={
                "name": f"Provider - OAuth - {client_id}",
                "auth_type": "oauth",
                "config": {
                    "authorize_url": oauth.authorize_url,
                    "token_url": oauth.token_url,
                    "client_id": client_id,
                    "client_secret": SECRET,
                    "scope": scope,
                    **config,
                },
            },
        )
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "needs_authorization"
    assert body["redirect_uri"] == f"{server.url}/oauth/callback"
    return body["id"], client_id


def _authorize(server: RunningServer, connection_id: str) -> httpx.Response:
    with httpx.Client(base_url=server.url, headers=server.headers) as client:
        return authorize_in_browser(client, f"/api/v1/connections/{connection_id}/authorize")


def _me(cf: Cardflow, connection_id: str, oauth: OAuthServer) -> CardResult:
    return cf.test_card(
        "api_connector.get", connection=connection_id, inputs={"url": f"{oauth.url}/api/me"}
    )


async def _wave(cf: Cardflow, ref: str, url: str, n: int) -> list[CardResult]:
    try:
        return await asyncio.gather(
            *(
                cf.run_card_async("api_connector.get", connection=ref, inputs={"url": url})
                for _ in range(n)
            )
        )
    finally:
        await cf.aclose()


def test_authorize_then_use(server: RunningServer, oauth_server: OAuthServer) -> None:
    connection_id, client_id = _oauth_connection(server, oauth_server)
    unauthorized = _me(server.cf, connection_id, oauth_server)
    assert unauthorized.error["type"] == "needs_authorization"  # type: ignore[index]

    page = _authorize(server, connection_id)
    assert page.status_code == 200, page.text
    assert "Connection ready" in page.text
    assert "text/html" in page.headers["content-type"]
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp  # no inline script
    sent = oauth_server.last_authorize_params
    assert sent["response_type"] == "code"
    assert sent["client_id"] == client_id
    assert sent["scope"] == "read write"
    assert sent["redirect_uri"] == f"{server.url}/oauth/callback"
    assert sent["code_challenge_method"] == "S256" and len(sent["code_challenge"]) == 43
    assert len(sent["state"]) >= 32

    result = _me(server.cf, connection_id, oauth_server)
    assert result.ok, result.error
    assert result.outputs["body"]["client_id"] == client_id  # type: ignore[index]
    assert server.cf.connections.get(connection_id).status == "ready"
    assert oauth_server.code_exchanges == 1


def test_extra_authorize_params_and_comma_scope(
    server: RunningServer, oauth_server: OAuthServer
) -> None:
    connection_id, _ = _oauth_connection(server, oauth_server, scope="read,write")
    server.cf.connections.update(
        connection_id,
        config={
            "authorize_url": oauth_server.authorize_url + "?prompt=consent&access_type=offline"
        },
    )
    with httpx.Client(base_url=server.url, headers=server.headers) as client:
        redirect = client.get(f"/api/v1/connections/{connection_id}/authorize")
    assert redirect.status_code == 302
    params = dict(httpx.URL(redirect.headers["location"]).params)
    assert params["scope"] == "read,write"
    assert params["prompt"] == "consent" and params["access_type"] == "offline"


def test_keeps_working_across_expiries_with_rotation(
    server: RunningServer, oauth_server: OAuthServer
) -> None:
    oauth_server.expires_in = 2
    connection_id, _ = _oauth_connection(server, oauth_server)
    _authorize(server, connection_id)
    for _ in range(3):
        time.sleep(2.1)
        result = _me(server.cf, connection_id, oauth_server)
        assert result.ok, result.error
    assert oauth_server.refresh_requests == 3
    assert len(set(oauth_server.issued_refresh_tokens)) == 4  # each refresh rotated it
    # A second process starting now reads the latest rotated token from the database.
    with cardflow.open(**_kwargs(server.cf)) as other:
        time.sleep(2.1)
        assert _me(other, connection_id, oauth_server).ok
    assert oauth_server.refresh_requests == 4


def _kwargs(cf: Cardflow) -> dict[str, Any]:
    s = cf.settings
    return {
        "home": s.home,
        "database_url": s.database_url,
        "master_key": s.master_key.get_secret_value() if s.master_key else None,
        "public_url": s.public_url,
    }


def test_64_concurrent_calls_after_expiry_make_one_refresh(
    server: RunningServer, oauth_server: OAuthServer
) -> None:
    oauth_server.expires_in = 2
    connection_id, _ = _oauth_connection(server, oauth_server)
    _authorize(server, connection_id)
    oauth_server.expires_in = 3600  # only the first token expires: a slow wave stays one
    time.sleep(2.1)
    results = asyncio.run(_wave(server.cf, connection_id, f"{oauth_server.url}/api/me", 64))
    assert all(r.ok for r in results), [r.error for r in results if not r.ok][:3]
    assert oauth_server.refresh_requests == 1


def test_two_processes_refresh_once(server: RunningServer, oauth_server: OAuthServer) -> None:
    oauth_server.expires_in = 2
    connection_id, _ = _oauth_connection(server, oauth_server)
    _authorize(server, connection_id)
    oauth_server.expires_in = 3600  # only the first token expires
    url = f"{oauth_server.url}/api/me"
    with (
        cardflow.open(**_kwargs(server.cf)) as first,
        cardflow.open(**_kwargs(server.cf)) as second,
    ):
        for cf in (first, second):
            assert _me(cf, connection_id, oauth_server).ok
        time.sleep(2.1)

        async def both() -> list[CardResult]:
            waves = await asyncio.gather(
                _wave(first, connection_id, url, 32), _wave(second, connection_id, url, 32)
            )
            return [r for wave in waves for r in wave]

        results = asyncio.run(both())
    assert all(r.ok for r in results), [r.error for r in results if not r.ok][:3]
    assert oauth_server.refresh_requests == 1


def test_revoked_access_token_refreshes_once_on_401(
    server: RunningServer, oauth_server: OAuthServer
) -> None:
    connection_id, _ = _oauth_connection(server, oauth_server)
    _authorize(server, connection_id)
    assert _me(server.cf, connection_id, oauth_server).ok
    oauth_server.revoke_all()  # access tokens die; the refresh token still works
    results = asyncio.run(_wave(server.cf, connection_id, f"{oauth_server.url}/api/me", 16))
    assert all(r.ok for r in results)
    assert oauth_server.refresh_requests == 1


def test_revoked_grant_needs_authorization_then_reauthorize_in_place(
    server: RunningServer, oauth_server: OAuthServer
) -> None:
    oauth_server.expires_in = 2
    connection_id, client_id = _oauth_connection(server, oauth_server)
    _authorize(server, connection_id)
    oauth_server.revoke_grants(client_id)
    time.sleep(2.1)
    failed = _me(server.cf, connection_id, oauth_server)
    assert failed.error["type"] == "needs_authorization"  # type: ignore[index]
    view = server.cf.connections.get(connection_id)
    assert view.status == "needs_authorization"
    assert "invalid_grant" in (view.last_error or "")
    assert "Re-authorize" in (view.last_error or "")

    page = _authorize(server, connection_id)
    assert "Connection ready" in page.text
    assert _me(server.cf, connection_id, oauth_server).ok
    assert server.cf.connections.get(connection_id).status == "ready"


@pytest.mark.parametrize("fault", ["500", "hang"])
def test_token_endpoint_failure_keeps_tokens(
    server: RunningServer, oauth_server: OAuthServer, fault: str
) -> None:
    oauth_server.expires_in = 2
    connection_id, _ = _oauth_connection(server, oauth_server)
    _authorize(server, connection_id)
    time.sleep(2.1)
    if fault == "500":
        oauth_server.fail_next(1, 500)
        options: dict[str, Any] = {}
    else:
        # A gateway that hangs, then gives up without the provider seeing the request.
        oauth_server.hang_next(1, 2.0)
        oauth_server.fail_next(1, 504)
        options = {"timeout": 0.5}
    with cardflow.open(**{**_kwargs(server.cf), "default_timeout": 0.5}) as cf:
        failed = cf.test_card(
            "api_connector.get",
            connection=connection_id,
            inputs={"url": f"{oauth_server.url}/api/me"},
            options=options,
        )
        assert failed.error["type"] == "token_request_failed"  # type: ignore[index]
        assert failed.error["retryable"] is True  # type: ignore[index]
        assert cf.connections.get(connection_id).status == "ready"
        time.sleep(2.0 if fault == "hang" else 0)
        recovered = _me(cf, connection_id, oauth_server)
        assert recovered.ok, recovered.error


def test_replayed_callback_is_refused(server: RunningServer, oauth_server: OAuthServer) -> None:
    connection_id, _ = _oauth_connection(server, oauth_server)
    with httpx.Client(base_url=server.url, headers=server.headers) as client:
        callback = authorize_get_callback_url(
            client, f"/api/v1/connections/{connection_id}/authorize"
        )
    with httpx.Client() as browser:  # the callback carries no API token, as in a browser
        first = browser.get(callback)
        second = browser.get(callback)
    assert first.status_code == 200 and "Connection ready" in first.text
    assert second.status_code == 400 and "already used" in second.text
    assert oauth_server.code_exchanges == 1


def test_bad_expired_and_missing_state(server: RunningServer, oauth_server: OAuthServer) -> None:
    connection_id, _ = _oauth_connection(server, oauth_server)
    with httpx.Client(base_url=server.url, headers=server.headers) as client:
        callback = authorize_get_callback_url(
            client, f"/api/v1/connections/{connection_id}/authorize"
        )
    with server.cf.db.session() as session:
        session.execute(update(OAuthState).values(expires_at=utcnow() - timedelta(seconds=1)))
    with httpx.Client() as browser:
        expired = browser.get(callback)
        forged = browser.get(f"{server.url}/oauth/callback?code=x&state=forged")
        missing = browser.get(f"{server.url}/oauth/callback?code=x")
    assert expired.status_code == 400 and "expired" in expired.text
    assert forged.status_code == 400 and "not one cardflow asked for" in forged.text
    assert missing.status_code == 400
    assert oauth_server.code_exchanges == 0
    assert server.cf.connections.get(connection_id).status == "needs_authorization"


def test_denied_consent_leaves_tokens_untouched(
    server: RunningServer, oauth_server: OAuthServer
) -> None:
    connection_id, _ = _oauth_connection(server, oauth_server)
    _authorize(server, connection_id)
    with httpx.Client(base_url=server.url, headers=server.headers) as client:
        page = authorize_in_browser(
            client, f"/api/v1/connections/{connection_id}/authorize", consent=False
        )
    assert page.status_code == 400
    assert "access_denied" in page.text
    assert "not changed" in page.text
    assert _me(server.cf, connection_id, oauth_server).ok


def test_provider_error_text_is_escaped(server: RunningServer, oauth_server: OAuthServer) -> None:
    connection_id, _ = _oauth_connection(server, oauth_server)
    with httpx.Client(base_url=server.url, headers=server.headers) as client:
        location = client.get(f"/api/v1/connections/{connection_id}/authorize").headers["location"]
    state = dict(httpx.URL(location).params)["state"]
    with httpx.Client() as browser:
        page = browser.get(
            f"{server.url}/oauth/callback",
            params={
                "state": state,
                "error": "<script>alert(1)</script>",
                "error_description": "<b>x",
            },
        )
    assert page.status_code == 400
    assert "<script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text


def test_pkce_off_is_refused_by_a_provider_that_requires_it(
    server: RunningServer, oauth_server: OAuthServer
) -> None:
    connection_id, _ = _oauth_connection(server, oauth_server, pkce=False)
    page = _authorize(server, connection_id)
    assert page.status_code == 400
    assert "invalid_request" in page.text
    oauth_server.require_pkce = False
    page = _authorize(server, connection_id)
    assert "Connection ready" in page.text
    assert "code_challenge" not in oauth_server.last_authorize_params


def test_client_secret_post(server: RunningServer, oauth_server: OAuthServer) -> None:
    oauth_server.expires_in = 2
    connection_id, _ = _oauth_connection(
        server, oauth_server, token_auth_method="client_secret_post"
    )
    assert "Connection ready" in _authorize(server, connection_id).text
    time.sleep(2.1)
    assert _me(server.cf, connection_id, oauth_server).ok
    assert oauth_server.refresh_requests == 1


def test_changing_scope_or_client_needs_authorization(
    server: RunningServer, oauth_server: OAuthServer
) -> None:
    connection_id, _ = _oauth_connection(server, oauth_server)
    _authorize(server, connection_id)
    view = server.cf.connections.update(connection_id, config={"pkce": True})
    assert view.status == "ready"  # nothing that matters to the grant changed
    view = server.cf.connections.update(connection_id, config={"scope": "read"})
    assert view.status == "needs_authorization"
    assert "scope" in (view.last_error or "")
    assert _me(server.cf, connection_id, oauth_server).error["type"] == "needs_authorization"  # type: ignore[index]


def test_authorize_refuses_other_auth_types(server: RunningServer) -> None:
    server.cf.connections.create("plain", "none", {})
    with httpx.Client(base_url=server.url, headers=server.headers) as client:
        response = client.get("/api/v1/connections/plain/authorize")
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "connection"


def test_no_token_or_secret_leaks(
    server: RunningServer,
    oauth_server: OAuthServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    oauth_server.expires_in = 2
    connection_id, _ = _oauth_connection(server, oauth_server)
    _authorize(server, connection_id)
    time.sleep(2.1)
    assert _me(server.cf, connection_id, oauth_server).ok
    with httpx.Client(base_url=server.url, headers=server.headers) as client:
        api_text = (
            client.get("/api/v1/connections").text
            + client.get(f"/api/v1/connections/{connection_id}").text
            + client.get("/api/v1/runs").text
        )
    secrets_seen = [SECRET, *oauth_server.issued_tokens, *oauth_server.issued_refresh_tokens]
    ours = "\n".join(
        logging.Formatter("%(name)s %(message)s").format(r)
        for r in caplog.records
        if not r.name.startswith(("authlib", "werkzeug", "aiohttp.access", "aiohttp.server"))
    )
    stored = _stored_bytes(server.cf)
    for value in secrets_seen:
        assert value not in api_text
        assert value not in ours
        assert value.encode() not in stored


def _stored_bytes(cf: Cardflow) -> bytes:
    from tests.integration.test_secrets_and_keys import _database_text

    return _database_text(cf)


def test_oauth_config_validation(cf: Cardflow) -> None:
    from cardflow.errors import InvalidInput

    with pytest.raises(InvalidInput) as info:
        cf.connections.create(
            "x",
            "oauth",
            {
                "authorize_url": "not a url",
                "token_url": "http://t/",
                "client_id": "c",
                "client_secret": "s",
            },
        )
    assert info.value.field == "config.authorize_url"
    with pytest.raises(InvalidInput) as info:
        cf.connections.create(
            "x", "oauth", {"authorize_url": "http://a/", "token_url": "http://t/", "client_id": "c"}
        )
    assert info.value.field == "config.client_secret"
