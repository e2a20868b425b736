"""The audit log (issue 14): each change made over REST, the web app and the CLI is found
with its actor, address, target and changes; failed logins are recorded but bounded; the
list and export filter and page; retention deletes only old entries.

No secret in any entry, the export, the page or the database: test_audit_sentinels.py.
"""

from __future__ import annotations

import json
import secrets
import socket
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from cardflow import cli
from cardflow.access.web_sessions import csrf_token
from cardflow.app import Cardflow
from cardflow.audit import log as audit_log
from cardflow.audit.log import AuditFilter
from cardflow.server.asgi import _prune_audit
from cardflow.store.models import AuditEvent
from tests.conftest import MASTER_KEY, RunningServer
from tests.support.oauth_server import OAuthServer
from tests.support.provider_login import authorize_in_browser

SECRET = "audit-client-secret-4471"


def _api(server: RunningServer, **headers: str) -> httpx.Client:
    return httpx.Client(base_url=server.url, headers={**server.headers, **headers}, timeout=30)


def _entries(server: RunningServer, **query: Any) -> list[dict[str, Any]]:
    with _api(server) as client:
        response = client.get("/api/v1/audit", params=query)
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()
    return found


def _one(server: RunningServer, action: str, target: str | None = None) -> dict[str, Any]:
    query = {"action": action, **({"target": target} if target else {})}
    found = [e for e in _entries(server, **query) if e["action"] == action]
    assert len(found) == 1, found
    return found[0]


def _token_name(server: RunningServer) -> str:
    return next(t.name for t in server.cf.api_tokens.list() if t.name.startswith("test-"))


def _by_token(server: RunningServer, entry: dict[str, Any]) -> None:
    """The entry is the test's API token's doing, from loopback."""
    assert entry["actor"]["kind"] == "api_token"
    assert entry["actor"]["name"] == _token_name(server)
    assert entry["actor"]["id"].startswith("tok_")
    assert entry["actor"]["user_name"] == "owner"  # the token's user
    assert entry["actor"]["user_id"] == server.cf.users.owner().id
    assert entry["address"] == "127.0.0.1"


def _change(entry: dict[str, Any], field: str) -> dict[str, Any]:
    found = [c for c in entry["changes"] if c["field"] == field]
    assert len(found) == 1, entry["changes"]
    return found[0]


def _cli_env(settings_kwargs: dict[str, object]) -> dict[str, str]:
    env = {"CARDFLOW_HOME": str(settings_kwargs["home"]), "CARDFLOW_MASTER_KEY": MASTER_KEY}
    if "database_url" in settings_kwargs:
        env["CARDFLOW_DATABASE_URL"] = str(settings_kwargs["database_url"])
    return env


