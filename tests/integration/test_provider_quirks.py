"""Provider quirks the catalogue names, against the real Authlib provider answering that way:
a token nested in the token answer (Slack user tokens), tokens that never expire."""

from __future__ import annotations

import secrets
from typing import Any

import httpx

from tests.conftest import RunningServer
from tests.support.oauth_server import OAuthServer
from tests.support.provider_login import authorize_in_browser

SECRET = "quirk-client-SENTINEL-5120"


def _connection(server: RunningServer, oauth: OAuthServer, **config: Any) -> str:
    client_id = f"app-{secrets.token_hex(3)}"
    oauth.add_client(
        client_id,
        SECRET,
        scope="read write",
        grant_types=("authorization_code", "refresh_token"),
        redirect_uris=(f"{server.url}/oauth/callback",),
    )
    with httpx.Client(base_url=server.url, headers=server.headers) as client:
        response = client.post(
            "/api/v1/connections",
            json={
                "name": f"Quirk - {client_id}",
                "auth_type": "oauth",
                "config": {
                    "authorize_url": oauth.authorize_url,
                    "token_url": oauth.token_url,
                    "client_id": client_id,
                    "client_secret": SECRET,
                    "scope": "read",
                    **config,
                },
                "allowed_hosts": ["127.0.0.1"],
            },
        )
        assert response.status_code == 201, response.text
        connection_id: str = response.json()["id"]
        page = authorize_in_browser(client, f"/api/v1/connections/{connection_id}/authorize")
    assert page.status_code == 200, page.text
    return connection_id


def _me(server: RunningServer, connection_id: str, oauth: OAuthServer) -> Any:
    return server.cf.test_card(
        "api_connector.get", connection=connection_id, inputs={"url": f"{oauth.url}/api/me"}
    )


def test_a_token_nested_in_the_answer_is_used_with_token_response_path(
    server: RunningServer, oauth_server: OAuthServer
) -> None:
    oauth_server.nest_tokens_under = "authed_user"
    connection_id = _connection(server, oauth_server, token_response_path="authed_user")
    assert server.cf.connections.get(connection_id).status == "ready"
    result = _me(server, connection_id, oauth_server)
    assert result.ok, result.error
    assert result.outputs["body"]["token_suffix"] == oauth_server.issued_tokens[-1][-4:]

    # the refresh answer is nested the same way, and read the same way
    oauth_server.revoke_all()
    again = _me(server, connection_id, oauth_server)
    assert again.ok, again.error
    assert oauth_server.refresh_requests == 1


def test_without_the_option_a_nested_answer_fails_saying_what_is_missing(
    server: RunningServer, oauth_server: OAuthServer
) -> None:
    oauth_server.nest_tokens_under = "authed_user"
    client_id = f"app-{secrets.token_hex(3)}"
    oauth_server.add_client(
        client_id,
        SECRET,
        grant_types=("authorization_code", "refresh_token"),
        redirect_uris=(f"{server.url}/oauth/callback",),
    )
    view = server.cf.connections.create(
        f"Quirk - {client_id}",
        "oauth",
        {
            "authorize_url": oauth_server.authorize_url,
            "token_url": oauth_server.token_url,
            "client_id": client_id,
            "client_secret": SECRET,
        },
        ["127.0.0.1"],
    )
    with httpx.Client(base_url=server.url, headers=server.headers) as client:
        page = authorize_in_browser(client, f"/api/v1/connections/{view.id}/authorize")
    assert "no access_token" in page.text
    assert server.cf.connections.get(view.id).status == "needs_authorization"


def test_tokens_that_never_expire_are_used_without_refreshing(
    server: RunningServer, oauth_server: OAuthServer
) -> None:
    oauth_server.expires_in = 0  # Authlib then sends no expires_in, like GitHub or Notion
    connection_id = _connection(server, oauth_server)
    for _ in range(3):
        result = _me(server, connection_id, oauth_server)
        assert result.ok, result.error
    assert oauth_server.refresh_requests == 0
    assert oauth_server.code_exchanges == 1
