"""Token revocation (RFC 7009) when an OAuth connection is deleted or authorized again,
against the real Authlib provider's revocation endpoint; the old refresh token is then
tried directly at the provider's token endpoint."""

from __future__ import annotations

import logging
import secrets

import httpx
import pytest

from cardflow.app import Cardflow
from tests.conftest import RunningServer, free_port
from tests.integration.test_private_key_jwt import new_pem
from tests.integration.test_secrets_and_keys import _database_text
from tests.support.oauth_server import OAuthServer
from tests.support.provider_login import authorize_in_browser

SECRET = "revoke-client-SENTINEL-5150"


def _authorized(
    server: RunningServer, oauth: OAuthServer, revocation_url: str | None
) -> tuple[str, str]:
    """An authorized oauth connection (client_secret_basic); returns (id, client_id)."""
    client_id = f"app-{secrets.token_hex(3)}"
    oauth.add_client(
        client_id,
        SECRET,
        "client_secret_basic",
        scope="read",
        grant_types=("authorization_code", "refresh_token"),
        redirect_uris=(f"{server.url}/oauth/callback",),
    )
    config = {
        "authorize_url": oauth.authorize_url,
        "token_url": oauth.token_url,
        "client_id": client_id,
        "client_secret": SECRET,
        "scope": "read",
    }
    if revocation_url:
        config["revocation_url"] = revocation_url
    view = server.cf.connections.create(f"rev-{client_id}", "oauth", config, ["127.0.0.1"])
    _authorize(server, view.id)
    return view.id, client_id


def _authorize(server: RunningServer, connection_id: str) -> str:
    with httpx.Client(base_url=server.url, headers=server.headers) as client:
        page = authorize_in_browser(client, f"/api/v1/connections/{connection_id}/authorize")
    assert "Connection ready" in page.text, page.text
    return page.text


def _refresh_directly(oauth: OAuthServer, client_id: str, refresh_token: str) -> httpx.Response:
    """Use a refresh token at the provider, as anyone holding it could."""
    return httpx.post(
        oauth.token_url,
        data={"grant_type": "refresh_token", "refresh_token": refresh_token},
        auth=(client_id, SECRET),
    )


def _our_logs(caplog: pytest.LogCaptureFixture) -> str:
    """cardflow's log lines (the provider's own, Authlib's, log what it received)."""
    theirs = ("authlib", "werkzeug", "aiohttp.access", "aiohttp.server")
    return "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith(theirs))


def _me_ok(cf: Cardflow, ref: str, oauth: OAuthServer) -> bool:
    result = cf.test_card(
        "api_connector.get", connection=ref, inputs={"url": f"{oauth.url}/api/me"}
    )
    return result.ok