def test_connection_changes_are_recorded_with_the_token_and_what_changed(
    server: RunningServer,
) -> None:
    with _api(server) as client:
        made = client.post(
            "/api/v1/connections",
            json={
                "name": "Billing",
                "auth_type": "basic",
                "config": {"username": "bot", "password": "pw-one"},
                "allowed_hosts": ["api.example.com"],
            },
        ).json()
        patched = client.patch(
            f"/api/v1/connections/{made['id']}",
            json={"name": "Billing API", "config": {"username": "bot2", "password": "pw-two"}},
        )
        assert patched.status_code == 200, patched.text
        kept = client.patch(
            f"/api/v1/connections/{made['id']}", json={"config": {"username": "bot3"}}
        )
        assert kept.status_code == 200, kept.text
        assert client.delete(f"/api/v1/connections/{made['id']}").status_code == 200

    created = _one(server, "connection.created")
    _by_token(server, created)
    assert created["target"] == {"type": "connection", "id": made["id"], "name": "Billing"}
    assert _change(created, "name") == {"field": "name", "old": None, "new": "Billing"}
    assert _change(created, "config.username")["new"] == "bot"
    assert _change(created, "config.password") == {"field": "config.password", "changed": True}
    assert _change(created, "allowed_hosts")["new"] == ["api.example.com"]

    updates = _entries(server, action="connection.updated")
    assert len(updates) == 2
    latest, first = updates  # newest first
    _by_token(server, first)
    assert first["target"]["name"] == "Billing API"
    assert _change(first, "name") == {"field": "name", "old": "Billing", "new": "Billing API"}
    assert _change(first, "config.username") == {
        "field": "config.username",
        "old": "bot",
        "new": "bot2",
    }
    assert _change(first, "config.password") == {"field": "config.password", "changed": True}
    # the password was kept: not said to have changed
    assert [c["field"] for c in latest["changes"]] == ["config.username"]

    deleted = _one(server, "connection.deleted")
    _by_token(server, deleted)
    assert deleted["target"]["id"] == made["id"]
    assert deleted["details"] == {"revocation": "none"}
    # filters: by target (id or name), by actor, by action prefix
    assert len(_entries(server, target=made["id"])) == 4
    assert {e["action"] for e in _entries(server, target="Billing API")} == {
        "connection.updated",
        "connection.deleted",
    }
    assert len(_entries(server, action="connection", actor=_token_name(server))) == 4
    assert _entries(server, action="connection", actor="cli") == []


def _oauth_connection(server: RunningServer, oauth: OAuthServer, **config: Any) -> tuple[str, str]:
    client_id = f"app-{secrets.token_hex(3)}"
    oauth.add_client(
        client_id,
        SECRET,
        "client_secret_basic",
        scope="read write",
        grant_types=("authorization_code", "refresh_token"),
        redirect_uris=(f"{server.url}/oauth/callback",),
    )
    with _api(server) as client:
        response = client.post(
            "/api/v1/connections",
            json={
                "name": f"Provider {client_id}",
                "auth_type": "oauth",
                "config": {
                    "authorize_url": oauth.authorize_url,
                    "token_url": oauth.token_url,
                    "revocation_url": oauth.revocation_url,
                    "client_id": client_id,
                    "client_secret": SECRET,
                    "scope": "read write",
                    **config,
                },
            },
        )
    assert response.status_code == 201, response.text
    return response.json()["id"], client_id


def test_authorizations_and_the_revocation_on_delete_are_recorded(
    server: RunningServer, oauth_server: OAuthServer
) -> None:
    connection_id, _ = _oauth_connection(server, oauth_server)
    with _api(server) as client:
        refused = authorize_in_browser(
            client, f"/api/v1/connections/{connection_id}/authorize", consent=False
        )
        assert refused.status_code == 400
        page = authorize_in_browser(client, f"/api/v1/connections/{connection_id}/authorize")
        assert "Connection ready" in page.text
        # a callback no authorization asked for: no connection to name
        for _ in range(5):
            client.get("/oauth/callback", params={"state": "not-ours", "code": "x"})

    failed = _entries(server, action="connection.authorization_failed")
    named = [e for e in failed if e["target"] is not None]
    assert len(named) == 1
    assert named[0]["target"]["id"] == connection_id
    assert named[0]["details"]["provider_error"] == "access_denied"
    # the browser came back without a web session: who is not known, where is
    assert named[0]["actor"]["kind"] == "anonymous"
    assert named[0]["address"] == "127.0.0.1"
    # five unknown states from one address within a minute: one entry
    stray = [e for e in failed if e["target"] is None]
    assert len(stray) == 1
    assert stray[0]["details"]["reason"] == "Authorization refused"

    authorized = _one(server, "connection.authorized")
    assert authorized["target"]["id"] == connection_id
    assert authorized["details"]["result"] == "Connection ready"

    with _api(server) as client:
        gone = client.delete(f"/api/v1/connections/{connection_id}")
    assert gone.json()["revocation"]["revoked"] is True
    deleted = _one(server, "connection.deleted")
    assert deleted["details"] == {"revocation": "pending"}
    revoked = _one(server, "connection.tokens_revoked")
    _by_token(server, revoked)
    assert revoked["target"]["id"] == connection_id
    assert revoked["details"]["tokens"] == ["refresh_token", "access_token"]


