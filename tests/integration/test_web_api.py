"""The web app's server side over HTTP: login links, sessions, CSRF, pages and the routes the
pages use (auth types, flow import, enable/disable, card tests with a context)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import update

from cardflow.access.web_sessions import csrf_token
from cardflow.store.models import LoginLink, WebSession
from tests.conftest import RunningServer
from tests.support.oauth_server import OAuthServer
from tests.support.provider_login import authorize_in_browser
from tests.support.upstream import Upstream

STATIC = Path(__file__).parents[2] / "src" / "cardflow" / "server" / "static"


def _login(server: RunningServer, client: httpx.Client) -> str:
    """Log a client in with a fresh link; returns its CSRF token."""
    token, _ = server.cf.web_sessions.create_login_link()
    answer = client.post(f"{server.url}/login", data={"token": token})
    assert answer.status_code == 303 and answer.headers["location"] == "/flows"
    return csrf_token(client.cookies["cardflow_session"])


def test_login_link_works_once_and_sets_a_safe_cookie(server: RunningServer) -> None:
    token, expires = server.cf.web_sessions.create_login_link()
    assert timedelta(minutes=14) < expires - datetime.now(UTC) <= timedelta(minutes=15)
    with httpx.Client(base_url=server.url) as client:
        # Opening the link (or a chat app previewing it) does not spend it: a form confirms.
        shown = client.get("/login", params={"token": token})
        assert shown.status_code == 200 and "set-cookie" not in shown.headers
        assert 'method="post" action="/login"' in shown.text
        assert client.get("/login", params={"token": token}).status_code == 200
        first = client.post("/login", data={"token": token})
        assert first.status_code == 303
        cookie = first.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Path=/" in cookie
        assert "Secure" not in cookie  # public URL is http://127.0.0.1 here
        assert client.get("/flows").status_code == 200
        old_session = client.cookies["cardflow_session"]
        # a new login from the same browser ends its old session
        _login(server, client)
        assert client.cookies["cardflow_session"] != old_session
    with httpx.Client(base_url=server.url, cookies={"cardflow_session": old_session}) as stale:
        server.cf.web_sessions.checked.clear()
        assert stale.get("/api/v1/connections").status_code == 401
    with httpx.Client(base_url=server.url) as other:
        again = other.post("/login", data={"token": token})
        assert again.status_code == 400
        assert "cardflow login-link" in again.text
        assert "set-cookie" not in again.headers
        assert other.get("/flows").headers["location"] == "/login"
        assert other.post("/login", data={"token": "forged"}).status_code == 400
        assert other.post("/login", data={}).status_code == 400


def test_expired_login_links_and_sessions_stop_working(server: RunningServer) -> None:
    token, _ = server.cf.web_sessions.create_login_link()
    past = datetime.now(UTC) - timedelta(seconds=1)
    with server.cf.db.session() as session:
        session.execute(update(LoginLink).values(expires_at=past))
    with httpx.Client(base_url=server.url) as client:
        assert client.post("/login", data={"token": token}).status_code == 400
        _login(server, client)
        assert client.get("/api/v1/connections").status_code == 200
        with server.cf.db.session() as session:
            session.execute(update(WebSession).values(expires_at=past))
        server.cf.web_sessions.checked.clear()  # skip the 5-second cache
        assert client.get("/api/v1/connections").status_code == 401
        assert client.get("/connections").headers["location"] == "/login"


def test_session_needs_csrf_for_every_change(server: RunningServer) -> None:
    with httpx.Client(base_url=server.url) as client:
        csrf = _login(server, client)
        body = {"name": "n", "auth_type": "none"}
        refused = client.post("/api/v1/connections", json=body)
        assert refused.status_code == 403
        assert refused.json()["error"]["type"] == "forbidden"
        wrong = client.post("/api/v1/connections", json=body, headers={"X-CSRF-Token": "x" * 64})
        assert wrong.status_code == 403
        odd = client.post(
            "/api/v1/connections", json=body, headers=[(b"X-CSRF-Token", "é".encode())]
        )
        assert odd.status_code == 403  # not a 500
        assert client.post("/logout", data={"csrf_token": "é"}).status_code == 403
        assert client.get("/api/v1/connections").json() == []  # nothing was created
        made = client.post("/api/v1/connections", json=body, headers={"X-CSRF-Token": csrf})
        assert made.status_code == 201
        ref = made.json()["id"]
        assert client.patch(f"/api/v1/connections/{ref}", json={"name": "m"}).status_code == 403
        assert client.delete(f"/api/v1/connections/{ref}").status_code == 403
        assert (
            client.delete(f"/api/v1/connections/{ref}", headers={"X-CSRF-Token": csrf}).status_code
            == 200
        )
        # an API token needs no CSRF token (it is not ambient like a cookie)
        with httpx.Client(base_url=server.url, headers=server.headers) as api:
            assert api.post("/api/v1/connections", json=body).status_code == 201

        # Log out: also CSRF-protected; afterwards the cookie is dead.
        assert client.post("/logout", data={"csrf_token": "nope"}).status_code == 403
        cookie = client.cookies["cardflow_session"]
        out = client.post("/logout", data={"csrf_token": csrf})
        assert out.status_code == 303 and out.headers["location"].startswith("/login")
    with httpx.Client(base_url=server.url, cookies={"cardflow_session": cookie}) as stale:
        assert stale.get("/api/v1/connections").status_code == 401


def test_pages_are_the_shell_with_a_strict_policy(server: RunningServer) -> None:
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/").headers["location"] == "/login"
        for path in ("/flows", "/flows/new", "/connections", "/runs", "/runs/run_x", "/flows/f"):
            assert client.get(path).headers["location"] == "/login", path
        csrf = _login(server, client)
        page = client.get("/flows/flw_<script>")
        assert page.status_code == 200
        assert "<script>" not in page.text and "flw_&lt;script&gt;" in page.text
        assert f'<meta name="csrf-token" content="{csrf}">' in page.text
        policy = page.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe" not in policy
        assert page.headers["x-frame-options"] == "DENY"
        js = client.get("/static/js/main.js")
        assert js.status_code == 200 and "javascript" in js.headers["content-type"]
        assert client.get("/static/css/app.css").status_code == 200


def test_static_assets_are_all_local() -> None:
    """Nothing is fetched from elsewhere (works offline), and no script writes HTML."""
    for path in STATIC.rglob("*"):
        if path.is_file() and path.suffix in {".js", ".css", ".svg"}:
            text = path.read_text()
            assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text), path
            assert "innerHTML" not in text and "insertAdjacentHTML" not in text, path
            assert "eval(" not in text and "new Function" not in text, path


def test_auth_types_describe_the_dialog_fields(server: RunningServer) -> None:
    with httpx.Client(base_url=server.url, headers=server.headers) as client:
        types = {t["name"]: t for t in client.get("/api/v1/auth-types").json()}
    assert list(types) == [
        "basic",
        "custom",
        "bearer",
        "query",
        "digest",
        "oauth",
        "client_credentials",
        "none",
    ]
    basic = {f["name"]: f for f in types["basic"]["fields"]}
    assert basic["password"]["secret"] and not basic["username"]["secret"]
    oauth = {f["name"]: f for f in types["oauth"]["fields"]}
    assert oauth["pkce"]["kind"] == "boolean" and oauth["pkce"]["default"] is True
    assert oauth["token_auth_method"]["options"] == [
        "client_secret_basic",
        "client_secret_post",
        "private_key_jwt",
        "tls_client_auth",
    ]
    assert oauth["authorize_url"]["title"] == "Authorize URL"
    # every type may add a client certificate (mutual TLS): after its own fields, grouped
    for kind in types.values():
        tls = [(f["name"], f["kind"], f["secret"]) for f in kind["fields"][-3:]]
        assert tls == [
            ("client_certificate", "pem", True),
            ("client_key", "pem", True),
            ("ca_certificate", "pem", False),
        ]
        assert {f["group"] for f in kind["fields"][-3:]} == {"client_tls"}
        assert not any(f["required"] for f in kind["fields"][-3:])
        assert kind["fields"][-1]["required_when"] is None
    # the client certificate and key are required with tls_client_auth only
    for name in ("client_certificate", "client_key"):
        assert oauth[name]["required_when"] == {
            "field": "token_auth_method",
            "values": ["tls_client_auth"],
        }
        assert oauth[name]["applies_when"] is None
    assert types["basic"]["fields"][-3]["required_when"] is None
    assert oauth["client_secret"]["applies_when"] == {
        "field": "token_auth_method",
        "values": ["client_secret_basic", "client_secret_post"],
    }
    assert [f["name"] for f in types["none"]["fields"]] == [
        "client_certificate",
        "client_key",
        "ca_certificate",
    ]


def test_required_fields_are_marked_and_a_missing_one_is_refused_by_name(
    server: RunningServer,
) -> None:
    with httpx.Client(base_url=server.url, headers=server.headers) as client:
        types = client.get("/api/v1/auth-types").json()
        required = {
            t["name"]: sorted(f["name"] for f in t["fields"] if f["required"]) for t in types
        }
        assert required == {
            "basic": ["username"],  # an empty password is allowed (API keys as user names)
            "custom": ["header_name", "header_value"],
            "bearer": ["token"],
            "query": ["param_name", "param_value"],
            "digest": ["password", "username"],
            # with the default token_auth_method (the rules: applies_when, required_when)
            "oauth": ["authorize_url", "client_id", "client_secret", "token_url"],
            "client_credentials": ["client_id", "client_secret", "token_url"],
            "none": [],
        }
        config = {"token_url": "https://id.example.com/token", "client_id": "c"}
        refused = client.post(
            "/api/v1/connections",
            json={"name": "cc", "auth_type": "client_credentials", "config": config},
        )
        assert refused.status_code == 422
        assert refused.json() == {
            "error": {
                "type": "invalid_input",
                "message": "config.client_secret: this field is required",
                "field": "config.client_secret",
            }
        }
        empty_user = client.post(
            "/api/v1/connections",
            json={"name": "b", "auth_type": "basic", "config": {"username": "", "password": "p"}},
        )
        assert empty_user.status_code == 422
        assert empty_user.json()["error"]["message"] == "config.username: this field is required"
        made = client.post(
            "/api/v1/connections",
            json={"name": "key", "auth_type": "basic", "config": {"username": "sk_live_x"}},
        )
        assert made.status_code == 201, made.text  # Stripe-style: the key, no password
        created = client.post(
            "/api/v1/connections",
            json={
                "name": "cc",
                "auth_type": "client_credentials",
                "config": {**config, "client_secret": "s"},
            },
        ).json()
        # On edit a stored secret need not be typed again: left out, it is kept.
        kept = client.patch(f"/api/v1/connections/{created['id']}", json={"config": {"scope": "a"}})
        assert kept.status_code == 200, kept.text
        assert kept.json()["config"]["client_secret"] == {"set": True}


FLOW_YAML = """\
name: Imported
trigger: {type: api_endpoint, alias: imported, security: none}
cards:
  - id: out
    card: flow.return
    inputs: {ok: true}
