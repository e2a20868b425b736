"""Users and roles over REST: every route's rule walked for every role, tokens narrowed to
their user's role, invitations, role changes, removal, connections shared with roles and
users, and the migration of an install from before users."""

from __future__ import annotations

import re
import secrets
import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from alembic import command
from sqlalchemy import create_engine, text

from cardflow.access.roles import Role
from cardflow.app import Cardflow
from cardflow.errors import Conflict
from cardflow.store.db import Database
from tests.conftest import RunningServer

# Routes anyone may call: their own security (a flow's client token, an OAuth state) or
# none. Every other operation in /openapi.json must declare its least role.
PUBLIC = {
    "GET /healthz",
    "GET /readyz",
    "GET /invoke/{alias}",
    "POST /invoke/{alias}",
    "GET /oauth/callback",
}
RANK = {"viewer": 0, "builder": 1, "admin": 2, "owner": 3}


def add_user(cf: Cardflow, name: str, role: Role | str) -> str:
    """A user made the real way: an invitation, opened. Returns their id."""
    _, link = cf.users.invite(name=name, role=role)
    cf.web_sessions.redeem(link)
    return cf.users.get(name).id


def token_for(cf: Cardflow, user: str, role: str | None = None) -> dict[str, str]:
    _, token = cf.api_tokens.create(f"{user}-{secrets.token_hex(3)}", user=user, role=role)
    return {"Authorization": f"Bearer {token}"}


def filled(path: str) -> str:
    """A path with each parameter set to something that does not exist."""
    return re.sub(
        r"\{(\w+)\}", lambda m: "999999" if m.group(1) in {"number", "other"} else "nope", path
    )


def test_every_route_declares_its_role_and_each_role_gets_what_it_declares(
    server: RunningServer,
) -> None:
    cf = server.cf
    headers = {role: token_for(cf, add_user(cf, f"u-{role}", role)) for role in RANK}
    spec = httpx.get(f"{server.url}/openapi.json").json()
    undeclared: list[str] = []
    checked = 0
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for path, methods in spec["paths"].items():
            for method, operation in methods.items():
                where = f"{method.upper()} {path}"
                needed = operation.get("x-min-role")
                if where in PUBLIC:
                    assert needed is None, where
                    continue
                if needed not in RANK:
                    undeclared.append(where)
                    continue
                for role, auth in headers.items():
                    body = {} if method in {"post", "put", "patch"} else None
                    answer = client.request(method.upper(), filled(path), headers=auth, json=body)
                    if RANK[role] < RANK[needed]:
                        assert answer.status_code == 403, (where, role, answer.text)
                        error = answer.json()["error"]
                        assert error["type"] == "forbidden", (where, role)
                        assert needed in error["message"], (where, role)
                    else:
                        assert answer.status_code != 403, (where, role, answer.text)
                        assert answer.status_code < 500, (where, role, answer.text)
                    checked += 1
    assert undeclared == [], f"routes without a role rule: {undeclared}"
    assert checked > 100  # the walk really walked (every route x 4 roles)
    # and without a token: 401 everywhere a role is needed
    assert httpx.get(f"{server.url}/api/v1/users").status_code == 401


def test_the_rules_are_the_ones_the_roles_promise(server: RunningServer) -> None:
    spec = httpx.get(f"{server.url}/openapi.json").json()
    rule = {
        f"{m.upper()} {p}": op.get("x-min-role")
        for p, methods in spec["paths"].items()
        for m, op in methods.items()
    }
    # viewer: reads flows and run history
    for where in ("GET /api/v1/flows", "GET /api/v1/flows/{ref}", "GET /api/v1/runs"):
        assert rule[where] == "viewer", where
    # builder: edits, runs and tests flows
    for where in (
        "POST /api/v1/flows",
        "PUT /api/v1/flows/{ref}",
        "DELETE /api/v1/flows/{ref}",
        "POST /api/v1/flows/{ref}/runs",
        "POST /api/v1/cards/{card_id}/test",
    ):
        assert rule[where] == "builder", where
    # admin: connections; owner: users
    for where in (
        "POST /api/v1/connections",
        "PATCH /api/v1/connections/{ref}",
        "DELETE /api/v1/connections/{ref}",
        "GET /api/v1/connections/{ref}/authorize",
    ):
        assert rule[where] == "admin", where
    for where in ("GET /api/v1/users", "POST /api/v1/users/invites", "DELETE /api/v1/users/{ref}"):
        assert rule[where] == "owner", where


