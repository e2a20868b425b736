"""The audit log never holds a secret (issue 14): connections created and changed with
sentinel secrets (a Basic password, an OAuth client secret, a custom header's value) over
REST and the CLI, an authorization (its tokens too), a key rotation, a delete with its
revocation, a bad API token and a spent login link, invitations made, cancelled and
opened (their one-time links), a role change and a removal — then every form of every sentinel
(test_secret_sentinels.forms_of: raw, URL-encoded, JSON-escaped, base64, …) is looked for
in every audit row, the REST list, the export, the CLI's list and export, the Audit log
page and the raw database file. A non-secret marker given beside the secrets is found in
each of those places, so the search is shown to look where the secrets would be."""

from __future__ import annotations

import json
import secrets

import httpx
from sqlalchemy import select
from typer.testing import CliRunner

from cardflow import cli
from cardflow.store.models import AuditEvent
from tests.conftest import RunningServer
from tests.integration.test_audit_log import _cli_env
from tests.integration.test_secret_sentinels import TAIL, forms_of
from tests.integration.test_secrets_and_keys import _database_text
from tests.support.oauth_server import OAuthServer
from tests.support.provider_login import authorize_in_browser


def oauth_config(
    oauth_server: OAuthServer, client_id: str, sentinels: dict[str, str]
) -> dict[str, object]:
    return {
        "name": "OAuth",
        "auth_type": "oauth",
        "config": {
            "authorize_url": oauth_server.authorize_url,
            "token_url": oauth_server.token_url,
            "revocation_url": oauth_server.revocation_url,
            "client_id": client_id,
            "client_secret": sentinels["client secret 1"],
            "scope": "read",
        },
    }


def _sentinel(label: str) -> str:
    return f"SNTL{label}{secrets.token_hex(5)}{TAIL}q"