"""


def test_flow_import_enable_and_disable(server: RunningServer) -> None:
    with httpx.Client(base_url=server.url, headers=server.headers) as client:
        made = client.post(
            "/api/v1/flows/import", json={"content": FLOW_YAML, "filename": "f.yaml"}
        )
        assert made.status_code == 201, made.text
        flow_id = made.json()["id"]
        assert client.post(f"{server.url}/invoke/imported").json() == {"ok": True}
        twice = client.post("/api/v1/flows/import", json={"content": FLOW_YAML})
        assert twice.status_code == 409 and twice.json()["error"]["field"] == "name"
        replaced = client.post(
            "/api/v1/flows/import",
            json={"content": FLOW_YAML.replace("ok: true", "ok: 2"), "replace": True},
        )
        assert replaced.status_code == 201 and replaced.json()["id"] == flow_id
        assert client.post(f"{server.url}/invoke/imported").json() == {"ok": 2}

        bad = client.post("/api/v1/flows/import", json={"content": "name: [unclosed"})
        assert bad.status_code == 422 and "not valid YAML" in bad.json()["error"]["message"]
        wrong = client.post(
            "/api/v1/flows/import", json={"content": FLOW_YAML.replace("flow.return", "nope")}
        )
        assert wrong.status_code == 422 and wrong.json()["error"]["field"] == "cards.0.card"

        off = client.patch(f"/api/v1/flows/{flow_id}", json={"enabled": False})
        assert off.status_code == 200 and off.json()["enabled"] is False
        assert client.post(f"{server.url}/invoke/imported").status_code == 404
        client.patch(f"/api/v1/flows/{flow_id}", json={"enabled": True}).raise_for_status()
        assert client.post(f"{server.url}/invoke/imported").status_code == 200
        bad_patch = client.patch(f"/api/v1/flows/{flow_id}", json={"enabled": "maybe"})
        assert bad_patch.status_code == 422 and bad_patch.json()["error"]["field"] == "enabled"


def test_card_test_with_a_context_and_control_cards(
    server: RunningServer, upstream: Upstream
) -> None:
    context = {"trigger": {"body": {"user": "alice"}}, "steps": {"get": {"body": {"n": 3}}}}
    with httpx.Client(base_url=server.url, headers=server.headers) as client:
        got = client.post(
            "/api/v1/cards/api_connector.get/test",
            json={
                "inputs": {"url": f"{upstream.url}/echo/{{{{ trigger.body.user }}}}"},
                "context": context,
            },
        ).json()
        assert got["ok"] and got["outputs"]["body"]["path"] == "/echo/alice"

        bad = client.post(
            "/api/v1/cards/api_connector.get/test",
            json={"inputs": {"url": "{{ trigger.[ }}"}, "context": context},
        )
        assert bad.status_code == 422 and bad.json()["error"]["field"] == "inputs.url"

        returned = client.post(
            "/api/v1/cards/flow.return/test",
            json={"inputs": {"count": "{{ steps.get.body.n }}"}, "context": context},
        ).json()
        assert returned["ok"], returned
        assert returned["answer"] == {"status_code": 200, "headers": {}, "body": {"count": 3}}

        in_loop = client.post(
            "/api/v1/cards/object.construct/test",
            json={
                "inputs": {"v": "{{ loop.item }}", "i": "{{ loop.index }}"},
                "context": {**context, "loop": {"item": 7, "index": 1}},
            },
        ).json()
        assert in_loop["outputs"] == {"output": {"v": 7, "i": 1}}
        catalogue = {c["id"]: c for c in client.get("/api/v1/cards").json()}
        assert catalogue["list.for_each"]["nested_inputs"] == ["cards"]
        assert catalogue["branch.if_else"]["nested_inputs"] == ["then", "else"]
        assert catalogue["api_connector.get"]["nested_inputs"] == []

        looped = client.post(
            "/api/v1/cards/list.for_each/test",
            json={
                "inputs": {
                    "list": [1, 2],
                    "cards": [
                        {
                            "id": "twice",
                            "card": "object.construct",
                            "inputs": {"n": "{{ loop.item }}", "user": "{{ trigger.body.user }}"},
                        }
                    ],
                },
                "context": context,
            },
        ).json()
        assert looped["ok"], looped
        assert looped["outputs"]["output"] == [
            {"twice": {"output": {"n": 1, "user": "alice"}}},
            {"twice": {"output": {"n": 2, "user": "alice"}}},
        ]


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
def test_oauth_callback_returns_a_logged_in_browser_to_connections(
    server: RunningServer, oauth_server: OAuthServer
) -> None:
    oauth_server.add_client(
        "web-app",
        "web-secret",
        scope="read",
        grant_types=("authorization_code", "refresh_token"),
        redirect_uris=(f"{server.url}/oauth/callback",),
    )
    made = server.cf.connections.create(
        "P - OAuth - alice",
        "oauth",
        {
            "authorize_url": oauth_server.authorize_url,
            "token_url": oauth_server.token_url,
            "client_id": "web-app",
            "client_secret": "web-secret",
            "scope": "read",
        },
    )
    start = f"{server.url}/api/v1/connections/{made.id}/authorize"
    with httpx.Client() as browser:
        csrf = _login(server, browser)
        # another site's plain link cannot start an authorization with the session cookie
        assert browser.get(start).status_code == 403
        assert oauth_server.last_authorize_params == {}
        final = authorize_in_browser(browser, f"{start}?csrf={csrf}")
    # the callback sent the browser back to the Connections page, which shows the result
    assert final.status_code == 200
    assert final.url == f"{server.url}/connections?authorized={made.id}"
    assert 'data-page="connections"' in final.text
    assert server.cf.connections.get(made.id).status == "ready"


def test_openapi_docs_are_served_locally(server: RunningServer) -> None:
    with httpx.Client(base_url=server.url) as client:
        docs = client.get("/docs")
        assert docs.status_code == 200
        assert "script-src 'self'" in docs.headers["content-security-policy"]
        targets = re.findall(r'(?:src|href)="([^"]*)"', docs.text)
        assert targets and all(t.startswith("/") for t in targets), targets
        assert "<script>" not in docs.text
        for target in targets:
            assert client.get(target).status_code == 200, target
        assert client.get("/redoc").status_code == 404  # it would load from a CDN
        assert client.get("/openapi.json").json()["info"]["title"] == "cardflow"


def test_invoke_answers_cannot_script_the_app_or_see_its_session(server: RunningServer) -> None:
    """A flow answers from the web app's origin: its HTML must not run there, it must not set
    cookies there, and an admin's browser calling it must not hand over its session."""
    flow = {
        "name": "Echo page",
        "trigger": {"type": "api_endpoint", "alias": "page", "security": "none"},
        "cards": [
            {
                "id": "out",
                "card": "flow.return_raw",
                "inputs": {
                    "headers": {
                        "Content-Type": "text/html",
                        "Set-Cookie": "cardflow_session=attacker; Path=/",
                        "Content-Security-Policy": "script-src *",
                    },
                    "body": "{{ trigger.query.x }}|{{ trigger.headers.cookie }}",
                },
            }
        ],
    }
    with httpx.Client(base_url=server.url, headers=server.headers) as api:
        api.post("/api/v1/flows", json=flow).raise_for_status()
    with httpx.Client(base_url=server.url) as browser:
        _login(server, browser)
        session = browser.cookies["cardflow_session"]
        browser.cookies.set("other", "kept")
        answer = browser.get("/invoke/page", params={"x": "<script>alert(1)</script>"})
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/html")
    assert answer.headers["content-security-policy"] == "sandbox; default-src 'none'"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert "set-cookie" not in answer.headers
    body, cookie = answer.text.split("|")
    assert body == "<script>alert(1)</script>"  # the flow's answer, as it said, but inert
    assert session not in cookie and "cardflow_session" not in cookie
    assert "other=kept" in cookie