def test_a_token_never_exceeds_its_users_current_role(server: RunningServer) -> None:
    cf = server.cf
    add_user(cf, "bea", Role.admin)
    narrowed = token_for(cf, "bea", "viewer")
    full = token_for(cf, "bea")
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/api/v1/users/me", headers=narrowed).json()["role"] == "viewer"
        assert client.post("/api/v1/flows", headers=narrowed, json={}).status_code == 403
        me = client.get("/api/v1/users/me", headers=full).json()
        assert (me["name"], me["role"]) == ("bea", "admin")
        # a wider role than the user's is refused when the token is made
        with pytest.raises(Exception, match="wider role"):
            cf.api_tokens.create("too-wide", user="bea", role="owner")
        # demoted: her tokens are demoted with her, at once
        changed = client.patch(
            f"/api/v1/users/{me['id']}", headers=server.headers, json={"role": "viewer"}
        )
        assert changed.status_code == 200, changed.text
        assert client.get("/api/v1/users/me", headers=full).json()["role"] == "viewer"
        refused = client.post("/api/v1/connections", headers=full, json={})
        assert refused.status_code == 403
        assert refused.json()["error"]["type"] == "forbidden"


def test_an_invitation_creates_its_user_once_and_logs_them_in(server: RunningServer) -> None:
    with httpx.Client(base_url=server.url, headers=server.headers) as client:
        made = client.post(
            "/api/v1/users/invites",
            json={"name": "carol", "email": "carol@example.com", "role": "builder"},
        )
        assert made.status_code == 201, made.text
        invite = made.json()
        assert invite["role"] == "builder" and invite["url"].startswith(
            server.url + "/login?token="
        )
        token = invite["url"].rpartition("token=")[2]
        pending = client.get("/api/v1/users/invites").json()
        assert [i["name"] for i in pending] == ["carol"]
        assert all("url" not in i and token not in str(i) for i in pending)
        # the same name cannot be invited twice
        again = client.post("/api/v1/users/invites", json={"name": "carol", "role": "viewer"})
        assert again.status_code == 409 and again.json()["error"]["field"] == "name"
        bad = client.post("/api/v1/users/invites", json={"name": "x", "role": "emperor"})
        assert bad.status_code == 422
    with httpx.Client(base_url=server.url) as browser:
        opened = browser.post("/login", data={"token": token})
        assert opened.status_code == 303 and "cardflow_session" in browser.cookies
        me = browser.get("/api/v1/users/me").json()
        assert (me["name"], me["role"], me["token"]) == ("carol", "builder", None)
        # a viewer's page has no Users link; the Users page is the owner's
        assert browser.get("/users").status_code == 403
    with httpx.Client(base_url=server.url) as other:
        replay = other.post("/login", data={"token": token})
        assert replay.status_code == 400 and "cardflow_session" not in other.cookies
    users = {u.name: u.role for u in server.cf.users.list()}
    assert users == {"owner": "owner", "carol": "builder"}
    assert server.cf.users.invites() == []


def test_removing_a_user_ends_their_sessions_and_revokes_their_tokens(
    server: RunningServer,
) -> None:
    cf = server.cf
    dan = add_user(cf, "dan", Role.builder)
    auth = token_for(cf, "dan")
    session = cf.web_sessions.redeem(cf.web_sessions.create_login_link("dan")[0])
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/api/v1/flows", headers=auth).status_code == 200
        client.cookies.set("cardflow_session", session)
        assert client.get("/api/v1/flows").status_code == 200
        gone = client.delete(f"/api/v1/users/{dan}", headers=server.headers)
        assert gone.status_code == 200 and gone.json()["name"] == "dan"
        assert client.get("/api/v1/flows").status_code == 401
        client.cookies.clear()
        assert client.get("/api/v1/flows", headers=auth).status_code == 401
    assert [t.user_name for t in cf.api_tokens.list()] == ["owner"]


def test_the_last_owner_stays(server: RunningServer) -> None:
    cf = server.cf
    owner = cf.users.owner()
    with httpx.Client(base_url=server.url, headers=server.headers) as client:
        for answer in (
            client.delete(f"/api/v1/users/{owner.id}"),
            client.patch(f"/api/v1/users/{owner.id}", json={"role": "admin"}),
        ):
            assert answer.status_code == 409, answer.text
            assert "last owner" in answer.json()["error"]["message"]
        # with a second owner the first may step down
        add_user(cf, "erin", Role.owner)
        assert client.patch(f"/api/v1/users/{owner.id}", json={"role": "admin"}).status_code == 200