def test_a_failed_revocation_is_recorded(server: RunningServer, oauth_server: OAuthServer) -> None:
    connection_id, _ = _oauth_connection(server, oauth_server)
    with _api(server) as client:
        authorize_in_browser(client, f"/api/v1/connections/{connection_id}/authorize")
        oauth_server.fail_revocations = 503
        try:
            gone = client.delete(f"/api/v1/connections/{connection_id}")
        finally:
            oauth_server.fail_revocations = None
    assert gone.json()["revocation"]["revoked"] is False
    failed = _one(server, "connection.revocation_failed")
    assert failed["target"]["id"] == connection_id
    assert failed["details"]["error"]


FLOW = {"name": "Nightly", "trigger": {"type": "manual"}, "cards": []}


def test_flow_changes_are_recorded(server: RunningServer) -> None:
    with _api(server) as client:
        made = client.post("/api/v1/flows", json=FLOW).json()
        saved = client.put(
            f"/api/v1/flows/{made['id']}",
            json={
                **FLOW,
                "description": "every night",
                "cards": [
                    {
                        "id": "get",
                        "card": "api_connector.get",
                        "inputs": {"url": "https://example.com/?key=pasted"},
                    }
                ],
            },
        )
        assert saved.status_code == 200, saved.text
        assert client.patch(f"/api/v1/flows/{made['id']}", json={"enabled": False}).is_success
        assert client.patch(f"/api/v1/flows/{made['id']}", json={"enabled": True}).is_success
        imported = client.post(
            "/api/v1/flows/import",
            json={"content": json.dumps({**FLOW, "name": "Imported"}), "filename": "f.json"},
        )
        assert imported.status_code == 201, imported.text
        assert client.delete(f"/api/v1/flows/{made['id']}").status_code == 204

    created = _one(server, "flow.created")
    _by_token(server, created)
    assert created["target"] == {"type": "flow", "id": made["id"], "name": "Nightly"}
    updated = _one(server, "flow.updated")
    _by_token(server, updated)
    assert _change(updated, "description") == {
        "field": "description",
        "old": None,
        "new": "every night",
    }
    # cards are only said to have changed: their inputs may hold a pasted secret
    assert _change(updated, "cards") == {"field": "cards", "changed": True}
    assert "pasted" not in json.dumps(updated)
    disabled = _one(server, "flow.disabled")
    assert _change(disabled, "enabled") == {"field": "enabled", "old": True, "new": False}
    assert _change(_one(server, "flow.enabled"), "enabled")["new"] is True
    assert _one(server, "flow.imported")["target"]["name"] == "Imported"
    _by_token(server, _one(server, "flow.deleted", made["id"]))
    assert [e["action"] for e in _entries(server, action="flow")] == [
        "flow.deleted",
        "flow.imported",
        "flow.enabled",
        "flow.disabled",
        "flow.updated",
        "flow.created",
    ]