def test_delete_revokes_the_refresh_token_at_the_provider(
    server: RunningServer, oauth_server: OAuthServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    connection_id, client_id = _authorized(server, oauth_server, oauth_server.revocation_url)
    [refresh_token] = oauth_server.issued_refresh_tokens
    [access_token] = oauth_server.issued_tokens
    with httpx.Client(base_url=server.url, headers=server.headers) as client:
        answer = client.delete(f"/api/v1/connections/{connection_id}")
        assert answer.status_code == 200, answer.text
        assert client.get(f"/api/v1/connections/{connection_id}").status_code == 404
    body = answer.json()
    assert body["deleted"] is True and body["id"] == connection_id
    assert body["revocation"] == {
        "revoked": True,
        "tokens": ["refresh_token", "access_token"],
        "error": None,
    }
    assert oauth_server.revocations == ["refresh_token", "access_token"]
    refused = _refresh_directly(oauth_server, client_id, refresh_token)
    assert refused.status_code == 400 and refused.json()["error"] == "invalid_grant"
    me = httpx.get(
        f"{oauth_server.url}/api/me", headers={"Authorization": f"Bearer {access_token}"}
    )
    assert me.status_code == 401
    logs = _our_logs(caplog)
    assert "Revoked the refresh_token and access_token" in logs
    for value in (refresh_token, access_token, SECRET):
        assert value not in answer.text and value not in logs


def test_without_a_revocation_url_nothing_is_revoked(
    server: RunningServer, oauth_server: OAuthServer
) -> None:
    connection_id, client_id = _authorized(server, oauth_server, None)
    [refresh_token] = oauth_server.issued_refresh_tokens
    deleted = server.cf.connections.delete(connection_id)
    assert deleted.revocation is None
    assert oauth_server.revocations == []
    assert _refresh_directly(oauth_server, client_id, refresh_token).status_code == 200


def test_reauthorizing_revokes_the_tokens_it_replaces(
    server: RunningServer, oauth_server: OAuthServer
) -> None:
    connection_id, client_id = _authorized(server, oauth_server, oauth_server.revocation_url)
    [old_refresh] = oauth_server.issued_refresh_tokens
    page = _authorize(server, connection_id)
    assert "The tokens it replaced were revoked at the provider." in page
    assert old_refresh not in page
    refused = _refresh_directly(oauth_server, client_id, old_refresh)
    assert refused.json()["error"] == "invalid_grant"
    # the new authorization works, its tokens untouched
    assert _me_ok(server.cf, connection_id, oauth_server)
    new_refresh = oauth_server.issued_refresh_tokens[-1]
    assert new_refresh != old_refresh
    assert _refresh_directly(oauth_server, client_id, new_refresh).status_code == 200


@pytest.mark.parametrize("how", ["error", "unreachable"])
def test_a_failed_revocation_does_not_stop_the_delete_and_says_so(
    server: RunningServer,
    oauth_server: OAuthServer,
    caplog: pytest.LogCaptureFixture,
    how: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    url = oauth_server.revocation_url
    if how == "unreachable":
        url = f"http://127.0.0.1:{free_port()}/revoke"  # nothing listens there
    else:
        oauth_server.fail_revocations = 503
    connection_id, _ = _authorized(server, oauth_server, url)
    [refresh_token] = oauth_server.issued_refresh_tokens
    with httpx.Client(base_url=server.url, headers=server.headers) as client:
        answer = client.delete(f"/api/v1/connections/{connection_id}")
        assert client.get(f"/api/v1/connections/{connection_id}").status_code == 404
    assert answer.status_code == 200, answer.text
    revocation = answer.json()["revocation"]
    assert revocation["revoked"] is False and revocation["tokens"] == []
    said = "answered 503" if how == "error" else "was not reached"
    assert said in revocation["error"]
    logs = _our_logs(caplog)
    assert "Revoking the tokens of connection" in logs and said in logs
    assert refresh_token not in answer.text and refresh_token not in logs


def test_reauthorizing_with_a_failing_revocation_endpoint_still_authorizes(
    server: RunningServer, oauth_server: OAuthServer
) -> None:
    connection_id, _ = _authorized(server, oauth_server, oauth_server.revocation_url)
    oauth_server.fail_revocations = 500
    page = _authorize(server, connection_id)
    assert "could not be revoked at the provider" in page and "answered 500" in page
    assert _me_ok(server.cf, connection_id, oauth_server)


def test_client_credentials_with_private_key_jwt_revokes_on_delete(
    cf: Cardflow, oauth_server: OAuthServer, caplog: pytest.LogCaptureFixture
) -> None:
    """The revocation endpoint authenticates the client as the token endpoint does: here
    with a fresh assertion (its aud the revocation URL)."""
    caplog.set_level(logging.DEBUG)
    client_id = f"svc-{secrets.token_hex(3)}"
    view = cf.connections.create(
        f"cc-{client_id}",
        "client_credentials",
        {
            "token_url": oauth_server.token_url,
            "client_id": client_id,
            "token_auth_method": "private_key_jwt",
            "private_key": new_pem("ES256"),
            "revocation_url": oauth_server.revocation_url,
        },
        ["127.0.0.1"],
    )
    oauth_server.add_client(
        client_id, "", "private_key_jwt", jwks={"keys": [view.config["public_jwk"]]}
    )
    assert _me_ok(cf, view.id, oauth_server)
    [access_token] = oauth_server.issued_tokens
    deleted = cf.connections.delete(view.id)
    assert deleted.revocation is not None and deleted.revocation.revoked, deleted
    assert deleted.revocation.tokens == ("access_token",)
    assert oauth_server.assertions[-1]["aud"] == oauth_server.revocation_url
    me = httpx.get(
        f"{oauth_server.url}/api/me", headers={"Authorization": f"Bearer {access_token}"}
    )
    assert me.status_code == 401
    logs = _our_logs(caplog)
    assert access_token not in logs
    assert access_token.encode() not in _database_text(cf)


def test_revocation_url_is_checked_and_moving_it_needs_the_secret_again(cf: Cardflow) -> None:
    from cardflow.errors import InvalidInput

    config = {
        "token_url": "https://id.example/token",
        "client_id": "c",
        "client_secret": SECRET,
        "revocation_url": "https://id.example/revoke",
    }
    with pytest.raises(InvalidInput) as info:
        cf.connections.create("r", "client_credentials", {**config, "revocation_url": "nope"})
    assert info.value.field == "config.revocation_url"
    cf.connections.create("r", "client_credentials", config)
    with pytest.raises(InvalidInput) as info:
        cf.connections.update("r", config={"revocation_url": "https://evil.example/revoke"})
    assert info.value.field == "config.client_secret"
    cf.connections.update("r", config={"revocation_url": "https://id.example/oauth/revoke"})