def test_no_secret_in_the_audit_log_its_export_page_or_database(
    server: RunningServer, oauth_server: OAuthServer, settings_kwargs: dict[str, object]
) -> None:
    marker = f"MARKERuser{secrets.token_hex(4)}"  # a non-secret value: must be found
    sentinels = {
        "password 1": _sentinel("pwa"),
        "password 2": _sentinel("pwb"),
        "header value 1": _sentinel("hva"),
        "header value 2": _sentinel("hvb"),
        "client secret 1": _sentinel("csa"),
        "client secret 2": _sentinel("csb"),
        "bad API token": "cf_" + _sentinel("tok"),
        "bad login link": _sentinel("lnk"),
    }
    api = httpx.Client(base_url=server.url, headers=server.headers, timeout=30)
    with api:
        basic = api.post(
            "/api/v1/connections",
            json={
                "name": "Basic",
                "auth_type": "basic",
                "config": {"username": marker, "password": sentinels["password 1"]},
                "allowed_hosts": ["api.example.com"],
            },
        ).json()
        changed = api.patch(
            f"/api/v1/connections/{basic['id']}",
            json={"config": {"username": marker + "2", "password": sentinels["password 2"]}},
        )
        assert changed.status_code == 200, changed.text
        header = api.post(
            "/api/v1/connections",
            json={
                "name": "Header",
                "auth_type": "custom",
                "config": {"header_name": "X-Key", "header_value": sentinels["header value 1"]},
                "allowed_hosts": ["api.example.com"],
            },
        )
        assert header.status_code == 201, header.text

        client_id = f"app-{secrets.token_hex(3)}"
        oauth_server.add_client(
            client_id,
            sentinels["client secret 1"],
            "client_secret_basic",
            scope="read",
            grant_types=("authorization_code", "refresh_token"),
            redirect_uris=(f"{server.url}/oauth/callback",),
        )
        oauth = api.post(
            "/api/v1/connections", json=oauth_config(oauth_server, client_id, sentinels)
        ).json()
        second = {**oauth_config(oauth_server, client_id, sentinels), "name": "OAuth 2"}
        assert api.post("/api/v1/connections", json=second).status_code == 201
        page = authorize_in_browser(api, f"/api/v1/connections/{oauth['id']}/authorize")
        assert "Connection ready" in page.text
        stored = server.cf.token_store.load(oauth["id"])
        assert stored is not None
        sentinels["access token"] = stored[0].access_token
        assert stored[0].refresh_token
        sentinels["refresh token"] = stored[0].refresh_token

        # the CLI: a header value and the client secret changed, keys rotated
        env = _cli_env(settings_kwargs)
        runner = CliRunner()
        for args, secret_env in (
            (["Header", "--secret-env", "header_value=S"], sentinels["header value 2"]),
            (["OAuth 2", "--secret-env", "client_secret=S"], sentinels["client secret 2"]),
        ):
            done = runner.invoke(
                cli.app, ["connection", "update", *args], env={**env, "S": secret_env}
            )
            assert done.exit_code == 0, done.output
        rotated = runner.invoke(cli.app, ["keys", "rotate"], env=env)
        assert rotated.exit_code == 0, rotated.output
        assert api.delete(f"/api/v1/connections/{oauth['id']}").status_code == 200

        # users: invitations (their one-time links are secrets) made, cancelled, opened
        invites = {}
        for name in ("joiner", "cancelled"):
            made = api.post("/api/v1/users/invites", json={"name": name, "role": "builder"})
            assert made.status_code == 201, made.text
            invites[name] = made.json()
            sentinels[f"invite link {name}"] = made.json()["url"].split("?token=", 1)[1]
        assert api.delete(f"/api/v1/users/invites/{invites['cancelled']['id']}").status_code == 204
        with httpx.Client(base_url=server.url, timeout=30) as browser:
            joined = browser.post("/login", data={"token": sentinels["invite link joiner"]})
            assert joined.status_code == 303
            sentinels["joiner's session"] = browser.cookies["cardflow_session"]
            again = browser.post("/login", data={"token": sentinels["invite link joiner"]})
            assert again.status_code == 400  # a failed login naming the user, not the link
        assert api.patch("/api/v1/users/joiner", json={"role": "viewer"}).status_code == 200
        assert api.delete("/api/v1/users/joiner").status_code == 200

    # failed logins with secret-looking values
    bad = httpx.get(
        f"{server.url}/api/v1/flows",
        headers={"Authorization": f"Bearer {sentinels['bad API token']}"},
    )
    assert bad.status_code == 401
    with httpx.Client(base_url=server.url, timeout=30) as browser:
        assert (
            browser.post("/login", data={"token": sentinels["bad login link"]}).status_code == 400
        )
        link, _ = server.cf.web_sessions.create_login_link()
        assert browser.post("/login", data={"token": link}).status_code == 303
        audit_page = browser.get("/audit")
        assert audit_page.status_code == 200 and "Audit log" in audit_page.text
        page_api = browser.get("/api/v1/audit", params={"limit": 500})  # what the page shows

    with httpx.Client(base_url=server.url, headers=server.headers, timeout=30) as api:
        listed = api.get("/api/v1/audit", params={"limit": 500})
        exported = api.get("/api/v1/audit/export")
    cli_list = runner.invoke(cli.app, ["audit", "list", "--json", "--limit", "500"], env=env)
    cli_table = runner.invoke(
        cli.app, ["audit", "list", "--limit", "500"], env={**env, "COLUMNS": "400"}
    )
    cli_export = runner.invoke(cli.app, ["audit", "export"], env=env)
    with server.cf.db.session() as session:
        rows = [
            repr({c.name: getattr(row, c.name) for c in AuditEvent.__table__.columns})
            for row in session.scalars(select(AuditEvent))
        ]
    actions = {json.loads(line)["action"] for line in exported.text.splitlines()}
    assert {
        "connection.created",
        "connection.updated",
        "connection.authorized",
        "keys.rotated",
        "connection.deleted",
        "connection.tokens_revoked",
        "api_token.auth_failed",
        "web.login_failed",
        "web.login",
        "user.invited",
        "invite.cancelled",
        "user.joined",
        "user.role_changed",
        "user.removed",
    } <= actions
    places = {
        "audit rows": "\n".join(rows),
        "GET /api/v1/audit": listed.text,
        "the export": exported.text,
        "the page's list": page_api.text,
        "cardflow audit list --json": cli_list.stdout,
        "cardflow audit list": cli_table.stdout,
        "cardflow audit export": cli_export.stdout,
        "the Audit log page": audit_page.text,
    }
    for where, text in places.items():
        if where != "the Audit log page":  # a shell: its script fetches the list
            assert marker in text, where  # the search looks where a value would be
    database = _database_text(server.cf)
    assert marker.encode() in database
    for label, value in sentinels.items():
        for form_name, form in forms_of(value).items():
            for where, text in places.items():
                assert form not in text, f"{label} ({form_name}) in {where}"
            assert form.encode() not in database, f"{label} ({form_name}) in the database"