def test_cli_changes_name_the_cli_on_this_host(
    server: RunningServer, settings_kwargs: dict[str, object]
) -> None:
    runner = CliRunner()
    env = _cli_env(settings_kwargs)
    made = runner.invoke(cli.app, ["token", "create", "--name", "ci"], env=env)
    assert made.exit_code == 0, made.output
    revoked = runner.invoke(cli.app, ["token", "revoke", "ci"], env=env)
    assert revoked.exit_code == 0, revoked.output
    rotated = runner.invoke(cli.app, ["keys", "rotate"], env=env)
    assert rotated.exit_code == 0, rotated.output

    created = _one(server, "api_token.created", "ci")
    assert created["actor"]["kind"] == "cli"
    assert created["actor"]["user_name"] == "owner"  # the CLI on the host acts as the owner
    assert created["details"] == {
        "user_id": server.cf.users.owner().id,
        "user": "owner",
        "role": None,
    }
    assert created["address"] == f"cli@{socket.gethostname()}"
    assert created["target"]["type"] == "api_token" and created["target"]["name"] == "ci"
    assert _one(server, "api_token.revoked")["target"]["name"] == "ci"
    keys = _one(server, "keys.rotated")
    assert keys["actor"]["kind"] == "cli"
    assert keys["target"]["type"] == "keys"
    assert set(keys["details"]) == {"connections", "tokens", "retired_keys_removed"}

    listed = runner.invoke(cli.app, ["audit", "list", "--action", "api_token", "--json"], env=env)
    assert listed.exit_code == 0, listed.output
    assert [(e["action"], e["target"]["name"]) for e in json.loads(listed.stdout)] == [
        ("api_token.revoked", "ci"),
        ("api_token.created", "ci"),
        ("api_token.created", _token_name(server)),  # the test server's, by the library
    ]
    table = runner.invoke(cli.app, ["audit", "list"], env={**env, "COLUMNS": "200"})
    assert table.exit_code == 0 and "keys.rotated" in table.stdout
    since = (datetime.now(UTC) + timedelta(days=1)).strftime("%Y-%m-%d")
    later = runner.invoke(cli.app, ["audit", "list", "--since", since, "--json"], env=env)
    assert json.loads(later.stdout) == []
    exported = runner.invoke(cli.app, ["audit", "export"], env=env)
    assert exported.exit_code == 0, exported.output
    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    assert [e["action"] for e in lines][-3:] == [  # oldest first
        "api_token.created",
        "api_token.revoked",
        "keys.rotated",
    ]
    assert lines == sorted(lines, key=lambda e: e["id"])
    bad = runner.invoke(cli.app, ["audit", "list", "--since", "yesterday"], env=env)
    assert bad.exit_code == 2


def test_web_logins_failed_logins_and_logouts(server: RunningServer) -> None:
    link, _ = server.cf.web_sessions.create_login_link()
    with httpx.Client(base_url=server.url, timeout=30) as browser:
        logged_in = browser.post("/login", data={"token": link})
        assert logged_in.status_code == 303
        session = browser.cookies["cardflow_session"]
        # the web app's own change: the web session is the actor
        made = browser.post(
            "/api/v1/flows", json=FLOW, headers={"X-CSRF-Token": csrf_token(session)}
        )
        assert made.status_code == 201, made.text
        again = browser.post("/login", data={"token": link})  # used already
        assert again.status_code == 400
        out = browser.post("/logout", data={"csrf_token": csrf_token(session)})
        assert out.status_code == 303

    owner = server.cf.users.owner()
    login = _one(server, "web.login")
    assert login["actor"]["kind"] == "web_session"
    assert login["actor"]["id"].startswith("ses_")
    assert (login["actor"]["user_id"], login["actor"]["user_name"]) == (owner.id, "owner")
    assert login["address"] == "127.0.0.1"
    flow = _one(server, "flow.created")
    assert flow["actor"] == {
        "kind": "web_session",
        "id": login["actor"]["id"],
        "name": "web session",
        "user_id": owner.id,
        "user_name": "owner",
    }
    failed = _one(server, "web.login_failed")
    assert failed["actor"]["kind"] == "anonymous"
    assert failed["actor"]["user_name"] == "owner"  # whom the used link was for
    assert failed["address"] == "127.0.0.1"
    logout = _one(server, "web.logout")
    assert logout["actor"]["id"] == login["actor"]["id"]
    assert logout["actor"]["user_name"] == "owner"