@pytest.mark.parametrize("backend", ["postgres"], indirect=True)
def test_two_owners_demoting_each_other_at_once_leave_one_owner(cf: Cardflow) -> None:
    """Each of the last two owners demotes the other at the same moment, ten times over:
    one change wins and the other is refused (the owners' rows are locked while counted)."""
    first = cf.users.owner()
    for round_ in range(10):
        second = add_user(cf, f"owner-{round_}", Role.owner)
        start = threading.Barrier(2)
        outcomes: list[str] = []

        def demote(
            ref: str, start: threading.Barrier = start, outcomes: list[str] = outcomes
        ) -> None:
            start.wait()
            try:
                cf.users.set_role(ref, "admin")
                outcomes.append("demoted")
            except Conflict:
                outcomes.append("refused")

        threads = [threading.Thread(target=demote, args=(ref,)) for ref in (first.id, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert sorted(outcomes) == ["demoted", "refused"], (round_, outcomes)
        owners = [u for u in cf.users.list() if u.role == "owner"]
        assert len(owners) == 1, (round_, owners)
        first = owners[0]


def _basic(name: str, shared_with: list[str]) -> dict[str, Any]:
    return {
        "name": name,
        "auth_type": "basic",
        "config": {"username": "svc", "password": "pw-" + secrets.token_hex(8)},
        "allowed_hosts": ["127.0.0.1"],
        "shared_with": shared_with,
    }


def test_a_builder_uses_only_the_connections_shared_with_them(
    server: RunningServer, upstream: Any
) -> None:
    cf = server.cf
    add_user(cf, "fay", Role.builder)
    add_user(cf, "gus", Role.builder)
    fay = token_for(cf, "fay")
    with httpx.Client(base_url=server.url, headers=server.headers) as admin:
        for body in (
            _basic("Shared", ["everyone"]),
            _basic("For builders", ["role:builder"]),
            _basic("Fay only", ["user:fay"]),
            _basic("Admins only", []),
        ):
            made = admin.post("/api/v1/connections", json=body)
            assert made.status_code == 201, made.text
        assert made.json()["shared_with"] == []
        fays = admin.get("/api/v1/connections/Fay only").json()
        assert fays["shared_with"] == [f"user:{cf.users.get('fay').id}"]
        unknown = admin.post("/api/v1/connections", json=_basic("X", ["user:nobody"]))
        assert unknown.status_code == 422 and unknown.json()["error"]["field"] == "shared_with"
    with httpx.Client(base_url=server.url, headers=fay) as client:
        listed = client.get("/api/v1/connections").json()
        assert [c["name"] for c in listed] == ["Fay only", "For builders", "Shared"]
        assert all(c["config"] == {} and c["shared_with"] == [] for c in listed)  # public view
        hidden = client.get("/api/v1/connections/Admins only")
        assert hidden.status_code == 403 and "Admins only" in hidden.json()["error"]["message"]
        # Test this card with a connection shared with her: it runs
        url = f"{upstream.url}/echo"
        tested = client.post(
            "/api/v1/cards/api_connector.get/test",
            json={"connection": "Fay only", "inputs": {"url": url}},
        )
        assert tested.status_code == 200, tested.text
        # one not shared with her: refused, naming it
        refused = client.post(
            "/api/v1/cards/api_connector.get/test",
            json={"connection": "Admins only", "inputs": {"url": url}},
        )
        assert refused.status_code == 403
        assert refused.json()["error"]["field"] == "connection"
        assert "Admins only" in refused.json()["error"]["message"]
        # saving a flow that uses it: refused too; with a shared one: saved
        flow = {
            "name": "Uses a connection",
            "cards": [
                {
                    "id": "get",
                    "card": "api_connector.get",
                    "connection": "Admins only",
                    "inputs": {"url": url},
                }
            ],
        }
        saved = client.post("/api/v1/flows", json=flow)
        assert saved.status_code == 403 and "Admins only" in saved.json()["error"]["message"]
        flow["cards"][0]["connection"] = "For builders"
        assert client.post("/api/v1/flows", json=flow).status_code == 201
        assert client.post("/api/v1/flows/Uses a connection/runs").status_code == 201
        # a flow the owner saved with a connection not shared with her: she can neither
        # run it nor retry its failed run
        owners = {**flow, "name": "Owner's flow"}
        owners["cards"] = [{**flow["cards"][0], "connection": "Admins only",
                            "inputs": {"url": f"{upstream.url}/status/500"}}]  # fmt: skip
        made = httpx.post(f"{server.url}/api/v1/flows", json=owners, headers=server.headers)
        assert made.status_code == 201, made.text
        failed = httpx.post(
            f"{server.url}/api/v1/flows/{made.json()['id']}/runs", headers=server.headers
        )
        assert failed.status_code == 201 and failed.json()["status"] == "failed", failed.text
        for refused in (
            client.post(f"/api/v1/flows/{made.json()['id']}/runs"),
            client.post(f"/api/v1/runs/{failed.json()['id']}/retry"),
        ):
            assert refused.status_code == 403, refused.text
            assert "Admins only" in refused.json()["error"]["message"]
        # and she never changes a connection
        assert client.patch("/api/v1/connections/Shared", json={"name": "x"}).status_code == 403
    # another builder does not get Fay's
    gus = token_for(cf, "gus")
    names = [c["name"] for c in httpx.get(f"{server.url}/api/v1/connections", headers=gus).json()]
    assert names == ["For builders", "Shared"]


def test_a_viewer_reads_flows_without_their_client_token(server: RunningServer) -> None:
    cf = server.cf
    add_user(cf, "hal", Role.viewer)
    flow = {
        "name": "Endpoint",
        "trigger": {"type": "api_endpoint", "alias": "ep", "security": "client_token"},
        "cards": [],
    }
    made = httpx.post(f"{server.url}/api/v1/flows", headers=server.headers, json=flow).json()
    assert made["client_token"]
    seen = httpx.get(f"{server.url}/api/v1/flows/{made['id']}", headers=token_for(cf, "hal"))
    assert seen.status_code == 200 and seen.json()["client_token"] is None
    assert made["client_token"] not in seen.text


def test_invitation_and_login_tokens_are_kept_only_hashed(
    server: RunningServer, captured_logs: pytest.LogCaptureFixture
) -> None:
    cf = server.cf
    made = httpx.post(
        f"{server.url}/api/v1/users/invites",
        headers=server.headers,
        json={"name": "ivy", "role": "viewer"},
    ).json()
    invite_token = made["url"].rpartition("token=")[2]
    login_token, _ = cf.web_sessions.create_login_link()
    with httpx.Client(base_url=server.url) as browser:
        assert browser.post("/login", data={"token": invite_token}).status_code == 303
        session_token = browser.cookies["cardflow_session"]
        listed = browser.get("/api/v1/users/me").text
    answers = (
        listed
        + httpx.get(f"{server.url}/api/v1/users/invites", headers=server.headers).text
        + httpx.get(f"{server.url}/api/v1/users", headers=server.headers).text
    )
    # cardflow's and the server's logs (not the test client's own: httpcore logs headers)
    logs = "\n".join(
        r.getMessage() + str(r.__dict__)
        for r in captured_logs.records
        if not r.name.startswith(("httpcore", "httpx"))
    )
    assert any(r.name.startswith("cardflow") for r in captured_logs.records)
    stored = _database_text(cf)
    for sentinel in (invite_token, login_token, session_token):
        assert sentinel not in answers
        assert sentinel not in logs
        assert sentinel not in stored


def _database_text(cf: Cardflow) -> str:
    if cf.db.is_sqlite:
        files = Path(cf.settings.home).glob("*.db*")
        return "".join(p.read_bytes().decode("latin-1") for p in files)
    with cf.db.session() as session:
        rows = session.execute(
            text("SELECT token_hash FROM login_links UNION ALL SELECT token_hash FROM web_sessions")
        ).all()
        return " ".join(r[0] for r in rows)


def test_migration_gives_an_existing_install_its_owner(tmp_path: Path) -> None:
    """A database from before users: an owner "owner" holds every token and session."""
    url = f"sqlite:///{tmp_path / 'old.db'}"
    engine = create_engine(url)
    config = Database._alembic_config()
    with engine.connect() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0015")
        connection.execute(
            text(
                "INSERT INTO api_tokens (id, name, token_hash, created_at) VALUES "
                "('tok_a', 'ci', 'h1', '2026-01-01 00:00:00'), "
                "('tok_b', 'deploy', 'h2', '2026-01-01 00:00:00')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO web_sessions (id, token_hash, created_at, expires_at) VALUES "
                "('ses_a', 'h3', '2026-01-01 00:00:00', '2099-01-01 00:00:00')"
            )
        )
        connection.execute(
            text(
                "INSERT INTO connections (id, name, auth_type, config, secret_fields, "
                "allowed_hosts, status, version, created_at, updated_at) VALUES ('con_a', "
                "'C', 'none', '{}', '[]', '[]', 'ready', 1, '2026-01-01 00:00:00', "
                "'2026-01-01 00:00:00')"
            )
        )
        command.upgrade(config, "head")
        connection.commit()
        users = connection.execute(text("SELECT id, name, role FROM users")).all()
        tokens = connection.execute(text("SELECT user_id, role FROM api_tokens")).all()
        sessions = connection.execute(text("SELECT user_id FROM web_sessions")).all()
        shared = connection.execute(text("SELECT shared_with FROM connections")).scalar_one()
    engine.dispose()
    assert [(u.name, u.role) for u in users] == [("owner", "owner")]
    owner_id = users[0].id
    assert [tuple(t) for t in tokens] == [(owner_id, None), (owner_id, None)]
    assert [s.user_id for s in sessions] == [owner_id]
    assert shared == '["everyone"]'


def test_a_fresh_install_has_no_user_until_the_owner_is_needed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    engine = create_engine(url)
    config = Database._alembic_config()
    with engine.connect() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
        connection.commit()
        assert connection.execute(text("SELECT count(*) FROM users")).scalar_one() == 0
    engine.dispose()