def test_users_and_roles_changes_are_recorded(server: RunningServer) -> None:
    with _api(server) as client:
        made = client.post(
            "/api/v1/users/invites",
            json={"name": "dana", "email": "d@example.com", "role": "builder"},
        )
        assert made.status_code == 201, made.text
        token = made.json()["url"].split("/login?token=", 1)[1]
        gone = client.post("/api/v1/users/invites", json={"name": "eve", "role": "viewer"})
        assert gone.status_code == 201, gone.text
        cancelled = client.delete(f"/api/v1/users/invites/{gone.json()['id']}")
        assert cancelled.status_code == 204, cancelled.text
    with httpx.Client(base_url=server.url, timeout=30) as browser:
        assert browser.post("/login", data={"token": token}).status_code == 303
    dana = server.cf.users.get("dana")
    with _api(server) as client:
        assert client.patch("/api/v1/users/dana", json={"role": "admin"}).status_code == 200
        assert client.delete("/api/v1/users/dana").status_code in (200, 204)

    invited = _one(server, "user.invited", "dana")
    _by_token(server, invited)
    assert invited["target"]["type"] == "invite"
    assert _change(invited, "role")["new"] == "builder"
    assert _change(invited, "email")["new"] == "d@example.com"
    joined = _one(server, "user.joined", "dana")
    assert joined["target"] == {"type": "user", "id": dana.id, "name": "dana"}
    assert joined["actor"]["user_name"] == "dana"
    assert joined["details"]["invite_id"] == invited["target"]["id"]
    assert _one(server, "web.login")["actor"]["user_id"] == dana.id
    changed = _one(server, "user.role_changed", "dana")
    _by_token(server, changed)
    assert changed["changes"] == [{"field": "role", "old": "builder", "new": "admin"}]
    removed = _one(server, "user.removed", "dana")
    assert removed["target"]["id"] == dana.id and removed["details"] == {"role": "admin"}
    cancelled_entry = _one(server, "invite.cancelled", "eve")
    _by_token(server, cancelled_entry)
    # the whole "user" family, newest first, filtered by action prefix
    assert [(e["action"], e["target"]["name"]) for e in _entries(server, action="user")] == [
        ("user.removed", "dana"),
        ("user.role_changed", "dana"),
        ("user.joined", "dana"),
        ("user.invited", "eve"),
        ("user.invited", "dana"),
    ]
    # the link itself is in no entry
    assert token not in json.dumps(_entries(server))


def test_bad_api_tokens_are_recorded_once_a_minute_per_address(server: RunningServer) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for n in range(40):
            answer = client.get("/api/v1/flows", headers={"Authorization": f"Bearer cf_wrong{n}"})
            assert answer.status_code == 401
        assert client.get("/api/v1/flows").status_code == 401  # no token: not a failed login
    failed = _entries(server, action="api_token.auth_failed")
    assert len(failed) == 1
    assert failed[0]["actor"] == {
        "kind": "anonymous",
        "id": None,
        "name": None,
        "user_id": None,
        "user_name": None,
    }
    assert failed[0]["address"] == "127.0.0.1"
    assert failed[0]["details"] == {"reason": "unknown or revoked API token"}


def test_failure_limiter_counts_what_it_leaves_out_and_caps_addresses() -> None:
    clock = [1000.0]
    limiter = audit_log.FailureLimiter(window=60, per_window=3, clock=lambda: clock[0])
    assert limiter.admit("api_token.auth_failed", "10.0.0.1") == 0
    assert limiter.admit("api_token.auth_failed", "10.0.0.1") is None
    assert limiter.admit("api_token.auth_failed", "10.0.0.1") is None
    assert limiter.admit("web.login_failed", "10.0.0.1") == 0  # another kind
    assert limiter.admit("api_token.auth_failed", "10.0.0.2") == 0
    # the window's cap of three is reached: other addresses wait for the next window
    assert all(limiter.admit("api_token.auth_failed", f"10.1.0.{n}") is None for n in range(99))
    clock[0] += 60
    assert limiter.admit("api_token.auth_failed", "10.0.0.1") == 2  # two left out before


def test_list_pages_newest_first_and_bounds_its_limit(server: RunningServer) -> None:
    for n in range(5):
        server.cf.api_tokens.create(f"paged-{n}")
    first = _entries(server, action="api_token.created", limit=2)
    assert [e["target"]["name"] for e in first] == ["paged-4", "paged-3"]
    second = _entries(server, action="api_token.created", limit=2, before=first[-1]["id"])
    assert [e["target"]["name"] for e in second] == ["paged-2", "paged-1"]
    # the library acts as itself
    assert second[0]["actor"] == {
        "kind": "library",
        "id": None,
        "name": None,
        "user_id": None,
        "user_name": None,
    }
    with _api(server) as client:
        too_many = client.get("/api/v1/audit", params={"limit": 501})
        assert too_many.status_code == 422
        assert "limit" in too_many.json()["error"]["field"]
        bad_time = client.get("/api/v1/audit", params={"since": "yesterday"})
        assert bad_time.status_code == 422
        assert "since" in bad_time.json()["error"]["field"]
        long_action = client.get("/api/v1/audit", params={"action": "a" * 65})
        assert long_action.status_code == 422
        assert client.get("/api/v1/audit", headers={"Authorization": ""}).status_code == 401
    now = datetime.now(UTC)
    assert (
        len(
            _entries(
                server, action="api_token.created", since=(now - timedelta(hours=1)).isoformat()
            )
        )
        == 6
    )
    assert (
        _entries(server, action="api_token.created", until=(now - timedelta(hours=1)).isoformat())
        == []
    )


def test_export_streams_every_entry_as_json_lines(
    server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(audit_log, "EXPORT_PAGE", 3)  # several pages
    for n in range(7):
        server.cf.api_tokens.create(f"exported-{n}")
    with _api(server) as client:
        response = client.get("/api/v1/audit/export", params={"action": "api_token.created"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in response.text.splitlines()]
    names = [e["target"]["name"] for e in lines]
    assert names[-7:] == [f"exported-{n}" for n in range(7)]
    assert len(lines) == 8  # and the test server's own token
    with _api(server) as client:
        assert (
            client.get("/api/v1/audit/export", headers={"Authorization": "Bearer x"}).status_code
            == 401
        )


def test_retention_deletes_old_entries_in_bounded_batches(
    cf: Cardflow, monkeypatch: pytest.MonkeyPatch
) -> None:
    now = datetime.now(UTC)
    with cf.db.session() as session:
        for n in range(7):
            session.add(
                AuditEvent(
                    at=now - timedelta(days=400 + n), action="flow.created", actor_kind="cli"
                )
            )
        session.add(
            AuditEvent(at=now - timedelta(days=300), action="flow.deleted", actor_kind="cli")
        )
    monkeypatch.setattr(audit_log, "PRUNE_BATCH", 2)
    monkeypatch.setattr(audit_log, "PRUNE_MAX_BATCHES", 2)
    # at most two batches of two in one sweep; the next sweep goes on
    assert cf.audit.prune(now - timedelta(days=365)) == 4
    assert cf.audit.prune(now - timedelta(days=365)) == 3
    assert cf.audit.prune(now - timedelta(days=365)) == 0
    left = cf.audit.list(AuditFilter(action="flow"))
    assert [e.action for e in left] == ["flow.deleted"]


async def test_the_server_sweep_applies_the_retention_setting(cf: Cardflow) -> None:
    now = datetime.now(UTC)
    with cf.db.session() as session:
        session.add(
            AuditEvent(at=now - timedelta(days=11), action="flow.created", actor_kind="cli")
        )
        session.add(AuditEvent(at=now - timedelta(days=9), action="flow.updated", actor_kind="cli"))
    cf.settings.audit_retention_days = 10
    await _prune_audit(cf)
    assert [e.action for e in cf.audit.list(AuditFilter(action="flow"))] == ["flow.updated"]
